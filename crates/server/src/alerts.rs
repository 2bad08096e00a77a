//! The bodies of license alerts: the runtime's digests (`licensd_engine::alerts`) turned into
//! the wire shapes of `licensd_api_types::alerts` — licensd's JSON document, a Slack message or
//! a Teams Adaptive Card — for the rule's format. Given to the runtime at start
//! ([`AlertBodies`] as its `AlertRenderer`). Also the rule's wire shape, which the admin API and
//! the console both show.

use licensd_api_types::alerts::AlertRule;
use licensd_api_types::alerts::{
    slack_message, teams_message, AlertPayload, AlertProduct, AlertReclamation, AlertUser,
};
use licensd_api_types::time::format_date_time;
use licensd_engine::alerts::{AlertCondition, AlertDigest, AlertSubject, ErrorFilter, SeatThreshold};
use licensd_runtime::alerts::{AlertContext, AlertRenderer};
use licensd_store::{AlertFormat, AlertRuleRecord};

/// Renders alert bodies in each rule's format.
pub struct AlertBodies;

impl AlertRenderer for AlertBodies {
    fn render(&self, context: &AlertContext<'_>) -> String {
        let payload = payload(context);
        match context.rule.format {
            AlertFormat::Json => serde_json::to_string(&payload).unwrap_or_default(),
            AlertFormat::Slack => slack_message(&payload).to_string(),
            AlertFormat::Teams => teams_message(&payload).to_string(),
        }
    }
}

/// The condition's name on the wire.
pub fn condition_name(subject: &AlertSubject) -> &'static str {
    match subject {
        AlertSubject::LicenseErrors { entered: true, .. } => "licenseErrorEntered",
        AlertSubject::LicenseErrors { entered: false, .. } => "licenseErrorLeft",
        AlertSubject::Seats { .. } => "seats",
        AlertSubject::SubscriptionEnding { .. } => "subscriptionEnding",
        AlertSubject::ProcessingLag { .. } => "processingLag",
        AlertSubject::Reclamation { acted: false, .. } => "reclamationNoticed",
        AlertSubject::Reclamation { acted: true, .. } => "reclamationActed",
    }
}

fn plural(count: u64, one: &str, many: &str) -> String {
    if count == 1 {
        format!("1 {one}")
    } else {
        format!("{count} {many}")
    }
}

/// What a digest says, as licensd's JSON document.
pub fn payload(context: &AlertContext<'_>) -> AlertPayload {
    let digest: &AlertDigest = context.digest;
    let mut users = Vec::new();
    let mut products = Vec::new();
    let mut reclamations = Vec::new();
    let (summary, count) = match &digest.subject {
        AlertSubject::LicenseErrors {
            entered,
            count,
            samples,
        } => {
            users = samples
                .iter()
                .map(|sample| AlertUser {
                    user_id: sample.user_id,
                    user_principal_name: sample.user_principal_name.clone(),
                    sku_id: sample.sku_id,
                    sku_part_number: sample.sku_part_number.clone(),
                    group_id: sample.group_id,
                    error: sample.error.as_str().to_string(),
                })
                .collect();
            let mut kinds: Vec<&str> = samples.iter().map(|sample| sample.error.as_str()).collect();
            kinds.sort_unstable();
            kinds.dedup();
            let count = *count as u64;
            let verb = if *entered { "entered" } else { "left" };
            (
                format!(
                    "{} {verb} a license error ({})",
                    plural(count, "license assignment", "license assignments"),
                    kinds.join(", ")
                ),
                count,
            )
        }
        AlertSubject::Seats {
            threshold,
            products: crossed,
        } => {
            products = crossed
                .iter()
                .map(|seats| AlertProduct {
                    sku_id: seats.sku_id,
                    sku_part_number: seats.sku_part_number.clone(),
                    prepaid_units: seats.prepaid_units,
                    consumed_units: seats.consumed_units,
                })
                .collect();
            let what = match threshold {
                SeatThreshold::PercentUsed(percent) => format!("{percent} % of its seats used"),
                SeatThreshold::NoneAvailable => "no seat available".to_string(),
                SeatThreshold::OverAllocated => "more seats used than purchased".to_string(),
            };
            let names: Vec<&str> = crossed
                .iter()
                .map(|seats| seats.sku_part_number.as_str())
                .collect();
            (
                format!("{} now has {what}", names.join(", ")),
                crossed.len() as u64,
            )
        }
        AlertSubject::SubscriptionEnding {
            sku_part_number,
            ends_at,
            within_days,
            ..
        } => (
            format!(
                "The subscription of {sku_part_number} ends on {} (within {within_days} days)",
                format_date_time(*ends_at)
            ),
            1,
        ),
        AlertSubject::ProcessingLag {
            lag_seconds,
            queued_users,
            over_seconds,
        } => (
            format!(
                "Users have waited {lag_seconds} s to be processed (over {over_seconds} s); {} queued",
                plural(*queued_users as u64, "user", "users")
            ),
            1,
        ),
        AlertSubject::Reclamation {
            acted,
            policy_id,
            policy_name,
            count,
            samples,
        } => {
            reclamations = samples
                .iter()
                .map(|sample| AlertReclamation {
                    user_id: sample.user_id,
                    user_principal_name: sample.user_principal_name.clone(),
                    sku_id: sample.sku_id,
                    sku_part_number: sample.sku_part_number.clone(),
                    policy_id: *policy_id,
                    policy_name: policy_name.clone(),
                    reason: sample.reason.as_str().to_string(),
                    action_date_time: format_date_time(sample.act_at),
                })
                .collect();
            let count = *count as u64;
            let seats = plural(count, "seat", "seats");
            let summary = if *acted {
                format!("{seats} reclaimed by the policy \"{policy_name}\"")
            } else {
                let first = samples
                    .iter()
                    .map(|sample| sample.act_at)
                    .min()
                    .map(format_date_time)
                    .unwrap_or_default();
                format!(
                    "{seats} noticed by the reclamation policy \"{policy_name}\": reclaimed from {} unless the users are exempted",
                    first.get(..10).unwrap_or(&first)
                )
            };
            (summary, count)
        }
    };
    AlertPayload {
        alert_id: context.dedup_key.to_string(),
        tenant_id: context.tenant_id,
        tenant_name: context.tenant_name.to_string(),
        rule_id: context.rule.rule_id,
        rule_name: context.rule.name.clone(),
        condition: condition_name(&digest.subject).to_string(),
        occurred_date_time: format_date_time(context.at),
        window_start_date_time: context.window.map(|(start, _)| format_date_time(start)),
        window_end_date_time: context.window.map(|(_, end)| format_date_time(end)),
        summary,
        count,
        users,
        products,
        reclamations,
    }
}

