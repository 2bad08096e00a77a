//! `licensd import --compare`: licensd's evaluation next to what Microsoft recorded. For every
//! user whose `licenseAssignmentStates` the export holds, each (product, source) assignment is
//! matched with licensd's state of the same product from the same source; differences in state
//! or error, and assignments only one side has, are listed with licensd's explanation. Products
//! whose `consumedUnits` differ are listed too.

use std::collections::HashSet;
use std::fmt;

use licensd_engine::{Engine, LicenseAssignmentState, Uuid};
use serde::Serialize;

use crate::read::GraphExport;
use crate::report::guid_text;

/// A state and error, as Graph writes them (`Active`, `CountViolation`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedState {
    pub state: String,
    /// `None` when there is no error (Graph's `"None"`).
    pub error: Option<String>,
}

impl fmt::Display for RecordedState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            Some(error) => write!(formatter, "{} ({error})", self.state),
            None => formatter.write_str(&self.state),
        }
    }
}

/// How an assignment differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DifferenceKind {
    /// Both have the assignment, with a different state or error.
    StateDiffers,
    /// Microsoft recorded an assignment licensd does not have.
    OnlyInMicrosoft,
    /// licensd has an assignment Microsoft did not record.
    OnlyInLicensd,
}

/// One assignment whose state differs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    pub kind: DifferenceKind,
    #[serde(with = "guid_text")]
    pub user_id: Uuid,
    pub user_principal_name: String,
    #[serde(with = "guid_text")]
    pub sku_id: Uuid,
    /// "Office 365 E3 (ENTERPRISEPACK)", or the part number or id when licensd lacks the product.
    pub product: String,
    /// `None` for a direct assignment.
    #[serde(with = "guid_text::option")]
    pub assigned_by_group: Option<Uuid>,
    /// "direct" or `group "Sales"`.
    pub source: String,
    pub microsoft: Option<RecordedState>,
    pub licensd: Option<RecordedState>,
    /// licensd's plain-language reason (its error explanation, or why it has no such assignment).
    pub explanation: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |state: &Option<RecordedState>| match state {
            Some(state) => state.to_string(),
            None => "no assignment".to_string(),
        };
        write!(
            formatter,
            "{} - {} via {}: Microsoft {}, licensd {}",
            self.user_principal_name,
            self.product,
            self.source,
            side(&self.microsoft),
            side(&self.licensd)
        )
    }
}

/// A product whose consumed units differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductDifference {
    #[serde(with = "guid_text")]
    pub sku_id: Uuid,
    pub product: String,
    pub microsoft_consumed_units: i64,
    pub licensd_consumed_units: u32,
}

/// Counts of a comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComparisonSummary {
    pub users_compared: usize,
    /// Users without `licenseAssignmentStates` in the export: nothing to compare with.
    pub users_without_recorded_states: usize,
    /// Users of the export that were skipped at import.
    pub users_not_imported: usize,
    pub assignments_compared: usize,
    pub matching: usize,
    pub differing: usize,
    pub state_differs: usize,
    pub only_in_microsoft: usize,
    pub only_in_licensd: usize,
}

/// The result of [`compare`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    pub summary: ComparisonSummary,
    pub differences: Vec<Difference>,
    pub products: Vec<ProductDifference>,
}

/// Graph's `Other` error, which some documents spell `Others`.
fn same_error(microsoft: Option<&str>, licensd: Option<&str>) -> bool {
    let canonical = |error: &str| {
        if error.eq_ignore_ascii_case("Others") {
            "other".to_string()
        } else {
            error.to_ascii_lowercase()
        }
    };
    microsoft.map(canonical) == licensd.map(canonical)
}

fn licensd_state(state: &LicenseAssignmentState) -> RecordedState {
    RecordedState {
        state: state.state.as_str().to_string(),
        error: state.error.map(|kind| kind.as_str().to_string()),
    }
}

struct Labels<'a> {
    engine: &'a Engine,
    export: &'a GraphExport,
}

impl Labels<'_> {
    fn product(&self, sku_id: Uuid) -> String {
        if let Ok(usage) = self.engine.sku_usage(sku_id) {
            return format!("{} ({})", usage.display_name, usage.sku_part_number);
        }
        self.export
            .subscribed_skus
            .iter()
            .find(|record| record.value.sku_id.0 == sku_id)
            .and_then(|record| record.value.sku_part_number.clone())
            .unwrap_or_else(|| sku_id.to_string())
    }

    fn source(&self, assigned_by_group: Option<Uuid>) -> String {
        let Some(group_id) = assigned_by_group else {
            return "direct".to_string();
        };
        let name = self
            .engine
            .group_view(group_id)
            .ok()
            .map(|group| group.display_name)
            .or_else(|| {
                self.export
                    .groups
                    .iter()
                    .find(|record| record.value.id.0 == group_id)
                    .and_then(|record| record.value.display_name.clone())
            });
        match name {
            Some(name) => format!("group \"{name}\""),
            None => format!("group {group_id}"),
        }
    }

    /// Why licensd has no assignment Microsoft recorded.
    fn missing_reason(&self, sku_id: Uuid, assigned_by_group: Option<Uuid>) -> String {
        if self.engine.sku_usage(sku_id).is_err() {
            return "the product is not in licensd's tenant (not in subscribedSkus, or skipped at import)"
                .to_string();
        }
        match assigned_by_group {
            Some(group_id) if self.engine.group_view(group_id).is_err() => {
                "the group is not in licensd's tenant (not in groups.json, or skipped at import)".to_string()
            }
            Some(_) => {
                "in licensd the group does not assign this product to the user: the group's license or \
                        the membership was not in the export or was skipped at import"
                    .to_string()
            }
            None => "the direct license was not loaded (see the import's skipped records)".to_string(),
        }
    }
}

