//! End-to-end reprocess benchmark of `licensd serve`'s own path: a synthetic tenant is stored,
//! loaded as at start-up (timed), then every user is evaluated and persisted in batches exactly as
//! the background processor does it (timed). In the same run, the same number of state rows is
//! bulk-inserted raw (a bare prepared INSERT in one transaction on SQLite, a bare COPY on
//! PostgreSQL) so the figure is judged as a ratio: licensd's rows/s over the raw rows/s.
//!
//! `cargo bench -p licensd-server --bench reprocess`; `LICENSD_BENCH_USERS` (default 1,000,000),
//! `LICENSD_BENCH_DATABASE` (`sqlite`, the default, or `postgres`, which uses
//! `LICENSD_TEST_POSTGRES_URL` or `postgres://postgres@127.0.0.1:5432/test` in a fresh schema),
//! `LICENSD_BENCH_BATCH` (users per transaction, default 10,000).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_runtime::tenants::{SharedStore, TenantRuntime};
use licensd_store::{Store, WriteBatch};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

enum Database {
    Sqlite { directory: tempfile::TempDir },
    Postgres { base: String, schema: String },
}

impl Database {
    fn url(&self) -> String {
        match self {
            Database::Sqlite { directory } => {
                format!("sqlite://{}", directory.path().join("bench.db").display())
            }
            Database::Postgres { base, schema } => {
                let separator = if base.contains('?') { '&' } else { '?' };
                format!("{base}{separator}options=-csearch_path%3D{schema}")
            }
        }
    }

