//! "Alerts" (`/alerts`): the tenant's license alert rules — what each watches, where it posts
//! (scheme and host only: a webhook's path is its secret) and how its last deliveries went.
//! Rules are added and removed with the admin API or `licensd alert` (docs/alerts.md).

use axum::extract::State;
use axum::response::Response;
use licensd_api_types::alerts::AlertRule;
use licensd_api_types::time::format_date_time;
use licensd_store::DeliveryRecord;
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::layout::{self, Section};
use crate::alerts::wire_rule;
use crate::AppState;

/// Deliveries shown per rule.
const RECENT_DELIVERIES: usize = 5;

/// What a rule watches, in words; `policies` names the reclamation policies.
fn condition_text(rule: &AlertRule, policies: &[(licensd_engine::Uuid, String)]) -> String {
    let mut text = match rule.condition.as_str() {
        "licenseErrorEntered" => "A user enters a license error".to_string(),
        "licenseErrorLeft" => "A user leaves a license error".to_string(),
        "seats" => match (rule.threshold.as_deref(), rule.percent) {
            (Some("percentUsed"), Some(percent)) => format!("A product reaches {percent} % of its seats"),
            (Some("noneAvailable"), _) => "A product has no seat left".to_string(),
            _ => "A product uses more seats than purchased".to_string(),
        },
        "subscriptionEnding" => format!(
            "A subscription ends within {} days",
            rule.days.unwrap_or_default()
        ),
        "reclamationNoticed" => "A reclamation policy gives seats a notice".to_string(),
        "reclamationActed" => "A reclamation policy reclaims seats".to_string(),
        _ => format!(
            "Users wait more than {} s to be processed",
            rule.seconds.unwrap_or_default()
        ),
    };
    if !rule.error_kinds.is_empty() {
        text.push_str(&format!(" ({})", rule.error_kinds.join(", ")));
    }
    if let Some(group) = rule.group_id {
        text.push_str(&format!(", through group {group}"));
    }
    if let Some(sku) = rule.sku_id {
        text.push_str(&format!(", product {sku}"));
    }
    if let Some(policy) = rule.policy_id {
        match policies.iter().find(|(id, _)| *id == policy) {
            Some((_, name)) => text.push_str(&format!(", policy \"{name}\"")),
            None => text.push_str(&format!(", policy {policy}")),
        }
    }
    if rule.digest_window_seconds > 0 {
        text.push_str(&format!(
            "; one message per {} s window (count and first users)",
            rule.digest_window_seconds
        ));
    }
    text
}

/// `GET /alerts`.
pub async fn show(State(state): State<AppState>, context: ConsoleContext) -> Result<Response, ConsoleError> {
    let tenant_name = context
        .read(|engine| Ok(engine.settings().display_name.clone()))
        .await?;
    let store = state.store.clone();
    let tenant_id = context.tenant_id;
    type Rules = (
        Vec<(AlertRule, Vec<DeliveryRecord>)>,
        Vec<(licensd_engine::Uuid, String)>,
    );
    let (rules, policies): Rules = tokio::task::spawn_blocking(move || {
        let mut store = licensd_runtime::tenants::lock_store(&store).map_err(ConsoleError::from)?;
        let storage = |error: licensd_store::StoreError| ConsoleError::Storage {
            detail: error.to_string(),
        };
        let rules = store.alert_rules(tenant_id).map_err(storage)?;
        let policies = store
            .reclamation_policies(tenant_id)
            .map_err(storage)?
            .into_iter()
            .map(|policy| (policy.policy_id, policy.display_name))
            .collect();
        let rules = rules
            .iter()
            .map(|rule| {
                let deliveries = store
                    .deliveries(tenant_id, Some(rule.rule_id), RECENT_DELIVERIES)
                    .map_err(storage)?;
                Ok((wire_rule(rule), deliveries))
            })
            .collect::<Result<Vec<_>, ConsoleError>>()?;
        Ok::<_, ConsoleError>((rules, policies))
    })
    .await
    .map_err(|error| ConsoleError::Internal {
        detail: format!("reading alert rules failed: {error}"),
    })??;
    let content = html! {
        h1 { "Alerts" }
        p.muted {
            "Rules that post to a webhook (Slack, Microsoft Teams or plain JSON) when users enter or leave license errors, seats run low, a subscription nears its end, processing lags, or a reclamation policy gives seats a notice or reclaims them (see Spend › Reclamation). Add and remove them with "
            code { "licensd alert" } " or " code { "/licensd/v1/alertRules" } "."
        }
        @if rules.is_empty() {
            p.muted { "No alert rules yet." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Rule" }
                        th scope="col" { "When" }
                        th scope="col" { "Posts to" }
                        th scope="col" { "Last deliveries" }
                    }
                }
                tbody {
                    @for (rule, deliveries) in &rules {
                        tr data-rule=(rule.id) {
                            th scope="row" { (rule.display_name) br; span.muted { "since " (rule.created_date_time) } }
                            td { (condition_text(rule, &policies)) }
                            td { (rule.format) " · " (rule.webhook_url) }
                            td {
                                @if deliveries.is_empty() {
                                    span.muted { "none yet" }
                                } @else {
                                    ul {
                                        @for delivery in deliveries {
                                            li {
                                                (format_date_time(delivery.created_at)) ": " (delivery.status.as_str())
                                                @if let Some(error) = &delivery.last_error {
                                                    " — " (error)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Alerts", Section::Alerts, &tenant_name, content))
}