/// Compares licensd's evaluated states with the states Microsoft recorded in the export.
pub fn compare(export: &GraphExport, engine: &Engine) -> Comparison {
    let labels = Labels { engine, export };
    let mut comparison = Comparison::default();
    let mut seen_users = HashSet::new();
    for record in &export.users {
        let user = &record.value;
        let user_id = user.id.0;
        if !seen_users.insert(user_id) {
            continue;
        }
        let Some(recorded) = &user.license_assignment_states else {
            comparison.summary.users_without_recorded_states += 1;
            continue;
        };
        let Ok(licensd_states) = engine.user_license_states(user_id) else {
            comparison.summary.users_not_imported += 1;
            continue;
        };
        let user_principal_name = engine
            .user_view(user_id)
            .map(|view| view.user_principal_name)
            .unwrap_or_else(|_| user_id.to_string());
        comparison.summary.users_compared += 1;
        let mut matched_licensd = vec![false; licensd_states.len()];
        let mut seen_keys = HashSet::new();
        for microsoft in recorded {
            let sku_id = microsoft.sku_id.0;
            let assigned_by_group = microsoft.assigned_by_group.map(|id| id.0);
            if !seen_keys.insert((sku_id, assigned_by_group)) {
                continue;
            }
            comparison.summary.assignments_compared += 1;
            let microsoft_state = RecordedState {
                state: microsoft.state.clone().unwrap_or_else(|| "(none)".to_string()),
                error: microsoft.error_code().map(str::to_string),
            };
            let position = licensd_states
                .iter()
                .position(|state| state.sku_id == sku_id && state.assigned_by_group == assigned_by_group);
            let difference = match position {
                Some(index) => {
                    if let Some(matched) = matched_licensd.get_mut(index) {
                        *matched = true;
                    }
                    let Some(state) = licensd_states.get(index) else {
                        continue;
                    };
                    let ours = licensd_state(state);
                    let same = ours.state.eq_ignore_ascii_case(&microsoft_state.state)
                        && same_error(microsoft_state.error.as_deref(), ours.error.as_deref());
                    if same {
                        comparison.summary.matching += 1;
                        continue;
                    }
                    comparison.summary.state_differs += 1;
                    let explanation = engine.explain(state).or_else(|| {
                        Some("licensd found no licensing rule broken by this assignment".to_string())
                    });
                    (
                        DifferenceKind::StateDiffers,
                        Some(microsoft_state),
                        Some(ours),
                        explanation,
                    )
                }
                None => {
                    comparison.summary.only_in_microsoft += 1;
                    let explanation = Some(labels.missing_reason(sku_id, assigned_by_group));
                    (
                        DifferenceKind::OnlyInMicrosoft,
                        Some(microsoft_state),
                        None,
                        explanation,
                    )
                }
            };
            let (kind, microsoft, licensd, explanation) = difference;
            comparison.differences.push(Difference {
                kind,
                user_id,
                user_principal_name: user_principal_name.clone(),
                sku_id,
                product: labels.product(sku_id),
                assigned_by_group,
                source: labels.source(assigned_by_group),
                microsoft,
                licensd,
                explanation,
            });
        }
        for (state, matched) in licensd_states.iter().zip(matched_licensd) {
            if matched {
                continue;
            }
            comparison.summary.assignments_compared += 1;
            comparison.summary.only_in_licensd += 1;
            comparison.differences.push(Difference {
                kind: DifferenceKind::OnlyInLicensd,
                user_id,
                user_principal_name: user_principal_name.clone(),
                sku_id: state.sku_id,
                product: labels.product(state.sku_id),
                assigned_by_group: state.assigned_by_group,
                source: labels.source(state.assigned_by_group),
                microsoft: None,
                licensd: Some(licensd_state(state)),
                explanation: engine.explain(state).or_else(|| {
                    Some("Microsoft recorded no assignment of this product from this source".to_string())
                }),
            });
        }
    }
    comparison.summary.differing = comparison.differences.len();
    let mut seen_products = HashSet::new();
    for record in &export.subscribed_skus {
        let sku = &record.value;
        let (Some(microsoft_consumed_units), Ok(usage)) =
            (sku.consumed_units, engine.sku_usage(sku.sku_id.0))
        else {
            continue;
        };
        if !seen_products.insert(sku.sku_id.0) || microsoft_consumed_units == i64::from(usage.consumed_units)
        {
            continue;
        }
        comparison.products.push(ProductDifference {
            sku_id: sku.sku_id.0,
            product: labels.product(sku.sku_id.0),
            microsoft_consumed_units,
            licensd_consumed_units: usage.consumed_units,
        });
    }
    comparison
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_and_others_are_the_same_error() {
        assert!(same_error(Some("Others"), Some("Other")));
        assert!(same_error(None, None));
        assert!(!same_error(Some("CountViolation"), None));
        assert!(same_error(Some("countviolation"), Some("CountViolation")));
    }
}
