//! The order of a write, written once for both backends: [`write`] drives a
//! [`WriteTransaction`] through the steps below, and SQLite and PostgreSQL implement only the
//! steps whose statements differ between them (how many rows travel at once: SQLite binds rows
//! into multi-row statements, PostgreSQL sends arrays or streams `COPY`; how writers of a tenant
//! take turns: SQLite's database lock, PostgreSQL's advisory lock). The steps that are one
//! statement per write — the tenant's version and counters, the change record, the audit
//! records, the product keys — are shared statements run through [`Session`].
//!
//! The order, in one transaction:
//!
//! 1. the tenant row, when the write creates the tenant (an import);
//! 2. the tenant's lock, then its version (checked against `expected_version`) and next keys;
//! 3. the catalog: service plans, products (their keys are read when later steps need them);
//! 4. the intent rows: groups and their licenses, users and their direct licenses and
//!    memberships, and the keys of the groups and users the rest of the batch refers to; then
//!    the rows edited of stored users (user rows, memberships and direct licenses removed, then
//!    added);
//! 5. license assignment states: deletes, then upserts;
//! 6. deleted users and groups;
//! 7. the work queue: dequeues, then enqueues;
//! 8. the tenant: settings, logical clock, the new version and the next keys;
//! 9. the change record (`tenant_changes`) and, on PostgreSQL, the notice other instances
//!    listen for;
//! 10. directory attributes;
//! 11. audit records, then outbox rows (deliveries the change causes) and change events;
//! 12. commit.
//!
//! Several batches can share one transaction ([`write`] takes a list: the runtime's group commit
//! of concurrent commands): steps 3 to 11 run for each batch in turn, each with its own version
//! and change record; the lock, the version check of the first batch, the notice (of the last
//! version) and the commit happen once.

use licensd_engine::image::{GroupImage, ServicePlanImage, UserImage};
use licensd_engine::{SkuDefinition, TenantSettings, Uuid};
use rustc_hash::FxHashMap;

use crate::batch::{
    keyed_states, referenced_groups, referenced_users, ChangeNotice, KeyedState, Keys, PreparedBatch,
    StateKey, TenantChange, WriteBatch,
};
use crate::codec;
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column};
use crate::reads::tenant_key;
use crate::sql::{Param, ReadRow, Session};

/// The tenant's next keys, advanced as a write hands keys out and stored with it.
pub(crate) struct Counters {
    pub(crate) next_sku_key: i64,
    pub(crate) next_group_key: i64,
    pub(crate) next_user_key: i64,
    pub(crate) next_queue_position: i64,
}

/// What the steps of one write share: the tenant, the version the write starts from, the keys
/// it hands out and the keys of the entities it has written or looked up so far.
pub(crate) struct WriteScope {
    pub(crate) tenant_id: Uuid,
    pub(crate) tenant_key: i64,
    pub(crate) version: u64,
    pub(crate) counters: Counters,
    pub(crate) keys: Keys,
    /// Whether `keys.skus` holds every product of the tenant (read once per transaction).
    pub(crate) sku_keys_read: bool,
}

/// A backend that starts write transactions.
pub(crate) trait WriteBackend {
    type Transaction<'a>: WriteTransaction
    where
        Self: 'a;

    /// Starts the transaction of one write. Dropped without [`WriteTransaction::commit`], it
    /// rolls back.
    fn begin_write(&mut self) -> Result<Self::Transaction<'_>, StoreError>;
}

/// The statements of one write that differ between the backends. Each step gets the keys it
/// needs resolved; the rows it must not touch (entities that are not stored) are already left
/// out.
pub(crate) trait WriteTransaction: Session + Sized {
    /// Inserts a new, empty tenant at version 0; [`StoreError::TenantExists`] when it exists.
    fn insert_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError>;

    /// The key of a stored tenant (a backend may remember it: tenants are never deleted, so a
    /// tenant's key never changes).
    fn known_tenant_key(&mut self, tenant_id: Uuid) -> Result<i64, StoreError> {
        tenant_key(self, tenant_id)
    }

    /// Makes the writers of the tenant take turns until the transaction ends.
    fn lock_tenant(&mut self, tenant_key: i64) -> Result<(), StoreError>;

    /// The write's tenant and starting version are known and checked.
    fn start(&mut self, _scope: &WriteScope) {}

    /// Replaces the tenant's service plans with `plans` (a plan keeps its number).
    fn replace_service_plans(
        &mut self,
        scope: &WriteScope,
        plans: &[ServicePlanImage],
    ) -> Result<(), StoreError>;

