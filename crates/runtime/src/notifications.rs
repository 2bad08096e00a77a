//! Graph change notifications, apart from any protocol: each tenant's subscriptions
//! (`users`, `users/{id}`, `groups`, `groups/{id}/members`), kept in memory so a write can tell
//! at once whether any subscription may want what it changed, and the lifecycle of a
//! subscription whose endpoint keeps failing (`missed`, then `subscriptionRemoved`). The bodies
//! are Graph's JSON, which the runtime does not know: the server hands in a
//! [`NotificationRenderer`].
//!
//! **Fan-out at delivery time.** A write records what it changed once, as a change event in its
//! own transaction ([`ChangeNotifier::add_to_batch`]), however many subscriptions match; the
//! delivery worker expands the events into one compact outbox delivery per matching subscription
//! ([`ChangeNotifier::expand_step`]: a range of events fixed, then its deliveries written for
//! [`SUBSCRIPTIONS_PER_CHUNK`] subscriptions per short transaction on SQLite), matching each change against the
//! subscriptions as stored (created before the change, not expired then, not removed): the row
//! names the range of events and which of the subscription's notifications in them it carries,
//! and its body is rendered only when it is sent ([`ChangeNotifier::render`]; again for each
//! retry), so no body per subscription is ever written to the database. Several writes'
//! changes for one subscription share a delivery (at most [`NOTIFICATIONS_PER_DELIVERY`]). So a write costs one small row more with 1,000 matching
//! subscribers, and nothing extra when its tenant has no subscription that may want it (a map
//! look-up, then each changed object matched against the tenant-wide subscriptions of its kind
//! and the per-object ones indexed by its id).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use licensd_engine::{Command, Uuid};
use licensd_store::{
    ChangeEvent, ChangeEventEntry, ChangeSubscription, ClaimedDelivery, EventDelivery, ExpansionLimits,
    ExpansionStep, OutboxEntry, Store, StoreError, WriteBatch, OWNER_GRAPH_LIFECYCLE,
    OWNER_GRAPH_SUBSCRIPTION,
};

use crate::tenants::ProcessingSignal;

/// At most this many notifications share one delivery (Graph batches notifications in `value`).
pub const NOTIFICATIONS_PER_DELIVERY: usize = 1_000;
/// At most this many changes share one change event (a processing step of many users writes
/// several).
pub const CHANGES_PER_EVENT: usize = 1_000;
/// At most this many change events are fixed as one range (their changes share one delivery per
/// subscription: the more events, the fewer deliveries — outbox rows written, claimed and
/// settled — per write; 1,000 writes that gathered while the worker was busy cost each
/// subscriber one delivery, not 16).
pub const EVENTS_PER_EXPANSION: usize = 1_000;
/// A range also stops at about this many bytes of encoded changes, about
/// [`NOTIFICATIONS_PER_DELIVERY`] changed objects (a user's change takes 22 bytes, plus one per
/// event), so a range of large events (a processing step's 1,000 changes each) is one event
/// and a subscriber's delivery is rendered from at most about a delivery's worth of changes.
pub const CHANGE_BYTES_PER_RANGE: usize = NOTIFICATIONS_PER_DELIVERY * 23;
/// A range of events is expanded for this many subscriptions per transaction: with 1,000
/// subscribers, SQLite's write lock is held for ~100 outbox rows at a time.
pub const SUBSCRIPTIONS_PER_CHUNK: usize = 100;
/// On PostgreSQL (no database-wide write lock: writers do not wait for the worker's
/// transactions, but every commit waits for the disk) a range is expanded for this many
/// subscriptions per transaction: fewer commits.
pub const SUBSCRIPTIONS_PER_CHUNK_POSTGRES: usize = 1_000;

/// The kind of a changed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    User,
    Group,
}

/// Graph's change types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    Created,
    Updated,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Created => "created",
            ChangeType::Updated => "updated",
            ChangeType::Deleted => "deleted",
        }
    }
}

/// One changed object, as a notification reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectChange {
    pub kind: ObjectKind,
    pub id: Uuid,
    pub change_type: ChangeType,
    /// For a group: members added (`false`) and removed (`true`) by the change.
    pub members: Vec<(Uuid, bool)>,
}

/// Graph's lifecycle events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// Notifications were abandoned after their last attempt.
    Missed,
    /// licensd removed the subscription: its endpoint kept failing.
    SubscriptionRemoved,
}

