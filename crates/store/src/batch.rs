//! `WriteBatch`: everything one accepted command or one processing step changed, written by
//! [`crate::Store::write`] in one transaction; the builders that make it from what the engine
//! returned; and `TenantChange`, the record of one write that other instances catch up from.

pub use licensd_engine::image::StateKey;
use licensd_engine::image::{
    DirectLicenseImage, GroupImage, MembershipImage, ServicePlanImage, StateImage, TenantImage, UserImage,
};
use licensd_engine::{CommandOutcome, ProcessReport, SkuDefinition, TenantSettings, UserEdit, Uuid};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::StoreError;

/// Everything one write changes in a tenant. [`crate::Store::write`] applies it in one
/// transaction together with the tenant's new version, logical clock and change record.
///
/// Entities are upserted whole: a user in `users` replaces the stored user row, its proxy
/// addresses, direct licenses and memberships; a group in `groups` replaces its row and licenses;
/// a product in `skus` replaces its row and plan list. A command that changed only some rows of
/// a stored user writes only those: `user_properties` (the user row), `memberships_added` and
/// `memberships_removed`, `direct_licenses_set` and `direct_licenses_removed`. License assignment states are not part
/// of `users` (their `states` must be empty): they are written through `state_inserts`,
/// `state_upserts` and `state_deletes`, so a processing step rewrites only the states that changed.
///
/// Every product, group and user a batch refers to (in licenses, memberships, states and queue
/// entries) must be stored or written by the same batch; otherwise the write fails with
/// [`StoreError::InvalidBatch`]. Deleting or dequeuing something that is not stored does nothing.
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
    /// Stored users whose row (principal name, display name, usage location, proxy addresses,
    /// account enabled) to rewrite; their direct licenses and memberships are left as stored
    /// (those of the images are not read).
    pub user_properties: Vec<UserImage>,
    /// Memberships that began: each appended after the stored memberships of its user.
    pub memberships_added: Vec<(Uuid, MembershipImage)>,
    /// Memberships that ended, as (user, group); the user's other memberships keep their order.
    pub memberships_removed: Vec<(Uuid, Uuid)>,
    /// Direct licenses to write: a user's license of the product is replaced in place, or the
    /// license appended after the user's others. Applied after `direct_licenses_removed`.
    pub direct_licenses_set: Vec<(Uuid, DirectLicenseImage)>,
    /// Direct licenses removed, as (user, product).
    pub direct_licenses_removed: Vec<(Uuid, Uuid)>,
    /// Users to delete with their memberships, direct licenses, states and queue entries.
    pub deleted_users: Vec<Uuid>,
    /// Groups to create or replace with their licenses. New groups are appended in order.
    pub groups: Vec<GroupImage>,
    /// Groups to delete with their memberships and licenses.
    pub deleted_groups: Vec<Uuid>,
    /// States the change created: nothing was stored under their keys before. Written like
    /// `state_upserts` (a state that exists after all is replaced), but PostgreSQL streams a
    /// large batch of them straight into the table instead of merging them.
    pub state_inserts: Vec<(Uuid, StateImage)>,
    /// States to create or replace, per user. When a key appears twice (in either list) the last
    /// one wins, `state_upserts` coming after `state_inserts`.
    pub state_upserts: Vec<(Uuid, StateImage)>,
    /// States to delete. Applied before `state_inserts` and `state_upserts`.
    pub state_deletes: Vec<StateKey>,
    /// Users to append to the work queue, in order; users already queued keep their place.
    pub enqueue: Vec<Uuid>,
    /// Users to remove from the work queue. Applied before `enqueue`.
    pub dequeue: Vec<Uuid>,
    /// Directory attributes of users and groups to set (`Some`) or delete (`None`), applied after
    /// the users and groups are written and deleted (those of a deleted object go with it).
    pub directory_attributes: Vec<(Uuid, Option<String>)>,
    /// Nesting edges to write (`Some`) or delete (`None`), as (group, member group); those of a
    /// deleted group go with it.
    pub group_nestings: Vec<((Uuid, Uuid), Option<licensd_engine::GroupNestingImage>)>,
    /// Audit records of the change, written in the same transaction.
    pub audit: Vec<crate::security::AuditRecord>,
    /// Deliveries the change causes (change notifications, alerts), written to the outbox in the
    /// same transaction: delivered at least once if and only if the change commits.
    pub outbox: Vec<crate::outbox::OutboxEntry>,
    /// What the change did to users and groups, for change notifications fanned out at
    /// delivery time: recorded once in the same transaction, however many subscriptions match
    /// (the delivery worker expands it into outbox rows).
    pub change_events: Vec<crate::change_events::ChangeEventEntry>,
    /// License alert matches held in their rules' digest windows (merged in the same
    /// transaction, sent when the window closes).
    pub alert_digests: Vec<crate::alert_digests::HeldDigest>,
}

