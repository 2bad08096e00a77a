//! `/licensd/v1` reclamation policies: create, list, read and delete them
//! (`/reclamationPolicies`), run one on demand — a dry run by default — (`/{id}/run`), list the
//! notices the policies gave (`/reclamationNotices`), and revert a reclamation from its audit
//! record (`/reclamations/{auditId}/revert`); enable or disable a policy, change its notice
//! period (`PATCH`), and exempt a user from one or undo it (`/{id}/exemptions/{userId}`). The work is the runtime's (`reclamation`); the
//! background processor also runs every enabled policy periodically.

use axum::extract::RawQuery;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::reclamation::{
    CreateReclamationPolicy, ReclamationNotice, ReclamationNoticeList, ReclamationPolicy,
    ReclamationPolicyList, ReclamationRevert, ReclamationRun, ReclamationSeat, ReclamationStep,
    RunReclamationPolicy, UpdateReclamationPolicy,
};
use licensd_api_types::time::format_date_time;
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::reclamation::ReclaimStep;
use licensd_engine::spend::{Amounts, SeatPrice};
use licensd_engine::Uuid;
use licensd_runtime::reclamation::{
    self as runtime_reclamation, RevertError, RunReport, SeatOutcome, MAX_DAYS,
};
use licensd_runtime::tenants::now;
use licensd_store::{ReclamationPolicyRecord, StoreError};
use rustc_hash::FxHashMap;

use super::catalog::query_parameter;
use super::spend::{amounts, stored_price_map};
use crate::api::{ApiError, JsonBody, PathParameters, Tenant};

/// At most this many policies per tenant.
const MAX_POLICIES: usize = 100;
const MAX_NAME_LENGTH: usize = 256;
/// At most this many exempt users and groups per policy.
const MAX_EXCLUSIONS: usize = 1000;
const DEFAULT_INACTIVE_DAYS: u32 = 90;
const DEFAULT_NOTICE_DAYS: u32 = 14;

fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorCode::InvalidValue, format!("{field}: {message}"))
}

fn unavailable(error: StoreError) -> ApiError {
    ApiError {
        log_detail: Some(error.to_string()),
        ..ApiError::of(ErrorCode::StorageUnavailable)
    }
}

fn wire_policy(policy: &ReclamationPolicyRecord) -> ReclamationPolicy {
    ReclamationPolicy {
        id: policy.policy_id,
        display_name: policy.display_name.clone(),
        reason: policy.reason.clone(),
        inactive_days: u32::try_from(policy.inactive_days).unwrap_or(0),
        sku_id: policy.sku_id,
        notice_days: u32::try_from(policy.notice_days).unwrap_or(0),
        enabled: policy.enabled,
        excluded_user_ids: policy.excluded_users.clone(),
        excluded_group_ids: policy.excluded_groups.clone(),
        created_date_time: format_date_time(policy.created_at),
        last_run_date_time: policy.last_run_at.map(format_date_time),
    }
}

async fn find_policy(tenant: &Tenant, id: &str) -> Result<ReclamationPolicyRecord, ApiError> {
    let policy_id = Uuid::try_parse(id.trim()).map_err(|_| ApiError::not_found(id))?;
    tenant
        .with_store(move |store, tenant_id| {
            store
                .reclamation_policies(tenant_id)
                .map_err(unavailable)?
                .into_iter()
                .find(|policy| policy.policy_id == policy_id)
                .ok_or_else(|| ApiError::not_found(policy_id))
        })
        .await
}

/// List reclamation policies.
///
/// licensd extension: every reclamation policy of the tenant, oldest first.
#[utoipa::path(get, path = "/licensd/v1/reclamationPolicies", tag = "licensd: spend",
    responses((status = 200, description = "Every policy", body = ReclamationPolicyList)))]
pub async fn list_policies(tenant: Tenant) -> Result<Json<ReclamationPolicyList>, ApiError> {
    let policies = tenant
        .with_store(|store, tenant_id| store.reclamation_policies(tenant_id).map_err(unavailable))
        .await?;
    Ok(Json(ReclamationPolicyList {
        value: policies.iter().map(wire_policy).collect(),
    }))
}

