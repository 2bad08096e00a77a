//! Incremental catch-up benchmark: how long an instance takes to catch up on one write made
//! through another instance, on a large generated tenant, next to the full reload it replaces,
//! measured in the same run.
//!
//! A tenant of `LICENSD_BENCH_CATCH_UP_USERS` users (default 1,000,000; the fixtures generator,
//! 5,000 groups, 50 products) is generated, fully processed in memory and stored. Engine A is
//! the generated engine, engine B a full load of the store (timed: `load_tenant` +
//! `Engine::from_image`, the reference). Then `LICENSD_BENCH_CATCH_UP_COMMANDS` times (default
//! 200): A adds one user to a licensed group and writes the command; B catches up
//! (`Store::catch_up` + `Engine::apply_patch`, timed); A evaluates the queued user and writes the
//! step; B catches up again (timed). At the end B must equal a full load. The target: a foreign
//! command caught up in ≤ 1 ms on a 1M-user tenant.
//!
//! Run with `cargo bench -p licensd-store --bench catch_up`. `LICENSD_BENCH_BACKENDS` picks the
//! backends (default `postgres`; `sqlite,postgres` for both); PostgreSQL is at
//! `LICENSD_BENCH_POSTGRES_URL` (default `LICENSD_TEST_POSTGRES_URL`, else
//! `postgres://postgres@127.0.0.1:5432/test`) in a schema of its own, dropped at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::error::Error;
use std::time::{Duration, Instant};

use licensd_engine::{Command, Engine, Timestamp};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_store::{CatchUp, Store, WriteBatch};

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
    format!("{model}, {cores} cores, load average {}", load.trim())
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn print_times(name: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    println!(
        "  {name:<44} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms  ({} catch-ups)",
        millis(percentile(&times, 0.5)),
        millis(percentile(&times, 0.99)),
        millis(times.last().copied().unwrap_or_default()),
        times.len()
    );
}

/// Catches B up, returning how long it took; fails on anything but a patch.
fn catch_up(store: &mut Store, engine: &mut Engine, version: &mut u64) -> BenchResult<Duration> {
    let tenant_id = engine.settings().tenant_id;
    let started = Instant::now();
    let read = store.catch_up(tenant_id, *version, None)?;
    if std::env::var_os("LICENSD_BENCH_CATCH_UP_SPLIT").is_some() {
        println!("    read {:.3} ms", millis(started.elapsed()));
    }
    match read {
        CatchUp::Patch { patch, version: to } => {
            let applying = Instant::now();
            engine.apply_patch(*patch)?;
            if std::env::var_os("LICENSD_BENCH_CATCH_UP_SPLIT").is_some() {
                println!("    apply {:.3} ms", millis(applying.elapsed()));
            }
            *version = to;
        }
        CatchUp::UpToDate { .. } => {}
        CatchUp::Reload { reason } => return Err(format!("the catch-up needs a reload: {reason}").into()),
    }
    Ok(started.elapsed())
}

