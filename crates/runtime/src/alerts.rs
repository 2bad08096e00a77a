//! License alerts at run time: every tenant's alert rules kept in memory ([`AlertBook`], re-read
//! when a rule changes on this instance, when another instance announces a change, and by the
//! watcher's periodic check), matched against each write's and processing step's transitions
//! (`licensd_engine::alerts`), and rendered by the server's [`AlertRenderer`] into deliveries
//! that go into the same transaction as the change ([`AlertDelivery`]). The periodic rules
//! (subscription ending, processing lag) are checked by the processor ([`check_periodic`]). No
//! HTTP here: the payload's shape is the renderer's, the delivery the outbox worker's.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use licensd_engine::alerts::{
    error_digests, seat_digests, watches_errors, watches_seats, AlertDigest, AlertRule, SeatCount,
};
use licensd_engine::{Engine, StateChange, Uuid};
use licensd_store::{AlertRuleRecord, Store, StoreError};

/// What a renderer is given: one rule's digest of one write, step or periodic check.
pub struct AlertContext<'a> {
    pub tenant_id: Uuid,
    pub tenant_name: &'a str,
    pub rule: &'a AlertRuleRecord,
    pub digest: &'a AlertDigest,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// Identifies this alert: the same on every delivery attempt, different for every alert.
    pub dedup_key: &'a str,
    /// A digest window's start and end (milliseconds since the Unix epoch) when the digest
    /// holds the matches of a window; `None` for one write's or step's.
    pub window: Option<(i64, i64)>,
}

/// Turns a digest into the body posted to the rule's webhook (the rule's format: plain JSON,
/// Slack or Teams). Given by the server, which owns wire shapes.
pub trait AlertRenderer: Send + Sync {
    fn render(&self, context: &AlertContext<'_>) -> String;
}

/// One alert ready to be written to the outbox with the change that caused it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertDelivery {
    pub rule_id: Uuid,
    pub url: String,
    /// A JSON document.
    pub body: String,
    pub dedup_key: String,
    /// How many users (or products) the alert names in all.
    pub items: u32,
}

/// Every tenant's alert rules as this instance last read them, and the renderer.
#[derive(Default)]
pub struct AlertBook {
    rules: RwLock<HashMap<Uuid, Arc<Vec<AlertRuleRecord>>>>,
    renderer: RwLock<Option<Arc<dyn AlertRenderer>>>,
}

impl AlertBook {
    /// Sets how alerts are rendered; without a renderer no alert is produced.
    pub fn set_renderer(&self, renderer: Arc<dyn AlertRenderer>) {
        if let Ok(mut slot) = self.renderer.write() {
            *slot = Some(renderer);
        }
    }

    pub(crate) fn renderer(&self) -> Option<Arc<dyn AlertRenderer>> {
        self.renderer.read().ok().and_then(|slot| slot.clone())
    }

    /// A tenant's rules (empty when it has none).
    pub fn rules(&self, tenant_id: Uuid) -> Arc<Vec<AlertRuleRecord>> {
        self.rules
            .read()
            .ok()
            .and_then(|rules| rules.get(&tenant_id).cloned())
            .unwrap_or_default()
    }

    /// Re-reads one tenant's rules.
    pub fn reload(&self, store: &mut Store, tenant_id: Uuid) -> Result<(), StoreError> {
        let rules = store.alert_rules(tenant_id)?;
        if let Ok(mut book) = self.rules.write() {
            if rules.is_empty() {
                book.remove(&tenant_id);
            } else {
                book.insert(tenant_id, Arc::new(rules));
            }
        }
        Ok(())
    }

    /// Re-reads every tenant's rules (one statement).
    pub fn reload_all(&self, store: &mut Store) -> Result<(), StoreError> {
        let mut by_tenant: HashMap<Uuid, Vec<AlertRuleRecord>> = HashMap::new();
        for (tenant_id, rule) in store.all_alert_rules()? {
            by_tenant.entry(tenant_id).or_default().push(rule);
        }
        if let Ok(mut book) = self.rules.write() {
            *book = by_tenant
                .into_iter()
                .map(|(tenant_id, rules)| (tenant_id, Arc::new(rules)))
                .collect();
        }
        Ok(())
    }
}

/// What a tenant's rules need to know before a change: the seats, when a rule watches them.
pub struct BeforeChange {
    rules: Arc<Vec<AlertRuleRecord>>,
    engine_rules: Vec<AlertRule>,
    seats: Option<Vec<SeatCount>>,
}

