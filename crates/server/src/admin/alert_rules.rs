//! `/licensd/v1/alertRules`: the tenant's license alert rules — listed, read, created and
//! removed (read with licensing, changed as tenant settings). A new rule is checked field by
//! field (a refusal names the field and changes nothing), stored with its audit record, and in
//! force on this instance at once and on the others as soon as they hear of it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::alerts::{AlertRule, AlertRuleList, CreateAlertRule};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::alerts::{AlertCondition, ErrorFilter, ReclamationFilter, SeatThreshold};
use licensd_engine::{LicenseErrorKind, Uuid};
use licensd_store::{AlertFormat, AlertRuleRecord};

use crate::alerts::wire_rule;
use crate::api::{ApiError, JsonBody, PathParameters, Tenant};
use crate::AppState;
use licensd_runtime::audit::alert_rule_changed;
use licensd_runtime::tenants::now;

/// The longest rule name.
const MAX_NAME_LENGTH: usize = 128;
/// The longest webhook URL.
const MAX_URL_LENGTH: usize = 2_048;
/// At most this many rules per tenant.
pub const MAX_RULES: usize = 100;
/// The longest `days` of a subscription rule (ten years).
const MAX_DAYS: u32 = 3_650;
/// The longest `seconds` of a processing lag rule (a week).
const MAX_SECONDS: u32 = 7 * 24 * 60 * 60;
/// The digest window of an error rule created without one.
pub const DEFAULT_DIGEST_WINDOW_SECONDS: u32 = 60;
/// The longest digest window (a day).
const MAX_DIGEST_WINDOW_SECONDS: u32 = 24 * 60 * 60;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidValue, format!("Invalid {field}: {message}"))
}

/// A reference to an object the tenant does not have: 404, as Graph answers a reference to a
/// directory object that does not exist.
fn missing(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::ResourceNotFound, format!("Invalid {field}: {message}"))
}

fn not_for(field: &str, condition: &str) -> ApiError {
    invalid(field, format!("it does not apply to a '{condition}' rule."))
}

/// Checks a webhook URL with the delivery's own guard (`http`/`https`, a host, no credentials,
/// no link-local or metadata address), so a rule that could never be delivered is refused now.
fn check_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    if url.len() > MAX_URL_LENGTH {
        return Err(invalid(
            "webhookUrl",
            format!("at most {MAX_URL_LENGTH} characters."),
        ));
    }
    state
        .endpoints
        .check_url(url)
        .map_err(|error| invalid("webhookUrl", format!("{error}.")))
}

