//! What-if simulation: the effect of a list of commands on every user's license assignment
//! states, computed without changing the tenant.
//!
//! The simulation runs the engine's own rules on a private copy of the tenant: the commands are
//! applied to it and its queue is processed to the end, exactly as the background processing
//! would, so a prediction can never disagree with what really happens. Only the users whose
//! states the changes touch are compared (the state changes of the copy name them), so the
//! report costs the copy plus the evaluation of the affected users. Work already queued in the
//! tenant is settled first, so the report shows the effect of the changes and nothing else.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rustc_hash::FxHashSet;

use crate::command::Command;
use crate::error::CommandError;
use crate::model::{AssignmentSource, LicenseErrorKind, Timestamp, Uuid};
use crate::query::LicenseAssignmentState;
use crate::{Engine, GroupRef, SkuRef, Source, StateRecord, UserRef};

/// How much detail a what-if returns. Counts are always complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WhatIfOptions {
    /// At most this many users are listed with their states (fixed and newly broken users
    /// first); the counts cover every user.
    pub max_listed_users: usize,
}

impl Default for WhatIfOptions {
    fn default() -> Self {
        WhatIfOptions {
            max_listed_users: 100,
        }
    }
}

/// Why a what-if could not be computed. Nothing is ever changed either way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WhatIfError {
    #[error("a what-if needs at least one change")]
    NoChanges,
    #[error("change {index} ({command}) would be refused: {error}")]
    CommandRefused {
        /// Position of the refused command in the list, from 0.
        index: usize,
        command: &'static str,
        error: Box<CommandError>,
    },
}

/// What would happen to one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UserEffect {
    /// In error before, no error after.
    Fixed,
    /// No error before, in error after.
    NewlyBroken,
    /// In error before and after, with an error that was not there before.
    NewError,
    /// In error before and after, without any new error (some may be cleared).
    StillInError,
    /// No error before or after; licenses or plans change.
    Changed,
}

impl UserEffect {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserEffect::Fixed => "Fixed",
            UserEffect::NewlyBroken => "NewlyBroken",
            UserEffect::NewError => "NewError",
            UserEffect::StillInError => "StillInError",
            UserEffect::Changed => "Changed",
        }
    }

    /// Whether the user would end up with an error it did not have before.
    pub fn is_worse(&self) -> bool {
        matches!(self, UserEffect::NewlyBroken | UserEffect::NewError)
    }
}

/// One error of a user: which assignment and which rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssignmentError {
    pub sku_id: Uuid,
    pub source: AssignmentSource,
    pub error: LicenseErrorKind,
}

/// A user whose states would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrediction {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub effect: UserEffect,
    pub errors_before: Vec<AssignmentError>,
    pub errors_after: Vec<AssignmentError>,
    /// Products of which the user would newly consume a unit.
    pub seats_consumed: Vec<Uuid>,
    /// Products of which the user would no longer consume a unit.
    pub seats_freed: Vec<Uuid>,
    pub states_before: Vec<LicenseAssignmentState>,
    /// The predicted states (empty when the changes delete the user).
    pub states_after: Vec<LicenseAssignmentState>,
    /// Whether the changes delete the user.
    pub deleted: bool,
}

/// Seats of one product before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuPrediction {
    pub sku_id: Uuid,
    pub sku_part_number: String,
    pub prepaid_units_before: u32,
    pub prepaid_units_after: u32,
    pub consumed_units_before: u32,
    pub consumed_units_after: u32,
    pub waiting_users_before: usize,
    pub waiting_users_after: usize,
    /// Users who would newly consume a unit.
    pub users_consuming: usize,
    /// Users who would give a unit back.
    pub users_freeing: usize,
    /// Users whose errors on this product would all clear.
    pub fixed_users: usize,
    /// Users who would get an error on this product they did not have.
    pub newly_broken_users: usize,
}

/// A group's members in error before and after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPrediction {
    pub group_id: Uuid,
    pub display_name: String,
    pub users_in_error_before: usize,
    pub users_in_error_after: usize,
    /// Users whose errors on this group's assignments would all clear.
    pub fixed_users: usize,
    /// Users who would get an error on this group's assignments they did not have.
    pub newly_broken_users: usize,
}