impl BeforeChange {
    /// Looks at the engine before a command or processing step.
    pub fn look(book: &AlertBook, tenant_id: Uuid, engine: &Engine) -> BeforeChange {
        let rules = book.rules(tenant_id);
        let engine_rules: Vec<AlertRule> = rules.iter().map(AlertRuleRecord::engine_rule).collect();
        let seats = watches_seats(&engine_rules).then(|| engine.alert_seat_counts());
        BeforeChange {
            rules,
            engine_rules,
            seats,
        }
    }

    /// The alerts of the change: `changes` are its state changes, `clock` the engine's clock
    /// after it (unique per change of the tenant: part of each alert's dedup key). The digests
    /// of rules with a digest window are held ([`ChangeAlerts::held`]), the others rendered.
    pub fn alerts(
        &self,
        book: &AlertBook,
        tenant_id: Uuid,
        engine: &Engine,
        changes: &[StateChange],
        clock: u64,
        at: i64,
    ) -> ChangeAlerts {
        let mut alerts = ChangeAlerts::default();
        if self.engine_rules.is_empty() {
            return alerts;
        }
        let Some(renderer) = book.renderer() else {
            return alerts;
        };
        let mut digests = Vec::new();
        if watches_errors(&self.engine_rules) && !changes.is_empty() {
            digests.extend(error_digests(
                &self.engine_rules,
                &engine.error_transitions(changes),
            ));
        }
        if let Some(before) = &self.seats {
            digests.extend(seat_digests(
                &self.engine_rules,
                before,
                &engine.alert_seat_counts(),
            ));
        }
        let tenant_name = engine.settings().display_name.clone();
        let digests: Vec<AlertDigest> = digests
            .into_iter()
            .filter(|digest| {
                let held = self
                    .rules
                    .iter()
                    .find(|rule| rule.rule_id == digest.rule_id)
                    .and_then(|rule| crate::alert_digests::held(rule, digest, at));
                match held {
                    Some(held) => {
                        alerts.held.push(held);
                        false
                    }
                    None => true,
                }
            })
            .collect();
        alerts.deliveries = digests
            .iter()
            .filter_map(|digest| {
                let rule = self.rules.iter().find(|rule| rule.rule_id == digest.rule_id)?;
                let dedup_key = format!("{tenant_id}/{}/{clock}", rule.rule_id);
                Some(render(
                    &*renderer,
                    tenant_id,
                    &tenant_name,
                    rule,
                    digest,
                    at,
                    dedup_key,
                ))
            })
            .collect();
        alerts
    }
}

/// The alerts of one write or processing step: the deliveries to write with it, and the
/// digests to hold in their rules' windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeAlerts {
    pub deliveries: Vec<AlertDelivery>,
    pub held: Vec<licensd_store::HeldDigest>,
}

fn render(
    renderer: &dyn AlertRenderer,
    tenant_id: Uuid,
    tenant_name: &str,
    rule: &AlertRuleRecord,
    digest: &AlertDigest,
    at: i64,
    dedup_key: String,
) -> AlertDelivery {
    let body = renderer.render(&AlertContext {
        tenant_id,
        tenant_name,
        rule,
        digest,
        at,
        dedup_key: &dedup_key,
        window: None,
    });
    AlertDelivery {
        rule_id: rule.rule_id,
        url: rule.url.clone(),
        body,
        dedup_key,
        items: u32::try_from(items_of(digest)).unwrap_or(u32::MAX),
    }
}

/// How many users or products a digest is about.
fn items_of(digest: &AlertDigest) -> usize {
    use licensd_engine::alerts::AlertSubject;
    match &digest.subject {
        AlertSubject::LicenseErrors { count, .. } => *count,
        AlertSubject::Seats { products, .. } => products.len(),
        AlertSubject::SubscriptionEnding { .. } | AlertSubject::ProcessingLag { .. } => 1,
        AlertSubject::Reclamation { count, .. } => *count,
    }
}

/// What one real run of a reclamation policy tells the tenant's reclamation rules.
pub struct ReclamationRunAlerts<'a> {
    pub tenant_id: Uuid,
    pub tenant_name: &'a str,
    pub policy_id: Uuid,
    pub policy_name: &'a str,
    /// The seats the run gave a notice (not those whose notice stands from an earlier run).
    pub noticed: &'a [licensd_engine::alerts::ReclamationSample],
    /// The seats the run reclaimed.
    pub acted: &'a [licensd_engine::alerts::ReclamationSample],
    /// When the run ran (milliseconds since the Unix epoch; part of each alert's dedup key).
    pub at: i64,
}