impl LifecycleEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleEvent::Missed => "missed",
            LifecycleEvent::SubscriptionRemoved => "subscriptionRemoved",
        }
    }
}

/// Renders delivery bodies in Graph's JSON (implemented by the server, which knows the shapes).
pub trait NotificationRenderer: Send + Sync {
    /// The body of one change-notification delivery (`{"value": [...]}`).
    fn changes(
        &self,
        tenant_id: Uuid,
        subscription: &ChangeSubscription,
        changes: &[ObjectChange],
    ) -> Vec<u8>;
    /// The body of one lifecycle notification.
    fn lifecycle(&self, tenant_id: Uuid, subscription: &ChangeSubscription, event: LifecycleEvent)
        -> Vec<u8>;
}

/// What a subscription watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchedResource {
    Users,
    User(Uuid),
    Groups,
    GroupMembers(Uuid),
}

impl WatchedResource {
    /// Graph's resource paths, case-insensitively, with or without a leading `/`:
    /// `users`, `users/{id}`, `groups`, `groups/{id}/members`.
    pub fn parse(text: &str) -> Option<WatchedResource> {
        let lower = text.trim().trim_start_matches('/').to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        match parts.as_slice() {
            ["users"] => Some(WatchedResource::Users),
            ["groups"] => Some(WatchedResource::Groups),
            ["users", id] => id.parse().ok().map(WatchedResource::User),
            ["groups", id, "members"] => id.parse().ok().map(WatchedResource::GroupMembers),
            _ => None,
        }
    }
}

/// Graph's change types of a subscription: a comma-separated list of `created`, `updated`,
/// `deleted`, each at most once; `None` when anything else is in it.
pub fn parse_change_types(text: &str) -> Option<[bool; 3]> {
    let mut wanted = [false; 3];
    for part in text.split(',') {
        let index = match part.trim() {
            "created" => 0,
            "updated" => 1,
            "deleted" => 2,
            _ => return None,
        };
        if wanted[index] {
            return None;
        }
        wanted[index] = true;
    }
    Some(wanted)
}

struct Active {
    stored: ChangeSubscription,
    /// created, updated, deleted.
    wanted: [bool; 3],
}

impl Active {
    fn wants(&self, change: ChangeType, now: i64) -> bool {
        let index = match change {
            ChangeType::Created => 0,
            ChangeType::Updated => 1,
            ChangeType::Deleted => 2,
        };
        self.wanted[index] && self.stored.expires_at > now && self.stored.removed_at.is_none()
    }
}

/// Encodes changes for a change event: a version byte, then per change its kind, change type,
/// id and members (each a removed flag and an id).
fn encode_changes(changes: &[&ObjectChange]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + changes.len() * 22);
    bytes.push(1);
    for change in changes {
        bytes.push(match change.kind {
            ObjectKind::User => 0,
            ObjectKind::Group => 1,
        });
        bytes.push(match change.change_type {
            ChangeType::Created => 0,
            ChangeType::Updated => 1,
            ChangeType::Deleted => 2,
        });
        bytes.extend_from_slice(change.id.as_bytes());
        let members = u32::try_from(change.members.len()).unwrap_or(u32::MAX);
        bytes.extend_from_slice(&members.to_le_bytes());
        for (member, removed) in change.members.iter().take(members as usize) {
            bytes.push(u8::from(*removed));
            bytes.extend_from_slice(member.as_bytes());
        }
    }
    bytes
}