impl WriteBatch {
    /// Whether the batch changes nothing but the version (a write of it still bumps it).
    pub fn is_empty(&self) -> bool {
        self.settings.is_none()
            && self.clock.is_none()
            && self.service_plans.is_none()
            && self.skus.is_empty()
            && self.users.is_empty()
            && !self.has_user_edits()
            && self.deleted_users.is_empty()
            && self.groups.is_empty()
            && self.deleted_groups.is_empty()
            && self.state_inserts.is_empty()
            && self.state_upserts.is_empty()
            && self.state_deletes.is_empty()
            && self.enqueue.is_empty()
            && self.dequeue.is_empty()
            && self.directory_attributes.is_empty()
            && self.group_nestings.is_empty()
            && self.outbox.is_empty()
            && self.change_events.is_empty()
            && self.alert_digests.is_empty()
    }

    /// The whole tenant of an image, for storing a tenant that has nothing stored yet (an
    /// import or a benchmark). Users' states move into `state_inserts`.
    pub fn from_image(image: TenantImage) -> WriteBatch {
        let mut batch = WriteBatch {
            settings: Some(image.settings),
            clock: Some(image.clock),
            service_plans: Some(image.service_plans),
            skus: image.skus,
            groups: image.groups,
            enqueue: image.queue,
            directory_attributes: image
                .directory_attributes
                .into_iter()
                .map(|(object_id, attributes)| (object_id, Some(attributes)))
                .collect(),
            group_nestings: image
                .group_nestings
                .into_iter()
                .map(|edge| ((edge.group_id, edge.member_group_id), Some(edge)))
                .collect(),
            ..WriteBatch::default()
        };
        let state_count = image.users.iter().map(|user| user.states.len()).sum();
        batch.state_inserts.reserve(state_count);
        batch.users.reserve(image.users.len());
        for mut user in image.users {
            for state in std::mem::take(&mut user.states) {
                batch.state_inserts.push((user.id, state));
            }
            batch.users.push(user);
        }
        batch
    }

    /// What an accepted command changed, from the outcome alone: the touched settings, plans,
    /// products, users and groups as the command left them and the state changes applied at once
    /// ([`CommandOutcome::images`]), the deletions, the newly queued users and the new logical
    /// clock.
    ///
    /// A user the command changed only in part ([`licensd_engine::Touched::user_edits`]: its
    /// properties, one membership, some direct licenses) is written as those rows, not whole.
    pub fn from_command_outcome(outcome: &CommandOutcome) -> WriteBatch {
        let touched = &outcome.touched;
        let images = &outcome.images;
        let mut batch = WriteBatch {
            settings: images.settings.clone(),
            clock: Some(outcome.clock),
            service_plans: images.service_plans.clone(),
            skus: images.skus.clone(),
            groups: images.groups.clone(),
            deleted_users: touched.deleted_users.clone(),
            deleted_groups: touched.deleted_groups.clone(),
            state_inserts: images.states.inserted.clone(),
            state_upserts: images.states.updated.clone(),
            state_deletes: images.states.deleted.clone(),
            enqueue: outcome.newly_queued.clone(),
            directory_attributes: images.directory_attributes.clone(),
            group_nestings: images.group_nestings.clone(),
            ..WriteBatch::default()
        };
        for user in &images.users {
            let edit = touched
                .user_edits
                .iter()
                .find(|(user_id, _)| *user_id == user.id)
                .map(|(_, edit)| edit);
            if !edit.is_some_and(|edit| batch.add_user_edit(user, edit)) {
                batch.users.push(user.clone());
            }
        }
        batch
    }

