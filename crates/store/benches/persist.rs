//! Persistence benchmark of the store on SQLite and PostgreSQL, each figure printed next to the
//! reference it is judged against, measured in the same run:
//!
//! 1. **State rows.** `LICENSD_BENCH_ROWS` (default 1,000,000) synthetic license assignment
//!    states written through [`Store::write`] into an empty tenant, then overwritten once, next
//!    to a raw reference of the same rows: a bare prepared `INSERT` loop in one transaction on
//!    SQLite, a bare binary `COPY` on PostgreSQL, into a table with the same columns and primary
//!    key but no secondary index, from values encoded before the clock starts. The users and
//!    groups the states belong to are stored first, untimed. The target is licensd ≥ 50 % of the
//!    raw rate.
//! 2. **A whole tenant.** A generated tenant of `LICENSD_BENCH_LOAD_USERS` users (default
//!    1,000,000; `licensd_fixtures::generator`, 5,000 groups, 50 products) is stored, its full
//!    reprocess is persisted step by step (`LICENSD_BENCH_PROCESS_BATCH` users per step, default
//!    100,000, one write per step as the server does), and it is loaded back with
//!    [`Store::load_tenant`] and rebuilt with `Engine::from_image`.
//!
//! Run with `cargo bench -p licensd-store --bench persist`. `LICENSD_BENCH_BACKENDS` picks the
//! backends (default `sqlite,postgres`); PostgreSQL is at `LICENSD_BENCH_POSTGRES_URL` (default
//! `LICENSD_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/test`) in a schema of its
//! own, dropped at the end. SQLite files go to a temporary directory under `LICENSD_BENCH_DIR`
//! (default the system's).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::time::{Duration, Instant};

