//! The delivery worker against a real HTTP receiver on loopback, on both databases: rows
//! written with a change arrive (body and headers as written) and are recorded delivered; a
//! failing endpoint gets retries with growing delays and recovers; a link-local target is
//! refused without a request.

// Test code: a failed assumption is a failed run, so unwrap/expect/panic are fine here (the
// workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod receiver;
#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use licensd_delivery::{DeliveryObserver, DeliveryOutcome, DeliveryWorker, WorkerSettings};
use licensd_engine::{TenantSettings, Uuid};
use licensd_runtime::config::NotificationSettings;
use licensd_runtime::tenants::ProcessingSignal;
use licensd_store::{ClaimedDelivery, DeliveryStatus, OutboxEntry, Store, WriteBatch};
use receiver::Receiver;
use support::TestDatabase;

fn on_both_backends(test: &str, run: impl Fn(&TestDatabase)) {
    run(&TestDatabase::sqlite());
    if let Some(database) = TestDatabase::postgres(test) {
        run(&database);
    }
}

fn tenant(store: &mut Store) -> Uuid {
    let tenant_id = Uuid::from_u128(0x5151);
    store
        .create_tenant(&TenantSettings::new(tenant_id, "Contoso"))
        .expect("create tenant");
    tenant_id
}

fn entry(url: &str, owner_id: Uuid, body: &str) -> OutboxEntry {
    OutboxEntry {
        owner_kind: "test".to_string(),
        owner_id,
        url: url.to_string(),
        headers: vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Test".to_string(), "yes".to_string()),
        ],
        body: body.as_bytes().to_vec(),
        items: 1,
    }
}

/// Records the outcomes it is told of.
#[derive(Default)]
struct Outcomes(std::sync::Mutex<Vec<DeliveryOutcome>>);

impl DeliveryObserver for Outcomes {
    fn settled(&self, _store: &mut Store, _delivery: &ClaimedDelivery, outcome: &DeliveryOutcome) {
        self.0.lock().expect("outcomes").push(outcome.clone());
    }
}

fn worker(
    database: &TestDatabase,
    settings: NotificationSettings,
    signal: Arc<ProcessingSignal>,
    observer: Arc<Outcomes>,
) -> DeliveryWorker {
    DeliveryWorker::start(
        WorkerSettings {
            database_url: database.url.clone(),
            worker_id: "test-worker".to_string(),
            notifications: settings,
            changes: None,
            write_gate: None,
        },
        signal,
        observer,
    )
    .expect("start the worker")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_delivery_written_with_a_change_arrives_and_is_recorded_delivered() {
    on_both_backends("delivered", |database| {
        let receiver = Receiver::start();
        let mut store = database.open();
        let tenant_id = tenant(&mut store);
        let owner = Uuid::from_u128(1);
        let batch = WriteBatch {
            outbox: vec![entry(&receiver.url("/hook"), owner, r#"{"value":[1]}"#)],
            ..WriteBatch::default()
        };
        store.write(tenant_id, &batch).expect("write with an outbox row");
        let signal = Arc::new(ProcessingSignal::default());
        let outcomes = Arc::new(Outcomes::default());
        let running = worker(
            database,
            NotificationSettings::default(),
            signal.clone(),
            outcomes.clone(),
        );
        signal.notify();
        let received = receiver.wait_for(1, Duration::from_secs(20));
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].method, "POST");
        assert_eq!(received[0].target, "/hook");
        assert_eq!(received[0].body_text(), r#"{"value":[1]}"#);
        assert_eq!(received[0].header("x-test"), Some("yes"));
        assert_eq!(received[0].header("content-type"), Some("application/json"));
        wait_until("the delivery is recorded", || {
            store
                .deliveries(tenant_id, Some(owner), 10)
                .expect("deliveries")
                .first()
                .is_some_and(|record| record.status == DeliveryStatus::Delivered)
        });
        let record = &store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0];
        assert_eq!(record.attempts, 1);
        assert_eq!(record.last_status, Some(202));
        running.stop();
        assert_eq!(receiver.received().len(), 1, "delivered once");
        assert!(matches!(
            outcomes.0.lock().expect("outcomes")[0],
            DeliveryOutcome::Delivered { status: 202 }
        ));
    });
}

#[test]
fn a_failing_endpoint_gets_retries_with_backoff_and_recovers() {
    on_both_backends("retries", |database| {
        // 503 twice, then accepted.
        let receiver = Receiver::scripted(|_, index| if index < 2 { 503 } else { 202 });
        let mut store = database.open();
        let tenant_id = tenant(&mut store);
        let owner = Uuid::from_u128(2);
        store
            .enqueue_deliveries(tenant_id, &[entry(&receiver.url("/flaky"), owner, "{}")])
            .expect("enqueue");
        let settings = NotificationSettings {
            retry_base: Duration::from_millis(200),
            ..NotificationSettings::default()
        };
        let signal = Arc::new(ProcessingSignal::default());
        let outcomes = Arc::new(Outcomes::default());
        let running = worker(database, settings, signal.clone(), outcomes.clone());
        signal.notify();
        let received = receiver.wait_for(3, Duration::from_secs(20));
        assert_eq!(received.len(), 3);
        // The waits double: at least 200 ms, then at least 400 ms.
        let first_gap = received[1].at - received[0].at;
        let second_gap = received[2].at - received[1].at;
        assert!(first_gap >= Duration::from_millis(190), "{first_gap:?}");
        assert!(second_gap >= Duration::from_millis(390), "{second_gap:?}");
        wait_until("the delivery is recorded", || {
            store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0].status
                == DeliveryStatus::Delivered
        });
        let record = &store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0];
        assert_eq!(record.attempts, 3);
        running.stop();
        let outcomes = outcomes.0.lock().expect("outcomes").clone();
        assert!(matches!(
            outcomes[0],
            DeliveryOutcome::Retrying {
                status: Some(503),
                ..
            }
        ));
        assert!(matches!(outcomes[2], DeliveryOutcome::Delivered { .. }));
    });
}

