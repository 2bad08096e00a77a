//! A tenant's license alert rules (issue 16) and the subjects periodic rules are firing for.
//! Rules are tenant data: added and removed with their audit record in one transaction that, on
//! PostgreSQL, also announces the change (`alerts <tenant id>`) so every instance re-reads the
//! tenant's rules at once ([`parse_alert_rules_notice`]). Both backends use the same statements.
//! A reclamation rule (`reclamationNoticed`, `reclamationActed`) keeps its product in `sku_id`
//! and its reclamation policy in `policy_id`.

use licensd_engine::alerts::{AlertCondition, ErrorFilter, ReclamationFilter, SeatThreshold};
use licensd_engine::{LicenseErrorKind, Uuid};

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::security::{insert_audit, AuditRecord};
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// How an alert is rendered for its webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertFormat {
    /// licensd's own JSON document.
    Json,
    /// A Slack incoming webhook message (`text` and `blocks`).
    Slack,
    /// A Microsoft Teams incoming webhook message (an Adaptive Card in `attachments`).
    Teams,
}

impl AlertFormat {
    pub const ALL: [AlertFormat; 3] = [AlertFormat::Json, AlertFormat::Slack, AlertFormat::Teams];

    pub fn as_str(&self) -> &'static str {
        match self {
            AlertFormat::Json => "json",
            AlertFormat::Slack => "slack",
            AlertFormat::Teams => "teams",
        }
    }

    pub fn parse(text: &str) -> Option<AlertFormat> {
        AlertFormat::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(text))
    }
}

/// One stored alert rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRuleRecord {
    pub rule_id: Uuid,
    pub name: String,
    pub condition: AlertCondition,
    /// The webhook the alerts are posted to.
    pub url: String,
    pub format: AlertFormat,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Error rules: the matches of this many seconds are sent as one message when the window
    /// closes (held in the store meanwhile); 0 sends one message per write or processing step.
    pub digest_window_seconds: u32,
}

impl AlertRuleRecord {
    /// The rule as the engine matches it.
    pub fn engine_rule(&self) -> licensd_engine::alerts::AlertRule {
        licensd_engine::alerts::AlertRule {
            rule_id: self.rule_id,
            condition: self.condition.clone(),
        }
    }
}

/// The notice announcing that a tenant's alert rules changed: `alerts <tenant id>`.
pub(crate) fn alert_rules_notice(tenant_id: Uuid) -> String {
    format!("alerts {tenant_id}")
}

/// The tenant an alert rules notice names; `None` for any other payload.
pub(crate) fn parse_alert_rules_notice(payload: &str) -> Option<Uuid> {
    payload.strip_prefix("alerts ")?.parse().ok()
}

/// The columns of a condition: kind, error kinds, group, product, threshold, amount.
struct ConditionColumns {
    kind: &'static str,
    error_kinds: String,
    group_id: Option<Uuid>,
    sku_id: Option<Uuid>,
    policy_id: Option<Uuid>,
    threshold: Option<&'static str>,
    amount: Option<i64>,
}

