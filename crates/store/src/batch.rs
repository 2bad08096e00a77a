//! `WriteBatch`: everything one accepted command or one processing step changed, written by
//! [`crate::Store::write`] in one transaction; the builders that make it from what the engine
//! returned; and `TenantChange`, the record of one write that other instances catch up from.

use licensd_engine::image::{GroupImage, ServicePlanImage, StateImage, TenantImage, UserImage};
use licensd_engine::{
    CommandOutcome, Engine, ProcessReport, SkuDefinition, StateChange, TenantSettings, Uuid,
};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::StoreError;

/// Identifies one license assignment state: a user's product from one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateKey {
    pub user_id: Uuid,
    pub sku_id: Uuid,
    /// `None` for a direct assignment.
    pub assigned_by_group: Option<Uuid>,
}

/// Everything one write changes in a tenant. [`crate::Store::write`] applies it in one
/// transaction together with the tenant's new version, logical clock and change record.
///
/// Entities are upserted whole: a user in `users` replaces the stored user row, its proxy
/// addresses, direct licenses and memberships; a group in `groups` replaces its row and licenses;
/// a product in `skus` replaces its row and plan list. License assignment states are not part
/// of `users` (their `states` must be empty): they are written through `state_upserts` and
/// `state_deletes`, so a processing step rewrites only the states that changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// When set, the write fails with [`StoreError::Conflict`] unless the stored version is this
    /// one (optimistic concurrency between instances); nothing is written then.
    pub expected_version: Option<u64>,
    /// New tenant settings (their `tenant_id` must be the tenant written to).
    pub settings: Option<TenantSettings>,
    /// The engine's logical clock after the change; `None` leaves the stored clock as it is.
    pub clock: Option<u64>,
    /// Every service plan with its rules, in registration order, replacing the stored ones.
    pub service_plans: Option<Vec<ServicePlanImage>>,
    /// Products to create or replace, with their plans in order. New products are appended to
    /// the tenant's product order.
    pub skus: Vec<SkuDefinition>,
    /// Users to create or replace, without states. New users are appended to the tenant's user
    /// order in the order given.
    pub users: Vec<UserImage>,
    /// Users to delete with their memberships, direct licenses, states and queue entries.
    pub deleted_users: Vec<Uuid>,
    /// Groups to create or replace with their licenses. New groups are appended in order.
    pub groups: Vec<GroupImage>,
    /// Groups to delete with their memberships and licenses.
    pub deleted_groups: Vec<Uuid>,
    /// States to create or replace, per user. When a key appears twice the last one wins.
    pub state_upserts: Vec<(Uuid, StateImage)>,
    /// States to delete. Applied before `state_upserts`.
    pub state_deletes: Vec<StateKey>,
    /// Users to append to the work queue, in order; users already queued keep their place.
    pub enqueue: Vec<Uuid>,
    /// Users to remove from the work queue. Applied before `enqueue`.
    pub dequeue: Vec<Uuid>,
}

impl WriteBatch {
    /// Whether the batch changes nothing but the version (a write of it still bumps it).
    pub fn is_empty(&self) -> bool {
        self.settings.is_none()
            && self.clock.is_none()
            && self.service_plans.is_none()
            && self.skus.is_empty()
            && self.users.is_empty()
            && self.deleted_users.is_empty()
            && self.groups.is_empty()
            && self.deleted_groups.is_empty()
            && self.state_upserts.is_empty()
            && self.state_deletes.is_empty()
            && self.enqueue.is_empty()
            && self.dequeue.is_empty()
    }

    /// The whole tenant of an image, for storing a tenant that has nothing stored yet (an
    /// import or a benchmark). Users' states move into `state_upserts`.
    pub fn from_image(image: TenantImage) -> WriteBatch {
        let mut batch = WriteBatch {
            settings: Some(image.settings),
            clock: Some(image.clock),
            service_plans: Some(image.service_plans),
            skus: image.skus,
            groups: image.groups,
            enqueue: image.queue,
            ..WriteBatch::default()
        };
        let state_count = image.users.iter().map(|user| user.states.len()).sum();
        batch.state_upserts.reserve(state_count);
        batch.users.reserve(image.users.len());
        for mut user in image.users {
            for state in std::mem::take(&mut user.states) {
                batch.state_upserts.push((user.id, state));
            }
            batch.users.push(user);
        }
        batch
    }

