//! Background evaluation of one user: the group-based licensing rules of
//! `design/semantics.md`, applied to the user's direct and group assignments in a stable order,
//! all of a group's products or none, never taking away what already works.
//!
//! One pass of the evaluation of a user, [`evaluate`], is a function of what it reads (the
//! directory, the tenant's catalog, the states, the settings) that returns the user's new
//! states; it writes nothing but the interners of plan sets and causes. The engine runs passes
//! to a fixpoint (`Engine::evaluate_user`), committing each, so evaluating a user twice in a row
//! never changes anything the second time: that is what makes incremental processing equal to
//! re-evaluating everyone.

use crate::directory::Directory;
use crate::handles::{CauseId, GroupRef, SkuRef, Source, UserRef};
use crate::model::{AssignmentStatus, LicenseErrorKind, TenantSettings, Timestamp, Uuid};
use crate::plan_set::{PlanRef, PlanSet, PlanSetId, PlanSetInterner};
use crate::states::{sort_records, Cause, CauseInterner, StateRecord, States};
use crate::tenant_catalog::TenantCatalog;

/// What the evaluation of a user reads.
#[derive(Clone, Copy)]
pub(crate) struct Reads<'a> {
    pub(crate) directory: &'a Directory,
    pub(crate) catalog: &'a TenantCatalog,
    pub(crate) states: &'a States,
    pub(crate) settings: &'a TenantSettings,
}

/// The interners a pass adds the plan sets and causes of its new states to.
pub(crate) struct Interners<'a> {
    pub(crate) plan_sets: &'a mut PlanSetInterner,
    pub(crate) causes: &'a mut CauseInterner,
}

/// The result of one pass over a user.
pub(crate) struct Evaluation {
    /// The user's new states, in canonical order.
    pub(crate) records: Vec<StateRecord>,
    /// Whether any unit failed (a later pass may then let it succeed).
    pub(crate) any_failure: bool,
}

/// One pass of the rules over a user, against its current states in `reads.states`: the new
/// states, each stamped with `sequence` and `at` unless its outcome is unchanged.
pub(crate) fn evaluate(
    user: UserRef,
    reads: Reads<'_>,
    interners: Interners<'_>,
    scratch: &mut Scratch,
    at: Timestamp,
    sequence: u64,
) -> Evaluation {
    let mut pass = Pass {
        directory: reads.directory,
        catalog: reads.catalog,
        states: reads.states,
        settings: reads.settings,
        plan_sets: interners.plan_sets,
        causes: interners.causes,
    };
    let (records, any_failure) = pass.compute_user_states(user, at, sequence, scratch);
    Evaluation { records, any_failure }
}

/// A pass: the reads, and the interners it writes.
struct Pass<'a> {
    directory: &'a Directory,
    catalog: &'a TenantCatalog,
    states: &'a States,
    settings: &'a TenantSettings,
    plan_sets: &'a mut PlanSetInterner,
    causes: &'a mut CauseInterner,
}

/// One (source, product) pair of the user: an intended assignment, or a former one whose
/// removal is pending.
#[derive(Clone, Copy, Debug)]
struct Slot {
    source: Source,
    sku: SkuRef,
    /// Index of the unit it belongs to; `None` for a former assignment being removed.
    unit: Option<usize>,
    disabled_plans: PlanSetId,
    /// Plans the assignment wants (enabled plans of the product).
    wanted: PlanSet,
    /// Plans granted by the previous state, if any.
    previous: Option<PlanSet>,
    previous_index: Option<usize>,
    /// Whether the product's subscription grants plans at all.
    grants: bool,
}

/// The units of evaluation, each all-or-nothing: one direct product, or one group.
#[derive(Clone, Copy, Debug)]
struct Unit {
    first_slot: usize,
    slot_count: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Pass,
    Disabled,
    /// Removal blocked: the slot stays as it was.
    Pinned(Cause2),
    Failed(Cause2),
    Sibling(SkuRef, LicenseErrorKind),
}

/// A cause by interned id (kept in the outcome to avoid cloning causes around).
type Cause2 = CauseId;

/// Reusable buffers, so that evaluating a user allocates nothing in the common case.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scratch {
    slots: Vec<Slot>,
    units: Vec<Unit>,
    group_order: Vec<(u64, Uuid, GroupRef)>,
    decided: Vec<Option<PlanSet>>,
    outcomes: Vec<Outcome>,
    pinned: Vec<Option<Cause2>>,
    suffix: Vec<PlanSet>,
    claimed: Vec<SkuRef>,
    held_before: Vec<SkuRef>,
    effective_groups: Vec<(GroupRef, u64)>,
}