fn columns_of(condition: &AlertCondition) -> ConditionColumns {
    let errors = |kind, filter: &ErrorFilter| ConditionColumns {
        kind,
        error_kinds: filter
            .kinds
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(","),
        group_id: filter.group_id,
        sku_id: filter.sku_id,
        policy_id: None,
        threshold: None,
        amount: None,
    };
    let plain = |kind, amount: u32| ConditionColumns {
        kind,
        error_kinds: String::new(),
        group_id: None,
        sku_id: None,
        policy_id: None,
        threshold: None,
        amount: Some(i64::from(amount)),
    };
    let reclamation = |kind, filter: &ReclamationFilter| ConditionColumns {
        kind,
        error_kinds: String::new(),
        group_id: None,
        sku_id: filter.sku_id,
        policy_id: filter.policy_id,
        threshold: None,
        amount: None,
    };
    match condition {
        AlertCondition::LicenseErrorEntered(filter) => errors("licenseErrorEntered", filter),
        AlertCondition::LicenseErrorLeft(filter) => errors("licenseErrorLeft", filter),
        AlertCondition::Seats { sku_id, threshold } => {
            let (threshold, amount) = match threshold {
                SeatThreshold::PercentUsed(percent) => ("percentUsed", Some(i64::from(*percent))),
                SeatThreshold::NoneAvailable => ("noneAvailable", None),
                SeatThreshold::OverAllocated => ("overAllocated", None),
            };
            ConditionColumns {
                kind: "seats",
                error_kinds: String::new(),
                group_id: None,
                sku_id: *sku_id,
                policy_id: None,
                threshold: Some(threshold),
                amount,
            }
        }
        AlertCondition::SubscriptionEnding { within_days } => plain("subscriptionEnding", *within_days),
        AlertCondition::ProcessingLag { over_seconds } => plain("processingLag", *over_seconds),
        AlertCondition::ReclamationNoticed(filter) => reclamation("reclamationNoticed", filter),
        AlertCondition::ReclamationActed(filter) => reclamation("reclamationActed", filter),
    }
}

const RULE_COLUMNS: &str =
    "rule_id, name, kind, error_kinds, group_id, sku_id, threshold, amount, url, format, created_at, digest_window_seconds, policy_id";

