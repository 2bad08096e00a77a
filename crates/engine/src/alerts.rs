//! License alerts, as pure functions: what an administrator's alert rules say about a change.
//! A rule's [`AlertCondition`] is matched against the transitions one write or processing step
//! caused — users entering or leaving a license error ([`Engine::error_transitions`]), products
//! crossing a seat threshold (seat counts before and after) — and every rule that matched gives
//! **one** [`AlertDigest`] per write or step, however many users it names (a digest: the count
//! and the first [`DIGEST_SAMPLES`] users). Firing once per transition follows from looking at
//! transitions only: a user staying in error, or a product staying above its threshold, is no
//! transition. No JSON, no clock, no delivery: callers render and deliver digests.

use std::collections::HashMap;

use crate::engine::Engine;
use crate::handles::Source;
use crate::model::{LicenseErrorKind, Uuid};
use crate::states::StateChange;

/// At most this many users (or products) are named in one digest; the count names them all.
pub const DIGEST_SAMPLES: usize = 10;

/// What an alert rule watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertCondition {
    /// A user's license assignment state enters an error matching the filter.
    LicenseErrorEntered(ErrorFilter),
    /// A user's license assignment state leaves an error matching the filter (resolved, or the
    /// assignment removed).
    LicenseErrorLeft(ErrorFilter),
    /// A product's seats cross the threshold (upwards: fires; back below: re-arms).
    Seats {
        /// `None`: every product.
        sku_id: Option<Uuid>,
        threshold: SeatThreshold,
    },
    /// A product's subscription ends within this many days (checked periodically).
    SubscriptionEnding { within_days: u32 },
    /// Users have waited in the processing queue longer than this (checked periodically).
    ProcessingLag { over_seconds: u32 },
    /// A reclamation policy's run gave seats a notice (once per notice: a seat whose notice
    /// stands is not named again by later runs).
    ReclamationNoticed(ReclamationFilter),
    /// A reclamation policy's run reclaimed seats.
    ReclamationActed(ReclamationFilter),
}

/// Which reclamations a reclamation rule is about; `None` matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReclamationFilter {
    /// Only this product.
    pub sku_id: Option<Uuid>,
    /// Only this reclamation policy.
    pub policy_id: Option<Uuid>,
}

/// Which license errors an error rule is about; an empty or `None` part matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorFilter {
    /// The error kinds; empty: any kind.
    pub kinds: Vec<LicenseErrorKind>,
    /// Only assignments through this group.
    pub group_id: Option<Uuid>,
    /// Only this product.
    pub sku_id: Option<Uuid>,
}

impl ErrorFilter {
    fn matches(&self, transition: &ErrorTransition, kind: LicenseErrorKind) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && self
                .group_id
                .map_or(true, |group| transition.group_id == Some(group))
            && self.sku_id.map_or(true, |sku| transition.sku_id == sku)
    }
}

/// When a product's seats are "low".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeatThreshold {
    /// At least this percentage (1–100) of the purchased seats consumed.
    PercentUsed(u8),
    /// No seat available (consumed ≥ purchased).
    NoneAvailable,
    /// More seats consumed than purchased.
    OverAllocated,
}

impl SeatThreshold {
    /// Whether a product with these seats is past the threshold.
    pub fn reached(&self, seats: &SeatCount) -> bool {
        let prepaid = u64::from(seats.prepaid_units);
        let consumed = u64::from(seats.consumed_units);
        match self {
            SeatThreshold::PercentUsed(percent) => {
                // A product without seats is past any percentage once one is consumed.
                consumed > 0 && consumed * 100 >= u64::from(*percent) * prepaid
            }
            SeatThreshold::NoneAvailable => consumed >= prepaid,
            SeatThreshold::OverAllocated => consumed > prepaid,
        }
    }
}

/// A product's seats at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatCount {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units: u32,
    pub consumed_units: u32,
}

/// One alert rule as the engine sees it: an id and a condition (where and how it is delivered
/// is not the engine's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRule {
    pub rule_id: Uuid,
    pub condition: AlertCondition,
}

