//! The SQLite backend: one connection to a database file in WAL mode, the shared statements
//! ([`Session`]) in SQLite's dialect, and the steps of a write whose statements are SQLite's own
//! ([`WriteTransaction`]: rows bound one by one into prepared, often multi-row, statements).
//! Writers take the database's write lock when their transaction begins (`BEGIN IMMEDIATE`), so
//! writes are serialized.

use std::time::Duration;

use licensd_engine::image::{GroupImage, ServicePlanImage, UserImage};
use licensd_engine::{SkuDefinition, TenantSettings, Uuid};
use rusqlite::types::{Null, ToSqlOutput, ValueRef};
use rusqlite::{
    params, params_from_iter, Connection, OptionalExtension, Row, Transaction, TransactionBehavior,
};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{KeyedState, WriteBatch};
use crate::codec::{self, PlanNumbers, StateRowEncoder};
use crate::error::StoreError;
use crate::load::{logical_time_column, plan_number, Load};
use crate::migration::{Migrate, Migration};
use crate::sql::{self, Database, Dialect, Param, ReadRow, Session};
use crate::write::{WriteBackend, WriteScope, WriteTransaction};

mod directory;

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

// ----- shared statements in SQLite's dialect ------------------------------------------------------

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Param::Integer(value) => ToSqlOutput::from(value),
            Param::OptionalInteger(Some(value)) => ToSqlOutput::from(value),
            Param::Text(text) | Param::OptionalText(Some(text)) => {
                ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes()))
            }
            Param::Flag(flag) => ToSqlOutput::from(flag),
            Param::Id(ref id) | Param::OptionalId(Some(ref id)) => {
                ToSqlOutput::Borrowed(ValueRef::Blob(id.as_bytes()))
            }
            Param::Bytes(bytes) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Param::OptionalInteger(None) | Param::OptionalText(None) | Param::OptionalId(None) => {
                ToSqlOutput::from(Null)
            }
        })
    }
}

impl ReadRow for Row<'_> {
    fn integer(&self, index: usize) -> Result<i64, StoreError> {
        integer_at(self, index)
    }

    fn optional_integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        match column(self, index)? {
            ValueRef::Null => Ok(None),
            _ => integer_at(self, index).map(Some),
        }
    }

    fn text(&self, index: usize) -> Result<&str, StoreError> {
        text_at(self, index)
    }

    fn optional_text(&self, index: usize) -> Result<Option<&str>, StoreError> {
        optional_text_at(self, index)
    }

    fn flag(&self, index: usize) -> Result<bool, StoreError> {
        Ok(integer_at(self, index)? != 0)
    }

    fn id(&self, index: usize) -> Result<Uuid, StoreError> {
        uuid_at(self, index)
    }

    fn optional_id(&self, index: usize) -> Result<Option<Uuid>, StoreError> {
        optional_blob_at(self, index)?
            .map(codec::uuid_from_blob)
            .transpose()
    }

    fn bytes(&self, index: usize) -> Result<&[u8], StoreError> {
        blob_at(self, index)
    }

    fn optional_bytes(&self, index: usize) -> Result<Option<&[u8]>, StoreError> {
        optional_blob_at(self, index)
    }
}

impl Session for Transaction<'_> {
    type Row<'r> = Row<'r>;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        run_on(self, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        rows_on(self, action, sql, params, on_row)
    }
}

impl sql::Transaction for Transaction<'_> {
    fn run_script(&mut self, action: &str, sql: &str) -> Result<(), StoreError> {
        self.execute_batch(sql).map_err(StoreError::sqlite(action))
    }

    fn commit(self, action: &str) -> Result<(), StoreError> {
        Transaction::commit(self).map_err(StoreError::sqlite(action))
    }
}

impl Session for SqliteStore {
    type Row<'r> = Row<'r>;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        run_on(&self.connection, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        rows_on(&self.connection, action, sql, params, on_row)
    }
}

