//! Alert rules in the store, on both backends: every condition round-trips, rules belong to one
//! tenant, a removal removes, and on PostgreSQL a change is announced to listening instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use licensd_engine::alerts::ErrorSample;
use licensd_engine::alerts::{AlertCondition, ErrorFilter, ReclamationFilter, SeatThreshold};
use licensd_engine::{LicenseErrorKind, TenantSettings, Uuid};
use licensd_store::{
    AlertFormat, AlertRuleRecord, AuditQuery, Backend, HeldDigest, OutboxEntry, Store, WriteBatch,
};
use support::TestDatabase;

on_both_backends!(
    every_condition_round_trips_and_rules_belong_to_one_tenant,
    a_rule_change_is_announced_to_listening_instances,
    held_digests_merge_within_their_window_and_are_released_once,
);

fn rule(name: &str, condition: AlertCondition, format: AlertFormat, at: i64) -> AlertRuleRecord {
    AlertRuleRecord {
        rule_id: Uuid::new_v4(),
        name: name.to_string(),
        condition,
        url: "https://hooks.example.com/alerts".to_string(),
        format,
        created_at: at,
        digest_window_seconds: 0,
    }
}

fn audit_record(tenant_target: Uuid) -> licensd_store::AuditRecord {
    licensd_store::AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: 1,
        category: "AlertManagement".to_string(),
        activity: "Add alert rule".to_string(),
        operation_type: "Add".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: None,
        actor_name: "admin".to_string(),
        actor_role: "GlobalAdministrator".to_string(),
        target_type: "AlertRule".to_string(),
        target_id: Some(tenant_target),
        target_name: "rule".to_string(),
        modified_properties: Vec::new(),
        request_id: String::new(),
    }
}

fn all_conditions() -> Vec<AlertCondition> {
    vec![
        AlertCondition::LicenseErrorEntered(ErrorFilter {
            kinds: vec![
                LicenseErrorKind::CountViolation,
                LicenseErrorKind::UniquenessViolation,
            ],
            group_id: Some(Uuid::new_v4()),
            sku_id: Some(Uuid::new_v4()),
        }),
        AlertCondition::LicenseErrorLeft(ErrorFilter::default()),
        AlertCondition::Seats {
            sku_id: Some(Uuid::new_v4()),
            threshold: SeatThreshold::PercentUsed(90),
        },
        AlertCondition::Seats {
            sku_id: None,
            threshold: SeatThreshold::NoneAvailable,
        },
        AlertCondition::Seats {
            sku_id: None,
            threshold: SeatThreshold::OverAllocated,
        },
        AlertCondition::SubscriptionEnding { within_days: 30 },
        AlertCondition::ProcessingLag { over_seconds: 600 },
        AlertCondition::ReclamationNoticed(ReclamationFilter {
            sku_id: Some(Uuid::new_v4()),
            policy_id: Some(Uuid::new_v4()),
        }),
        AlertCondition::ReclamationActed(ReclamationFilter::default()),
    ]
}