/// One state's move into, out of or between license errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorTransition {
    pub user_id: Uuid,
    /// Empty when the user was deleted.
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// The group the assignment comes through; `None` for a direct one (or a deleted group).
    pub group_id: Option<Uuid>,
    /// The error before, `None` when there was none (or no state).
    pub left: Option<LicenseErrorKind>,
    /// The error after, `None` when there is none (or no state).
    pub entered: Option<LicenseErrorKind>,
}

/// What a rule says about one write or processing step: one message's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertDigest {
    pub rule_id: Uuid,
    pub subject: AlertSubject,
}

/// The transitions a digest reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertSubject {
    /// Users entered (`entered == true`) or left matching errors: `count` states in all, the
    /// first [`DIGEST_SAMPLES`] of them.
    LicenseErrors {
        entered: bool,
        count: usize,
        samples: Vec<ErrorSample>,
    },
    /// Products that crossed the threshold upwards, with their seats after.
    Seats {
        threshold: SeatThreshold,
        products: Vec<SeatCount>,
    },
    /// A product's subscription ends at `ends_at` (milliseconds since the Unix epoch).
    SubscriptionEnding {
        sku_id: Uuid,
        sku_part_number: String,
        ends_at: i64,
        within_days: u32,
    },
    /// The oldest queued user has waited `lag_seconds`.
    ProcessingLag {
        lag_seconds: u64,
        queued_users: usize,
        over_seconds: u32,
    },
    /// A run of the reclamation policy `policy_id` gave `count` seats a notice (`acted ==
    /// false`) or reclaimed them (`acted == true`); the first [`DIGEST_SAMPLES`] of them.
    Reclamation {
        acted: bool,
        policy_id: Uuid,
        policy_name: String,
        count: usize,
        samples: Vec<ReclamationSample>,
    },
}

/// One seat a reclamation run gave a notice or reclaimed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclamationSample {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// `inactive`, `disabled` or `left`.
    pub reason: crate::spend::IdleReason,
    /// When the seat will be (or was) reclaimed: milliseconds since the Unix epoch.
    pub act_at: i64,
}

/// One user's transition named in a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorSample {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub group_id: Option<Uuid>,
    pub error: LicenseErrorKind,
}

/// One license assignment state: its user, product and source.
type StateOf = (Uuid, crate::handles::SkuRef, Source);
/// A state's error before the first change and after the last one.
type ErrorSpan = (Option<LicenseErrorKind>, Option<LicenseErrorKind>);

impl Engine {
    /// The error transitions of `changes` (a command's or a processing step's): each state's
    /// first `before` and last `after` compared, so a state that went in and out within one step
    /// is no transition. A state whose error changed kind leaves one and enters the other.
    pub fn error_transitions(&self, changes: &[StateChange]) -> Vec<ErrorTransition> {
        let mut order: Vec<StateOf> = Vec::new();
        let mut spans: HashMap<StateOf, ErrorSpan> = HashMap::new();
        let kind_of = |record: &Option<crate::states::StateRecord>| {
            record
                .as_ref()
                .and_then(|record| record.cause)
                .map(|cause| self.causes.get(cause).kind())
        };
        for change in changes {
            let key = (change.user_id, change.sku, change.source);
            let after = kind_of(&change.after);
            match spans.get_mut(&key) {
                Some(span) => span.1 = after,
                None => {
                    order.push(key);
                    spans.insert(key, (kind_of(&change.before), after));
                }
            }
        }
        order
            .into_iter()
            .filter_map(|key| {
                let (left, entered) = spans.get(&key).copied()?;
                if left == entered {
                    return None;
                }
                let (user_id, sku, source) = key;
                let user_principal_name = self
                    .directory
                    .find_user(user_id)
                    .map(|user| self.user(user).user_principal_name.to_string())
                    .unwrap_or_default();
                let group_id = match source {
                    Source::Direct => None,
                    Source::Group(group) => self.directory.group_if_live(group).map(|group| group.id),
                };
                let product = self.sku(sku);
                Some(ErrorTransition {
                    user_id,
                    user_principal_name,
                    sku_id: product.id,
                    sku_part_number: product.part_number.clone(),
                    group_id,
                    left,
                    entered,
                })
            })
            .collect()
    }

