//! Graph `GET /v1.0/directory/subscriptions` (`companySubscription`, one per product) and the
//! admin endpoint that sets a subscription's lifecycle
//! (`PATCH /licensd/v1/skus/{skuId}/subscription`). The lifecycle itself (`Enabled` →
//! `Warning` → `Suspended` after the term's end) is `licensd_runtime::subscription_lifecycles`, which the
//! background processor also runs.

use axum::extract::Path;
use axum::Json;
use licensd_api_types::graph_sync::{
    CompanySubscription, CompanySubscriptionCollectionResponse, ServicePlanStatus,
};
use licensd_api_types::time::{format_date_time, parse_date_time};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::{CapabilityStatus, Command, Engine, Uuid};
use licensd_store::SubscriptionLifecycle;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::convert;
use crate::api::{ApiError, JsonBody, Tenant};
use crate::odata::ODataRequest;
use licensd_runtime::access::Caller;
use licensd_runtime::subscription_lifecycles::{lifecycle_status, managed};

fn company_subscription(
    engine: &Engine,
    tenant_id: Uuid,
    sku_id: Uuid,
    lifecycle: Option<&SubscriptionLifecycle>,
    now: i64,
) -> Result<CompanySubscription, ApiError> {
    let sku = convert::subscribed_sku(engine, tenant_id, sku_id)?;
    let status = engine.sku_usage(sku_id)?.capability_status;
    let next = lifecycle.and_then(|lifecycle| lifecycle.ends_at).map(|ends_at| {
        let (lifecycle_status, next) = lifecycle_status(ends_at, now);
        // A status set by hand past the lifecycle's has no next date of its own.
        if lifecycle_status == status || !managed(status) {
            format_date_time(next)
        } else {
            format_date_time(ends_at)
        }
    });
    let total = sku.prepaid_units.enabled
        + sku.prepaid_units.warning
        + sku.prepaid_units.suspended
        + sku.prepaid_units.locked_out;
    Ok(CompanySubscription {
        id: sku_id.to_string(),
        commerce_subscription_id: sku_id.to_string(),
        sku_id,
        sku_part_number: sku.sku_part_number,
        status: sku.capability_status,
        total_licenses: total,
        is_trial: lifecycle.is_some_and(|lifecycle| lifecycle.is_trial),
        created_date_time: lifecycle
            .and_then(|lifecycle| lifecycle.created_at)
            .map(format_date_time),
        next_lifecycle_date_time: next,
        service_status: sku
            .service_plans
            .into_iter()
            .map(|plan| ServicePlanStatus {
                service_plan_id: plan.service_plan_id,
                service_plan_name: plan.service_plan_name,
                provisioning_status: plan.provisioning_status,
                applies_to: plan.applies_to,
            })
            .collect(),
        owner_type: Some(sku.applies_to),
    })
}

async fn lifecycles(tenant: &Tenant) -> Result<Vec<SubscriptionLifecycle>, ApiError> {
    tenant
        .with_store(|store, tenant_id| {
            store
                .subscription_lifecycles(tenant_id)
                .map_err(|error| ApiError {
                    log_detail: Some(error.to_string()),
                    ..ApiError::of(ErrorCode::StorageUnavailable)
                })
        })
        .await
}

/// List the tenant's subscriptions.
///
/// Graph-compatible `companySubscription`: one per product, with its status, seats and the
/// lifecycle set by `PATCH /licensd/v1/skus/{skuId}/subscription`.
#[utoipa::path(get, path = "/v1.0/directory/subscriptions", tag = "Graph: directory",
    responses(
        (status = 200, description = "Every subscription of the tenant", body = CompanySubscriptionCollectionResponse),
    ))]