#[test]
fn a_delivery_is_abandoned_after_its_last_attempt() {
    on_both_backends("abandoned", |database| {
        let receiver = Receiver::scripted(|_, _| 500);
        let mut store = database.open();
        let tenant_id = tenant(&mut store);
        let owner = Uuid::from_u128(3);
        store
            .enqueue_deliveries(tenant_id, &[entry(&receiver.url("/down"), owner, "{}")])
            .expect("enqueue");
        let settings = NotificationSettings {
            retry_base: Duration::from_millis(20),
            max_attempts: 3,
            ..NotificationSettings::default()
        };
        let signal = Arc::new(ProcessingSignal::default());
        let outcomes = Arc::new(Outcomes::default());
        let running = worker(database, settings, signal.clone(), outcomes.clone());
        signal.notify();
        wait_until("the delivery is abandoned", || {
            store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0].status
                == DeliveryStatus::Abandoned
        });
        running.stop();
        assert_eq!(receiver.received().len(), 3);
        let record = &store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0];
        assert_eq!(record.attempts, 3);
        assert_eq!(record.last_status, Some(500));
    });
}

#[test]
fn link_local_targets_are_refused_without_a_request_unless_allowed() {
    on_both_backends("ssrf", |database| {
        let mut store = database.open();
        let tenant_id = tenant(&mut store);
        let owner = Uuid::from_u128(4);
        store
            .enqueue_deliveries(
                tenant_id,
                &[entry("http://169.254.169.254/latest/meta-data/", owner, "{}")],
            )
            .expect("enqueue");
        let signal = Arc::new(ProcessingSignal::default());
        let outcomes = Arc::new(Outcomes::default());
        let running = worker(
            database,
            NotificationSettings::default(),
            signal.clone(),
            outcomes.clone(),
        );
        signal.notify();
        wait_until("the delivery is abandoned", || {
            store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0].status
                == DeliveryStatus::Abandoned
        });
        running.stop();
        let record = &store.deliveries(tenant_id, Some(owner), 10).expect("deliveries")[0];
        assert_eq!(record.attempts, 1);
        assert_eq!(record.last_status, None);
        assert!(
            record
                .last_error
                .as_deref()
                .is_some_and(|error| error.contains("link-local")),
            "{:?}",
            record.last_error
        );
    });
}

#[test]
fn a_name_resolving_to_a_refused_address_is_refused_when_resolved() {
    // `localhost` resolves to loopback, which is allowed; a name that resolves to link-local is
    // refused by the resolver itself. /etc/hosts is not ours to change, so the guard's
    // resolver is checked directly through the handshake on an IP literal and on a name.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let policy = licensd_delivery::TargetPolicy::default();
    let client = licensd_delivery::guarded_client(policy).expect("client");
    let refused = runtime.block_on(licensd_delivery::validate_endpoint(
        &client,
        &policy,
        "http://[fe80::1]:9/hook",
        "token",
    ));
    assert!(
        matches!(refused, Err(licensd_delivery::HandshakeError::Refused(_))),
        "{refused:?}"
    );
    let receiver = Receiver::scripted(|_, _| 200);
    let accepted = runtime.block_on(licensd_delivery::validate_endpoint(
        &client,
        &policy,
        &format!("http://localhost:{}/hook", receiver.address.port()),
        "a token/with+special&chars",
    ));
    assert!(accepted.is_ok(), "{accepted:?}");
    let received = receiver.received();
    assert_eq!(
        received[0].validation_token().as_deref(),
        Some("a token/with+special&chars")
    );
    assert_eq!(received[0].header("content-type"), Some("text/plain"));
}