/// Decodes what [`encode_changes`] wrote; `None` when the bytes are not such an encoding.
fn decode_changes(bytes: &[u8]) -> Option<Vec<ObjectChange>> {
    fn take<'a>(bytes: &mut &'a [u8], count: usize) -> Option<&'a [u8]> {
        if bytes.len() < count {
            return None;
        }
        let (taken, rest) = bytes.split_at(count);
        *bytes = rest;
        Some(taken)
    }
    fn id(bytes: &mut &[u8]) -> Option<Uuid> {
        let taken: [u8; 16] = take(bytes, 16)?.try_into().ok()?;
        Some(Uuid::from_bytes(taken))
    }
    let mut rest = bytes;
    if take(&mut rest, 1)? != [1] {
        return None;
    }
    let mut changes = Vec::new();
    while !rest.is_empty() {
        let kind = match take(&mut rest, 1)?[0] {
            0 => ObjectKind::User,
            1 => ObjectKind::Group,
            _ => return None,
        };
        let change_type = match take(&mut rest, 1)?[0] {
            0 => ChangeType::Created,
            1 => ChangeType::Updated,
            2 => ChangeType::Deleted,
            _ => return None,
        };
        let object_id = id(&mut rest)?;
        let count: [u8; 4] = take(&mut rest, 4)?.try_into().ok()?;
        let count = u32::from_le_bytes(count) as usize;
        let mut members = Vec::with_capacity(count.min(rest.len() / 17));
        for _ in 0..count {
            let removed = take(&mut rest, 1)?[0] != 0;
            members.push((id(&mut rest)?, removed));
        }
        changes.push(ObjectChange {
            kind,
            id: object_id,
            change_type,
            members,
        });
    }
    Some(changes)
}

/// A tenant's subscriptions, indexed by what they watch.
#[derive(Default)]
struct TenantSubscriptions {
    users: Vec<Arc<Active>>,
    groups: Vec<Arc<Active>>,
    user: HashMap<Uuid, Vec<Arc<Active>>>,
    group_members: HashMap<Uuid, Vec<Arc<Active>>>,
}

impl TenantSubscriptions {
    fn build(stored: Vec<ChangeSubscription>) -> TenantSubscriptions {
        let mut built = TenantSubscriptions::default();
        for subscription in stored {
            let (Some(resource), Some(wanted)) = (
                WatchedResource::parse(&subscription.resource),
                parse_change_types(&subscription.change_types),
            ) else {
                continue;
            };
            if subscription.removed_at.is_some() {
                continue;
            }
            let active = Arc::new(Active {
                stored: subscription,
                wanted,
            });
            match resource {
                WatchedResource::Users => built.users.push(active),
                WatchedResource::Groups => built.groups.push(active),
                WatchedResource::User(id) => built.user.entry(id).or_default().push(active),
                WatchedResource::GroupMembers(id) => built.group_members.entry(id).or_default().push(active),
            }
        }
        built
    }

    /// The subscriptions that want `change` made at `at` (ms), each once.
    fn matching<'a>(&'a self, change: &ObjectChange, at: i64) -> impl Iterator<Item = &'a Arc<Active>> + 'a {
        let (everything, own): (&[Arc<Active>], &[Arc<Active>]) = match change.kind {
            ObjectKind::User => (
                &self.users,
                self.user.get(&change.id).map_or(&[][..], Vec::as_slice),
            ),
            ObjectKind::Group => (
                &self.groups,
                if change.members.is_empty() {
                    &[][..]
                } else {
                    self.group_members.get(&change.id).map_or(&[][..], Vec::as_slice)
                },
            ),
        };
        let change_type = change.change_type;
        let member_change = change.kind == ObjectKind::Group;
        everything
            .iter()
            .filter(move |active| active.wants(change_type, at))
            .chain(own.iter().filter(move |active| {
                // A group's members changed: an update of `groups/{id}/members`.
                let wanted = if member_change {
                    ChangeType::Updated
                } else {
                    change_type
                };
                active.wants(wanted, at)
            }))
            .filter(move |active| active.stored.created_at <= at)
    }

    fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.groups.is_empty()
            && self.user.is_empty()
            && self.group_members.is_empty()
    }
}

/// A settled delivery, as [`ChangeNotifier::delivery_settled`] hears of it.
#[derive(Clone, Copy, Debug)]
pub struct SettledDelivery<'a> {
    pub tenant_id: Uuid,
    pub owner_kind: &'a str,
    pub owner_id: Uuid,
    /// Given up after its last attempt (else delivered).
    pub abandoned: bool,
    /// Abandoned deliveries in a row after which the subscription is removed.
    pub removal_after: u32,
    /// Milliseconds since the Unix epoch.
    pub now: i64,
}

/// Every tenant's subscriptions, and what turns writes into notifications.
pub struct ChangeNotifier {
    renderer: RwLock<Option<Arc<dyn NotificationRenderer>>>,
    tenants: RwLock<HashMap<Uuid, Arc<TenantSubscriptions>>>,
    /// What the delivery worker waits on.
    delivery_signal: Arc<ProcessingSignal>,
    /// Abandoned deliveries in a row, per subscription (this instance's count).
    abandoned_in_a_row: Mutex<HashMap<Uuid, u32>>,
    /// When a write or processing step of this instance last went by (milliseconds since the
    /// Unix epoch): the delivery worker yields to busy writers ([`ChangeNotifier::writers_busy`]).
    last_write: AtomicI64,
}