pub async fn list_subscriptions(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    refuse_query_options(&request)?;
    let lifecycles = lifecycles(&tenant).await?;
    let tenant_id = tenant.id();
    let now = licensd_runtime::tenants::now().0;
    let value = tenant
        .read(move |engine| {
            engine
                .sku_usages()
                .into_iter()
                .map(|usage| {
                    let lifecycle = lifecycles
                        .iter()
                        .find(|lifecycle| lifecycle.sku_id == usage.sku_id);
                    company_subscription(engine, tenant_id, usage.sku_id, lifecycle, now)
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .await?;
    let response = CompanySubscriptionCollectionResponse {
        odata_context: request.context("directory/subscriptions"),
        value,
    };
    serde_json::to_value(response)
        .map(Json)
        .map_err(|error| ApiError::internal(error.to_string()))
}

/// Get one subscription.
///
/// Graph-compatible; the id is the product's `skuId` (also `commerceSubscriptionId`).
#[utoipa::path(get, path = "/v1.0/directory/subscriptions/{id}", tag = "Graph: directory",
    params(("id" = String, Path, description = "The subscription's id (the product's skuId)")),
    responses(
        (status = 200, description = "The subscription", body = CompanySubscription),
        (status = 404, description = "No such subscription", body = ErrorResponse),
    ))]
pub async fn get_subscription(
    tenant: Tenant,
    request: ODataRequest,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    refuse_query_options(&request)?;
    let sku_id = Uuid::try_parse(&id).map_err(|_| ApiError::not_found(&id))?;
    let lifecycles = lifecycles(&tenant).await?;
    let tenant_id = tenant.id();
    let now = licensd_runtime::tenants::now().0;
    let subscription = tenant
        .read(move |engine| {
            engine
                .sku_usage(sku_id)
                .map_err(|_| ApiError::not_found(sku_id))?;
            let lifecycle = lifecycles.iter().find(|lifecycle| lifecycle.sku_id == sku_id);
            company_subscription(engine, tenant_id, sku_id, lifecycle, now)
        })
        .await?;
    let value = serde_json::to_value(subscription).map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(Json(crate::odata::with_context(
        request.context("directory/subscriptions/$entity"),
        value,
    )))
}

fn refuse_query_options(request: &ODataRequest) -> Result<(), ApiError> {
    match request.raw_query.as_deref() {
        Some(query) if !query.is_empty() => Err(ApiError::unsupported_query(
            "directory/subscriptions takes no query options in licensd.",
        )),
        _ => Ok(()),
    }
}

/// The lifecycle of a product's subscription; absent properties keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubscriptionLifecycleRequest {
    /// When the subscription started (ISO 8601 UTC), or `null`.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(schema_with = licensd_api_types::schemas::optional_date_time)]
    pub created_date_time: Option<Option<String>>,
    /// The end of the current term (ISO 8601 UTC); `null`: the subscription does not expire.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(schema_with = licensd_api_types::schemas::optional_date_time)]
    pub next_lifecycle_date_time: Option<Option<String>>,
    pub is_trial: Option<bool>,
}

fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn parse_time(text: Option<String>, property: &str) -> Result<Option<i64>, ApiError> {
    text.map(|text| {
        parse_date_time(&text).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidValue,
                format!("{property} '{text}' is not a date and time such as 2026-12-31T00:00:00Z."),
            )
        })
    })
    .transpose()
}

/// Set a product's subscription lifecycle.
///
/// licensd extension: the start, the end of the term (`nextLifecycleDateTime`) and the trial
/// flag of the product's `companySubscription`. The product's status follows at once (a past
/// end moves it to `Warning` or `Suspended`, a renewal back to `Enabled`), and later by the
/// background processor as time passes.
#[utoipa::path(patch, path = "/licensd/v1/skus/{sku_id}/subscription", tag = "licensd: products",
    params(("sku_id" = Uuid, Path, description = "The product's skuId")),
    request_body = SubscriptionLifecycleRequest,
    responses(
        (status = 200, description = "The subscription with its new lifecycle", body = CompanySubscription),
        (status = 400, description = "A date that cannot be read or an unknown property", body = ErrorResponse),
        (status = 404, description = "No such product", body = ErrorResponse),
    ))]
