//! Membership add → license state visible, through the instance that took the write and (on
//! PostgreSQL) through a second instance on the same database: p50 and p99 over a few hundred
//! additions to a licensed group of a large tenant (100,000 users by default), each added while
//! the processor is idle. The reference, measured in the same run on the same tenant, is the
//! processor as it was before writes woke it: polling every 50 ms (`processing_wake_on_write`
//! off).
//!
//! `cargo bench -p licensd-server --bench visibility`; `LICENSD_BENCH_USERS` (default 100,000),
//! `LICENSD_BENCH_SAMPLES` (default 200 per mode), `LICENSD_BENCH_DATABASE` (`sqlite`, the
//! default, or `postgres`: `LICENSD_TEST_POSTGRES_URL` or `postgres://postgres@127.0.0.1:5432/test`
//! in a fresh schema, dropped at the end).

use std::time::{Duration, Instant};

use licensd_engine::{AssignedLicense, Command, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};
use licensd_runtime::access::{Caller, Role};
use licensd_runtime::processor::Processor;
use licensd_server::{AppState, ServerConfig};
use licensd_store::{Store, WriteBatch};

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;

use database::BenchDatabase;
use measure::env_or;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn has_state(state: &AppState, tenant_id: Uuid, user_id: Uuid) -> bool {
    let Ok(runtime) = state.tenants.get(tenant_id) else {
        return false;
    };
    runtime
        .read(|engine| {
            engine
                .user_state_records(user_id)
                .is_ok_and(|records| !records.is_empty())
        })
        .unwrap_or(false)
}

/// Waits until `user_id` has a state in `state`'s engine; `None` after 10 s.
fn wait_visible(state: &AppState, tenant_id: Uuid, user_id: Uuid, since: Instant) -> Option<Duration> {
    loop {
        if has_state(state, tenant_id, user_id) {
            return Some(since.elapsed());
        }
        if since.elapsed() > Duration::from_secs(10) {
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

struct Figures {
    same: Vec<Duration>,
    other: Vec<Duration>,
}

fn report(label: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "  {label:<58} p50 {:>8.2} ms   p99 {:>8.2} ms   ({} samples)",
        percentile(samples, 0.50).as_secs_f64() * 1000.0,
        percentile(samples, 0.99).as_secs_f64() * 1000.0,
        samples.len()
    );
}

/// Adds `users` to the group one at a time through a first instance (a second one watching on
/// PostgreSQL), each once the processor is idle again, and times when each shows its state.
fn measure(
    url: &str,
    directory: &std::path::Path,
    tenant_id: Uuid,
    group_id: Uuid,
    users: &[Uuid],
    wake: bool,
    second_instance: bool,
) -> BenchResult<Figures> {
    let config_for = |instance: &str| ServerConfig {
        database_url: url.to_string(),
        processing_idle_interval: Duration::from_millis(50),
        processing_wake_on_write: wake,
        instance_id: instance.to_string(),
        ..ServerConfig::defaults(directory)
    };
    let first = licensd_server::open(&config_for("first"))?;
    let first_processor = Processor::start(config_for("first"), first.store.clone(), first.tenants.clone())?;
    let second = if second_instance {
        let state = licensd_server::open(&config_for("second"))?;
        let processor = Processor::start(config_for("second"), state.store.clone(), state.tenants.clone())?;
        Some((state, processor))
    } else {
        None
    };
    let runtime = first.tenants.get(tenant_id)?;
    let caller = Caller {
        tenant_id,
        token_id: None,
        display_name: "benchmark".to_string(),
        role: Role::UserAdministrator,
        request_id: String::new(),
    };
    let mut figures = Figures {
        same: Vec::new(),
        other: Vec::new(),
    };
    for user_id in users {
        // Between additions the processor falls idle (asleep, or waiting for a wake-up).
        std::thread::sleep(Duration::from_millis(20));
        runtime.execute(
            &first.store,
            Command::AddGroupMember {
                group_id,
                user_id: *user_id,
            },
            &caller,
        )?;
        let acknowledged = Instant::now();
        match wait_visible(&first, tenant_id, *user_id, acknowledged) {
            Some(took) => figures.same.push(took),
            None => return Err(format!("user {user_id} got no state within 10 s").into()),
        }
        if let Some((state, _)) = &second {
            match wait_visible(state, tenant_id, *user_id, acknowledged) {
                Some(took) => figures.other.push(took),
                None => return Err(format!("user {user_id} not seen by the second instance").into()),
            }
        }
    }
    first_processor.stop();
    if let Some((_, processor)) = second {
        processor.stop();
    }
    Ok(figures)
}

fn main() -> BenchResult<()> {
    let user_count: usize = env_or("LICENSD_BENCH_USERS", 100_000);
    let samples: usize = env_or("LICENSD_BENCH_SAMPLES", 200);
    let directory = tempfile::tempdir()?;
    let database = BenchDatabase::from_environment(directory.path(), "licensd_visibility")
        .map_err(|error| -> Box<dyn std::error::Error> { error })?;
    let url = database.url.clone();
    let postgres = database.is_postgres();

    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: user_count as u32,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .map_err(|error| error.to_string())?;
    let mut users = Vec::with_capacity(user_count);
    for number in 0..user_count {
        users.push(
            world
                .add_user(&format!("visible{number:07}"), Some("US"))
                .map_err(|error| error.to_string())?,
        );
    }
    let group_id = world.add_group("Licensed").map_err(|error| error.to_string())?;
    world
        .assign_to_group(group_id, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .map_err(|error| error.to_string())?;
    let image = world.engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(&url)?;
    store.create_tenant(&image.settings)?;
    store.write(tenant_id, &WriteBatch::from_image(image))?;
    drop(store);

    println!(
        "membership add -> state visible, {user_count} users, {} (machine shared with parallel builds)",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    let mut reference = measure(
        &url,
        directory.path(),
        tenant_id,
        group_id,
        &users[..samples],
        false,
        false,
    )?;
    report(
        "reference: processor polling every 50 ms, same instance",
        &mut reference.same,
    );
    let reloads_before = licensd_runtime::tenants::FULL_RELOADS.load(std::sync::atomic::Ordering::Relaxed);
    let incremental_before =
        licensd_runtime::tenants::INCREMENTAL_CATCH_UPS.load(std::sync::atomic::Ordering::Relaxed);
    let mut woken = measure(
        &url,
        directory.path(),
        tenant_id,
        group_id,
        &users[samples..samples * 2],
        true,
        postgres,
    )?;
    report("write wakes the processor, same instance", &mut woken.same);
    if postgres {
        report(
            "write wakes the processor, through a second instance",
            &mut woken.other,
        );
    }
    let reloads =
        licensd_runtime::tenants::FULL_RELOADS.load(std::sync::atomic::Ordering::Relaxed) - reloads_before;
    let incremental = licensd_runtime::tenants::INCREMENTAL_CATCH_UPS
        .load(std::sync::atomic::Ordering::Relaxed)
        - incremental_before;
    println!(
        "  catch-ups while measuring the wake-up: {reloads} full reloads of the tenant, {incremental} incremental"
    );
    database
        .drop_schema()
        .map_err(|error| -> Box<dyn std::error::Error> { error })?;
    Ok(())
}