/// A webhook URL as shown back: scheme and host only (Slack and Teams webhook URLs carry their
/// secret in the path, so it is never shown after creation).
pub fn masked_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.len() < rest.len() {
        format!("{scheme}://{host}/…")
    } else {
        format!("{scheme}://{host}")
    }
}

/// A stored rule in the wire shape.
pub fn wire_rule(rule: &AlertRuleRecord) -> AlertRule {
    let mut wire = AlertRule {
        id: rule.rule_id,
        display_name: rule.name.clone(),
        condition: String::new(),
        error_kinds: Vec::new(),
        group_id: None,
        sku_id: None,
        policy_id: None,
        threshold: None,
        percent: None,
        days: None,
        seconds: None,
        digest_window_seconds: rule.digest_window_seconds,
        webhook_url: masked_url(&rule.url),
        format: rule.format.as_str().to_string(),
        created_date_time: format_date_time(rule.created_at),
    };
    let mut errors = |name: &str, filter: &ErrorFilter| {
        wire.condition = name.to_string();
        wire.error_kinds = filter
            .kinds
            .iter()
            .map(|kind| kind.as_str().to_string())
            .collect();
        wire.group_id = filter.group_id;
        wire.sku_id = filter.sku_id;
    };
    match &rule.condition {
        AlertCondition::LicenseErrorEntered(filter) => errors("licenseErrorEntered", filter),
        AlertCondition::LicenseErrorLeft(filter) => errors("licenseErrorLeft", filter),
        AlertCondition::Seats { sku_id, threshold } => {
            wire.condition = "seats".to_string();
            wire.sku_id = *sku_id;
            let (name, percent) = match threshold {
                SeatThreshold::PercentUsed(percent) => ("percentUsed", Some(u32::from(*percent))),
                SeatThreshold::NoneAvailable => ("noneAvailable", None),
                SeatThreshold::OverAllocated => ("overAllocated", None),
            };
            wire.threshold = Some(name.to_string());
            wire.percent = percent;
        }
        AlertCondition::SubscriptionEnding { within_days } => {
            wire.condition = "subscriptionEnding".to_string();
            wire.days = Some(*within_days);
        }
        AlertCondition::ProcessingLag { over_seconds } => {
            wire.condition = "processingLag".to_string();
            wire.seconds = Some(*over_seconds);
        }
        AlertCondition::ReclamationNoticed(filter) | AlertCondition::ReclamationActed(filter) => {
            let acted = matches!(rule.condition, AlertCondition::ReclamationActed(_));
            wire.condition = if acted {
                "reclamationActed"
            } else {
                "reclamationNoticed"
            }
            .to_string();
            wire.sku_id = filter.sku_id;
            wire.policy_id = filter.policy_id;
        }
    }
    wire
}
