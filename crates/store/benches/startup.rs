//! Start-up benchmark: how long a server takes to bring a 1,000,000-user tenant from the store
//! into memory, on SQLite and PostgreSQL, each figure next to a reference measured in the same
//! run.
//!
//! The tenant is generated (`licensd_fixtures::generator`: `LICENSD_BENCH_USERS` users, default
//! 1,000,000, 5,000 groups, 50 products, about three groups per user), fully processed in the
//! engine so that every user has its license assignment states (start-up loads them too), and
//! stored in one write. Then, per backend:
//!
//! - **reference**: a bare scan, with the backend's own client, of every column the load reads
//!   of the three big tables (users, memberships, license assignment states), touching each
//!   value but decoding nothing — the floor of reading the rows;
//! - **start-up**: [`Store::load_tenant`] with the time of each of its steps, then
//!   `Engine::from_image`; the engine it builds is checked against the generated one.
//!
//! Run with `cargo bench -p licensd-store --bench startup`. `LICENSD_BENCH_BACKENDS` picks the
//! backends (default `sqlite,postgres`); PostgreSQL is at `LICENSD_BENCH_POSTGRES_URL` (default
//! `LICENSD_TEST_POSTGRES_URL`, else `postgres://postgres@127.0.0.1:5432/test`).
//! `LICENSD_BENCH_KEEP=<directory>` keeps the stored tenant between runs (the SQLite file in
//! that directory, the PostgreSQL schema `licensd_startup_<users>`) and reuses it when it is
//! there, so the minute of set-up is paid once; without it, everything is dropped at the end.
//! `LICENSD_BENCH_RUNS` (default 2) repeats the timed start-up.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use licensd_engine::image::TenantImage;
use licensd_engine::{Engine, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
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
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{model}, {cores} cores, load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    )
}

/// CPU time of this process so far (user + system, every thread), from `/proc/self/stat`
/// (clock ticks of 10 ms): under a loaded machine it says how much work a path did when its
/// wall time says mostly how long it waited for a core.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// The generated tenant, fully processed: the image the store must give back.
fn generate(users: usize) -> BenchResult<TenantImage> {
    let config = GeneratorConfig::new(users, 5_000, 50, 1);
    let started = Instant::now();
    let (mut engine, summary) = build_engine(&config)?;
    let at = Timestamp(summary.last_timestamp.0 + 1000);
    while engine.queued_users() > 0 {
        engine.process_batch(100_000, at);
    }
    let image = engine.to_image();
    let states: usize = image.users.iter().map(|user| user.states.len()).sum();
    let memberships: usize = image.users.iter().map(|user| user.memberships.len()).sum();
    println!(
        "generated and processed: {} users, {} groups, {} products, {memberships} memberships, {states} states, in {:.1} s",
        image.users.len(),
        image.groups.len(),
        image.skus.len(),
        seconds(started.elapsed())
    );
    Ok(image)
}

/// The tenant id the generator gives a tenant of seed 1, whatever its size.
fn tenant_id() -> BenchResult<Uuid> {
    let (engine, _) = build_engine(&GeneratorConfig::new(10, 10, 50, 1))?;
    Ok(engine.settings().tenant_id)
}

// ----- backends ---------------------------------------------------------------------------------

enum Backend {
    Sqlite {
        path: PathBuf,
        _directory: Option<tempfile::TempDir>,
    },
    Postgres {
        base: String,
        schema: String,
        keep: bool,
    },
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    fn url(&self) -> String {
        match self {
            Backend::Sqlite { path, .. } => path.display().to_string(),
            Backend::Postgres { base, schema, .. } => schema_url(base, schema),
        }
    }

    fn open(&self) -> BenchResult<Store> {
        if let Backend::Postgres { base, schema, .. } = self {
            let mut client = postgres::Client::connect(base, postgres::NoTls)?;
            client.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))?;
        }
        Ok(Store::open(&self.url())?)
    }

    fn raw_client(&self) -> BenchResult<postgres::Client> {
        Ok(postgres::Client::connect(&self.url(), postgres::NoTls)?)
    }
}

