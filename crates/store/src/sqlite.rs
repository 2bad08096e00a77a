//! The SQLite backend: one connection to a database file in WAL mode, the schema's migrations,
//! and every read and write of the store as SQLite statements. Writers take the database's
//! write lock when their transaction begins (`BEGIN IMMEDIATE`), so writes are serialized.

use std::time::Duration;

use licensd_engine::image::{GroupImage, ServicePlanImage, TenantImage, UserImage};
use licensd_engine::{ServicePlanDefinition, ServicePlanRules, SkuDefinition, TenantSettings, Uuid};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{
    keyed_states, referenced_groups, referenced_users, KeyedState, Keys, PreparedBatch, StateKey,
    TenantChange, WriteBatch,
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
        sql: include_str!("migrations/sqlite/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "access tokens and audit log",
        sql: include_str!("migrations/sqlite/0002_security.sql"),
    },
    Migration {
        version: 3,
        name: "directory attributes",
        sql: include_str!("migrations/sqlite/0003_directory_attributes.sql"),
    },
    Migration {
        version: 4,
        name: "subscription lifecycles",
        sql: include_str!("migrations/sqlite/0004_subscription_lifecycles.sql"),
    },
];

/// The database's clock in milliseconds since the Unix epoch.
const NOW_MILLISECONDS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";

/// A store on a SQLite database file.
pub struct SqliteStore {
    connection: Connection,
    /// User keys of the tenant this connection last wrote, valid while its version is the one
    /// that write left (see [`UserKeyCache`]).
    user_keys: Option<UserKeyCache>,
}

/// The integer keys of a tenant's users as of one version, kept between writes so that a
/// processing step need not look its users up again. A user's key never changes while it
/// exists, and only writes change which users exist; so the cache is used only when the
/// tenant's stored version is still the one the caching write left (no other connection or
/// instance wrote since), updated with what each write creates and deletes, and dropped when a
/// write fails.
#[derive(Debug, Default)]
struct UserKeyCache {
    tenant_key: i64,
    version: u64,
    keys: FxHashMap<Uuid, i64>,
    /// Whether `keys` holds every user of the tenant (filled by a scan), so a user missing
    /// from it is not stored.
    complete: bool,
}

fn blob_of(id: &Uuid) -> &[u8] {
    id.as_bytes().as_slice()
}

fn column<'a>(row: &'a Row<'_>, index: usize) -> Result<ValueRef<'a>, StoreError> {
    row.get_ref(index).map_err(StoreError::sqlite("reading a column"))
}

fn wrong_type(index: usize, expected: &str, found: ValueRef<'_>) -> StoreError {
    StoreError::corrupt(format!(
        "column {index} should hold {expected} but holds {:?}",
        found.data_type()
    ))
}

fn blob_at<'a>(row: &'a Row<'_>, index: usize) -> Result<&'a [u8], StoreError> {
    match column(row, index)? {
        ValueRef::Blob(bytes) => Ok(bytes),
        other => Err(wrong_type(index, "a blob", other)),
    }
}

fn optional_blob_at<'a>(row: &'a Row<'_>, index: usize) -> Result<Option<&'a [u8]>, StoreError> {
    match column(row, index)? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(bytes) => Ok(Some(bytes)),
        other => Err(wrong_type(index, "a blob or NULL", other)),
    }
}

fn uuid_at(row: &Row<'_>, index: usize) -> Result<Uuid, StoreError> {
    codec::uuid_from_blob(blob_at(row, index)?)
}

fn text_at<'a>(row: &'a Row<'_>, index: usize) -> Result<&'a str, StoreError> {
    match column(row, index)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| StoreError::corrupt(format!("column {index} is not UTF-8"))),
        other => Err(wrong_type(index, "text", other)),
    }
}

fn optional_text_at<'a>(row: &'a Row<'_>, index: usize) -> Result<Option<&'a str>, StoreError> {
    match column(row, index)? {
        ValueRef::Null => Ok(None),
        _ => text_at(row, index).map(Some),
    }
}

fn integer_at(row: &Row<'_>, index: usize) -> Result<i64, StoreError> {
    match column(row, index)? {
        ValueRef::Integer(value) => Ok(value),
        other => Err(wrong_type(index, "an integer", other)),
    }
}