    /// What an accepted command changed, read back from the engine it was applied to: the
    /// touched settings, plans, products, users and groups as they are now, the deletions, the
    /// state changes applied at once, the newly queued users and the new logical clock.
    pub fn from_command_outcome(engine: &Engine, outcome: &CommandOutcome) -> Result<WriteBatch, StoreError> {
        let touched = &outcome.touched;
        let mut batch = WriteBatch {
            settings: touched.settings.then(|| engine.settings().clone()),
            clock: Some(engine.clock()),
            service_plans: touched.service_plans.then(|| engine.service_plan_images()),
            deleted_users: touched.deleted_users.clone(),
            deleted_groups: touched.deleted_groups.clone(),
            enqueue: outcome.newly_queued.clone(),
            ..WriteBatch::default()
        };
        for sku_id in &touched.skus {
            let definition = engine
                .sku_definition(*sku_id)
                .map_err(|source| StoreError::Engine {
                    what: format!("touched product {sku_id}"),
                    source: Box::new(source),
                })?;
            batch.skus.push(definition);
        }
        for group_id in &touched.groups {
            let image = engine
                .group_image(*group_id)
                .map_err(|source| StoreError::Engine {
                    what: format!("touched group {group_id}"),
                    source: Box::new(source),
                })?;
            batch.groups.push(image);
        }
        for user_id in &touched.users {
            let mut image = engine.user_image(*user_id).map_err(|source| StoreError::Engine {
                what: format!("touched user {user_id}"),
                source: Box::new(source),
            })?;
            image.states.clear();
            batch.users.push(image);
        }
        batch.add_state_changes(engine, &outcome.changes);
        Ok(batch)
    }

    /// What a processing step changed: the state changes, the evaluated users leaving the
    /// queue and the users queued again during the step (self-healing hand-offs) appended to
    /// it, in the order the engine holds them, and the new logical clock.
    pub fn from_process_report(engine: &Engine, report: &ProcessReport) -> WriteBatch {
        let mut batch = WriteBatch {
            clock: Some(engine.clock()),
            dequeue: report.evaluated.clone(),
            ..WriteBatch::default()
        };
        // A user queued, evaluated and queued again within one step appears twice in
        // `requeued`; the engine holds it where it was queued last.
        let mut seen = FxHashSet::default();
        let mut requeued: Vec<Uuid> = report
            .requeued
            .iter()
            .rev()
            .filter(|user_id| seen.insert(**user_id))
            .copied()
            .collect();
        requeued.reverse();
        batch.enqueue = requeued;
        batch.add_state_changes(engine, &report.changes);
        batch
    }

    /// Adds state changes as upserts and deletes, keeping only the last change of each state.
    fn add_state_changes(&mut self, engine: &Engine, changes: &[StateChange]) {
        let mut last_change: FxHashMap<StateKey, usize> = FxHashMap::default();
        last_change.reserve(changes.len());
        for (index, change) in changes.iter().enumerate() {
            let key = StateKey {
                user_id: change.user_id,
                sku_id: engine.sku_id_of(change.sku),
                assigned_by_group: engine.source_of(change.source).assigned_by_group(),
            };
            last_change.insert(key, index);
        }
        let mut latest: Vec<(StateKey, usize)> = last_change.into_iter().collect();
        latest.sort_unstable_by_key(|(_, index)| *index);
        for (key, index) in latest {
            match &changes[index].after {
                Some(record) => self.state_upserts.push((key.user_id, engine.state_image(record))),
                None => self.state_deletes.push(key),
            }
        }
    }
}

/// One write as other instances see it: which entities changed at `version`, so a cached engine
/// can reload exactly those. When a write touched too many users to list, `everything` is set
/// and the lists are empty: reload the tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantChange {
    pub version: u64,
    pub settings: bool,
    pub service_plans: bool,
    pub skus: Vec<Uuid>,
    /// Users whose properties, direct licenses, memberships or states changed.
    pub users: Vec<Uuid>,
    pub groups: Vec<Uuid>,
    pub deleted_users: Vec<Uuid>,
    pub deleted_groups: Vec<Uuid>,
    /// Whether the work queue changed (reload it whole).
    pub queue: bool,
    pub everything: bool,
}

/// Above this many listed ids a change record says `everything` instead.
pub(crate) const MAX_LISTED_CHANGES: usize = 100_000;

/// A batch checked and put in write order, shared by both backends.
pub(crate) struct PreparedBatch<'a> {
    /// Upserts sorted by key (so both backends write their index in order), the last of each
    /// key only.
    pub(crate) state_upserts: Vec<&'a (Uuid, StateImage)>,
    pub(crate) enqueue: Vec<Uuid>,
    pub(crate) change: TenantChange,
}

