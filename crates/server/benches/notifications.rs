//! Change-notification benchmark (issue 16), with its references measured in the same run, on
//! loopback with a real HTTP receiver (`crates/delivery/tests/receiver`):
//!
//! 1. **Latency**: one subscriber on `users`; each of `LICENSD_BENCH_WRITES` user updates is
//!    applied through the runtime (`TenantRuntime::execute`, the path every API write takes) and
//!    timed until the receiver has the notification. Reference: the same writes' own latency.
//! 2. **1,000 subscribers**: the same sequential writes with no subscriber (reference), with
//!    1,000 `users/{id}` subscribers on other users (matched through the per-object index, none
//!    notified), and with 1,000 `users` subscribers (every write is notified to all 1,000: it
//!    records one change event, which the delivery worker fans out in the background; the time
//!    until the receiver has all the notifications is reported too).
//! 3. **Reprocess**: a generated tenant of `LICENSD_BENCH_USERS` users (default 100,000), every
//!    user queued, processed by `process_step` batches as the processor does, with one `users`
//!    subscriber: notifications received per second, from the start of processing to the last
//!    notification. Reference: the same processing on a copy of the tenant without subscriber.
//!
//! `cargo bench -p licensd-server --bench notifications`; `LICENSD_BENCH_DATABASE` (`sqlite`,
//! the default, or `postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;
#[path = "../../delivery/tests/receiver/mod.rs"]
mod receiver;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use database::{BenchDatabase, BenchResult};
use licensd_engine::{Command, UserChanges, Uuid};
use licensd_runtime::access::Caller;
use licensd_runtime::config::NotificationSettings;
use licensd_runtime::tenants::{SharedStore, Tenants};
use licensd_store::{ChangeSubscription, Store, WriteBatch};
use measure::{env_or, generated_tenant, Figures};
use receiver::Receiver;

struct Setup {
    store: SharedStore,
    tenants: Arc<Tenants>,
    tenant_id: Uuid,
    users: Vec<Uuid>,
    _worker: licensd_delivery::DeliveryWorker,
}

fn setup(database: &BenchDatabase, users: usize) -> BenchResult<Setup> {
    let image = generated_tenant(users)?;
    let tenant_id = image.settings.tenant_id;
    let user_ids: Vec<Uuid> = image.users.iter().map(|user| user.id).collect();
    {
        let mut store = Store::open(&database.url)?;
        store.create_tenant(&image.settings)?;
        store.write(tenant_id, &WriteBatch::from_image(image))?;
    }
    let store: SharedStore = Arc::new(Mutex::new(Store::open(&database.url)?));
    let tenants = Arc::new(Tenants::load_all(&store).map_err(|error| error.to_string())?);
    let notifier = tenants.notifier();
    notifier.set_renderer(Arc::new(licensd_server::graph::subscriptions::GraphRenderer));
    let worker = licensd_delivery::DeliveryWorker::start(
        licensd_delivery::WorkerSettings {
            database_url: database.url.clone(),
            worker_id: "bench".to_string(),
            notifications: NotificationSettings::default(),
            changes: Some(Arc::clone(&notifier)),
            // `LICENSD_BENCH_NO_WRITE_GATE=1`: the worker and the writers meet at SQLite's lock
            // only (for comparison).
            write_gate: (std::env::var("LICENSD_BENCH_NO_WRITE_GATE").as_deref() != Ok("1"))
                .then(|| Arc::clone(&store)),
        },
        notifier.delivery_signal(),
        Arc::new(licensd_delivery::NoObserver),
    )?;
    Ok(Setup {
        store,
        tenants,
        tenant_id,
        users: user_ids,
        _worker: worker,
    })
}