/// The condition a request describes, every field checked against the condition.
fn condition_of(body: &CreateAlertRule) -> Result<AlertCondition, ApiError> {
    let name = body.condition.as_str();
    let errors = matches!(name, "licenseErrorEntered" | "licenseErrorLeft");
    if !errors && !body.error_kinds.is_empty() {
        return Err(not_for("errorKinds", name));
    }
    if !errors && body.group_id.is_some() {
        return Err(not_for("groupId", name));
    }
    let reclamation = matches!(name, "reclamationNoticed" | "reclamationActed");
    if !errors && !reclamation && name != "seats" && body.sku_id.is_some() {
        return Err(not_for("skuId", name));
    }
    if !reclamation && body.policy_id.is_some() {
        return Err(not_for("policyId", name));
    }
    if name != "seats" && body.threshold.is_some() {
        return Err(not_for("threshold", name));
    }
    if name != "seats" && body.percent.is_some() {
        return Err(not_for("percent", name));
    }
    if name != "subscriptionEnding" && body.days.is_some() {
        return Err(not_for("days", name));
    }
    if name != "processingLag" && body.seconds.is_some() {
        return Err(not_for("seconds", name));
    }
    if !errors && body.digest_window_seconds.is_some() {
        return Err(not_for("digestWindowSeconds", name));
    }
    let filter = || -> Result<ErrorFilter, ApiError> {
        let kinds = body
            .error_kinds
            .iter()
            .map(|text| {
                LicenseErrorKind::ALL
                    .into_iter()
                    .filter(|kind| *kind != LicenseErrorKind::Other)
                    .find(|kind| kind.as_str().eq_ignore_ascii_case(text))
                    .ok_or_else(|| {
                        invalid(
                            "errorKinds",
                            format!(
                                "'{text}': use CountViolation, MutuallyExclusiveViolation, DependencyViolation, ProhibitedInUsageLocationViolation or UniquenessViolation."
                            ),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ErrorFilter {
            kinds,
            group_id: body.group_id,
            sku_id: body.sku_id,
        })
    };
    match name {
        "licenseErrorEntered" => Ok(AlertCondition::LicenseErrorEntered(filter()?)),
        "licenseErrorLeft" => Ok(AlertCondition::LicenseErrorLeft(filter()?)),
        "seats" => {
            let threshold = match body.threshold.as_deref() {
                Some("percentUsed") => {
                    let percent = body
                        .percent
                        .ok_or_else(|| invalid("percent", "a 'percentUsed' threshold needs a percent (1-100)."))?;
                    if !(1..=100).contains(&percent) {
                        return Err(invalid("percent", format!("{percent}: use 1 to 100.")));
                    }
                    SeatThreshold::PercentUsed(percent as u8)
                }
                Some(other) => {
                    if body.percent.is_some() {
                        return Err(invalid("percent", "only a 'percentUsed' threshold takes a percent."));
                    }
                    match other {
                        "noneAvailable" => SeatThreshold::NoneAvailable,
                        "overAllocated" => SeatThreshold::OverAllocated,
                        _ => {
                            return Err(invalid(
                                "threshold",
                                format!("'{other}': use percentUsed, noneAvailable or overAllocated."),
                            ))
                        }
                    }
                }
                None => {
                    return Err(invalid(
                        "threshold",
                        "a 'seats' rule needs one: percentUsed, noneAvailable or overAllocated.",
                    ))
                }
            };
            Ok(AlertCondition::Seats {
                sku_id: body.sku_id,
                threshold,
            })
        }
        "subscriptionEnding" => {
            let days = body
                .days
                .ok_or_else(|| invalid("days", "a 'subscriptionEnding' rule needs days (1-3650)."))?;
            if !(1..=MAX_DAYS).contains(&days) {
                return Err(invalid("days", format!("{days}: use 1 to {MAX_DAYS}.")));
            }
            Ok(AlertCondition::SubscriptionEnding { within_days: days })
        }
        "processingLag" => {
            let seconds = body
                .seconds
                .ok_or_else(|| invalid("seconds", "a 'processingLag' rule needs seconds (1-604800)."))?;
            if !(1..=MAX_SECONDS).contains(&seconds) {
                return Err(invalid("seconds", format!("{seconds}: use 1 to {MAX_SECONDS}.")));
            }
            Ok(AlertCondition::ProcessingLag { over_seconds: seconds })
        }
        "reclamationNoticed" | "reclamationActed" => {
            let filter = ReclamationFilter {
                sku_id: body.sku_id,
                policy_id: body.policy_id,
            };
            Ok(if name == "reclamationNoticed" {
                AlertCondition::ReclamationNoticed(filter)
            } else {
                AlertCondition::ReclamationActed(filter)
            })
        }
        other => Err(invalid(
            "condition",
            format!(
                "'{other}': use licenseErrorEntered, licenseErrorLeft, seats, subscriptionEnding, processingLag, reclamationNoticed or reclamationActed."
            ),
        )),
    }
}

/// List alert rules.
///
/// licensd extension: the tenant's license alert rules, oldest first.
#[utoipa::path(get, path = "/licensd/v1/alertRules", tag = "licensd: alerts",
    responses((status = 200, description = "The tenant's alert rules", body = AlertRuleList)))]
pub async fn list_alert_rules(tenant: Tenant) -> Result<Json<AlertRuleList>, ApiError> {
    let rules = tenant
        .with_store(|store, tenant_id| {
            store
                .alert_rules(tenant_id)
                .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
    Ok(Json(AlertRuleList {
        value: rules.iter().map(wire_rule).collect(),
    }))
}

/// Get an alert rule.
///
/// licensd extension.
#[utoipa::path(get, path = "/licensd/v1/alertRules/{id}", tag = "licensd: alerts",
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "The rule", body = AlertRule),
        (status = 404, description = "No such rule in this tenant", body = ErrorResponse),
    ))]
pub async fn get_alert_rule(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<AlertRule>, ApiError> {
    let rule_id = Uuid::try_parse(id.trim()).map_err(|_| ApiError::not_found(&id))?;
    let rule = tenant
        .with_store(move |store, tenant_id| {
            store
                .alert_rules(tenant_id)
                .map_err(|error| ApiError::internal(error.to_string()))?
                .into_iter()
                .find(|rule| rule.rule_id == rule_id)
                .ok_or_else(|| ApiError::not_found(rule_id))
        })
        .await?;
    Ok(Json(wire_rule(&rule)))
}

/// Create an alert rule.
///
/// licensd extension. `condition` is `licenseErrorEntered` / `licenseErrorLeft` (optionally
/// `errorKinds`, `groupId`, `skuId`), `seats` (`threshold`: `percentUsed` with `percent`,
/// `noneAvailable` or `overAllocated`; optionally `skuId`), `subscriptionEnding` (`days`),
/// `processingLag` (`seconds`), `reclamationNoticed` (a reclamation policy's run gave seats a
/// notice: named once per notice) or `reclamationActed` (it reclaimed seats), both optionally
/// `skuId` and `policyId`. Alerts are posted to `webhookUrl` as `json`, `slack` or `teams`.
/// Error rules gather the matches of `digestWindowSeconds` (default 60; 0: one message per
/// change) into one message sent when the window closes.
#[utoipa::path(post, path = "/licensd/v1/alertRules", tag = "licensd: alerts", request_body = CreateAlertRule,
    responses(
        (status = 201, description = "The rule", body = AlertRule),
        (status = 400, description = "An invalid field (named in the message)", body = ErrorResponse),
        (status = 404, description = "The group, product or reclamation policy named does not exist in this tenant", body = ErrorResponse),
    ))]
