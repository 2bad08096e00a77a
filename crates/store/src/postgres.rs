//! The PostgreSQL backend: one connection, the shared statements ([`Session`]) in PostgreSQL's
//! dialect, the steps of a write whose statements are PostgreSQL's own ([`WriteTransaction`]:
//! rows travel as arrays through `unnest`, or stream through binary `COPY`), and change notices
//! (`LISTEN`/`NOTIFY`). Writers of one tenant are serialized across instances by a
//! transaction-scoped advisory lock on the tenant's key.

use std::time::Duration;

use licensd_engine::image::{GroupImage, ServicePlanImage, UserImage};
use licensd_engine::{SkuDefinition, TenantSettings, Uuid};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{FromSql, ToSql, Type};
use postgres::{Client, IsolationLevel, NoTls, Row, Statement, Transaction};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::batch::{last_of_each, ChangeNotice, KeyedState, WriteBatch};
use crate::codec::{self, PlanNumbers, StateRowEncoder};
use crate::error::StoreError;
use crate::load::{logical_time_column, plan_number, Load};
use crate::migration::{Migrate, Migration};
use crate::reads::tenant_key;
use crate::sql::{self, Database, Dialect, Param, ReadRow, Session};
use crate::write::{WriteBackend, WriteScope, WriteTransaction};

mod directory;

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

/// Rows per statement when rows travel as arrays.
const CHUNK: usize = 10_000;
/// Above this many state upserts a write streams them with `COPY` instead of arrays.
const COPY_THRESHOLD: usize = 2_000;

/// A store on a PostgreSQL database.
pub struct PostgresStore {
    client: Client,
    /// Statements prepared on this connection for writes, by their text as written.
    statements: FxHashMap<String, Statement>,
    /// The first key of this connection's advisory locks ([`lock_class`]).
    lock_class: i32,
    /// The channel writes announce themselves on (`NOTIFY`): one per schema, like the locks.
    change_channel: String,
    /// Tokens whose revocation was announced, received by [`PostgresStore::wait_for_changes`]
    /// and not yet taken ([`PostgresStore::take_token_notices`]).
    token_notices: Vec<Uuid>,
    /// Tenants whose alert rules changed, announced and not yet taken.
    alert_rules_notices: Vec<Uuid>,
    /// Tenants whose subscriptions changed, announced and not yet taken.
    subscription_notices: Vec<Uuid>,
    /// Tenant keys looked up so far (a tenant's key never changes: tenants are not deleted).
    tenant_keys: FxHashMap<Uuid, i64>,
}

/// The `LISTEN`/`NOTIFY` channel of the schema whose lock class is `lock_class`.
fn change_channel(lock_class: i32) -> String {
    format!("licensd_changes_{:08x}", lock_class as u32)
}

fn get<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|source| StoreError::corrupt(format!("column {index} cannot be read: {source}")))
}

fn lock_object(tenant_key: i64) -> Result<i32, StoreError> {
    i32::try_from(tenant_key)
        .map_err(|_| StoreError::corrupt(format!("tenant key {tenant_key} exceeds 32 bits")))
}

/// Prepares `sql` (shared or PostgreSQL's own) once per connection.
fn statement(
    client: &mut impl postgres::GenericClient,
    statements: &mut FxHashMap<String, Statement>,
    sql: &str,
) -> Result<Statement, StoreError> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let prepared = client
        .prepare(&Dialect::Postgres.spell(sql))
        .map_err(StoreError::postgres("preparing a statement"))?;
    statements.insert(sql.to_string(), prepared.clone());
    Ok(prepared)
}