fn milliseconds(ttl: Duration) -> i64 {
    // Ten years at most, so adding it to the clock never overflows.
    ttl.as_millis().min(315_360_000_000) as i64
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub(crate) fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let connection = Connection::open(path).map_err(StoreError::sqlite("opening the database file"))?;
        let mut store = SqliteStore {
            connection,
            user_keys: None,
        };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        let connection = &self.connection;
        connection
            .busy_timeout(Duration::from_secs(10))
            .map_err(StoreError::sqlite("setting the busy timeout"))?;
        let journal_mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(StoreError::sqlite("switching to WAL mode"))?;
        if !journal_mode.eq_ignore_ascii_case("wal") && !journal_mode.eq_ignore_ascii_case("memory") {
            return Err(StoreError::corrupt(format!(
                "SQLite kept journal mode {journal_mode} instead of WAL"
            )));
        }
        connection
            .execute_batch(
                "PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;
                 PRAGMA temp_store = MEMORY;
                 PRAGMA cache_size = -131072;",
            )
            .map_err(StoreError::sqlite("setting connection pragmas"))?;
        connection.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    fn applied_version(connection: &Connection) -> Result<u64, StoreError> {
        let version: i64 = connection
            .query_row(
                "SELECT coalesce(max(version), 0) FROM schema_migrations",
                [],
                |row| row.get(0),
            )
            .map_err(StoreError::sqlite("reading the schema version"))?;
        logical_time(version, "the schema version")
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.connection
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version INTEGER PRIMARY KEY,
                     name TEXT NOT NULL,
                     applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
                 )",
            )
            .map_err(StoreError::sqlite("creating schema_migrations"))?;
        crate::migration::check_not_too_new(Self::applied_version(&self.connection)?)?;
        for migration in MIGRATIONS {
            let transaction = self
                .connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite("starting a migration"))?;
            // Another process may have applied it since the version was read.
            let applied = Self::applied_version(&transaction)?;
            crate::migration::check_not_too_new(applied)?;
            if applied >= migration.version {
                continue;
            }
            let action = format!("applying migration {} ({})", migration.version, migration.name);
            transaction
                .execute_batch(migration.sql)
                .map_err(StoreError::sqlite(&action))?;
            transaction
                .execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                    params![migration.version as i64, migration.name],
                )
                .map_err(StoreError::sqlite(&action))?;
            transaction.commit().map_err(StoreError::sqlite(&action))?;
        }
        Ok(())
    }

    pub(crate) fn schema_version(&mut self) -> Result<u64, StoreError> {
        Self::applied_version(&self.connection)
    }

    pub(crate) fn create_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting to create a tenant"))?;
        Self::insert_tenant(&transaction, settings)?;
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing the new tenant"))
    }

    /// Inserts a new, empty tenant within `transaction`; refuses one that exists.
    fn insert_tenant(transaction: &Transaction<'_>, settings: &TenantSettings) -> Result<(), StoreError> {
        let exists = transaction
            .query_row(
                "SELECT 1 FROM tenants WHERE tenant_id = ?1",
                [blob_of(&settings.tenant_id)],
                |_| Ok(()),
            )
            .optional()
            .map_err(StoreError::sqlite("looking up the tenant"))?
            .is_some();
        if exists {
            return Err(StoreError::TenantExists {
                tenant_id: settings.tenant_id,
            });
        }
        transaction
            .execute(
                "INSERT INTO tenants
                     (tenant_id, display_name, default_usage_location, self_healing, clock, version)
                 VALUES (?1, ?2, ?3, ?4, 0, 0)",
                params![
                    blob_of(&settings.tenant_id),
                    settings.display_name,
                    settings.default_usage_location.as_ref().map(|code| code.as_str()),
                    settings.self_healing,
                ],
            )
            .map_err(StoreError::sqlite("inserting the tenant"))?;
        Ok(())
    }

    pub(crate) fn tenant_ids(&mut self) -> Result<Vec<Uuid>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT tenant_id FROM tenants ORDER BY tenant_key")
            .map_err(StoreError::sqlite("listing tenants"))?;
        let mut rows = statement
            .query([])
            .map_err(StoreError::sqlite("listing tenants"))?;
        let mut ids = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::sqlite("listing tenants"))? {
            ids.push(uuid_at(row, 0)?);
        }
        Ok(ids)
    }

    /// The tenant's key and version.
    fn tenant_key(connection: &Connection, tenant_id: Uuid) -> Result<(i64, u64), StoreError> {
        let row: Option<(i64, i64)> = connection
            .prepare_cached("SELECT tenant_key, version FROM tenants WHERE tenant_id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([blob_of(&tenant_id)], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(StoreError::sqlite("looking up the tenant"))?;
        let (key, version) = row.ok_or(StoreError::UnknownTenant { tenant_id })?;
        Ok((key, logical_time(version, "the tenant version")?))
    }

    pub(crate) fn tenant_version(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        Ok(Self::tenant_key(&self.connection, tenant_id)?.1)
    }

    pub(crate) fn tenant_versions(&mut self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        let mut statement = self
            .connection
            .prepare_cached("SELECT tenant_id, version FROM tenants ORDER BY tenant_key")
            .map_err(StoreError::sqlite("reading tenant versions"))?;
        let mut rows = statement
            .query([])
            .map_err(StoreError::sqlite("reading tenant versions"))?;
        let mut versions = Vec::new();
        while let Some(row) = rows
            .next()
            .map_err(StoreError::sqlite("reading tenant versions"))?
        {
            versions.push((
                uuid_at(row, 0)?,
                logical_time(integer_at(row, 1)?, "the tenant version")?,
            ));
        }
        Ok(versions)
    }

    // ----- loading ------------------------------------------------------------------------------

    pub(crate) fn load_tenant(&mut self, tenant_id: Uuid) -> Result<(TenantImage, u64), StoreError> {
        // One read transaction: the image is a snapshot even while other connections write.
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::sqlite("starting to load a tenant"))?;
        let (tenant_key, version) = Self::tenant_key(&transaction, tenant_id)?;
        let (display_name, default_usage_location, self_healing, clock) = transaction
            .query_row(
                "SELECT display_name, default_usage_location, self_healing, clock
                 FROM tenants WHERE tenant_key = ?1",
                [tenant_key],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, bool>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                },
            )
            .map_err(StoreError::sqlite("reading the tenant"))?;
        let settings = TenantSettings {
            tenant_id,
            display_name,
            default_usage_location: codec::parse_optional_country(default_usage_location.as_deref())?,
            self_healing,
        };
        let clock = logical_time(clock, "the tenant clock")?;
        let mut builder = ImageBuilder::default();
        load_rows(
            &transaction,
            "reading service plans",
            "SELECT plan_number, position, plan_id, name, display_name, mutually_exclusive_with,
                    requires_any_of, unavailable_in, needs_unique_proxy_address
             FROM service_plans WHERE tenant_key = ?1 ORDER BY position",
            tenant_key,
            |row| {
                let plan = ServicePlanImage {
                    definition: ServicePlanDefinition {
                        service_plan_id: uuid_at(row, 2)?,
                        service_plan_name: text_at(row, 3)?.to_string(),
                        display_name: text_at(row, 4)?.to_string(),
                    },
                    rules: ServicePlanRules {
                        mutually_exclusive_with: codec::split_uuids(text_at(row, 5)?)?,
                        requires_any_of: codec::split_uuids(text_at(row, 6)?)?,
                        unavailable_in: codec::split_countries(text_at(row, 7)?)?,
                        needs_unique_proxy_address: integer_at(row, 8)? != 0,
                    },
                };
                let number = plan_number(integer_at(row, 0)?)?;
                let position = plan_number(integer_at(row, 1)?)?;
                builder.add_service_plan(number, position, plan);
                Ok(())
            },
        )?;
        builder.finish_service_plans();
        load_rows(
            &transaction,
            "reading products",
            "SELECT sku_key, sku_id, sku_part_number, display_name, applies_to, prepaid_units,
                    capability_status
             FROM skus WHERE tenant_key = ?1 ORDER BY sku_key",
            tenant_key,
            |row| {
                let sku = SkuDefinition {
                    sku_id: uuid_at(row, 1)?,
                    sku_part_number: text_at(row, 2)?.to_string(),
                    display_name: text_at(row, 3)?.to_string(),
                    applies_to: codec::parse_applies_to(text_at(row, 4)?)?,
                    service_plans: Vec::new(),
                    prepaid_units: u32::try_from(integer_at(row, 5)?)
                        .map_err(|_| StoreError::corrupt("prepaid units out of range"))?,
                    capability_status: codec::parse_capability_status(text_at(row, 6)?)?,
                };
                builder.add_sku(integer_at(row, 0)?, sku);
                Ok(())
            },
        )?;
        load_rows(
            &transaction,
            "reading the plans of products",
            "SELECT sku_key, plan_id FROM sku_plans WHERE tenant_key = ?1 ORDER BY sku_key, position",
            tenant_key,
            |row| builder.add_sku_plan(integer_at(row, 0)?, uuid_at(row, 1)?),
        )?;
        load_rows(
            &transaction,
            "reading groups",
            "SELECT group_key, group_id, display_name, licensed_since FROM groups
             WHERE tenant_key = ?1 ORDER BY group_key",
            tenant_key,
            |row| {
                let group = GroupImage {
                    id: uuid_at(row, 1)?,
                    display_name: text_at(row, 2)?.to_string(),
                    licenses: Vec::new(),
                    licensed_since: logical_time(integer_at(row, 3)?, "a group's licensed_since")?,
                };
                builder.add_group(integer_at(row, 0)?, group);
                Ok(())
            },
        )?;
        load_rows(
            &transaction,
            "reading group licenses",
            "SELECT group_key, sku_key, disabled_plans FROM group_licenses
             WHERE tenant_key = ?1 ORDER BY group_key, position",
            tenant_key,
            |row| {
                builder.add_group_license(
                    integer_at(row, 0)?,
                    integer_at(row, 1)?,
                    codec::split_uuids(text_at(row, 2)?)?,
                )
            },
        )?;
        let user_count: i64 = transaction
            .query_row(
                "SELECT count(*) FROM users WHERE tenant_key = ?1",
                [tenant_key],
                |row| row.get(0),
            )
            .map_err(StoreError::sqlite("counting users"))?;
        builder.reserve_users(usize::try_from(user_count).unwrap_or(0));
        load_rows(
            &transaction,
            "reading users",
            "SELECT user_key, user_id, user_principal_name, display_name, usage_location,
                    proxy_addresses, account_enabled
             FROM users WHERE tenant_key = ?1",
            tenant_key,
            |row| {
                let user = UserImage {
                    id: uuid_at(row, 1)?,
                    user_principal_name: text_at(row, 2)?.to_string(),
                    display_name: text_at(row, 3)?.to_string(),
                    usage_location: codec::parse_optional_country(optional_text_at(row, 4)?)?,
                    proxy_addresses: codec::split_proxy_addresses(text_at(row, 5)?)?,
                    account_enabled: integer_at(row, 6)? != 0,
                    direct_licenses: Vec::new(),
                    memberships: Vec::new(),
                    states: Vec::new(),
                };
                builder.add_user(integer_at(row, 0)?, user);
                Ok(())
            },
        )?;
        // Users are stored by GUID; the engine's order is the order of their keys.
        builder.finish_users();
        load_rows(
            &transaction,
            "reading direct licenses",
            "SELECT user_key, sku_key, disabled_plans, since FROM direct_licenses
             WHERE tenant_key = ?1 ORDER BY user_key, position",
            tenant_key,
            |row| {
                builder.add_direct_license(
                    integer_at(row, 0)?,
                    integer_at(row, 1)?,
                    codec::split_uuids(text_at(row, 2)?)?,
                    logical_time(integer_at(row, 3)?, "a direct license's since")?,
                )
            },
        )?;
        load_rows(
            &transaction,
            "reading memberships",
            "SELECT user_key, group_key, since FROM memberships
             WHERE tenant_key = ?1 ORDER BY user_key, position",
            tenant_key,
            |row| {
                builder.add_membership(
                    integer_at(row, 0)?,
                    integer_at(row, 1)?,
                    logical_time(integer_at(row, 2)?, "a membership's since")?,
                )
            },
        )?;
        load_rows(
            &transaction,
            "reading license assignment states",
            "SELECT user_key, sku_key, source_key, status, cause, disabled_plans, granted_plans, since,
                    last_updated
             FROM license_states WHERE tenant_key = ?1",
            tenant_key,
            |row| {
                builder.add_state(StateRow {
                    user_key: integer_at(row, 0)?,
                    sku_key: integer_at(row, 1)?,
                    source_key: integer_at(row, 2)?,
                    status: text_at(row, 3)?,
                    cause: optional_blob_at(row, 4)?,
                    disabled_plans: blob_at(row, 5)?,
                    granted_plans: optional_blob_at(row, 6)?,
                    since: integer_at(row, 7)?,
                    last_updated: integer_at(row, 8)?,
                })
            },
        )?;
        load_rows(
            &transaction,
            "reading the work queue",
            "SELECT user_key FROM work_queue WHERE tenant_key = ?1 ORDER BY position",
            tenant_key,
            |row| builder.add_queued(integer_at(row, 0)?),
        )?;
        directory::load(&transaction, tenant_key, &mut builder)?;
        transaction
            .commit()
            .map_err(StoreError::sqlite("ending the load transaction"))?;
        Ok((builder.finish(settings, clock), version))
    }

    pub(crate) fn queue(&mut self, tenant_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let mut queue = Vec::new();
        load_rows(
            &self.connection,
            "reading the work queue",
            "SELECT users.user_id FROM work_queue
             JOIN users ON users.tenant_key = work_queue.tenant_key
                       AND users.user_key = work_queue.user_key
             WHERE work_queue.tenant_key = ?1 ORDER BY work_queue.position",
            tenant_key,
            |row| {
                queue.push(uuid_at(row, 0)?);
                Ok(())
            },
        )?;
        Ok(queue)
    }

    pub(crate) fn queue_len(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let count: i64 = self
            .connection
            .query_row(
                "SELECT count(*) FROM work_queue WHERE tenant_key = ?1",
                [tenant_key],
                |row| row.get(0),
            )
            .map_err(StoreError::sqlite("counting the work queue"))?;
        logical_time(count, "the queue length")
    }

    pub(crate) fn changes_since(
        &mut self,
        tenant_id: Uuid,
        after_version: u64,
    ) -> Result<Vec<TenantChange>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let after = logical_time_column(after_version, "the version")?;
        let mut statement = self
            .connection
            .prepare_cached(
                "SELECT version, settings, service_plans, queue, everything, skus, users, groups,
                        deleted_users, deleted_groups
                 FROM tenant_changes WHERE tenant_key = ?1 AND version > ?2 ORDER BY version",
            )
            .map_err(StoreError::sqlite("reading tenant changes"))?;
        let mut rows = statement
            .query(params![tenant_key, after])
            .map_err(StoreError::sqlite("reading tenant changes"))?;
        let mut changes = Vec::new();
        while let Some(row) = rows
            .next()
            .map_err(StoreError::sqlite("reading tenant changes"))?
        {
            changes.push(TenantChange {
                version: logical_time(integer_at(row, 0)?, "a change's version")?,
                settings: integer_at(row, 1)? != 0,
                service_plans: integer_at(row, 2)? != 0,
                queue: integer_at(row, 3)? != 0,
                everything: integer_at(row, 4)? != 0,
                skus: codec::split_concat_uuids(blob_at(row, 5)?)?,
                users: codec::split_concat_uuids(blob_at(row, 6)?)?,
                groups: codec::split_concat_uuids(blob_at(row, 7)?)?,
                deleted_users: codec::split_concat_uuids(blob_at(row, 8)?)?,
                deleted_groups: codec::split_concat_uuids(blob_at(row, 9)?)?,
            });
        }
        Ok(changes)
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
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting a write transaction"))?;
        if let Some(settings) = create {
            Self::insert_tenant(&transaction, settings)?;
        }
        let tenant = transaction
            .prepare_cached(
                "SELECT tenant_key, version, next_sku_key, next_group_key, next_user_key,
                        next_queue_position
                 FROM tenants WHERE tenant_id = ?1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row([blob_of(&tenant_id)], |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, i64>(1)?,
                            Counters {
                                next_sku_key: row.get(2)?,
                                next_group_key: row.get(3)?,
                                next_user_key: row.get(4)?,
                                next_queue_position: row.get(5)?,
                            },
                        ))
                    })
                    .optional()
            })
            .map_err(StoreError::sqlite("looking up the tenant"))?;
        let (tenant_key, version, counters) = tenant.ok_or(StoreError::UnknownTenant { tenant_id })?;
        let version = logical_time(version, "the tenant version")?;
        if let Some(expected) = batch.expected_version {
            if expected != version {
                return Err(StoreError::Conflict {
                    expected,
                    found: version,
                });
            }
        }
        let user_keys = self
            .user_keys
            .take()
            .filter(|cache| cache.tenant_key == tenant_key && cache.version == version)
            .unwrap_or(UserKeyCache {
                tenant_key,
                version,
                ..UserKeyCache::default()
            });
        let mut writer = Writer {
            transaction: &transaction,
            tenant_key,
            tenant_id,
            counters,
            keys: Keys::default(),
            user_keys,
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
        directory::write(&transaction, tenant_key, batch)?;
        security::insert_audit(&transaction, tenant_key, &batch.audit)?;
        // The cache as of the new version: plus the users this write created or looked up,
        // minus those it deleted. Kept only once the write commits.
        let mut user_keys = std::mem::take(&mut writer.user_keys);
        user_keys
            .keys
            .extend(writer.keys.users.iter().map(|(id, key)| (*id, *key)));
        for user_id in &batch.deleted_users {
            user_keys.keys.remove(user_id);
        }
        user_keys.version = new_version;
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing a write"))?;
        self.user_keys = Some(user_keys);
        Ok(new_version)
    }

    // ----- processing leases --------------------------------------------------------------------

    pub(crate) fn try_acquire_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let sql = format!(
            "INSERT INTO processing_leases (tenant_key, instance_id, expires_at)
             VALUES (?1, ?2, {NOW_MILLISECONDS} + ?3)
             ON CONFLICT (tenant_key) DO UPDATE
                 SET instance_id = excluded.instance_id, expires_at = excluded.expires_at
                 WHERE processing_leases.instance_id = excluded.instance_id
                    OR processing_leases.expires_at <= {NOW_MILLISECONDS}"
        );
        let changed = self
            .connection
            .execute(&sql, params![tenant_key, instance_id, milliseconds(ttl)])
            .map_err(StoreError::sqlite("acquiring a processing lease"))?;
        Ok(changed == 1)
    }

    pub(crate) fn renew_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let sql = format!(
            "UPDATE processing_leases SET expires_at = {NOW_MILLISECONDS} + ?3
             WHERE tenant_key = ?1 AND instance_id = ?2"
        );
        let changed = self
            .connection
            .execute(&sql, params![tenant_key, instance_id, milliseconds(ttl)])
            .map_err(StoreError::sqlite("renewing a processing lease"))?;
        Ok(changed == 1)
    }

    pub(crate) fn release_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        self.connection
            .execute(
                "DELETE FROM processing_leases WHERE tenant_key = ?1 AND instance_id = ?2",
                params![tenant_key, instance_id],
            )
            .map_err(StoreError::sqlite("releasing a processing lease"))?;
        Ok(())
    }

    pub(crate) fn processing_lease_holder(&mut self, tenant_id: Uuid) -> Result<Option<String>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let sql = format!(
            "SELECT instance_id FROM processing_leases
             WHERE tenant_key = ?1 AND expires_at > {NOW_MILLISECONDS}"
        );
        self.connection
            .query_row(&sql, [tenant_key], |row| row.get(0))
            .optional()
            .map_err(StoreError::sqlite("reading the processing lease"))
    }

    /// The underlying connection, for tests that inspect or tamper with the schema.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