    /// Adds the rows `edit` changed of `user` (as the command left it); `false` when the image
    /// does not hold them (the user is then written whole).
    fn add_user_edit(&mut self, user: &UserImage, edit: &UserEdit) -> bool {
        match edit {
            UserEdit::Properties => self.user_properties.push(UserImage {
                direct_licenses: Vec::new(),
                memberships: Vec::new(),
                states: Vec::new(),
                ..user.clone()
            }),
            UserEdit::MembershipAdded { group_id } => {
                let Some(membership) = user
                    .memberships
                    .iter()
                    .find(|membership| membership.group_id == *group_id)
                else {
                    return false;
                };
                self.memberships_added.push((user.id, *membership));
            }
            UserEdit::MembershipRemoved { group_id } => self.memberships_removed.push((user.id, *group_id)),
            UserEdit::DirectLicenses { removed, set } => {
                let mut licenses = Vec::with_capacity(set.len());
                for sku_id in set {
                    let Some(direct) = user
                        .direct_licenses
                        .iter()
                        .find(|direct| direct.license.sku_id == *sku_id)
                    else {
                        return false;
                    };
                    licenses.push((user.id, direct.clone()));
                }
                self.direct_licenses_removed
                    .extend(removed.iter().map(|sku_id| (user.id, *sku_id)));
                self.direct_licenses_set.extend(licenses);
            }
        }
        true
    }

    /// Whether the batch changes some rows of stored users (rather than whole users).
    pub(crate) fn has_user_edits(&self) -> bool {
        !self.user_properties.is_empty()
            || !self.memberships_added.is_empty()
            || !self.memberships_removed.is_empty()
            || !self.direct_licenses_set.is_empty()
            || !self.direct_licenses_removed.is_empty()
    }

    /// The users whose rows the batch edits, in the order of the edits (properties, memberships
    /// added and removed, direct licenses set and removed), possibly repeated.
    pub(crate) fn edited_users(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.user_properties
            .iter()
            .map(|user| user.id)
            .chain(self.memberships_added.iter().map(|(user_id, _)| *user_id))
            .chain(self.memberships_removed.iter().map(|(user_id, _)| *user_id))
            .chain(self.direct_licenses_set.iter().map(|(user_id, _)| *user_id))
            .chain(self.direct_licenses_removed.iter().map(|(user_id, _)| *user_id))
    }

    /// Appends `next`, a later write of the same tenant, to this batch when the two are
    /// independent, so that writing the merged batch changes the tenant exactly as writing this
    /// one and then `next` would (with one version instead of two): neither changes the settings
    /// or the service plans, and no user, group or product one of them writes (creates, changes,
    /// deletes, queues, or whose states or directory attributes it writes) appears anywhere in
    /// the other. Products and groups both only refer to (a license's product, a membership's
    /// group) do not make two batches dependent. Gives `next` back when they are not independent.
    pub fn merge(&mut self, next: WriteBatch) -> Result<(), Box<WriteBatch>> {
        let global = |batch: &WriteBatch| {
            batch.settings.is_some() || batch.service_plans.is_some() || !batch.group_nestings.is_empty()
        };
        if global(self) || global(&next) {
            return Err(Box::new(next));
        }
        let (written, referenced) = self.entities();
        let (next_written, next_referenced) = next.entities();
        let dependent = next_written
            .iter()
            .any(|id| written.contains(id) || referenced.contains(id))
            || next_referenced.iter().any(|id| written.contains(id));
        if dependent {
            return Err(Box::new(next));
        }
        let WriteBatch {
            expected_version: _,
            settings: _,
            clock,
            service_plans: _,
            skus,
            users,
            user_properties,
            memberships_added,
            memberships_removed,
            direct_licenses_set,
            direct_licenses_removed,
            deleted_users,
            groups,
            deleted_groups,
            state_inserts,
            state_upserts,
            state_deletes,
            enqueue,
            dequeue,
            directory_attributes,
            group_nestings,
            audit,
            outbox,
            change_events,
            alert_digests,
        } = next;
        if clock.is_some() {
            self.clock = clock;
        }
        self.skus.extend(skus);
        self.users.extend(users);
        self.user_properties.extend(user_properties);
        self.memberships_added.extend(memberships_added);
        self.memberships_removed.extend(memberships_removed);
        self.direct_licenses_set.extend(direct_licenses_set);
        self.direct_licenses_removed.extend(direct_licenses_removed);
        self.deleted_users.extend(deleted_users);
        self.groups.extend(groups);
        self.deleted_groups.extend(deleted_groups);
        self.state_inserts.extend(state_inserts);
        self.state_upserts.extend(state_upserts);
        self.state_deletes.extend(state_deletes);
        self.enqueue.extend(enqueue);
        self.dequeue.extend(dequeue);
        self.directory_attributes.extend(directory_attributes);
        self.group_nestings.extend(group_nestings);
        self.audit.extend(audit);
        self.outbox.extend(outbox);
        self.change_events.extend(change_events);
        self.alert_digests.extend(alert_digests);
        Ok(())
    }