/// The alerts of one reclamation run: one per `reclamationNoticed` or `reclamationActed` rule
/// that matched a seat (a digest), rendered for the rule's webhook; the caller writes them with
/// the run ([`licensd_store::Store::record_reclamation_run_alerting`]).
pub fn reclamation_alerts(book: &AlertBook, run: &ReclamationRunAlerts<'_>) -> Vec<AlertDelivery> {
    use licensd_engine::alerts::{reclamation_digests, watches_reclamation};
    let rules = book.rules(run.tenant_id);
    let engine_rules: Vec<AlertRule> = rules.iter().map(AlertRuleRecord::engine_rule).collect();
    if !watches_reclamation(&engine_rules) {
        return Vec::new();
    }
    let Some(renderer) = book.renderer() else {
        return Vec::new();
    };
    let mut digests = reclamation_digests(&engine_rules, run.policy_id, run.policy_name, false, run.noticed);
    digests.extend(reclamation_digests(
        &engine_rules,
        run.policy_id,
        run.policy_name,
        true,
        run.acted,
    ));
    digests
        .iter()
        .filter_map(|digest| {
            let rule = rules.iter().find(|rule| rule.rule_id == digest.rule_id)?;
            let what = match digest.subject {
                licensd_engine::alerts::AlertSubject::Reclamation { acted: true, .. } => "acted",
                _ => "noticed",
            };
            let dedup_key = format!(
                "{}/{}/reclamation/{}/{what}/{}",
                run.tenant_id, rule.rule_id, run.policy_id, run.at
            );
            Some(render(
                &*renderer,
                run.tenant_id,
                run.tenant_name,
                rule,
                digest,
                run.at,
                dedup_key,
            ))
        })
        .collect()
}

/// The owner kind of license alert deliveries in the outbox (`owner_id`: the rule).
pub const OWNER_ALERT_RULE: &str = "alert-rule";

impl AlertDelivery {
    /// The outbox row delivering this alert.
    pub fn outbox_entry(&self) -> licensd_store::OutboxEntry {
        licensd_store::OutboxEntry {
            owner_kind: OWNER_ALERT_RULE.to_string(),
            owner_id: self.rule_id,
            url: self.url.clone(),
            headers: vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Licensd-Alert-Id".to_string(), self.dedup_key.clone()),
            ],
            body: self.body.clone().into_bytes(),
            items: self.items,
        }
    }
}

/// Adds the alerts to the batch of the change that caused them: written in its transaction
/// (the held digests merged into their windows in it too).
pub fn enqueue(batch: &mut licensd_store::WriteBatch, alerts: ChangeAlerts) {
    batch
        .outbox
        .extend(alerts.deliveries.iter().map(AlertDelivery::outbox_entry));
    batch.alert_digests.extend(alerts.held);
}

const DAY_MILLISECONDS: i64 = 24 * 60 * 60 * 1000;

/// The subject of a processing lag rule (the tenant's queue).
const QUEUE_SUBJECT: &str = "queue";