/// Create a reclamation policy.
///
/// licensd extension: reclaim the seats of users who are `inactive` (no sign-in for
/// `inactiveDays`, default 90), `disabled` (`accountEnabled` false) or have `left`
/// (`employeeLeaveDateTime` passed), of one product (`skuId`) or every product. A seat first gets
/// a notice and is acted on `noticeDays` later (default 14; 0: at once): its direct assignment is
/// removed and the user is removed from the static groups that give the product; a seat also
/// held through a dynamic or nested group is marked for review. Users in `excludedUserIds` and
/// members of `excludedGroupIds` are never acted on. Enabled policies (the default) run in the
/// background every minute; `POST .../run` runs one at once. Audited ("Add reclamation policy").
#[utoipa::path(post, path = "/licensd/v1/reclamationPolicies", tag = "licensd: spend",
    request_body = CreateReclamationPolicy,
    responses(
        (status = 201, description = "The policy", body = ReclamationPolicy),
        (status = 400, description = "An invalid field (named in the message)", body = ErrorResponse),
    ))]
pub async fn create_policy(
    tenant: Tenant,
    JsonBody(body): JsonBody<CreateReclamationPolicy>,
) -> Result<Response, ApiError> {
    let display_name = body.display_name.trim().to_string();
    if display_name.is_empty() || display_name.chars().count() > MAX_NAME_LENGTH {
        return Err(invalid(
            "displayName",
            format!("give 1 to {MAX_NAME_LENGTH} characters."),
        ));
    }
    if runtime_reclamation::parse_reason(&body.reason).is_none() {
        return Err(invalid(
            "reason",
            format!("'{}': use inactive, disabled or left.", body.reason),
        ));
    }
    let inactive_days = body.inactive_days.unwrap_or(DEFAULT_INACTIVE_DAYS);
    if inactive_days == 0 || i64::from(inactive_days) > MAX_DAYS {
        return Err(invalid("inactiveDays", format!("give 1 to {MAX_DAYS} days.")));
    }
    if body.inactive_days.is_some() && body.reason != "inactive" {
        return Err(invalid("inactiveDays", "only for the reason inactive."));
    }
    let notice_days = body.notice_days.unwrap_or(DEFAULT_NOTICE_DAYS);
    if i64::from(notice_days) > MAX_DAYS {
        return Err(invalid("noticeDays", format!("give 0 to {MAX_DAYS} days.")));
    }
    if body.excluded_user_ids.len() > MAX_EXCLUSIONS || body.excluded_group_ids.len() > MAX_EXCLUSIONS {
        return Err(invalid(
            "excludedUserIds",
            format!("at most {MAX_EXCLUSIONS} users and {MAX_EXCLUSIONS} groups."),
        ));
    }
    let (sku_id, users, groups) = (
        body.sku_id,
        body.excluded_user_ids.clone(),
        body.excluded_group_ids.clone(),
    );
    tenant
        .read(move |engine| {
            if let Some(sku_id) = sku_id {
                engine
                    .sku_usage(sku_id)
                    .map_err(|_| invalid("skuId", format!("no product {sku_id} in this tenant.")))?;
            }
            for user_id in &users {
                engine
                    .user_view(*user_id)
                    .map_err(|_| invalid("excludedUserIds", format!("no user {user_id} in this tenant.")))?;
            }
            for group_id in &groups {
                engine.group_view(*group_id).map_err(|_| {
                    invalid("excludedGroupIds", format!("no group {group_id} in this tenant."))
                })?;
            }
            Ok(())
        })
        .await?;
    let policy = ReclamationPolicyRecord {
        policy_id: Uuid::new_v4(),
        display_name,
        reason: body.reason.clone(),
        inactive_days: if body.reason == "inactive" {
            i64::from(inactive_days)
        } else {
            0
        },
        sku_id: body.sku_id,
        notice_days: i64::from(notice_days),
        enabled: body.enabled.unwrap_or(true),
        excluded_users: body.excluded_user_ids,
        excluded_groups: body.excluded_group_ids,
        created_at: now().0,
        last_run_at: None,
    };
    let audit = runtime_reclamation::policy_audit(&tenant.caller, &policy, true);
    let stored = policy.clone();
    tenant
        .with_store(move |store, tenant_id| {
            if store.reclamation_policies(tenant_id).map_err(unavailable)?.len() >= MAX_POLICIES {
                return Err(ApiError::new(
                    ErrorCode::InvalidValue,
                    format!("A tenant has at most {MAX_POLICIES} reclamation policies: remove one first."),
                ));
            }
            store
                .put_reclamation_policy(tenant_id, &stored, &[audit])
                .map_err(unavailable)
        })
        .await?;
    Ok((StatusCode::CREATED, Json(wire_policy(&policy))).into_response())
}

