//! `licensd alert list|add|remove`: license alert rules over the HTTP API
//! (`/licensd/v1/alertRules`) — tell an administrator in chat (Slack, Teams) or any webhook when
//! users fall into license errors, seats run low, or a reclamation policy gives seats a notice
//! or reclaims them. See docs/alerts.md.

use std::fmt::Write as _;

use anyhow::Context;
use licensd_api_types::alerts::{AlertRule, CreateAlertRule};

use crate::admin::{run_action, to_json, ConnectionOptions, Rendered};

#[derive(clap::Args)]
pub struct AlertArguments {
    #[command(subcommand)]
    command: AlertCommand,
}

#[derive(clap::Subcommand)]
enum AlertCommand {
    /// Lists the tenant's alert rules.
    List(ListArguments),
    /// Adds an alert rule.
    Add(Box<AddArguments>),
    /// Removes an alert rule.
    Remove(RemoveArguments),
}

#[derive(clap::Args)]
struct ListArguments {
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct AddArguments {
    /// The rule's name (shown in every alert).
    #[arg(long)]
    name: String,
    /// licenseErrorEntered, licenseErrorLeft, seats, subscriptionEnding, processingLag,
    /// reclamationNoticed or reclamationActed.
    #[arg(long)]
    condition: String,
    /// Error rules: an error kind to watch (repeat for several; none: every kind).
    #[arg(long = "error-kind", value_name = "KIND")]
    error_kinds: Vec<String>,
    /// Error rules: only assignments through this group (its id).
    #[arg(long, value_name = "GROUP_ID")]
    group: Option<licensd_client::Uuid>,
    /// Error, seat and reclamation rules: only this product (its skuId).
    #[arg(long, value_name = "SKU_ID")]
    sku: Option<licensd_client::Uuid>,
    /// Reclamation rules: only this reclamation policy (its id).
    #[arg(long, value_name = "POLICY_ID")]
    policy: Option<licensd_client::Uuid>,
    /// Seat rules: percentUsed, noneAvailable or overAllocated.
    #[arg(long)]
    threshold: Option<String>,
    /// Seat rules with percentUsed: the percentage of seats used (1-100).
    #[arg(long)]
    percent: Option<u32>,
    /// subscriptionEnding: days before the end of the term.
    #[arg(long)]
    days: Option<u32>,
    /// processingLag: seconds the oldest queued user may wait.
    #[arg(long)]
    seconds: Option<u32>,
    /// Error rules: send the matches of this many seconds as one message when the window
    /// closes (default 60; 0: one message per change).
    #[arg(long = "digest-window", value_name = "SECONDS")]
    digest_window: Option<u32>,
    /// Where alerts are posted: a Slack or Teams incoming webhook, or any URL.
    #[arg(long, value_name = "URL")]
    webhook: String,
    /// json (default), slack or teams.
    #[arg(long)]
    format: Option<String>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct RemoveArguments {
    /// The rule's id (from `licensd alert list`).
    id: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

fn describe(rule: &AlertRule) -> String {
    let mut condition = rule.condition.clone();
    if !rule.error_kinds.is_empty() {
        condition.push_str(&format!(" {}", rule.error_kinds.join(",")));
    }
    if let Some(group) = rule.group_id {
        condition.push_str(&format!(" group={group}"));
    }
    if let Some(sku) = rule.sku_id {
        condition.push_str(&format!(" sku={sku}"));
    }
    if let Some(policy) = rule.policy_id {
        condition.push_str(&format!(" policy={policy}"));
    }
    if let Some(threshold) = &rule.threshold {
        condition.push_str(&format!(" {threshold}"));
    }
    for (name, value) in [
        ("percent", rule.percent),
        ("days", rule.days),
        ("seconds", rule.seconds),
    ] {
        if let Some(value) = value {
            condition.push_str(&format!(" {name}={value}"));
        }
    }
    if rule.digest_window_seconds > 0 {
        condition.push_str(&format!(" digest={}s", rule.digest_window_seconds));
    }
    format!(
        "{}  {:<28} {:<6} {}  -> {}",
        rule.id, rule.display_name, rule.format, condition, rule.webhook_url
    )
}

pub fn run(arguments: AlertArguments) -> anyhow::Result<()> {
    match arguments.command {
        AlertCommand::List(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let rules = client.alert_rules().context("listing alert rules")?;
                let mut text = String::new();
                for rule in &rules.value {
                    writeln!(text, "{}", describe(rule))?;
                }
                if rules.value.is_empty() {
                    writeln!(text, "No alert rules.")?;
                }
                Ok(Rendered {
                    text,
                    json: to_json(&rules)?,
                })
            }),
        ),
        AlertCommand::Add(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let request = CreateAlertRule {
                    display_name: arguments.name.clone(),
                    condition: arguments.condition.clone(),
                    error_kinds: arguments.error_kinds.clone(),
                    group_id: arguments.group,
                    sku_id: arguments.sku,
                    policy_id: arguments.policy,
                    threshold: arguments.threshold.clone(),
                    percent: arguments.percent,
                    days: arguments.days,
                    seconds: arguments.seconds,
                    digest_window_seconds: arguments.digest_window,
                    webhook_url: arguments.webhook.clone(),
                    format: arguments.format.clone(),
                };
                let rule = client
                    .create_alert_rule(&request)
                    .with_context(|| format!("adding the alert rule '{}'", arguments.name))?;
                Ok(Rendered {
                    text: format!("Added alert rule {}\n", describe(&rule)),
                    json: to_json(&rule)?,
                })
            }),
        ),
        AlertCommand::Remove(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                client
                    .delete_alert_rule(&arguments.id)
                    .with_context(|| format!("removing alert rule {}", arguments.id))?;
                Ok(Rendered {
                    text: format!("Removed alert rule {}.\n", arguments.id),
                    json: to_json(&serde_json::json!({ "id": arguments.id, "status": "removed" }))?,
                })
            }),
        ),
    }
}
