//! The PostgreSQL backend: one connection, the schema's migrations, and every read and write of
//! the store as PostgreSQL statements. Writers of one tenant are serialized across instances by a
//! transaction-scoped advisory lock on the tenant's key; bulk rows travel as arrays (`unnest`) or
//! through binary `COPY`.

use std::time::Duration;

use licensd_engine::image::{GroupImage, ServicePlanImage, TenantImage, UserImage};
use licensd_engine::{ServicePlanDefinition, ServicePlanRules, SkuDefinition, TenantSettings, Uuid};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql, Type};
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{
    keyed_states, last_of_each, referenced_groups, referenced_users, ChangeNotice, KeyedState, Keys,
    PreparedBatch, StateKey, TenantChange, WriteBatch,
};
use crate::codec::{self, PlanNumbers, StateRowEncoder};
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column, ImageBuilder, StateRow};
use crate::migration::Migration;

mod directory;
mod security;
mod subscriptions;

/// The schema's migrations, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial schema",
        sql: include_str!("migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "access tokens and audit log",
        sql: include_str!("migrations/postgres/0002_security.sql"),
    },
    Migration {
        version: 3,
        name: "directory attributes",
        sql: include_str!("migrations/postgres/0003_directory_attributes.sql"),
    },
    Migration {
        version: 4,
        name: "subscription lifecycles",
        sql: include_str!("migrations/postgres/0004_subscription_lifecycles.sql"),
    },
];

/// The first key of every advisory lock licensd takes: `licd` (in ASCII) mixed with a hash of the
/// schema the connection works in, so licensd's locks collide neither with another
/// application's nor with those of another licensd installation in another schema of the same
/// database (advisory locks are database-wide; tenant keys are per schema).
fn lock_class(client: &mut Client) -> Result<i32, StoreError> {
    let row = client
        .query_one("SELECT hashtext(current_schema())", &[])
        .map_err(StoreError::postgres("reading the current schema"))?;
    let schema_hash: i32 = get(&row, 0)?;
    Ok(0x6c69_6364 ^ schema_hash)
}
/// The second key of the lock that serializes migrations; tenant keys start at 1.
const MIGRATION_LOCK: i32 = 0;

/// The database's clock in milliseconds since the Unix epoch.
const NOW_MILLISECONDS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// Rows per statement when rows travel as arrays.
const CHUNK: usize = 10_000;
/// Above this many state upserts a write streams them with `COPY` instead of arrays.
const COPY_THRESHOLD: usize = 2_000;

/// A store on a PostgreSQL database.
pub struct PostgresStore {
    client: Client,
    /// Statements prepared on this connection, by their text.
    statements: FxHashMap<&'static str, Statement>,
    /// The first key of this connection's advisory locks ([`lock_class`]).
    lock_class: i32,
    /// The channel writes announce themselves on (`NOTIFY`): one per schema, like the locks.
    change_channel: String,
}

/// The `LISTEN`/`NOTIFY` channel of the schema whose lock class is `lock_class`.
fn change_channel(lock_class: i32) -> String {
    format!("licensd_changes_{:08x}", lock_class as u32)
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|source| StoreError::corrupt(format!("column {index} cannot be read: {source}")))
}

fn milliseconds(ttl: Duration) -> i64 {
    // Ten years at most, so adding it to the clock never overflows.
    ttl.as_millis().min(315_360_000_000) as i64
}

fn lock_object(tenant_key: i64) -> Result<i32, StoreError> {
    i32::try_from(tenant_key)
        .map_err(|_| StoreError::corrupt(format!("tenant key {tenant_key} exceeds 32 bits")))
}

/// Prepares `sql` once per connection.
fn statement(
    transaction: &mut Transaction<'_>,
    statements: &mut FxHashMap<&'static str, Statement>,
    sql: &'static str,
) -> Result<Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let prepared = transaction
        .prepare(sql)
        .map_err(StoreError::postgres("preparing a statement"))?;
    statements.insert(sql, prepared.clone());
    Ok(prepared)
}

impl PostgresStore {
    /// Connects to `url` and migrates the database.
    pub(crate) fn open(url: &str) -> Result<PostgresStore, StoreError> {
        let mut client = Client::connect(url, NoTls).map_err(StoreError::postgres("connecting"))?;
        let lock_class = lock_class(&mut client)?;
        let mut store = PostgresStore {
            client,
            statements: FxHashMap::default(),
            lock_class,
            change_channel: change_channel(lock_class),
        };
        store.migrate()?;
        Ok(store)
    }

