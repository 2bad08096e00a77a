//! Tenants spread across instances (issue 14: "evidence that N instances serve N× the
//! tenants"). PostgreSQL only (SQLite serves one instance). For N = 1, 2, 3: a fresh schema with
//! `LICENSD_BENCH_TENANTS` tenants (default 8), each a group of `LICENSD_BENCH_MEMBERS` (default
//! 5,000) queued members holding Office 365 E3; N instances (each its own store connection,
//! engines, processor and watcher, as `licensd serve` runs them) start on it, and the time until
//! every queue is empty is measured. Printed: users evaluated per second, the ratio to one
//! instance in the same run (the reference), and how many tenants each instance processed (its
//! leases).
//!
//! `LICENSD_BENCH_DATABASE=postgres cargo bench -p licensd-server --bench spread`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use licensd_engine::{AssignedLicense, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};
use licensd_runtime::processor::Processor;
use licensd_server::ServerConfig;
use licensd_store::{Store, WriteBatch};

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;

use database::{BenchDatabase, BenchResult};
use measure::env_or;

/// Stores `tenants` tenants of `members` queued members each; returns their ids.
fn store_tenants(url: &str, tenants: usize, members: usize) -> BenchResult<Vec<Uuid>> {
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: members as u32,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .map_err(|error| error.to_string())?;
    let group = world.add_group("Everyone").map_err(|error| error.to_string())?;
    world
        .assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .map_err(|error| error.to_string())?;
    for number in 0..members {
        let user = world
            .add_user(&format!("spread{number:07}"), Some("US"))
            .map_err(|error| error.to_string())?;
        world.add_member(group, user).map_err(|error| error.to_string())?;
    }
    let mut store = Store::open(url)?;
    let mut ids = Vec::with_capacity(tenants);
    for number in 0..tenants {
        let mut image = world.engine.to_image();
        image.settings.tenant_id = Uuid::from_u128(0x5b_0000_0000 + number as u128);
        let tenant_id = image.settings.tenant_id;
        store.create_tenant(&image.settings)?;
        store.write(tenant_id, &WriteBatch::from_image(image))?;
        ids.push(tenant_id);
    }
    Ok(ids)
}

struct Run {
    users_per_second: f64,
    elapsed: Duration,
    tenants_per_instance: BTreeMap<String, usize>,
}

fn run(instances: usize, tenants: usize, members: usize) -> BenchResult<Run> {
    let directory = tempfile::tempdir()?;
    let database = BenchDatabase::from_environment(directory.path(), &format!("licensd_spread{instances}"))?;
    let tenant_ids = store_tenants(&database.url, tenants, members)?;
    let config_for = |instance: usize| ServerConfig {
        database_url: database.url.clone(),
        processing_batch_size: 2_000,
        processing_lease: Duration::from_secs(3),
        instance_id: format!("instance-{instance}"),
        ..ServerConfig::defaults(directory.path())
    };
    // Load every instance first, then start the processors together.
    let states = (0..instances)
        .map(|instance| licensd_server::open(&config_for(instance)).map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let started = Instant::now();
    let processors = states
        .iter()
        .enumerate()
        .map(|(instance, state)| {
            Processor::start(config_for(instance), state.store.clone(), state.tenants.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = Store::open(&database.url)?;
    let mut tenants_per_instance: BTreeMap<String, usize> = BTreeMap::new();
    let mut holder_of: BTreeMap<Uuid, String> = BTreeMap::new();
    loop {
        let mut queued = 0;
        for tenant_id in &tenant_ids {
            queued += store.queue_len(*tenant_id)?;
            if let Some(holder) = store.processing_lease_holder(*tenant_id)? {
                holder_of.insert(*tenant_id, holder);
            }
        }
        if queued == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err("the queues did not drain within 10 minutes".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let elapsed = started.elapsed();
    for processor in processors {
        processor.stop();
    }
    drop(states);
    for holder in holder_of.values() {
        *tenants_per_instance.entry(holder.clone()).or_default() += 1;
    }
    database.drop_schema()?;
    Ok(Run {
        users_per_second: (tenants * members) as f64 / elapsed.as_secs_f64(),
        elapsed,
        tenants_per_instance,
    })
}

fn main() -> BenchResult<()> {
    let tenants: usize = env_or("LICENSD_BENCH_TENANTS", 8);
    let members: usize = env_or("LICENSD_BENCH_MEMBERS", 5_000);
    let max_instances: usize = env_or("LICENSD_BENCH_INSTANCES", 3);
    if std::env::var("LICENSD_BENCH_DATABASE").as_deref() != Ok("postgres") {
        println!("spread: PostgreSQL only (set LICENSD_BENCH_DATABASE=postgres); SQLite serves one instance");
        return Ok(());
    }
    println!(
        "tenants spread across instances: {tenants} tenants x {members} queued members, PostgreSQL, {} cores",
        std::thread::available_parallelism()
            .map(|cores| cores.get())
            .unwrap_or(1)
    );
    let mut reference: Option<f64> = None;
    for instances in 1..=max_instances {
        let figures = run(instances, tenants, members)?;
        let ratio = reference.map_or(1.0, |one| figures.users_per_second / one);
        if reference.is_none() {
            reference = Some(figures.users_per_second);
        }
        println!(
            "  {instances} instance(s): all queues empty after {:>7.2} s, {:>8.0} users/s, {:.2}x one instance (reference), tenants processed per instance {:?}",
            figures.elapsed.as_secs_f64(),
            figures.users_per_second,
            ratio,
            figures.tenants_per_instance
        );
    }
    Ok(())
}
