//! Change notifications in the store, on both backends: a write's change event is written in
//! its transaction and expanded once into the outbox (compact deliveries naming the events, no
//! body, inserted as the event is marked expanded; the event deleted once no pending delivery
//! covers it; on PostgreSQL two expanding connections never take the same event), and a
//! change subscription's audit record is written in the subscription's own transaction (a
//! record that cannot be written leaves no subscription behind).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use licensd_engine::{TenantSettings, Uuid};
use licensd_store::{
    AttemptResult, AuditQuery, ChangeEventEntry, ChangeSubscription, EventDelivery, Store, WriteBatch,
    OWNER_GRAPH_SUBSCRIPTION,
};
use support::TestDatabase;

on_both_backends!(
    a_change_event_is_expanded_once_into_the_outbox,
    two_connections_never_expand_the_same_event,
    a_subscription_and_its_audit_record_are_written_together,
);

fn subscription(url: &str, at: i64) -> ChangeSubscription {
    ChangeSubscription {
        subscription_id: Uuid::new_v4(),
        resource: "users".to_string(),
        change_types: "updated".to_string(),
        notification_url: url.to_string(),
        lifecycle_notification_url: None,
        client_state: None,
        expires_at: at + 3_600_000,
        created_at: at,
        removed_at: None,
    }
}

fn audit_record(target: Uuid) -> licensd_store::AuditRecord {
    licensd_store::AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: 1,
        category: "DirectoryManagement".to_string(),
        activity: "Add change notification subscription".to_string(),
        operation_type: "Add".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: None,
        actor_name: "admin".to_string(),
        actor_role: "GlobalAdministrator".to_string(),
        target_type: "Subscription".to_string(),
        target_id: Some(target),
        target_name: "users".to_string(),
        modified_properties: Vec::new(),
        request_id: String::new(),
    }
}

fn tenant(store: &mut Store, name: &str) -> Uuid {
    let settings = TenantSettings::new(Uuid::new_v4(), name);
    store.create_tenant(&settings).expect("tenant");
    settings.tenant_id
}

fn write_event(store: &mut Store, tenant_id: Uuid, at: i64, changes: &[u8]) {
    store
        .write(
            tenant_id,
            &WriteBatch {
                change_events: vec![ChangeEventEntry {
                    at,
                    changes: changes.to_vec(),
                }],
                ..WriteBatch::default()
            },
        )
        .expect("write");
}

/// One delivery per subscription, of every event.
fn deliveries_of(
    subscriptions: &[ChangeSubscription],
    events: &[licensd_store::ChangeEvent],
) -> Vec<EventDelivery> {
    subscriptions
        .iter()
        .map(|subscription| EventDelivery {
            owner_kind: OWNER_GRAPH_SUBSCRIPTION.to_string(),
            owner_id: subscription.subscription_id,
            url: subscription.notification_url.clone(),
            headers: Vec::new(),
            first_item: 0,
            items: events.len() as u32,
        })
        .collect()
}

fn a_change_event_is_expanded_once_into_the_outbox(database: TestDatabase) {
    let mut store = database.open();
    let first = tenant(&mut store, "First");
    let second = tenant(&mut store, "Second");
    let subscribed: Vec<ChangeSubscription> = (0..3)
        .map(|index| subscription(&format!("http://127.0.0.1:9/{index}"), 10))
        .collect();
    for stored in &subscribed {
        store
            .create_change_subscription(first, stored, &[])
            .expect("subscribe");
    }
    write_event(&mut store, first, 100, b"one");
    write_event(&mut store, first, 101, b"two");
    write_event(&mut store, second, 102, b"other");
    assert_eq!(store.pending_change_events().expect("count"), 3);
    // Per tenant: its subscriptions' count, its events' changes and times.
    type Seen = (Uuid, usize, Vec<Vec<u8>>, Vec<i64>);
    let mut seen: Vec<Seen> = Vec::new();
    let expanded = store
        .expand_change_events(10, &mut |tenant_id, subscriptions, events| {
            seen.push((
                tenant_id,
                subscriptions.len(),
                events.iter().map(|event| event.changes.clone()).collect(),
                events.iter().map(|event| event.at).collect(),
            ));
            deliveries_of(subscriptions, events)
        })
        .expect("expand");
    assert_eq!(expanded, 3);
    seen.sort_by_key(|(tenant_id, ..)| *tenant_id != first);
    assert_eq!(
        seen,
        vec![
            (first, 3, vec![b"one".to_vec(), b"two".to_vec()], vec![100, 101]),
            (second, 0, vec![b"other".to_vec()], vec![102]),
        ]
    );
    assert_eq!(store.pending_change_events().expect("count"), 0);
    // The deliveries are ordinary outbox rows: pending, then claimed like any other; they carry
    // no body but the range of their tenant's events, which stay while a delivery covers them.
    assert_eq!(store.pending_deliveries().expect("pending"), 3);
    let claimed = store
        .claim_deliveries("worker", 10, std::time::Duration::from_secs(30))
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let events = claimed[0].events.expect("a range of events");
    assert!(claimed
        .iter()
        .all(|delivery| delivery.body.is_empty() && delivery.items == 2 && delivery.events == Some(events)));
    assert_eq!(events.first_item, 0);
    let covered = store
        .change_events_between(first, events.first_event, events.last_event)
        .expect("events");
    assert_eq!(
        covered
            .iter()
            .map(|event| event.changes.clone())
            .collect::<Vec<_>>(),
        vec![b"one".to_vec(), b"two".to_vec()]
    );
    // Nothing is expanded twice.
    let again = store
        .expand_change_events(10, &mut |_, _, _| panic!("no event is left"))
        .expect("expand again");
    assert_eq!(again, 0);
    // Once every delivery is settled, the events are deleted (those after the oldest pending
    // delivery's range stay until then).
    assert_eq!(store.prune_change_events().expect("prune"), 0);
    assert_eq!(store.stored_change_events().expect("stored"), 3);
    let delivered = AttemptResult {
        status_code: Some(200),
        error: None,
    };
    for delivery in &claimed[..2] {
        assert!(store
            .complete_delivery(delivery.delivery_id, "worker", &delivered)
            .expect("complete"));
    }
    assert_eq!(
        store.prune_change_events().expect("prune"),
        0,
        "one delivery is pending"
    );
    assert!(store
        .abandon_delivery(claimed[2].delivery_id, "worker", &delivered)
        .expect("abandon"));
    assert_eq!(store.prune_change_events().expect("prune"), 3);
    assert_eq!(store.stored_change_events().expect("stored"), 0);
}

