//! Graph change notifications, apart from any protocol: each tenant's subscriptions
//! (`users`, `users/{id}`, `groups`, `groups/{id}/members`), kept in memory so a write turns the
//! users and groups it changed into outbox rows of the same transaction
//! ([`ChangeNotifier::add_to_batch`]), and the lifecycle of a subscription whose endpoint keeps
//! failing (`missed`, then `subscriptionRemoved`). The bodies are Graph's JSON, which the runtime
//! does not know: the server hands in a [`NotificationRenderer`].
//!
//! A write costs nothing extra when its tenant has no subscription (one map look-up); with
//! subscriptions, each changed object is matched against the tenant-wide subscriptions of its
//! kind and the per-object ones indexed by its id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use licensd_engine::{Command, Uuid};
use licensd_store::{
    ChangeSubscription, OutboxEntry, Store, StoreError, WriteBatch, OWNER_GRAPH_LIFECYCLE,
    OWNER_GRAPH_SUBSCRIPTION,
};

use crate::tenants::ProcessingSignal;

/// At most this many notifications share one delivery (Graph batches notifications in `value`).
pub const NOTIFICATIONS_PER_DELIVERY: usize = 1_000;

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
}

impl Default for ChangeNotifier {
    fn default() -> ChangeNotifier {
        ChangeNotifier {
            renderer: RwLock::new(None),
            tenants: RwLock::new(HashMap::new()),
            delivery_signal: Arc::new(ProcessingSignal::default()),
            abandoned_in_a_row: Mutex::new(HashMap::new()),
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

    /// Adds to `batch` the notifications of what it changes (`command`: the command it writes,
    /// which tells creations apart; `None` for a processing step) for every subscription of the
    /// tenant that wants them at `now` (ms). Returns whether it added any.
    pub fn add_to_batch(
        &self,
        tenant_id: Uuid,
        batch: &mut WriteBatch,
        command: Option<&Command>,
        now: i64,
    ) -> bool {
        let Some(subscriptions) = self.subscriptions_of(tenant_id) else {
            return false;
        };
        let Some(renderer) = self.renderer.read().ok().and_then(|renderer| renderer.clone()) else {
            return false;
        };
        let changes = batch_changes(batch, command);
        if changes.is_empty() {
            return false;
        }
        // Per subscription (by pointer: one entry each), the changes it wants, in order.
        let mut matched: Vec<(Arc<Active>, Vec<ObjectChange>)> = Vec::new();
        let mut index: HashMap<*const Active, usize> = HashMap::new();
        let mut add = |active: &Arc<Active>, change: &ObjectChange| {
            let key = Arc::as_ptr(active);
            let slot = *index.entry(key).or_insert_with(|| {
                matched.push((Arc::clone(active), Vec::new()));
                matched.len() - 1
            });
            matched[slot].1.push(change.clone());
        };
        for change in &changes {
            match change.kind {
                ObjectKind::User => {
                    for active in &subscriptions.users {
                        if active.wants(change.change_type, now) {
                            add(active, change);
                        }
                    }
                    for active in subscriptions.user.get(&change.id).into_iter().flatten() {
                        if active.wants(change.change_type, now) {
                            add(active, change);
                        }
                    }
                }
                ObjectKind::Group => {
                    for active in &subscriptions.groups {
                        if active.wants(change.change_type, now) {
                            add(active, change);
                        }
                    }
                    if !change.members.is_empty() {
                        for active in subscriptions.group_members.get(&change.id).into_iter().flatten() {
                            if active.wants(ChangeType::Updated, now) {
                                add(active, change);
                            }
                        }
                    }
                }
            }
        }
        let before = batch.outbox.len();
        for (active, changes) in matched {
            for chunk in changes.chunks(NOTIFICATIONS_PER_DELIVERY) {
                batch.outbox.push(OutboxEntry {
                    owner_kind: OWNER_GRAPH_SUBSCRIPTION.to_string(),
                    owner_id: active.stored.subscription_id,
                    url: active.stored.notification_url.clone(),
                    headers: vec![("Content-Type".to_string(), "application/json".to_string())],
                    body: renderer.changes(tenant_id, &active.stored, chunk),
                    items: chunk.len() as u32,
                });
            }
        }
        batch.outbox.len() > before
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