fn rule_of(row: &impl ReadRow) -> Result<AlertRuleRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt {
        what: format!("alert rule: {what}"),
    };
    let kind = row.text(2)?;
    let amount = || -> Result<u32, StoreError> {
        row.optional_integer(7)?
            .and_then(|amount| u32::try_from(amount).ok())
            .ok_or_else(|| corrupt("amount"))
    };
    let filter = || -> Result<ErrorFilter, StoreError> {
        let kinds = row
            .text(3)?
            .split(',')
            .filter(|name| !name.is_empty())
            .map(|name| {
                LicenseErrorKind::ALL
                    .into_iter()
                    .find(|kind| kind.as_str() == name)
                    .ok_or_else(|| corrupt("error kind"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ErrorFilter {
            kinds,
            group_id: row.optional_id(4)?,
            sku_id: row.optional_id(5)?,
        })
    };
    let condition = match kind {
        "licenseErrorEntered" => AlertCondition::LicenseErrorEntered(filter()?),
        "licenseErrorLeft" => AlertCondition::LicenseErrorLeft(filter()?),
        "seats" => {
            let threshold = match row.optional_text(6)? {
                Some("percentUsed") => {
                    SeatThreshold::PercentUsed(u8::try_from(amount()?).map_err(|_| corrupt("percentage"))?)
                }
                Some("noneAvailable") => SeatThreshold::NoneAvailable,
                Some("overAllocated") => SeatThreshold::OverAllocated,
                _ => return Err(corrupt("threshold")),
            };
            AlertCondition::Seats {
                sku_id: row.optional_id(5)?,
                threshold,
            }
        }
        "subscriptionEnding" => AlertCondition::SubscriptionEnding {
            within_days: amount()?,
        },
        "processingLag" => AlertCondition::ProcessingLag {
            over_seconds: amount()?,
        },
        "reclamationNoticed" | "reclamationActed" => {
            let filter = ReclamationFilter {
                sku_id: row.optional_id(5)?,
                policy_id: row.optional_id(12)?,
            };
            if kind == "reclamationNoticed" {
                AlertCondition::ReclamationNoticed(filter)
            } else {
                AlertCondition::ReclamationActed(filter)
            }
        }
        _ => return Err(corrupt("kind")),
    };
    Ok(AlertRuleRecord {
        rule_id: row.id(0)?,
        name: row.text(1)?.to_string(),
        condition,
        url: row.text(8)?.to_string(),
        format: AlertFormat::parse(row.text(9)?).ok_or_else(|| corrupt("format"))?,
        created_at: row.integer(10)?,
        digest_window_seconds: u32::try_from(row.integer(11)?).map_err(|_| corrupt("digest window"))?,
    })
}

/// A tenant's rules, oldest first.
pub(crate) fn alert_rules(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<AlertRuleRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading alert rules",
        &format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE tenant_key = $1 ORDER BY created_at, rule_id"),
        &[Param::Integer(tenant_key)],
        |row| rule_of(row),
    )
}

/// Every tenant's rules, by tenant (an instance's periodic re-read: one statement).
pub(crate) fn all_alert_rules(
    session: &mut impl Session,
) -> Result<Vec<(Uuid, AlertRuleRecord)>, StoreError> {
    let columns: Vec<String> = RULE_COLUMNS
        .split(", ")
        .map(|column| format!("r.{column}"))
        .collect();
    session.query_all(
        "reading every tenant's alert rules",
        &format!(
            "SELECT {}, t.tenant_id FROM alert_rules r JOIN tenants t ON t.tenant_key = r.tenant_key
             ORDER BY t.tenant_id, r.created_at, r.rule_id",
            columns.join(", ")
        ),
        &[],
        |row| Ok((row.id(13)?, rule_of(row)?)),
    )
}

/// Adds a rule with its audit records (rule ids are generated; a duplicate fails on the
/// primary key).
pub(crate) fn insert_alert_rule(
    database: &mut impl Database,
    tenant_id: Uuid,
    rule: &AlertRuleRecord,
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    let channel = database.notice_channel();
    let mut transaction = database.begin("starting to add an alert rule")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let columns = columns_of(&rule.condition);
    transaction.execute(
        "adding an alert rule",
        &format!(
            "INSERT INTO alert_rules ({RULE_COLUMNS}, tenant_key)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ),
        &[
            Param::Id(rule.rule_id),
            Param::Text(&rule.name),
            Param::Text(columns.kind),
            Param::Text(&columns.error_kinds),
            Param::OptionalId(columns.group_id),
            Param::OptionalId(columns.sku_id),
            Param::OptionalText(columns.threshold),
            Param::OptionalInteger(columns.amount),
            Param::Text(&rule.url),
            Param::Text(rule.format.as_str()),
            Param::Integer(rule.created_at),
            Param::Integer(i64::from(rule.digest_window_seconds)),
            Param::OptionalId(columns.policy_id),
            Param::Integer(tenant_key),
        ],
    )?;
    insert_audit(&mut transaction, tenant_key, audit)?;
    announce(&mut transaction, channel.as_deref(), tenant_id)?;
    transaction.commit("committing an alert rule")?;
    Ok(())
}

/// Removes a rule (and what it was firing for) with its audit records; `Ok(false)` when the
/// tenant has no such rule (nothing written).
pub(crate) fn delete_alert_rule(
    database: &mut impl Database,
    tenant_id: Uuid,
    rule_id: Uuid,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    let channel = database.notice_channel();
    let mut transaction = database.begin("starting to remove an alert rule")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    transaction.execute(
        "removing an alert rule's firings",
        "DELETE FROM alert_firings WHERE tenant_key = $1 AND rule_id = $2",
        &[Param::Integer(tenant_key), Param::Id(rule_id)],
    )?;
    transaction.execute(
        "removing an alert rule's held digests",
        "DELETE FROM alert_digests WHERE tenant_key = $1 AND rule_id = $2",
        &[Param::Integer(tenant_key), Param::Id(rule_id)],
    )?;
    let deleted = transaction.execute(
        "removing an alert rule",
        "DELETE FROM alert_rules WHERE tenant_key = $1 AND rule_id = $2",
        &[Param::Integer(tenant_key), Param::Id(rule_id)],
    )?;
    if deleted == 0 {
        return Ok(false);
    }
    insert_audit(&mut transaction, tenant_key, audit)?;
    announce(&mut transaction, channel.as_deref(), tenant_id)?;
    transaction.commit("committing an alert rule's removal")?;
    Ok(true)
}

fn announce(session: &mut impl Session, channel: Option<&str>, tenant_id: Uuid) -> Result<(), StoreError> {
    if let Some(channel) = channel {
        session.execute(
            "announcing an alert rule change",
            "SELECT pg_notify($1, $2)",
            &[Param::Text(channel), Param::Text(&alert_rules_notice(tenant_id))],
        )?;
    }
    Ok(())
}

/// The subjects a tenant's periodic rules are firing for: (rule, subject).
pub(crate) fn alert_firings(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<(Uuid, String)>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading alert firings",
        "SELECT rule_id, subject FROM alert_firings WHERE tenant_key = $1 ORDER BY rule_id, subject",
        &[Param::Integer(tenant_key)],
        |row| Ok((row.id(0)?, row.text(1)?.to_string())),
    )
}

/// A periodic rule's condition for one subject as a check found it: firing or not, and the
/// alert to send if it starts firing now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertFiring {
    pub rule_id: Uuid,
    /// What the rule fires for: a product's id, `queue`, ...
    pub subject: String,
    pub firing: bool,
    /// Written to the outbox when this check is the one that starts the firing.
    pub alert: Option<crate::outbox::OutboxEntry>,
}