    fn applied_version(transaction: &mut Transaction<'_>) -> Result<u64, StoreError> {
        let row = transaction
            .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
            .map_err(StoreError::postgres("reading the schema version"))?;
        logical_time(get(&row, 0)?, "the schema version")
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        // Each step runs under the migration lock, so instances starting together migrate once.
        loop {
            let mut transaction = self
                .client
                .transaction()
                .map_err(StoreError::postgres("starting a migration"))?;
            transaction
                .execute(
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&self.lock_class, &MIGRATION_LOCK],
                )
                .map_err(StoreError::postgres("taking the migration lock"))?;
            transaction
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                         version BIGINT PRIMARY KEY,
                         name TEXT NOT NULL,
                         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                     )",
                )
                .map_err(StoreError::postgres("creating schema_migrations"))?;
            let applied = Self::applied_version(&mut transaction)?;
            crate::migration::check_not_too_new(applied)?;
            let Some(migration) = MIGRATIONS.iter().find(|migration| migration.version > applied) else {
                transaction
                    .commit()
                    .map_err(StoreError::postgres("committing the schema check"))?;
                return Ok(());
            };
            let action = format!("applying migration {} ({})", migration.version, migration.name);
            transaction
                .batch_execute(migration.sql)
                .map_err(StoreError::postgres(&action))?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    &[&(migration.version as i64), &migration.name],
                )
                .map_err(StoreError::postgres(&action))?;
            transaction.commit().map_err(StoreError::postgres(&action))?;
        }
    }

    pub(crate) fn schema_version(&mut self) -> Result<u64, StoreError> {
        let row = self
            .client
            .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
            .map_err(StoreError::postgres("reading the schema version"))?;
        logical_time(get(&row, 0)?, "the schema version")
    }

    pub(crate) fn create_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        Self::insert_tenant(&mut self.client, settings)
    }

    /// Inserts a new, empty tenant (within a transaction when `client` is one); refuses one
    /// that exists.
    fn insert_tenant(
        client: &mut impl postgres::GenericClient,
        settings: &TenantSettings,
    ) -> Result<(), StoreError> {
        let inserted = client.execute(
            "INSERT INTO tenants (tenant_id, display_name, default_usage_location, self_healing, clock, version)
             VALUES ($1, $2, $3, $4, 0, 0)",
            &[
                &settings.tenant_id,
                &settings.display_name,
                &settings.default_usage_location.as_ref().map(|code| code.as_str()),
                &settings.self_healing,
            ],
        );
        match inserted {
            Ok(_) => Ok(()),
            Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::TenantExists {
                    tenant_id: settings.tenant_id,
                })
            }
            Err(source) => Err(StoreError::Postgres {
                action: "inserting the tenant".to_string(),
                source,
            }),
        }
    }

    pub(crate) fn tenant_ids(&mut self) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .client
            .query("SELECT tenant_id FROM tenants ORDER BY tenant_key", &[])
            .map_err(StoreError::postgres("listing tenants"))?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    fn tenant_key(
        client: &mut impl postgres::GenericClient,
        tenant_id: Uuid,
    ) -> Result<(i64, u64), StoreError> {
        let row = client
            .query_opt(
                "SELECT tenant_key, version FROM tenants WHERE tenant_id = $1",
                &[&tenant_id],
            )
            .map_err(StoreError::postgres("looking up the tenant"))?
            .ok_or(StoreError::UnknownTenant { tenant_id })?;
        Ok((get(&row, 0)?, logical_time(get(&row, 1)?, "the tenant version")?))
    }

    pub(crate) fn tenant_version(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        Ok(Self::tenant_key(&mut self.client, tenant_id)?.1)
    }

    pub(crate) fn tenant_versions(&mut self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let rows = self
            .client
            .query("SELECT tenant_id, version FROM tenants ORDER BY tenant_key", &[])
            .map_err(StoreError::postgres("reading tenant versions"))?;
        rows.iter()
            .map(|row| Ok((get(row, 0)?, logical_time(get(row, 1)?, "the tenant version")?)))
            .collect()
    }

    /// Subscribes this connection to the notices every committed write sends.
    pub(crate) fn listen_for_changes(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute(&format!("LISTEN {}", self.change_channel))
            .map_err(StoreError::postgres("listening for changes"))
    }

    /// Waits up to `timeout` for the first notice, then takes every notice already received.
    pub(crate) fn wait_for_changes(&mut self, timeout: Duration) -> Result<Vec<ChangeNotice>, StoreError> {
        let mut payloads = Vec::new();
        let mut notifications = self.client.notifications();
        let first = notifications
            .timeout_iter(timeout)
            .next()
            .map_err(StoreError::postgres("waiting for changes"))?;
        if let Some(first) = first {
            payloads.push(first.payload().to_string());
            let mut pending = notifications.iter();
            while let Some(next) = pending.next().map_err(StoreError::postgres("reading changes"))? {
                payloads.push(next.payload().to_string());
            }
        }
        Ok(payloads
            .iter()
            .filter_map(|payload| ChangeNotice::parse(payload))
            .collect())
    }

    /// Takes the tenant's write lock for this connection (session-level, re-entrant with the
    /// transaction-level lock every write takes), waiting for another instance to release it.
    pub(crate) fn lock_tenant(&mut self, tenant_id: Uuid) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        self.client
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&self.lock_class, &lock_object(tenant_key)?],
            )
            .map_err(StoreError::postgres("taking the tenant's lock"))?;
        Ok(())
    }

    /// Releases what [`PostgresStore::lock_tenant`] took.
    pub(crate) fn unlock_tenant(&mut self, tenant_id: Uuid) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        self.client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&self.lock_class, &lock_object(tenant_key)?],
            )
            .map_err(StoreError::postgres("releasing the tenant's lock"))?;
        Ok(())
    }

    // ----- loading ------------------------------------------------------------------------------

    pub(crate) fn load_tenant(&mut self, tenant_id: Uuid) -> Result<(TenantImage, u64), StoreError> {
        // One snapshot for every query: the image is consistent while other instances write.
        let mut transaction = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::postgres("starting to load a tenant"))?;
        let (tenant_key, version) = Self::tenant_key(&mut transaction, tenant_id)?;
        let row = transaction
            .query_one(
                "SELECT display_name, default_usage_location, self_healing, clock
                 FROM tenants WHERE tenant_key = $1",
                &[&tenant_key],
            )
            .map_err(StoreError::postgres("reading the tenant"))?;
        let settings = TenantSettings {
            tenant_id,
            display_name: get(&row, 0)?,
            default_usage_location: codec::parse_optional_country(get(&row, 1)?)?,
            self_healing: get(&row, 2)?,
        };
        let clock = logical_time(get(&row, 3)?, "the tenant clock")?;
        let mut builder = ImageBuilder::default();
        load_rows(
            &mut transaction,
            "reading service plans",
            "SELECT plan_number, position, plan_id, name, display_name, mutually_exclusive_with,
                    requires_any_of, unavailable_in, needs_unique_proxy_address
             FROM service_plans WHERE tenant_key = $1 ORDER BY position",
            tenant_key,
            |row| {
                let plan = ServicePlanImage {
                    definition: ServicePlanDefinition {
                        service_plan_id: get(row, 2)?,
                        service_plan_name: get(row, 3)?,
                        display_name: get(row, 4)?,
                    },
                    rules: ServicePlanRules {
                        mutually_exclusive_with: codec::split_uuids(get(row, 5)?)?,
                        requires_any_of: codec::split_uuids(get(row, 6)?)?,
                        unavailable_in: codec::split_countries(get(row, 7)?)?,
                        needs_unique_proxy_address: get(row, 8)?,
                    },
                };
                builder.add_service_plan(plan_number(get(row, 0)?)?, plan_number(get(row, 1)?)?, plan);
                Ok(())
            },
        )?;
        builder.finish_service_plans();
        load_rows(
            &mut transaction,
            "reading products",
            "SELECT sku_key, sku_id, sku_part_number, display_name, applies_to, prepaid_units,
                    capability_status
             FROM skus WHERE tenant_key = $1 ORDER BY sku_key",
            tenant_key,
            |row| {
                let sku = SkuDefinition {
                    sku_id: get(row, 1)?,
                    sku_part_number: get(row, 2)?,
                    display_name: get(row, 3)?,
                    applies_to: codec::parse_applies_to(get(row, 4)?)?,
                    service_plans: Vec::new(),
                    prepaid_units: u32::try_from(get::<i64>(row, 5)?)
                        .map_err(|_| StoreError::corrupt("prepaid units out of range"))?,
                    capability_status: codec::parse_capability_status(get(row, 6)?)?,
                };
                builder.add_sku(get(row, 0)?, sku);
                Ok(())
            },
        )?;
        load_rows(
            &mut transaction,
            "reading the plans of products",
            "SELECT sku_key, plan_id FROM sku_plans WHERE tenant_key = $1 ORDER BY sku_key, position",
            tenant_key,
            |row| builder.add_sku_plan(get(row, 0)?, get(row, 1)?),
        )?;
        load_rows(
            &mut transaction,
            "reading groups",
            "SELECT group_key, group_id, display_name, licensed_since FROM groups
             WHERE tenant_key = $1 ORDER BY group_key",
            tenant_key,
            |row| {
                let group = GroupImage {
                    id: get(row, 1)?,
                    display_name: get(row, 2)?,
                    licenses: Vec::new(),
                    licensed_since: logical_time(get(row, 3)?, "a group's licensed_since")?,
                };
                builder.add_group(get(row, 0)?, group);
                Ok(())
            },
        )?;
        load_rows(
            &mut transaction,
            "reading group licenses",
            "SELECT group_key, sku_key, disabled_plans FROM group_licenses
             WHERE tenant_key = $1 ORDER BY group_key, position",
            tenant_key,
            |row| builder.add_group_license(get(row, 0)?, get(row, 1)?, codec::split_uuids(get(row, 2)?)?),
        )?;
        let count_row = transaction
            .query_one("SELECT count(*) FROM users WHERE tenant_key = $1", &[&tenant_key])
            .map_err(StoreError::postgres("counting users"))?;
        builder.reserve_users(usize::try_from(get::<i64>(&count_row, 0)?).unwrap_or(0));
        load_rows(
            &mut transaction,
            "reading users",
            "SELECT user_key, user_id, user_principal_name, display_name, usage_location,
                    proxy_addresses, account_enabled
             FROM users WHERE tenant_key = $1 ORDER BY user_key",
            tenant_key,
            |row| {
                let user = UserImage {
                    id: get(row, 1)?,
                    user_principal_name: get(row, 2)?,
                    display_name: get(row, 3)?,
                    usage_location: codec::parse_optional_country(get(row, 4)?)?,
                    proxy_addresses: codec::split_proxy_addresses(get(row, 5)?)?,
                    account_enabled: get(row, 6)?,
                    direct_licenses: Vec::new(),
                    memberships: Vec::new(),
                    states: Vec::new(),
                };
                builder.add_user(get(row, 0)?, user);
                Ok(())
            },
        )?;
        builder.finish_users();
        load_rows(
            &mut transaction,
            "reading direct licenses",
            "SELECT user_key, sku_key, disabled_plans, since FROM direct_licenses
             WHERE tenant_key = $1 ORDER BY user_key, position",
            tenant_key,
            |row| {
                builder.add_direct_license(
                    get(row, 0)?,
                    get(row, 1)?,
                    codec::split_uuids(get(row, 2)?)?,
                    logical_time(get(row, 3)?, "a direct license's since")?,
                )
            },
        )?;
        load_rows(
            &mut transaction,
            "reading memberships",
            "SELECT user_key, group_key, since FROM memberships
             WHERE tenant_key = $1 ORDER BY user_key, position",
            tenant_key,
            |row| {
                builder.add_membership(
                    get(row, 0)?,
                    get(row, 1)?,
                    logical_time(get(row, 2)?, "a membership's since")?,
                )
            },
        )?;
        load_rows(
            &mut transaction,
            "reading license assignment states",
            "SELECT user_key, sku_key, source_key, status, cause, disabled_plans, granted_plans, since,
                    last_updated
             FROM license_states WHERE tenant_key = $1",
            tenant_key,
            |row| {
                builder.add_state(StateRow {
                    user_key: get(row, 0)?,
                    sku_key: get(row, 1)?,
                    source_key: get(row, 2)?,
                    status: get(row, 3)?,
                    cause: get(row, 4)?,
                    disabled_plans: get(row, 5)?,
                    granted_plans: get(row, 6)?,
                    since: get(row, 7)?,
                    last_updated: get(row, 8)?,
                })
            },
        )?;
        load_rows(
            &mut transaction,
            "reading the work queue",
            "SELECT user_key FROM work_queue WHERE tenant_key = $1 ORDER BY position",
            tenant_key,
            |row| builder.add_queued(get(row, 0)?),
        )?;
        directory::load(&mut transaction, tenant_key, &mut builder)?;
        transaction
            .commit()
            .map_err(StoreError::postgres("ending the load transaction"))?;
        Ok((builder.finish(settings, clock), version))
    }

    pub(crate) fn queue(&mut self, tenant_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let rows = self
            .client
            .query(
                "SELECT users.user_id FROM work_queue
                 JOIN users ON users.tenant_key = work_queue.tenant_key
                           AND users.user_key = work_queue.user_key
                 WHERE work_queue.tenant_key = $1 ORDER BY work_queue.position",
                &[&tenant_key],
            )
            .map_err(StoreError::postgres("reading the work queue"))?;
        rows.iter().map(|row| get(row, 0)).collect()
    }

    pub(crate) fn queue_len(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let row = self
            .client
            .query_one(
                "SELECT count(*) FROM work_queue WHERE tenant_key = $1",
                &[&tenant_key],
            )
            .map_err(StoreError::postgres("counting the work queue"))?;
        logical_time(get(&row, 0)?, "the queue length")
    }

    pub(crate) fn changes_since(
        &mut self,
        tenant_id: Uuid,
        after_version: u64,
    ) -> Result<Vec<TenantChange>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let after = logical_time_column(after_version, "the version")?;
        let rows = self
            .client
            .query(
                "SELECT version, settings, service_plans, queue, everything, skus, users, groups,
                        deleted_users, deleted_groups
                 FROM tenant_changes WHERE tenant_key = $1 AND version > $2 ORDER BY version",
                &[&tenant_key, &after],
            )
            .map_err(StoreError::postgres("reading tenant changes"))?;
        rows.iter()
            .map(|row| {
                Ok(TenantChange {
                    version: logical_time(get(row, 0)?, "a change's version")?,
                    settings: get(row, 1)?,
                    service_plans: get(row, 2)?,
                    queue: get(row, 3)?,
                    everything: get(row, 4)?,
                    skus: codec::split_concat_uuids(get(row, 5)?)?,
                    users: codec::split_concat_uuids(get(row, 6)?)?,
                    groups: codec::split_concat_uuids(get(row, 7)?)?,
                    deleted_users: codec::split_concat_uuids(get(row, 8)?)?,
                    deleted_groups: codec::split_concat_uuids(get(row, 9)?)?,
                })
            })
            .collect()
    }

    // ----- writing ------------------------------------------------------------------------------

    pub(crate) fn write(&mut self, tenant_id: Uuid, batch: &WriteBatch) -> Result<u64, StoreError> {
        self.write_creating(tenant_id, batch, None)
    }

    /// Creates the tenant of `settings` and writes `batch` to it in one transaction.
    pub(crate) fn create_tenant_with(
        &mut self,
        settings: &TenantSettings,
        batch: &WriteBatch,
    ) -> Result<u64, StoreError> {
        self.write_creating(settings.tenant_id, batch, Some(settings))
    }

    /// A write, into a tenant the same transaction creates first when `create` is set.
    fn write_creating(
        &mut self,
        tenant_id: Uuid,
        batch: &WriteBatch,
        create: Option<&TenantSettings>,
    ) -> Result<u64, StoreError> {
        let prepared = PreparedBatch::new(tenant_id, batch)?;
        let mut transaction = self
            .client
            .transaction()
            .map_err(StoreError::postgres("starting a write transaction"))?;
        if let Some(settings) = create {
            Self::insert_tenant(&mut transaction, settings)?;
        }
        let (tenant_key, _) = Self::tenant_key(&mut transaction, tenant_id)?;
        // Serialize the writers of this tenant across instances, then read what they left.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&self.lock_class, &lock_object(tenant_key)?],
            )
            .map_err(StoreError::postgres("taking the tenant's write lock"))?;
        let row = transaction
            .query_one(
                "SELECT version, next_sku_key, next_group_key, next_user_key, next_queue_position
                 FROM tenants WHERE tenant_key = $1",
                &[&tenant_key],
            )
            .map_err(StoreError::postgres("reading the tenant"))?;
        let version = logical_time(get(&row, 0)?, "the tenant version")?;
        let counters = Counters {
            next_sku_key: get(&row, 1)?,
            next_group_key: get(&row, 2)?,
            next_user_key: get(&row, 3)?,
            next_queue_position: get(&row, 4)?,
        };
        if let Some(expected) = batch.expected_version {
            if expected != version {
                return Err(StoreError::Conflict {
                    expected,
                    found: version,
                });
            }
        }
        let mut writer = Writer {
            transaction,
            statements: &mut self.statements,
            tenant_key,
            tenant_id,
            counters,
            keys: Keys::default(),
        };
        if let Some(plans) = &batch.service_plans {
            writer.replace_service_plans(plans)?;
        }
        writer.upsert_skus(&prepared.skus)?;
        let needs_sku_keys = !prepared.groups.is_empty()
            || !prepared.users.is_empty()
            || batch.has_state_writes()
            || !batch.state_deletes.is_empty();
        if needs_sku_keys {
            writer.load_sku_keys()?;
        }
        writer.upsert_groups(&prepared.groups)?;
        writer.resolve_groups(&referenced_groups(batch, &prepared))?;
        writer.upsert_users(&prepared.users)?;
        writer.resolve_users(&referenced_users(batch, &writer.keys))?;
        writer.delete_states(&batch.state_deletes)?;
        if batch.has_state_writes() {
            let states = keyed_states(tenant_id, batch, &writer.keys)?;
            writer.upsert_states(&states)?;
        }
        writer.delete_users(&batch.deleted_users)?;
        writer.delete_groups(&batch.deleted_groups)?;
        writer.dequeue(&batch.dequeue)?;
        writer.enqueue(&prepared.enqueue)?;
        let new_version = version + 1;
        writer.update_tenant(batch, new_version)?;
        writer.record_change(new_version, &prepared.change)?;
        // Delivered to the other instances' listeners when (and only if) the write commits.
        let notice = ChangeNotice {
            tenant_id,
            version: new_version,
        }
        .payload();
        writer
            .transaction
            .execute("SELECT pg_notify($1, $2)", &[&self.change_channel, &notice])
            .map_err(StoreError::postgres("announcing the write"))?;
        directory::write(&mut writer.transaction, tenant_key, batch)?;
        security::insert_audit(&mut writer.transaction, tenant_key, &batch.audit)?;
        writer
            .transaction
            .commit()
            .map_err(StoreError::postgres("committing a write"))?;
        Ok(new_version)
    }

    // ----- processing leases --------------------------------------------------------------------

    pub(crate) fn try_acquire_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let sql = format!(
            "INSERT INTO processing_leases (tenant_key, instance_id, expires_at)
             VALUES ($1, $2, {NOW_MILLISECONDS} + $3)
             ON CONFLICT (tenant_key) DO UPDATE
                 SET instance_id = excluded.instance_id, expires_at = excluded.expires_at
                 WHERE processing_leases.instance_id = excluded.instance_id
                    OR processing_leases.expires_at <= {NOW_MILLISECONDS}"
        );
        let changed = self
            .client
            .execute(&sql, &[&tenant_key, &instance_id, &milliseconds(ttl)])
            .map_err(StoreError::postgres("acquiring a processing lease"))?;
        Ok(changed == 1)
    }

    pub(crate) fn renew_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let sql = format!(
            "UPDATE processing_leases SET expires_at = {NOW_MILLISECONDS} + $3
             WHERE tenant_key = $1 AND instance_id = $2"
        );
        let changed = self
            .client
            .execute(&sql, &[&tenant_key, &instance_id, &milliseconds(ttl)])
            .map_err(StoreError::postgres("renewing a processing lease"))?;
        Ok(changed == 1)
    }

    pub(crate) fn release_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        self.client
            .execute(
                "DELETE FROM processing_leases WHERE tenant_key = $1 AND instance_id = $2",
                &[&tenant_key, &instance_id],
            )
            .map_err(StoreError::postgres("releasing a processing lease"))?;
        Ok(())
    }

    pub(crate) fn processing_lease_holder(&mut self, tenant_id: Uuid) -> Result<Option<String>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let sql = format!(
            "SELECT instance_id FROM processing_leases
             WHERE tenant_key = $1 AND expires_at > {NOW_MILLISECONDS}"
        );
        let row = self
            .client
            .query_opt(&sql, &[&tenant_key])
            .map_err(StoreError::postgres("reading the processing lease"))?;
        row.map(|row| get(&row, 0)).transpose()
    }

    /// The underlying connection, for tests that inspect or tamper with the schema.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