fn subscribe(setup: &Setup, receiver: &Receiver, resources: &[String]) -> BenchResult<()> {
    let mut store = setup.store.lock().map_err(|_| "poisoned")?;
    for resource in resources {
        store.create_change_subscription(
            setup.tenant_id,
            &ChangeSubscription {
                subscription_id: Uuid::new_v4(),
                resource: resource.clone(),
                change_types: "created,updated,deleted".to_string(),
                notification_url: receiver.url("/notify"),
                lifecycle_notification_url: None,
                client_state: Some("bench".to_string()),
                expires_at: licensd_runtime::tenants::now().0 + 3_600_000,
                created_at: licensd_runtime::tenants::now().0,
                removed_at: None,
            },
            &[],
        )?;
    }
    setup.tenants.notifier().reload(&mut store, setup.tenant_id)?;
    Ok(())
}

fn unsubscribe_all(setup: &Setup) -> BenchResult<()> {
    let mut store = setup.store.lock().map_err(|_| "poisoned")?;
    for subscription in store.change_subscriptions(setup.tenant_id)? {
        store.delete_change_subscription(setup.tenant_id, subscription.subscription_id, &[])?;
    }
    setup.tenants.notifier().reload(&mut store, setup.tenant_id)?;
    Ok(())
}

fn update(setup: &Setup, user: Uuid, round: usize) -> BenchResult<()> {
    let runtime = setup
        .tenants
        .get(setup.tenant_id)
        .map_err(|error| error.to_string())?;
    runtime
        .execute(
            &setup.store,
            Command::UpdateUser {
                user_id: user,
                changes: UserChanges {
                    display_name: Some(format!("User {round}")),
                    ..UserChanges::default()
                },
            },
            &Caller::background(setup.tenant_id),
        )
        .map_err(|error| error.to_string())?;
    Ok(())
}

/// Sequential writes of users `from..from + count`; their figures.
fn writes(setup: &Setup, from: usize, count: usize, round: usize) -> BenchResult<Figures> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for index in from..from + count {
        let began = Instant::now();
        update(setup, setup.users[index % setup.users.len()], round)?;
        latencies.push(began.elapsed());
    }
    Ok(Figures::of(latencies, started.elapsed(), "write"))
}

/// Counts the notifications (`value` entries) a receiver got, reading each request once.
#[derive(Default)]
struct NotificationCount {
    requests: usize,
    notifications: usize,
}

impl NotificationCount {
    fn update(&mut self, receiver: &Receiver) -> usize {
        let mut added = 0;
        self.requests = receiver.visit_from(self.requests, |request| {
            let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap_or_default();
            added += body["value"].as_array().map_or(0, Vec::len);
        });
        self.notifications += added;
        self.notifications
    }
}

/// CPU time (user + system) so far of this process's threads: the delivery worker's thread
/// (`licensd-delivery`) and all of them, from `/proc/self/task/*/stat` (zero where unreadable).
fn cpu_times() -> (Duration, Duration) {
    let ticks = |stat: &str| -> u64 {
        // The fields after the command name (which is in parentheses and may hold spaces).
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        fields.get(11).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|t| t.parse::<u64>().ok()).unwrap_or(0)
    };
    let (mut worker, mut all) = (0u64, 0u64);
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let used = ticks(&stat);
            all += used;
            // A thread's name is cut to 15 bytes there.
            if name.trim() == "licensd-deliver" {
                worker += used;
            }
        }
    }
    // Clock ticks of 10 ms (USER_HZ = 100 on Linux).
    (
        Duration::from_millis(worker * 10),
        Duration::from_millis(all * 10),
    )
}