use licensd_engine::image::{CauseImage, GroupImage, PlanList, StateImage, TenantImage, UserImage};
use licensd_engine::{AssignmentSource, AssignmentStatus, Engine, TenantSettings, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_fixtures::seed_world::{
    SeedSeats, SeedWorld, EMS_E3, OFFICE_365_E1, OFFICE_365_E3, WORKPLACE_ANALYTICS_SKU,
};
use licensd_store::{Store, WriteBatch};

type BenchResult<T> = Result<T, Box<dyn Error>>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    format!("{model}, {cores} cores")
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

fn rate(rows: usize, duration: Duration) -> f64 {
    rows as f64 / duration.as_secs_f64().max(1e-9)
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// A pseudo-random GUID derived from `index` (SplitMix64), so rows arrive in no key order.
fn scattered_uuid(index: u64) -> Uuid {
    let mut state = index
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(0x6a09_e667_f3bc_c908);
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let value = (u128::from(next()) << 64) | u128::from(next());
    uuid::Builder::from_random_bytes(value.to_be_bytes()).into_uuid()
}

// ----- part 1: state rows -----------------------------------------------------------------------

/// The synthetic data of part 1: the seed world's catalog, the users and groups the states
/// belong to, and the states.
struct SyntheticStates {
    catalog: TenantImage,
    users: Vec<UserImage>,
    groups: Vec<GroupImage>,
    /// `(user index, group index or None for direct, product index)` of each state.
    keys: Vec<(usize, Option<usize>, usize)>,
    states: Vec<(Uuid, StateImage)>,
}

/// `rows` synthetic states over the seed world's catalog: three per user (Office 365 E3 and EMS
/// from groups, Workplace Analytics from a group or directly), a fifth of them with disabled
/// plans, one in twenty waiting for a unit, one in fifty in conflict; users in creation order,
/// as a full evaluation produces them.
fn synthetic_states(rows: usize) -> BenchResult<SyntheticStates> {
    let world = SeedWorld::new(SeedSeats::default())?;
    let catalog = world.engine.to_image();
    let plans_of = |sku_id: Uuid| -> Vec<Uuid> {
        catalog
            .skus
            .iter()
            .find(|sku| sku.sku_id == sku_id)
            .map(|sku| {
                sku.service_plans
                    .iter()
                    .map(|plan| plan.service_plan_id)
                    .collect()
            })
            .unwrap_or_default()
    };
    let products = [
        (OFFICE_365_E3, plans_of(OFFICE_365_E3)),
        (EMS_E3, plans_of(EMS_E3)),
        (WORKPLACE_ANALYTICS_SKU, plans_of(WORKPLACE_ANALYTICS_SKU)),
    ];
    let e1_plans = plans_of(OFFICE_365_E1);
    let groups: Vec<GroupImage> = (0..120)
        .map(|index| GroupImage {
            id: scattered_uuid(1_000_000_000 + index),
            display_name: format!("Group {index}"),
            licenses: Vec::new(),
            licensed_since: 1,
        })
        .collect();
    let user_count = rows.div_ceil(3);
    let users: Vec<UserImage> = (0..user_count)
        .map(|index| UserImage {
            id: scattered_uuid(index as u64),
            user_principal_name: format!("user{index}@contoso.com"),
            display_name: format!("User {index}"),
            usage_location: None,
            proxy_addresses: Vec::new(),
            account_enabled: true,
            attributes: Default::default(),
            direct_licenses: Vec::new(),
            memberships: Vec::new(),
            states: Vec::new(),
        })
        .collect();
    // The plan lists of each product (all enabled, or the first two disabled), shared between
    // the states as the engine's images share one list per distinct plan set.
    let lists: Vec<[(PlanList, PlanList); 2]> = products
        .iter()
        .map(|(_, plans)| {
            [0, 2].map(|disabled_count| {
                let disabled: PlanList = plans.iter().take(disabled_count).copied().collect();
                let wanted: PlanList = plans
                    .iter()
                    .filter(|plan| !disabled.contains(plan))
                    .copied()
                    .collect();
                (disabled, wanted)
            })
        })
        .collect();
    let mut keys = Vec::with_capacity(rows);
    let mut states = Vec::with_capacity(rows);
    for row in 0..rows {
        let user = row / 3;
        let product = row % 3;
        let (sku_id, plans) = &products[product];
        let group = if product == 2 && user % 4 == 0 {
            None
        } else {
            Some((user * 7 + product) % groups.len())
        };
        let (disabled_plans, wanted) = lists[product][usize::from(row % 5 == 0)].clone();
        let (status, cause, granted_plans) = if row % 20 == 7 {
            (
                AssignmentStatus::Error,
                Some(CauseImage::Count { sku_id: *sku_id }),
                None,
            )
        } else if row % 50 == 11 {
            let cause = CauseImage::MutuallyExclusive {
                plan_id: plans[0],
                conflicting_plan_id: e1_plans.first().copied().unwrap_or_default(),
                conflicting_sku_id: OFFICE_365_E1,
                conflicting_source: AssignmentSource::Direct,
            };
            (AssignmentStatus::ActiveWithError, Some(cause), Some(wanted))
        } else {
            (AssignmentStatus::Active, None, Some(wanted))
        };
        keys.push((user, group, product));
        states.push((
            users[user].id,
            StateImage {
                sku_id: *sku_id,
                assigned_by_group: group.map(|index| groups[index].id),
                status,
                cause,
                disabled_plans,
                granted_plans,
                since: row as u64 + 1,
                last_updated: Timestamp(1_700_000_000_000),
            },
        ));
    }
    Ok(SyntheticStates {
        catalog,
        users,
        groups,
        keys,
        states,
    })
}

/// A state row encoded for the raw references before their clocks start: the keys the store
/// gives (users, groups and products numbered in creation order from 1), plan sets as bitsets
/// over the catalog's plan order, causes as bytes of the store's sizes.
struct RawRow {
    user_key: i64,
    sku_key: i64,
    source_key: i64,
    status: &'static str,
    error_kind: Option<&'static str>,
    cause: Option<Vec<u8>>,
    disabled_plans: Vec<u8>,
    granted_plans: Option<Vec<u8>>,
    since: i64,
    last_updated: i64,
}

fn raw_rows(synthetic: &SyntheticStates) -> Vec<RawRow> {
    let numbers: std::collections::HashMap<Uuid, usize> = synthetic
        .catalog
        .service_plans
        .iter()
        .enumerate()
        .map(|(number, plan)| (plan.definition.service_plan_id, number))
        .collect();
    let bitset = |plans: &[Uuid]| {
        let mut bytes = Vec::new();
        for plan in plans {
            let number = numbers.get(plan).copied().unwrap_or(0);
            if bytes.len() <= number / 8 {
                bytes.resize(number / 8 + 1, 0);
            }
            bytes[number / 8] |= 1 << (number % 8);
        }
        bytes
    };
    synthetic
        .states
        .iter()
        .zip(&synthetic.keys)
        .map(|((_, state), (user, group, product))| RawRow {
            user_key: *user as i64 + 1,
            sku_key: *product as i64 + 1,
            source_key: group.map_or(0, |group| group as i64 + 1),
            status: state.status.as_str(),
            error_kind: state.cause.as_ref().map(|cause| cause.kind().as_str()),
            cause: state.cause.as_ref().map(|cause| match cause {
                CauseImage::Count { sku_id } => {
                    let mut bytes = vec![1];
                    bytes.extend_from_slice(sku_id.as_bytes());
                    bytes
                }
                _ => vec![2; 50],
            }),
            disabled_plans: bitset(&state.disabled_plans),
            granted_plans: state.granted_plans.as_deref().map(bitset),
            since: state.since as i64,
            last_updated: state.last_updated.0,
        })
        .collect()
}

const RAW_TABLE_SQLITE: &str = "CREATE TABLE raw_license_states (
    tenant_key INTEGER NOT NULL, user_key INTEGER NOT NULL, sku_key INTEGER NOT NULL,
    source_key INTEGER NOT NULL, status TEXT NOT NULL, error_kind TEXT, cause BLOB,
    disabled_plans BLOB NOT NULL, granted_plans BLOB, since INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    PRIMARY KEY (tenant_key, user_key, sku_key, source_key)) WITHOUT ROWID";

const RAW_TABLE_POSTGRES: &str = "CREATE TABLE raw_license_states (
    tenant_key BIGINT NOT NULL, user_key BIGINT NOT NULL, sku_key BIGINT NOT NULL,
    source_key BIGINT NOT NULL, status TEXT NOT NULL, error_kind TEXT, cause BYTEA,
    disabled_plans BYTEA NOT NULL, granted_plans BYTEA, since BIGINT NOT NULL,
    last_updated BIGINT NOT NULL,
    PRIMARY KEY (tenant_key, user_key, sku_key, source_key))";