/// Get a reclamation policy.
#[utoipa::path(get, path = "/licensd/v1/reclamationPolicies/{id}", tag = "licensd: spend",
    params(("id" = Uuid, Path, description = "The policy's id")),
    responses(
        (status = 200, description = "The policy", body = ReclamationPolicy),
        (status = 404, description = "No such policy in this tenant", body = ErrorResponse),
    ))]
pub async fn get_policy(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<ReclamationPolicy>, ApiError> {
    Ok(Json(wire_policy(&find_policy(&tenant, &id).await?)))
}

/// Remove a reclamation policy.
///
/// licensd extension: the policy and its notices go; what it reclaimed stays reclaimed (revert
/// each from its audit record). Audited ("Delete reclamation policy").
#[utoipa::path(delete, path = "/licensd/v1/reclamationPolicies/{id}", tag = "licensd: spend",
    params(("id" = Uuid, Path, description = "The policy's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such policy in this tenant", body = ErrorResponse),
    ))]
pub async fn delete_policy(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let policy = find_policy(&tenant, &id).await?;
    let audit = runtime_reclamation::policy_audit(&tenant.caller, &policy, false);
    let policy_id = policy.policy_id;
    let deleted = tenant
        .with_store(move |store, tenant_id| {
            store
                .delete_reclamation_policy(tenant_id, policy_id, &[audit])
                .map_err(unavailable)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found(policy_id));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Stores a changed policy with its audit record.
async fn store_policy(
    tenant: &Tenant,
    policy: ReclamationPolicyRecord,
    audit: licensd_store::AuditRecord,
) -> Result<(), ApiError> {
    tenant
        .with_store(move |store, tenant_id| {
            store
                .put_reclamation_policy(tenant_id, &policy, &[audit])
                .map_err(unavailable)
        })
        .await
}

/// Change a reclamation policy.
///
/// licensd extension: enable or disable it (a disabled policy is not run in the background; its
/// notices stay, and it can still be run on demand) and change its notice period (notices
/// already given keep their date). Audited ("Update reclamation policy", with the old and new
/// values); a request that changes nothing records nothing.
#[utoipa::path(patch, path = "/licensd/v1/reclamationPolicies/{id}", tag = "licensd: spend",
    params(("id" = Uuid, Path, description = "The policy's id")),
    request_body = UpdateReclamationPolicy,
    responses(
        (status = 200, description = "The policy", body = ReclamationPolicy),
        (status = 400, description = "An invalid field (named in the message)", body = ErrorResponse),
        (status = 404, description = "No such policy in this tenant", body = ErrorResponse),
    ))]
pub async fn update_policy(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<UpdateReclamationPolicy>,
) -> Result<Json<ReclamationPolicy>, ApiError> {
    if let Some(days) = body.notice_days {
        if i64::from(days) > MAX_DAYS {
            return Err(invalid("noticeDays", format!("give 0 to {MAX_DAYS} days.")));
        }
    }
    let policy = find_policy(&tenant, &id).await?;
    let mut changed = policy.clone();
    let mut properties = Vec::new();
    if let Some(enabled) = body.enabled {
        if let Some((with_enabled, audit)) =
            runtime_reclamation::enabled_change(&tenant.caller, &policy, enabled)
        {
            changed.enabled = with_enabled.enabled;
            properties.extend(audit.modified_properties);
        }
    }
    if let Some(days) = body.notice_days.map(i64::from) {
        if days != policy.notice_days {
            changed.notice_days = days;
            properties.push(licensd_store::ModifiedProperty {
                display_name: "NoticeDays".to_string(),
                old_value: policy.notice_days.to_string(),
                new_value: days.to_string(),
            });
        }
    }
    if !properties.is_empty() {
        let audit = runtime_reclamation::policy_update_audit(&tenant.caller, &policy, properties);
        store_policy(&tenant, changed.clone(), audit).await?;
    }
    Ok(Json(wire_policy(&changed)))
}

