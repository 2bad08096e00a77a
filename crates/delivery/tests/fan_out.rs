//! Change notifications fanned out at delivery time, through the runtime and the worker, with a
//! real HTTP receiver on loopback, on both databases: a write records one change event in its
//! own transaction however many subscriptions match (no outbox row yet); the worker, started
//! only afterwards (as after a `kill -9` between the write and the delivery), expands it — every
//! matching subscription receives every change, each subscription's deliveries its own outbox
//! rows (recorded delivered), and a subscription created after a change does not receive it;
//! a worker that dies between two chunks of an expansion leaves the rest to the next one, which
//! delivers every notification once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod receiver;
#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use licensd_delivery::{DeliveryWorker, NoObserver, WorkerSettings};
use licensd_engine::{Command, NewUser, TenantSettings, UserChanges, Uuid};
use licensd_runtime::access::Caller;
use licensd_runtime::config::NotificationSettings;
use licensd_runtime::notifications::{ChangeNotifier, LifecycleEvent, NotificationRenderer, ObjectChange};
use licensd_runtime::tenants::{SharedStore, Tenants};
use licensd_store::{ChangeSubscription, DeliveryStatus, ExpansionStep, Store};
use receiver::Receiver;
use support::TestDatabase;

/// A body per delivery: `<subscription> <change type> <id>` lines.
struct LineRenderer;