    /// Upserts products and replaces their plan lists; records their keys in `scope`.
    fn upsert_skus(&mut self, scope: &mut WriteScope, skus: &[&SkuDefinition]) -> Result<(), StoreError>;

    /// Upserts groups and replaces their licenses; records their keys in `scope`.
    fn upsert_groups(&mut self, scope: &mut WriteScope, groups: &[&GroupImage]) -> Result<(), StoreError>;

    /// Looks up the keys of stored groups among `group_ids` (none of them in `scope` yet) into
    /// `scope`; groups that are not stored stay unknown.
    fn look_up_groups(&mut self, scope: &mut WriteScope, group_ids: &[Uuid]) -> Result<(), StoreError>;

    /// Upserts users and replaces their direct licenses and memberships; records their keys in
    /// `scope`.
    fn upsert_users(&mut self, scope: &mut WriteScope, users: &[&UserImage]) -> Result<(), StoreError>;

    /// Looks up the keys of stored users among `user_ids` (sorted, none of them in `scope`
    /// yet) into `scope`; users that are not stored stay unknown.
    fn look_up_users(&mut self, scope: &mut WriteScope, user_ids: &[Uuid]) -> Result<(), StoreError>;

    /// Rewrites the rows of stored users (not their licenses or memberships).
    fn update_user_rows(&mut self, scope: &WriteScope, users: &[(i64, &UserImage)])
        -> Result<(), StoreError>;