fn plan_number(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::corrupt(format!("plan number or position {value} out of range")))
}

/// Streams the rows of a query with the tenant key as its only parameter into `on_row`.
fn load_rows(
    transaction: &mut Transaction<'_>,
    action: &str,
    sql: &str,
    tenant_key: i64,
    mut on_row: impl FnMut(&Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let parameters: [&(dyn ToSql + Sync); 1] = [&tenant_key];
    let mut rows = transaction
        .query_raw(sql, parameters)
        .map_err(StoreError::postgres(action))?;
    while let Some(row) = rows.next().map_err(StoreError::postgres(action))? {
        on_row(&row)?;
    }
    Ok(())
}

/// The tenant's next keys, advanced as a write hands keys out and stored with it.
struct Counters {
    next_sku_key: i64,
    next_group_key: i64,
    next_user_key: i64,
    next_queue_position: i64,
}

/// Proposes `count` new keys from `next` on (existing rows keep theirs; the unused proposals
/// are skipped, keys are never reused).
fn propose_keys(next: &mut i64, count: usize) -> Vec<i64> {
    let keys: Vec<i64> = (0..count as i64).map(|offset| *next + offset).collect();
    *next += count as i64;
    keys
}

/// Streams states with binary `COPY` (`copy` names the table) inside `transaction`.
fn copy_states(
    transaction: &mut Transaction<'_>,
    copy: &str,
    tenant_key: i64,
    tenant_id: Uuid,
    numbers: &PlanNumbers,
    states: &[&KeyedState<'_>],
) -> Result<(), StoreError> {
    const ACTION: &str = "copying license assignment states";
    let mut encoder = StateRowEncoder::new(tenant_id, numbers);
    let sink = transaction.copy_in(copy).map_err(StoreError::postgres(ACTION))?;
    let mut writer = BinaryCopyInWriter::new(
        sink,
        &[
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::INT8,
            Type::TEXT,
            Type::TEXT,
            Type::BYTEA,
            Type::BYTEA,
            Type::BYTEA,
            Type::INT8,
            Type::INT8,
        ],
    );
    for keyed in states {
        let row = encoder.encode(keyed.user_id, keyed.state)?;
        writer
            .write(&[
                &tenant_key,
                &keyed.user_key,
                &keyed.sku_key,
                &keyed.source_key,
                &row.status,
                &row.error_kind,
                &row.cause,
                &row.disabled_plans,
                &row.granted_plans,
                &row.since,
                &row.last_updated,
            ])
            .map_err(StoreError::postgres(ACTION))?;
    }
    writer.finish().map_err(StoreError::postgres(ACTION))?;
    Ok(())
}

/// The statements of one write transaction.
struct Writer<'a, 'c> {
    transaction: Transaction<'c>,
    statements: &'a mut FxHashMap<&'static str, Statement>,
    tenant_key: i64,
    tenant_id: Uuid,
    counters: Counters,
    keys: Keys,
}

impl Writer<'_, '_> {
    fn execute(
        &mut self,
        action: &str,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let prepared = statement(&mut self.transaction, self.statements, sql)?;
        self.transaction
            .execute(&prepared, parameters)
            .map_err(StoreError::postgres(action))
    }

    fn query(
        &mut self,
        action: &str,
        sql: &'static str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let prepared = statement(&mut self.transaction, self.statements, sql)?;
        self.transaction
            .query(&prepared, parameters)
            .map_err(StoreError::postgres(action))
    }

    /// Reads `(id, key)` rows into a map.
    fn read_keys(rows: &[Row], into: &mut FxHashMap<Uuid, i64>) -> Result<(), StoreError> {
        for row in rows {
            into.insert(get(row, 0)?, get(row, 1)?);
        }
        Ok(())
    }

    fn replace_service_plans(&mut self, plans: &[ServicePlanImage]) -> Result<(), StoreError> {
        const ACTION: &str = "replacing service plans";
        let tenant_key = self.tenant_key;
        let rows = self.query(
            ACTION,
            "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = $1",
            &[&tenant_key],
        )?;
        let mut existing: FxHashMap<Uuid, i64> = FxHashMap::default();
        Self::read_keys(&rows, &mut existing)?;
        let mut next_number = existing.values().max().map_or(0, |number| number + 1);
        let plans = last_of_each(plans, |plan| plan.definition.service_plan_id);
        let mut ids = Vec::with_capacity(plans.len());
        let mut numbers = Vec::with_capacity(plans.len());
        let mut positions = Vec::with_capacity(plans.len());
        let mut names = Vec::with_capacity(plans.len());
        let mut display_names = Vec::with_capacity(plans.len());
        let mut exclusions = Vec::with_capacity(plans.len());
        let mut prerequisites = Vec::with_capacity(plans.len());
        let mut unavailable_in = Vec::with_capacity(plans.len());
        let mut mailbox = Vec::with_capacity(plans.len());
        for (position, plan) in plans.iter().enumerate() {
            let id = plan.definition.service_plan_id;
            let number = match existing.get(&id) {
                Some(number) => *number,
                None => {
                    next_number += 1;
                    next_number - 1
                }
            };
            ids.push(id);
            numbers.push(number);
            positions.push(position as i64);
            names.push(plan.definition.service_plan_name.as_str());
            display_names.push(plan.definition.display_name.as_str());
            exclusions.push(codec::join_uuids(&plan.rules.mutually_exclusive_with));
            prerequisites.push(codec::join_uuids(&plan.rules.requires_any_of));
            unavailable_in.push(codec::join_countries(&plan.rules.unavailable_in));
            mailbox.push(plan.rules.needs_unique_proxy_address);
        }
        self.execute(
            ACTION,
            "INSERT INTO service_plans (tenant_key, plan_id, plan_number, position, name, display_name,
                 mutually_exclusive_with, requires_any_of, unavailable_in, needs_unique_proxy_address)
             SELECT $1, * FROM unnest($2::uuid[], $3::int8[], $4::int8[], $5::text[], $6::text[],
                 $7::text[], $8::text[], $9::text[], $10::bool[])
             ON CONFLICT (tenant_key, plan_id) DO UPDATE SET
                 position = excluded.position, name = excluded.name,
                 display_name = excluded.display_name,
                 mutually_exclusive_with = excluded.mutually_exclusive_with,
                 requires_any_of = excluded.requires_any_of,
                 unavailable_in = excluded.unavailable_in,
                 needs_unique_proxy_address = excluded.needs_unique_proxy_address",
            &[
                &tenant_key,
                &ids,
                &numbers,
                &positions,
                &names,
                &display_names,
                &exclusions,
                &prerequisites,
                &unavailable_in,
                &mailbox,
            ],
        )?;
        let kept: FxHashSet<Uuid> = ids.iter().copied().collect();
        let removed: Vec<Uuid> = existing
            .keys()
            .filter(|id| !kept.contains(*id))
            .copied()
            .collect();
        if !removed.is_empty() {
            self.execute(
                "deleting service plans no longer listed",
                "DELETE FROM service_plans WHERE tenant_key = $1 AND plan_id = ANY($2)",
                &[&tenant_key, &removed],
            )?;
        }
        Ok(())
    }

    fn upsert_skus(&mut self, skus: &[&SkuDefinition]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting products";
        if skus.is_empty() {
            return Ok(());
        }
        let tenant_key = self.tenant_key;
        let proposed = propose_keys(&mut self.counters.next_sku_key, skus.len());
        let ids: Vec<Uuid> = skus.iter().map(|sku| sku.sku_id).collect();
        let part_numbers: Vec<&str> = skus.iter().map(|sku| sku.sku_part_number.as_str()).collect();
        let display_names: Vec<&str> = skus.iter().map(|sku| sku.display_name.as_str()).collect();
        let applies_to: Vec<&str> = skus
            .iter()
            .map(|sku| codec::applies_to_text(sku.applies_to))
            .collect();
        let prepaid: Vec<i64> = skus.iter().map(|sku| i64::from(sku.prepaid_units)).collect();
        let status: Vec<&str> = skus.iter().map(|sku| sku.capability_status.as_str()).collect();
        let rows = self.query(
            ACTION,
            "INSERT INTO skus (tenant_key, sku_key, sku_id, sku_part_number, display_name, applies_to,
                 prepaid_units, capability_status)
             SELECT $1, * FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                 $7::int8[], $8::text[])
             ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
                 sku_part_number = excluded.sku_part_number, display_name = excluded.display_name,
                 applies_to = excluded.applies_to, prepaid_units = excluded.prepaid_units,
                 capability_status = excluded.capability_status
             RETURNING sku_id, sku_key",
            &[
                &tenant_key,
                &proposed,
                &ids,
                &part_numbers,
                &display_names,
                &applies_to,
                &prepaid,
                &status,
            ],
        )?;
        Self::read_keys(&rows, &mut self.keys.skus)?;
        let mut sku_keys = Vec::with_capacity(skus.len());
        let mut plan_skus = Vec::new();
        let mut plan_positions = Vec::new();
        let mut plan_ids = Vec::new();
        for sku in skus {
            let sku_key = self.keys.sku(self.tenant_id, sku.sku_id)?;
            sku_keys.push(sku_key);
            for (position, plan) in sku.service_plans.iter().enumerate() {
                plan_skus.push(sku_key);
                plan_positions.push(position as i64);
                plan_ids.push(plan.service_plan_id);
            }
        }
        self.execute(
            ACTION,
            "DELETE FROM sku_plans WHERE tenant_key = $1 AND sku_key = ANY($2)",
            &[&tenant_key, &sku_keys],
        )?;
        self.execute(
            ACTION,
            "INSERT INTO sku_plans (tenant_key, sku_key, position, plan_id)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::uuid[])",
            &[&tenant_key, &plan_skus, &plan_positions, &plan_ids],
        )?;
        Ok(())
    }

    fn load_sku_keys(&mut self) -> Result<(), StoreError> {
        let tenant_key = self.tenant_key;
        let rows = self.query(
            "reading product keys",
            "SELECT sku_id, sku_key FROM skus WHERE tenant_key = $1",
            &[&tenant_key],
        )?;
        Self::read_keys(&rows, &mut self.keys.skus)
    }

    fn upsert_groups(&mut self, groups: &[&GroupImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting groups";
        let tenant_key = self.tenant_key;
        for chunk in groups.chunks(CHUNK) {
            let proposed = propose_keys(&mut self.counters.next_group_key, chunk.len());
            let ids: Vec<Uuid> = chunk.iter().map(|group| group.id).collect();
            let names: Vec<&str> = chunk.iter().map(|group| group.display_name.as_str()).collect();
            let licensed_since: Vec<i64> = chunk
                .iter()
                .map(|group| logical_time_column(group.licensed_since, "a group's licensed_since"))
                .collect::<Result<_, _>>()?;
            let rows = self.query(
                ACTION,
                "INSERT INTO groups (tenant_key, group_key, group_id, display_name, licensed_since)
                 SELECT $1, * FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::int8[])
                 ON CONFLICT (tenant_key, group_id) DO UPDATE SET
                     display_name = excluded.display_name, licensed_since = excluded.licensed_since
                 RETURNING group_id, group_key",
                &[&tenant_key, &proposed, &ids, &names, &licensed_since],
            )?;
            Self::read_keys(&rows, &mut self.keys.groups)?;
            let mut group_keys = Vec::with_capacity(chunk.len());
            let mut license_groups = Vec::new();
            let mut license_positions = Vec::new();
            let mut license_skus = Vec::new();
            let mut license_disabled = Vec::new();
            for group in chunk {
                let group_key = self.keys.group(self.tenant_id, group.id)?;
                group_keys.push(group_key);
                for (position, license) in group.licenses.iter().enumerate() {
                    license_groups.push(group_key);
                    license_positions.push(position as i64);
                    license_skus.push(self.keys.sku(self.tenant_id, license.sku_id)?);
                    license_disabled.push(codec::join_uuids(&license.disabled_plans));
                }
            }
            self.execute(
                ACTION,
                "DELETE FROM group_licenses WHERE tenant_key = $1 AND group_key = ANY($2)",
                &[&tenant_key, &group_keys],
            )?;
            if !license_groups.is_empty() {
                self.execute(
                    ACTION,
                    "INSERT INTO group_licenses (tenant_key, group_key, position, sku_key, disabled_plans)
                     SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::text[])",
                    &[
                        &tenant_key,
                        &license_groups,
                        &license_positions,
                        &license_skus,
                        &license_disabled,
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Looks up the keys of groups not known yet; unknown groups stay unknown.
    fn resolve_groups(&mut self, group_ids: &[Uuid]) -> Result<(), StoreError> {
        let missing: Vec<Uuid> = group_ids
            .iter()
            .filter(|group_id| !self.keys.groups.contains_key(*group_id))
            .copied()
            .collect();
        let tenant_key = self.tenant_key;
        for chunk in missing.chunks(CHUNK * 5) {
            let ids = chunk.to_vec();
            let rows = self.query(
                "looking up group keys",
                "SELECT group_id, group_key FROM groups WHERE tenant_key = $1 AND group_id = ANY($2)",
                &[&tenant_key, &ids],
            )?;
            Self::read_keys(&rows, &mut self.keys.groups)?;
        }
        Ok(())
    }

    fn upsert_users(&mut self, users: &[&UserImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting users";
        let tenant_key = self.tenant_key;
        for chunk in users.chunks(CHUNK) {
            let proposed = propose_keys(&mut self.counters.next_user_key, chunk.len());
            let ids: Vec<Uuid> = chunk.iter().map(|user| user.id).collect();
            let principal_names: Vec<&str> = chunk
                .iter()
                .map(|user| user.user_principal_name.as_str())
                .collect();
            let display_names: Vec<&str> = chunk.iter().map(|user| user.display_name.as_str()).collect();
            let locations: Vec<Option<&str>> = chunk
                .iter()
                .map(|user| user.usage_location.as_ref().map(|code| code.as_str()))
                .collect();
            let addresses: Vec<String> = chunk
                .iter()
                .map(|user| codec::join_proxy_addresses(&user.proxy_addresses))
                .collect();
            let enabled: Vec<bool> = chunk.iter().map(|user| user.account_enabled).collect();
            let rows = self.query(
                ACTION,
                "INSERT INTO users (tenant_key, user_key, user_id, user_principal_name, display_name,
                     usage_location, proxy_addresses, account_enabled)
                 SELECT $1, * FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::bool[])
                 ON CONFLICT (tenant_key, user_id) DO UPDATE SET
                     user_principal_name = excluded.user_principal_name,
                     display_name = excluded.display_name, usage_location = excluded.usage_location,
                     proxy_addresses = excluded.proxy_addresses,
                     account_enabled = excluded.account_enabled
                 RETURNING user_id, user_key",
                &[
                    &tenant_key,
                    &proposed,
                    &ids,
                    &principal_names,
                    &display_names,
                    &locations,
                    &addresses,
                    &enabled,
                ],
            )?;
            Self::read_keys(&rows, &mut self.keys.users)?;
            let mut existing_keys = Vec::new();
            let mut direct_users = Vec::new();
            let mut direct_positions = Vec::new();
            let mut direct_skus = Vec::new();
            let mut direct_disabled = Vec::new();
            let mut direct_since = Vec::new();
            let mut member_users = Vec::new();
            let mut member_positions = Vec::new();
            let mut member_groups = Vec::new();
            let mut member_since = Vec::new();
            for (user, proposed_key) in chunk.iter().zip(&proposed) {
                let user_key = self.keys.user(self.tenant_id, user.id)?;
                if user_key != *proposed_key {
                    existing_keys.push(user_key);
                }
                for (position, direct) in user.direct_licenses.iter().enumerate() {
                    direct_users.push(user_key);
                    direct_positions.push(position as i64);
                    direct_skus.push(self.keys.sku(self.tenant_id, direct.license.sku_id)?);
                    direct_disabled.push(codec::join_uuids(&direct.license.disabled_plans));
                    direct_since.push(logical_time_column(direct.since, "a direct license's since")?);
                }
                for (position, membership) in user.memberships.iter().enumerate() {
                    member_users.push(user_key);
                    member_positions.push(position as i64);
                    member_groups.push(self.keys.group(self.tenant_id, membership.group_id)?);
                    member_since.push(logical_time_column(membership.since, "a membership's since")?);
                }
            }
            // Users stored before get their licenses and memberships replaced.
            if !existing_keys.is_empty() {
                self.execute(
                    ACTION,
                    "DELETE FROM direct_licenses WHERE tenant_key = $1 AND user_key = ANY($2)",
                    &[&tenant_key, &existing_keys],
                )?;
                self.execute(
                    ACTION,
                    "DELETE FROM memberships WHERE tenant_key = $1 AND user_key = ANY($2)",
                    &[&tenant_key, &existing_keys],
                )?;
            }
            if !direct_users.is_empty() {
                self.execute(
                    ACTION,
                    "INSERT INTO direct_licenses (tenant_key, user_key, position, sku_key, disabled_plans, since)
                     SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::text[], $6::int8[])",
                    &[
                        &tenant_key,
                        &direct_users,
                        &direct_positions,
                        &direct_skus,
                        &direct_disabled,
                        &direct_since,
                    ],
                )?;
            }
            if !member_users.is_empty() {
                self.execute(
                    ACTION,
                    "INSERT INTO memberships (tenant_key, user_key, position, group_key, since)
                     SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::int8[])",
                    &[
                        &tenant_key,
                        &member_users,
                        &member_positions,
                        &member_groups,
                        &member_since,
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// Looks up the keys of users not known yet; unknown users stay unknown.
    fn resolve_users(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        let tenant_key = self.tenant_key;
        for chunk in user_ids.chunks(CHUNK * 5) {
            let ids = chunk.to_vec();
            let rows = self.query(
                "looking up user keys",
                "SELECT user_id, user_key FROM users WHERE tenant_key = $1 AND user_id = ANY($2)",
                &[&tenant_key, &ids],
            )?;
            Self::read_keys(&rows, &mut self.keys.users)?;
        }
        Ok(())
    }

    fn delete_states(&mut self, keys: &[StateKey]) -> Result<(), StoreError> {
        // A state of an entity that is not stored is not stored either.
        let resolved: Vec<(i64, i64, i64)> = keys.iter().filter_map(|key| self.keys.state_key(key)).collect();
        let tenant_key = self.tenant_key;
        for chunk in resolved.chunks(CHUNK) {
            let users: Vec<i64> = chunk.iter().map(|key| key.0).collect();
            let skus: Vec<i64> = chunk.iter().map(|key| key.1).collect();
            let sources: Vec<i64> = chunk.iter().map(|key| key.2).collect();
            self.execute(
                "deleting license assignment states",
                "DELETE FROM license_states AS state
                 USING unnest($2::int8[], $3::int8[], $4::int8[]) AS doomed(user_key, sku_key, source_key)
                 WHERE state.tenant_key = $1 AND state.user_key = doomed.user_key
                   AND state.sku_key = doomed.sku_key AND state.source_key = doomed.source_key",
                &[&tenant_key, &users, &skus, &sources],
            )?;
        }
        Ok(())
    }

    fn plan_numbers(&mut self) -> Result<PlanNumbers, StoreError> {
        let tenant_key = self.tenant_key;
        let rows = self.query(
            "reading plan numbers",
            "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = $1",
            &[&tenant_key],
        )?;
        let mut numbers = PlanNumbers::default();
        for row in &rows {
            numbers.insert(get(row, 0)?, plan_number(get(row, 1)?)?);
        }
        Ok(numbers)
    }

    fn upsert_states(&mut self, states: &[KeyedState<'_>]) -> Result<(), StoreError> {
        let numbers = self.plan_numbers()?;
        let (new, existing): (Vec<&KeyedState<'_>>, Vec<&KeyedState<'_>>) =
            states.iter().partition(|state| state.new);
        // States the engine created are copied straight into the table when there are many (a
        // first evaluation, an import). The copy runs in a savepoint: should a state exist after
        // all, only the copy is undone and the states are merged instead.
        if new.len() > COPY_THRESHOLD {
            if !self.try_copy_new_states(&numbers, &new)? {
                self.merge_states(&numbers, &new)?;
            }
        } else {
            self.upsert_states_as_arrays(&numbers, &new)?;
        }
        self.merge_states(&numbers, &existing)
    }

    /// Copies states into the table inside a savepoint; `false` when one already existed (the
    /// copy is undone then).
    fn try_copy_new_states(
        &mut self,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<bool, StoreError> {
        let tenant_key = self.tenant_key;
        let tenant_id = self.tenant_id;
        let mut savepoint = self
            .transaction
            .savepoint("licensd_state_copy")
            .map_err(StoreError::postgres("starting the state copy"))?;
        match copy_states(
            &mut savepoint,
            "COPY license_states FROM STDIN (FORMAT binary)",
            tenant_key,
            tenant_id,
            numbers,
            states,
        ) {
            Ok(()) => {
                savepoint
                    .commit()
                    .map_err(StoreError::postgres("ending the state copy"))?;
                Ok(true)
            }
            Err(StoreError::Postgres { source, .. })
                if source.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
            {
                savepoint
                    .rollback()
                    .map_err(StoreError::postgres("undoing the state copy"))?;
                Ok(false)
            }
            Err(other) => Err(other),
        }
    }

    /// Writes states that may exist: as arrays with `ON CONFLICT` when few, else staged and
    /// swapped in.
    fn merge_states(&mut self, numbers: &PlanNumbers, states: &[&KeyedState<'_>]) -> Result<(), StoreError> {
        if states.len() <= COPY_THRESHOLD {
            return self.upsert_states_as_arrays(numbers, states);
        }
        self.transaction
            .batch_execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS licensd_state_staging
                     (LIKE license_states INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
                 TRUNCATE licensd_state_staging",
            )
            .map_err(StoreError::postgres("preparing the state staging table"))?;
        self.copy_states(
            "COPY licensd_state_staging FROM STDIN (FORMAT binary)",
            numbers,
            states,
        )?;
        // Deleting the old rows and inserting the new ones was measured a third faster than
        // `INSERT ... ON CONFLICT DO UPDATE` for large batches (and about as fast as
        // `UPDATE ... FROM` the staging table, which was measured as well).
        self.transaction
            .batch_execute(
                "ANALYZE licensd_state_staging;
                 DELETE FROM license_states AS state USING licensd_state_staging AS staged
                 WHERE state.tenant_key = staged.tenant_key AND state.user_key = staged.user_key
                   AND state.sku_key = staged.sku_key AND state.source_key = staged.source_key;
                 INSERT INTO license_states SELECT * FROM licensd_state_staging",
            )
            .map_err(StoreError::postgres("merging staged license assignment states"))?;
        Ok(())
    }

    fn copy_states(
        &mut self,
        copy: &str,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<(), StoreError> {
        copy_states(
            &mut self.transaction,
            copy,
            self.tenant_key,
            self.tenant_id,
            numbers,
            states,
        )
    }

    fn upsert_states_as_arrays(
        &mut self,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<(), StoreError> {
        let mut encoder = StateRowEncoder::new(self.tenant_id, numbers);
        let mut users = Vec::new();
        let mut skus = Vec::new();
        let mut sources = Vec::new();
        let mut statuses = Vec::new();
        let mut error_kinds = Vec::new();
        let mut causes: Vec<Option<Vec<u8>>> = Vec::new();
        let mut disabled: Vec<Vec<u8>> = Vec::new();
        let mut granted: Vec<Option<Vec<u8>>> = Vec::new();
        let mut since = Vec::new();
        let mut last_updated = Vec::new();
        for keyed in states {
            let row = encoder.encode(keyed.user_id, keyed.state)?;
            users.push(keyed.user_key);
            skus.push(keyed.sku_key);
            sources.push(keyed.source_key);
            statuses.push(row.status);
            error_kinds.push(row.error_kind);
            causes.push(row.cause.map(<[u8]>::to_vec));
            disabled.push(row.disabled_plans.to_vec());
            granted.push(row.granted_plans.map(<[u8]>::to_vec));
            since.push(row.since);
            last_updated.push(row.last_updated);
        }
        if users.is_empty() {
            return Ok(());
        }
        let tenant_key = self.tenant_key;
        self.execute(
            "upserting license assignment states",
            "INSERT INTO license_states (tenant_key, user_key, sku_key, source_key, status, error_kind,
                 cause, disabled_plans, granted_plans, since, last_updated)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::int8[], $5::text[], $6::text[],
                 $7::bytea[], $8::bytea[], $9::bytea[], $10::int8[], $11::int8[])
             ON CONFLICT (tenant_key, user_key, sku_key, source_key) DO UPDATE SET
                 status = excluded.status, error_kind = excluded.error_kind, cause = excluded.cause,
                 disabled_plans = excluded.disabled_plans, granted_plans = excluded.granted_plans,
                 since = excluded.since, last_updated = excluded.last_updated",
            &[
                &tenant_key,
                &users,
                &skus,
                &sources,
                &statuses,
                &error_kinds,
                &causes,
                &disabled,
                &granted,
                &since,
                &last_updated,
            ],
        )?;
        Ok(())
    }

    fn delete_users(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting users";
        // Everything of a user, the user last (these tables have no foreign keys to cascade).
        const DELETES: [&str; 5] = [
            "DELETE FROM license_states WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM memberships WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM direct_licenses WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM work_queue WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM users WHERE tenant_key = $1 AND user_key = ANY($2)",
        ];
        let keys: Vec<i64> = user_ids
            .iter()
            .filter_map(|user_id| self.keys.users.remove(user_id))
            .collect();
        let tenant_key = self.tenant_key;
        for chunk in keys.chunks(CHUNK) {
            let keys = chunk.to_vec();
            for sql in DELETES {
                self.execute(ACTION, sql, &[&tenant_key, &keys])?;
            }
        }
        Ok(())
    }

    fn delete_groups(&mut self, group_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting groups";
        let keys: Vec<i64> = group_ids
            .iter()
            .filter_map(|group_id| self.keys.groups.remove(group_id))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        // Memberships go explicitly, licenses by cascade. The engine deletes a group only once
        // no state comes from it, so there are no states to delete.
        let tenant_key = self.tenant_key;
        self.execute(
            ACTION,
            "DELETE FROM memberships WHERE tenant_key = $1 AND group_key = ANY($2)",
            &[&tenant_key, &keys],
        )?;
        self.execute(
            ACTION,
            "DELETE FROM groups WHERE tenant_key = $1 AND group_key = ANY($2)",
            &[&tenant_key, &keys],
        )?;
        Ok(())
    }

    fn dequeue(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        let keys: Vec<i64> = user_ids
            .iter()
            .filter_map(|user_id| self.keys.users.get(user_id).copied())
            .collect();
        let tenant_key = self.tenant_key;
        for chunk in keys.chunks(CHUNK * 5) {
            let keys = chunk.to_vec();
            self.execute(
                "removing users from the work queue",
                "DELETE FROM work_queue WHERE tenant_key = $1 AND user_key = ANY($2)",
                &[&tenant_key, &keys],
            )?;
        }
        Ok(())
    }

    fn enqueue(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        let keys: Vec<i64> = user_ids
            .iter()
            .map(|user_id| self.keys.user(self.tenant_id, *user_id))
            .collect::<Result<_, _>>()?;
        let tenant_key = self.tenant_key;
        for chunk in keys.chunks(CHUNK * 5) {
            let keys = chunk.to_vec();
            let positions = propose_keys(&mut self.counters.next_queue_position, keys.len());
            self.execute(
                "appending users to the work queue",
                "INSERT INTO work_queue (tenant_key, position, user_key)
                 SELECT $1, * FROM unnest($2::int8[], $3::int8[])
                 ON CONFLICT (tenant_key, user_key) DO NOTHING",
                &[&tenant_key, &positions, &keys],
            )?;
        }
        Ok(())
    }

    fn update_tenant(&mut self, batch: &WriteBatch, new_version: u64) -> Result<(), StoreError> {
        const ACTION: &str = "updating the tenant";
        let tenant_key = self.tenant_key;
        if let Some(settings) = &batch.settings {
            let location = settings.default_usage_location.as_ref().map(|code| code.as_str());
            self.execute(
                ACTION,
                "UPDATE tenants SET display_name = $2, default_usage_location = $3, self_healing = $4
                 WHERE tenant_key = $1",
                &[
                    &tenant_key,
                    &settings.display_name,
                    &location,
                    &settings.self_healing,
                ],
            )?;
        }
        let clock = batch
            .clock
            .map(|clock| logical_time_column(clock, "the clock"))
            .transpose()?;
        let version = logical_time_column(new_version, "the version")?;
        let counters = [
            self.counters.next_sku_key,
            self.counters.next_group_key,
            self.counters.next_user_key,
            self.counters.next_queue_position,
        ];
        self.execute(
            ACTION,
            "UPDATE tenants SET version = $2, clock = coalesce($3, clock), next_sku_key = $4,
                 next_group_key = $5, next_user_key = $6, next_queue_position = $7
             WHERE tenant_key = $1",
            &[
                &tenant_key,
                &version,
                &clock,
                &counters[0],
                &counters[1],
                &counters[2],
                &counters[3],
            ],
        )?;
        Ok(())
    }
    fn record_change(&mut self, version: u64, change: &TenantChange) -> Result<(), StoreError> {
        let tenant_key = self.tenant_key;
        let version = logical_time_column(version, "the version")?;
        self.execute(
            "recording the tenant change",
            "INSERT INTO tenant_changes (tenant_key, version, recorded_at, settings, service_plans, queue,
                 everything, skus, users, groups, deleted_users, deleted_groups)
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000)::bigint, $3, $4, $5, $6,
                 $7, $8, $9, $10, $11)",
            &[
                &tenant_key,
                &version,
                &change.settings,
                &change.service_plans,
                &change.queue,
                &change.everything,
                &codec::concat_uuids(&change.skus),
                &codec::concat_uuids(&change.users),
                &codec::concat_uuids(&change.groups),
                &codec::concat_uuids(&change.deleted_users),
                &codec::concat_uuids(&change.deleted_groups),
            ],
        )?;
        Ok(())
    }
}