    /// The ids of the users, groups and products the batch writes, and of those it only refers
    /// to (see [`WriteBatch::merge`]).
    fn entities(&self) -> (FxHashSet<Uuid>, FxHashSet<Uuid>) {
        let mut written = FxHashSet::default();
        written.extend(self.skus.iter().map(|sku| sku.sku_id));
        written.extend(self.users.iter().map(|user| user.id));
        written.extend(self.edited_users());
        written.extend(self.deleted_users.iter().copied());
        written.extend(self.groups.iter().map(|group| group.id));
        written.extend(self.deleted_groups.iter().copied());
        written.extend(self.state_writes().map(|((user_id, _), _)| *user_id));
        written.extend(self.state_deletes.iter().map(|key| key.user_id));
        written.extend(self.enqueue.iter().copied());
        written.extend(self.dequeue.iter().copied());
        written.extend(self.directory_attributes.iter().map(|(id, _)| *id));
        let mut referenced = FxHashSet::default();
        for user in &self.users {
            referenced.extend(user.memberships.iter().map(|membership| membership.group_id));
            referenced.extend(user.direct_licenses.iter().map(|direct| direct.license.sku_id));
        }
        for group in &self.groups {
            referenced.extend(group.licenses.iter().map(|license| license.sku_id));
        }
        referenced.extend(
            self.memberships_added
                .iter()
                .map(|(_, membership)| membership.group_id),
        );
        referenced.extend(self.memberships_removed.iter().map(|(_, group_id)| *group_id));
        referenced.extend(
            self.direct_licenses_set
                .iter()
                .map(|(_, direct)| direct.license.sku_id),
        );
        referenced.extend(self.direct_licenses_removed.iter().map(|(_, sku_id)| *sku_id));
        for ((_, state), _) in self.state_writes() {
            referenced.insert(state.sku_id);
            referenced.extend(state.assigned_by_group);
        }
        for key in &self.state_deletes {
            referenced.insert(key.sku_id);
            referenced.extend(key.assigned_by_group);
        }
        (written, referenced)
    }

    /// What a processing step changed: the changed states
    /// ([`licensd_engine::Engine::process_batch_with_images`]), the evaluated users leaving the
    /// queue and the users queued again during the step (self-healing hand-offs) appended to it,
    /// in the order the engine holds them, and the new logical clock. Takes the report to move
    /// its state images into the batch rather than copy them.
    pub fn from_process_report(report: ProcessReport) -> WriteBatch {
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
        WriteBatch {
            clock: Some(report.clock),
            dequeue: report.evaluated,
            enqueue: requeued,
            state_inserts: report.states.inserted,
            state_upserts: report.states.updated,
            state_deletes: report.states.deleted,
            ..WriteBatch::default()
        }
    }

    /// The states to write, inserts first, each with whether it is an insert.
    pub(crate) fn state_writes(&self) -> impl Iterator<Item = (&(Uuid, StateImage), bool)> {
        self.state_inserts
            .iter()
            .map(|write| (write, true))
            .chain(self.state_upserts.iter().map(|write| (write, false)))
    }

    pub(crate) fn has_state_writes(&self) -> bool {
        !self.state_inserts.is_empty() || !self.state_upserts.is_empty()
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

/// What a committed write announces to the other instances on PostgreSQL (`NOTIFY`): the tenant
/// and its version after the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeNotice {
    pub tenant_id: Uuid,
    pub version: u64,
}

impl ChangeNotice {
    /// `tenant-id version`, the notification's payload.
    pub(crate) fn payload(&self) -> String {
        format!("{} {}", self.tenant_id, self.version)
    }