/// The predicted effect of a list of changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WhatIfReport {
    pub commands: usize,
    /// Users the simulation evaluated.
    pub evaluated_users: usize,
    /// Users whose states would change, by effect.
    pub changed_users: usize,
    pub fixed_users: usize,
    pub newly_broken_users: usize,
    pub new_error_users: usize,
    pub users_with_errors_before: usize,
    pub users_with_errors_after: usize,
    /// Users whose states would change, fixed and newly broken first (at most
    /// [`WhatIfOptions::max_listed_users`]).
    pub users: Vec<UserPrediction>,
    /// Whether users were left out of [`WhatIfReport::users`].
    pub users_truncated: bool,
    /// Products whose seats or errors would change.
    pub skus: Vec<SkuPrediction>,
    /// Groups whose errors would change.
    pub groups: Vec<GroupPrediction>,
    /// Dynamic groups whose members would change (a new rule, a pause or resume, an attribute
    /// change), with who would join and leave.
    pub memberships: Vec<crate::dynamic_groups::MembershipPrediction>,
}

impl WhatIfReport {
    /// The prediction of one user, if the user is listed.
    pub fn user(&self, user_id: Uuid) -> Option<&UserPrediction> {
        self.users.iter().find(|user| user.user_id == user_id)
    }

    /// Whether any user would end up with an error it did not have.
    pub fn breaks_users(&self) -> bool {
        self.newly_broken_users + self.new_error_users > 0
    }
}

/// The compact outcome of one record, comparable between the tenant and its simulated copy
/// (both share interned handles: the copy only ever adds to them).
fn outcome_key(record: &StateRecord) -> impl PartialEq + '_ {
    (
        record.sku,
        record.source,
        record.status,
        record.cause,
        record.disabled_plans,
        record.granted_plans,
    )
}

fn same_outcomes(before: &[StateRecord], after: &[StateRecord]) -> bool {
    before.len() == after.len()
        && before
            .iter()
            .zip(after.iter())
            .all(|(old, new)| outcome_key(old) == outcome_key(new))
}

fn held_units(records: &[StateRecord]) -> Vec<SkuRef> {
    let mut held: Vec<SkuRef> = records
        .iter()
        .filter(|record| record.holds_unit())
        .map(|record| record.sku)
        .collect();
    held.sort_unstable();
    held.dedup();
    held
}

/// Errors of a set of records as (product, source, kind).
fn compact_errors(engine: &Engine, records: &[StateRecord]) -> Vec<(SkuRef, Source, LicenseErrorKind)> {
    records
        .iter()
        .filter(|record| record.status.is_error())
        .filter_map(|record| {
            record
                .cause
                .map(|cause| (record.sku, record.source, engine.causes.get(cause).kind()))
        })
        .collect()
}

#[derive(Default)]
struct Tally {
    users_consuming: usize,
    users_freeing: usize,
    fixed_users: usize,
    newly_broken_users: usize,
}

impl Engine {
    /// Predicts the effect of `commands`, applied in order at `at` and processed to the end,
    /// without changing this engine. Refused if any command would be refused (nothing changes).
    pub fn what_if(
        &self,
        commands: &[Command],
        at: Timestamp,
        options: WhatIfOptions,
    ) -> Result<WhatIfReport, WhatIfError> {
        self.what_if_inspect(commands, at, options, |_| ())
            .map(|(report, ())| report)
    }

    /// As [`Engine::what_if`], and lets `inspect` look at the simulated tenant before it is
    /// dropped (the diagnosis checks there which errors a fix clears).
    pub(crate) fn what_if_inspect<T>(
        &self,
        commands: &[Command],
        at: Timestamp,
        options: WhatIfOptions,
        inspect: impl FnOnce(&Engine) -> T,
    ) -> Result<(WhatIfReport, T), WhatIfError> {
        if commands.is_empty() {
            return Err(WhatIfError::NoChanges);
        }
        // The reference: the tenant with the work already queued done.
        let settled: Cow<'_, Engine> = if self.queued_users() == 0 {
            Cow::Borrowed(self)
        } else {
            let mut settled = self.clone();
            settled.process_all(at);
            Cow::Owned(settled)
        };
        let mut simulated = settled.as_ref().clone();
        let mut touched: FxHashSet<UserRef> = FxHashSet::default();
        for (index, command) in commands.iter().enumerate() {
            let outcome = simulated
                .apply_without_images(command.clone(), at)
                .map_err(|error| WhatIfError::CommandRefused {
                    index,
                    command: command.name(),
                    error: Box::new(error),
                })?;
            touched.extend(outcome.changes.iter().map(|change| change.user));
        }
        let processed = simulated.process_all(at);
        touched.extend(processed.changes.iter().map(|change| change.user));
        let mut report = compare(
            settled.as_ref(),
            &simulated,
            touched,
            commands.len(),
            processed.evaluated_users,
            options,
        );
        report.memberships =
            crate::dynamic_groups::membership_changes(settled.as_ref(), &simulated, options.max_listed_users);
        Ok((report, inspect(&simulated)))
    }
}