/// Runs a shared statement prepared once per connection (one round trip).
fn execute_prepared(
    transaction: &mut Transaction<'_>,
    statements: &mut FxHashMap<String, Statement>,
    action: &str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, StoreError> {
    let prepared = statement(transaction, statements, sql)?;
    transaction
        .execute(&prepared, &postgres_params(params))
        .map_err(StoreError::postgres(action))
}

/// Runs a shared query prepared once per connection, row by row.
fn for_each_prepared_row(
    transaction: &mut Transaction<'_>,
    statements: &mut FxHashMap<String, Statement>,
    action: &str,
    sql: &str,
    params: &[Param<'_>],
    mut on_row: impl FnMut(&Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let prepared = statement(transaction, statements, sql)?;
    let mut rows = transaction
        .query_raw(&prepared, postgres_params(params))
        .map_err(StoreError::postgres(action))?;
    while let Some(row) = rows.next().map_err(StoreError::postgres(action))? {
        on_row(&row)?;
    }
    Ok(())
}

// ----- shared statements in PostgreSQL's dialect ------------------------------------------------

impl Param<'_> {
    /// The parameter as the driver binds it (a GUID as `uuid`, a flag as `boolean`).
    fn as_postgres(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Integer(value) => value,
            Param::OptionalInteger(value) => value,
            Param::Text(text) => text,
            Param::OptionalText(text) => text,
            Param::Flag(flag) => flag,
            Param::Id(id) => id,
            Param::OptionalId(id) => id,
            Param::Bytes(bytes) => bytes,
        }
    }
}

fn postgres_params<'p>(params: &'p [Param<'_>]) -> Vec<&'p (dyn ToSql + Sync)> {
    params.iter().map(Param::as_postgres).collect()
}

impl ReadRow for Row {
    fn integer(&self, index: usize) -> Result<i64, StoreError> {
        get(self, index)
    }

    fn optional_integer(&self, index: usize) -> Result<Option<i64>, StoreError> {
        get(self, index)
    }

    fn text(&self, index: usize) -> Result<&str, StoreError> {
        get(self, index)
    }

    fn optional_text(&self, index: usize) -> Result<Option<&str>, StoreError> {
        get(self, index)
    }

    fn flag(&self, index: usize) -> Result<bool, StoreError> {
        get(self, index)
    }

    fn id(&self, index: usize) -> Result<Uuid, StoreError> {
        get(self, index)
    }

    fn optional_id(&self, index: usize) -> Result<Option<Uuid>, StoreError> {
        get(self, index)
    }

    fn bytes(&self, index: usize) -> Result<&[u8], StoreError> {
        get(self, index)
    }

    fn optional_bytes(&self, index: usize) -> Result<Option<&[u8]>, StoreError> {
        get(self, index)
    }
}

/// Runs a shared statement on a client or transaction (unnamed: prepared and run in one go).
fn run_on(
    client: &mut impl postgres::GenericClient,
    action: &str,
    sql: &str,
    params: &[Param<'_>],
) -> Result<u64, StoreError> {
    client
        .execute(&*Dialect::Postgres.spell(sql), &postgres_params(params))
        .map_err(StoreError::postgres(action))
}

/// Streams the rows of a shared query on a client or transaction into `on_row`.
fn rows_on(
    client: &mut impl postgres::GenericClient,
    action: &str,
    sql: &str,
    params: &[Param<'_>],
    mut on_row: impl FnMut(&Row) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut rows = client
        .query_raw(&*Dialect::Postgres.spell(sql), postgres_params(params))
        .map_err(StoreError::postgres(action))?;
    while let Some(row) = rows.next().map_err(StoreError::postgres(action))? {
        on_row(&row)?;
    }
    Ok(())
}

impl Session for Transaction<'_> {
    type Row<'r> = Row;

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
        self.batch_execute(sql).map_err(StoreError::postgres(action))
    }

    fn commit(self, action: &str) -> Result<(), StoreError> {
        Transaction::commit(self).map_err(StoreError::postgres(action))
    }
}

impl Session for PostgresStore {
    type Row<'r> = Row;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        run_on(&mut self.client, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        rows_on(&mut self.client, action, sql, params, on_row)
    }
}

impl Database for PostgresStore {
    type Transaction<'a> = Transaction<'a>;

    fn begin(&mut self, action: &str) -> Result<Transaction<'_>, StoreError> {
        self.client.transaction().map_err(StoreError::postgres(action))
    }

    fn begin_snapshot(&mut self, action: &str) -> Result<Transaction<'_>, StoreError> {
        self.client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::postgres(action))
    }

    fn notice_channel(&self) -> Option<String> {
        Some(self.change_channel.clone())
    }
}

impl Load for PostgresStore {
    const USERS_ORDER: &'static str = " ORDER BY user_key";
}

impl Migrate for PostgresStore {
    type Step<'a> = Transaction<'a>;

