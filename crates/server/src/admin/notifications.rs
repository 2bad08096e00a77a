//! Delivery status in licensd's admin API: every change subscription of the tenant (removed and
//! expired ones too, with why), and the recent deliveries of one subscription or of every owner
//! (alerts included) — status, attempts, the endpoint's last answer, the next attempt.

use axum::extract::{Path, RawQuery};
use axum::Json;
use licensd_api_types::time::format_date_time;
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::Uuid;
use licensd_store::{ChangeSubscription, DeliveryRecord, DeliveryStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::admin::catalog::query_parameter;
use crate::api::{ApiError, Tenant};

/// A change subscription and where it stands.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStatus {
    pub id: Uuid,
    pub resource: String,
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub expiration_date_time: String,
    pub created_date_time: String,
    /// `active`, `expired`, or `removed` (its endpoint kept failing).
    pub status: String,
    pub removed_date_time: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionStatusList {
    pub value: Vec<SubscriptionStatus>,
}

/// One delivery (a POST of one or more notifications).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub id: i64,
    /// `graph-subscription`, `graph-lifecycle`, or another owner's kind (alerts).
    pub owner_kind: String,
    pub owner_id: Uuid,
    pub url: String,
    /// Notifications in the body.
    pub items: u32,
    /// `pending`, `delivered` or `abandoned`.
    pub status: String,
    pub attempts: u32,
    pub created_date_time: String,
    /// When a pending delivery is tried next.
    pub next_attempt_date_time: Option<String>,
    pub last_attempt_date_time: Option<String>,
    /// The HTTP status of the endpoint's last answer.
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub finished_date_time: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    pub value: Vec<Delivery>,
}

/// How many deliveries to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    /// 1 to 500, newest first (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub top: Option<usize>,
}

pub fn delivery_of(record: DeliveryRecord) -> Delivery {
    Delivery {
        id: record.delivery_id,
        owner_kind: record.owner_kind,
        owner_id: record.owner_id,
        url: record.url,
        items: record.items,
        status: record.status.as_str().to_string(),
        attempts: record.attempts,
        created_date_time: format_date_time(record.created_at),
        next_attempt_date_time: (record.status == DeliveryStatus::Pending)
            .then(|| format_date_time(record.next_attempt_at)),
        last_attempt_date_time: record.last_attempt_at.map(format_date_time),
        last_status_code: record.last_status,
        last_error: record.last_error,
        finished_date_time: record.finished_at.map(format_date_time),
    }
}

fn status_of(subscription: ChangeSubscription, now: i64) -> SubscriptionStatus {
    let status = if subscription.removed_at.is_some() {
        "removed"
    } else if subscription.expires_at <= now {
        "expired"
    } else {
        "active"
    };
    SubscriptionStatus {
        id: subscription.subscription_id,
        resource: subscription.resource,
        change_type: subscription.change_types,
        notification_url: subscription.notification_url,
        lifecycle_notification_url: subscription.lifecycle_notification_url,
        expiration_date_time: format_date_time(subscription.expires_at),
        created_date_time: format_date_time(subscription.created_at),
        status: status.to_string(),
        removed_date_time: subscription.removed_at.map(format_date_time),
    }
}

fn storage(error: licensd_store::StoreError) -> ApiError {
    ApiError {
        log_detail: Some(error.to_string()),
        ..ApiError::of(ErrorCode::StorageUnavailable)
    }
}

/// `top`, read from the raw query so that text which is not a number is answered as JSON, as
/// every other admin query option is.
fn limit(raw_query: Option<&str>) -> Result<usize, ApiError> {
    match query_parameter(raw_query, "top") {
        None => Ok(50),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|top| (1..=500).contains(top))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidValue,
                    format!("top '{text}' is not a number from 1 to 500."),
                )
            }),
    }
}

/// List change subscriptions with their status.
///
/// licensd extension: every change subscription of the tenant, including expired ones and those
/// licensd removed because their endpoint kept failing.
#[utoipa::path(get, path = "/licensd/v1/subscriptions", tag = "licensd: notifications",
    responses((status = 200, description = "The tenant's change subscriptions", body = SubscriptionStatusList)))]
pub async fn list_subscription_statuses(tenant: Tenant) -> Result<Json<SubscriptionStatusList>, ApiError> {
    let now = licensd_runtime::tenants::now().0;
    let stored = tenant
        .with_store(|store, tenant_id| store.change_subscriptions(tenant_id).map_err(storage))
        .await?;
    Ok(Json(SubscriptionStatusList {
        value: stored
            .into_iter()
            .map(|subscription| status_of(subscription, now))
            .collect(),
    }))
}

/// List a subscription's deliveries.
///
/// licensd extension: the recent deliveries of one change subscription (its notifications and
/// lifecycle notifications), newest first.
#[utoipa::path(get, path = "/licensd/v1/subscriptions/{id}/deliveries", tag = "licensd: notifications",
    params(("id" = Uuid, Path, description = "The subscription's id"), DeliveriesQuery),
    responses(
        (status = 200, description = "Its deliveries, newest first", body = DeliveryList),
        (status = 400, description = "top out of range", body = ErrorResponse),
        (status = 404, description = "No such subscription", body = ErrorResponse),
    ))]
pub async fn list_subscription_deliveries(
    tenant: Tenant,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = limit(raw_query.as_deref())?;
    let subscription_id = Uuid::try_parse(&id).map_err(|_| ApiError::not_found(&id))?;
    let records = tenant
        .with_store(move |store, tenant_id| {
            let known = store
                .change_subscriptions(tenant_id)
                .map_err(storage)?
                .iter()
                .any(|subscription| subscription.subscription_id == subscription_id);
            if !known {
                return Err(ApiError::not_found(subscription_id));
            }
            store
                .deliveries(tenant_id, Some(subscription_id), limit)
                .map_err(storage)
        })
        .await?;
    Ok(Json(DeliveryList {
        value: records.into_iter().map(delivery_of).collect(),
    }))
}

/// List recent deliveries.
///
/// licensd extension: the tenant's recent webhook deliveries of every owner (change
/// notifications, lifecycle notifications, alerts), newest first.
#[utoipa::path(get, path = "/licensd/v1/deliveries", tag = "licensd: notifications",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "Recent deliveries, newest first", body = DeliveryList),
        (status = 400, description = "top out of range", body = ErrorResponse),
    ))]
pub async fn list_deliveries(
    tenant: Tenant,
    RawQuery(raw_query): RawQuery,
) -> Result<Json<DeliveryList>, ApiError> {
    let limit = limit(raw_query.as_deref())?;
    let records = tenant
        .with_store(move |store, tenant_id| store.deliveries(tenant_id, None, limit).map_err(storage))
        .await?;
    Ok(Json(DeliveryList {
        value: records.into_iter().map(delivery_of).collect(),
    }))
}