fn plan_number(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::corrupt(format!("plan number or position {value} out of range")))
}

/// Runs a query with the tenant key as its only parameter and hands each row to `on_row`.
fn load_rows(
    connection: &Connection,
    action: &str,
    sql: &str,
    tenant_key: i64,
    mut on_row: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(StoreError::sqlite(action))?;
    let mut rows = statement
        .query([tenant_key])
        .map_err(StoreError::sqlite(action))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(action))? {
        on_row(row)?;
    }
    Ok(())
}

/// Users removed from the work queue by one statement of [`Writer::dequeue`].
const QUEUE_KEYS_PER_DELETE: usize = 64;

/// State rows written by one statement of [`Writer::upsert_states`].
const STATE_ROWS_PER_STATEMENT: usize = 32;
/// Parameters of one state row after the shared tenant key.
const STATE_COLUMNS: usize = 10;

/// The upsert of `rows` state rows: `?1` is the tenant key, then ten parameters per row.
fn state_upsert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO license_states (tenant_key, user_key, sku_key, source_key, status, error_kind,
             cause, disabled_plans, granted_plans, since, last_updated) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let first = 2 + row * STATE_COLUMNS;
        sql.push_str("(?1");
        for parameter in first..first + STATE_COLUMNS {
            sql.push_str(&format!(", ?{parameter}"));
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (tenant_key, user_key, sku_key, source_key) DO UPDATE SET
             status = excluded.status, error_kind = excluded.error_kind, cause = excluded.cause,
             disabled_plans = excluded.disabled_plans, granted_plans = excluded.granted_plans,
             since = excluded.since, last_updated = excluded.last_updated",
    );
    sql
}