impl Default for ChangeNotifier {
    fn default() -> ChangeNotifier {
        ChangeNotifier {
            renderer: RwLock::new(None),
            tenants: RwLock::new(HashMap::new()),
            delivery_signal: Arc::new(ProcessingSignal::default()),
            abandoned_in_a_row: Mutex::new(HashMap::new()),
            last_write: AtomicI64::new(0),
        }
    }
}

/// The changes of one command or processing step, from what its batch writes.
fn batch_changes(batch: &WriteBatch, command: Option<&Command>) -> Vec<ObjectChange> {
    let created = match command {
        Some(Command::CreateUser(user)) => Some(user.id),
        Some(Command::CreateGroup { group_id, .. }) => Some(*group_id),
        _ => None,
    };
    let mut users: Vec<Uuid> = Vec::new();
    users.extend(batch.users.iter().map(|user| user.id));
    users.extend(batch.user_properties.iter().map(|user| user.id));
    users.extend(batch.memberships_added.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.memberships_removed.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.direct_licenses_set.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.direct_licenses_removed.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.state_inserts.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.state_upserts.iter().map(|(user_id, _)| *user_id));
    users.extend(batch.state_deletes.iter().map(|key| key.user_id));
    users.sort_unstable();
    users.dedup();
    let mut deleted_users = batch.deleted_users.clone();
    deleted_users.sort_unstable();
    let mut changes: Vec<ObjectChange> = users
        .into_iter()
        .filter(|id| deleted_users.binary_search(id).is_err())
        .map(|id| ObjectChange {
            kind: ObjectKind::User,
            id,
            change_type: if created == Some(id) {
                ChangeType::Created
            } else {
                ChangeType::Updated
            },
            members: Vec::new(),
        })
        .collect();
    changes.extend(deleted_users.iter().map(|id| ObjectChange {
        kind: ObjectKind::User,
        id: *id,
        change_type: ChangeType::Deleted,
        members: Vec::new(),
    }));
    let mut groups: HashMap<Uuid, Vec<(Uuid, bool)>> = HashMap::new();
    for group in &batch.groups {
        groups.entry(group.id).or_default();
    }
    for (user_id, membership) in &batch.memberships_added {
        groups
            .entry(membership.group_id)
            .or_default()
            .push((*user_id, false));
    }
    for (user_id, group_id) in &batch.memberships_removed {
        groups.entry(*group_id).or_default().push((*user_id, true));
    }
    let mut group_changes: Vec<ObjectChange> = groups
        .into_iter()
        .filter(|(id, _)| !batch.deleted_groups.contains(id))
        .map(|(id, members)| ObjectChange {
            kind: ObjectKind::Group,
            id,
            change_type: if created == Some(id) {
                ChangeType::Created
            } else {
                ChangeType::Updated
            },
            members,
        })
        .collect();
    group_changes.sort_by_key(|change| change.id);
    changes.extend(group_changes);
    changes.extend(batch.deleted_groups.iter().map(|id| ObjectChange {
        kind: ObjectKind::Group,
        id: *id,
        change_type: ChangeType::Deleted,
        members: Vec::new(),
    }));
    changes
}