    /// Deletes memberships by their `(user, group)` keys.
    fn delete_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64)],
    ) -> Result<(), StoreError>;

    /// Appends memberships `(user, group, since)`, each after its user's stored ones (in the
    /// order given when a user has several).
    fn append_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64, i64)],
    ) -> Result<(), StoreError>;

    /// Deletes direct licenses by their `(user, product)` keys.
    fn delete_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64)],
    ) -> Result<(), StoreError>;

    /// Writes direct licenses `(user, product, disabled plans, since)`: a stored license of the
    /// user and product is replaced in place, others are appended after the user's licenses.
    fn set_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64, String, i64)],
    ) -> Result<(), StoreError>;

    /// Deletes states by their `(user, product, source)` keys.
    fn delete_states(&mut self, scope: &WriteScope, keys: &[(i64, i64, i64)]) -> Result<(), StoreError>;

    /// Inserts or replaces states (in key order, each key once).
    fn upsert_states(&mut self, scope: &WriteScope, states: &[KeyedState<'_>]) -> Result<(), StoreError>;

    /// Deletes users with their states, memberships, direct licenses and queue entries.
    fn delete_users(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError>;

    /// Deletes groups with their memberships and licenses.
    fn delete_groups(&mut self, scope: &WriteScope, group_keys: &[i64]) -> Result<(), StoreError>;

    /// Removes users from the work queue (`user_keys` in key order).
    fn dequeue(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError>;

    /// Appends users to the work queue in order, those already queued keeping their place;
    /// hands out queue positions from `scope`'s counters.
    fn enqueue(&mut self, scope: &mut WriteScope, user_keys: &[i64]) -> Result<(), StoreError>;

    /// Writes the batch's directory attributes and deletes those of deleted users and groups.
    fn write_directory_attributes(&mut self, tenant_key: i64, batch: &WriteBatch) -> Result<(), StoreError>;

    /// Announces the write to other instances when it commits (PostgreSQL's `NOTIFY`).
    fn announce(&mut self, _notice: &ChangeNotice) -> Result<(), StoreError> {
        Ok(())
    }

    /// Commits the write. `scope` holds the keys and the version the write ended with and
    /// `batches` the users it deleted (SQLite keeps its cache of user keys from them).
    fn commit(self, scope: &WriteScope, batches: &[WriteBatch]) -> Result<(), StoreError>;
}

/// Applies `batches` to the tenant in order in one transaction, into a tenant the same
/// transaction creates first when `create` is set; each batch gets its own version. Returns the
/// tenant's new version (that of the last batch). Nothing is written when it fails.
pub(crate) fn write<B: WriteBackend>(
    backend: &mut B,
    tenant_id: Uuid,
    batches: &[WriteBatch],
    create: Option<&TenantSettings>,
) -> Result<u64, StoreError> {
    let prepared: Vec<PreparedBatch<'_>> = batches
        .iter()
        .map(|batch| PreparedBatch::new(tenant_id, batch))
        .collect::<Result<_, _>>()?;
    let mut transaction = backend.begin_write()?;
    // 1. The tenant, when this write creates it.
    if let Some(settings) = create {
        transaction.insert_tenant(settings)?;
    }
    // 2. Serialize the writers of this tenant, then read what the last one left.
    let tenant_key = match create {
        Some(_) => tenant_key(&mut transaction, tenant_id)?,
        None => transaction.known_tenant_key(tenant_id)?,
    };
    transaction.lock_tenant(tenant_key)?;
    let mut scope = start_scope(&mut transaction, tenant_id, tenant_key)?;
    transaction.start(&scope);
    for (batch, prepared) in batches.iter().zip(&prepared) {
        if let Some(expected) = batch.expected_version {
            if expected != scope.version {
                return Err(StoreError::Conflict {
                    expected,
                    found: scope.version,
                });
            }
        }
        write_batch(&mut transaction, &mut scope, batch, prepared)?;
    }
    if !batches.is_empty() {
        // The notice, delivered to other instances when (and only if) the write commits: the
        // last version covers the batches before it.
        transaction.announce(&ChangeNotice {
            tenant_id,
            version: scope.version,
        })?;
    }
    // 12.
    transaction.commit(&scope, batches)?;
    Ok(scope.version)
}

/// Steps 3 to 11 of one batch; advances `scope.version` to the batch's version.
fn write_batch<T: WriteTransaction>(
    transaction: &mut T,
    scope: &mut WriteScope,
    batch: &WriteBatch,
    prepared: &PreparedBatch<'_>,
) -> Result<(), StoreError> {
    let tenant_id = scope.tenant_id;
    let tenant_key = scope.tenant_key;
    // Keys looked up or written by an earlier batch of the transaction stay valid; those of
    // deleted entities were removed from `scope` with them.
    // 3. The catalog.
    if let Some(plans) = &batch.service_plans {
        transaction.replace_service_plans(scope, plans)?;
    }
    if !prepared.skus.is_empty() {
        transaction.upsert_skus(scope, &prepared.skus)?;
    }
    let needs_sku_keys = !prepared.groups.is_empty()
        || !prepared.users.is_empty()
        || !batch.direct_licenses_set.is_empty()
        || !batch.direct_licenses_removed.is_empty()
        || batch.has_state_writes()
        || !batch.state_deletes.is_empty();
    if needs_sku_keys && !scope.sku_keys_read {
        read_sku_keys(transaction, scope)?;
    }
    // 4. Intent rows, and the keys of everything else the batch refers to.
    if !prepared.groups.is_empty() {
        transaction.upsert_groups(scope, &prepared.groups)?;
    }
    let groups: Vec<Uuid> = referenced_groups(batch, prepared)
        .into_iter()
        .filter(|group_id| !scope.keys.groups.contains_key(group_id))
        .collect();
    if !groups.is_empty() {
        transaction.look_up_groups(scope, &groups)?;
    }
    if !prepared.users.is_empty() {
        transaction.upsert_users(scope, &prepared.users)?;
    }
    let users = referenced_users(batch, &scope.keys);
    if !users.is_empty() {
        transaction.look_up_users(scope, &users)?;
    }
    if batch.has_user_edits() {
        edit_users(transaction, scope, batch)?;
    }
    // 5. States. A state of an entity that is not stored is not stored either.
    let deleted_states = state_keys(&scope.keys, &batch.state_deletes);
    if !deleted_states.is_empty() {
        transaction.delete_states(scope, &deleted_states)?;
    }
    if batch.has_state_writes() {
        let states = keyed_states(tenant_id, batch, &scope.keys)?;
        transaction.upsert_states(scope, &states)?;
    }
    // 6. Deleted users and groups (deleting one that is not stored does nothing).
    let deleted_users: Vec<i64> = batch
        .deleted_users
        .iter()
        .filter_map(|user_id| scope.keys.users.remove(user_id))
        .collect();
    if !deleted_users.is_empty() {
        transaction.delete_users(scope, &deleted_users)?;
    }
    let deleted_groups: Vec<i64> = batch
        .deleted_groups
        .iter()
        .filter_map(|group_id| scope.keys.groups.remove(group_id))
        .collect();
    if !deleted_groups.is_empty() {
        transaction.delete_groups(scope, &deleted_groups)?;
    }
    // 7. The queue. Users that are not stored are not queued either; in key order the deletes
    // walk the queue's user index front to back.
    let mut dequeued: Vec<i64> = batch
        .dequeue
        .iter()
        .filter_map(|user_id| scope.keys.users.get(user_id).copied())
        .collect();
    dequeued.sort_unstable();
    if !dequeued.is_empty() {
        transaction.dequeue(scope, &dequeued)?;
    }
    let enqueued: Vec<i64> = prepared
        .enqueue
        .iter()
        .map(|user_id| scope.keys.user(tenant_id, *user_id))
        .collect::<Result<_, _>>()?;
    if !enqueued.is_empty() {
        transaction.enqueue(scope, &enqueued)?;
    }
    // 8. The tenant's settings, clock, version and next keys.
    let new_version = scope.version + 1;
    update_tenant(transaction, scope, batch, new_version)?;
    // 9. The change record.
    record_change(transaction, tenant_key, new_version, &prepared.change)?;
    // 10. Directory attributes.
    transaction.write_directory_attributes(tenant_key, batch)?;
    crate::nesting::write(transaction, tenant_key, batch)?;
    // 11. Audit records.
    crate::security::insert_audit(transaction, tenant_key, &batch.audit)?;
    if !batch.outbox.is_empty() {
        crate::outbox::insert_entries(transaction, tenant_key, &batch.outbox)?;
    }
    if !batch.change_events.is_empty() {
        crate::change_events::insert_events(transaction, tenant_key, &batch.change_events)?;
    }
    if !batch.alert_digests.is_empty() {
        crate::alert_digests::hold(transaction, tenant_key, &batch.alert_digests)?;
    }
    scope.version = new_version;
    Ok(())
}

/// The rows edited of stored users: user rows, then memberships and direct licenses, removals
/// before additions (as the engine changed them).
fn edit_users<T: WriteTransaction>(
    transaction: &mut T,
    scope: &WriteScope,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    let tenant_id = scope.tenant_id;
    let keys = &scope.keys;
    if !batch.user_properties.is_empty() {
        let users: Vec<(i64, &UserImage)> = batch
            .user_properties
            .iter()
            .map(|user| Ok((keys.user(tenant_id, user.id)?, user)))
            .collect::<Result<_, StoreError>>()?;
        transaction.update_user_rows(scope, &users)?;
    }
    if !batch.memberships_removed.is_empty() {
        let removed: Vec<(i64, i64)> = batch
            .memberships_removed
            .iter()
            .map(|(user_id, group_id)| {
                Ok((keys.user(tenant_id, *user_id)?, keys.group(tenant_id, *group_id)?))
            })
            .collect::<Result<_, StoreError>>()?;
        transaction.delete_memberships(scope, &removed)?;
    }
    if !batch.memberships_added.is_empty() {
        let added: Vec<(i64, i64, i64)> = batch
            .memberships_added
            .iter()
            .map(|(user_id, membership)| {
                Ok((
                    keys.user(tenant_id, *user_id)?,
                    keys.group(tenant_id, membership.group_id)?,
                    logical_time_column(membership.since, "a membership's since")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        transaction.append_memberships(scope, &added)?;
    }
    if !batch.direct_licenses_removed.is_empty() {
        let removed: Vec<(i64, i64)> = batch
            .direct_licenses_removed
            .iter()
            .map(|(user_id, sku_id)| Ok((keys.user(tenant_id, *user_id)?, keys.sku(tenant_id, *sku_id)?)))
            .collect::<Result<_, StoreError>>()?;
        transaction.delete_direct_licenses(scope, &removed)?;
    }
    if !batch.direct_licenses_set.is_empty() {
        let set: Vec<(i64, i64, String, i64)> = batch
            .direct_licenses_set
            .iter()
            .map(|(user_id, direct)| {
                Ok((
                    keys.user(tenant_id, *user_id)?,
                    keys.sku(tenant_id, direct.license.sku_id)?,
                    codec::join_uuids(&direct.license.disabled_plans),
                    logical_time_column(direct.since, "a direct license's since")?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        transaction.set_direct_licenses(scope, &set)?;
    }
    Ok(())
}

/// Reads the version and next keys the tenant's last write left.
fn start_scope(
    session: &mut impl Session,
    tenant_id: Uuid,
    tenant_key: i64,
) -> Result<WriteScope, StoreError> {
    let head = session.query_optional(
        "reading the tenant",
        "SELECT version, next_sku_key, next_group_key, next_user_key, next_queue_position
         FROM tenants WHERE tenant_key = $1",
        &[Param::Integer(tenant_key)],
        |row| {
            Ok((
                row.integer(0)?,
                Counters {
                    next_sku_key: row.integer(1)?,
                    next_group_key: row.integer(2)?,
                    next_user_key: row.integer(3)?,
                    next_queue_position: row.integer(4)?,
                },
            ))
        },
    )?;
    let (version, counters) = head.ok_or(StoreError::UnknownTenant { tenant_id })?;
    Ok(WriteScope {
        tenant_id,
        tenant_key,
        version: logical_time(version, "the tenant version")?,
        counters,
        keys: Keys::default(),
        sku_keys_read: false,
    })
}

fn read_sku_keys(session: &mut impl Session, scope: &mut WriteScope) -> Result<(), StoreError> {
    scope.sku_keys_read = true;
    let keys = &mut scope.keys.skus;
    session.for_each_row(
        "reading product keys",
        "SELECT sku_id, sku_key FROM skus WHERE tenant_key = $1",
        &[Param::Integer(scope.tenant_key)],
        |row| {
            keys.insert(row.id(0)?, row.integer(1)?);
            Ok(())
        },
    )
}

/// The stored keys of the states in `keys`; states of entities that are not stored are left out.
fn state_keys(keys: &Keys, states: &[StateKey]) -> Vec<(i64, i64, i64)> {
    states.iter().filter_map(|key| keys.state_key(key)).collect()
}

fn update_tenant(
    session: &mut impl Session,
    scope: &WriteScope,
    batch: &WriteBatch,
    new_version: u64,
) -> Result<(), StoreError> {
    const ACTION: &str = "updating the tenant";
    if let Some(settings) = &batch.settings {
        session.execute(
            ACTION,
            "UPDATE tenants SET display_name = $2, default_usage_location = $3, self_healing = $4
             WHERE tenant_key = $1",
            &[
                Param::Integer(scope.tenant_key),
                Param::Text(&settings.display_name),
                Param::OptionalText(settings.default_usage_location.as_ref().map(|code| code.as_str())),
                Param::Flag(settings.self_healing),
            ],
        )?;
    }
    let clock = batch
        .clock
        .map(|clock| logical_time_column(clock, "the clock"))
        .transpose()?;
    let counters = &scope.counters;
    session.execute(
        ACTION,
        "UPDATE tenants SET version = $2, clock = coalesce($3, clock), next_sku_key = $4,
             next_group_key = $5, next_user_key = $6, next_queue_position = $7
         WHERE tenant_key = $1",
        &[
            Param::Integer(scope.tenant_key),
            Param::Integer(logical_time_column(new_version, "the version")?),
            Param::OptionalInteger(clock),
            Param::Integer(counters.next_sku_key),
            Param::Integer(counters.next_group_key),
            Param::Integer(counters.next_user_key),
            Param::Integer(counters.next_queue_position),
        ],
    )?;
    Ok(())
}

fn record_change(
    session: &mut impl Session,
    tenant_key: i64,
    version: u64,
    change: &TenantChange,
) -> Result<(), StoreError> {
    let skus = codec::concat_uuids(&change.skus);
    let users = codec::concat_uuids(&change.users);
    let groups = codec::concat_uuids(&change.groups);
    let deleted_users = codec::concat_uuids(&change.deleted_users);
    let deleted_groups = codec::concat_uuids(&change.deleted_groups);
    session.execute(
        "recording the tenant change",
        "INSERT INTO tenant_changes (tenant_key, version, recorded_at, settings, service_plans, queue,
             everything, skus, users, groups, deleted_users, deleted_groups)
         VALUES ($1, $2, {now}, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            Param::Integer(tenant_key),
            Param::Integer(logical_time_column(version, "the version")?),
            Param::Flag(change.settings),
            Param::Flag(change.service_plans),
            Param::Flag(change.queue),
            Param::Flag(change.everything),
            Param::Bytes(&skus),
            Param::Bytes(&users),
            Param::Bytes(&groups),
            Param::Bytes(&deleted_users),
            Param::Bytes(&deleted_groups),
        ],
    )?;
    Ok(())
}

/// Reads `(id, key)` rows of a query into a map (the keys of products, groups, users, plans).
pub(crate) fn read_keys(
    session: &mut impl Session,
    action: &str,
    sql: &'static str,
    params: &[Param<'_>],
    into: &mut FxHashMap<Uuid, i64>,
) -> Result<(), StoreError> {
    session.for_each_row(action, sql, params, |row| {
        into.insert(row.id(0)?, row.integer(1)?);
        Ok(())
    })
}