fn compare(
    before: &Engine,
    after: &Engine,
    touched: FxHashSet<UserRef>,
    command_count: usize,
    evaluated_users: usize,
    options: WhatIfOptions,
) -> WhatIfReport {
    let empty: Vec<StateRecord> = Vec::new();
    let mut touched: Vec<UserRef> = touched.into_iter().collect();
    touched.sort_unstable();
    let mut report = WhatIfReport {
        commands: command_count,
        evaluated_users,
        changed_users: 0,
        fixed_users: 0,
        newly_broken_users: 0,
        new_error_users: 0,
        users_with_errors_before: before.states.users_with_errors().len(),
        users_with_errors_after: after.states.users_with_errors().len(),
        users: Vec::new(),
        users_truncated: false,
        skus: Vec::new(),
        groups: Vec::new(),
        memberships: Vec::new(),
    };
    let mut sku_tally: BTreeMap<SkuRef, Tally> = BTreeMap::new();
    let mut group_tally: BTreeMap<GroupRef, Tally> = BTreeMap::new();
    let mut listed: Vec<(UserEffect, UserRef)> = Vec::new();
    for user in touched {
        let existed = before.directory.user_if_live(user).is_some();
        let exists = after.directory.user_if_live(user).is_some();
        let old = if existed { before.states.of(user) } else { &empty };
        let new = if exists { after.states.of(user) } else { &empty };
        if same_outcomes(old, new) {
            continue;
        }
        let errors_before = compact_errors(before, old);
        let errors_after = compact_errors(after, new);
        let effect = match (errors_before.is_empty(), errors_after.is_empty()) {
            (false, true) => UserEffect::Fixed,
            (true, false) => UserEffect::NewlyBroken,
            (true, true) => UserEffect::Changed,
            (false, false) => {
                if errors_after.iter().any(|error| !errors_before.contains(error)) {
                    UserEffect::NewError
                } else {
                    UserEffect::StillInError
                }
            }
        };
        report.changed_users += 1;
        match effect {
            UserEffect::Fixed => report.fixed_users += 1,
            UserEffect::NewlyBroken => report.newly_broken_users += 1,
            UserEffect::NewError => report.new_error_users += 1,
            _ => {}
        }
        let held_before = held_units(old);
        let held_after = held_units(new);
        for sku in held_after.iter().filter(|sku| !held_before.contains(sku)) {
            sku_tally.entry(*sku).or_default().users_consuming += 1;
        }
        for sku in held_before.iter().filter(|sku| !held_after.contains(sku)) {
            sku_tally.entry(*sku).or_default().users_freeing += 1;
        }
        // Per product and per group: errors that all clear, and errors that are new.
        let mut skus: Vec<SkuRef> = errors_before
            .iter()
            .chain(errors_after.iter())
            .map(|(sku, _, _)| *sku)
            .collect();
        skus.sort_unstable();
        skus.dedup();
        for sku in skus {
            let had = errors_before.iter().any(|(candidate, _, _)| *candidate == sku);
            let has = errors_after.iter().any(|(candidate, _, _)| *candidate == sku);
            let new_error = errors_after
                .iter()
                .any(|error| error.0 == sku && !errors_before.contains(error));
            let tally = sku_tally.entry(sku).or_default();
            if had && !has {
                tally.fixed_users += 1;
            }
            if new_error {
                tally.newly_broken_users += 1;
            }
        }
        let mut groups: Vec<GroupRef> = errors_before
            .iter()
            .chain(errors_after.iter())
            .filter_map(|(_, source, _)| match source {
                Source::Group(group) => Some(*group),
                Source::Direct => None,
            })
            .collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let source = Source::Group(group);
            let had = errors_before.iter().any(|error| error.1 == source);
            let has = errors_after.iter().any(|error| error.1 == source);
            let new_error = errors_after
                .iter()
                .any(|error| error.1 == source && !errors_before.contains(error));
            let tally = group_tally.entry(group).or_default();
            if had && !has {
                tally.fixed_users += 1;
            }
            if new_error {
                tally.newly_broken_users += 1;
            }
        }
        listed.push((effect, user));
    }
    // Fixed and newly broken users first, then by creation.
    listed.sort_unstable();
    report.users_truncated = listed.len() > options.max_listed_users;
    listed.truncate(options.max_listed_users);
    for (effect, user) in listed {
        report.users.push(predict_user(before, after, user, effect));
    }
    // Products: every product whose seats or errors change, plus those whose figures change.
    for (sku, new) in after.catalog.skus() {
        let (prepaid_before, consumed_before, waiting_before) =
            if sku.0 as usize >= before.catalog.sku_count() {
                (0, 0, 0)
            } else {
                (
                    before.sku(sku).prepaid_units,
                    before.states.consumed_units(sku),
                    before.states.waiting(sku).len(),
                )
            };
        let consumed_after = after.states.consumed_units(sku);
        let waiting_after = after.states.waiting(sku).len();
        let tally = sku_tally.remove(&sku).unwrap_or_default();
        let figures_change = prepaid_before != new.prepaid_units
            || consumed_before != consumed_after
            || waiting_before != waiting_after;
        if !figures_change && tally.fixed_users == 0 && tally.newly_broken_users == 0 {
            continue;
        }
        report.skus.push(SkuPrediction {
            sku_id: new.id,
            sku_part_number: new.part_number.clone(),
            prepaid_units_before: prepaid_before,
            prepaid_units_after: new.prepaid_units,
            consumed_units_before: consumed_before,
            consumed_units_after: consumed_after,
            waiting_users_before: waiting_before,
            waiting_users_after: waiting_after,
            users_consuming: tally.users_consuming,
            users_freeing: tally.users_freeing,
            fixed_users: tally.fixed_users,
            newly_broken_users: tally.newly_broken_users,
        });
    }
    for (group, tally) in group_tally {
        let in_error_before = before
            .directory
            .group_if_live(group)
            .map_or(0, |_| before.states.group_error_users(group).len());
        let (group_id, display_name, in_error_after) = match after.directory.group_if_live(group) {
            Some(record) => (
                record.id,
                record.display_name.clone(),
                after.states.group_error_users(group).len(),
            ),
            None => match before.directory.group_if_live(group) {
                Some(record) => (record.id, record.display_name.clone(), 0),
                None => continue,
            },
        };
        report.groups.push(GroupPrediction {
            group_id,
            display_name,
            users_in_error_before: in_error_before,
            users_in_error_after: in_error_after,
            fixed_users: tally.fixed_users,
            newly_broken_users: tally.newly_broken_users,
        });
    }
    report
}

