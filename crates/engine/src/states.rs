//! License assignment states: every user's [`StateRecord`]s and the indexes derived from them
//! (consumed units and waiting lists per product, error lists per group, the tenant's users in
//! error), kept in step by [`States::replace`], the only way states change; and
//! [`state_delta`], the one place old and new states become [`StateChange`]s.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::cow::ChunkedVec;
use crate::handles::{CauseId, GroupRef, SkuRef, Source, UserRef};
use crate::model::{AssignmentStatus, CountryCode, LicenseErrorKind, Timestamp, Uuid};
use crate::plan_set::{PlanRef, PlanSetId};

/// Why an assignment failed, in engine-local handles. Interned: the members of one group that
/// fail for one reason share one cause.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// No free unit of the product.
    Count { sku: SkuRef },
    /// `plan` of this assignment conflicts with `conflicting_plan`, enabled by `conflicting_source`
    /// through `conflicting_sku` (possibly this very group or product).
    MutuallyExclusive {
        plan: PlanRef,
        conflicting_plan: PlanRef,
        conflicting_sku: SkuRef,
        conflicting_source: Source,
    },
    /// `plan` of this assignment has none of its prerequisites enabled.
    MissingPrerequisite { plan: PlanRef },
    /// This assignment cannot be removed or reduced: it holds the last prerequisite of
    /// `dependent_plan`, enabled through `dependent_sku` by `dependent_source`.
    RemovalBlocked {
        dependent_plan: PlanRef,
        dependent_sku: SkuRef,
        dependent_source: Option<Source>,
    },
    /// `plan` is unavailable in `location`; `plan` is `None` when there is no location at all.
    UsageLocation {
        plan: Option<PlanRef>,
        location: Option<CountryCode>,
        inherited_from_tenant: bool,
    },
    /// A mailbox plan would be enabled while `proxy_address` (normalized) is shared.
    Uniqueness { proxy_address: Box<str> },
    /// Another product of the same group failed with `kind`.
    BlockedBySibling { sku: SkuRef, kind: LicenseErrorKind },
}

impl Cause {
    /// Whether the cause names `group` as the source of another assignment.
    pub(crate) fn names_group(&self, group: GroupRef) -> bool {
        match self {
            Cause::MutuallyExclusive {
                conflicting_source, ..
            } => *conflicting_source == Source::Group(group),
            Cause::RemovalBlocked { dependent_source, .. } => *dependent_source == Some(Source::Group(group)),
            Cause::Count { .. }
            | Cause::MissingPrerequisite { .. }
            | Cause::UsageLocation { .. }
            | Cause::Uniqueness { .. }
            | Cause::BlockedBySibling { .. } => false,
        }
    }

    /// The cause with `group` no longer named, for an assignment from `own_source`: what the
    /// evaluation records when it cannot tell the holder (a conflict held by the assignment
    /// itself, a dependent of unknown source). `None` when the cause does not name the group.
    pub(crate) fn without_group(&self, group: GroupRef, own_source: Source) -> Option<Cause> {
        if !self.names_group(group) {
            return None;
        }
        let mut cause = self.clone();
        match &mut cause {
            Cause::MutuallyExclusive {
                conflicting_source, ..
            } => *conflicting_source = own_source,
            Cause::RemovalBlocked { dependent_source, .. } => *dependent_source = None,
            _ => {}
        }
        Some(cause)
    }

    pub fn kind(&self) -> LicenseErrorKind {
        match self {
            Cause::Count { .. } => LicenseErrorKind::CountViolation,
            Cause::MutuallyExclusive { .. } => LicenseErrorKind::MutuallyExclusiveViolation,
            Cause::MissingPrerequisite { .. } | Cause::RemovalBlocked { .. } => {
                LicenseErrorKind::DependencyViolation
            }
            Cause::UsageLocation { .. } => LicenseErrorKind::ProhibitedInUsageLocationViolation,
            Cause::Uniqueness { .. } => LicenseErrorKind::UniquenessViolation,
            Cause::BlockedBySibling { kind, .. } => *kind,
        }
    }
}

/// Every distinct [`Cause`] once, by id.
#[derive(Clone, Debug, Default)]
pub(crate) struct CauseInterner {
    causes: Vec<Cause>,
    ids: FxHashMap<Cause, CauseId>,
}

impl CauseInterner {
    pub(crate) fn intern(&mut self, cause: Cause) -> CauseId {
        if let Some(id) = self.ids.get(&cause) {
            return *id;
        }
        let id = CauseId(self.causes.len() as u32);
        self.causes.push(cause.clone());
        self.ids.insert(cause, id);
        id
    }

    pub(crate) fn get(&self, id: CauseId) -> &Cause {
        &self.causes[id.0 as usize]
    }
}