fn schema_url(base: &str, schema: &str) -> String {
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}options=-csearch_path%3D{schema}")
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Backend::Postgres {
            base,
            schema,
            keep: false,
        } = self
        {
            if let Ok(mut client) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

fn backends(users: usize, keep: Option<&PathBuf>) -> BenchResult<Vec<Backend>> {
    let wanted = std::env::var("LICENSD_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".to_string());
    let mut backends = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "sqlite" => match keep {
                Some(directory) => {
                    std::fs::create_dir_all(directory)?;
                    backends.push(Backend::Sqlite {
                        path: directory.join(format!("startup-{users}.db")),
                        _directory: None,
                    });
                }
                None => {
                    let directory = tempfile::Builder::new()
                        .prefix("licensd-startup-")
                        .tempdir_in(std::env::temp_dir())?;
                    backends.push(Backend::Sqlite {
                        path: directory.path().join("startup.db"),
                        _directory: Some(directory),
                    });
                }
            },
            "postgres" => {
                let base = std::env::var("LICENSD_BENCH_POSTGRES_URL")
                    .or_else(|_| std::env::var("LICENSD_TEST_POSTGRES_URL"))
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
                match postgres::Client::connect(&base, postgres::NoTls) {
                    Ok(mut client) => {
                        let version: String = client.query_one("SHOW server_version", &[])?.get(0);
                        println!("PostgreSQL {version} at {base}");
                        let schema = match keep {
                            Some(_) => format!("licensd_startup_{users}"),
                            None => format!("licensd_startup_{}", std::process::id()),
                        };
                        backends.push(Backend::Postgres {
                            base,
                            schema,
                            keep: keep.is_some(),
                        });
                    }
                    Err(error) => println!("skipping PostgreSQL: cannot connect to {base}: {error}"),
                }
            }
            other => return Err(format!("unknown backend {other:?} in LICENSD_BENCH_BACKENDS").into()),
        }
    }
    Ok(backends)
}

// ----- the reference: a bare scan of the big tables ---------------------------------------------

/// The big tables' columns as the load reads them.
const SCANS: [(&str, &str); 3] = [
    (
        "users",
        "SELECT user_key, user_id, user_principal_name, display_name, usage_location, proxy_addresses,
                account_enabled
         FROM users WHERE tenant_key = $1",
    ),
    (
        "memberships",
        "SELECT user_key, group_key, since FROM memberships WHERE tenant_key = $1
         ORDER BY user_key, position",
    ),
    (
        "license_states",
        "SELECT user_key, sku_key, source_key, status, cause, disabled_plans, granted_plans, since,
                last_updated
         FROM license_states WHERE tenant_key = $1",
    ),
];

/// Scans the big tables with rusqlite, touching every value; returns the time of each scan.
fn raw_scan_sqlite(
    path: &std::path::Path,
    tenant_id: Uuid,
) -> BenchResult<Vec<(&'static str, usize, Duration)>> {
    let connection = rusqlite::Connection::open(path)?;
    let tenant_key: i64 = connection.query_row(
        "SELECT tenant_key FROM tenants WHERE tenant_id = ?1",
        [tenant_id.as_bytes().as_slice()],
        |row| row.get(0),
    )?;
    let mut times = Vec::new();
    for (table, sql) in SCANS {
        let started = Instant::now();
        let mut statement = connection.prepare(&sql.replace('$', "?"))?;
        let columns = statement.column_count();
        let mut rows = statement.query([tenant_key])?;
        let (mut count, mut touched) = (0usize, 0u64);
        while let Some(row) = rows.next()? {
            count += 1;
            for index in 0..columns {
                touched += match row.get_ref(index)? {
                    rusqlite::types::ValueRef::Integer(value) => value as u64,
                    rusqlite::types::ValueRef::Text(bytes) | rusqlite::types::ValueRef::Blob(bytes) => {
                        bytes.len() as u64
                    }
                    _ => 1,
                };
            }
        }
        std::hint::black_box(touched);
        times.push((table, count, started.elapsed()));
    }
    Ok(times)
}

/// Scans the big tables with the `postgres` client (binary results), reading every column.
fn raw_scan_postgres(
    client: &mut postgres::Client,
    tenant_id: Uuid,
) -> BenchResult<Vec<(&'static str, usize, Duration)>> {
    let tenant_key: i64 = client
        .query_one(
            "SELECT tenant_key FROM tenants WHERE tenant_id = $1",
            &[&tenant_id],
        )?
        .get(0);
    let mut times = Vec::new();
    for (table, sql) in SCANS {
        let started = Instant::now();
        let mut transaction = client.transaction()?;
        let mut rows = transaction.query_raw(sql, [&tenant_key])?;
        let (mut count, mut touched) = (0usize, 0u64);
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)? {
            count += 1;
            touched += match table {
                "users" => {
                    row.get::<_, i64>(0) as u64
                        + row.get::<_, Uuid>(1).as_bytes()[0] as u64
                        + row.get::<_, &str>(2).len() as u64
                        + row.get::<_, &str>(3).len() as u64
                        + row.get::<_, Option<&str>>(4).map_or(0, str::len) as u64
                        + row.get::<_, &str>(5).len() as u64
                        + row.get::<_, bool>(6) as u64
                }
                "memberships" => (row.get::<_, i64>(0) + row.get::<_, i64>(1) + row.get::<_, i64>(2)) as u64,
                _ => {
                    (row.get::<_, i64>(0) + row.get::<_, i64>(1) + row.get::<_, i64>(2)) as u64
                        + row.get::<_, &str>(3).len() as u64
                        + row.get::<_, Option<&[u8]>>(4).map_or(0, <[u8]>::len) as u64
                        + row.get::<_, &[u8]>(5).len() as u64
                        + row.get::<_, Option<&[u8]>>(6).map_or(0, <[u8]>::len) as u64
                        + (row.get::<_, i64>(7) + row.get::<_, i64>(8)) as u64
                }
            };
        }
        drop(rows);
        transaction.commit()?;
        std::hint::black_box(touched);
        times.push((table, count, started.elapsed()));
    }
    Ok(times)
}