impl Database for SqliteStore {
    type Transaction<'a> = Transaction<'a>;

    fn begin(&mut self, action: &str) -> Result<Transaction<'_>, StoreError> {
        self.connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite(action))
    }

    /// A deferred transaction: its first read fixes the snapshot (WAL mode).
    fn begin_snapshot(&mut self, action: &str) -> Result<Transaction<'_>, StoreError> {
        self.connection
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .map_err(StoreError::sqlite(action))
    }
}

impl Load for SqliteStore {
    const USERS_ORDER: &'static str = "";
}

impl Migrate for SqliteStore {
    type Step<'a> = Transaction<'a>;

    const CREATE_SCHEMA_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS schema_migrations (
         version INTEGER PRIMARY KEY,
         name TEXT NOT NULL,
         applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
     )";

    fn script(migration: &Migration) -> &'static str {
        migration.sqlite
    }

    /// `BEGIN IMMEDIATE` holds the database's write lock: one migrating connection at a time.
    fn begin_step(&mut self) -> Result<Transaction<'_>, StoreError> {
        self.begin("starting a migration")
    }
}

/// Runs a shared statement on `connection`.
fn run_on(connection: &Connection, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
    let sql = Dialect::Sqlite.spell(sql);
    let changed = connection
        .prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(params_from_iter(params)))
        .map_err(StoreError::sqlite(action))?;
    Ok(changed as u64)
}

/// Runs a shared query on `connection`, handing each row to `on_row`.
fn rows_on(
    connection: &Connection,
    action: &str,
    sql: &str,
    params: &[Param<'_>],
    mut on_row: impl FnMut(&Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let sql = Dialect::Sqlite.spell(sql);
    let mut statement = connection
        .prepare_cached(&sql)
        .map_err(StoreError::sqlite(action))?;
    let mut rows = statement
        .query(params_from_iter(params))
        .map_err(StoreError::sqlite(action))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(action))? {
        on_row(row)?;
    }
    Ok(())
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
        crate::migration::migrate(&mut store)?;
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
                 PRAGMA cache_size = -8192;",
            )
            .map_err(StoreError::sqlite("setting connection pragmas"))?;
        connection.set_prepared_statement_cache_capacity(64);
        Ok(())
    }

    pub(crate) fn create_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        let transaction = self.begin("starting to create a tenant")?;
        Self::insert_tenant(&transaction, settings)?;
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing the new tenant"))
    }

    /// Inserts a new, empty tenant within `transaction`; refuses one that exists.
    fn insert_tenant(transaction: &Connection, settings: &TenantSettings) -> Result<(), StoreError> {
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

    /// The underlying connection, for tests that inspect or tamper with the schema.
    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

/// Users removed from the work queue by one statement of [`SqliteWrite::dequeue`].
const QUEUE_KEYS_PER_DELETE: usize = 64;

/// State rows written by one statement of [`SqliteWrite::upsert_states`].
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

// ----- writing ------------------------------------------------------------------------------------

impl WriteBackend for SqliteStore {
    type Transaction<'a> = SqliteWrite<'a>;

    fn begin_write(&mut self) -> Result<SqliteWrite<'_>, StoreError> {
        let SqliteStore {
            connection,
            user_keys,
        } = self;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("starting a write transaction"))?;
        Ok(SqliteWrite {
            transaction,
            cache: user_keys,
            user_keys: UserKeyCache::default(),
        })
    }
}

/// One write transaction on SQLite.
pub(crate) struct SqliteWrite<'a> {
    transaction: Transaction<'a>,
    /// Where the connection keeps its cache of user keys between writes: taken by
    /// [`WriteTransaction::start`], put back by a successful commit.
    cache: &'a mut Option<UserKeyCache>,
    /// The cache of user keys, valid for the version this write starts from.
    user_keys: UserKeyCache,
}