/// Records a periodic check's findings in one transaction: a subject that starts firing gets
/// its row and its alert in the outbox, one that stops loses its row (re-arming the rule).
/// Returns how many alerts were written: among instances checking together, exactly one writes
/// each (the row's insertion decides).
pub(crate) fn record_alert_firings(
    database: &mut impl Database,
    tenant_id: Uuid,
    findings: &[AlertFiring],
    at: i64,
) -> Result<usize, StoreError> {
    let mut transaction = database.begin("starting to record alert firings")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let mut alerts = 0;
    for finding in findings {
        let changed = set_alert_firing(
            &mut transaction,
            tenant_key,
            finding.rule_id,
            &finding.subject,
            finding.firing,
            at,
        )?;
        if changed && finding.firing {
            if let Some(alert) = &finding.alert {
                crate::outbox::insert_entries(&mut transaction, tenant_key, std::slice::from_ref(alert))?;
                alerts += 1;
            }
        }
    }
    transaction.commit("committing alert firings")?;
    Ok(alerts)
}

/// Records that `rule` fires (`firing`) or no longer fires for `subject`, inside the caller's
/// transaction; whether this call changed it.
fn set_alert_firing(
    transaction: &mut impl Session,
    tenant_key: i64,
    rule_id: Uuid,
    subject: &str,
    firing: bool,
    at: i64,
) -> Result<bool, StoreError> {
    let changed = if firing {
        transaction.execute(
            "recording an alert firing",
            "INSERT INTO alert_firings (tenant_key, rule_id, subject, since)
             SELECT $1, $2, $3, $4 WHERE EXISTS
                 (SELECT 1 FROM alert_rules WHERE tenant_key = $1 AND rule_id = $2)
             ON CONFLICT (tenant_key, rule_id, subject) DO NOTHING",
            &[
                Param::Integer(tenant_key),
                Param::Id(rule_id),
                Param::Text(subject),
                Param::Integer(at),
            ],
        )?
    } else {
        transaction.execute(
            "clearing an alert firing",
            "DELETE FROM alert_firings WHERE tenant_key = $1 AND rule_id = $2 AND subject = $3",
            &[
                Param::Integer(tenant_key),
                Param::Id(rule_id),
                Param::Text(subject),
            ],
        )?
    };
    Ok(changed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alert_rule_notices_round_trip_and_are_no_other_notices() {
        let id = Uuid::from_u128(42);
        assert_eq!(parse_alert_rules_notice(&alert_rules_notice(id)), Some(id));
        assert_eq!(parse_alert_rules_notice("token 1"), None);
        assert_eq!(crate::security::parse_token_notice(&alert_rules_notice(id)), None);
    }
}