/// Binds one state row's ten parameters from `first` on (SQLite copies the values, so the
/// encoder's buffers are reused for the next row).
fn bind_state<'s>(
    statement: &mut rusqlite::CachedStatement<'_>,
    first: usize,
    keyed: &KeyedState<'s>,
    encoder: &mut StateRowEncoder<'s>,
) -> Result<(), StoreError> {
    const ACTION: &str = "binding a license assignment state";
    let row = encoder.encode(keyed.user_id, keyed.state)?;
    let bind = |statement: &mut rusqlite::CachedStatement<'_>, offset: usize, value: &dyn rusqlite::ToSql| {
        statement
            .raw_bind_parameter(first + offset, value)
            .map_err(StoreError::sqlite(ACTION))
    };
    bind(statement, 0, &keyed.user_key)?;
    bind(statement, 1, &keyed.sku_key)?;
    bind(statement, 2, &keyed.source_key)?;
    bind(statement, 3, &row.status)?;
    bind(statement, 4, &row.error_kind)?;
    bind(statement, 5, &row.cause)?;
    bind(statement, 6, &row.disabled_plans)?;
    bind(statement, 7, &row.granted_plans)?;
    bind(statement, 8, &row.since)?;
    bind(statement, 9, &row.last_updated)?;
    Ok(())
}