/// The deliveries of `events` to the tenant's `stored` subscriptions: per matching subscription,
/// chunks of at most [`NOTIFICATIONS_PER_DELIVERY`] of its notifications, as ranges over the
/// events (no body: [`ChangeNotifier::render`] renders it when the delivery is sent).
fn fan_out(tenant_id: Uuid, stored: &[ChangeSubscription], events: &[ChangeEvent]) -> Vec<EventDelivery> {
    let subscriptions = TenantSubscriptions::build(stored.to_vec());
    if subscriptions.is_empty() {
        return Vec::new();
    }
    // Per subscription (by pointer: one entry each), how many notifications it gets, in order.
    let mut matched: Vec<(Arc<Active>, usize)> = Vec::new();
    let mut index: HashMap<*const Active, usize> = HashMap::new();
    for event in events {
        let Some(changes) = decode_changes(&event.changes) else {
            tracing::error!(tenant = %tenant_id, event = event.event_id, "a change event cannot be decoded; its notifications are lost");
            continue;
        };
        for change in &changes {
            for active in subscriptions.matching(change, event.at) {
                let slot = *index.entry(Arc::as_ptr(active)).or_insert_with(|| {
                    matched.push((Arc::clone(active), 0));
                    matched.len() - 1
                });
                matched[slot].1 += 1;
            }
        }
    }
    let mut deliveries = Vec::new();
    for (active, count) in matched {
        let mut first_item = 0;
        while first_item < count {
            let items = (count - first_item).min(NOTIFICATIONS_PER_DELIVERY);
            deliveries.push(EventDelivery {
                owner_kind: OWNER_GRAPH_SUBSCRIPTION.to_string(),
                owner_id: active.stored.subscription_id,
                url: active.stored.notification_url.clone(),
                headers: vec![("Content-Type".to_string(), "application/json".to_string())],
                first_item: u32::try_from(first_item).unwrap_or(u32::MAX),
                items: u32::try_from(items).unwrap_or(u32::MAX),
            });
            first_item += items;
        }
    }
    deliveries
}

/// The limits of an expansion step with chunks of `subscriptions`.
fn expansion_limits(subscriptions: usize) -> ExpansionLimits {
    ExpansionLimits {
        events: EVENTS_PER_EXPANSION,
        change_bytes: CHANGE_BYTES_PER_RANGE,
        subscriptions,
    }
}

/// The changes of `events` that `subscription` wanted when each was made (as [`fan_out`] matched
/// them: a subscription removed since still gets what was matched before its removal).
fn changes_for(subscription: &ChangeSubscription, events: &[(i64, Vec<ObjectChange>)]) -> Vec<ObjectChange> {
    let mut as_matched = subscription.clone();
    as_matched.removed_at = None;
    let single = TenantSubscriptions::build(vec![as_matched]);
    let mut wanted = Vec::new();
    for (at, changes) in events {
        for change in changes {
            if single.matching(change, *at).next().is_some() {
                wanted.push(change.clone());
            }
        }
    }
    wanted
}

impl ChangeNotifier {
    /// Sets the renderer of delivery bodies; until then no notification is written.
    pub fn set_renderer(&self, renderer: Arc<dyn NotificationRenderer>) {
        if let Ok(mut slot) = self.renderer.write() {
            *slot = Some(renderer);
        }
    }

    /// What the delivery worker waits on; notified after every write that added outbox rows.
    pub fn delivery_signal(&self) -> Arc<ProcessingSignal> {
        Arc::clone(&self.delivery_signal)
    }

    /// Whether a write or processing step of this instance went by within `within_ms` of `now`
    /// (milliseconds since the Unix epoch).
    pub fn writers_busy(&self, now: i64, within_ms: i64) -> bool {
        now.saturating_sub(self.last_write.load(Ordering::Relaxed)) <= within_ms
    }

    /// Wakes the delivery worker.
    pub fn wake(&self) {
        self.delivery_signal.notify();
    }

    /// Reads the tenant's subscriptions again (after a change here or a notice of another
    /// instance's).
    pub fn reload(&self, store: &mut Store, tenant_id: Uuid) -> Result<(), StoreError> {
        let stored = store.change_subscriptions(tenant_id)?;
        let built = TenantSubscriptions::build(stored);
        if let Ok(mut tenants) = self.tenants.write() {
            if built.is_empty() {
                tenants.remove(&tenant_id);
            } else {
                tenants.insert(tenant_id, Arc::new(built));
            }
        }
        Ok(())
    }

    fn subscriptions_of(&self, tenant_id: Uuid) -> Option<Arc<TenantSubscriptions>> {
        self.tenants.read().ok()?.get(&tenant_id).cloned()
    }