/// Checks every tenant's periodic rules (subscriptions ending, processing lag) and records what
/// fires, with the alert of each subject that starts firing, in one transaction per tenant; a
/// subject no longer firing re-arms its rule. The processor calls it periodically. Processing
/// lag is judged only for tenants this instance processes (`statistics`); every instance may
/// check the subscriptions: the store lets exactly one of them start each firing.
pub fn check_periodic(
    store: &crate::tenants::SharedStore,
    tenants: &crate::tenants::Tenants,
    statistics: &crate::statistics::ProcessingStatistics,
    at: i64,
) {
    use licensd_engine::alerts::{AlertCondition, AlertSubject};
    let book = tenants.alerts();
    let Some(renderer) = book.renderer() else {
        return;
    };
    let Ok(runtimes) = tenants.all() else {
        return;
    };
    let figures = statistics.figures(std::time::Instant::now());
    for runtime in runtimes {
        let rules = book.rules(runtime.id);
        let periodic: Vec<&AlertRuleRecord> = rules
            .iter()
            .filter(|rule| {
                matches!(
                    rule.condition,
                    AlertCondition::SubscriptionEnding { .. } | AlertCondition::ProcessingLag { .. }
                )
            })
            .collect();
        if periodic.is_empty() {
            continue;
        }
        let checked = (|| -> Result<usize, crate::tenants::ExecuteError> {
            // The engine first, then the store: the writers hold the engine's lock while they
            // take the store's, so taking them the other way round could deadlock.
            let (tenant_name, part_numbers, queued_users) = runtime.read(|engine| {
                let part_numbers: HashMap<Uuid, String> = engine
                    .sku_usages()
                    .into_iter()
                    .map(|usage| (usage.sku_id, usage.sku_part_number))
                    .collect();
                (
                    engine.settings().display_name.clone(),
                    part_numbers,
                    engine.queued_users(),
                )
            })?;
            let mut store = crate::tenants::lock_store(store)?;
            let lifecycles = store.subscription_lifecycles(runtime.id)?;
            let firing_before = store.alert_firings(runtime.id)?;
            let mut findings = Vec::new();
            for rule in periodic {
                let mut firing_now: Vec<(String, AlertDigest)> = Vec::new();
                match rule.condition {
                    AlertCondition::SubscriptionEnding { within_days } => {
                        for lifecycle in &lifecycles {
                            let Some(ends_at) = lifecycle.ends_at else {
                                continue;
                            };
                            if at >= ends_at - i64::from(within_days) * DAY_MILLISECONDS {
                                firing_now.push((
                                    lifecycle.sku_id.to_string(),
                                    AlertDigest {
                                        rule_id: rule.rule_id,
                                        subject: AlertSubject::SubscriptionEnding {
                                            sku_id: lifecycle.sku_id,
                                            sku_part_number: part_numbers
                                                .get(&lifecycle.sku_id)
                                                .cloned()
                                                .unwrap_or_default(),
                                            ends_at,
                                            within_days,
                                        },
                                    },
                                ));
                            }
                        }
                    }
                    AlertCondition::ProcessingLag { over_seconds } => {
                        let Some(figures) = figures
                            .iter()
                            .find(|figures| figures.tenant_id == runtime.id && figures.processed_here)
                        else {
                            // Another instance processes the tenant: it judges the lag.
                            continue;
                        };
                        let lag = figures.oldest_queued_wait.unwrap_or_default();
                        if lag.as_secs() > u64::from(over_seconds) {
                            firing_now.push((
                                QUEUE_SUBJECT.to_string(),
                                AlertDigest {
                                    rule_id: rule.rule_id,
                                    subject: AlertSubject::ProcessingLag {
                                        lag_seconds: lag.as_secs(),
                                        queued_users,
                                        over_seconds,
                                    },
                                },
                            ));
                        }
                    }
                    _ => continue,
                }
                for (rule_id, subject) in &firing_before {
                    if *rule_id == rule.rule_id && !firing_now.iter().any(|(now, _)| now == subject) {
                        findings.push(licensd_store::AlertFiring {
                            rule_id: *rule_id,
                            subject: subject.clone(),
                            firing: false,
                            alert: None,
                        });
                    }
                }
                for (subject, digest) in firing_now {
                    let already = firing_before
                        .iter()
                        .any(|(rule_id, firing)| *rule_id == rule.rule_id && *firing == subject);
                    let alert = (!already).then(|| {
                        let dedup_key = format!("{}/{}/{subject}/{at}", runtime.id, rule.rule_id);
                        render(&*renderer, runtime.id, &tenant_name, rule, &digest, at, dedup_key)
                            .outbox_entry()
                    });
                    findings.push(licensd_store::AlertFiring {
                        rule_id: rule.rule_id,
                        subject,
                        firing: true,
                        alert,
                    });
                }
            }
            Ok(store.record_alert_firings(runtime.id, &findings, at)?)
        })();
        match checked {
            Ok(0) => {}
            Ok(alerts) => tracing::info!(tenant = %runtime.id, alerts, "periodic alert rules fired"),
            Err(error) => {
                tracing::warn!(tenant = %runtime.id, %error, "checking periodic alert rules failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use licensd_engine::alerts::AlertCondition;
    use licensd_store::{AlertFormat, SubscriptionLifecycle};

    use super::*;
    use crate::statistics::ProcessingStatistics;
    use crate::tenants::{SharedStore, Tenants};

    /// Renders the digest's debug form (the server's real renderer is tested over HTTP).
    struct DebugBodies;

    impl AlertRenderer for DebugBodies {
        fn render(&self, context: &AlertContext<'_>) -> String {
            format!("{:?}", context.digest.subject)
        }
    }

    fn rule(condition: AlertCondition) -> AlertRuleRecord {
        AlertRuleRecord {
            rule_id: Uuid::new_v4(),
            name: "periodic".to_string(),
            condition,
            url: "http://127.0.0.1:9/hook".to_string(),
            format: AlertFormat::Json,
            created_at: 0,
            digest_window_seconds: 0,
        }
    }

    fn setup() -> (tempfile::TempDir, SharedStore, Tenants, Uuid) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("alerts.db").display());
        let store: SharedStore = Arc::new(Mutex::new(Store::open(&url).expect("open")));
        let tenants = Tenants::load_all(&store).expect("tenants");
        tenants.alerts().set_renderer(Arc::new(DebugBodies));
        let tenant_id = tenants.default_tenant();
        (directory, store, tenants, tenant_id)
    }

    fn alerts_of(store: &SharedStore, tenant_id: Uuid, rule: &AlertRuleRecord) -> Vec<String> {
        crate::tenants::lock_store(store)
            .expect("store")
            .deliveries(tenant_id, Some(rule.rule_id), 100)
            .expect("deliveries")
            .into_iter()
            .map(|delivery| delivery.url)
            .collect()
    }

    #[test]
    fn processing_lag_fires_once_while_it_lasts_and_rearms_when_the_queue_drains() {
        let (_directory, store, tenants, tenant_id) = setup();
        let lag = rule(AlertCondition::ProcessingLag { over_seconds: 5 });
        let mut connection = crate::tenants::lock_store(&store).expect("store");
        connection.insert_alert_rule(tenant_id, &lag, &[]).expect("rule");
        tenants
            .alerts()
            .reload(&mut connection, tenant_id)
            .expect("reload");
        drop(connection);
        let statistics = ProcessingStatistics::default();
        let ten_seconds_ago = Instant::now() - Duration::from_secs(10);
        // Another instance processes the tenant: this one does not judge its lag.
        statistics.processed_elsewhere(tenant_id);
        check_periodic(&store, &tenants, &statistics, 1_000);
        assert!(alerts_of(&store, tenant_id, &lag).is_empty());
        // Processed here, 3 users waiting for 10 s: fires once, however often it is checked.
        statistics.looked(tenant_id, 3, ten_seconds_ago);
        check_periodic(&store, &tenants, &statistics, 2_000);
        check_periodic(&store, &tenants, &statistics, 3_000);
        assert_eq!(alerts_of(&store, tenant_id, &lag).len(), 1);
        // Drained: re-armed; lagging again fires again.
        statistics.looked(tenant_id, 0, Instant::now());
        check_periodic(&store, &tenants, &statistics, 4_000);
        assert_eq!(alerts_of(&store, tenant_id, &lag).len(), 1);
        statistics.looked(tenant_id, 2, ten_seconds_ago);
        check_periodic(&store, &tenants, &statistics, 5_000);
        assert_eq!(alerts_of(&store, tenant_id, &lag).len(), 2);
    }

    #[test]
    fn a_subscription_ending_fires_once_and_rearms_on_renewal() {
        let (_directory, store, tenants, tenant_id) = setup();
        let ending = rule(AlertCondition::SubscriptionEnding { within_days: 30 });
        let day = DAY_MILLISECONDS;
        let sku_id = Uuid::new_v4();
        let mut connection = crate::tenants::lock_store(&store).expect("store");
        connection
            .insert_alert_rule(tenant_id, &ending, &[])
            .expect("rule");
        tenants
            .alerts()
            .reload(&mut connection, tenant_id)
            .expect("reload");
        let lifecycle = |ends_at| SubscriptionLifecycle {
            sku_id,
            created_at: Some(0),
            ends_at: Some(ends_at),
            is_trial: false,
        };
        connection
            .set_subscription_lifecycle(tenant_id, &lifecycle(100 * day))
            .expect("lifecycle");
        drop(connection);
        let statistics = ProcessingStatistics::default();
        // 100 days before the end: nothing; 20 days before: fires, once.
        check_periodic(&store, &tenants, &statistics, 0);
        assert!(alerts_of(&store, tenant_id, &ending).is_empty());
        check_periodic(&store, &tenants, &statistics, 80 * day);
        check_periodic(&store, &tenants, &statistics, 81 * day);
        assert_eq!(alerts_of(&store, tenant_id, &ending).len(), 1);
        // Renewed for a year: re-armed; near the new end it fires again.
        crate::tenants::lock_store(&store)
            .expect("store")
            .set_subscription_lifecycle(tenant_id, &lifecycle(465 * day))
            .expect("renewal");
        check_periodic(&store, &tenants, &statistics, 82 * day);
        assert_eq!(alerts_of(&store, tenant_id, &ending).len(), 1);
        check_periodic(&store, &tenants, &statistics, 450 * day);
        assert_eq!(alerts_of(&store, tenant_id, &ending).len(), 2);
    }
}