    /// Reads a payload back; `None` for anything else (another program's notice).
    pub(crate) fn parse(payload: &str) -> Option<ChangeNotice> {
        let (tenant, version) = payload.split_once(' ')?;
        Some(ChangeNotice {
            tenant_id: tenant.parse().ok()?,
            version: version.parse().ok()?,
        })
    }
}

/// Above this many listed ids a change record says `everything` instead.
pub(crate) const MAX_LISTED_CHANGES: usize = 100_000;

/// A batch checked and put in write order, shared by both backends.
pub(crate) struct PreparedBatch<'a> {
    /// Entities to upsert, the last occurrence of each id at the place of its first.
    pub(crate) skus: Vec<&'a SkuDefinition>,
    pub(crate) groups: Vec<&'a GroupImage>,
    pub(crate) users: Vec<&'a UserImage>,
    /// Users to queue, each once, in order.
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
        let deleted_users: FxHashSet<Uuid> = batch.deleted_users.iter().copied().collect();
        if !deleted_users.is_empty() {
            let revived = batch
                .users
                .iter()
                .map(|user| user.id)
                .chain(batch.edited_users())
                .chain(batch.state_writes().map(|((user_id, _), _)| *user_id))
                .chain(batch.enqueue.iter().copied())
                .find(|user_id| deleted_users.contains(user_id));
            if let Some(user_id) = revived {
                return Err(invalid(format!(
                    "user {user_id} is deleted and written in the same batch"
                )));
            }
        }
        let mut queued = FxHashSet::default();
        let enqueue: Vec<Uuid> = batch
            .enqueue
            .iter()
            .filter(|user_id| queued.insert(**user_id))
            .copied()
            .collect();
        Ok(PreparedBatch {
            skus: last_of_each(&batch.skus, |sku| sku.sku_id),
            groups: last_of_each(&batch.groups, |group| group.id),
            users: last_of_each(&batch.users, |user| user.id),
            enqueue,
            change: Self::change_record(batch),
        })
    }

    fn change_record(batch: &WriteBatch) -> TenantChange {
        let mut seen = FxHashSet::default();
        let users: Vec<Uuid> = batch
            .users
            .iter()
            .map(|user| user.id)
            .chain(batch.edited_users())
            .chain(batch.state_writes().map(|((user_id, _), _)| *user_id))
            .chain(batch.state_deletes.iter().map(|key| key.user_id))
            .filter(|user_id| seen.insert(*user_id))
            .collect();
        let mut change = TenantChange {
            version: 0,
            settings: batch.settings.is_some(),
            service_plans: batch.service_plans.is_some(),
            skus: batch.skus.iter().map(|sku| sku.sku_id).collect(),
            users,
            // Groups written, groups whose members changed (a Graph delta round lists them
            // with their members, so a member who left is seen to be gone), and both groups of
            // each nesting edge written (a catch-up reads the touched groups' edges again).
            groups: {
                let mut groups_seen = FxHashSet::default();
                batch
                    .groups
                    .iter()
                    .map(|group| group.id)
                    .chain(
                        batch
                            .memberships_added
                            .iter()
                            .map(|(_, membership)| membership.group_id),
                    )
                    .chain(batch.memberships_removed.iter().map(|(_, group_id)| *group_id))
                    .chain(
                        batch
                            .group_nestings
                            .iter()
                            .flat_map(|((group_id, member_group_id), _)| [*group_id, *member_group_id]),
                    )
                    .filter(|group_id| groups_seen.insert(*group_id))
                    .collect()
            },
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

/// Keeps the last occurrence of each id at the place of its first occurrence, so an upsert of
/// many rows never touches one twice.
pub(crate) fn last_of_each<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<&T> {
    let mut places: FxHashMap<Uuid, usize> = FxHashMap::default();
    let mut kept: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        match places.get(&id(item)) {
            Some(place) => kept[*place] = item,
            None => {
                places.insert(id(item), kept.len());
                kept.push(item);
            }
        }
    }
    kept
}

/// The store's integer keys of the products, groups and users a write refers to.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    pub(crate) skus: FxHashMap<Uuid, i64>,
    pub(crate) groups: FxHashMap<Uuid, i64>,
    pub(crate) users: FxHashMap<Uuid, i64>,
}

/// The `source_key` of a direct assignment (group keys start at 1).
pub(crate) const DIRECT_SOURCE_KEY: i64 = 0;

