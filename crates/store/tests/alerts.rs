//! Alert rules in the store, on both backends: every condition round-trips, rules belong to one
//! tenant, a removal removes, and on PostgreSQL a change is announced to listening instances.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[macro_use]
mod support;

use std::time::Duration;

use licensd_engine::alerts::{AlertCondition, ErrorFilter, ReclamationFilter, SeatThreshold};
use licensd_engine::{LicenseErrorKind, TenantSettings, Uuid};
use licensd_store::{AlertFormat, AlertRuleRecord, AuditQuery, Backend, Store};
use support::TestDatabase;

on_both_backends!(
    every_condition_round_trips_and_rules_belong_to_one_tenant,
    a_rule_change_is_announced_to_listening_instances,
);

fn rule(name: &str, condition: AlertCondition, format: AlertFormat, at: i64) -> AlertRuleRecord {
    AlertRuleRecord {
        rule_id: Uuid::new_v4(),
        name: name.to_string(),
        condition,
        url: "https://hooks.example.com/alerts".to_string(),
        format,
        created_at: at,
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
        .map(|(index, (condition, format))| rule(&format!("rule {index}"), condition, format, index as i64))
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