/// A write that must look up at least 1/`USER_SCAN_RATIO` of the tenant's users reads all of
/// them into the connection's cache instead (a scan of the users' index costs about as much as
/// this many lookups).
const USER_SCAN_RATIO: i64 = 128;

/// The tenant's next keys, advanced as a write hands keys out and stored with it.
struct Counters {
    next_sku_key: i64,
    next_group_key: i64,
    next_user_key: i64,
    next_queue_position: i64,
}

/// The statements of one write transaction.
struct Writer<'a> {
    transaction: &'a Transaction<'a>,
    tenant_key: i64,
    tenant_id: Uuid,
    counters: Counters,
    keys: Keys,
    /// The connection's cache of user keys, valid for the version this write starts from.
    user_keys: UserKeyCache,
}

impl<'a> Writer<'a> {
    fn statement(&self, action: &str, sql: &str) -> Result<rusqlite::CachedStatement<'a>, StoreError> {
        self.transaction
            .prepare_cached(sql)
            .map_err(StoreError::sqlite(action))
    }

    fn replace_service_plans(&mut self, plans: &[ServicePlanImage]) -> Result<(), StoreError> {
        const ACTION: &str = "replacing service plans";
        let mut existing: FxHashMap<Uuid, i64> = FxHashMap::default();
        {
            let mut statement = self.statement(
                ACTION,
                "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = ?1",
            )?;
            let mut rows = statement
                .query([self.tenant_key])
                .map_err(StoreError::sqlite(ACTION))?;
            while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
                existing.insert(uuid_at(row, 0)?, integer_at(row, 1)?);
            }
        }
        let mut next_number = existing.values().max().map_or(0, |number| number + 1);
        let mut upsert = self.statement(
            ACTION,
            "INSERT INTO service_plans (tenant_key, plan_id, plan_number, position, name, display_name,
                 mutually_exclusive_with, requires_any_of, unavailable_in, needs_unique_proxy_address)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (tenant_key, plan_id) DO UPDATE SET
                 position = excluded.position, name = excluded.name,
                 display_name = excluded.display_name,
                 mutually_exclusive_with = excluded.mutually_exclusive_with,
                 requires_any_of = excluded.requires_any_of,
                 unavailable_in = excluded.unavailable_in,
                 needs_unique_proxy_address = excluded.needs_unique_proxy_address",
        )?;
        let mut kept = FxHashSet::default();
        for (position, plan) in plans.iter().enumerate() {
            let id = plan.definition.service_plan_id;
            kept.insert(id);
            let number = match existing.get(&id) {
                Some(number) => *number,
                None => {
                    next_number += 1;
                    next_number - 1
                }
            };
            upsert
                .execute(params![
                    self.tenant_key,
                    blob_of(&id),
                    number,
                    position as i64,
                    plan.definition.service_plan_name,
                    plan.definition.display_name,
                    codec::join_uuids(&plan.rules.mutually_exclusive_with),
                    codec::join_uuids(&plan.rules.requires_any_of),
                    codec::join_countries(&plan.rules.unavailable_in),
                    plan.rules.needs_unique_proxy_address,
                ])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        let mut delete = self.statement(
            ACTION,
            "DELETE FROM service_plans WHERE tenant_key = ?1 AND plan_id = ?2",
        )?;
        for id in existing.keys().filter(|id| !kept.contains(*id)) {
            delete
                .execute(params![self.tenant_key, blob_of(id)])
                .map_err(StoreError::sqlite("deleting a service plan no longer listed"))?;
        }
        Ok(())
    }

    fn upsert_skus(&mut self, skus: &[&SkuDefinition]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting products";
        if skus.is_empty() {
            return Ok(());
        }
        let mut upsert = self.statement(
            ACTION,
            "INSERT INTO skus (tenant_key, sku_key, sku_id, sku_part_number, display_name, applies_to,
                 prepaid_units, capability_status)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
                 sku_part_number = excluded.sku_part_number, display_name = excluded.display_name,
                 applies_to = excluded.applies_to, prepaid_units = excluded.prepaid_units,
                 capability_status = excluded.capability_status
             RETURNING sku_key",
        )?;
        let mut delete_plans = self.statement(
            ACTION,
            "DELETE FROM sku_plans WHERE tenant_key = ?1 AND sku_key = ?2",
        )?;
        let mut insert_plan = self.statement(
            ACTION,
            "INSERT INTO sku_plans (tenant_key, sku_key, position, plan_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for sku in skus {
            let action = format!("upserting product {}", sku.sku_id);
            let proposed = self.counters.next_sku_key;
            let sku_key: i64 = upsert
                .query_row(
                    params![
                        self.tenant_key,
                        proposed,
                        blob_of(&sku.sku_id),
                        sku.sku_part_number,
                        sku.display_name,
                        codec::applies_to_text(sku.applies_to),
                        i64::from(sku.prepaid_units),
                        sku.capability_status.as_str(),
                    ],
                    |row| row.get(0),
                )
                .map_err(StoreError::sqlite(&action))?;
            if sku_key == proposed {
                self.counters.next_sku_key += 1;
            }
            self.keys.skus.insert(sku.sku_id, sku_key);
            delete_plans
                .execute(params![self.tenant_key, sku_key])
                .map_err(StoreError::sqlite(&action))?;
            for (plan_position, plan) in sku.service_plans.iter().enumerate() {
                insert_plan
                    .execute(params![
                        self.tenant_key,
                        sku_key,
                        plan_position as i64,
                        blob_of(&plan.service_plan_id),
                    ])
                    .map_err(StoreError::sqlite(&action))?;
            }
        }
        Ok(())
    }

    fn load_sku_keys(&mut self) -> Result<(), StoreError> {
        const ACTION: &str = "reading product keys";
        let mut statement =
            self.statement(ACTION, "SELECT sku_id, sku_key FROM skus WHERE tenant_key = ?1")?;
        let mut rows = statement
            .query([self.tenant_key])
            .map_err(StoreError::sqlite(ACTION))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
            self.keys.skus.insert(uuid_at(row, 0)?, integer_at(row, 1)?);
        }
        Ok(())
    }

    fn upsert_groups(&mut self, groups: &[&GroupImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting groups";
        if groups.is_empty() {
            return Ok(());
        }
        let mut upsert = self.statement(
            ACTION,
            "INSERT INTO groups (tenant_key, group_key, group_id, display_name, licensed_since)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (tenant_key, group_id) DO UPDATE SET
                 display_name = excluded.display_name, licensed_since = excluded.licensed_since
             RETURNING group_key",
        )?;
        let mut delete_licenses = self.statement(
            ACTION,
            "DELETE FROM group_licenses WHERE tenant_key = ?1 AND group_key = ?2",
        )?;
        let mut insert_license = self.statement(
            ACTION,
            "INSERT INTO group_licenses (tenant_key, group_key, position, sku_key, disabled_plans)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for group in groups {
            let action = format!("upserting group {}", group.id);
            let proposed = self.counters.next_group_key;
            let group_key: i64 = upsert
                .query_row(
                    params![
                        self.tenant_key,
                        proposed,
                        blob_of(&group.id),
                        group.display_name,
                        logical_time_column(group.licensed_since, "a group's licensed_since")?,
                    ],
                    |row| row.get(0),
                )
                .map_err(StoreError::sqlite(&action))?;
            if group_key == proposed {
                self.counters.next_group_key += 1;
            }
            self.keys.groups.insert(group.id, group_key);
            delete_licenses
                .execute(params![self.tenant_key, group_key])
                .map_err(StoreError::sqlite(&action))?;
            for (license_position, license) in group.licenses.iter().enumerate() {
                insert_license
                    .execute(params![
                        self.tenant_key,
                        group_key,
                        license_position as i64,
                        self.keys.sku(self.tenant_id, license.sku_id)?,
                        codec::join_uuids(&license.disabled_plans),
                    ])
                    .map_err(StoreError::sqlite(&action))?;
            }
        }
        Ok(())
    }

    /// Looks up the keys of groups not known yet; unknown groups stay unknown.
    fn resolve_groups(&mut self, group_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "looking up group keys";
        let mut lookup = self.statement(
            ACTION,
            "SELECT group_key FROM groups WHERE tenant_key = ?1 AND group_id = ?2",
        )?;
        for group_id in group_ids {
            if self.keys.groups.contains_key(group_id) {
                continue;
            }
            let key: Option<i64> = lookup
                .query_row(params![self.tenant_key, blob_of(group_id)], |row| row.get(0))
                .optional()
                .map_err(StoreError::sqlite(ACTION))?;
            if let Some(key) = key {
                self.keys.groups.insert(*group_id, key);
            }
        }
        Ok(())
    }

    fn upsert_users(&mut self, users: &[&UserImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting users";
        if users.is_empty() {
            return Ok(());
        }
        let mut upsert = self.statement(
            ACTION,
            "INSERT INTO users (tenant_key, user_key, user_id, user_principal_name, display_name,
                 usage_location, proxy_addresses, account_enabled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (tenant_key, user_id) DO UPDATE SET
                 user_principal_name = excluded.user_principal_name,
                 display_name = excluded.display_name, usage_location = excluded.usage_location,
                 proxy_addresses = excluded.proxy_addresses,
                 account_enabled = excluded.account_enabled
             RETURNING user_key",
        )?;
        let mut delete_direct = self.statement(
            ACTION,
            "DELETE FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let mut delete_memberships = self.statement(
            ACTION,
            "DELETE FROM memberships WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let mut insert_direct = self.statement(
            ACTION,
            "INSERT INTO direct_licenses (tenant_key, user_key, position, sku_key, disabled_plans, since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut insert_membership = self.statement(
            ACTION,
            "INSERT INTO memberships (tenant_key, user_key, position, group_key, since)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for user in users {
            let failed = |source| StoreError::Sqlite {
                action: format!("upserting user {}", user.id),
                source,
            };
            let proposed = self.counters.next_user_key;
            let user_key: i64 = upsert
                .query_row(
                    params![
                        self.tenant_key,
                        proposed,
                        blob_of(&user.id),
                        user.user_principal_name,
                        user.display_name,
                        user.usage_location.as_ref().map(|code| code.as_str()),
                        codec::join_proxy_addresses(&user.proxy_addresses),
                        user.account_enabled,
                    ],
                    |row| row.get(0),
                )
                .map_err(failed)?;
            let is_new = user_key == proposed;
            if is_new {
                self.counters.next_user_key += 1;
            } else {
                delete_direct
                    .execute(params![self.tenant_key, user_key])
                    .map_err(failed)?;
                delete_memberships
                    .execute(params![self.tenant_key, user_key])
                    .map_err(failed)?;
            }
            self.keys.users.insert(user.id, user_key);
            for (license_position, direct) in user.direct_licenses.iter().enumerate() {
                insert_direct
                    .execute(params![
                        self.tenant_key,
                        user_key,
                        license_position as i64,
                        self.keys.sku(self.tenant_id, direct.license.sku_id)?,
                        codec::join_uuids(&direct.license.disabled_plans),
                        logical_time_column(direct.since, "a direct license's since")?,
                    ])
                    .map_err(failed)?;
            }
            for (membership_position, membership) in user.memberships.iter().enumerate() {
                insert_membership
                    .execute(params![
                        self.tenant_key,
                        user_key,
                        membership_position as i64,
                        self.keys.group(self.tenant_id, membership.group_id)?,
                        logical_time_column(membership.since, "a membership's since")?,
                    ])
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Looks up the keys of users not known yet (`user_ids` sorted); unknown users stay
    /// unknown.
    fn resolve_users(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "looking up user keys";
        let mut missing = Vec::new();
        for user_id in user_ids {
            match self.user_keys.keys.get(user_id) {
                Some(key) => {
                    self.keys.users.insert(*user_id, *key);
                }
                None if self.user_keys.complete => {}
                None => missing.push(*user_id),
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        // Many users (a processing step of thousands): one pass over the tenant's users fills
        // the cache whole, and the next steps find their users there.
        if missing.len() as i64 * USER_SCAN_RATIO >= self.counters.next_user_key {
            let mut scan = self.statement(
                ACTION,
                "SELECT user_id, user_key FROM users WHERE tenant_key = ?1",
            )?;
            let mut rows = scan
                .query([self.tenant_key])
                .map_err(StoreError::sqlite(ACTION))?;
            let cache = &mut self.user_keys.keys;
            cache.reserve(usize::try_from(self.counters.next_user_key).unwrap_or(0));
            while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
                cache.insert(uuid_at(row, 0)?, integer_at(row, 1)?);
            }
            self.user_keys.complete = true;
            for user_id in missing {
                if let Some(key) = self.user_keys.keys.get(&user_id) {
                    self.keys.users.insert(user_id, *key);
                }
            }
            return Ok(());
        }
        let mut lookup = self.statement(
            ACTION,
            "SELECT user_key FROM users WHERE tenant_key = ?1 AND user_id = ?2",
        )?;
        for user_id in missing {
            let key: Option<i64> = lookup
                .query_row(params![self.tenant_key, blob_of(&user_id)], |row| row.get(0))
                .optional()
                .map_err(StoreError::sqlite(ACTION))?;
            if let Some(key) = key {
                self.keys.users.insert(user_id, key);
                self.user_keys.keys.insert(user_id, key);
            }
        }
        Ok(())
    }

    fn delete_states(&self, keys: &[StateKey]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting license assignment states";
        if keys.is_empty() {
            return Ok(());
        }
        let mut delete = self.statement(
            ACTION,
            "DELETE FROM license_states
             WHERE tenant_key = ?1 AND user_key = ?2 AND sku_key = ?3 AND source_key = ?4",
        )?;
        for key in keys {
            // A state of an entity that is not stored is not stored either.
            if let Some((user_key, sku_key, source_key)) = self.keys.state_key(key) {
                delete
                    .execute(params![self.tenant_key, user_key, sku_key, source_key])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    fn plan_numbers(&self) -> Result<PlanNumbers, StoreError> {
        const ACTION: &str = "reading plan numbers";
        let mut numbers = PlanNumbers::default();
        let mut statement = self.statement(
            ACTION,
            "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = ?1",
        )?;
        let mut rows = statement
            .query([self.tenant_key])
            .map_err(StoreError::sqlite(ACTION))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
            numbers.insert(uuid_at(row, 0)?, plan_number(integer_at(row, 1)?)?);
        }
        Ok(numbers)
    }

    fn upsert_states(&self, states: &[KeyedState<'_>]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting license assignment states";
        let numbers = self.plan_numbers()?;
        let mut encoder = StateRowEncoder::new(self.tenant_id, &numbers);
        // Rows go STATE_ROWS_PER_STATEMENT at a time (one statement step per chunk instead of
        // per row), the rest one by one; parameters are bound in place, no list per row.
        let mut chunked = self.statement(ACTION, &state_upsert_sql(STATE_ROWS_PER_STATEMENT))?;
        let mut single = self.statement(ACTION, &state_upsert_sql(1))?;
        let chunks = states.chunks_exact(STATE_ROWS_PER_STATEMENT);
        let rest = chunks.remainder();
        for chunk in chunks {
            chunked
                .raw_bind_parameter(1, self.tenant_key)
                .map_err(StoreError::sqlite(ACTION))?;
            for (row, keyed) in chunk.iter().enumerate() {
                bind_state(&mut chunked, 2 + row * STATE_COLUMNS, keyed, &mut encoder)?;
            }
            chunked.raw_execute().map_err(StoreError::sqlite(ACTION))?;
        }
        for keyed in rest {
            single
                .raw_bind_parameter(1, self.tenant_key)
                .map_err(StoreError::sqlite(ACTION))?;
            bind_state(&mut single, 2, keyed, &mut encoder)?;
            single.raw_execute().map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn delete_users(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting users";
        // Everything of a user, the user last (these tables have no foreign keys to cascade).
        const DELETES: [&str; 5] = [
            "DELETE FROM license_states WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM memberships WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM users WHERE tenant_key = ?1 AND user_key = ?2",
        ];
        for user_id in user_ids {
            let Some(user_key) = self.keys.users.remove(user_id) else {
                continue;
            };
            for sql in DELETES {
                self.statement(ACTION, sql)?
                    .execute(params![self.tenant_key, user_key])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    fn delete_groups(&mut self, group_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting groups";
        // Memberships go explicitly, licenses by cascade. The engine deletes a group only once
        // no state comes from it, so there are no states to delete.
        const DELETES: [&str; 2] = [
            "DELETE FROM memberships WHERE tenant_key = ?1 AND group_key = ?2",
            "DELETE FROM groups WHERE tenant_key = ?1 AND group_key = ?2",
        ];
        for group_id in group_ids {
            let Some(group_key) = self.keys.groups.remove(group_id) else {
                continue;
            };
            for sql in DELETES {
                self.statement(ACTION, sql)?
                    .execute(params![self.tenant_key, group_key])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    fn dequeue(&self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "removing users from the work queue";
        if user_ids.is_empty() {
            return Ok(());
        }
        // Users that are not stored are not queued either.
        let mut keys: Vec<i64> = user_ids
            .iter()
            .filter_map(|user_id| self.keys.users.get(user_id).copied())
            .collect();
        // In key order the deletes walk the queue's user index front to back.
        keys.sort_unstable();
        let mut placeholders = String::from("?2");
        for parameter in 3..=QUEUE_KEYS_PER_DELETE + 1 {
            placeholders.push_str(&format!(", ?{parameter}"));
        }
        let mut chunked = self.statement(
            ACTION,
            &format!("DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key IN ({placeholders})"),
        )?;
        let mut single = self.statement(
            ACTION,
            "DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let chunks = keys.chunks_exact(QUEUE_KEYS_PER_DELETE);
        let rest = chunks.remainder();
        for chunk in chunks {
            chunked
                .raw_bind_parameter(1, self.tenant_key)
                .map_err(StoreError::sqlite(ACTION))?;
            for (index, user_key) in chunk.iter().enumerate() {
                chunked
                    .raw_bind_parameter(2 + index, user_key)
                    .map_err(StoreError::sqlite(ACTION))?;
            }
            chunked.raw_execute().map_err(StoreError::sqlite(ACTION))?;
        }
        for user_key in rest {
            single
                .execute(params![self.tenant_key, user_key])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn enqueue(&mut self, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "appending users to the work queue";
        if user_ids.is_empty() {
            return Ok(());
        }
        let mut insert = self.statement(
            ACTION,
            "INSERT INTO work_queue (tenant_key, position, user_key) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_key, user_key) DO NOTHING",
        )?;
        for user_id in user_ids {
            let user_key = self.keys.user(self.tenant_id, *user_id)?;
            let inserted = insert
                .execute(params![
                    self.tenant_key,
                    self.counters.next_queue_position,
                    user_key
                ])
                .map_err(StoreError::sqlite(ACTION))?;
            if inserted == 1 {
                self.counters.next_queue_position += 1;
            }
        }
        Ok(())
    }

    fn update_tenant(&self, batch: &WriteBatch, new_version: u64) -> Result<(), StoreError> {
        const ACTION: &str = "updating the tenant";
        if let Some(settings) = &batch.settings {
            self.statement(
                ACTION,
                "UPDATE tenants SET display_name = ?2, default_usage_location = ?3, self_healing = ?4
                 WHERE tenant_key = ?1",
            )?
            .execute(params![
                self.tenant_key,
                settings.display_name,
                settings.default_usage_location.as_ref().map(|code| code.as_str()),
                settings.self_healing,
            ])
            .map_err(StoreError::sqlite(ACTION))?;
        }
        let clock = batch
            .clock
            .map(|clock| logical_time_column(clock, "the clock"))
            .transpose()?;
        self.statement(
            ACTION,
            "UPDATE tenants SET version = ?2, clock = coalesce(?3, clock), next_sku_key = ?4,
                 next_group_key = ?5, next_user_key = ?6, next_queue_position = ?7
             WHERE tenant_key = ?1",
        )?
        .execute(params![
            self.tenant_key,
            logical_time_column(new_version, "the version")?,
            clock,
            self.counters.next_sku_key,
            self.counters.next_group_key,
            self.counters.next_user_key,
            self.counters.next_queue_position,
        ])
        .map_err(StoreError::sqlite(ACTION))?;
        Ok(())
    }

    fn record_change(&self, version: u64, change: &TenantChange) -> Result<(), StoreError> {
        const ACTION: &str = "recording the tenant change";
        let sql = format!(
            "INSERT INTO tenant_changes (tenant_key, version, recorded_at, settings, service_plans, queue,
                 everything, skus, users, groups, deleted_users, deleted_groups)
             VALUES (?1, ?2, {NOW_MILLISECONDS}, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        );
        self.statement(ACTION, &sql)?
            .execute(params![
                self.tenant_key,
                logical_time_column(version, "the version")?,
                change.settings,
                change.service_plans,
                change.queue,
                change.everything,
                codec::concat_uuids(&change.skus),
                codec::concat_uuids(&change.users),
                codec::concat_uuids(&change.groups),
                codec::concat_uuids(&change.deleted_users),
                codec::concat_uuids(&change.deleted_groups),
            ])
            .map_err(StoreError::sqlite(ACTION))?;
        Ok(())
    }
}