impl NotificationRenderer for LineRenderer {
    fn changes(
        &self,
        _tenant_id: Uuid,
        subscription: &ChangeSubscription,
        changes: &[ObjectChange],
    ) -> Vec<u8> {
        changes
            .iter()
            .map(|change| {
                format!(
                    "{} {} {}\n",
                    subscription.subscription_id,
                    change.change_type.as_str(),
                    change.id
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    fn lifecycle(
        &self,
        _tenant_id: Uuid,
        _subscription: &ChangeSubscription,
        event: LifecycleEvent,
    ) -> Vec<u8> {
        event.as_str().as_bytes().to_vec()
    }
}

fn on_both_backends(test: &str, run: impl Fn(&TestDatabase)) {
    run(&TestDatabase::sqlite());
    if let Some(database) = TestDatabase::postgres(test) {
        run(&database);
    }
}

fn subscription(url: &str, created_at: i64) -> ChangeSubscription {
    ChangeSubscription {
        subscription_id: Uuid::new_v4(),
        resource: "users".to_string(),
        change_types: "created,updated".to_string(),
        notification_url: url.to_string(),
        lifecycle_notification_url: None,
        client_state: None,
        expires_at: created_at + 3_600_000,
        created_at,
        removed_at: None,
    }
}

/// A tenant with `count` subscriptions on `users` (each notified at `/r<index>` of `receiver`)
/// and four users created through the runtime, each recording a change event.
struct Subscribed {
    tenant_id: Uuid,
    store: SharedStore,
    notifier: Arc<ChangeNotifier>,
    subscribed: Vec<ChangeSubscription>,
    users: Vec<Uuid>,
}

fn subscribed_tenant(database: &TestDatabase, receiver: &Receiver, count: usize) -> Subscribed {
    let tenant_id = Uuid::new_v4();
    database
        .open()
        .create_tenant(&TenantSettings::new(tenant_id, "Northwind"))
        .expect("tenant");
    let store: SharedStore = Arc::new(Mutex::new(database.open()));
    let tenants = Arc::new(Tenants::load_all(&store).expect("load"));
    let notifier = tenants.notifier();
    notifier.set_renderer(Arc::new(LineRenderer));
    let now = licensd_runtime::tenants::now().0;
    let subscribed: Vec<ChangeSubscription> = (0..count)
        .map(|index| subscription(&receiver.url(&format!("/r{index}")), now - 1_000))
        .collect();
    {
        let mut locked = store.lock().expect("store");
        for stored in &subscribed {
            locked
                .create_change_subscription(tenant_id, stored, &[])
                .expect("subscribe");
        }
        notifier.reload(&mut locked, tenant_id).expect("reload");
    }
    let runtime = tenants.get(tenant_id).expect("runtime");
    let users: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for (index, user) in users.iter().enumerate() {
        runtime
            .execute(
                &store,
                Command::CreateUser(NewUser::new(*user, &format!("n{index}@northwind.com"))),
                &Caller::background(tenant_id),
            )
            .expect("create");
    }
    Subscribed {
        tenant_id,
        store,
        notifier,
        subscribed,
        users,
    }
}

/// A delivery worker started after a "restart" on the same database and notifier.
fn restarted_worker(
    database: &TestDatabase,
    store: &SharedStore,
    notifier: &Arc<ChangeNotifier>,
) -> DeliveryWorker {
    DeliveryWorker::start(
        WorkerSettings {
            database_url: database.url.clone(),
            worker_id: "restarted".to_string(),
            notifications: NotificationSettings::default(),
            changes: Some(Arc::clone(notifier)),
            write_gate: Some(Arc::clone(store)),
        },
        notifier.delivery_signal(),
        Arc::new(NoObserver),
    )
    .expect("worker")
}

/// Each subscription's endpoint received exactly one `created` line per user, none other.
fn assert_each_received_its_users(
    received: &[receiver::Received],
    subscribed: &[ChangeSubscription],
    users: &[Uuid],
) {
    for (index, stored) in subscribed.iter().enumerate() {
        let mut lines: Vec<String> = received
            .iter()
            .filter(|request| request.target == format!("/r{index}"))
            .flat_map(|request| {
                request
                    .body_text()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        lines.sort();
        let mut expected: Vec<String> = users
            .iter()
            .map(|user| format!("{} created {user}", stored.subscription_id))
            .collect();
        expected.sort();
        assert_eq!(lines, expected);
    }
}

#[test]
fn changes_recorded_once_reach_every_matching_subscription_after_a_restart() {
    on_both_backends("fan_out", |database| {
        let receiver = Receiver::start();
        let tenant_id = Uuid::new_v4();
        {
            let mut store = database.open();
            store
                .create_tenant(&TenantSettings::new(tenant_id, "Contoso"))
                .expect("tenant");
        }
        let store: SharedStore = Arc::new(Mutex::new(database.open()));
        let tenants = Arc::new(Tenants::load_all(&store).expect("load"));
        let notifier = tenants.notifier();
        notifier.set_renderer(Arc::new(LineRenderer));
        let now = licensd_runtime::tenants::now().0;
        let subscribed: Vec<ChangeSubscription> = (0..25)
            .map(|index| subscription(&receiver.url(&format!("/s{index}")), now - 1_000))
            .collect();
        {
            let mut locked = store.lock().expect("store");
            for stored in &subscribed {
                locked
                    .create_change_subscription(tenant_id, stored, &[])
                    .expect("subscribe");
            }
            notifier.reload(&mut locked, tenant_id).expect("reload");
        }
        let runtime = tenants.get(tenant_id).expect("runtime");
        let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for (index, user) in users.iter().enumerate() {
            runtime
                .execute(
                    &store,
                    Command::CreateUser(NewUser::new(*user, &format!("u{index}@contoso.com"))),
                    &Caller::background(tenant_id),
                )
                .expect("create");
        }
        runtime
            .execute(
                &store,
                Command::UpdateUser {
                    user_id: users[0],
                    changes: UserChanges {
                        display_name: Some("Renamed".to_string()),
                        ..UserChanges::default()
                    },
                },
                &Caller::background(tenant_id),
            )
            .expect("update");
        // One event per write, however many subscriptions; no delivery yet.
        {
            let mut locked = store.lock().expect("store");
            assert_eq!(locked.pending_change_events().expect("events"), 4);
            assert_eq!(locked.pending_deliveries().expect("deliveries"), 0);
        }
        // A subscription created after the changes: it must not receive them.
        let late = subscription(&receiver.url("/late"), licensd_runtime::tenants::now().0 + 1);
        {
            let mut locked = store.lock().expect("store");
            locked
                .create_change_subscription(tenant_id, &late, &[])
                .expect("late subscription");
        }

        // The worker starts (as after a restart) and fans the events out.
        let worker = DeliveryWorker::start(
            WorkerSettings {
                database_url: database.url.clone(),
                worker_id: "fan-out".to_string(),
                notifications: NotificationSettings::default(),
                changes: Some(Arc::clone(&notifier)),
                write_gate: Some(Arc::clone(&store)),
            },
            notifier.delivery_signal(),
            Arc::new(NoObserver),
        )
        .expect("worker");
        let expected: Vec<String> = users
            .iter()
            .map(|user| format!("created {user}"))
            .chain(std::iter::once(format!("updated {}", users[0])))
            .collect();
        let lines_per_path = |received: &[receiver::Received]| {
            let mut lines: HashMap<String, Vec<String>> = HashMap::new();
            for request in received {
                for line in request.body_text().lines() {
                    let (_, change) = line.split_once(' ').expect("a line");
                    lines
                        .entry(request.target.clone())
                        .or_default()
                        .push(change.to_string());
                }
            }
            lines
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let lines = lines_per_path(&receiver.received());
            let complete = (0..25).all(|index| {
                lines
                    .get(&format!("/s{index}"))
                    .is_some_and(|got| expected.iter().all(|change| got.contains(change)))
            });
            if complete {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "not every subscription got every change: {lines:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut check: Store = database.open();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while check.pending_deliveries().expect("pending") > 0 {
            assert!(std::time::Instant::now() < deadline, "deliveries still pending");
            std::thread::sleep(Duration::from_millis(20));
        }
        worker.stop();
        assert_eq!(check.pending_change_events().expect("events"), 0);
        for stored in &subscribed {
            let records = check
                .deliveries(tenant_id, Some(stored.subscription_id), 100)
                .expect("deliveries");
            assert!(!records.is_empty());
            assert!(records
                .iter()
                .all(|record| record.status == DeliveryStatus::Delivered));
            assert_eq!(records.iter().map(|record| record.items).sum::<u32>(), 4);
        }
        assert!(
            !lines_per_path(&receiver.received()).contains_key("/late"),
            "a subscription created after the changes received them"
        );
    });
}

/// Rendered at send time: a subscription whose endpoint fails (retried with backoff) does not
/// hold back another subscription's deliveries of the same events; its retry is rendered again
/// from the events, which stay stored while its delivery is pending and are deleted after.
#[test]
fn a_failing_endpoint_does_not_hold_back_another_subscription_and_its_retry_is_rendered_again() {
    on_both_backends("fan_out_failing", |database| {
        let failing_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let receiver = Receiver::scripted({
            let failing_requests = Arc::clone(&failing_requests);
            move |request, _| {
                if request.target == "/failing"
                    && failing_requests.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2
                {
                    500
                } else {
                    200
                }
            }
        });
        let tenant_id = Uuid::new_v4();
        database
            .open()
            .create_tenant(&TenantSettings::new(tenant_id, "Fabrikam"))
            .expect("tenant");
        let store: SharedStore = Arc::new(Mutex::new(database.open()));
        let tenants = Arc::new(Tenants::load_all(&store).expect("load"));
        let notifier = tenants.notifier();
        notifier.set_renderer(Arc::new(LineRenderer));
        let now = licensd_runtime::tenants::now().0;
        let healthy = subscription(&receiver.url("/healthy"), now - 1_000);
        let failing = subscription(&receiver.url("/failing"), now - 1_000);
        {
            let mut locked = store.lock().expect("store");
            for stored in [&healthy, &failing] {
                locked
                    .create_change_subscription(tenant_id, stored, &[])
                    .expect("subscribe");
            }
            notifier.reload(&mut locked, tenant_id).expect("reload");
        }
        let retry_base = Duration::from_millis(2_000);
        let worker = DeliveryWorker::start(
            WorkerSettings {
                database_url: database.url.clone(),
                worker_id: "failing".to_string(),
                notifications: NotificationSettings {
                    retry_base,
                    retry_max: retry_base * 4,
                    max_attempts: 5,
                    ..NotificationSettings::default()
                },
                changes: Some(Arc::clone(&notifier)),
                write_gate: Some(Arc::clone(&store)),
            },
            notifier.delivery_signal(),
            Arc::new(NoObserver),
        )
        .expect("worker");
        let runtime = tenants.get(tenant_id).expect("runtime");
        let users: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let started = std::time::Instant::now();
        for (index, user) in users.iter().enumerate() {
            runtime
                .execute(
                    &store,
                    Command::CreateUser(NewUser::new(*user, &format!("f{index}@fabrikam.com"))),
                    &Caller::background(tenant_id),
                )
                .expect("create");
        }
        let created = |target: &str| {
            let mut lines: Vec<String> = receiver
                .received()
                .iter()
                .filter(|request| request.target == target)
                .flat_map(|request| {
                    request
                        .body_text()
                        .lines()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            lines.sort();
            lines.dedup();
            lines
        };
        let expected = |subscription: &ChangeSubscription| {
            let mut lines: Vec<String> = users
                .iter()
                .map(|user| format!("{} created {user}", subscription.subscription_id))
                .collect();
            lines.sort();
            lines
        };
        // The healthy subscription gets every change well before the failing one's first retry.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while created("/healthy") != expected(&healthy) {
            assert!(std::time::Instant::now() < deadline, "{:?}", created("/healthy"));
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            started.elapsed() < retry_base,
            "the healthy subscription waited for the failing one's backoff: {:?}",
            started.elapsed()
        );
        // While the failing subscription's delivery is pending, its events stay stored.
        let mut check = database.open();
        assert!(check.pending_deliveries().expect("pending") > 0);
        assert!(check.stored_change_events().expect("stored") > 0);
        // Its third attempt succeeds, rendered again from the events: every change.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while check.pending_deliveries().expect("pending") > 0 {
            assert!(std::time::Instant::now() < deadline, "deliveries still pending");
            std::thread::sleep(Duration::from_millis(20));
        }
        worker.stop();
        assert_eq!(created("/failing"), expected(&failing));
        let records = check
            .deliveries(tenant_id, Some(failing.subscription_id), 100)
            .expect("deliveries");
        assert!(records
            .iter()
            .all(|record| record.status == DeliveryStatus::Delivered));
        // Two failed attempts, retried (and rendered again), then delivered.
        assert_eq!(
            records.iter().map(|record| record.attempts).sum::<u32>(),
            records.len() as u32 + 2,
            "{records:?}"
        );
        // Every delivery settled: the events are deleted.
        check.prune_change_events().expect("prune");
        assert_eq!(check.stored_change_events().expect("stored"), 0);
    });
}

/// Expanded but not sent when the process died: the compact deliveries and the events they
/// name are in the database, and a worker started afterwards renders and delivers every change
/// from them, then the events are deleted.
#[test]
fn deliveries_expanded_before_a_restart_are_rendered_from_their_events_after_it() {
    on_both_backends("fan_out_restart", |database| {
        let receiver = Receiver::start();
        let Subscribed {
            store,
            notifier,
            subscribed,
            users,
            ..
        } = subscribed_tenant(database, &receiver, 3);
        // Expanded (as a worker does before it claims), then the process dies.
        {
            let mut locked = store.lock().expect("store");
            assert_eq!(notifier.expand(&mut locked).expect("expand"), 4);
            assert_eq!(locked.pending_change_events().expect("events"), 0);
            assert_eq!(locked.pending_deliveries().expect("deliveries"), 3);
            assert_eq!(locked.stored_change_events().expect("stored"), 4);
        }
        let worker = restarted_worker(database, &store, &notifier);
        let received = receiver.wait_for(3, Duration::from_secs(30));
        let mut check = database.open();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while check.pending_deliveries().expect("pending") > 0 {
            assert!(std::time::Instant::now() < deadline, "deliveries still pending");
            std::thread::sleep(Duration::from_millis(20));
        }
        worker.stop();
        assert_each_received_its_users(&received, &subscribed, &users);
        check.prune_change_events().expect("prune");
        assert_eq!(check.stored_change_events().expect("stored"), 0);
    });
}

#[test]
fn a_restart_in_the_middle_of_a_chunked_expansion_delivers_every_notification_once() {
    on_both_backends("fan_out_chunk_restart", |database| {
        let receiver = Receiver::start();
        let Subscribed {
            tenant_id,
            store,
            notifier,
            subscribed,
            users,
        } = subscribed_tenant(database, &receiver, 5);
        // The range fixed and its first chunk (two of the five subscriptions) expanded, in one
        // transaction as the worker does, then the process dies.
        {
            let mut locked = store.lock().expect("store");
            assert_eq!(
                notifier.expand_step(&mut locked, 2).expect("fix and first chunk"),
                ExpansionStep::Chunk {
                    fixed_events: 4,
                    subscriptions: 2,
                    deliveries: 2,
                    finished: false
                }
            );
            assert_eq!(locked.pending_change_events().expect("events"), 4);
            assert_eq!(locked.pending_change_expansions().expect("ranges"), 1);
            assert_eq!(locked.pending_deliveries().expect("deliveries"), 2);
        }
        let worker = restarted_worker(database, &store, &notifier);
        let received = receiver.wait_for(5, Duration::from_secs(30));
        let mut check = database.open();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while check.pending_deliveries().expect("pending") > 0
            || check.pending_change_expansions().expect("ranges") > 0
        {
            assert!(std::time::Instant::now() < deadline, "deliveries still pending");
            std::thread::sleep(Duration::from_millis(20));
        }
        worker.stop();
        assert_each_received_its_users(&received, &subscribed, &users);
        // One delivery per subscription: the restart neither repeated nor skipped one.
        for stored in &subscribed {
            let records = check
                .deliveries(tenant_id, Some(stored.subscription_id), 10)
                .expect("deliveries");
            assert_eq!(records.len(), 1, "one delivery of the range per subscription");
            assert_eq!(records[0].status, DeliveryStatus::Delivered);
        }
        assert_eq!(receiver.received().len(), 5, "no delivery was sent twice");
        check.prune_change_events().expect("prune");
        assert_eq!(check.stored_change_events().expect("stored"), 0);
    });
}