impl Keys {
    fn unknown(tenant_id: Uuid, what: &str, id: Uuid) -> StoreError {
        StoreError::InvalidBatch {
            tenant_id,
            reason: format!("{what} {id} is not stored"),
        }
    }

    pub(crate) fn sku(&self, tenant_id: Uuid, sku_id: Uuid) -> Result<i64, StoreError> {
        self.skus
            .get(&sku_id)
            .copied()
            .ok_or_else(|| Self::unknown(tenant_id, "product", sku_id))
    }

    pub(crate) fn group(&self, tenant_id: Uuid, group_id: Uuid) -> Result<i64, StoreError> {
        self.groups
            .get(&group_id)
            .copied()
            .ok_or_else(|| Self::unknown(tenant_id, "group", group_id))
    }

    pub(crate) fn user(&self, tenant_id: Uuid, user_id: Uuid) -> Result<i64, StoreError> {
        self.users
            .get(&user_id)
            .copied()
            .ok_or_else(|| Self::unknown(tenant_id, "user", user_id))
    }

    pub(crate) fn source(&self, tenant_id: Uuid, assigned_by_group: Option<Uuid>) -> Result<i64, StoreError> {
        match assigned_by_group {
            None => Ok(DIRECT_SOURCE_KEY),
            Some(group_id) => self.group(tenant_id, group_id),
        }
    }

    /// The keys of a state, or `None` when its user, product or group is not stored (a delete
    /// of such a state has nothing to delete).
    pub(crate) fn state_key(&self, key: &StateKey) -> Option<(i64, i64, i64)> {
        let source = match key.assigned_by_group {
            None => DIRECT_SOURCE_KEY,
            Some(group_id) => *self.groups.get(&group_id)?,
        };
        Some((
            *self.users.get(&key.user_id)?,
            *self.skus.get(&key.sku_id)?,
            source,
        ))
    }
}

/// The group ids a write must resolve to keys: memberships of the users it writes, sources of
/// the states it writes or deletes, and the groups it deletes.
pub(crate) fn referenced_groups(batch: &WriteBatch, prepared: &PreparedBatch<'_>) -> Vec<Uuid> {
    let mut seen = FxHashSet::default();
    prepared
        .users
        .iter()
        .flat_map(|user| user.memberships.iter().map(|membership| membership.group_id))
        .chain(
            batch
                .memberships_added
                .iter()
                .map(|(_, membership)| membership.group_id),
        )
        .chain(batch.memberships_removed.iter().map(|(_, group_id)| *group_id))
        .chain(
            batch
                .state_writes()
                .filter_map(|((_, state), _)| state.assigned_by_group),
        )
        .chain(batch.state_deletes.iter().filter_map(|key| key.assigned_by_group))
        .chain(batch.deleted_groups.iter().copied())
        .filter(|group_id| seen.insert(*group_id))
        .collect()
}

/// The user ids a write must resolve to keys, beyond the users it upserts: users whose rows it
/// edits, users of the states it writes or deletes, users it deletes, queues or dequeues.
pub(crate) fn referenced_users(batch: &WriteBatch, keys: &Keys) -> Vec<Uuid> {
    let mut seen = FxHashSet::default();
    let mut users: Vec<Uuid> = batch
        .edited_users()
        .chain(batch.state_writes().map(|((user_id, _), _)| *user_id))
        .chain(batch.state_deletes.iter().map(|key| key.user_id))
        .chain(batch.deleted_users.iter().copied())
        .chain(batch.enqueue.iter().copied())
        .chain(batch.dequeue.iter().copied())
        .filter(|user_id| !keys.users.contains_key(user_id) && seen.insert(*user_id))
        .collect();
    // Looked up in key order, the lookups walk the index front to back.
    users.sort_unstable();
    users
}

/// A state to write with its keys.
pub(crate) struct KeyedState<'a> {
    pub(crate) user_key: i64,
    pub(crate) sku_key: i64,
    pub(crate) source_key: i64,
    pub(crate) user_id: Uuid,
    pub(crate) state: &'a StateImage,
    /// Whether the batch says nothing is stored under this key yet.
    pub(crate) new: bool,
}