    /// Adds to `batch` a record of what it changes (`command`: the command it writes, which
    /// tells creations apart; `None` for a processing step) when some subscription of the tenant
    /// may want it at `now` (ms): the changes no subscription wants are left out, and the
    /// record is expanded into deliveries later ([`ChangeNotifier::expand`]). Returns whether it
    /// added any.
    pub fn add_to_batch(
        &self,
        tenant_id: Uuid,
        batch: &mut WriteBatch,
        command: Option<&Command>,
        now: i64,
    ) -> bool {
        self.last_write.fetch_max(now, Ordering::Relaxed);
        let Some(subscriptions) = self.subscriptions_of(tenant_id) else {
            return false;
        };
        let changes = batch_changes(batch, command);
        let wanted: Vec<&ObjectChange> = changes
            .iter()
            .filter(|change| subscriptions.matching(change, now).next().is_some())
            .collect();
        if wanted.is_empty() {
            return false;
        }
        for chunk in wanted.chunks(CHANGES_PER_EVENT) {
            batch.change_events.push(ChangeEventEntry {
                at: now,
                changes: encode_changes(chunk),
            });
        }
        true
    }

    /// Expands every recorded change event (of every tenant) into deliveries, step after step
    /// ([`ChangeNotifier::expand_step`] with chunks of [`SUBSCRIPTIONS_PER_CHUNK`]) until none
    /// is left: each change goes to the tenant's subscriptions (as stored) that wanted it when
    /// it was made; one subscription's changes share deliveries of at most
    /// [`NOTIFICATIONS_PER_DELIVERY`]. Returns how many events were expanded; nothing is done
    /// before the renderer is set.
    pub fn expand(&self, store: &mut Store) -> Result<usize, StoreError> {
        if !self.has_renderer() {
            return Ok(0);
        }
        store.expand_change_events(&expansion_limits(SUBSCRIPTIONS_PER_CHUNK), &mut fan_out)
    }

    /// One step of the expansion, one short transaction ([`Store::expand_change_events_step`]):
    /// the deliveries of the next `chunk` subscriptions of a pending range of events, the range
    /// first fixed (up to [`EVENTS_PER_EXPANSION`] waiting events and
    /// [`CHANGE_BYTES_PER_RANGE`]) when none is pending. The delivery worker takes
    /// one step at a time, so SQLite's write lock is never held for a whole fan-out.
    pub fn expand_step(&self, store: &mut Store, chunk: usize) -> Result<ExpansionStep, StoreError> {
        if !self.has_renderer() {
            return Ok(ExpansionStep::Idle);
        }
        store.expand_change_events_step(&expansion_limits(chunk), &mut fan_out)
    }

    fn has_renderer(&self) -> bool {
        self.renderer
            .read()
            .ok()
            .and_then(|renderer| renderer.clone())
            .is_some()
    }