pub async fn set_lifecycle(
    tenant: Tenant,
    Path(sku_id): Path<String>,
    JsonBody(request): JsonBody<SubscriptionLifecycleRequest>,
) -> Result<Json<CompanySubscription>, ApiError> {
    let sku_id = crate::api::parse_object_id(&sku_id)?;
    tenant
        .read(move |engine| {
            engine
                .sku_usage(sku_id)
                .map(|_| ())
                .map_err(|_| ApiError::not_found(sku_id))
        })
        .await?;
    let existing = lifecycles(&tenant)
        .await?
        .into_iter()
        .find(|lifecycle| lifecycle.sku_id == sku_id);
    let mut lifecycle = existing.unwrap_or(SubscriptionLifecycle {
        sku_id,
        created_at: None,
        ends_at: None,
        is_trial: false,
    });
    if let Some(created) = request.created_date_time {
        lifecycle.created_at = parse_time(created, "createdDateTime")?;
    }
    if let Some(ends) = request.next_lifecycle_date_time {
        lifecycle.ends_at = parse_time(ends, "nextLifecycleDateTime")?;
    }
    if let Some(is_trial) = request.is_trial {
        lifecycle.is_trial = is_trial;
    }
    let stored = lifecycle;
    let sku_part_number = tenant
        .read(move |engine| Ok(engine.sku_usage(sku_id)?.sku_part_number))
        .await?;
    let record = lifecycle_audit_record(&tenant.caller, existing, &lifecycle, sku_part_number);
    tenant
        .with_store(move |store, tenant_id| {
            let unavailable = |error: licensd_store::StoreError| ApiError {
                log_detail: Some(error.to_string()),
                ..ApiError::of(ErrorCode::StorageUnavailable)
            };
            store
                .set_subscription_lifecycle(tenant_id, &stored)
                .map_err(unavailable)?;
            store.append_audit(tenant_id, &[record]).map_err(unavailable)
        })
        .await?;
    let now = licensd_runtime::tenants::now().0;
    let current = tenant
        .read(move |engine| Ok(engine.sku_usage(sku_id)?.capability_status))
        .await?;
    let wanted = lifecycle
        .ends_at
        .map(|ends_at| lifecycle_status(ends_at, now).0)
        .unwrap_or(CapabilityStatus::Enabled);
    if managed(current) && wanted != current {
        tenant
            .execute(Command::SetCapabilityStatus {
                sku_id,
                capability_status: wanted,
            })
            .await?;
    }
    let tenant_id = tenant.id();
    let subscription = tenant
        .read(move |engine| company_subscription(engine, tenant_id, sku_id, Some(&lifecycle), now))
        .await?;
    Ok(Json(subscription))
}

/// "Update subscription": who changed a product's subscription lifecycle, before → after.
fn lifecycle_audit_record(
    caller: &Caller,
    before: Option<SubscriptionLifecycle>,
    after: &SubscriptionLifecycle,
    sku_part_number: String,
) -> licensd_store::AuditRecord {
    let describe = |lifecycle: Option<&SubscriptionLifecycle>| {
        let time = |value: Option<i64>| value.map(format_date_time).unwrap_or_default();
        vec![
            (
                "createdDateTime",
                time(lifecycle.and_then(|lifecycle| lifecycle.created_at)),
            ),
            (
                "nextLifecycleDateTime",
                time(lifecycle.and_then(|lifecycle| lifecycle.ends_at)),
            ),
            (
                "isTrial",
                lifecycle.is_some_and(|lifecycle| lifecycle.is_trial).to_string(),
            ),
        ]
    };
    licensd_store::AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: licensd_runtime::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: "Update subscription".to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "Product".to_string(),
        target_id: Some(after.sku_id),
        target_name: sku_part_number,
        modified_properties: licensd_runtime::audit::modified(
            &describe(before.as_ref()),
            &describe(Some(after)),
        ),
        request_id: caller.request_id.clone(),
    }
}