impl Session for SqliteWrite<'_> {
    type Row<'r> = Row<'r>;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        run_on(&self.transaction, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        rows_on(&self.transaction, action, sql, params, on_row)
    }
}

/// Prepares `sql` once per connection (rusqlite's statement cache).
fn statement<'c>(
    connection: &'c Connection,
    action: &str,
    sql: &str,
) -> Result<rusqlite::CachedStatement<'c>, StoreError> {
    connection.prepare_cached(sql).map_err(StoreError::sqlite(action))
}

impl WriteTransaction for SqliteWrite<'_> {
    fn insert_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        SqliteStore::insert_tenant(&self.transaction, settings)
    }

    /// Nothing to take: `BEGIN IMMEDIATE` holds the database's write lock already.
    fn lock_tenant(&mut self, _tenant_key: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Takes the connection's cache of user keys when it is still valid: kept by a write to this
    /// tenant that left the version this write starts from.
    fn start(&mut self, scope: &WriteScope) {
        self.user_keys = self
            .cache
            .take()
            .filter(|cache| cache.tenant_key == scope.tenant_key && cache.version == scope.version)
            .unwrap_or(UserKeyCache {
                tenant_key: scope.tenant_key,
                version: scope.version,
                ..UserKeyCache::default()
            });
    }

    fn replace_service_plans(
        &mut self,
        scope: &WriteScope,
        plans: &[ServicePlanImage],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "replacing service plans";
        let mut existing: FxHashMap<Uuid, i64> = FxHashMap::default();
        crate::write::read_keys(
            self,
            ACTION,
            "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = $1",
            &[Param::Integer(scope.tenant_key)],
            &mut existing,
        )?;
        let mut next_number = existing.values().max().map_or(0, |number| number + 1);
        let mut upsert = statement(
            &self.transaction,
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
                    scope.tenant_key,
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
        let mut delete = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM service_plans WHERE tenant_key = ?1 AND plan_id = ?2",
        )?;
        for id in existing.keys().filter(|id| !kept.contains(*id)) {
            delete
                .execute(params![scope.tenant_key, blob_of(id)])
                .map_err(StoreError::sqlite("deleting a service plan no longer listed"))?;
        }
        Ok(())
    }

    fn upsert_skus(&mut self, scope: &mut WriteScope, skus: &[&SkuDefinition]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting products";
        let mut upsert = statement(
            &self.transaction,
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
        let mut delete_plans = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM sku_plans WHERE tenant_key = ?1 AND sku_key = ?2",
        )?;
        let mut insert_plan = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO sku_plans (tenant_key, sku_key, position, plan_id) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for sku in skus {
            let action = format!("upserting product {}", sku.sku_id);
            let proposed = scope.counters.next_sku_key;
            let sku_key: i64 = upsert
                .query_row(
                    params![
                        scope.tenant_key,
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
                scope.counters.next_sku_key += 1;
            }
            scope.keys.skus.insert(sku.sku_id, sku_key);
            delete_plans
                .execute(params![scope.tenant_key, sku_key])
                .map_err(StoreError::sqlite(&action))?;
            for (plan_position, plan) in sku.service_plans.iter().enumerate() {
                insert_plan
                    .execute(params![
                        scope.tenant_key,
                        sku_key,
                        plan_position as i64,
                        blob_of(&plan.service_plan_id),
                    ])
                    .map_err(StoreError::sqlite(&action))?;
            }
        }
        Ok(())
    }

    fn upsert_groups(&mut self, scope: &mut WriteScope, groups: &[&GroupImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting groups";
        let mut upsert = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO groups (tenant_key, group_key, group_id, display_name, licensed_since,
                 membership_rule, membership_rule_state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant_key, group_id) DO UPDATE SET
                 display_name = excluded.display_name, licensed_since = excluded.licensed_since,
                 membership_rule = excluded.membership_rule,
                 membership_rule_state = excluded.membership_rule_state
             RETURNING group_key",
        )?;
        let mut delete_licenses = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM group_licenses WHERE tenant_key = ?1 AND group_key = ?2",
        )?;
        let mut insert_license = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO group_licenses (tenant_key, group_key, position, sku_key, disabled_plans)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for group in groups {
            let action = format!("upserting group {}", group.id);
            let proposed = scope.counters.next_group_key;
            let (rule, rule_state) = codec::rule_columns(group);
            let group_key: i64 = upsert
                .query_row(
                    params![
                        scope.tenant_key,
                        proposed,
                        blob_of(&group.id),
                        group.display_name,
                        logical_time_column(group.licensed_since, "a group's licensed_since")?,
                        rule,
                        rule_state,
                    ],
                    |row| row.get(0),
                )
                .map_err(StoreError::sqlite(&action))?;
            if group_key == proposed {
                scope.counters.next_group_key += 1;
            }
            scope.keys.groups.insert(group.id, group_key);
            delete_licenses
                .execute(params![scope.tenant_key, group_key])
                .map_err(StoreError::sqlite(&action))?;
            for (license_position, license) in group.licenses.iter().enumerate() {
                insert_license
                    .execute(params![
                        scope.tenant_key,
                        group_key,
                        license_position as i64,
                        scope.keys.sku(scope.tenant_id, license.sku_id)?,
                        codec::join_uuids(&license.disabled_plans),
                    ])
                    .map_err(StoreError::sqlite(&action))?;
            }
        }
        Ok(())
    }

    fn look_up_groups(&mut self, scope: &mut WriteScope, group_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "looking up group keys";
        let mut lookup = statement(
            &self.transaction,
            ACTION,
            "SELECT group_key FROM groups WHERE tenant_key = ?1 AND group_id = ?2",
        )?;
        for group_id in group_ids {
            let key: Option<i64> = lookup
                .query_row(params![scope.tenant_key, blob_of(group_id)], |row| row.get(0))
                .optional()
                .map_err(StoreError::sqlite(ACTION))?;
            if let Some(key) = key {
                scope.keys.groups.insert(*group_id, key);
            }
        }
        Ok(())
    }

    fn upsert_users(&mut self, scope: &mut WriteScope, users: &[&UserImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting users";
        let mut upsert = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO users (tenant_key, user_key, user_id, user_principal_name, display_name,
                 usage_location, proxy_addresses, account_enabled, attributes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (tenant_key, user_id) DO UPDATE SET
                 user_principal_name = excluded.user_principal_name,
                 display_name = excluded.display_name, usage_location = excluded.usage_location,
                 proxy_addresses = excluded.proxy_addresses,
                 account_enabled = excluded.account_enabled, attributes = excluded.attributes
             RETURNING user_key",
        )?;
        let mut delete_direct = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let mut delete_memberships = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM memberships WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let mut insert_direct = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO direct_licenses (tenant_key, user_key, position, sku_key, disabled_plans, since)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut insert_membership = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO memberships (tenant_key, user_key, position, group_key, since)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for user in users {
            let failed = |source| StoreError::Sqlite {
                action: format!("upserting user {}", user.id),
                source,
            };
            let proposed = scope.counters.next_user_key;
            let user_key: i64 = upsert
                .query_row(
                    params![
                        scope.tenant_key,
                        proposed,
                        blob_of(&user.id),
                        user.user_principal_name,
                        user.display_name,
                        user.usage_location.as_ref().map(|code| code.as_str()),
                        codec::join_proxy_addresses(&user.proxy_addresses),
                        user.account_enabled,
                        codec::join_user_attributes(&user.attributes),
                    ],
                    |row| row.get(0),
                )
                .map_err(failed)?;
            let is_new = user_key == proposed;
            if is_new {
                scope.counters.next_user_key += 1;
            } else {
                delete_direct
                    .execute(params![scope.tenant_key, user_key])
                    .map_err(failed)?;
                delete_memberships
                    .execute(params![scope.tenant_key, user_key])
                    .map_err(failed)?;
            }
            scope.keys.users.insert(user.id, user_key);
            for (license_position, direct) in user.direct_licenses.iter().enumerate() {
                insert_direct
                    .execute(params![
                        scope.tenant_key,
                        user_key,
                        license_position as i64,
                        scope.keys.sku(scope.tenant_id, direct.license.sku_id)?,
                        codec::join_uuids(&direct.license.disabled_plans),
                        logical_time_column(direct.since, "a direct license's since")?,
                    ])
                    .map_err(failed)?;
            }
            for (membership_position, membership) in user.memberships.iter().enumerate() {
                insert_membership
                    .execute(params![
                        scope.tenant_key,
                        user_key,
                        membership_position as i64,
                        scope.keys.group(scope.tenant_id, membership.group_id)?,
                        logical_time_column(membership.since, "a membership's since")?,
                    ])
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Finds users in the connection's cache first; looks the others up one by one, or, when
    /// they are many, reads every user of the tenant into the cache.
    fn look_up_users(&mut self, scope: &mut WriteScope, user_ids: &[Uuid]) -> Result<(), StoreError> {
        const ACTION: &str = "looking up user keys";
        let mut missing = Vec::new();
        for user_id in user_ids {
            match self.user_keys.keys.get(user_id) {
                Some(key) => {
                    scope.keys.users.insert(*user_id, *key);
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
        if missing.len() as i64 * USER_SCAN_RATIO >= scope.counters.next_user_key {
            let mut scan = statement(
                &self.transaction,
                ACTION,
                "SELECT user_id, user_key FROM users WHERE tenant_key = ?1",
            )?;
            let mut rows = scan
                .query([scope.tenant_key])
                .map_err(StoreError::sqlite(ACTION))?;
            let cache = &mut self.user_keys.keys;
            cache.reserve(usize::try_from(scope.counters.next_user_key).unwrap_or(0));
            while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
                cache.insert(uuid_at(row, 0)?, integer_at(row, 1)?);
            }
            self.user_keys.complete = true;
            for user_id in missing {
                if let Some(key) = self.user_keys.keys.get(&user_id) {
                    scope.keys.users.insert(user_id, *key);
                }
            }
            return Ok(());
        }
        let mut lookup = statement(
            &self.transaction,
            ACTION,
            "SELECT user_key FROM users WHERE tenant_key = ?1 AND user_id = ?2",
        )?;
        for user_id in missing {
            let key: Option<i64> = lookup
                .query_row(params![scope.tenant_key, blob_of(&user_id)], |row| row.get(0))
                .optional()
                .map_err(StoreError::sqlite(ACTION))?;
            if let Some(key) = key {
                scope.keys.users.insert(user_id, key);
                self.user_keys.keys.insert(user_id, key);
            }
        }
        Ok(())
    }

    fn update_user_rows(
        &mut self,
        scope: &WriteScope,
        users: &[(i64, &UserImage)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "updating users";
        let mut update = statement(
            &self.transaction,
            ACTION,
            "UPDATE users SET user_principal_name = ?3, display_name = ?4, usage_location = ?5,
                 proxy_addresses = ?6, account_enabled = ?7, attributes = ?8
             WHERE tenant_key = ?1 AND user_id = ?2",
        )?;
        for (_, user) in users {
            update
                .execute(params![
                    scope.tenant_key,
                    blob_of(&user.id),
                    user.user_principal_name,
                    user.display_name,
                    user.usage_location.as_ref().map(|code| code.as_str()),
                    codec::join_proxy_addresses(&user.proxy_addresses),
                    user.account_enabled,
                    codec::join_user_attributes(&user.attributes),
                ])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn delete_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "deleting memberships";
        let mut delete = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM memberships WHERE tenant_key = ?1 AND group_key = ?3 AND user_key = ?2",
        )?;
        for (user_key, group_key) in memberships {
            delete
                .execute(params![scope.tenant_key, user_key, group_key])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn append_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64, i64)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "adding memberships";
        let mut insert = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO memberships (tenant_key, user_key, position, group_key, since)
             SELECT ?1, ?2, coalesce(max(position) + 1, 0), ?3, ?4
             FROM memberships WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        for (user_key, group_key, since) in memberships {
            insert
                .execute(params![scope.tenant_key, user_key, group_key, since])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn delete_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "deleting direct licenses";
        let mut delete = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2 AND sku_key = ?3",
        )?;
        for (user_key, sku_key) in licenses {
            delete
                .execute(params![scope.tenant_key, user_key, sku_key])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn set_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64, String, i64)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "writing direct licenses";
        let mut update = statement(
            &self.transaction,
            ACTION,
            "UPDATE direct_licenses SET disabled_plans = ?4
             WHERE tenant_key = ?1 AND user_key = ?2 AND sku_key = ?3",
        )?;
        let mut insert = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO direct_licenses (tenant_key, user_key, position, sku_key, disabled_plans, since)
             SELECT ?1, ?2, coalesce(max(position) + 1, 0), ?3, ?4, ?5
             FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        for (user_key, sku_key, disabled_plans, since) in licenses {
            let updated = update
                .execute(params![scope.tenant_key, user_key, sku_key, disabled_plans])
                .map_err(StoreError::sqlite(ACTION))?;
            if updated == 0 {
                insert
                    .execute(params![
                        scope.tenant_key,
                        user_key,
                        sku_key,
                        disabled_plans,
                        since
                    ])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    fn delete_states(&mut self, scope: &WriteScope, keys: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting license assignment states";
        let mut delete = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM license_states
             WHERE tenant_key = ?1 AND user_key = ?2 AND sku_key = ?3 AND source_key = ?4",
        )?;
        for (user_key, sku_key, source_key) in keys {
            delete
                .execute(params![scope.tenant_key, user_key, sku_key, source_key])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    /// Rows go [`STATE_ROWS_PER_STATEMENT`] at a time (one statement step per chunk instead of
    /// per row), the rest one by one; parameters are bound in place, no list per row.
    fn upsert_states(&mut self, scope: &WriteScope, states: &[KeyedState<'_>]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting license assignment states";
        let numbers = plan_numbers(&self.transaction, scope.tenant_key)?;
        let mut encoder = StateRowEncoder::new(scope.tenant_id, &numbers);
        let mut chunked = statement(
            &self.transaction,
            ACTION,
            &state_upsert_sql(STATE_ROWS_PER_STATEMENT),
        )?;
        let mut single = statement(&self.transaction, ACTION, &state_upsert_sql(1))?;
        let chunks = states.chunks_exact(STATE_ROWS_PER_STATEMENT);
        let rest = chunks.remainder();
        for chunk in chunks {
            chunked
                .raw_bind_parameter(1, scope.tenant_key)
                .map_err(StoreError::sqlite(ACTION))?;
            for (row, keyed) in chunk.iter().enumerate() {
                bind_state(&mut chunked, 2 + row * STATE_COLUMNS, keyed, &mut encoder)?;
            }
            chunked.raw_execute().map_err(StoreError::sqlite(ACTION))?;
        }
        for keyed in rest {
            single
                .raw_bind_parameter(1, scope.tenant_key)
                .map_err(StoreError::sqlite(ACTION))?;
            bind_state(&mut single, 2, keyed, &mut encoder)?;
            single.raw_execute().map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    fn delete_users(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting users";
        // Everything of a user, the user last (these tables have no foreign keys to cascade).
        const DELETES: [&str; 5] = [
            "DELETE FROM license_states WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM memberships WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM direct_licenses WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key = ?2",
            "DELETE FROM users WHERE tenant_key = ?1 AND user_key = ?2",
        ];
        for user_key in user_keys {
            for sql in DELETES {
                statement(&self.transaction, ACTION, sql)?
                    .execute(params![scope.tenant_key, user_key])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    fn delete_groups(&mut self, scope: &WriteScope, group_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting groups";
        // Memberships go explicitly, licenses by cascade. The engine deletes a group only once
        // no state comes from it, so there are no states to delete.
        const DELETES: [&str; 2] = [
            "DELETE FROM memberships WHERE tenant_key = ?1 AND group_key = ?2",
            "DELETE FROM groups WHERE tenant_key = ?1 AND group_key = ?2",
        ];
        for group_key in group_keys {
            for sql in DELETES {
                statement(&self.transaction, ACTION, sql)?
                    .execute(params![scope.tenant_key, group_key])
                    .map_err(StoreError::sqlite(ACTION))?;
            }
        }
        Ok(())
    }

    /// [`QUEUE_KEYS_PER_DELETE`] users per statement, the rest one by one.
    fn dequeue(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "removing users from the work queue";
        let mut placeholders = String::from("?2");
        for parameter in 3..=QUEUE_KEYS_PER_DELETE + 1 {
            placeholders.push_str(&format!(", ?{parameter}"));
        }
        let mut chunked = statement(
            &self.transaction,
            ACTION,
            &format!("DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key IN ({placeholders})"),
        )?;
        let mut single = statement(
            &self.transaction,
            ACTION,
            "DELETE FROM work_queue WHERE tenant_key = ?1 AND user_key = ?2",
        )?;
        let chunks = user_keys.chunks_exact(QUEUE_KEYS_PER_DELETE);
        let rest = chunks.remainder();
        for chunk in chunks {
            chunked
                .raw_bind_parameter(1, scope.tenant_key)
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
                .execute(params![scope.tenant_key, user_key])
                .map_err(StoreError::sqlite(ACTION))?;
        }
        Ok(())
    }

    /// A position is used only by a user that was not queued yet.
    fn enqueue(&mut self, scope: &mut WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "appending users to the work queue";
        let mut insert = statement(
            &self.transaction,
            ACTION,
            "INSERT INTO work_queue (tenant_key, position, user_key) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_key, user_key) DO NOTHING",
        )?;
        for user_key in user_keys {
            let inserted = insert
                .execute(params![
                    scope.tenant_key,
                    scope.counters.next_queue_position,
                    user_key
                ])
                .map_err(StoreError::sqlite(ACTION))?;
            if inserted == 1 {
                scope.counters.next_queue_position += 1;
            }
        }
        Ok(())
    }

    fn write_directory_attributes(&mut self, tenant_key: i64, batch: &WriteBatch) -> Result<(), StoreError> {
        directory::write(&self.transaction, tenant_key, batch)
    }

    /// Keeps the cache of user keys as of the new version: plus the users this write created or
    /// looked up, minus those it deleted.
    fn commit(self, scope: &WriteScope, batches: &[WriteBatch]) -> Result<(), StoreError> {
        let SqliteWrite {
            transaction,
            cache,
            mut user_keys,
        } = self;
        user_keys
            .keys
            .extend(scope.keys.users.iter().map(|(id, key)| (*id, *key)));
        for user_id in batches.iter().flat_map(|batch| &batch.deleted_users) {
            user_keys.keys.remove(user_id);
        }
        user_keys.version = scope.version;
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing a write"))?;
        *cache = Some(user_keys);
        Ok(())
    }
}

fn plan_numbers(connection: &Connection, tenant_key: i64) -> Result<PlanNumbers, StoreError> {
    const ACTION: &str = "reading plan numbers";
    let mut numbers = PlanNumbers::default();
    let mut statement = statement(
        connection,
        ACTION,
        "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = ?1",
    )?;
    let mut rows = statement
        .query([tenant_key])
        .map_err(StoreError::sqlite(ACTION))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(ACTION))? {
        numbers.insert(uuid_at(row, 0)?, plan_number(integer_at(row, 1)?)?);
    }
    Ok(numbers)
}