fn two_connections_never_expand_the_same_event(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = tenant(&mut store, "Shared");
    store
        .create_change_subscription(tenant_id, &subscription("http://127.0.0.1:9/a", 0), &[])
        .expect("subscribe");
    for index in 0..40u8 {
        write_event(&mut store, tenant_id, 1, &[index]);
    }
    let url = database.url.clone();
    let workers: Vec<std::thread::JoinHandle<Vec<u8>>> = (0..2)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&url).expect("open");
                let mut mine = Vec::new();
                loop {
                    let mut taken = Vec::new();
                    let expanded = store
                        .expand_change_events(3, &mut |_, subscriptions, events| {
                            taken.extend(events.iter().flat_map(|event| event.changes.clone()));
                            deliveries_of(subscriptions, events)
                        })
                        .expect("expand");
                    mine.extend(taken);
                    if expanded == 0 {
                        break mine;
                    }
                }
            })
        })
        .collect();
    let mut all: Vec<u8> = workers
        .into_iter()
        .flat_map(|worker| worker.join().expect("worker"))
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..40u8).collect::<Vec<u8>>(),
        "each event expanded exactly once"
    );
    assert_eq!(store.pending_change_events().expect("count"), 0);
}

fn a_subscription_and_its_audit_record_are_written_together(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = tenant(&mut store, "Audited");
    let audit_count = |store: &mut Store| {
        store
            .audit_records(
                tenant_id,
                &AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                },
            )
            .expect("audit")
            .len()
    };
    let kept = subscription("http://127.0.0.1:9/kept", 0);
    let record = audit_record(kept.subscription_id);
    store
        .create_change_subscription(tenant_id, &kept, std::slice::from_ref(&record))
        .expect("subscribe");
    assert_eq!(audit_count(&mut store), 1);
    // An audit record that cannot be written (its id is taken) leaves no subscription.
    let refused = subscription("http://127.0.0.1:9/refused", 0);
    assert!(store
        .create_change_subscription(tenant_id, &refused, std::slice::from_ref(&record))
        .is_err());
    let stored = store.change_subscriptions(tenant_id).expect("read");
    assert_eq!(stored, vec![kept.clone()]);
    // Renewal and deletion likewise: nothing changes when their record cannot be written.
    assert!(store
        .renew_change_subscription(tenant_id, kept.subscription_id, 99, std::slice::from_ref(&record))
        .is_err());
    assert!(store
        .delete_change_subscription(tenant_id, kept.subscription_id, std::slice::from_ref(&record))
        .is_err());
    assert_eq!(
        store.change_subscriptions(tenant_id).expect("read"),
        vec![kept.clone()]
    );
    assert_eq!(audit_count(&mut store), 1);
    assert!(store
        .renew_change_subscription(
            tenant_id,
            kept.subscription_id,
            99,
            &[audit_record(kept.subscription_id)]
        )
        .expect("renew"));
    assert!(store
        .delete_change_subscription(
            tenant_id,
            kept.subscription_id,
            &[audit_record(kept.subscription_id)]
        )
        .expect("delete"));
    assert_eq!(audit_count(&mut store), 3);
    // No change, no record.
    assert!(!store
        .delete_change_subscription(
            tenant_id,
            kept.subscription_id,
            &[audit_record(kept.subscription_id)]
        )
        .expect("delete again"));
    assert_eq!(audit_count(&mut store), 3);
}