fn resolve_errors(engine: &Engine, records: &[StateRecord]) -> Vec<AssignmentError> {
    let mut errors: Vec<AssignmentError> = compact_errors(engine, records)
        .into_iter()
        .map(|(sku, source, error)| AssignmentError {
            sku_id: engine.sku(sku).id,
            source: engine.source_of(source),
            error,
        })
        .collect();
    errors.sort_unstable();
    errors
}

fn predict_user(before: &Engine, after: &Engine, user: UserRef, effect: UserEffect) -> UserPrediction {
    let existed = before.directory.user_if_live(user).is_some();
    let exists = after.directory.user_if_live(user).is_some();
    let record = if exists {
        after.user(user)
    } else {
        before.user(user)
    };
    let states = |engine: &Engine, present: bool| {
        if present {
            engine
                .user_license_states(engine.user(user).id)
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    let empty: Vec<StateRecord> = Vec::new();
    let old = if existed { before.states.of(user) } else { &empty };
    let new = if exists { after.states.of(user) } else { &empty };
    let held_before = held_units(old);
    let held_after = held_units(new);
    UserPrediction {
        user_id: record.id,
        user_principal_name: record.user_principal_name.to_string(),
        effect,
        errors_before: resolve_errors(before, old),
        errors_after: resolve_errors(after, new),
        seats_consumed: held_after
            .iter()
            .filter(|sku| !held_before.contains(sku))
            .map(|sku| after.sku(*sku).id)
            .collect(),
        seats_freed: held_before
            .iter()
            .filter(|sku| !held_after.contains(sku))
            .map(|sku| before.sku(*sku).id)
            .collect(),
        states_before: states(before, existed),
        states_after: states(after, exists),
        deleted: existed && !exists,
    }
}