// ----- start-up ---------------------------------------------------------------------------------

/// Stores the generated tenant unless the backend already holds it; returns whether it was
/// stored now.
fn ensure_stored(
    backend: &Backend,
    tenant_id: Uuid,
    generated: &mut Option<TenantImage>,
    users: usize,
) -> BenchResult<bool> {
    let mut store = backend.open()?;
    if store.tenant_ids()?.contains(&tenant_id) {
        return Ok(false);
    }
    if generated.is_none() {
        *generated = Some(generate(users)?);
    }
    let image = generated.as_ref().unwrap();
    store.create_tenant(&image.settings)?;
    let started = Instant::now();
    store.write(tenant_id, &WriteBatch::from_image(image.clone()))?;
    println!(
        "  stored the processed tenant in one write: {:.1} s",
        seconds(started.elapsed())
    );
    Ok(true)
}

/// One timed start-up through the store's load: the load's steps, then the engine.
fn startup_load(store: &mut Store, tenant_id: Uuid) -> BenchResult<(Engine, Duration)> {
    let cpu = cpu_time();
    let started = Instant::now();
    let mut last = started;
    let mut phases: Vec<(&'static str, Duration)> = Vec::new();
    let (image, _version) = store.load_tenant_with_phases(tenant_id, &mut |phase| {
        let now = Instant::now();
        phases.push((phase, now - last));
        last = now;
    })?;
    let loaded = started.elapsed();
    let rebuild_started = Instant::now();
    let engine = Engine::from_image(image)?;
    let rebuild = rebuild_started.elapsed();
    let total = started.elapsed();
    let steps: Vec<String> = phases
        .iter()
        .filter(|(_, duration)| *duration >= Duration::from_millis(5))
        .map(|(phase, duration)| format!("{phase} {:.2}", seconds(*duration)))
        .collect();
    println!(
        "    load_tenant {:.2} s ({}) + Engine::from_image {:.2} s = {:.2} s, CPU {:.2} s",
        seconds(loaded),
        steps.join(", "),
        seconds(rebuild),
        seconds(total),
        seconds(cpu_time().saturating_sub(cpu))
    );
    Ok((engine, total))
}

/// One timed start-up through [`Store::load_engine`] (the engine rebuilt while the rows are
/// read).
fn startup_engine(store: &mut Store, tenant_id: Uuid) -> BenchResult<(Engine, Duration)> {
    let cpu = cpu_time();
    let started = Instant::now();
    let mut last = started;
    let mut phases: Vec<(&'static str, Duration)> = Vec::new();
    let (engine, _version) = store.load_engine_with_phases(tenant_id, 16_384, &mut |phase| {
        let now = Instant::now();
        phases.push((phase, now - last));
        last = now;
    })?;
    let total = started.elapsed();
    let steps: Vec<String> = phases
        .iter()
        .filter(|(_, duration)| *duration >= Duration::from_millis(5))
        .map(|(phase, duration)| format!("{phase} {:.2}", seconds(*duration)))
        .collect();
    println!(
        "    load_engine {:.2} s ({}), CPU {:.2} s",
        seconds(total),
        steps.join(", "),
        seconds(cpu_time().saturating_sub(cpu))
    );
    Ok((engine, total))
}

/// Writes the engine's snapshot at `version`, timed: the copy of the engine (what the runtime
/// takes under the tenant's lock), its encoding, the write.
fn write_snapshot(store: &mut Store, engine: &Engine, version: u64) -> BenchResult<usize> {
    let cpu = cpu_time();
    let started = Instant::now();
    let copy = engine.clone();
    let copied = started.elapsed();
    let blob = licensd_store::snapshot::encode(&copy)?;
    let encoded = started.elapsed() - copied;
    drop(copy);
    store.write_engine_snapshot(engine.settings().tenant_id, version, &blob)?;
    println!(
        "  wrote the engine snapshot: {:.1} MB; copy of the engine {:.4} s (under the lock) + encode {:.2} s + write {:.2} s, CPU {:.2} s",
        blob.len() as f64 / 1e6,
        seconds(copied),
        seconds(encoded),
        seconds(started.elapsed() - copied - encoded),
        seconds(cpu_time().saturating_sub(cpu))
    );
    Ok(blob.len())
}

/// One timed start-up through [`Store::start_engine`] (the snapshot and the change log since).
fn startup_snapshot(
    store: &mut Store,
    tenant_id: Uuid,
    expect_caught_up: bool,
) -> BenchResult<(Engine, Duration)> {
    let cpu = cpu_time();
    let started = Instant::now();
    let start = store.start_engine(tenant_id)?;
    let total = started.elapsed();
    let licensd_store::StartSource::Snapshot {
        snapshot_version,
        caught_up,
    } = start.source
    else {
        return Err(format!("the start did not use the snapshot: {:?}", start.source).into());
    };
    if caught_up != expect_caught_up {
        return Err(format!("caught up: {caught_up}, expected {expect_caught_up}").into());
    }
    println!(
        "    start_engine (snapshot of version {snapshot_version}{}, at version {}) {:.2} s, CPU {:.2} s",
        if caught_up { " + the change log since" } else { "" },
        start.version,
        seconds(total),
        seconds(cpu_time().saturating_sub(cpu))
    );
    Ok((start.engine, total))
}

/// Restores a snapshot blob in memory (no database), timed: where the snapshot start's time
/// goes besides reading the row.
fn restore_in_memory(store: &mut Store, tenant_id: Uuid, engine: &Engine) -> BenchResult<()> {
    let blob = licensd_store::snapshot::encode(engine)?;
    let _ = (store, tenant_id);
    let cpu = cpu_time();
    let started = Instant::now();
    let restored = licensd_store::snapshot::restore(&blob)?;
    println!(
        "    in memory: restore from the blob {:.2} s (CPU {:.2} s)",
        seconds(started.elapsed()),
        seconds(cpu_time().saturating_sub(cpu))
    );
    std::hint::black_box(restored);
    Ok(())
}

/// Writes `count` membership additions and the processing steps they queue through `engine`.
fn write_after_snapshot(
    store: &mut Store,
    engine: &mut Engine,
    mut version: u64,
    count: usize,
) -> BenchResult<u64> {
    let image_users: Vec<Uuid> = engine
        .to_image()
        .users
        .iter()
        .step_by(997)
        .map(|user| user.id)
        .collect();
    let groups: Vec<Uuid> = engine.to_image().groups.iter().map(|group| group.id).collect();
    let tenant_id = engine.settings().tenant_id;
    let mut at = Timestamp(4_000_000_000_000);
    let mut written = 0;
    for (index, user_id) in image_users.iter().cycle().enumerate() {
        if written == count || index > count * 10 {
            break;
        }
        at.0 += 1000;
        let command = licensd_engine::Command::AddGroupMember {
            group_id: groups[(index * 31) % groups.len()],
            user_id: *user_id,
        };
        let Ok(outcome) = engine.apply(command, at) else {
            continue;
        };
        let mut batch = WriteBatch::from_command_outcome(&outcome);
        batch.expected_version = Some(version);
        version = store.write(tenant_id, &batch)?;
        written += 1;
        if written % 10 == 0 {
            at.0 += 1000;
            let report = engine.process_batch_with_images(100, at);
            let mut batch = WriteBatch::from_process_report(report);
            batch.expected_version = Some(version);
            version = store.write(tenant_id, &batch)?;
        }
    }
    println!("  wrote {written} membership additions and their processing steps after the snapshot");
    Ok(version)
}

fn bench_backend(
    backend: &Backend,
    tenant_id: Uuid,
    generated: &mut Option<TenantImage>,
    users: usize,
    runs: usize,
) -> BenchResult<()> {
    println!("\n{}:", backend.name());
    let fresh = ensure_stored(backend, tenant_id, generated, users)?;
    if !fresh {
        println!("  reusing the tenant stored by an earlier run");
    }
    let mut store = backend.open()?;
    let mut reference = Duration::ZERO;
    for run in 0..runs {
        let cpu = cpu_time();
        let scans = match backend {
            Backend::Sqlite { path, .. } => raw_scan_sqlite(path, tenant_id)?,
            Backend::Postgres { .. } => raw_scan_postgres(&mut backend.raw_client()?, tenant_id)?,
        };
        let total: Duration = scans.iter().map(|(_, _, time)| *time).sum();
        reference = if run == 0 { total } else { reference.min(total) };
        let parts: Vec<String> = scans
            .iter()
            .map(|(table, rows, time)| format!("{table} {rows} rows {:.2} s", seconds(*time)))
            .collect();
        println!(
            "  reference, bare scan of the big tables: {:.2} s ({}), CPU {:.2} s",
            seconds(total),
            parts.join(", "),
            seconds(cpu_time().saturating_sub(cpu))
        );
    }
    let mut best_image = Duration::MAX;
    let mut best_engine = Duration::MAX;
    let mut by_image = None;
    let mut by_engine = None;
    for _ in 0..runs {
        println!("  start-up through load_tenant + Engine::from_image (the path before):");
        let (engine, time) = startup_load(&mut store, tenant_id)?;
        best_image = best_image.min(time);
        by_image = Some(engine);
        println!("  start-up through load_engine:");
        let (engine, time) = startup_engine(&mut store, tenant_id)?;
        best_engine = best_engine.min(time);
        by_engine = Some(engine);
    }
    let ratio = |time: Duration| time.as_secs_f64() / reference.as_secs_f64().max(1e-9);
    println!(
        "  best of {runs}: reference {:.2} s; load_tenant + from_image {:.2} s ({:.1}x the reference); load_engine {:.2} s ({:.1}x)",
        seconds(reference),
        seconds(best_image),
        ratio(best_image),
        seconds(best_engine),
        ratio(best_engine),
    );
    let image = by_image.unwrap().to_image();
    if by_engine.as_ref().unwrap().to_image() != image {
        return Err("load_engine built another engine than load_tenant + from_image".into());
    }
    println!("  both paths built the same engine (checked)");
    let mut engine = by_engine.unwrap();
    let version = store.tenant_version(tenant_id)?;
    write_snapshot(&mut store, &engine, version)?;
    let mut best_snapshot = Duration::MAX;
    for _ in 0..runs {
        println!("  start-up through start_engine from the snapshot:");
        let (started, time) = startup_snapshot(&mut store, tenant_id, false)?;
        best_snapshot = best_snapshot.min(time);
        if started.to_image() != image {
            return Err("the snapshot start built another engine than the full load".into());
        }
        drop(started);
        restore_in_memory(&mut store, tenant_id, &engine)?;
    }
    println!(
        "  best of {runs}: start from the snapshot {:.2} s ({:.1}x the reference; the full load above {:.2} s); same engine as the full load (checked)",
        seconds(best_snapshot),
        ratio(best_snapshot),
        seconds(best_image.min(best_engine)),
    );
    let after: usize = env_or("LICENSD_BENCH_WRITES_AFTER_SNAPSHOT", 200);
    if after > 0 {
        let version = write_after_snapshot(&mut store, &mut engine, version, after)?;
        println!("  start-up through start_engine from the snapshot + the change log since:");
        let (started, time) = startup_snapshot(&mut store, tenant_id, true)?;
        let (full, _) = startup_engine(&mut store, tenant_id)?;
        if started.to_image() != full.to_image() || started.to_image() != engine.to_image() {
            return Err("snapshot + log built another engine than the full load".into());
        }
        println!(
            "  snapshot + log to version {version}: {:.2} s; same engine as the full load (checked)",
            seconds(time)
        );
        // Leave the stored tenant's snapshot current for the next run.
        write_snapshot(&mut store, &engine, version)?;
    }
    match generated {
        Some(expected) if *expected != image => {
            return Err("the loaded tenant differs from the generated one".into())
        }
        Some(_) => println!("  the loaded tenant equals the generated one (checked)"),
        None => {}
    }
    Ok(())
}

fn main() -> BenchResult<()> {
    let users: usize = env_or("LICENSD_BENCH_USERS", 1_000_000);
    let runs: usize = env_or("LICENSD_BENCH_RUNS", 2).max(1);
    let keep = std::env::var("LICENSD_BENCH_KEEP").ok().map(PathBuf::from);
    println!("licensd start-up benchmark on {}", machine());
    println!("SQLite {}; {users} users", rusqlite::version());
    let tenant_id = tenant_id()?;
    let mut generated = None;
    for backend in backends(users, keep.as_ref())? {
        bench_backend(&backend, tenant_id, &mut generated, users, runs)?;
    }
    Ok(())
}
