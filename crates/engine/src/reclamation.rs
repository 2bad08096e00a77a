//! Reclaiming idle seats, as pure functions: which users a reclamation policy acts on (inactive
//! for N days, disabled account, left the company; per product or tenant-wide, with exempt users
//! and groups), what it would do to each of their seats — remove the direct assignment, remove
//! the user from the static groups that give the product, or mark a seat held through a dynamic
//! group (or a nested group) for review, since those memberships cannot be edited by hand — and
//! the commands that do it and undo it. No clock, no store: the caller passes the time, the
//! activity and the policy, and keeps the notices.

use rustc_hash::FxHashMap;

use crate::command::Command;
use crate::diagnosis::InvolvedUser;
use crate::model::{AssignedLicense, Timestamp, Uuid};
use crate::spend::{IdleReason, UserActivity, DAY_MILLISECONDS};
use crate::{Engine, Source};

/// What a policy looks for, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclamationRule {
    pub reason: IdleReason,
    /// For [`IdleReason::Inactive`]: the last sign-in is at least this many days old.
    pub inactive_days: u32,
    /// `None`: every product.
    pub sku_id: Option<Uuid>,
    /// Users never acted on.
    pub excluded_users: Vec<Uuid>,
    /// Members (direct) of these groups are never acted on.
    pub excluded_groups: Vec<Uuid>,
}

/// Why a seat held through a group is only marked for review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewReason {
    /// The group's members come from its membership rule.
    DynamicGroup,
    /// The user holds the product through a group nested in this one.
    NestedMembership,
}

impl ReviewReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewReason::DynamicGroup => "dynamicGroup",
            ReviewReason::NestedMembership => "nestedMembership",
        }
    }
}

/// One thing a reclamation does to a user's seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReclaimStep {
    /// Remove the user's direct assignment of the product (kept here to restore it).
    RemoveDirectLicense(AssignedLicense),
    /// Remove the user from a static group that gives the product.
    RemoveFromGroup { group_id: Uuid, display_name: String },
    /// Cannot be done by hand: an administrator reviews it.
    Review {
        group_id: Uuid,
        display_name: String,
        why: ReviewReason,
    },
}

/// A seat a policy acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclamationCandidate {
    pub user: InvolvedUser,
    pub sku_id: Uuid,
    pub sku_part_number: String,
    /// The leave date or last sign-in that decided it (none for a disabled account).
    pub since: Option<Timestamp>,
    pub steps: Vec<ReclaimStep>,
}

impl ReclamationCandidate {
    /// Whether some step only asks for a review.
    pub fn needs_review(&self) -> bool {
        self.steps
            .iter()
            .any(|step| matches!(step, ReclaimStep::Review { .. }))
    }
}

/// Whether the policy's reason applies to a user at `now`, and the date that decided it.
pub fn rule_applies(
    rule: &ReclamationRule,
    account_enabled: bool,
    activity: Option<&UserActivity>,
    now: Timestamp,
) -> Option<Option<Timestamp>> {
    match rule.reason {
        IdleReason::Left => activity
            .and_then(|activity| activity.leave_date)
            .filter(|left| *left <= now)
            .map(Some),
        IdleReason::Disabled => (!account_enabled).then_some(None),
        IdleReason::Inactive => {
            let threshold = now.0 - i64::from(rule.inactive_days) * DAY_MILLISECONDS;
            activity
                .and_then(|activity| activity.last_sign_in)
                .filter(|last| last.0 <= threshold)
                .map(Some)
        }
    }
}