/// The policy and user of an exemption's path; the user must exist when `must_exist`.
async fn exemption_target(
    tenant: &Tenant,
    id: &str,
    user_id: &str,
    must_exist: bool,
) -> Result<(ReclamationPolicyRecord, Uuid, String), ApiError> {
    let policy = find_policy(tenant, id).await?;
    let user_id = Uuid::try_parse(user_id.trim()).map_err(|_| ApiError::not_found(user_id))?;
    let name = tenant
        .read(move |engine| match engine.user_view(user_id) {
            Ok(user) => Ok(user.user_principal_name),
            Err(_) if !must_exist => Ok(String::new()),
            Err(_) => Err(ApiError::not_found(user_id)),
        })
        .await?;
    Ok((policy, user_id, name))
}

/// Exempt a user from a reclamation policy.
///
/// licensd extension: the policy never acts on the user; the notices it gave the user are
/// withdrawn at once. Audited ("Update reclamation policy", `ExemptUser`); exempting a user who
/// already is changes nothing.
#[utoipa::path(put, path = "/licensd/v1/reclamationPolicies/{id}/exemptions/{user_id}", tag = "licensd: spend",
    params(
        ("id" = Uuid, Path, description = "The policy's id"),
        ("user_id" = Uuid, Path, description = "The user's id"),
    ),
    responses(
        (status = 200, description = "The policy, with the user in excludedUserIds", body = ReclamationPolicy),
        (status = 400, description = "The policy already exempts the most users it may", body = ErrorResponse),
        (status = 404, description = "No such policy or user in this tenant", body = ErrorResponse),
    ))]
pub async fn exempt_user(
    tenant: Tenant,
    PathParameters((id, user_id)): PathParameters<(String, String)>,
) -> Result<Json<ReclamationPolicy>, ApiError> {
    let (policy, user_id, name) = exemption_target(&tenant, &id, &user_id, true).await?;
    let Some((changed, audit)) =
        runtime_reclamation::exemption_change(&tenant.caller, &policy, user_id, &name, true)
    else {
        return Ok(Json(wire_policy(&policy)));
    };
    if changed.excluded_users.len() > MAX_EXCLUSIONS {
        return Err(invalid(
            "userId",
            format!("a policy exempts at most {MAX_EXCLUSIONS} users."),
        ));
    }
    store_policy(&tenant, changed.clone(), audit).await?;
    Ok(Json(wire_policy(&changed)))
}

/// Undo a user's exemption from a reclamation policy.
///
/// licensd extension: the policy applies to the user again from its next run. Audited ("Update
/// reclamation policy", `ExemptUser`). 404 when the user is not exempt.
#[utoipa::path(delete, path = "/licensd/v1/reclamationPolicies/{id}/exemptions/{user_id}", tag = "licensd: spend",
    params(
        ("id" = Uuid, Path, description = "The policy's id"),
        ("user_id" = Uuid, Path, description = "The user's id"),
    ),
    responses(
        (status = 204, description = "No longer exempt"),
        (status = 404, description = "No such policy, or the user is not exempt from it", body = ErrorResponse),
    ))]