pub async fn create_alert_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    JsonBody(body): JsonBody<CreateAlertRule>,
) -> Result<Response, ApiError> {
    let name = body.display_name.trim().to_string();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(invalid(
            "displayName",
            format!("give 1 to {MAX_NAME_LENGTH} characters."),
        ));
    }
    let condition = condition_of(&body)?;
    let digest_window_seconds = match &condition {
        AlertCondition::LicenseErrorEntered(_) | AlertCondition::LicenseErrorLeft(_) => {
            let window = body
                .digest_window_seconds
                .unwrap_or(DEFAULT_DIGEST_WINDOW_SECONDS);
            if window > MAX_DIGEST_WINDOW_SECONDS {
                return Err(invalid(
                    "digestWindowSeconds",
                    format!("{window}: use 0 (one message per change) to {MAX_DIGEST_WINDOW_SECONDS}."),
                ));
            }
            window
        }
        _ => 0,
    };
    check_url(&state, &body.webhook_url)?;
    let format = match body.format.as_deref() {
        None => AlertFormat::Json,
        Some(text) => AlertFormat::parse(text)
            .ok_or_else(|| invalid("format", format!("'{text}': use json, slack or teams.")))?,
    };
    // The group and product named must exist.
    let (group_id, sku_id) = match &condition {
        AlertCondition::LicenseErrorEntered(filter) | AlertCondition::LicenseErrorLeft(filter) => {
            (filter.group_id, filter.sku_id)
        }
        AlertCondition::Seats { sku_id, .. } => (None, *sku_id),
        AlertCondition::ReclamationNoticed(filter) | AlertCondition::ReclamationActed(filter) => {
            (None, filter.sku_id)
        }
        _ => (None, None),
    };
    // The reclamation policy named must exist.
    if let Some(policy_id) = match &condition {
        AlertCondition::ReclamationNoticed(filter) | AlertCondition::ReclamationActed(filter) => {
            filter.policy_id
        }
        _ => None,
    } {
        tenant
            .with_store(move |store, tenant_id| {
                let policies = store
                    .reclamation_policies(tenant_id)
                    .map_err(|error| ApiError::internal(error.to_string()))?;
                if policies.iter().any(|policy| policy.policy_id == policy_id) {
                    Ok(())
                } else {
                    Err(missing(
                        "policyId",
                        format!("no reclamation policy {policy_id} in this tenant."),
                    ))
                }
            })
            .await?;
    }
    tenant
        .read(move |engine| {
            if let Some(group_id) = group_id {
                engine
                    .group_view(group_id)
                    .map_err(|_| missing("groupId", format!("no group {group_id} in this tenant.")))?;
            }
            if let Some(sku_id) = sku_id {
                engine
                    .sku_usage(sku_id)
                    .map_err(|_| missing("skuId", format!("no product {sku_id} in this tenant.")))?;
            }
            Ok(())
        })
        .await?;
    let rule = AlertRuleRecord {
        rule_id: Uuid::new_v4(),
        name,
        condition,
        url: body.webhook_url.clone(),
        format,
        created_at: now().0,
        digest_window_seconds,
    };
    let audit = alert_rule_changed(
        &tenant.caller,
        "Add alert rule",
        rule.rule_id,
        &rule.name,
        rule.created_at,
    );
    let stored = rule.clone();
    let alerts = state.tenants.alerts();
    tenant
        .with_store(move |store, tenant_id| {
            let internal = |error: licensd_store::StoreError| ApiError::internal(error.to_string());
            if store.alert_rules(tenant_id).map_err(internal)?.len() >= MAX_RULES {
                return Err(ApiError::new(
                    ErrorCode::InvalidValue,
                    format!("A tenant has at most {MAX_RULES} alert rules: remove one first."),
                ));
            }
            store
                .insert_alert_rule(tenant_id, &stored, &[audit])
                .map_err(internal)?;
            alerts.reload(store, tenant_id).map_err(internal)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(wire_rule(&rule))).into_response())
}

/// Remove an alert rule.
///
/// licensd extension. Alerts it already raised are still delivered.
#[utoipa::path(delete, path = "/licensd/v1/alertRules/{id}", tag = "licensd: alerts",
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such rule in this tenant", body = ErrorResponse),
    ))]
pub async fn delete_alert_rule(
    State(state): State<AppState>,
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let rule_id = Uuid::try_parse(id.trim()).map_err(|_| ApiError::not_found(&id))?;
    let caller = tenant.caller.clone();
    let alerts = state.tenants.alerts();
    tenant
        .with_store(move |store, tenant_id| {
            let internal = |error: licensd_store::StoreError| ApiError::internal(error.to_string());
            let rule = store
                .alert_rules(tenant_id)
                .map_err(internal)?
                .into_iter()
                .find(|rule| rule.rule_id == rule_id)
                .ok_or_else(|| ApiError::not_found(rule_id))?;
            let audit = alert_rule_changed(&caller, "Delete alert rule", rule_id, &rule.name, now().0);
            if !store
                .delete_alert_rule(tenant_id, rule_id, &[audit])
                .map_err(internal)?
            {
                return Err(ApiError::not_found(rule_id));
            }
            alerts.reload(store, tenant_id).map_err(internal)?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}