    /// The same number of rows as licensd wrote, with the same shape, inserted raw.
    fn raw_insert(&self, rows: usize) -> BenchResult<Duration> {
        let sku = uuid::Uuid::from_u128(7);
        match self {
            Database::Sqlite { directory } => {
                let mut connection = rusqlite::Connection::open(directory.path().join("raw.db"))?;
                connection.execute_batch(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                     CREATE TABLE raw_states (tenant_id BLOB, user_id BLOB, sku_id BLOB, source TEXT,
                       status INTEGER, error_kind INTEGER, cause TEXT, disabled_plans TEXT, granted_plans TEXT,
                       since INTEGER, last_updated INTEGER, PRIMARY KEY (tenant_id, user_id, sku_id, source))",
                )?;
                let started = Instant::now();
                let transaction = connection.transaction()?;
                {
                    let mut insert = transaction.prepare(
                        "INSERT INTO raw_states VALUES (?1, ?2, ?3, 'direct', 1, NULL, NULL, '', ?4, ?5, ?6)",
                    )?;
                    for row in 0..rows {
                        let user = uuid::Uuid::from_u128(row as u128 + 1);
                        insert.execute(rusqlite::params![
                            &sku.as_bytes()[..],
                            &user.as_bytes()[..],
                            &sku.as_bytes()[..],
                            "plan-a,plan-b",
                            row as i64,
                            1_700_000_000_000i64
                        ])?;
                    }
                }
                transaction.commit()?;
                Ok(started.elapsed())
            }
            Database::Postgres { base, schema } => {
                use std::io::Write;
                let mut client = postgres::Client::connect(base, postgres::NoTls)?;
                client.batch_execute(&format!(
                    "SET search_path = {schema}; CREATE TABLE raw_states (tenant_id uuid, user_id uuid, sku_id uuid,
                       source text, status smallint, error_kind smallint, cause text, disabled_plans text,
                       granted_plans text, since bigint, last_updated bigint,
                       PRIMARY KEY (tenant_id, user_id, sku_id, source))"
                ))?;
                let started = Instant::now();
                let mut transaction = client.transaction()?;
                {
                    let mut writer = transaction.copy_in("COPY raw_states FROM STDIN")?;
                    let mut buffer = Vec::with_capacity(1 << 20);
                    for row in 0..rows {
                        let user = uuid::Uuid::from_u128(row as u128 + 1);
                        writeln!(
                            buffer,
                            "{sku}\t{user}\t{sku}\tdirect\t1\t\\N\t\\N\t\tplan-a,plan-b\t{row}\t1700000000000"
                        )?;
                        if buffer.len() > (1 << 20) {
                            writer.write_all(&buffer)?;
                            buffer.clear();
                        }
                    }
                    writer.write_all(&buffer)?;
                    writer.finish()?;
                }
                transaction.commit()?;
                Ok(started.elapsed())
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Database::Postgres { base, schema } = self {
            if let Ok(mut client) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn main() -> BenchResult<()> {
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let users: usize = env_or("LICENSD_BENCH_USERS", if bench_mode { 1_000_000 } else { 5_000 });
    let batch: usize = env_or("LICENSD_BENCH_BATCH", 10_000);
    let backend = std::env::var("LICENSD_BENCH_DATABASE").unwrap_or_else(|_| "sqlite".to_string());
    let database = match backend.as_str() {
        "postgres" => {
            let base = std::env::var("LICENSD_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
            let schema = format!("licensd_bench_{}", std::process::id());
            let mut client = postgres::Client::connect(&base, postgres::NoTls)?;
            client.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))?;
            Database::Postgres { base, schema }
        }
        _ => Database::Sqlite {
            directory: tempfile::tempdir()?,
        },
    };
    let groups = (users / 200).max(20);
    let config = GeneratorConfig::new(users, groups, 50, 1);
    println!("licensd serve reprocess benchmark ({backend}): {users} users, {groups} groups, 50 SKUs, batches of {batch}");

    let started = Instant::now();
    let (engine, summary) = build_engine(&config).map_err(|error| error.to_string())?;
    println!(
        "  generated {} commands in {:.1} s",
        summary.commands,
        started.elapsed().as_secs_f64()
    );
    let image = engine.to_image();
    drop(engine);
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(&database.url())?;
    store.create_tenant(&image.settings)?;
    let started = Instant::now();
    store.write(tenant_id, &WriteBatch::from_image(image))?;
    println!(
        "  stored the tenant (intent, all users queued) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let store: SharedStore = std::sync::Arc::new(std::sync::Mutex::new(store));

    let started = Instant::now();
    let runtime = TenantRuntime::load(&store, tenant_id).map_err(|error| error.to_string())?;
    let load_time = started.elapsed();
    println!(
        "  start-up load (store -> engine): {:.2} s",
        load_time.as_secs_f64()
    );

    let started = Instant::now();
    let mut evaluated = 0;
    let mut rows = 0;
    loop {
        let step = runtime
            .process_step(&store, batch)
            .map_err(|error| error.to_string())?;
        evaluated += step.evaluated_users;
        rows += step.changed_states;
        if step.remaining_users == 0 {
            break;
        }
    }
    let reprocess = started.elapsed();
    let licensd_rate = rows as f64 / reprocess.as_secs_f64();
    println!(
        "  full reprocess persisted: {evaluated} users evaluated, {rows} state rows written in {:.2} s ({:.0} rows/s)",
        reprocess.as_secs_f64(),
        licensd_rate
    );

    let started = Instant::now();
    let runtime = TenantRuntime::load(&store, tenant_id).map_err(|error| error.to_string())?;
    let reload = started.elapsed();
    let states: usize = runtime.read(|engine| engine.tenant_overview().users)?;
    println!(
        "  start-up load with every state ({states} users): {:.2} s",
        reload.as_secs_f64()
    );

    let raw = database.raw_insert(rows)?;
    let raw_rate = rows as f64 / raw.as_secs_f64();
    println!(
        "  raw bulk insert of the same {rows} rows: {:.2} s ({:.0} rows/s)",
        raw.as_secs_f64(),
        raw_rate
    );
    println!(
        "  ratio licensd / raw (rows/s, licensd's time includes evaluating every user): {:.0}%",
        100.0 * licensd_rate / raw_rate
    );
    Ok(())
}