    const CREATE_SCHEMA_MIGRATIONS: &'static str = "CREATE TABLE IF NOT EXISTS schema_migrations (
         version BIGINT PRIMARY KEY,
         name TEXT NOT NULL,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
     )";

    fn script(migration: &Migration) -> &'static str {
        migration.postgres
    }

    /// Each step runs under the migration lock, so instances starting together migrate once.
    fn begin_step(&mut self) -> Result<Transaction<'_>, StoreError> {
        let lock_class = self.lock_class;
        let mut transaction = self.begin("starting a migration")?;
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock($1, $2)",
                &[&lock_class, &MIGRATION_LOCK],
            )
            .map_err(StoreError::postgres("taking the migration lock"))?;
        Ok(transaction)
    }
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
            token_notices: Vec::new(),
            alert_rules_notices: Vec::new(),
            subscription_notices: Vec::new(),
            tenant_keys: FxHashMap::default(),
        };
        crate::migration::migrate(&mut store)?;
        Ok(store)
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

    /// Subscribes this connection to the notices every committed write sends.
    pub(crate) fn listen_for_changes(&mut self) -> Result<(), StoreError> {
        self.client
            .batch_execute(&format!("LISTEN {}", self.change_channel))
            .map_err(StoreError::postgres("listening for changes"))
    }

    /// Waits up to `timeout` for the first notice, then takes every notice already received.
    /// Notices of revoked tokens are kept for [`PostgresStore::take_token_notices`].
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
        self.token_notices.extend(
            payloads
                .iter()
                .filter_map(|payload| crate::security::parse_token_notice(payload)),
        );
        self.alert_rules_notices.extend(
            payloads
                .iter()
                .filter_map(|payload| crate::alerts::parse_alert_rules_notice(payload)),
        );
        self.subscription_notices.extend(
            payloads
                .iter()
                .filter_map(|payload| crate::change_subscriptions::parse_subscriptions_notice(payload)),
        );
        Ok(payloads
            .iter()
            .filter_map(|payload| ChangeNotice::parse(payload))
            .collect())
    }

    /// The tenants whose alert rules changed, announced since the last call.
    pub(crate) fn take_alert_rules_notices(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.alert_rules_notices)
    }

    /// The tokens whose revocation notices arrived since the last call.
    pub(crate) fn take_token_notices(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.token_notices)
    }

    /// The tenants whose subscriptions-changed notices arrived since the last call.
    pub(crate) fn take_subscription_notices(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.subscription_notices)
    }

    /// Takes the tenant's write lock for this connection (session-level, re-entrant with the
    /// transaction-level lock every write takes), waiting for another instance to release it.
    pub(crate) fn lock_tenant(&mut self, tenant_id: Uuid) -> Result<(), StoreError> {
        let tenant_key = self.known_tenant_key(tenant_id)?;
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
        let tenant_key = self.known_tenant_key(tenant_id)?;
        self.client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&self.lock_class, &lock_object(tenant_key)?],
            )
            .map_err(StoreError::postgres("releasing the tenant's lock"))?;
        Ok(())
    }

    /// The tenant's key, looked up once per connection.
    fn known_tenant_key(&mut self, tenant_id: Uuid) -> Result<i64, StoreError> {
        if let Some(key) = self.tenant_keys.get(&tenant_id) {
            return Ok(*key);
        }
        let key = tenant_key(self, tenant_id)?;
        self.tenant_keys.insert(tenant_id, key);
        Ok(key)
    }

    /// The underlying connection, for tests that inspect or tamper with the schema.
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }
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

// ----- writing ------------------------------------------------------------------------------------

impl WriteBackend for PostgresStore {
    type Transaction<'a> = PostgresWrite<'a>;

    fn begin_write(&mut self) -> Result<PostgresWrite<'_>, StoreError> {
        let PostgresStore {
            client,
            statements,
            lock_class,
            change_channel,
            tenant_keys,
            ..
        } = self;
        let transaction = client
            .transaction()
            .map_err(StoreError::postgres("starting a write transaction"))?;
        Ok(PostgresWrite {
            transaction,
            statements,
            lock_class: *lock_class,
            change_channel,
            tenant_keys,
        })
    }
}

/// One write transaction on PostgreSQL; its statements are prepared once per connection.
pub(crate) struct PostgresWrite<'a> {
    transaction: Transaction<'a>,
    statements: &'a mut FxHashMap<String, Statement>,
    lock_class: i32,
    change_channel: &'a str,
    tenant_keys: &'a mut FxHashMap<Uuid, i64>,
}

impl Session for PostgresWrite<'_> {
    type Row<'r> = Row;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        execute_prepared(&mut self.transaction, self.statements, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for_each_prepared_row(
            &mut self.transaction,
            self.statements,
            action,
            sql,
            params,
            on_row,
        )
    }
}

/// A read-only snapshot whose statements are prepared once per connection (named, cached by
/// their text): each then costs one round trip instead of two (parse, then execute), which is
/// most of an incremental catch-up's dozen small reads.
pub(crate) struct PostgresSnapshot<'a> {
    transaction: Transaction<'a>,
    statements: &'a mut FxHashMap<String, Statement>,
}

impl PostgresStore {
    /// Starts a read-only snapshot (as [`Database::begin_snapshot`]) whose statements are
    /// prepared once per connection.
    pub(crate) fn begin_cached_snapshot(&mut self, action: &str) -> Result<PostgresSnapshot<'_>, StoreError> {
        let transaction = self
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::postgres(action))?;
        Ok(PostgresSnapshot {
            transaction,
            statements: &mut self.statements,
        })
    }
}

impl PostgresStore {
    /// Runs a query on its own, outside any transaction (a statement sees one snapshot of its
    /// own), prepared once per connection: one round trip. Lists travel as arrays (`uuid[]`).
    pub(crate) fn for_each_row_alone(
        &mut self,
        action: &str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        mut on_row: impl FnMut(&Row) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let prepared = statement(&mut self.client, &mut self.statements, sql)?;
        let mut rows = self
            .client
            .query_raw(&prepared, params.iter().copied())
            .map_err(StoreError::postgres(action))?;
        while let Some(row) = rows.next().map_err(StoreError::postgres(action))? {
            on_row(&row)?;
        }
        Ok(())
    }
}