/// The bare prepared `INSERT` loop in one transaction, on a fresh SQLite file with the store's
/// pragmas.
fn raw_sqlite(path: &std::path::Path, rows: &[RawRow]) -> BenchResult<Duration> {
    let _ = std::fs::remove_file(path);
    let mut connection = rusqlite::Connection::open(path)?;
    connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    connection.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -131072;",
    )?;
    connection.execute_batch(RAW_TABLE_SQLITE)?;
    let started = Instant::now();
    let transaction = connection.transaction()?;
    {
        let mut insert = transaction.prepare(
            "INSERT INTO raw_license_states VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        for row in rows {
            insert.execute(rusqlite::params![
                1i64,
                row.user_key,
                row.sku_key,
                row.source_key,
                row.status,
                row.error_kind,
                row.cause,
                row.disabled_plans,
                row.granted_plans,
                row.since,
                row.last_updated,
            ])?;
        }
    }
    transaction.commit()?;
    Ok(started.elapsed())
}

/// The bare binary `COPY` in one transaction into a fresh table.
fn raw_postgres(client: &mut postgres::Client, rows: &[RawRow]) -> BenchResult<Duration> {
    use postgres::types::Type;
    client.batch_execute("DROP TABLE IF EXISTS raw_license_states")?;
    client.batch_execute(RAW_TABLE_POSTGRES)?;
    let started = Instant::now();
    let mut transaction = client.transaction()?;
    {
        let sink = transaction.copy_in("COPY raw_license_states FROM STDIN (FORMAT binary)")?;
        let mut writer = postgres::binary_copy::BinaryCopyInWriter::new(
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
        for row in rows {
            writer.write(&[
                &1i64,
                &row.user_key,
                &row.sku_key,
                &row.source_key,
                &row.status,
                &row.error_kind,
                &row.cause,
                &row.disabled_plans,
                &row.granted_plans,
                &row.since,
                &row.last_updated,
            ])?;
        }
        writer.finish()?;
    }
    transaction.commit()?;
    Ok(started.elapsed())
}

fn bench_state_rows(backend: &Backend, rows: usize) -> BenchResult<()> {
    println!(
        "\n{}: {} license assignment state rows",
        backend.name(),
        thousands(rows as f64)
    );
    let generated = Instant::now();
    let synthetic = synthetic_states(rows)?;
    let raw = raw_rows(&synthetic);
    println!("  rows generated in {:.2} s", seconds(generated.elapsed()));

    let mut store = backend.open("states")?;
    let tenant_id = Uuid::from_u128(0xbe4c_0001);
    store.create_tenant(&TenantSettings::new(tenant_id, "Benchmark"))?;
    let started = Instant::now();
    store.write(
        tenant_id,
        &WriteBatch {
            service_plans: Some(synthetic.catalog.service_plans.clone()),
            skus: synthetic.catalog.skus.clone(),
            groups: synthetic.groups.clone(),
            users: synthetic.users.clone(),
            ..WriteBatch::default()
        },
    )?;
    println!(
        "  {} users and {} groups stored first in {:.2} s",
        thousands(synthetic.users.len() as f64),
        synthetic.groups.len(),
        seconds(started.elapsed())
    );
    // New states, as a first evaluation reports them, then every state changed.
    let mut batch = WriteBatch {
        state_inserts: synthetic.states,
        ..WriteBatch::default()
    };
    let started = Instant::now();
    store.write(tenant_id, &batch)?;
    let insert = started.elapsed();
    batch.state_upserts = std::mem::take(&mut batch.state_inserts);
    for (_, state) in &mut batch.state_upserts {
        state.last_updated = Timestamp(state.last_updated.0 + 1000);
    }
    let started = Instant::now();
    store.write(tenant_id, &batch)?;
    let overwrite = started.elapsed();
    drop(batch);
    drop(store);

    let raw_insert = match backend {
        Backend::Sqlite { directory } => raw_sqlite(&directory.path().join("raw.db"), &raw)?,
        Backend::Postgres { .. } => raw_postgres(&mut backend.raw_client()?, &raw)?,
    };
    let line = |label: &str, duration: Duration| {
        println!(
            "  {label:<44} {:>7.2} s {:>12} rows/s",
            seconds(duration),
            thousands(rate(rows, duration))
        );
    };
    line("licensd write, new states", insert);
    line("licensd write, overwriting every state", overwrite);
    match backend {
        Backend::Sqlite { .. } => line("raw prepared INSERT loop", raw_insert),
        Backend::Postgres { .. } => line("raw binary COPY", raw_insert),
    }
    println!(
        "  licensd new states / raw: {:.0} % (target >= 50 %); overwriting / raw: {:.0} %",
        100.0 * rate(rows, insert) / rate(rows, raw_insert),
        100.0 * rate(rows, overwrite) / rate(rows, raw_insert),
    );
    Ok(())
}

// ----- part 2: a whole tenant -------------------------------------------------------------------

/// A generated tenant: its intent before processing and the writes of its full reprocess.
struct ReprocessedTenant {
    intent: TenantImage,
    steps: Vec<WriteBatch>,
    state_rows: usize,
    final_image: TenantImage,
}

fn reprocess_tenant(users: usize, step_users: usize) -> BenchResult<ReprocessedTenant> {
    let config = GeneratorConfig::new(users, 5_000, 50, 1);
    let started = Instant::now();
    let (mut engine, summary) = build_engine(&config)?;
    println!(
        "\nGenerated tenant: {} users, {} groups, {} products, {} memberships, built in {:.1} s",
        thousands(users as f64),
        thousands(summary.groups as f64),
        summary.skus.len(),
        thousands(summary.memberships as f64),
        seconds(started.elapsed())
    );
    let intent = engine.to_image();
    let at = Timestamp(summary.last_timestamp.0 + 1000);
    let mut steps = Vec::new();
    let mut evaluation = Duration::ZERO;
    let mut conversion = Duration::ZERO;
    let mut state_rows = 0;
    while engine.queued_users() > 0 {
        let started = Instant::now();
        let mut report = engine.process_batch(step_users, at);
        evaluation += started.elapsed();
        let started = Instant::now();
        // What `Engine::process_batch_with_images` adds, timed with the conversion.
        report.states = engine.changed_states(&report.changes);
        let batch = WriteBatch::from_process_report(report);
        conversion += started.elapsed();
        state_rows += batch.state_inserts.len() + batch.state_upserts.len() + batch.state_deletes.len();
        steps.push(batch);
    }
    println!(
        "  full reprocess in the engine: {:.1} s in {} steps of {} users; imaging the states and WriteBatch::from_process_report: {:.2} s; {} state rows",
        seconds(evaluation),
        steps.len(),
        thousands(step_users as f64),
        seconds(conversion),
        thousands(state_rows as f64)
    );
    Ok(ReprocessedTenant {
        intent,
        steps,
        state_rows,
        final_image: engine.to_image(),
    })
}

fn bench_tenant(backend: &Backend, tenant: &ReprocessedTenant) -> BenchResult<()> {
    println!("\n{}: the generated tenant", backend.name());
    let mut store = backend.open("tenant")?;
    let tenant_id = tenant.intent.settings.tenant_id;
    store.create_tenant(&tenant.intent.settings)?;
    let intent = WriteBatch::from_image(tenant.intent.clone());
    let started = Instant::now();
    let mut version = store.write(tenant_id, &intent)?;
    drop(intent);
    println!(
        "  store the intent (users, groups, memberships, queue):   {:>7.2} s",
        seconds(started.elapsed())
    );
    let started = Instant::now();
    for step in &tenant.steps {
        version = store.write(tenant_id, step)?;
    }
    let persisted = started.elapsed();
    println!(
        "  persist the full reprocess ({} writes):                {:>7.2} s {:>12} state rows/s",
        tenant.steps.len(),
        seconds(persisted),
        thousands(rate(tenant.state_rows, persisted))
    );
    let started = Instant::now();
    let (image, loaded_version) = store.load_tenant(tenant_id)?;
    let load = started.elapsed();
    let started = Instant::now();
    let engine = Engine::from_image(image)?;
    let rebuild = started.elapsed();
    println!(
        "  load_tenant:                                           {:>7.2} s",
        seconds(load)
    );
    println!(
        "  Engine::from_image:                                    {:>7.2} s (start-up total {:.2} s)",
        seconds(rebuild),
        seconds(load + rebuild)
    );
    let rebuilt = engine.to_image();
    if loaded_version != version || rebuilt != tenant.final_image {
        return Err("the loaded tenant differs from the engine's".into());
    }
    println!("  the loaded tenant equals the engine's (checked)");
    Ok(())
}

// ----- backends ---------------------------------------------------------------------------------

enum Backend {
    Sqlite { directory: tempfile::TempDir },
    Postgres { base: String, schema: String },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    /// A fresh database: a new SQLite file, or the PostgreSQL schema emptied.
    fn open(&self, name: &str) -> BenchResult<Store> {
        match self {
            Backend::Sqlite { directory } => {
                let path = directory.path().join(format!("{name}.db"));
                let _ = std::fs::remove_file(&path);
                Ok(Store::open(&path.display().to_string())?)
            }
            Backend::Postgres { base, schema } => {
                let mut client = postgres::Client::connect(base, postgres::NoTls)?;
                client.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))?;
                Ok(Store::open(&Self::schema_url(base, schema))?)
            }
        }
    }

    fn schema_url(base: &str, schema: &str) -> String {
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}options=-csearch_path%3D{schema}")
    }

    fn raw_client(&self) -> BenchResult<postgres::Client> {
        match self {
            Backend::Postgres { base, schema } => Ok(postgres::Client::connect(
                &Self::schema_url(base, schema),
                postgres::NoTls,
            )?),
            Backend::Sqlite { .. } => Err("no PostgreSQL client for SQLite".into()),
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres { base, schema } = self {
            if let Ok(mut client) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn backends() -> BenchResult<Vec<Backend>> {
    let wanted = std::env::var("LICENSD_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_string());
    let mut backends = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "sqlite" => {
                let parent = std::env::var("LICENSD_BENCH_DIR")
                    .unwrap_or_else(|_| std::env::temp_dir().display().to_string());
                let directory = tempfile::Builder::new()
                    .prefix("licensd-bench-")
                    .tempdir_in(parent)?;
                backends.push(Backend::Sqlite { directory });
            }
            "postgres" => {
                let base = std::env::var("LICENSD_BENCH_POSTGRES_URL")
                    .or_else(|_| std::env::var("LICENSD_TEST_POSTGRES_URL"))
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
                match postgres::Client::connect(&base, postgres::NoTls) {
                    Ok(mut client) => {
                        let version: String = client.query_one("SHOW server_version", &[])?.get(0);
                        println!("PostgreSQL {version} at {base}");
                        let schema = format!("licensd_bench_{}", std::process::id());
                        backends.push(Backend::Postgres { base, schema });
                    }
                    Err(error) => println!("skipping PostgreSQL: cannot connect to {base}: {error}"),
                }
            }
            other => return Err(format!("unknown backend {other:?} in LICENSD_BENCH_BACKENDS").into()),
        }
    }
    Ok(backends)
}

fn main() -> BenchResult<()> {
    let rows: usize = env_or("LICENSD_BENCH_ROWS", 1_000_000);
    let users: usize = env_or("LICENSD_BENCH_LOAD_USERS", 1_000_000);
    let step_users: usize = env_or("LICENSD_BENCH_PROCESS_BATCH", 100_000);
    println!("licensd store persistence benchmark on {}", machine());
    println!("SQLite {}", rusqlite::version());
    let backends = backends()?;
    if rows > 0 {
        for backend in &backends {
            bench_state_rows(backend, rows)?;
        }
    }
    if users > 0 {
        let tenant = reprocess_tenant(users, step_users.max(1))?;
        for backend in &backends {
            bench_tenant(backend, &tenant)?;
        }
    }
    Ok(())
}