/// One license assignment state of a user (Graph `licenseAssignmentState`), in compact form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateRecord {
    pub sku: SkuRef,
    pub source: Source,
    pub status: AssignmentStatus,
    /// The error, `None` when the state is `Active` or `Disabled`.
    pub cause: Option<CauseId>,
    /// The plans the assignment switches off (its intent).
    pub disabled_plans: PlanSetId,
    /// The plans actually in effect through this assignment; `None` when it grants nothing.
    pub granted_plans: Option<PlanSetId>,
    /// Processing sequence number at which the current status and error began; orders users
    /// waiting for units first come, first served.
    pub since: u64,
    pub last_updated: Timestamp,
}

impl StateRecord {
    /// Equal in everything but time stamps.
    pub(crate) fn same_outcome(&self, other: &StateRecord) -> bool {
        self.sku == other.sku
            && self.source == other.source
            && self.status == other.status
            && self.cause == other.cause
            && self.disabled_plans == other.disabled_plans
            && self.granted_plans == other.granted_plans
    }

    pub(crate) fn holds_unit(&self) -> bool {
        self.status.is_in_effect()
    }
}

/// A change to one license assignment state, so a store can persist exactly the delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    pub user: UserRef,
    pub user_id: Uuid,
    pub sku: SkuRef,
    pub source: Source,
    pub before: Option<StateRecord>,
    /// `None` when the state is gone (removed license, deleted user).
    pub after: Option<StateRecord>,
}

/// Orders a user's records canonically: direct first, then groups, then products.
pub(crate) fn sort_records(records: &mut [StateRecord]) {
    records.sort_unstable_by_key(|record| (record.source, record.sku));
}

/// Appends to `changes` the delta from a user's `old` states to its `new` ones, keyed by
/// (source, product): changed and removed states in the old order, then added ones.
pub(crate) fn state_delta(
    user: UserRef,
    user_id: Uuid,
    old: &[StateRecord],
    new: &[StateRecord],
    changes: &mut Vec<StateChange>,
) {
    for before in old {
        let after = new
            .iter()
            .find(|candidate| candidate.source == before.source && candidate.sku == before.sku)
            .copied();
        if after.as_ref() != Some(before) {
            changes.push(StateChange {
                user,
                user_id,
                sku: before.sku,
                source: before.source,
                before: Some(*before),
                after,
            });
        }
    }
    for after in new {
        if !old
            .iter()
            .any(|before| before.source == after.source && before.sku == after.sku)
        {
            changes.push(StateChange {
                user,
                user_id,
                sku: after.sku,
                source: after.source,
                before: None,
                after: Some(*after),
            });
        }
    }
}

/// Every user's license assignment states and what is derived from them. Users, products and
/// groups get their slot when they are created ([`States::add_user`], ...); the states of a
/// user change only through [`States::replace`], which keeps every index in step.
#[derive(Clone, Debug, Default)]
pub(crate) struct States {
    /// Per user, in canonical order ([`sort_records`]); `None` when the user has none.
    /// Copy-on-write ([`crate::cow`]): a copy of the engine (a what-if's) shares the chunks and
    /// each user's records until it replaces them.
    by_user: ChunkedVec<Option<Arc<Vec<StateRecord>>>>,
    /// Per product: users holding a unit (one per product with an assignment in effect).
    consumed_units: Vec<u32>,
    /// Per product: users whose own error on it is `CountViolation`, first come first.
    waiting: Vec<Arc<BTreeSet<(u64, UserRef)>>>,
    /// Per product: users whose assignment of it is blocked by a sibling product of the same
    /// group and who hold no unit of it. Once no unit is free, their own error is
    /// `CountViolation`, so they are evaluated again then.
    blocked_without_unit: Vec<Arc<BTreeSet<UserRef>>>,
    /// Per group: users with an error on an assignment from it (members, or former members
    /// whose removal is blocked). Each shared with the engine's copies until written.
    group_error_users: Vec<Arc<BTreeSet<UserRef>>>,
    /// Per group: the number of state records whose source it is.
    group_state_records: Vec<u64>,
    /// Shared with the engine's copies until written.
    users_with_errors: Arc<BTreeSet<UserRef>>,
}

impl States {
    /// For [`crate::Engine::copy_cost_by_part`].
    pub(crate) fn copy_cost_by_part(&self) -> Vec<(&'static str, std::time::Duration)> {
        use crate::engine::copy_cost;
        vec![
            ("states: per user", copy_cost(&self.by_user)),
            ("states: consumed units", copy_cost(&self.consumed_units)),
            ("states: waiting users", copy_cost(&self.waiting)),
            (
                "states: blocked without unit",
                copy_cost(&self.blocked_without_unit),
            ),
            ("states: group error users", copy_cost(&self.group_error_users)),
            (
                "states: group state records",
                copy_cost(&self.group_state_records),
            ),
            ("states: users with errors", copy_cost(&self.users_with_errors)),
        ]
    }

    pub(crate) fn add_user(&mut self) {
        self.by_user.push(None);
    }

    pub(crate) fn reserve_users(&mut self, users: usize) {
        self.by_user.reserve(users);
    }

