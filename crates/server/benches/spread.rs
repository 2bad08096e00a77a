//! Tenants spread across instances (issue 14: "evidence that N instances serve N× the
//! tenants"). PostgreSQL only (SQLite serves one instance). For N = 1, 2, 3: a fresh schema with
//! `LICENSD_BENCH_TENANTS` tenants (default 8), each a group of `LICENSD_BENCH_MEMBERS` (default
//! 5,000) queued members holding Office 365 E3; N instances (each its own store connection,
//! engines, processor and watcher, as `licensd serve` runs them) start on it, and the time until
//! every queue is empty is measured. The N instances announce themselves before their
//! processors start (a running cluster: each sees the others from its first round).
//!
//! Each N runs twice: every instance holding every tenant (`Residency::Everything`, the
//! reference: how instances ran before) and holding only what it needs
//! (`tenant-idle-eviction-s`, `Residency::OnDemand`: the tenants its processor owns, none asked
//! about by requests here). Printed per run: users evaluated per second and the ratio to one
//! instance of the same residency in the same run; per instance the tenants it processed (its
//! leases), the tenants and users it holds in memory, the tenants it loaded and the catch-ups on
//! other instances' writes it did.
//!
//! `LICENSD_BENCH_DATABASE=postgres cargo bench -p licensd-server --bench spread`
//! (`LICENSD_BENCH_RESIDENCY=everything` or `on-demand` runs one of the two).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use licensd_engine::{AssignedLicense, Uuid};
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};
use licensd_runtime::processor::Processor;
use licensd_runtime::tenants::ResidencyReport;
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
    residency: Vec<(String, ResidencyReport)>,
}

fn run(instances: usize, tenants: usize, members: usize, on_demand: bool) -> BenchResult<Run> {
    let directory = tempfile::tempdir()?;
    let database = BenchDatabase::from_environment(directory.path(), &format!("licensd_spread{instances}"))?;
    let tenant_ids = store_tenants(&database.url, tenants, members)?;
    let lease = Duration::from_secs(3);
    let config_for = |instance: usize| ServerConfig {
        database_url: database.url.clone(),
        processing_batch_size: 2_000,
        processing_lease: lease,
        instance_id: format!("instance-{instance}"),
        tenant_idle_eviction: on_demand.then_some(Duration::from_secs(600)),
        ..ServerConfig::defaults(directory.path())
    };
    // Load every instance first, then start the processors together.
    let states = (0..instances)
        .map(|instance| licensd_server::open(&config_for(instance)).map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut store = Store::open(&database.url)?;
    for instance in 0..instances {
        store.announce_processing_instance(&config_for(instance).instance_id, lease)?;
    }
    let started = Instant::now();
    let processors = states
        .iter()
        .enumerate()
        .map(|(instance, state)| {
            Processor::start(config_for(instance), state.store.clone(), state.tenants.clone())
        })
        .collect::<Result<Vec<_>, _>>()?;
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
    // Let the watchers hear of the last steps before counting their catch-ups.
    std::thread::sleep(Duration::from_millis(500));
    for processor in processors {
        processor.stop();
    }
    let residency = states
        .iter()
        .enumerate()
        .map(|(instance, state)| {
            state
                .tenants
                .residency_report()
                .map(|report| (format!("instance-{instance}"), report))
                .map_err(|error| error.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    drop(states);
    for holder in holder_of.values() {
        *tenants_per_instance.entry(holder.clone()).or_default() += 1;
    }
    database.drop_schema()?;
    Ok(Run {
        users_per_second: (tenants * members) as f64 / elapsed.as_secs_f64(),
        elapsed,
        tenants_per_instance,
        residency,
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
    let modes: Vec<bool> = match std::env::var("LICENSD_BENCH_RESIDENCY").as_deref() {
        Ok("everything") => vec![false],
        Ok("on-demand") => vec![true],
        _ => vec![false, true],
    };
    for on_demand in modes {
        println!(
            "{}:",
            if on_demand {
                "each instance holds the tenants it processes (tenant-idle-eviction-s = 600)"
            } else {
                "reference: every instance holds every tenant"
            }
        );
        let mut reference: Option<f64> = None;
        for instances in 1..=max_instances {
            let figures = run(instances, tenants, members, on_demand)?;
            let ratio = reference.map_or(1.0, |one| figures.users_per_second / one);
            if reference.is_none() {
                reference = Some(figures.users_per_second);
            }
            println!(
                "  {instances} instance(s): all queues empty after {:>7.2} s, {:>8.0} users/s, {:.2}x one instance, tenants processed per instance {:?}",
                figures.elapsed.as_secs_f64(),
                figures.users_per_second,
                ratio,
                figures.tenants_per_instance
            );
            for (instance, report) in &figures.residency {
                println!(
                    "    {instance}: {} of {} tenants in memory ({} users), {} loaded, {} catch-ups on other instances' writes",
                    report.resident, report.known, report.resident_users, report.loads, report.catch_ups
                );
            }
        }
    }
    Ok(())
}