impl Engine {
    /// Every seat the policy acts on at `now`: users it applies to (not exempt) and each product
    /// (of the policy, or any) they hold a seat of, with the steps that free the seat. Users in
    /// the tenant's order, products in the tenant's order.
    pub fn reclamation_candidates(
        &self,
        rule: &ReclamationRule,
        activity: &FxHashMap<Uuid, UserActivity>,
        now: Timestamp,
    ) -> Vec<ReclamationCandidate> {
        let wanted_sku = match rule.sku_id {
            Some(sku_id) => match self.sku_ref(sku_id) {
                Ok(sku) => Some(sku),
                Err(_) => return Vec::new(),
            },
            None => None,
        };
        let excluded_groups: Vec<_> = rule
            .excluded_groups
            .iter()
            .filter_map(|group_id| self.group_ref(*group_id).ok())
            .collect();
        let mut candidates = Vec::new();
        for (user_ref, user) in self.directory.users() {
            if rule.excluded_users.contains(&user.id)
                || user.groups().any(|group| excluded_groups.contains(&group))
            {
                continue;
            }
            let Some(since) = rule_applies(rule, user.account_enabled, activity.get(&user.id), now) else {
                continue;
            };
            let mut skus = Vec::new();
            for state in self.states.of(user_ref) {
                if state.holds_unit()
                    && wanted_sku.map_or(true, |sku| sku == state.sku)
                    && !skus.contains(&state.sku)
                {
                    skus.push(state.sku);
                }
            }
            skus.sort_unstable_by_key(|sku| sku.0);
            for sku in skus {
                let mut steps = Vec::new();
                if let Some(direct) = user.direct.iter().find(|direct| direct.sku == sku) {
                    steps.push(ReclaimStep::RemoveDirectLicense(AssignedLicense {
                        sku_id: self.sku(sku).id,
                        disabled_plans: self.plan_ids(self.plan_sets.get(direct.disabled_plans)),
                    }));
                }
                let mut groups = Vec::new();
                for state in self.states.of(user_ref) {
                    if state.sku != sku {
                        continue;
                    }
                    if let Source::Group(group) = state.source {
                        if !groups.contains(&group) {
                            groups.push(group);
                        }
                    }
                }
                groups.sort_unstable_by_key(|group| self.group(*group).id);
                for group in groups {
                    let record = self.group(group);
                    let (group_id, display_name) = (record.id, record.display_name.clone());
                    let direct_member = user.groups().any(|member_of| member_of == group);
                    steps.push(if self.dynamic.get(group).is_some() {
                        ReclaimStep::Review {
                            group_id,
                            display_name,
                            why: ReviewReason::DynamicGroup,
                        }
                    } else if !direct_member {
                        ReclaimStep::Review {
                            group_id,
                            display_name,
                            why: ReviewReason::NestedMembership,
                        }
                    } else {
                        ReclaimStep::RemoveFromGroup {
                            group_id,
                            display_name,
                        }
                    });
                }
                candidates.push(ReclamationCandidate {
                    user: InvolvedUser {
                        user_id: user.id,
                        user_principal_name: user.user_principal_name.to_string(),
                    },
                    sku_id: self.sku(sku).id,
                    sku_part_number: self.sku(sku).part_number.clone(),
                    since,
                    steps,
                });
            }
        }
        candidates
    }
}

/// The command that carries out one step (`None` for a review).
pub fn reclaim_command(user_id: Uuid, step: &ReclaimStep) -> Option<Command> {
    match step {
        ReclaimStep::RemoveDirectLicense(license) => Some(Command::AssignUserLicenses {
            user_id,
            add_licenses: Vec::new(),
            remove_licenses: vec![license.sku_id],
        }),
        ReclaimStep::RemoveFromGroup { group_id, .. } => Some(Command::RemoveGroupMember {
            group_id: *group_id,
            user_id,
        }),
        ReclaimStep::Review { .. } => None,
    }
}

/// The command that undoes one carried-out step (`None` for a review).
pub fn restore_command(user_id: Uuid, step: &ReclaimStep) -> Option<Command> {
    match step {
        ReclaimStep::RemoveDirectLicense(license) => Some(Command::AssignUserLicenses {
            user_id,
            add_licenses: vec![license.clone()],
            remove_licenses: Vec::new(),
        }),
        ReclaimStep::RemoveFromGroup { group_id, .. } => Some(Command::AddGroupMember {
            group_id: *group_id,
            user_id,
        }),
        ReclaimStep::Review { .. } => None,
    }
}