    pub(crate) fn add_sku(&mut self) {
        self.consumed_units.push(0);
        self.waiting.push(Arc::default());
        self.blocked_without_unit.push(Arc::default());
    }

    pub(crate) fn add_group(&mut self) {
        self.group_error_users.push(Arc::default());
        self.group_state_records.push(0);
    }

    /// A user's states, in canonical order.
    pub(crate) fn of(&self, user: UserRef) -> &[StateRecord] {
        self.by_user[user.0 as usize]
            .as_deref()
            .map_or(&[], Vec::as_slice)
    }

    /// Whether a user has a state from `source`.
    pub(crate) fn has_from(&self, user: UserRef, source: Source) -> bool {
        self.of(user).iter().any(|state| state.source == source)
    }

    pub(crate) fn consumed_units(&self, sku: SkuRef) -> u32 {
        self.consumed_units[sku.0 as usize]
    }

    /// Users waiting for a unit of the product, first come first.
    pub(crate) fn waiting(&self, sku: SkuRef) -> &BTreeSet<(u64, UserRef)> {
        &self.waiting[sku.0 as usize]
    }

    pub(crate) fn blocked_without_unit(&self, sku: SkuRef) -> &BTreeSet<UserRef> {
        &self.blocked_without_unit[sku.0 as usize]
    }

    pub(crate) fn group_error_users(&self, group: GroupRef) -> &BTreeSet<UserRef> {
        &self.group_error_users[group.0 as usize]
    }

    pub(crate) fn group_state_records(&self, group: GroupRef) -> u64 {
        self.group_state_records[group.0 as usize]
    }

    pub(crate) fn users_with_errors(&self) -> &BTreeSet<UserRef> {
        &self.users_with_errors
    }

    /// Replaces a user's states and returns the old ones, keeping every derived count and index
    /// in step: consumed units, users waiting for units, groups' error lists, the tenant's error
    /// list.
    pub(crate) fn replace(
        &mut self,
        user: UserRef,
        new_states: Vec<StateRecord>,
        causes: &CauseInterner,
    ) -> Vec<StateRecord> {
        let old_states = match self.by_user[user.0 as usize].take() {
            Some(records) => Arc::try_unwrap(records).unwrap_or_else(|shared| shared.as_ref().clone()),
            None => Vec::new(),
        };
        // Consumed units: one per product with at least one assignment in effect.
        let mut held_before: Vec<SkuRef> = old_states
            .iter()
            .filter(|s| s.holds_unit())
            .map(|s| s.sku)
            .collect();
        held_before.sort_unstable();
        held_before.dedup();
        let mut held_after: Vec<SkuRef> = new_states
            .iter()
            .filter(|s| s.holds_unit())
            .map(|s| s.sku)
            .collect();
        held_after.sort_unstable();
        held_after.dedup();
        for sku in &held_before {
            if !held_after.contains(sku) {
                self.consumed_units[sku.0 as usize] -= 1;
            }
        }
        for sku in &held_after {
            if !held_before.contains(sku) {
                self.consumed_units[sku.0 as usize] += 1;
            }
        }
        // Waiting users and per-group bookkeeping.
        for state in &old_states {
            if let Some(cause) = state.cause {
                match causes.get(cause) {
                    Cause::Count { sku } => {
                        Arc::make_mut(&mut self.waiting[sku.0 as usize]).remove(&(state.since, user));
                    }
                    Cause::BlockedBySibling { .. } => {
                        Arc::make_mut(&mut self.blocked_without_unit[state.sku.0 as usize]).remove(&user);
                    }
                    _ => {}
                }
            }
            if let Source::Group(group) = state.source {
                self.group_state_records[group.0 as usize] -= 1;
                let in_error = &mut self.group_error_users[group.0 as usize];
                if in_error.contains(&user) {
                    Arc::make_mut(in_error).remove(&user);
                }
            }
        }
        for state in &new_states {
            if let Some(cause) = state.cause {
                match causes.get(cause) {
                    Cause::Count { sku } => {
                        Arc::make_mut(&mut self.waiting[sku.0 as usize]).insert((state.since, user));
                    }
                    Cause::BlockedBySibling { .. } if !held_after.contains(&state.sku) => {
                        Arc::make_mut(&mut self.blocked_without_unit[state.sku.0 as usize]).insert(user);
                    }
                    _ => {}
                }
            }
            if let Source::Group(group) = state.source {
                self.group_state_records[group.0 as usize] += 1;
                if state.status.is_error() {
                    Arc::make_mut(&mut self.group_error_users[group.0 as usize]).insert(user);
                }
            }
        }
        let in_error = new_states.iter().any(|state| state.status.is_error());
        if in_error != self.users_with_errors.contains(&user) {
            let users_with_errors = Arc::make_mut(&mut self.users_with_errors);
            if in_error {
                users_with_errors.insert(user);
            } else {
                users_with_errors.remove(&user);
            }
        }
        self.by_user[user.0 as usize] = if new_states.is_empty() {
            None
        } else {
            Some(Arc::new(new_states))
        };
        old_states
    }
}