    /// Every product's seats now, for [`seat_digests`] before and after a change.
    pub fn alert_seat_counts(&self) -> Vec<SeatCount> {
        self.catalog
            .skus()
            .map(|(sku, product)| SeatCount {
                sku_id: product.id,
                sku_part_number: product.part_number.clone(),
                prepaid_units: product.prepaid_units,
                consumed_units: self.states.consumed_units(sku),
            })
            .collect()
    }
}

/// The digests of the error rules among `rules` for these transitions: one per rule that
/// matched at least one transition.
pub fn error_digests(rules: &[AlertRule], transitions: &[ErrorTransition]) -> Vec<AlertDigest> {
    let mut digests = Vec::new();
    for rule in rules {
        let (filter, entered) = match &rule.condition {
            AlertCondition::LicenseErrorEntered(filter) => (filter, true),
            AlertCondition::LicenseErrorLeft(filter) => (filter, false),
            _ => continue,
        };
        let mut count = 0;
        let mut samples = Vec::new();
        for transition in transitions {
            let error = if entered {
                transition.entered
            } else {
                transition.left
            };
            let Some(error) = error else {
                continue;
            };
            if !filter.matches(transition, error) {
                continue;
            }
            count += 1;
            if samples.len() < DIGEST_SAMPLES {
                samples.push(ErrorSample {
                    user_id: transition.user_id,
                    user_principal_name: transition.user_principal_name.clone(),
                    sku_id: transition.sku_id,
                    sku_part_number: transition.sku_part_number.clone(),
                    group_id: transition.group_id,
                    error,
                });
            }
        }
        if count > 0 {
            digests.push(AlertDigest {
                rule_id: rule.rule_id,
                subject: AlertSubject::LicenseErrors {
                    entered,
                    count,
                    samples,
                },
            });
        }
    }
    digests
}

/// The digests of the seat rules among `rules`: the products below a rule's threshold before
/// and at or above it after (crossing upwards). A product going back below re-arms the rule
/// simply by being below the next time; a product new since `before` counts as below before.
pub fn seat_digests(rules: &[AlertRule], before: &[SeatCount], after: &[SeatCount]) -> Vec<AlertDigest> {
    let mut digests = Vec::new();
    for rule in rules {
        let AlertCondition::Seats { sku_id, threshold } = &rule.condition else {
            continue;
        };
        let products: Vec<SeatCount> = after
            .iter()
            .filter(|seats| sku_id.map_or(true, |sku| seats.sku_id == sku))
            .filter(|seats| threshold.reached(seats))
            .filter(|seats| {
                !before
                    .iter()
                    .find(|earlier| earlier.sku_id == seats.sku_id)
                    .is_some_and(|earlier| threshold.reached(earlier))
            })
            .cloned()
            .collect();
        if !products.is_empty() {
            digests.push(AlertDigest {
                rule_id: rule.rule_id,
                subject: AlertSubject::Seats {
                    threshold: *threshold,
                    products,
                },
            });
        }
    }
    digests
}

/// The digests of the reclamation rules among `rules` for one run of the policy `policy_id`:
/// `seats` are the seats the run gave a notice (`acted == false`) or reclaimed (`acted ==
/// true`); one digest per rule that matched at least one seat.
pub fn reclamation_digests(
    rules: &[AlertRule],
    policy_id: Uuid,
    policy_name: &str,
    acted: bool,
    seats: &[ReclamationSample],
) -> Vec<AlertDigest> {
    let mut digests = Vec::new();
    for rule in rules {
        let filter = match (&rule.condition, acted) {
            (AlertCondition::ReclamationNoticed(filter), false)
            | (AlertCondition::ReclamationActed(filter), true) => filter,
            _ => continue,
        };
        if filter.policy_id.is_some_and(|policy| policy != policy_id) {
            continue;
        }
        let matching: Vec<&ReclamationSample> = seats
            .iter()
            .filter(|seat| filter.sku_id.map_or(true, |sku| seat.sku_id == sku))
            .collect();
        if matching.is_empty() {
            continue;
        }
        digests.push(AlertDigest {
            rule_id: rule.rule_id,
            subject: AlertSubject::Reclamation {
                acted,
                policy_id,
                policy_name: policy_name.to_string(),
                count: matching.len(),
                samples: matching.into_iter().take(DIGEST_SAMPLES).cloned().collect(),
            },
        });
    }
    digests
}

