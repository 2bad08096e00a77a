//! Direct-to-group migration benchmark through licensd's own write path: a tenant of
//! `LICENSD_BENCH_USERS` (default 100,000) users, each a member of one group assigning Office 365
//! E3 and holding E3 directly as well, is stored in SQLite and loaded as at start-up; then the
//! migration runs as `POST /licensd/v1/migrations/directToGroup` runs it — coverage, batches of
//! 500 removals through `TenantRuntime::execute_batch` (group commit, audit, one transaction per
//! group of commands), and the plans-lost check after each batch — and is timed end to end. The
//! reference in the same run: storing the whole tenant at once (`Store::write` of its image).
//!
//! `cargo bench -p licensd-server --bench migration`.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use licensd_engine::AssignedLicense;
use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, OFFICE_365_E3};
use licensd_runtime::access::Caller;
use licensd_runtime::tenants::{SharedStore, TenantRuntime};
use licensd_store::{Store, WriteBatch};

fn main() {
    let benchmarking = std::env::args().any(|argument| argument == "--bench");
    let users: usize = if benchmarking {
        std::env::var("LICENSD_BENCH_USERS")
            .ok()
            .and_then(|value| value.parse().ok())
            .unwrap_or(100_000)
    } else {
        500
    };
    let started = Instant::now();
    let mut world = SeedWorld::new(SeedSeats {
        office_365_e1: 0,
        office_365_e3: users as u32,
        ems_e3: 0,
        workplace_analytics: 0,
    })
    .expect("the seed world");
    let group = world.add_group("Knowledge workers").expect("group");
    world
        .assign_to_group(group, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
        .expect("group license");
    for number in 0..users {
        let user = world
            .add_user(&format!("user{number:07}"), Some("US"))
            .expect("user");
        world
            .assign_to_user(user, vec![AssignedLicense::new(OFFICE_365_E3)], vec![])
            .expect("direct license");
        world.add_member(group, user).expect("member");
    }
    world.process();
    println!(
        "tenant: {users} users with E3 directly and through one group (built in {:.2?})",
        started.elapsed()
    );
    let directory = tempfile::tempdir().expect("directory");
    let url = format!("sqlite://{}", directory.path().join("bench.db").display());
    let image = world.engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(&url).expect("store");
    store.create_tenant(&image.settings).expect("tenant");
    let started = Instant::now();
    store
        .write(tenant_id, &WriteBatch::from_image(image))
        .expect("stored");
    let reference = started.elapsed();
    let store: SharedStore = std::sync::Arc::new(std::sync::Mutex::new(store));
    let runtime = TenantRuntime::load(&store, tenant_id).expect("loaded");
    let caller = Caller::background(tenant_id);

    let started = Instant::now();
    let coverage = runtime
        .read(|engine| {
            engine
                .direct_to_group_coverage(group, OFFICE_365_E3)
                .map_err(Box::new)
        })
        .expect("read")
        .expect("coverage");
    let commands = coverage.removal_commands(OFFICE_365_E3);
    let mut removed = 0usize;
    let mut lost = 0usize;
    for (chunk, batch) in coverage.covered.chunks(500).zip(commands.chunks(500)) {
        let before: Vec<_> = runtime
            .read(|engine| {
                chunk
                    .iter()
                    .map(|user| {
                        (
                            user.user_id,
                            engine.user_plans_in_effect(user.user_id).expect("plans"),
                        )
                    })
                    .collect()
            })
            .expect("read");
        let results = runtime.execute_batch(&store, batch.to_vec(), &caller);
        assert!(results.iter().all(Result::is_ok), "a removal failed");
        removed += results.len();
        lost += runtime
            .read(|engine| {
                before
                    .iter()
                    .filter(|(user_id, plans)| !engine.plans_lost(*user_id, plans).expect("plans").is_empty())
                    .count()
            })
            .expect("read");
    }
    let migration = started.elapsed();
    assert_eq!(removed, users);
    assert_eq!(lost, 0);
    println!(
        "reference (storing the whole tenant in one write): {reference:.2?}\n\
         migration of {removed} direct licenses (coverage, {} batches of 500, audit, plans-lost check): \
         {migration:.2?} ({:.2}x the reference); users who lost a plan: {lost}",
        removed.div_ceil(500),
        migration.as_secs_f64() / reference.as_secs_f64()
    );
}