pub async fn unexempt_user(
    tenant: Tenant,
    PathParameters((id, user_id)): PathParameters<(String, String)>,
) -> Result<StatusCode, ApiError> {
    // A deleted user's exemption may still be undone.
    let (policy, user_id, name) = exemption_target(&tenant, &id, &user_id, false).await?;
    let (changed, audit) =
        runtime_reclamation::exemption_change(&tenant.caller, &policy, user_id, &name, false)
            .ok_or_else(|| ApiError::not_found(format!("exemption of {user_id}")))?;
    store_policy(&tenant, changed, audit).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn wire_step(step: &ReclaimStep) -> ReclamationStep {
    match step {
        ReclaimStep::RemoveDirectLicense(_) => ReclamationStep {
            action: "removeDirectLicense".to_string(),
            group_id: None,
            group_display_name: None,
            review_reason: None,
        },
        ReclaimStep::RemoveFromGroup {
            group_id,
            display_name,
        } => ReclamationStep {
            action: "removeFromGroup".to_string(),
            group_id: Some(*group_id),
            group_display_name: Some(display_name.clone()),
            review_reason: None,
        },
        ReclaimStep::Review {
            group_id,
            display_name,
            why,
        } => ReclamationStep {
            action: "review".to_string(),
            group_id: Some(*group_id),
            group_display_name: Some(display_name.clone()),
            review_reason: Some(why.as_str().to_string()),
        },
    }
}

/// The run's answer; `saved` counts the seats reclaimed (or, in a dry run, reclaimed now).
pub fn wire_run(report: &RunReport, prices: &FxHashMap<Uuid, SeatPrice>) -> ReclamationRun {
    let mut saved = Amounts::new();
    let (mut reclaimed, mut pending, mut review) = (0u64, 0u64, 0u64);
    let seats = report
        .seats
        .iter()
        .map(|seat| {
            let price = prices.get(&seat.candidate.sku_id);
            let (audit_id, error) = match &seat.outcome {
                SeatOutcome::Reclaimed { audit_id } => (Some(*audit_id), None),
                SeatOutcome::Failed { message, audit_id } => (*audit_id, Some(message.clone())),
                _ => (None, None),
            };
            match seat.outcome {
                SeatOutcome::Reclaimed { .. } | SeatOutcome::WouldReclaim => {
                    reclaimed += 1;
                    if let Some(price) = price {
                        *saved.entry(price.currency.clone()).or_default() += price.minor_units;
                    }
                }
                SeatOutcome::Noticed | SeatOutcome::Pending => pending += 1,
                SeatOutcome::Review => review += 1,
                SeatOutcome::Failed { .. } => {}
            }
            ReclamationSeat {
                user_id: seat.candidate.user.user_id,
                user_principal_name: seat.candidate.user.user_principal_name.clone(),
                sku_id: seat.candidate.sku_id,
                sku_part_number: seat.candidate.sku_part_number.clone(),
                reason: seat.reason.as_str().to_string(),
                since_date_time: seat.candidate.since.map(|at| format_date_time(at.0)),
                outcome: seat.outcome.as_str().to_string(),
                noticed_date_time: seat.noticed_at.map(format_date_time),
                action_date_time: format_date_time(seat.act_at),
                steps: seat.candidate.steps.iter().map(wire_step).collect(),
                audit_id,
                error,
                price_per_seat: price.map(|price| licensd_api_types::spend::format_amount(price.minor_units)),
                currency: price.map(|price| price.currency.clone()),
            }
        })
        .collect();
    ReclamationRun {
        policy_id: report.policy_id,
        dry_run: report.dry_run,
        run_date_time: format_date_time(report.ran_at),
        seats,
        reclaimed,
        pending,
        review,
        withdrawn_notices: report.withdrawn_notices as u64,
        money_saved_per_month: amounts(&saved),
    }
}

/// Run a reclamation policy now.
///
/// licensd extension. `dryRun` (default true) lists every seat the policy applies to and what
/// it would do — give a notice (`noticed`), wait for one given earlier (`pending`), reclaim it
/// now (`wouldReclaim`) or ask for a review (`review`) — and changes nothing. `dryRun: false`
/// gives the notices, reclaims the seats whose notice date has come (`reclaimed`, with the
/// "Reclaim license" audit record that says what was removed) and withdraws the notices of
/// seats the policy no longer applies to.
#[utoipa::path(post, path = "/licensd/v1/reclamationPolicies/{id}/run", tag = "licensd: spend",
    params(("id" = Uuid, Path, description = "The policy's id")),
    request_body = RunReclamationPolicy,
    responses(
        (status = 200, description = "What the run did (or would do)", body = ReclamationRun),
        (status = 404, description = "No such policy in this tenant", body = ErrorResponse),
    ))]
pub async fn run_policy(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<RunReclamationPolicy>,
) -> Result<Json<ReclamationRun>, ApiError> {
    let policy = find_policy(&tenant, &id).await?;
    let dry_run = body.dry_run.unwrap_or(true);
    let prices = stored_price_map(&tenant).await?;
    let report = tenant
        .with_runtime(move |store, runtime, caller| {
            runtime_reclamation::run_policy(store, runtime, &policy, now().0, dry_run, caller)
                .map_err(ApiError::from)
        })
        .await?;
    Ok(Json(wire_run(&report, &prices)))
}