/// The states a batch writes with their keys, sorted in the table's key order (users in
/// creation order), the last write of each key only.
pub(crate) fn keyed_states<'a>(
    tenant_id: Uuid,
    batch: &'a WriteBatch,
    keys: &Keys,
) -> Result<Vec<KeyedState<'a>>, StoreError> {
    let writes: Vec<(&(Uuid, StateImage), bool)> = batch.state_writes().collect();
    let mut keyed: Vec<((i64, i64, i64), usize)> = Vec::with_capacity(writes.len());
    for (index, ((user_id, state), _)) in writes.iter().enumerate() {
        let key = (
            keys.user(tenant_id, *user_id)?,
            keys.sku(tenant_id, state.sku_id)?,
            keys.source(tenant_id, state.assigned_by_group)?,
        );
        keyed.push((key, index));
    }
    // The batch index breaks ties, so the last of equal keys comes last.
    keyed.sort_unstable();
    let mut states = Vec::with_capacity(keyed.len());
    for (position, ((user_key, sku_key, source_key), index)) in keyed.iter().enumerate() {
        let superseded = keyed
            .get(position + 1)
            .is_some_and(|(next, _)| *next == (*user_key, *sku_key, *source_key));
        if !superseded {
            let ((user_id, state), new) = writes[*index];
            states.push(KeyedState {
                user_key: *user_key,
                sku_key: *sku_key,
                source_key: *source_key,
                user_id: *user_id,
                state,
                new,
            });
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_engine::{AssignmentStatus, Timestamp};

    fn id(value: u128) -> Uuid {
        Uuid::from_u128(value)
    }

    fn state(sku_id: Uuid, assigned_by_group: Option<Uuid>, since: u64) -> StateImage {
        StateImage {
            sku_id,
            assigned_by_group,
            status: AssignmentStatus::Active,
            cause: None,
            disabled_plans: Vec::new().into(),
            granted_plans: Some(Vec::new().into()),
            since,
            last_updated: Timestamp(0),
        }
    }

    #[test]
    fn a_user_queued_twice_in_one_step_is_appended_where_the_engine_holds_it() {
        let report = ProcessReport {
            evaluated: vec![id(10), id(11)],
            requeued: vec![id(10), id(12), id(10), id(13)],
            ..ProcessReport::default()
        };
        let batch = WriteBatch::from_process_report(report);
        assert_eq!(batch.dequeue, vec![id(10), id(11)]);
        assert_eq!(batch.enqueue, vec![id(12), id(10), id(13)]);
        assert_eq!(batch.clock, Some(0));
    }

    #[test]
    fn keyed_states_come_in_key_order_and_the_last_upsert_of_a_key_wins() {
        let tenant_id = id(1);
        let (first, second, sku, group) = (id(20), id(21), id(30), id(40));
        let mut keys = Keys::default();
        keys.users.insert(first, 7);
        keys.users.insert(second, 3);
        keys.skus.insert(sku, 1);
        keys.groups.insert(group, 5);
        let upserts = [
            (first, state(sku, Some(group), 1)),
            (second, state(sku, None, 2)),
            (first, state(sku, Some(group), 3)),
            (first, state(sku, None, 4)),
        ];
        let batch = WriteBatch {
            state_inserts: upserts[..1].to_vec(),
            state_upserts: upserts[1..].to_vec(),
            ..WriteBatch::default()
        };
        let keyed = keyed_states(tenant_id, &batch, &keys).expect("keys");
        let summary: Vec<(i64, i64, i64, u64)> = keyed
            .iter()
            .map(|state| (state.user_key, state.sku_key, state.source_key, state.state.since))
            .collect();
        assert_eq!(summary, vec![(3, 1, 0, 2), (7, 1, 0, 4), (7, 1, 5, 3)]);
        assert!(
            keyed.iter().all(|state| !state.new),
            "the upsert replaced the insert"
        );
        let unknown = WriteBatch {
            state_upserts: vec![(id(99), state(sku, None, 1))],
            ..WriteBatch::default()
        };
        assert!(matches!(
            keyed_states(tenant_id, &unknown, &keys),
            Err(StoreError::InvalidBatch { .. })
        ));
    }

    #[test]
    fn last_of_each_keeps_the_first_place_and_the_last_value() {
        let items = [(1, 'a'), (2, 'b'), (1, 'c')];
        let kept = last_of_each(&items, |(key, _)| id(*key));
        assert_eq!(kept, vec![&(1, 'c'), &(2, 'b')]);
    }
}