fn bench(backend: &Backend, users: usize, commands: usize) -> BenchResult<()> {
    println!("\n{}:", backend.name());
    let config = GeneratorConfig::new(users, 5_000, 50, 1);
    let started = Instant::now();
    let (mut a, summary) = build_engine(&config)?;
    let mut at = Timestamp(summary.last_timestamp.0 + 1000);
    while a.queued_users() > 0 {
        a.process_batch(100_000, at);
    }
    println!(
        "  generated and processed {} users, {} memberships in {:.1} s",
        users,
        summary.memberships,
        started.elapsed().as_secs_f64()
    );
    let mut store = backend.open()?;
    let tenant_id = a.settings().tenant_id;
    let image = a.to_image();
    store.create_tenant(&image.settings)?;
    let started = Instant::now();
    let mut version = store.write(tenant_id, &WriteBatch::from_image(image))?;
    println!("  stored in {:.1} s", started.elapsed().as_secs_f64());

    // The reference: a full reload, as an instance did for every foreign write before.
    let started = Instant::now();
    let (image, mut b_version) = store.load_tenant(tenant_id)?;
    let load = started.elapsed();
    let mut b = Engine::from_image(image)?;
    let reload = started.elapsed();
    println!(
        "  reference: full reload (load_tenant {:.0} ms + Engine::from_image {:.0} ms) {:>9.1} ms",
        millis(load),
        millis(reload - load),
        millis(reload)
    );

    let group = a
        .group_ids()
        .into_iter()
        .find(|group_id| {
            a.group_view(*group_id)
                .is_ok_and(|group| !group.assigned_licenses.is_empty())
        })
        .ok_or("no licensed group")?;
    let user_ids = a.user_ids();
    let stride = (user_ids.len() / (commands * 2)).max(1);
    let mut command_times = Vec::with_capacity(commands);
    let mut step_times = Vec::with_capacity(commands);
    let mut candidates = user_ids.iter().step_by(stride);
    while command_times.len() < commands {
        let user_id = *candidates.next().ok_or("ran out of users")?;
        at = Timestamp(at.0 + 1000);
        let Ok(outcome) = a.apply(
            Command::AddGroupMember {
                group_id: group,
                user_id,
            },
            at,
        ) else {
            continue; // already a member
        };
        let mut batch = WriteBatch::from_command_outcome(&outcome);
        batch.expected_version = Some(version);
        version = store.write(tenant_id, &batch)?;
        command_times.push(catch_up(&mut store, &mut b, &mut b_version)?);
        let report = a.process_batch_with_images(100, at);
        let mut batch = WriteBatch::from_process_report(report);
        batch.expected_version = Some(version);
        version = store.write(tenant_id, &batch)?;
        step_times.push(catch_up(&mut store, &mut b, &mut b_version)?);
    }
    print_times("catch up on one membership command", command_times);
    print_times("catch up on the processing step that follows", step_times);
    let started = Instant::now();
    let (image, _) = store.load_tenant(tenant_id)?;
    let loaded = Engine::from_image(image)?;
    if b_version != version || b.to_image() != loaded.to_image() {
        return Err("the engine caught up incrementally differs from a full load".into());
    }
    println!(
        "  the caught-up engine equals a full load (checked; that reload took {:.1} ms)",
        millis(started.elapsed())
    );
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

    fn open(&self) -> BenchResult<Store> {
        match self {
            Backend::Sqlite { directory } => {
                let path = directory.path().join("catch_up.db");
                let _ = std::fs::remove_file(&path);
                Ok(Store::open(&path.display().to_string())?)
            }
            Backend::Postgres { base, schema } => {
                let mut client = postgres::Client::connect(base, postgres::NoTls)?;
                client.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
                ))?;
                let separator = if base.contains('?') { '&' } else { '?' };
                Ok(Store::open(&format!(
                    "{base}{separator}options=-csearch_path%3D{schema}"
                ))?)
            }
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
    let wanted = std::env::var("LICENSD_BENCH_BACKENDS").unwrap_or_else(|_| "postgres".to_string());
    let mut backends = Vec::new();
    for name in wanted.split(',').map(str::trim) {
        match name {
            "sqlite" => backends.push(Backend::Sqlite {
                directory: tempfile::Builder::new().prefix("licensd-bench-").tempdir()?,
            }),
            "postgres" => {
                let base = std::env::var("LICENSD_BENCH_POSTGRES_URL")
                    .or_else(|_| std::env::var("LICENSD_TEST_POSTGRES_URL"))
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
                match postgres::Client::connect(&base, postgres::NoTls) {
                    Ok(_) => backends.push(Backend::Postgres {
                        base,
                        schema: format!("licensd_bench_catch_up_{}", std::process::id()),
                    }),
                    Err(error) => println!("skipping PostgreSQL: cannot connect to {base}: {error}"),
                }
            }
            other => return Err(format!("unknown backend {other:?} in LICENSD_BENCH_BACKENDS").into()),
        }
    }
    Ok(backends)
}

fn main() -> BenchResult<()> {
    let users: usize = env_or("LICENSD_BENCH_CATCH_UP_USERS", 1_000_000);
    let commands: usize = env_or("LICENSD_BENCH_CATCH_UP_COMMANDS", 200);
    println!("licensd incremental catch-up benchmark on {}", machine());
    for backend in backends()? {
        bench(&backend, users, commands)?;
    }
    Ok(())
}