/// List reclamation notices.
///
/// licensd extension: the seats the policies will act on (`pending`, with the date) and those
/// that need a review by hand (`review`: held through a dynamic or nested group), as of each
/// policy's last run; `?policyId=` for one policy.
#[utoipa::path(get, path = "/licensd/v1/reclamationNotices", tag = "licensd: spend",
    params(("policyId" = Option<Uuid>, Query, description = "Only this policy's notices")),
    responses(
        (status = 200, description = "The notices", body = ReclamationNoticeList),
        (status = 400, description = "A policyId that is not an id", body = ErrorResponse),
    ))]
pub async fn list_notices(
    tenant: Tenant,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<ReclamationNoticeList>, ApiError> {
    let policy_id = match query_parameter(raw_query.as_deref(), "policyId") {
        Some(text) => Some(
            Uuid::try_parse(text.trim())
                .map_err(|_| invalid("policyId", format!("'{text}' is not an object id.")))?,
        ),
        None => None,
    };
    let (policies, notices) = tenant
        .with_store(move |store, tenant_id| {
            Ok((
                store.reclamation_policies(tenant_id).map_err(unavailable)?,
                store
                    .reclamation_notices(tenant_id, policy_id)
                    .map_err(unavailable)?,
            ))
        })
        .await?;
    let value = tenant
        .read(move |engine| {
            Ok(notices
                .iter()
                .map(|notice| ReclamationNotice {
                    policy_id: notice.policy_id,
                    policy_display_name: policies
                        .iter()
                        .find(|policy| policy.policy_id == notice.policy_id)
                        .map(|policy| policy.display_name.clone())
                        .unwrap_or_default(),
                    user_id: notice.user_id,
                    user_principal_name: engine
                        .user_view(notice.user_id)
                        .map(|user| user.user_principal_name)
                        .unwrap_or_default(),
                    sku_id: notice.sku_id,
                    sku_part_number: engine
                        .sku_usage(notice.sku_id)
                        .map(|usage| usage.sku_part_number)
                        .unwrap_or_default(),
                    state: if notice.review { "review" } else { "pending" }.to_string(),
                    noticed_date_time: format_date_time(notice.noticed_at),
                    action_date_time: format_date_time(notice.act_at),
                })
                .collect())
        })
        .await?;
    Ok(Json(ReclamationNoticeList { value }))
}

/// Revert a reclamation.
///
/// licensd extension: restores what the "Reclaim license" audit record `auditId` says was
/// removed — the direct license with its disabled plans, the group memberships — each an
/// ordinary audited change, and records "Revert license reclamation". A reclamation is reverted
/// once; a step that cannot be restored (a group deleted meanwhile) is listed in `failures`.
#[utoipa::path(post, path = "/licensd/v1/reclamations/{audit_id}/revert", tag = "licensd: spend",
    params(("audit_id" = Uuid, Path, description = "The \"Reclaim license\" audit record's id")),
    responses(
        (status = 200, description = "What was restored", body = ReclamationRevert),
        (status = 400, description = "Not a reclamation, or already reverted", body = ErrorResponse),
        (status = 404, description = "No such audit record in this tenant", body = ErrorResponse),
    ))]
pub async fn revert_reclamation(
    tenant: Tenant,
    PathParameters(audit_id): PathParameters<String>,
) -> Result<Json<ReclamationRevert>, ApiError> {
    let audit_id = Uuid::try_parse(audit_id.trim()).map_err(|_| ApiError::not_found(&audit_id))?;
    let report = tenant
        .with_runtime(move |store, runtime, caller| {
            runtime_reclamation::revert(store, runtime, audit_id, caller, now().0).map_err(
                |error| match error {
                    RevertError::NotFound(id) => ApiError::not_found(id),
                    RevertError::NotAReclamation(_) | RevertError::AlreadyReverted(..) => {
                        ApiError::new(ErrorCode::InvalidValue, format!("{error}."))
                    }
                    RevertError::Execute(error) => ApiError::from(error),
                },
            )
        })
        .await?;
    Ok(Json(ReclamationRevert {
        reclamation_audit_id: report.reclamation_audit_id,
        audit_id: report.audit_id,
        user_id: report.user_id,
        restored_sku_ids: report
            .restored_licenses
            .iter()
            .map(|license| license.sku_id)
            .collect(),
        restored_group_ids: report.restored_groups,
        failures: report.failures,
    }))
}