fn every_condition_round_trips_and_rules_belong_to_one_tenant(database: TestDatabase) {
    let mut store = database.open();
    let first = TenantSettings::new(Uuid::new_v4(), "First");
    let second = TenantSettings::new(Uuid::new_v4(), "Second");
    store.create_tenant(&first).expect("first tenant");
    store.create_tenant(&second).expect("second tenant");
    let rules: Vec<AlertRuleRecord> = all_conditions()
        .into_iter()
        .zip(AlertFormat::ALL.into_iter().cycle())
        .enumerate()
        .map(|(index, (condition, format))| {
            let mut rule = rule(&format!("rule {index}"), condition, format, index as i64);
            rule.digest_window_seconds = if index == 0 { 60 } else { 0 };
            rule
        })
        .collect();
    for rule in &rules {
        store
            .insert_alert_rule(first.tenant_id, rule, &[audit_record(rule.rule_id)])
            .expect("insert");
    }
    let other = rule(
        "other",
        AlertCondition::ProcessingLag { over_seconds: 5 },
        AlertFormat::Json,
        0,
    );
    store
        .insert_alert_rule(second.tenant_id, &other, &[])
        .expect("insert other");
    // Another connection (instance) reads them back exactly.
    let mut reader = database.open();
    assert_eq!(reader.alert_rules(first.tenant_id).expect("read"), rules);
    assert_eq!(
        reader.alert_rules(second.tenant_id).expect("read"),
        vec![other.clone()]
    );
    let all = reader.all_alert_rules().expect("all");
    assert_eq!(all.len(), rules.len() + 1);
    assert!(all.contains(&(second.tenant_id, other.clone())));
    // The audit records were written with the rules.
    let audited = reader
        .audit_records(
            first.tenant_id,
            &AuditQuery {
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .expect("audit");
    assert_eq!(audited.len(), rules.len());
    // Another tenant cannot remove the first tenant's rule; its own removal removes.
    assert!(!store
        .delete_alert_rule(second.tenant_id, rules[0].rule_id, &[])
        .expect("delete elsewhere"));
    assert!(store
        .delete_alert_rule(first.tenant_id, rules[0].rule_id, &[])
        .expect("delete"));
    assert!(!store
        .delete_alert_rule(first.tenant_id, rules[0].rule_id, &[])
        .expect("delete again"));
    assert_eq!(
        reader.alert_rules(first.tenant_id).expect("read"),
        rules[1..].to_vec()
    );
}

fn a_rule_change_is_announced_to_listening_instances(database: TestDatabase) {
    let mut store = database.open();
    let tenant = TenantSettings::new(Uuid::new_v4(), "Announced");
    store.create_tenant(&tenant).expect("tenant");
    let mut listener: Store = database.open();
    listener.listen_for_changes().expect("listen");
    let added = rule("seats", all_conditions()[3].clone(), AlertFormat::Slack, 1);
    store
        .insert_alert_rule(tenant.tenant_id, &added, &[])
        .expect("insert");
    if store.backend() == Backend::Postgres {
        let mut announced = Vec::new();
        for _ in 0..50 {
            listener
                .wait_for_changes(Duration::from_millis(100))
                .expect("wait");
            announced.extend(listener.take_alert_rules_notices());
            if !announced.is_empty() {
                break;
            }
        }
        assert_eq!(announced, vec![tenant.tenant_id]);
        store
            .delete_alert_rule(tenant.tenant_id, added.rule_id, &[])
            .expect("delete");
        let mut announced = Vec::new();
        for _ in 0..50 {
            listener
                .wait_for_changes(Duration::from_millis(100))
                .expect("wait");
            announced.extend(listener.take_alert_rules_notices());
            if !announced.is_empty() {
                break;
            }
        }
        assert_eq!(announced, vec![tenant.tenant_id]);
    } else {
        assert!(listener.take_alert_rules_notices().is_empty());
    }
}

fn samples(from: u128, count: u128) -> Vec<ErrorSample> {
    (from..from + count)
        .map(|user| ErrorSample {
            user_id: Uuid::from_u128(user),
            user_principal_name: format!("user{user}@contoso.com"),
            sku_id: Uuid::from_u128(1_000),
            sku_part_number: "ENTERPRISEPACK".to_string(),
            group_id: Some(Uuid::from_u128(2_000)),
            error: LicenseErrorKind::CountViolation,
        })
        .collect()
}

fn held(rule_id: Uuid, at: i64, from: u128, count: u128) -> HeldDigest {
    HeldDigest {
        rule_id,
        window: 10_000,
        at,
        entered: true,
        count: count as u64,
        samples: samples(from, count.min(10)),
    }
}

fn message(rule_id: Uuid) -> OutboxEntry {
    OutboxEntry {
        owner_kind: "alert-rule".to_string(),
        owner_id: rule_id,
        url: "https://hooks.example.com/alerts".to_string(),
        headers: Vec::new(),
        body: b"{}".to_vec(),
        items: 1,
    }
}

/// Matches held by several writes within a rule's window become one digest (counts added, the
/// first ten samples), due when the window closes and released once (its message in the
/// outbox); a match after the window opens another; a removed rule's digests go with it.
fn held_digests_merge_within_their_window_and_are_released_once(database: TestDatabase) {
    let mut store = database.open();
    let tenant = TenantSettings::new(Uuid::new_v4(), "Digests");
    store.create_tenant(&tenant).expect("tenant");
    let mut windowed = rule("windowed", all_conditions()[0].clone(), AlertFormat::Json, 1);
    windowed.digest_window_seconds = 10;
    store
        .insert_alert_rule(tenant.tenant_id, &windowed, &[])
        .expect("rule");
    let write = |store: &mut Store, digests: Vec<HeldDigest>| {
        store
            .write(
                tenant.tenant_id,
                &WriteBatch {
                    alert_digests: digests,
                    ..WriteBatch::default()
                },
            )
            .expect("write");
    };
    // Three steps within 10 s of the first: 4 + 300 + 7 matches.
    write(&mut store, vec![held(windowed.rule_id, 1_000, 0, 4)]);
    write(&mut store, vec![held(windowed.rule_id, 5_000, 100, 300)]);
    write(&mut store, vec![held(windowed.rule_id, 10_999, 1_000, 7)]);
    // A digest of a rule that does not exist is dropped.
    write(&mut store, vec![held(Uuid::new_v4(), 2_000, 0, 1)]);
    assert!(store.due_alert_digests(10_999, 100).expect("due").is_empty());
    let mut reader = database.open();
    let due = reader.due_alert_digests(11_000, 100).expect("due");
    assert_eq!(due.len(), 1, "{due:#?}");
    let digest = &due[0];
    assert_eq!(digest.tenant_id, tenant.tenant_id);
    assert_eq!((digest.window_start, digest.window_end), (1_000, 11_000));
    assert_eq!(digest.count, 311);
    assert!(digest.entered);
    let mut expected = samples(0, 4);
    expected.extend(samples(100, 6));
    assert_eq!(digest.samples, expected);
    // After the window: another one opens.
    write(&mut store, vec![held(windowed.rule_id, 11_000, 5_000, 2)]);
    // Released once: the second release (another instance's) finds it gone.
    assert!(reader
        .release_alert_digest(digest, Some(&message(windowed.rule_id)))
        .expect("release"));
    assert!(!store
        .release_alert_digest(digest, Some(&message(windowed.rule_id)))
        .expect("release again"));
    assert_eq!(
        store
            .deliveries(tenant.tenant_id, Some(windowed.rule_id), 10)
            .expect("deliveries")
            .len(),
        1
    );
    let due = store.due_alert_digests(i64::MAX, 100).expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].window_start, due[0].count), (11_000, 2));
    // A digest that grew since it was read is not released as read.
    write(&mut store, vec![held(windowed.rule_id, 12_000, 6_000, 1)]);
    assert!(!store.release_alert_digest(&due[0], None).expect("stale"));
    // Removing the rule removes what it held.
    assert!(store
        .delete_alert_rule(tenant.tenant_id, windowed.rule_id, &[])
        .expect("delete"));
    assert!(store.due_alert_digests(i64::MAX, 100).expect("due").is_empty());
}