impl Session for PostgresSnapshot<'_> {
    type Row<'r> = Row;

    fn execute(&mut self, action: &str, sql: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        execute_prepared(&mut self.transaction, self.statements, action, sql, params)
    }

    fn for_each_row(
        &mut self,
        action: &str,
        sql: &str,
        params: &[Param<'_>],
        on_row: impl FnMut(&Self::Row<'_>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for_each_prepared_row(
            &mut self.transaction,
            self.statements,
            action,
            sql,
            params,
            on_row,
        )
    }
}

impl sql::Transaction for PostgresSnapshot<'_> {
    fn run_script(&mut self, action: &str, sql: &str) -> Result<(), StoreError> {
        self.transaction
            .batch_execute(sql)
            .map_err(StoreError::postgres(action))
    }

    fn commit(self, action: &str) -> Result<(), StoreError> {
        self.transaction.commit().map_err(StoreError::postgres(action))
    }
}

/// Reads `(id, key)` rows into a map.
fn read_key_rows(rows: &[Row], into: &mut FxHashMap<Uuid, i64>) -> Result<(), StoreError> {
    for row in rows {
        into.insert(get(row, 0)?, get(row, 1)?);
    }
    Ok(())
}

impl WriteTransaction for PostgresWrite<'_> {
    fn insert_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        PostgresStore::insert_tenant(&mut self.transaction, settings)
    }

    fn known_tenant_key(&mut self, tenant_id: Uuid) -> Result<i64, StoreError> {
        if let Some(key) = self.tenant_keys.get(&tenant_id) {
            return Ok(*key);
        }
        let key = tenant_key(self, tenant_id)?;
        self.tenant_keys.insert(tenant_id, key);
        Ok(key)
    }

    /// The advisory lock on the tenant's key, held until the transaction ends (prepared once
    /// per connection: one round trip, not a parse and an execute).
    fn lock_tenant(&mut self, tenant_key: i64) -> Result<(), StoreError> {
        let lock_class = self.lock_class;
        self.execute_native(
            "taking the tenant's write lock",
            "SELECT pg_advisory_xact_lock($1, $2)",
            &[&lock_class, &lock_object(tenant_key)?],
        )?;
        Ok(())
    }

    fn replace_service_plans(
        &mut self,
        scope: &WriteScope,
        plans: &[ServicePlanImage],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "replacing service plans";
        let tenant_key = scope.tenant_key;
        let rows = self.query_native(
            ACTION,
            "SELECT plan_id, plan_number FROM service_plans WHERE tenant_key = $1",
            &[&tenant_key],
        )?;
        let mut existing: FxHashMap<Uuid, i64> = FxHashMap::default();
        read_key_rows(&rows, &mut existing)?;
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
        self.execute_native(
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
            self.execute_native(
                "deleting service plans no longer listed",
                "DELETE FROM service_plans WHERE tenant_key = $1 AND plan_id = ANY($2)",
                &[&tenant_key, &removed],
            )?;
        }
        Ok(())
    }

    fn upsert_skus(&mut self, scope: &mut WriteScope, skus: &[&SkuDefinition]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting products";
        if skus.is_empty() {
            return Ok(());
        }
        let tenant_key = scope.tenant_key;
        let proposed = propose_keys(&mut scope.counters.next_sku_key, skus.len());
        let ids: Vec<Uuid> = skus.iter().map(|sku| sku.sku_id).collect();
        let part_numbers: Vec<&str> = skus.iter().map(|sku| sku.sku_part_number.as_str()).collect();
        let display_names: Vec<&str> = skus.iter().map(|sku| sku.display_name.as_str()).collect();
        let applies_to: Vec<&str> = skus
            .iter()
            .map(|sku| codec::applies_to_text(sku.applies_to))
            .collect();
        let prepaid: Vec<i64> = skus.iter().map(|sku| i64::from(sku.prepaid_units)).collect();
        let status: Vec<&str> = skus.iter().map(|sku| sku.capability_status.as_str()).collect();
        let rows = self.query_native(
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
        read_key_rows(&rows, &mut scope.keys.skus)?;
        let mut sku_keys = Vec::with_capacity(skus.len());
        let mut plan_skus = Vec::new();
        let mut plan_positions = Vec::new();
        let mut plan_ids = Vec::new();
        for sku in skus {
            let sku_key = scope.keys.sku(scope.tenant_id, sku.sku_id)?;
            sku_keys.push(sku_key);
            for (position, plan) in sku.service_plans.iter().enumerate() {
                plan_skus.push(sku_key);
                plan_positions.push(position as i64);
                plan_ids.push(plan.service_plan_id);
            }
        }
        self.execute_native(
            ACTION,
            "DELETE FROM sku_plans WHERE tenant_key = $1 AND sku_key = ANY($2)",
            &[&tenant_key, &sku_keys],
        )?;
        self.execute_native(
            ACTION,
            "INSERT INTO sku_plans (tenant_key, sku_key, position, plan_id)
             SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::uuid[])",
            &[&tenant_key, &plan_skus, &plan_positions, &plan_ids],
        )?;
        Ok(())
    }

    fn upsert_groups(&mut self, scope: &mut WriteScope, groups: &[&GroupImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting groups";
        let tenant_key = scope.tenant_key;
        for chunk in groups.chunks(CHUNK) {
            let proposed = propose_keys(&mut scope.counters.next_group_key, chunk.len());
            let ids: Vec<Uuid> = chunk.iter().map(|group| group.id).collect();
            let names: Vec<&str> = chunk.iter().map(|group| group.display_name.as_str()).collect();
            let licensed_since: Vec<i64> = chunk
                .iter()
                .map(|group| logical_time_column(group.licensed_since, "a group's licensed_since"))
                .collect::<Result<_, _>>()?;
            let rules: Vec<Option<&str>> = chunk.iter().map(|group| codec::rule_columns(group).0).collect();
            let rule_states: Vec<&str> = chunk.iter().map(|group| codec::rule_columns(group).1).collect();
            let rows = self.query_native(
                ACTION,
                "INSERT INTO groups (tenant_key, group_key, group_id, display_name, licensed_since,
                     membership_rule, membership_rule_state)
                 SELECT $1, * FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::int8[], $6::text[],
                     $7::text[])
                 ON CONFLICT (tenant_key, group_id) DO UPDATE SET
                     display_name = excluded.display_name, licensed_since = excluded.licensed_since,
                     membership_rule = excluded.membership_rule,
                     membership_rule_state = excluded.membership_rule_state
                 RETURNING group_id, group_key",
                &[
                    &tenant_key,
                    &proposed,
                    &ids,
                    &names,
                    &licensed_since,
                    &rules,
                    &rule_states,
                ],
            )?;
            read_key_rows(&rows, &mut scope.keys.groups)?;
            let mut group_keys = Vec::with_capacity(chunk.len());
            let mut license_groups = Vec::new();
            let mut license_positions = Vec::new();
            let mut license_skus = Vec::new();
            let mut license_disabled = Vec::new();
            for group in chunk {
                let group_key = scope.keys.group(scope.tenant_id, group.id)?;
                group_keys.push(group_key);
                for (position, license) in group.licenses.iter().enumerate() {
                    license_groups.push(group_key);
                    license_positions.push(position as i64);
                    license_skus.push(scope.keys.sku(scope.tenant_id, license.sku_id)?);
                    license_disabled.push(codec::join_uuids(&license.disabled_plans));
                }
            }
            self.execute_native(
                ACTION,
                "DELETE FROM group_licenses WHERE tenant_key = $1 AND group_key = ANY($2)",
                &[&tenant_key, &group_keys],
            )?;
            if !license_groups.is_empty() {
                self.execute_native(
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

    fn look_up_groups(&mut self, scope: &mut WriteScope, group_ids: &[Uuid]) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        for chunk in group_ids.chunks(CHUNK * 5) {
            let ids = chunk.to_vec();
            let rows = self.query_native(
                "looking up group keys",
                "SELECT group_id, group_key FROM groups WHERE tenant_key = $1 AND group_id = ANY($2)",
                &[&tenant_key, &ids],
            )?;
            read_key_rows(&rows, &mut scope.keys.groups)?;
        }
        Ok(())
    }

    fn upsert_users(&mut self, scope: &mut WriteScope, users: &[&UserImage]) -> Result<(), StoreError> {
        const ACTION: &str = "upserting users";
        let tenant_key = scope.tenant_key;
        for chunk in users.chunks(CHUNK) {
            let proposed = propose_keys(&mut scope.counters.next_user_key, chunk.len());
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
            let attributes: Vec<String> = chunk
                .iter()
                .map(|user| codec::join_user_attributes(&user.attributes))
                .collect();
            let rows = self.query_native(
                ACTION,
                "INSERT INTO users (tenant_key, user_key, user_id, user_principal_name, display_name,
                     usage_location, proxy_addresses, account_enabled, attributes)
                 SELECT $1, * FROM unnest($2::int8[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::bool[], $9::text[])
                 ON CONFLICT (tenant_key, user_id) DO UPDATE SET
                     user_principal_name = excluded.user_principal_name,
                     display_name = excluded.display_name, usage_location = excluded.usage_location,
                     proxy_addresses = excluded.proxy_addresses,
                     account_enabled = excluded.account_enabled, attributes = excluded.attributes
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
                    &attributes,
                ],
            )?;
            read_key_rows(&rows, &mut scope.keys.users)?;
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
                let user_key = scope.keys.user(scope.tenant_id, user.id)?;
                if user_key != *proposed_key {
                    existing_keys.push(user_key);
                }
                for (position, direct) in user.direct_licenses.iter().enumerate() {
                    direct_users.push(user_key);
                    direct_positions.push(position as i64);
                    direct_skus.push(scope.keys.sku(scope.tenant_id, direct.license.sku_id)?);
                    direct_disabled.push(codec::join_uuids(&direct.license.disabled_plans));
                    direct_since.push(logical_time_column(direct.since, "a direct license's since")?);
                }
                for (position, membership) in user.memberships.iter().enumerate() {
                    member_users.push(user_key);
                    member_positions.push(position as i64);
                    member_groups.push(scope.keys.group(scope.tenant_id, membership.group_id)?);
                    member_since.push(logical_time_column(membership.since, "a membership's since")?);
                }
            }
            // Users stored before get their licenses and memberships replaced.
            if !existing_keys.is_empty() {
                self.execute_native(
                    ACTION,
                    "DELETE FROM direct_licenses WHERE tenant_key = $1 AND user_key = ANY($2)",
                    &[&tenant_key, &existing_keys],
                )?;
                self.execute_native(
                    ACTION,
                    "DELETE FROM memberships WHERE tenant_key = $1 AND user_key = ANY($2)",
                    &[&tenant_key, &existing_keys],
                )?;
            }
            if !direct_users.is_empty() {
                self.execute_native(
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
                self.execute_native(
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

    fn look_up_users(&mut self, scope: &mut WriteScope, user_ids: &[Uuid]) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        for chunk in user_ids.chunks(CHUNK * 5) {
            let ids = chunk.to_vec();
            let rows = self.query_native(
                "looking up user keys",
                "SELECT user_id, user_key FROM users WHERE tenant_key = $1 AND user_id = ANY($2)",
                &[&tenant_key, &ids],
            )?;
            read_key_rows(&rows, &mut scope.keys.users)?;
        }
        Ok(())
    }

    fn update_user_rows(
        &mut self,
        scope: &WriteScope,
        users: &[(i64, &UserImage)],
    ) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        let keys: Vec<i64> = users.iter().map(|(key, _)| *key).collect();
        let upns: Vec<&str> = users
            .iter()
            .map(|(_, user)| user.user_principal_name.as_str())
            .collect();
        let names: Vec<&str> = users.iter().map(|(_, user)| user.display_name.as_str()).collect();
        let locations: Vec<Option<&str>> = users
            .iter()
            .map(|(_, user)| user.usage_location.as_ref().map(|code| code.as_str()))
            .collect();
        let addresses: Vec<String> = users
            .iter()
            .map(|(_, user)| codec::join_proxy_addresses(&user.proxy_addresses))
            .collect();
        let enabled: Vec<bool> = users.iter().map(|(_, user)| user.account_enabled).collect();
        let attributes: Vec<String> = users
            .iter()
            .map(|(_, user)| codec::join_user_attributes(&user.attributes))
            .collect();
        self.execute_native(
            "updating users",
            "UPDATE users SET user_principal_name = changed.upn, display_name = changed.display_name,
                 usage_location = changed.usage_location, proxy_addresses = changed.proxy_addresses,
                 account_enabled = changed.account_enabled, attributes = changed.attributes
             FROM unnest($2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[],
                 $8::text[])
                 AS changed(user_key, upn, display_name, usage_location, proxy_addresses, account_enabled,
                     attributes)
             WHERE users.tenant_key = $1 AND users.user_key = changed.user_key",
            &[
                &tenant_key,
                &keys,
                &upns,
                &names,
                &locations,
                &addresses,
                &enabled,
                &attributes,
            ],
        )?;
        Ok(())
    }

    fn delete_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        let users: Vec<i64> = memberships.iter().map(|(user, _)| *user).collect();
        let groups: Vec<i64> = memberships.iter().map(|(_, group)| *group).collect();
        self.execute_native(
            "deleting memberships",
            "DELETE FROM memberships AS membership
             USING unnest($2::int8[], $3::int8[]) AS doomed(user_key, group_key)
             WHERE membership.tenant_key = $1 AND membership.group_key = doomed.group_key
               AND membership.user_key = doomed.user_key",
            &[&tenant_key, &users, &groups],
        )?;
        Ok(())
    }

    /// One statement: each new membership's position is its user's last plus its rank among
    /// the user's new ones.
    fn append_memberships(
        &mut self,
        scope: &WriteScope,
        memberships: &[(i64, i64, i64)],
    ) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        let users: Vec<i64> = memberships.iter().map(|(user, _, _)| *user).collect();
        let groups: Vec<i64> = memberships.iter().map(|(_, group, _)| *group).collect();
        let since: Vec<i64> = memberships.iter().map(|(_, _, since)| *since).collect();
        self.execute_native(
            "adding memberships",
            "INSERT INTO memberships (tenant_key, user_key, position, group_key, since)
             SELECT $1, added.user_key,
                 coalesce((SELECT max(position) FROM memberships AS stored
                           WHERE stored.tenant_key = $1 AND stored.user_key = added.user_key), -1)
                     + row_number() OVER (PARTITION BY added.user_key ORDER BY added.rank),
                 added.group_key, added.since
             FROM unnest($2::int8[], $3::int8[], $4::int8[]) WITH ORDINALITY
                 AS added(user_key, group_key, since, rank)",
            &[&tenant_key, &users, &groups, &since],
        )?;
        Ok(())
    }

    fn delete_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64)],
    ) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        let users: Vec<i64> = licenses.iter().map(|(user, _)| *user).collect();
        let skus: Vec<i64> = licenses.iter().map(|(_, sku)| *sku).collect();
        self.execute_native(
            "deleting direct licenses",
            "DELETE FROM direct_licenses AS license
             USING unnest($2::int8[], $3::int8[]) AS doomed(user_key, sku_key)
             WHERE license.tenant_key = $1 AND license.user_key = doomed.user_key
               AND license.sku_key = doomed.sku_key",
            &[&tenant_key, &users, &skus],
        )?;
        Ok(())
    }

    /// Replaces the stored licenses in place, then appends the others (positions as in
    /// [`PostgresWrite::append_memberships`]).
    fn set_direct_licenses(
        &mut self,
        scope: &WriteScope,
        licenses: &[(i64, i64, String, i64)],
    ) -> Result<(), StoreError> {
        const ACTION: &str = "writing direct licenses";
        let tenant_key = scope.tenant_key;
        let users: Vec<i64> = licenses.iter().map(|license| license.0).collect();
        let skus: Vec<i64> = licenses.iter().map(|license| license.1).collect();
        let disabled: Vec<&str> = licenses.iter().map(|license| license.2.as_str()).collect();
        let since: Vec<i64> = licenses.iter().map(|license| license.3).collect();
        self.execute_native(
            ACTION,
            "WITH given AS (
                 SELECT * FROM unnest($2::int8[], $3::int8[], $4::text[], $5::int8[]) WITH ORDINALITY
                     AS given(user_key, sku_key, disabled_plans, since, rank)
             ), replaced AS (
                 UPDATE direct_licenses AS license SET disabled_plans = given.disabled_plans
                 FROM given
                 WHERE license.tenant_key = $1 AND license.user_key = given.user_key
                   AND license.sku_key = given.sku_key
                 RETURNING license.user_key, license.sku_key
             )
             INSERT INTO direct_licenses (tenant_key, user_key, position, sku_key, disabled_plans, since)
             SELECT $1, added.user_key,
                 coalesce((SELECT max(position) FROM direct_licenses AS stored
                           WHERE stored.tenant_key = $1 AND stored.user_key = added.user_key), -1)
                     + row_number() OVER (PARTITION BY added.user_key ORDER BY added.rank),
                 added.sku_key, added.disabled_plans, added.since
             FROM given AS added
             WHERE NOT EXISTS (SELECT 1 FROM replaced
                               WHERE replaced.user_key = added.user_key AND replaced.sku_key = added.sku_key)",
            &[&tenant_key, &users, &skus, &disabled, &since],
        )?;
        Ok(())
    }

    fn delete_states(&mut self, scope: &WriteScope, keys: &[(i64, i64, i64)]) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        for chunk in keys.chunks(CHUNK) {
            let users: Vec<i64> = chunk.iter().map(|key| key.0).collect();
            let skus: Vec<i64> = chunk.iter().map(|key| key.1).collect();
            let sources: Vec<i64> = chunk.iter().map(|key| key.2).collect();
            self.execute_native(
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

    /// New states travel by `COPY` when many, the others as arrays or through a staging table.
    fn upsert_states(&mut self, scope: &WriteScope, states: &[KeyedState<'_>]) -> Result<(), StoreError> {
        let numbers = self.plan_numbers(scope)?;
        let (new, existing): (Vec<&KeyedState<'_>>, Vec<&KeyedState<'_>>) =
            states.iter().partition(|state| state.new);
        // States the engine created are copied straight into the table when there are many (a
        // first evaluation, an import). The copy runs in a savepoint: should a state exist after
        // all, only the copy is undone and the states are merged instead.
        if new.len() > COPY_THRESHOLD {
            if !self.try_copy_new_states(scope, &numbers, &new)? {
                self.merge_states(scope, &numbers, &new)?;
            }
        } else {
            self.upsert_states_as_arrays(scope, &numbers, &new)?;
        }
        self.merge_states(scope, &numbers, &existing)
    }

    fn delete_users(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting users";
        // Everything of a user, the user last (these tables have no foreign keys to cascade).
        const DELETES: [&str; 5] = [
            "DELETE FROM license_states WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM memberships WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM direct_licenses WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM work_queue WHERE tenant_key = $1 AND user_key = ANY($2)",
            "DELETE FROM users WHERE tenant_key = $1 AND user_key = ANY($2)",
        ];
        let tenant_key = scope.tenant_key;
        for chunk in user_keys.chunks(CHUNK) {
            let keys = chunk.to_vec();
            for sql in DELETES {
                self.execute_native(ACTION, sql, &[&tenant_key, &keys])?;
            }
        }
        Ok(())
    }

    fn delete_groups(&mut self, scope: &WriteScope, group_keys: &[i64]) -> Result<(), StoreError> {
        const ACTION: &str = "deleting groups";
        // Memberships go explicitly, licenses by cascade. The engine deletes a group only once
        // no state comes from it, so there are no states to delete.
        let tenant_key = scope.tenant_key;
        let keys = group_keys.to_vec();
        self.execute_native(
            ACTION,
            "DELETE FROM memberships WHERE tenant_key = $1 AND group_key = ANY($2)",
            &[&tenant_key, &keys],
        )?;
        self.execute_native(
            ACTION,
            "DELETE FROM groups WHERE tenant_key = $1 AND group_key = ANY($2)",
            &[&tenant_key, &keys],
        )?;
        Ok(())
    }

    fn dequeue(&mut self, scope: &WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        for chunk in user_keys.chunks(CHUNK * 5) {
            let keys = chunk.to_vec();
            self.execute_native(
                "removing users from the work queue",
                "DELETE FROM work_queue WHERE tenant_key = $1 AND user_key = ANY($2)",
                &[&tenant_key, &keys],
            )?;
        }
        Ok(())
    }

    /// Every user gets a proposed position; those already queued keep theirs and the proposal
    /// is skipped (positions only order the queue).
    fn enqueue(&mut self, scope: &mut WriteScope, user_keys: &[i64]) -> Result<(), StoreError> {
        let tenant_key = scope.tenant_key;
        for chunk in user_keys.chunks(CHUNK * 5) {
            let keys = chunk.to_vec();
            let positions = propose_keys(&mut scope.counters.next_queue_position, keys.len());
            self.execute_native(
                "appending users to the work queue",
                "INSERT INTO work_queue (tenant_key, position, user_key)
                 SELECT $1, * FROM unnest($2::int8[], $3::int8[])
                 ON CONFLICT (tenant_key, user_key) DO NOTHING",
                &[&tenant_key, &positions, &keys],
            )?;
        }
        Ok(())
    }

    fn write_directory_attributes(&mut self, tenant_key: i64, batch: &WriteBatch) -> Result<(), StoreError> {
        directory::write(&mut self.transaction, tenant_key, batch)
    }

    /// Prepared once per connection, as the lock: one round trip.
    fn announce(&mut self, notice: &ChangeNotice) -> Result<(), StoreError> {
        let channel = self.change_channel.to_string();
        self.execute_native(
            "announcing the write",
            "SELECT pg_notify($1, $2)",
            &[&channel, &notice.payload()],
        )?;
        Ok(())
    }

    fn commit(self, _scope: &WriteScope, _batches: &[WriteBatch]) -> Result<(), StoreError> {
        self.transaction
            .commit()
            .map_err(StoreError::postgres("committing a write"))
    }
}

impl PostgresWrite<'_> {
    /// Runs one of PostgreSQL's own statements, prepared once per connection.
    fn execute_native(
        &mut self,
        action: &str,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let prepared = statement(&mut self.transaction, self.statements, sql)?;
        self.transaction
            .execute(&prepared, parameters)
            .map_err(StoreError::postgres(action))
    }

    /// Runs one of PostgreSQL's own queries, prepared once per connection.
    fn query_native(
        &mut self,
        action: &str,
        sql: &str,
        parameters: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let prepared = statement(&mut self.transaction, self.statements, sql)?;
        self.transaction
            .query(&prepared, parameters)
            .map_err(StoreError::postgres(action))
    }

    fn plan_numbers(&mut self, scope: &WriteScope) -> Result<PlanNumbers, StoreError> {
        let tenant_key = scope.tenant_key;
        let rows = self.query_native(
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

    /// Copies states into the table inside a savepoint; `false` when one already existed (the
    /// copy is undone then).
    fn try_copy_new_states(
        &mut self,
        scope: &WriteScope,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<bool, StoreError> {
        let tenant_key = scope.tenant_key;
        let tenant_id = scope.tenant_id;
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
    fn merge_states(
        &mut self,
        scope: &WriteScope,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<(), StoreError> {
        if states.len() <= COPY_THRESHOLD {
            return self.upsert_states_as_arrays(scope, numbers, states);
        }
        self.transaction
            .batch_execute(
                "CREATE TEMPORARY TABLE IF NOT EXISTS licensd_state_staging
                     (LIKE license_states INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
                 TRUNCATE licensd_state_staging",
            )
            .map_err(StoreError::postgres("preparing the state staging table"))?;
        self.copy_states(
            scope,
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
        scope: &WriteScope,
        copy: &str,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<(), StoreError> {
        copy_states(
            &mut self.transaction,
            copy,
            scope.tenant_key,
            scope.tenant_id,
            numbers,
            states,
        )
    }

    fn upsert_states_as_arrays(
        &mut self,
        scope: &WriteScope,
        numbers: &PlanNumbers,
        states: &[&KeyedState<'_>],
    ) -> Result<(), StoreError> {
        let mut encoder = StateRowEncoder::new(scope.tenant_id, numbers);
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
        let tenant_key = scope.tenant_key;
        self.execute_native(
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
}