impl Pass<'_> {
    /// One pass of the rules over a user. Returns the new records and whether any unit failed.
    fn compute_user_states(
        &mut self,
        user: UserRef,
        at: Timestamp,
        sequence: u64,
        scratch: &mut Scratch,
    ) -> (Vec<StateRecord>, bool) {
        self.collect_slots(user, scratch);
        let slot_count = scratch.slots.len();
        scratch.pinned.clear();
        scratch.pinned.resize(slot_count, None);
        let states = self.states.of(user);
        scratch.held_before.clear();
        scratch
            .held_before
            .extend(states.iter().filter(|s| s.holds_unit()).map(|s| s.sku));

        // Decide the units; when a removal turns out to take away the last prerequisite of a
        // plan that stays, pin that removal and decide again.
        loop {
            self.decide_units(user, scratch);
            if !self.pin_blocked_removals(scratch) {
                break;
            }
        }

        let mut any_failure = false;
        let mut records = Vec::with_capacity(slot_count);
        for index in 0..slot_count {
            let slot = scratch.slots[index];
            let outcome = scratch.outcomes[index];
            let (status, cause, granted) = match (slot.unit, outcome) {
                (None, Outcome::Pinned(cause)) => {
                    (AssignmentStatus::ActiveWithError, Some(cause), slot.previous)
                }
                (None, _) => continue,
                (Some(_), Outcome::Disabled) => (AssignmentStatus::Disabled, None, None),
                (Some(_), Outcome::Pass) => (AssignmentStatus::Active, None, Some(slot.wanted)),
                (Some(_), Outcome::Pinned(cause)) => {
                    (AssignmentStatus::ActiveWithError, Some(cause), slot.previous)
                }
                (Some(_), Outcome::Failed(cause)) => {
                    any_failure = true;
                    let status = if slot.previous.is_some() {
                        AssignmentStatus::ActiveWithError
                    } else {
                        AssignmentStatus::Error
                    };
                    (status, Some(cause), slot.previous)
                }
                (Some(_), Outcome::Sibling(sku, kind)) => {
                    any_failure = true;
                    let cause = self.causes.intern(Cause::BlockedBySibling { sku, kind });
                    let status = if slot.previous.is_some() {
                        AssignmentStatus::ActiveWithError
                    } else {
                        AssignmentStatus::Error
                    };
                    (status, Some(cause), slot.previous)
                }
            };
            let granted_plans = granted.map(|plans| self.plan_sets.intern(plans));
            let mut new_record = StateRecord {
                sku: slot.sku,
                source: slot.source,
                status,
                cause,
                disabled_plans: slot.disabled_plans,
                granted_plans,
                since: sequence,
                last_updated: at,
            };
            if let Some(previous_index) = slot.previous_index {
                let previous = self.states.of(user)[previous_index];
                if previous.same_outcome(&new_record) {
                    new_record = previous;
                } else if previous.status == new_record.status && previous.cause == new_record.cause {
                    new_record.since = previous.since;
                }
            }
            records.push(new_record);
        }
        sort_records(&mut records);
        (records, any_failure)
    }

    /// Builds the user's slots and units: direct products first (oldest first), then groups in
    /// the order their pairing with the user came into existence (then group id), then former
    /// assignments whose removal is pending.
    fn collect_slots(&self, user: UserRef, scratch: &mut Scratch) {
        let record = self.directory.user(user);
        let states = self.states.of(user);
        scratch.slots.clear();
        scratch.units.clear();
        let previous_of = |source: Source, sku| {
            states
                .iter()
                .position(|state| state.source == source && state.sku == sku)
        };
        let push_slot =
            |scratch: &mut Scratch, source: Source, sku, disabled_plans: PlanSetId, unit: Option<usize>| {
                let previous_index = previous_of(source, sku);
                let previous = previous_index
                    .and_then(|index| states[index].granted_plans)
                    .map(|id| *self.plan_sets.get(id));
                scratch.slots.push(Slot {
                    source,
                    sku,
                    unit,
                    disabled_plans,
                    wanted: self
                        .catalog
                        .sku(sku)
                        .plans
                        .difference(self.plan_sets.get(disabled_plans)),
                    previous,
                    previous_index,
                    grants: self.catalog.sku(sku).capability_status.grants_plans(),
                });
            };
        for direct in &record.direct {
            let unit = scratch.units.len();
            scratch.units.push(Unit {
                first_slot: scratch.slots.len(),
                slot_count: 1,
            });
            push_slot(
                scratch,
                Source::Direct,
                direct.sku,
                direct.disabled_plans,
                Some(unit),
            );
        }
        scratch.group_order.clear();
        if self.settings.transitive_licensing && !self.directory.nesting().is_empty() {
            // The groups the user is in through nesting too, each once (one state, one seat).
            let mut effective = std::mem::take(&mut scratch.effective_groups);
            self.directory.nesting().effective_groups(
                record.memberships.iter().map(|m| (m.group, m.since)),
                &mut effective,
            );
            for (group_ref, since) in &effective {
                let group = self.directory.group(*group_ref);
                if !group.licenses.is_empty() {
                    let paired_since = (*since).max(group.licensed_since);
                    scratch.group_order.push((paired_since, group.id, *group_ref));
                }
            }
            scratch.effective_groups = effective;
        } else {
            for membership in &record.memberships {
                let group = self.directory.group(membership.group);
                if group.licenses.is_empty() {
                    continue;
                }
                let paired_since = membership.since.max(group.licensed_since);
                scratch
                    .group_order
                    .push((paired_since, group.id, membership.group));
            }
        }
        scratch.group_order.sort_unstable();
        for order_index in 0..scratch.group_order.len() {
            let group_ref = scratch.group_order[order_index].2;
            let group = self.directory.group(group_ref);
            let unit = scratch.units.len();
            scratch.units.push(Unit {
                first_slot: scratch.slots.len(),
                slot_count: group.licenses.len(),
            });
            for license in &group.licenses {
                push_slot(
                    scratch,
                    Source::Group(group_ref),
                    license.sku,
                    license.disabled_plans,
                    Some(unit),
                );
            }
        }
        for (index, state) in states.iter().enumerate() {
            let intended = scratch
                .slots
                .iter()
                .any(|slot| slot.source == state.source && slot.sku == state.sku);
            if !intended {
                scratch.slots.push(Slot {
                    source: state.source,
                    sku: state.sku,
                    unit: None,
                    disabled_plans: state.disabled_plans,
                    wanted: PlanSet::EMPTY,
                    previous: state.granted_plans.map(|id| *self.plan_sets.get(id)),
                    previous_index: Some(index),
                    grants: true,
                });
            }
        }
    }

    /// What a slot is assumed to grant before its unit is decided: what it granted before
    /// (a unit that is not applied keeps what it had), or nothing for a pending removal.
    fn fallback(slot: &Slot, pinned: Option<Cause2>) -> Option<PlanSet> {
        match slot.unit {
            // A suspended subscription grants nothing, whatever it granted before.
            Some(_) if !slot.grants => None,
            Some(_) => slot.previous,
            None if pinned.is_some() => slot.previous,
            None => None,
        }
    }

    /// Decides every unit in order against the plans of the others.
    fn decide_units(&mut self, user: UserRef, scratch: &mut Scratch) {
        let slot_count = scratch.slots.len();
        scratch.decided.clear();
        scratch.outcomes.clear();
        scratch.outcomes.resize(slot_count, Outcome::Pass);
        for index in 0..slot_count {
            scratch
                .decided
                .push(Self::fallback(&scratch.slots[index], scratch.pinned[index]));
        }
        // Plans of former assignments whose removal is blocked stay in every context.
        let mut lingering = PlanSet::EMPTY;
        for index in 0..slot_count {
            if scratch.slots[index].unit.is_none() {
                match scratch.pinned[index] {
                    Some(cause) => scratch.outcomes[index] = Outcome::Pinned(cause),
                    None => scratch.outcomes[index] = Outcome::Pass,
                }
                if let Some(plans) = scratch.decided[index] {
                    lingering.union_with(&plans);
                }
            }
        }
        // suffix[k] = plans the units k.. grant if nothing changes for them.
        let unit_count = scratch.units.len();
        scratch.suffix.clear();
        scratch.suffix.resize(unit_count + 1, PlanSet::EMPTY);
        for unit_index in (0..unit_count).rev() {
            let unit = scratch.units[unit_index];
            let mut plans = scratch.suffix[unit_index + 1];
            for index in unit.first_slot..unit.first_slot + unit.slot_count {
                if let Some(previous) = scratch.decided[index] {
                    plans.union_with(&previous);
                }
            }
            scratch.suffix[unit_index] = plans;
        }
        scratch.claimed.clear();
        let mut earlier = PlanSet::EMPTY;
        for unit_index in 0..unit_count {
            let unit = scratch.units[unit_index];
            let slots = unit.first_slot..unit.first_slot + unit.slot_count;
            let context = earlier.union(&scratch.suffix[unit_index + 1]).union(&lingering);
            let mut unit_plans = PlanSet::EMPTY;
            for index in slots.clone() {
                let slot = &scratch.slots[index];
                if !slot.grants {
                    continue;
                }
                match scratch.pinned[index] {
                    Some(_) => {
                        if let Some(previous) = slot.previous {
                            unit_plans.union_with(&previous);
                        }
                    }
                    None => unit_plans.union_with(&slot.wanted),
                }
            }
            let mut running = PlanSet::EMPTY;
            let mut first_failure: Option<(SkuRef, LicenseErrorKind)> = None;
            let mut claims = 0usize;
            for index in slots.clone() {
                let slot = scratch.slots[index];
                if !slot.grants {
                    scratch.outcomes[index] = Outcome::Disabled;
                    continue;
                }
                if let Some(cause) = scratch.pinned[index] {
                    scratch.outcomes[index] = Outcome::Pinned(cause);
                    if let Some(previous) = slot.previous {
                        running.union_with(&previous);
                    }
                    continue;
                }
                match self.check_slot(user, index, &context, &running, &unit_plans, scratch, unit_index) {
                    Ok(claimed) => {
                        scratch.outcomes[index] = Outcome::Pass;
                        if claimed {
                            scratch.claimed.push(slot.sku);
                            claims += 1;
                        }
                    }
                    Err(cause) => {
                        let kind = cause.kind();
                        let id = self.causes.intern(cause);
                        scratch.outcomes[index] = Outcome::Failed(id);
                        first_failure.get_or_insert((slot.sku, kind));
                    }
                }
                running.union_with(&slot.wanted);
            }
            match first_failure {
                None => {
                    for index in slots {
                        scratch.decided[index] = match scratch.outcomes[index] {
                            Outcome::Pass => Some(scratch.slots[index].wanted),
                            Outcome::Disabled => None,
                            _ => scratch.slots[index].previous,
                        };
                    }
                }
                Some((sku, kind)) => {
                    // All or nothing: the unit keeps what it granted before; the claims of its
                    // passing products are given back.
                    let keep = scratch.claimed.len() - claims;
                    scratch.claimed.truncate(keep);
                    for index in slots {
                        if scratch.outcomes[index] == Outcome::Pass {
                            scratch.outcomes[index] = Outcome::Sibling(sku, kind);
                        }
                        scratch.decided[index] = match scratch.outcomes[index] {
                            Outcome::Disabled => None,
                            _ => scratch.slots[index].previous,
                        };
                    }
                }
            }
            for index in unit.first_slot..unit.first_slot + unit.slot_count {
                if let Some(plans) = scratch.decided[index] {
                    earlier.union_with(&plans);
                }
            }
        }
    }

    /// The four background checks of semantics.md (plus prerequisites) for one product of a
    /// unit. Returns whether the product claims a new unit of its SKU.
    #[allow(clippy::too_many_arguments)]
    fn check_slot(
        &self,
        user: UserRef,
        slot_index: usize,
        context: &PlanSet,
        running: &PlanSet,
        unit_plans: &PlanSet,
        scratch: &Scratch,
        unit_index: usize,
    ) -> Result<bool, Cause> {
        let slot = &scratch.slots[slot_index];
        // Every plan the assignment wants is checked, also those it already grants: a unit that
        // worked and now breaks a rule (a new exclusion, a new location, a shared address) keeps
        // what it grants but is flagged ActiveWithError, so the administrator sees it.
        let added = slot.wanted;
        if !added.is_empty() {
            // 1. Uniqueness of proxy addresses for mailbox plans.
            if added.intersects(self.catalog.mailbox_plans()) {
                if let Some((address, _)) = self.directory.shared_proxy_address(user) {
                    return Err(Cause::Uniqueness {
                        proxy_address: address.into(),
                    });
                }
            }
            // 2. Usage location: the user's, else the tenant's default.
            let record = self.directory.user(user);
            let own_location = record.usage_location;
            let location = own_location.or(self.settings.default_usage_location);
            match location {
                None => {
                    return Err(Cause::UsageLocation {
                        plan: None,
                        location: None,
                        inherited_from_tenant: false,
                    })
                }
                Some(location) => {
                    if let Some(prohibited) = self.catalog.prohibited_in(location) {
                        if let Some(plan) = added.intersection(prohibited).iter().next() {
                            return Err(Cause::UsageLocation {
                                plan: Some(plan),
                                location: Some(location),
                                inherited_from_tenant: own_location.is_none(),
                            });
                        }
                    }
                }
            }
            // 3. Mutually exclusive plans: against everything else the user has or is getting.
            let others = context.union(running).union(&slot.wanted);
            for plan in added.intersection(self.catalog.plans_with_exclusions()).iter() {
                if let Some(conflicting_plan) = self
                    .catalog
                    .plan(plan)
                    .excludes
                    .intersection(&others)
                    .iter()
                    .next()
                {
                    let (conflicting_sku, conflicting_source) =
                        self.holder_of(conflicting_plan, slot_index, scratch, unit_index);
                    return Err(Cause::MutuallyExclusive {
                        plan,
                        conflicting_plan,
                        conflicting_sku,
                        conflicting_source,
                    });
                }
            }
            // Prerequisites: within the unit or from what the user keeps.
            let available = context.union(unit_plans);
            for plan in added.intersection(self.catalog.plans_with_prerequisites()).iter() {
                if !self.catalog.plan(plan).requires_any_of.intersects(&available) {
                    return Err(Cause::MissingPrerequisite { plan });
                }
            }
        }
        // 4. Units: already consumed by this user, or a free one.
        let holds = scratch.held_before.contains(&slot.sku) || scratch.claimed.contains(&slot.sku);
        if holds {
            return Ok(false);
        }
        if self.states.consumed_units(slot.sku) >= self.catalog.sku(slot.sku).prepaid_units {
            return Err(Cause::Count { sku: slot.sku });
        }
        Ok(true)
    }

    /// Which assignment enables `plan` in the context of the slot at `slot_index`, for error
    /// details: another unit first, else an earlier product of the same unit, else the slot itself.
    fn holder_of(
        &self,
        plan: PlanRef,
        slot_index: usize,
        scratch: &Scratch,
        unit_index: usize,
    ) -> (SkuRef, Source) {
        let outside = scratch.slots.iter().enumerate().find(|(index, other)| {
            other.unit != Some(unit_index)
                && scratch.decided[*index].is_some_and(|plans| plans.contains(plan))
        });
        let inside = scratch.slots.iter().enumerate().find(|(index, other)| {
            other.unit == Some(unit_index) && *index < slot_index && other.wanted.contains(plan)
        });
        let slot = &scratch.slots[slot_index];
        match outside.or(inside) {
            Some((_, other)) => (other.sku, other.source),
            None => (slot.sku, slot.source),
        }
    }

    /// Pins removals that would take away the last prerequisite of a plan that stays.
    /// Returns whether anything new was pinned.
    fn pin_blocked_removals(&mut self, scratch: &mut Scratch) -> bool {
        let mut enabled = PlanSet::EMPTY;
        for plans in scratch.decided.iter().flatten() {
            enabled.union_with(plans);
        }
        let mut pinned_any = false;
        for plan in enabled
            .intersection(self.catalog.plans_with_prerequisites())
            .iter()
        {
            let requires = self.catalog.plan(plan).requires_any_of;
            if requires.intersects(&enabled) {
                continue;
            }
            // Which slot keeps the dependent plan, for the error detail.
            let dependent = scratch
                .slots
                .iter()
                .zip(scratch.decided.iter())
                .find(|(_, decided)| decided.is_some_and(|plans| plans.contains(plan)))
                .map(|(slot, _)| (slot.sku, slot.source));
            for index in 0..scratch.slots.len() {
                if scratch.pinned[index].is_some() {
                    continue;
                }
                let slot = scratch.slots[index];
                // A suspension is not a removal an administrator can hold back.
                if !slot.grants {
                    continue;
                }
                let Some(previous) = slot.previous else { continue };
                let kept = scratch.decided[index].unwrap_or(PlanSet::EMPTY);
                if previous.difference(&kept).intersects(&requires) {
                    let (dependent_sku, dependent_source) = match dependent {
                        Some((sku, source)) => (sku, Some(source)),
                        None => (slot.sku, None),
                    };
                    let cause = self.causes.intern(Cause::RemovalBlocked {
                        dependent_plan: plan,
                        dependent_sku,
                        dependent_source,
                    });
                    scratch.pinned[index] = Some(cause);
                    pinned_any = true;
                }
            }
        }
        pinned_any
    }
}