    /// Renders the bodies of the claimed deliveries of change notifications (those naming
    /// change events, [`ClaimedDelivery::events`]): each subscription's notifications of the
    /// events, as it stands now, the events read once per range. Returns the deliveries that
    /// cannot be rendered, by index, with why (their subscription was deleted, their events are
    /// gone): they are to be given up.
    pub fn render(
        &self,
        store: &mut Store,
        claimed: &mut [ClaimedDelivery],
    ) -> Result<Vec<(usize, String)>, StoreError> {
        let mut unrenderable = Vec::new();
        if claimed.iter().all(|delivery| delivery.events.is_none()) {
            return Ok(unrenderable);
        }
        let Some(renderer) = self.renderer.read().ok().and_then(|renderer| renderer.clone()) else {
            for (index, delivery) in claimed.iter().enumerate() {
                if delivery.events.is_some() {
                    unrenderable.push((index, "no notification renderer is set".to_string()));
                }
            }
            return Ok(unrenderable);
        };
        let mut subscriptions: HashMap<Uuid, Vec<ChangeSubscription>> = HashMap::new();
        type DecodedEvents = Vec<(i64, Vec<ObjectChange>)>;
        let mut ranges: HashMap<(Uuid, i64, i64), DecodedEvents> = HashMap::new();
        for (index, delivery) in claimed.iter_mut().enumerate() {
            let Some(events) = delivery.events else {
                continue;
            };
            let tenant_id = delivery.tenant_id;
            let stored = match subscriptions.entry(tenant_id) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(store.change_subscriptions(tenant_id)?)
                }
            };
            let Some(subscription) = stored
                .iter()
                .find(|subscription| subscription.subscription_id == delivery.owner_id)
            else {
                unrenderable.push((index, "the subscription was deleted".to_string()));
                continue;
            };
            let key = (tenant_id, events.first_event, events.last_event);
            let decoded = match ranges.entry(key) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let read =
                        store.change_events_between(tenant_id, events.first_event, events.last_event)?;
                    entry.insert(
                        read.iter()
                            .filter_map(|event| Some((event.at, decode_changes(&event.changes)?)))
                            .collect(),
                    )
                }
            };
            let wanted: Vec<ObjectChange> = changes_for(subscription, decoded)
                .into_iter()
                .skip(events.first_item as usize)
                .take(delivery.items as usize)
                .collect();
            if wanted.is_empty() {
                unrenderable.push((index, "the notifications' change events are gone".to_string()));
                continue;
            }
            delivery.body = renderer.changes(tenant_id, subscription, &wanted);
        }
        Ok(unrenderable)
    }

    /// Reacts to a settled delivery of a Graph subscription: an abandoned change notification
    /// sends `missed` to the subscription's lifecycle URL, and after `removal_after` abandoned in
    /// a row the subscription is removed (`subscriptionRemoved`); a delivered one resets the
    /// count. Other owners' deliveries are ignored.
    pub fn delivery_settled(
        &self,
        store: &mut Store,
        settled: &SettledDelivery<'_>,
    ) -> Result<(), StoreError> {
        let SettledDelivery {
            tenant_id,
            owner_kind,
            owner_id: subscription_id,
            abandoned,
            removal_after,
            now,
        } = *settled;
        if owner_kind != OWNER_GRAPH_SUBSCRIPTION {
            return Ok(());
        }
        let in_a_row = {
            let Ok(mut counts) = self.abandoned_in_a_row.lock() else {
                return Ok(());
            };
            if !abandoned {
                counts.remove(&subscription_id);
                return Ok(());
            }
            let count = counts.entry(subscription_id).or_insert(0);
            *count += 1;
            *count
        };
        let Some(subscription) = store
            .change_subscriptions(tenant_id)?
            .into_iter()
            .find(|subscription| subscription.subscription_id == subscription_id)
        else {
            return Ok(());
        };
        let remove = in_a_row >= removal_after.max(1);
        if remove && subscription.removed_at.is_none() {
            store.remove_change_subscription(tenant_id, subscription_id, now)?;
            self.reload(store, tenant_id)?;
            if let Ok(mut counts) = self.abandoned_in_a_row.lock() {
                counts.remove(&subscription_id);
            }
        }
        let renderer = self.renderer.read().ok().and_then(|renderer| renderer.clone());
        if let (Some(url), Some(renderer)) = (&subscription.lifecycle_notification_url, renderer) {
            let mut events = vec![LifecycleEvent::Missed];
            if remove && subscription.removed_at.is_none() {
                events.push(LifecycleEvent::SubscriptionRemoved);
            }
            let entries: Vec<OutboxEntry> = events
                .into_iter()
                .map(|event| OutboxEntry {
                    owner_kind: OWNER_GRAPH_LIFECYCLE.to_string(),
                    owner_id: subscription_id,
                    url: url.clone(),
                    headers: vec![("Content-Type".to_string(), "application/json".to_string())],
                    body: renderer.lifecycle(tenant_id, &subscription, event),
                    items: 1,
                })
                .collect();
            store.enqueue_deliveries(tenant_id, &entries)?;
            self.wake();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_change_types_parse_as_graph_spells_them() {
        let id = Uuid::from_u128(9);
        assert_eq!(WatchedResource::parse("users"), Some(WatchedResource::Users));
        assert_eq!(WatchedResource::parse("/Users"), Some(WatchedResource::Users));
        assert_eq!(WatchedResource::parse("groups"), Some(WatchedResource::Groups));
        assert_eq!(
            WatchedResource::parse(&format!("users/{id}")),
            Some(WatchedResource::User(id))
        );
        assert_eq!(
            WatchedResource::parse(&format!("groups/{id}/members")),
            Some(WatchedResource::GroupMembers(id))
        );
        assert_eq!(WatchedResource::parse("me/messages"), None);
        assert_eq!(WatchedResource::parse("users/not-an-id"), None);
        assert_eq!(
            parse_change_types("created,updated,deleted"),
            Some([true, true, true])
        );
        assert_eq!(parse_change_types("updated"), Some([false, true, false]));
        assert_eq!(parse_change_types("updated,updated"), None);
        assert_eq!(parse_change_types("moved"), None);
        assert_eq!(parse_change_types(""), None);
    }
}