/// The delivery worker's holds of SQLite's write gate since the last reset, one line.
fn gate_report() -> String {
    use std::sync::atomic::Ordering;
    licensd_delivery::GATE
        .kinds()
        .iter()
        .map(|(name, counters)| {
            format!(
                "{name} {} holds, {:.1} ms in all, longest {:.2} ms",
                counters.holds.load(Ordering::Relaxed),
                counters.total_micros.load(Ordering::Relaxed) as f64 / 1_000.0,
                counters.longest_micros.load(Ordering::Relaxed) as f64 / 1_000.0
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() -> BenchResult<()> {
    if !std::env::args().any(|argument| argument == "--bench") {
        return Ok(());
    }
    let writes_count: usize = env_or("LICENSD_BENCH_WRITES", 500);
    let users: usize = env_or("LICENSD_BENCH_USERS", 100_000);
    let directory = tempfile::tempdir()?;
    println!("notifications benchmark; load average before: {}", load_average());

    // 1 and 2: a small tenant, every user evaluated first.
    let database = BenchDatabase::from_environment(directory.path(), "bench_notify")?;
    println!(
        "database: {}",
        if database.is_postgres() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    );
    let small = setup(&database, 5_000)?;
    let runtime = small
        .tenants
        .get(small.tenant_id)
        .map_err(|error| error.to_string())?;
    while runtime
        .process_step(&small.store, 5_000)
        .map_err(|error| error.to_string())?
        .remaining_users
        > 0
    {}

    let reference = writes(&small, 0, writes_count, 1)?;
    let receiver = Receiver::start();
    subscribe(&small, &receiver, &["users".to_string()])?;
    let mut latencies = Vec::with_capacity(writes_count);
    let started = Instant::now();
    for index in 0..writes_count {
        let seen = receiver.received().len();
        let began = Instant::now();
        update(&small, small.users[index], 2)?;
        let received = receiver.wait_for(seen + 1, Duration::from_secs(10));
        assert!(received.len() > seen, "a notification did not arrive");
        latencies.push(began.elapsed());
    }
    let notified = Figures::of(latencies, started.elapsed(), "notification");
    println!(
        "1. change -> notification received (one subscriber on users), {writes_count} sequential updates:"
    );
    println!("   write alone (reference)      {reference}");
    println!("   write -> notification        {notified}");
    unsubscribe_all(&small)?;

    // 2. 1,000 subscribers.
    let none = writes(&small, 0, writes_count, 3)?;
    let others: Vec<String> = small.users[small.users.len() - 1_000..]
        .iter()
        .map(|user| format!("users/{user}"))
        .collect();
    let silent = Receiver::start();
    subscribe(&small, &silent, &others)?;
    let indexed = writes(&small, 0, writes_count, 4)?;
    unsubscribe_all(&small)?;
    let none_again = writes(&small, 0, writes_count, 5)?;
    let fan_out_receiver = Receiver::start();
    let everyone: Vec<String> = (0..1_000).map(|_| "users".to_string()).collect();
    subscribe(&small, &fan_out_receiver, &everyone)?;
    licensd_delivery::GATE.reset();
    let (worker_cpu_before, all_cpu_before) = cpu_times();
    let fan_out_started = Instant::now();
    let fan_out = writes(&small, 0, writes_count, 6)?;
    let writes_took = fan_out_started.elapsed();
    let (worker_cpu_after, all_cpu_after) = cpu_times();
    let gate_during_writes = gate_report();
    // The worker fans the writes out in the background: wait until every notification is in.
    let expected = writes_count * 1_000;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut counted = NotificationCount::default();
    let fanned_out = loop {
        let count = counted.update(&fan_out_receiver);
        if count >= expected {
            break fan_out_started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of {expected} fan-out notifications arrived"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let gate_until_delivered = gate_report();
    unsubscribe_all(&small)?;
    println!("2. sequential writes with 1,000 subscribers on the tenant:");
    println!("   no subscriber (reference)    {none}");
    println!("   1,000 users/{{id}} (others)    {indexed}");
    println!("   no subscriber (again)        {none_again}");
    println!("   1,000 on users (fan-out)     {fan_out}");
    println!(
        "   fan-out: {} notifications ({writes_count} writes x 1,000 subscribers) received {:.2} s after the first write ({:.0} notifications/s)",
        writes_count * 1_000,
        fanned_out.as_secs_f64(),
        (writes_count * 1_000) as f64 / fanned_out.as_secs_f64()
    );
    println!(
        "   slowdown users/{{id}}: {:+.1} % (against the mean of both references); fan-out: {:+.1} %",
        (indexed.p50.as_secs_f64() / ((none.p50.as_secs_f64() + none_again.p50.as_secs_f64()) / 2.0) - 1.0)
            * 100.0,
        (fan_out.p50.as_secs_f64() / ((none.p50.as_secs_f64() + none_again.p50.as_secs_f64()) / 2.0) - 1.0)
            * 100.0,
    );
    println!(
        "   during the fan-out writes ({:.0} ms): delivery worker CPU {:.0} ms, whole process CPU {:.0} ms",
        writes_took.as_secs_f64() * 1_000.0,
        worker_cpu_after.saturating_sub(worker_cpu_before).as_secs_f64() * 1_000.0,
        all_cpu_after.saturating_sub(all_cpu_before).as_secs_f64() * 1_000.0
    );
    println!("   write gate held by the worker during the writes: {gate_during_writes}");
    println!("   write gate held by the worker until all delivered: {gate_until_delivered}");
    drop(small);

    // 3. Reprocess: every user queued, processed in batches, with and without a subscriber.
    let process = |with_subscriber: bool| -> BenchResult<(usize, Duration, Duration, usize)> {
        let own_directory = tempfile::tempdir()?;
        let database = BenchDatabase::from_environment(own_directory.path(), "bench_notify_reprocess")?;
        let setup = setup(&database, users)?;
        let receiver = Receiver::start();
        if with_subscriber {
            subscribe(&setup, &receiver, &["users".to_string()])?;
        }
        let runtime = setup
            .tenants
            .get(setup.tenant_id)
            .map_err(|error| error.to_string())?;
        let queued = runtime
            .read(|engine| engine.queued_users())
            .map_err(|error| error.to_string())?;
        let started = Instant::now();
        let mut changed_users = 0;
        loop {
            let step = runtime
                .process_step(&setup.store, 10_000)
                .map_err(|error| error.to_string())?;
            changed_users += step.evaluated_users;
            if step.remaining_users == 0 {
                break;
            }
        }
        let processed = started.elapsed();
        let mut notifications = 0;
        if with_subscriber {
            // Every delivery carries up to 1,000 notifications: count the entries.
            let deadline = Instant::now() + Duration::from_secs(600);
            let mut last_count = 0;
            let mut counted = NotificationCount::default();
            loop {
                notifications = counted.update(&receiver);
                let pending = {
                    let mut store = setup.store.lock().map_err(|_| "poisoned")?;
                    store.pending_deliveries()? + store.pending_change_events()?
                };
                if pending == 0 && counted.requests == last_count {
                    break;
                }
                last_count = counted.requests;
                assert!(Instant::now() < deadline, "deliveries did not finish");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = changed_users;
        let until_last = receiver
            .received()
            .iter()
            .map(|request| request.at)
            .max()
            .map_or(processed, |last| last.saturating_duration_since(started));
        database.drop_schema()?;
        Ok((queued, processed, until_last, notifications))
    };
    let (queued, reference_processing, _, _) = process(false)?;
    let (_, processing, until_last, notifications) = process(true)?;
    println!("3. reprocess of {queued} queued users ({users} users):");
    println!(
        "   processing, no subscriber (reference): {:.2} s ({:.0} users/s)",
        reference_processing.as_secs_f64(),
        queued as f64 / reference_processing.as_secs_f64()
    );
    println!(
        "   processing with one subscriber:        {:.2} s; last notification after {:.2} s",
        processing.as_secs_f64(),
        until_last.as_secs_f64()
    );
    println!(
        "   {notifications} notifications received: {:.0} notifications/s (start of processing to the last received)",
        notifications as f64 / until_last.as_secs_f64()
    );
    println!("load average after: {}", load_average());
    Ok(())
}