impl<'a> PreparedBatch<'a> {
    pub(crate) fn new(tenant_id: Uuid, batch: &'a WriteBatch) -> Result<PreparedBatch<'a>, StoreError> {
        let invalid = |reason: String| StoreError::InvalidBatch { tenant_id, reason };
        if let Some(settings) = &batch.settings {
            if settings.tenant_id != tenant_id {
                return Err(invalid(format!(
                    "the settings belong to tenant {}",
                    settings.tenant_id
                )));
            }
        }
        if let Some(user) = batch.users.iter().find(|user| !user.states.is_empty()) {
            return Err(invalid(format!(
                "user {} carries states; write them as state upserts",
                user.id
            )));
        }
        let nil_group = batch
            .groups
            .iter()
            .map(|group| group.id)
            .chain(
                batch
                    .state_upserts
                    .iter()
                    .filter_map(|(_, state)| state.assigned_by_group),
            )
            .chain(batch.state_deletes.iter().filter_map(|key| key.assigned_by_group))
            .any(|group_id| group_id.is_nil());
        if nil_group {
            return Err(invalid("the nil GUID cannot be a group id".to_string()));
        }
        let deleted_users: FxHashSet<Uuid> = batch.deleted_users.iter().copied().collect();
        if !deleted_users.is_empty() {
            let revived = batch
                .users
                .iter()
                .map(|user| user.id)
                .chain(batch.state_upserts.iter().map(|(user_id, _)| *user_id))
                .chain(batch.enqueue.iter().copied())
                .find(|user_id| deleted_users.contains(user_id));
            if let Some(user_id) = revived {
                return Err(invalid(format!(
                    "user {user_id} is deleted and written in the same batch"
                )));
            }
        }

        // Sort by key with the batch index as the tie-breaker, keys copied next to the index so
        // the sort never chases pointers into the states; the last upsert of each key wins.
        let mut keyed: Vec<((Uuid, Uuid, Uuid), usize)> = batch
            .state_upserts
            .iter()
            .enumerate()
            .map(|(index, upsert)| (upsert_key(upsert), index))
            .collect();
        keyed.sort_unstable();
        let mut deduplicated: Vec<&(Uuid, StateImage)> = Vec::with_capacity(keyed.len());
        for (position, (key, index)) in keyed.iter().enumerate() {
            let superseded = keyed.get(position + 1).is_some_and(|(next, _)| next == key);
            if !superseded {
                deduplicated.push(&batch.state_upserts[*index]);
            }
        }
        drop(keyed);

        let mut queued = FxHashSet::default();
        let enqueue: Vec<Uuid> = batch
            .enqueue
            .iter()
            .filter(|user_id| queued.insert(**user_id))
            .copied()
            .collect();

        let change = Self::change_record(batch, &deduplicated);
        Ok(PreparedBatch {
            state_upserts: deduplicated,
            enqueue,
            change,
        })
    }

    fn change_record(batch: &WriteBatch, state_upserts: &[&(Uuid, StateImage)]) -> TenantChange {
        let mut seen = FxHashSet::default();
        let users: Vec<Uuid> = batch
            .users
            .iter()
            .map(|user| user.id)
            .chain(state_upserts.iter().map(|(user_id, _)| *user_id))
            .chain(batch.state_deletes.iter().map(|key| key.user_id))
            .filter(|user_id| seen.insert(*user_id))
            .collect();
        let mut change = TenantChange {
            version: 0,
            settings: batch.settings.is_some(),
            service_plans: batch.service_plans.is_some(),
            skus: batch.skus.iter().map(|sku| sku.sku_id).collect(),
            users,
            groups: batch.groups.iter().map(|group| group.id).collect(),
            deleted_users: batch.deleted_users.clone(),
            deleted_groups: batch.deleted_groups.clone(),
            queue: !batch.enqueue.is_empty() || !batch.dequeue.is_empty() || !batch.deleted_users.is_empty(),
            everything: false,
        };
        let listed = change.skus.len()
            + change.users.len()
            + change.groups.len()
            + change.deleted_users.len()
            + change.deleted_groups.len();
        if listed > MAX_LISTED_CHANGES {
            change.skus.clear();
            change.users.clear();
            change.groups.clear();
            change.deleted_users.clear();
            change.deleted_groups.clear();
            change.everything = true;
        }
        change
    }
}

fn upsert_key(upsert: &(Uuid, StateImage)) -> (Uuid, Uuid, Uuid) {
    let (user_id, state) = upsert;
    (
        *user_id,
        state.sku_id,
        crate::codec::source_column(state.assigned_by_group),
    )
}
