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
    AttemptResult, AuditQuery, ChangeEventEntry, ChangeSubscription, EventDelivery, ExpansionLimits,
    ExpansionStep, Store, WriteBatch, OWNER_GRAPH_SUBSCRIPTION,
};
use support::TestDatabase;

on_both_backends!(
    a_change_event_is_expanded_once_into_the_outbox,
    two_connections_never_expand_the_same_event,
    a_range_is_expanded_in_chunks_and_a_restart_goes_on_from_its_cursor,
    a_range_stops_at_its_bytes_of_changes_but_holds_at_least_one_event,
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

/// Ranges of at most `events` events (whatever their size), chunks of `subscriptions`.
fn limits(events: usize, subscriptions: usize) -> ExpansionLimits {
    ExpansionLimits {
        events,
        change_bytes: usize::MAX,
        subscriptions,
    }
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
        .expand_change_events(&limits(10, 100), &mut |tenant_id, subscriptions, events| {
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
        .expand_change_events(&limits(10, 100), &mut |_, _, _| panic!("no event is left"))
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
                        .expand_change_events(&limits(3, 100), &mut |_, subscriptions, events| {
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

fn a_range_is_expanded_in_chunks_and_a_restart_goes_on_from_its_cursor(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = tenant(&mut store, "Chunked");
    // Five subscriptions, two created at the same millisecond (the cursor orders by id then).
    let subscribed: Vec<ChangeSubscription> = [10, 20, 20, 30, 40]
        .iter()
        .enumerate()
        .map(|(index, at)| subscription(&format!("http://127.0.0.1:9/{index}"), *at))
        .collect();
    for stored in &subscribed {
        store
            .create_change_subscription(tenant_id, stored, &[])
            .expect("subscribe");
    }
    write_event(&mut store, tenant_id, 100, b"one");
    write_event(&mut store, tenant_id, 101, b"two");
    let mut given: Vec<Uuid> = Vec::new();
    let mut fan_out =
        |_: Uuid, subscriptions: &[ChangeSubscription], events: &[licensd_store::ChangeEvent]| {
            assert_eq!(events.len(), 2, "every chunk sees the whole range");
            given.extend(
                subscriptions
                    .iter()
                    .map(|subscription| subscription.subscription_id),
            );
            deliveries_of(subscriptions, events)
        };
    // The range is fixed and its first chunk of two subscriptions expanded, committed with the
    // range's cursor: the events still count as pending (not every subscription has its
    // delivery) and are kept.
    assert_eq!(
        store
            .expand_change_events_step(&limits(10, 2), &mut fan_out)
            .expect("fix and first chunk"),
        ExpansionStep::Chunk {
            fixed_events: 2,
            subscriptions: 2,
            deliveries: 2,
            finished: false
        }
    );
    assert_eq!(store.pending_change_events().expect("events"), 2);
    assert_eq!(store.pending_change_expansions().expect("ranges"), 1);
    assert_eq!(store.pending_deliveries().expect("pending"), 2);
    // Every delivery of the first chunk is settled: the events stay (the range reaches them).
    let claimed = store
        .claim_deliveries("worker", 10, std::time::Duration::from_secs(30))
        .expect("claim");
    assert_eq!(claimed.len(), 2);
    let delivered = AttemptResult {
        status_code: Some(200),
        error: None,
    };
    for delivery in &claimed {
        assert!(store
            .complete_delivery(delivery.delivery_id, "worker", &delivered)
            .expect("complete"));
    }
    assert_eq!(store.prune_change_events().expect("prune"), 0);
    assert_eq!(store.stored_change_events().expect("stored"), 2);
    // The worker dies here; another connection goes on from the cursor.
    drop(store);
    let mut store = database.open();
    assert_eq!(
        store
            .expand_change_events(&limits(10, 2), &mut fan_out)
            .expect("the rest"),
        0,
        "no event was waiting to be fixed"
    );
    assert_eq!(store.pending_change_expansions().expect("ranges"), 0);
    assert_eq!(store.pending_change_events().expect("events"), 0);
    // Each subscription was given the range exactly once, in the cursor's order.
    let mut expected = subscribed.clone();
    expected.sort_by_key(|subscription| (subscription.created_at, subscription.subscription_id));
    assert_eq!(
        given,
        expected
            .iter()
            .map(|subscription| subscription.subscription_id)
            .collect::<Vec<_>>()
    );
    let claimed = store
        .claim_deliveries("worker", 10, std::time::Duration::from_secs(30))
        .expect("claim the rest");
    let mut owners: Vec<Uuid> = claimed.iter().map(|delivery| delivery.owner_id).collect();
    owners.extend(
        store
            .deliveries(tenant_id, None, 100)
            .expect("deliveries")
            .iter()
            .filter(|record| record.status == licensd_store::DeliveryStatus::Delivered)
            .map(|record| record.owner_id),
    );
    owners.sort();
    let mut all: Vec<Uuid> = subscribed
        .iter()
        .map(|subscription| subscription.subscription_id)
        .collect();
    all.sort();
    assert_eq!(
        owners, all,
        "one delivery per subscription, none lost, none twice"
    );
    // Once the last delivery is settled, nothing reaches the events any more.
    for delivery in &claimed {
        assert!(store
            .complete_delivery(delivery.delivery_id, "worker", &delivered)
            .expect("complete"));
    }
    assert_eq!(store.prune_change_events().expect("prune"), 2);
}

fn a_range_stops_at_its_bytes_of_changes_but_holds_at_least_one_event(database: TestDatabase) {
    let mut store = database.open();
    let tenant_id = tenant(&mut store, "Sized");
    store
        .create_change_subscription(tenant_id, &subscription("http://127.0.0.1:9/a", 0), &[])
        .expect("subscribe");
    write_event(&mut store, tenant_id, 1, &[0; 40]);
    write_event(&mut store, tenant_id, 2, &[1; 10]);
    write_event(&mut store, tenant_id, 3, &[2; 10]);
    write_event(&mut store, tenant_id, 4, &[3; 10]);
    let sized = ExpansionLimits {
        events: 100,
        change_bytes: 25,
        subscriptions: 100,
    };
    let mut ranges: Vec<Vec<u8>> = Vec::new();
    let mut fan_out =
        |_: Uuid, subscriptions: &[ChangeSubscription], events: &[licensd_store::ChangeEvent]| {
            ranges.push(events.iter().map(|event| event.changes[0]).collect());
            deliveries_of(subscriptions, events)
        };
    assert_eq!(
        store.expand_change_events(&sized, &mut fan_out).expect("expand"),
        4
    );
    // 40 bytes alone (more than 25, but a range holds one event at least), then 10 + 10, then 10.
    assert_eq!(ranges, vec![vec![0], vec![1, 2], vec![3]]);
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