/// Whether any rule watches reclamation runs.
pub fn watches_reclamation(rules: &[AlertRule]) -> bool {
    rules.iter().any(|rule| {
        matches!(
            rule.condition,
            AlertCondition::ReclamationNoticed(_) | AlertCondition::ReclamationActed(_)
        )
    })
}

/// Whether any rule needs seat counts (so callers count seats only then).
pub fn watches_seats(rules: &[AlertRule]) -> bool {
    rules
        .iter()
        .any(|rule| matches!(rule.condition, AlertCondition::Seats { .. }))
}

/// Whether any rule watches license errors.
pub fn watches_errors(rules: &[AlertRule]) -> bool {
    rules.iter().any(|rule| {
        matches!(
            rule.condition,
            AlertCondition::LicenseErrorEntered(_) | AlertCondition::LicenseErrorLeft(_)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn seats(sku: u128, prepaid: u32, consumed: u32) -> SeatCount {
        SeatCount {
            sku_id: id(sku),
            sku_part_number: format!("SKU{sku}"),
            prepaid_units: prepaid,
            consumed_units: consumed,
        }
    }

    fn transition(
        user: u128,
        left: Option<LicenseErrorKind>,
        entered: Option<LicenseErrorKind>,
    ) -> ErrorTransition {
        ErrorTransition {
            user_id: id(user),
            user_principal_name: format!("user{user}@contoso.com"),
            sku_id: id(1),
            sku_part_number: "SKU1".to_string(),
            group_id: Some(id(7)),
            left,
            entered,
        }
    }

    #[test]
    fn a_seat_rule_fires_when_crossing_up_and_rearms_below() {
        let rule = AlertRule {
            rule_id: id(100),
            condition: AlertCondition::Seats {
                sku_id: None,
                threshold: SeatThreshold::PercentUsed(90),
            },
        };
        let rules = [rule];
        // 8 of 10 -> 9 of 10: crosses.
        let digests = seat_digests(&rules, &[seats(1, 10, 8)], &[seats(1, 10, 9)]);
        assert_eq!(digests.len(), 1);
        // 9 -> 10: still above, nothing.
        assert!(seat_digests(&rules, &[seats(1, 10, 9)], &[seats(1, 10, 10)]).is_empty());
        // Back down to 5 (re-arms), then up again: fires again.
        assert!(seat_digests(&rules, &[seats(1, 10, 10)], &[seats(1, 10, 5)]).is_empty());
        assert_eq!(
            seat_digests(&rules, &[seats(1, 10, 5)], &[seats(1, 10, 9)]).len(),
            1
        );
        // More seats bought: back below without a consumed change.
        assert!(seat_digests(&rules, &[seats(1, 10, 9)], &[seats(1, 20, 9)]).is_empty());
    }

    #[test]
    fn none_available_and_over_allocated_thresholds() {
        assert!(SeatThreshold::NoneAvailable.reached(&seats(1, 5, 5)));
        assert!(!SeatThreshold::NoneAvailable.reached(&seats(1, 5, 4)));
        assert!(SeatThreshold::OverAllocated.reached(&seats(1, 5, 6)));
        assert!(!SeatThreshold::OverAllocated.reached(&seats(1, 5, 5)));
        assert!(!SeatThreshold::PercentUsed(90).reached(&seats(1, 0, 0)));
    }

    #[test]
    fn error_rules_digest_all_matching_transitions_into_one() {
        let entered = AlertRule {
            rule_id: id(1),
            condition: AlertCondition::LicenseErrorEntered(ErrorFilter {
                kinds: vec![LicenseErrorKind::CountViolation],
                group_id: Some(id(7)),
                sku_id: None,
            }),
        };
        let left = AlertRule {
            rule_id: id(2),
            condition: AlertCondition::LicenseErrorLeft(ErrorFilter::default()),
        };
        let transitions: Vec<ErrorTransition> = (0..200)
            .map(|user| transition(user, None, Some(LicenseErrorKind::CountViolation)))
            .chain([transition(500, Some(LicenseErrorKind::UniquenessViolation), None)])
            .collect();
        let digests = error_digests(&[entered, left], &transitions);
        assert_eq!(digests.len(), 2);
        match &digests[0].subject {
            AlertSubject::LicenseErrors {
                entered,
                count,
                samples,
            } => {
                assert!(*entered);
                assert_eq!(*count, 200);
                assert_eq!(samples.len(), DIGEST_SAMPLES);
            }
            other => panic!("unexpected {other:?}"),
        }
        match &digests[1].subject {
            AlertSubject::LicenseErrors { entered, count, .. } => {
                assert!(!*entered);
                assert_eq!(*count, 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        // Another group, another kind: nothing for the first rule.
        let mut other = transition(1, None, Some(LicenseErrorKind::DependencyViolation));
        other.group_id = None;
        assert!(error_digests(&digests_rules(), &[other]).is_empty());
    }

    fn reclaimed(user: u128, sku: u128) -> ReclamationSample {
        ReclamationSample {
            user_id: id(user),
            user_principal_name: format!("user{user}@contoso.com"),
            sku_id: id(sku),
            sku_part_number: format!("SKU{sku}"),
            reason: crate::spend::IdleReason::Left,
            act_at: 1_000,
        }
    }

    #[test]
    fn reclamation_rules_digest_their_policy_and_product_only() {
        let noticed_any = AlertRule {
            rule_id: id(1),
            condition: AlertCondition::ReclamationNoticed(ReclamationFilter::default()),
        };
        let noticed_sku2 = AlertRule {
            rule_id: id(2),
            condition: AlertCondition::ReclamationNoticed(ReclamationFilter {
                sku_id: Some(id(2)),
                policy_id: None,
            }),
        };
        let acted_other_policy = AlertRule {
            rule_id: id(3),
            condition: AlertCondition::ReclamationActed(ReclamationFilter {
                sku_id: None,
                policy_id: Some(id(99)),
            }),
        };
        let acted = AlertRule {
            rule_id: id(4),
            condition: AlertCondition::ReclamationActed(ReclamationFilter {
                sku_id: None,
                policy_id: Some(id(50)),
            }),
        };
        let rules = [noticed_any, noticed_sku2, acted_other_policy, acted];
        let seats: Vec<ReclamationSample> = (0..30)
            .map(|user| reclaimed(user, 1))
            .chain([reclaimed(40, 2)])
            .collect();
        let noticed = reclamation_digests(&rules, id(50), "Leavers", false, &seats);
        assert_eq!(noticed.len(), 2);
        match &noticed[0].subject {
            AlertSubject::Reclamation {
                acted,
                count,
                samples,
                policy_name,
                ..
            } => {
                assert!(!*acted);
                assert_eq!(*count, 31);
                assert_eq!(samples.len(), DIGEST_SAMPLES);
                assert_eq!(policy_name, "Leavers");
            }
            other => panic!("unexpected {other:?}"),
        }
        match &noticed[1].subject {
            AlertSubject::Reclamation { count, samples, .. } => {
                assert_eq!(*count, 1);
                assert_eq!(samples[0].user_id, id(40));
            }
            other => panic!("unexpected {other:?}"),
        }
        let acted_digests = reclamation_digests(&rules, id(50), "Leavers", true, &seats[..2]);
        assert_eq!(acted_digests.len(), 1);
        assert_eq!(acted_digests[0].rule_id, id(4));
        assert!(reclamation_digests(&rules, id(50), "Leavers", true, &[]).is_empty());
        assert!(watches_reclamation(&rules));
        assert!(!watches_reclamation(&digests_rules()));
    }

    fn digests_rules() -> Vec<AlertRule> {
        vec![AlertRule {
            rule_id: id(1),
            condition: AlertCondition::LicenseErrorEntered(ErrorFilter {
                kinds: vec![LicenseErrorKind::CountViolation],
                group_id: Some(id(7)),
                sku_id: None,
            }),
        }]
    }
}
