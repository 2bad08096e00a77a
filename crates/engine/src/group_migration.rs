//! Moving direct assignments to a group: for a group and a product it assigns, which users'
//! direct licenses of the product the group fully covers (it enables the same plans or more and
//! its assignment is in effect for them), which would lose plans if the direct license went, and
//! which users are not members. The commands that remove the covered ones, and the check that
//! after a removal a user still has every plan they had.

use crate::command::Command;
use crate::diagnosis::InvolvedUser;
use crate::error::{CommandError, PlanName};
use crate::model::Uuid;
use crate::plan_set::PlanSet;
use crate::{Engine, Source};

/// Why a direct license is not covered by the group although the user is a member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotCovered {
    /// The group disables plans the direct license enables.
    FewerPlans(Vec<PlanName>),
    /// The group's assignment is not in effect for the user (in error, waiting for a seat...).
    GroupAssignmentNotInEffect,
}

/// A member whose direct license would lose something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LosingUser {
    pub user: InvolvedUser,
    pub reason: NotCovered,
}

/// The coverage of a product's direct licenses by a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CoverageReport {
    /// Members whose direct license the group fully covers: removing it loses nothing.
    pub covered: Vec<InvolvedUser>,
    /// Members who would lose plans.
    pub losing: Vec<LosingUser>,
    /// Users with a direct license of the product who are not members.
    pub not_in_group: Vec<InvolvedUser>,
}

impl CoverageReport {
    /// The commands that remove the covered users' direct licenses of `sku_id`, one per user.
    pub fn removal_commands(&self, sku_id: Uuid) -> Vec<Command> {
        self.covered
            .iter()
            .map(|user| Command::AssignUserLicenses {
                user_id: user.user_id,
                add_licenses: Vec::new(),
                remove_licenses: vec![sku_id],
            })
            .collect()
    }
}

/// Why a coverage cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoverageError {
    #[error(transparent)]
    Unknown(#[from] CommandError),
    #[error("the group {group_id} does not assign the product {sku_id}")]
    GroupDoesNotAssign { group_id: Uuid, sku_id: Uuid },
}

impl Engine {
    /// Which users' direct licenses of `sku_id` the group `group_id` covers (see the module).
    pub fn direct_to_group_coverage(
        &self,
        group_id: Uuid,
        sku_id: Uuid,
    ) -> Result<CoverageReport, CoverageError> {
        let group_ref = self.group_ref(group_id)?;
        let sku = self.sku_ref(sku_id)?;
        let group = self.group(group_ref);
        let license = group
            .licenses
            .iter()
            .find(|license| license.sku == sku)
            .ok_or(CoverageError::GroupDoesNotAssign { group_id, sku_id })?;
        let group_plans = self.enabled_plans(sku, license.disabled_plans);
        let mut report = CoverageReport::default();
        for (user_ref, user) in self.directory.users() {
            let Some(direct) = user.direct.iter().find(|direct| direct.sku == sku) else {
                continue;
            };
            let involved = InvolvedUser {
                user_id: user.id,
                user_principal_name: user.user_principal_name.to_string(),
            };
            if !group.members.contains(&user_ref) {
                report.not_in_group.push(involved);
                continue;
            }
            let direct_plans = self.enabled_plans(sku, direct.disabled_plans);
            let missing = direct_plans.difference(&group_plans);
            if !missing.is_empty() {
                report.losing.push(LosingUser {
                    user: involved,
                    reason: NotCovered::FewerPlans(self.plan_names(&missing)),
                });
                continue;
            }
            let in_effect = self.states.of(user_ref).iter().any(|state| {
                state.sku == sku
                    && state.source == Source::Group(group_ref)
                    && state.holds_unit()
                    && state.cause.is_none()
            });
            if in_effect {
                report.covered.push(involved);
            } else {
                report.losing.push(LosingUser {
                    user: involved,
                    reason: NotCovered::GroupAssignmentNotInEffect,
                });
            }
        }
        Ok(report)
    }

    /// The plans a user has in effect, from every assignment.
    pub fn user_plans_in_effect(&self, user_id: Uuid) -> Result<PlanSet, CommandError> {
        let user = self.user_ref(user_id)?;
        Ok(self
            .effective_plans_of(user)
            .values()
            .fold(PlanSet::EMPTY, |plans, more| plans.union(more)))
    }

    /// The plans of `before` a user no longer has in effect, by name.
    pub fn plans_lost(&self, user_id: Uuid, before: &PlanSet) -> Result<Vec<PlanName>, CommandError> {
        let now = self.user_plans_in_effect(user_id)?;
        Ok(self.plan_names(&before.difference(&now)))
    }
}
