//! Graph change notifications: `POST/GET/PATCH/DELETE /v1.0/subscriptions` for `users`,
//! `users/{id}`, `groups` and `groups/{id}/members`, with Graph's validation handshake on
//! create, its maximum expiry (41,760 minutes) and its notification and lifecycle bodies
//! ([`GraphRenderer`], handed to the runtime's `ChangeNotifier`, which adds the notifications of
//! each write to the outbox in the write's transaction; `licensd-delivery` sends them).

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::time::{format_date_time, parse_date_time};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::Uuid;
use licensd_runtime::notifications::{
    parse_change_types, ChangeType, LifecycleEvent, NotificationRenderer, ObjectChange, ObjectKind,
    WatchedResource,
};
use licensd_store::{AuditRecord, ChangeSubscription};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::{ApiError, JsonBody, Tenant};
use crate::odata::ODataRequest;
use crate::AppState;

/// Graph's longest subscription to users and groups: 41,760 minutes (29 days).
pub const MAX_EXPIRATION_MINUTES: i64 = 41_760;
/// Graph's longest `clientState`.
pub const MAX_CLIENT_STATE: usize = 128;

/// A change-notification subscription (Graph's `subscription`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub id: Uuid,
    /// `users`, `users/{id}`, `groups` or `groups/{id}/members`.
    pub resource: String,
    /// Comma-separated: `created`, `updated`, `deleted`, each at most once (`parse_change_types`).
    #[schema(
        pattern = "^(?:created|updated|deleted|created,updated|created,deleted|updated,created|updated,deleted|deleted,created|deleted,updated|created,updated,deleted|created,deleted,updated|updated,created,deleted|updated,deleted,created|deleted,created,updated|deleted,updated,created)$"
    )]
    pub change_type: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    /// ISO 8601 UTC.
    pub expiration_date_time: String,
    /// The token that created it.
    pub creator_id: Option<String>,
    pub application_id: Option<String>,
    pub include_resource_data: bool,
    pub latest_supported_tls_version: String,
}

/// `GET /v1.0/subscriptions`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionCollectionResponse {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    pub value: Vec<Subscription>,
}

/// The body of `POST /v1.0/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateSubscriptionRequest {
    /// Comma-separated: `created`, `updated`, `deleted`, each at most once (`parse_change_types`).
    #[schema(
        pattern = "^(?:created|updated|deleted|created,updated|created,deleted|updated,created|updated,deleted|deleted,created|deleted,updated|created,updated,deleted|created,deleted,updated|updated,created,deleted|updated,deleted,created|deleted,created,updated|deleted,updated,created)$"
    )]
    pub change_type: String,
    /// `http` or `https`; must answer the validation handshake.
    pub notification_url: String,
    /// `users`, `users/{id}`, `groups` or `groups/{id}/members` (`WatchedResource::parse`).
    #[schema(
        pattern = "^/?(?:users|groups|users/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}|groups/[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}/members)$"
    )]
    pub resource: String,
    /// ISO 8601 UTC, in the future and at most 41,760 minutes away.
    #[schema(schema_with = licensd_api_types::schemas::date_time)]
    pub expiration_date_time: String,
    /// Sent back in every notification (at most 128 characters).
    #[schema(max_length = 128)]
    pub client_state: Option<String>,
    /// Where `missed` and `subscriptionRemoved` go; must answer the handshake too.
    pub lifecycle_notification_url: Option<String>,
    /// Only `false`: licensd sends resource ids, not resource data.
    #[schema(schema_with = licensd_api_types::schemas::optional_false)]
    pub include_resource_data: Option<bool>,
    /// Accepted and ignored (licensd's client speaks TLS 1.2 and 1.3).
    pub latest_supported_tls_version: Option<String>,
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

/// The body of `PATCH /v1.0/subscriptions/{id}`: the renewal.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenewSubscriptionRequest {
    /// ISO 8601 UTC, in the future and at most 41,760 minutes away.
    pub expiration_date_time: String,
    #[serde(rename = "@odata.type")]
    pub odata_type: Option<String>,
}

fn subscription_of(stored: &ChangeSubscription) -> Subscription {
    Subscription {
        id: stored.subscription_id,
        resource: stored.resource.clone(),
        change_type: stored.change_types.clone(),
        notification_url: stored.notification_url.clone(),
        lifecycle_notification_url: stored.lifecycle_notification_url.clone(),
        client_state: stored.client_state.clone(),
        expiration_date_time: format_date_time(stored.expires_at),
        creator_id: None,
        application_id: None,
        include_resource_data: false,
        latest_supported_tls_version: "v1_2".to_string(),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidValue, message)
}

/// The audit record of a change to a subscription ("Add/Update/Delete change notification
/// subscription"), written in the change's transaction.
fn subscription_audit(
    caller: &licensd_runtime::access::Caller,
    operation: &str,
    subscription_id: Uuid,
    resource: &str,
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: licensd_runtime::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: format!("{operation} change notification subscription"),
        operation_type: operation.to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "Subscription".to_string(),
        target_id: Some(subscription_id),
        target_name: resource.to_string(),
        modified_properties: licensd_runtime::audit::modified(before, after),
        request_id: caller.request_id.clone(),
    }
}

fn storage(error: licensd_store::StoreError) -> ApiError {
    ApiError {
        log_detail: Some(error.to_string()),
        ..ApiError::of(ErrorCode::StorageUnavailable)
    }
}

/// The expiry a request asks for, checked as Graph does.
fn expiry(text: &str, now: i64) -> Result<i64, ApiError> {
    let expires_at = parse_date_time(text).ok_or_else(|| {
        invalid(format!(
            "expirationDateTime '{text}' is not a date and time such as 2026-12-31T00:00:00Z."
        ))
    })?;
    if expires_at <= now {
        return Err(invalid(format!(
            "Subscription expiration '{text}' is in the past."
        )));
    }
    if expires_at > now + MAX_EXPIRATION_MINUTES * 60_000 {
        return Err(invalid(format!(
            "Subscription expiration can only be {MAX_EXPIRATION_MINUTES} minutes in the future."
        )));
    }
    Ok(expires_at)
}

/// A random validation token (Graph's is opaque text).
fn validation_token() -> String {
    format!("Validation: licensd {}", Uuid::new_v4())
}

async fn stored_subscriptions(tenant: &Tenant) -> Result<Vec<ChangeSubscription>, ApiError> {
    tenant
        .with_store(|store, tenant_id| store.change_subscriptions(tenant_id).map_err(storage))
        .await
}

/// Whether a stored subscription is live (neither expired nor removed) at `now`.
fn live(subscription: &ChangeSubscription, now: i64) -> bool {
    subscription.removed_at.is_none() && subscription.expires_at > now
}

async fn reload(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    let notifier = state.tenants.notifier();
    tenant
        .with_store(move |store, tenant_id| notifier.reload(store, tenant_id).map_err(storage))
        .await
}

/// Create a subscription.
///
/// Graph-compatible change notifications for `users`, `users/{id}`, `groups` and
/// `groups/{id}/members`. The endpoint (and the lifecycle endpoint, if given) must answer the
/// validation request — a POST with `?validationToken=...` — with `200 OK` and the token as
/// `text/plain` within 10 seconds. Only `http`/`https` URLs; link-local and cloud-metadata
/// addresses are refused unless the operator allows them.
#[utoipa::path(post, path = "/v1.0/subscriptions", tag = "Graph: change notifications",
    request_body = CreateSubscriptionRequest,
    responses(
        (status = 201, description = "The subscription", body = Subscription, headers(("Location" = String, description = "The subscription's address"))),
        (status = 400, description = "Invalid body, unsupported resource, expiry too far, a refused URL or a failed validation", body = ErrorResponse),
        (status = 404, description = "The user or group watched does not exist", body = ErrorResponse),
    ))]
pub async fn create_change_subscription(
    State(state): State<AppState>,
    tenant: Tenant,
    request: ODataRequest,
    JsonBody(body): JsonBody<CreateSubscriptionRequest>,
) -> Result<Response, ApiError> {
    let now = licensd_runtime::tenants::now().0;
    let resource = WatchedResource::parse(&body.resource).ok_or_else(|| {
        invalid(format!(
            "Resource '{}' is not supported: licensd sends change notifications for users, users/{{id}}, groups and groups/{{id}}/members.",
            body.resource
        ))
    })?;
    let change_types = body.change_type.replace(' ', "");
    if parse_change_types(&change_types).is_none() {
        return Err(invalid(format!(
            "changeType '{}' is not a comma-separated list of created, updated and deleted.",
            body.change_type
        )));
    }
    let expires_at = expiry(&body.expiration_date_time, now)?;
    if let Some(client_state) = &body.client_state {
        if client_state.chars().count() > MAX_CLIENT_STATE {
            return Err(invalid(format!(
                "clientState is longer than {MAX_CLIENT_STATE} characters."
            )));
        }
    }
    if body.include_resource_data == Some(true) {
        return Err(ApiError::new(
            ErrorCode::NotSupported,
            "includeResourceData true is not supported: licensd's notifications carry the changed object's id.",
        ));
    }
    let validator = state.endpoints.clone();
    let mut endpoints = vec![("notificationUrl", body.notification_url.clone())];
    if let Some(url) = &body.lifecycle_notification_url {
        endpoints.push(("lifecycleNotificationUrl", url.clone()));
    }
    for (property, url) in &endpoints {
        validator
            .check_url(url)
            .map_err(|error| invalid(format!("{property} is refused: {error}")))?;
    }
    match resource {
        WatchedResource::User(user_id) => {
            tenant
                .read(move |engine| {
                    engine
                        .user_view(user_id)
                        .map(|_| ())
                        .map_err(|_| ApiError::not_found(user_id))
                })
                .await?
        }
        WatchedResource::GroupMembers(group_id) => {
            tenant
                .read(move |engine| {
                    engine
                        .group_view(group_id)
                        .map(|_| ())
                        .map_err(|_| ApiError::not_found(group_id))
                })
                .await?
        }
        WatchedResource::Users | WatchedResource::Groups => {}
    }
    for (property, url) in &endpoints {
        validator.validate(url, &validation_token()).await.map_err(|error| {
            invalid(format!(
                "Subscription validation request failed ({property}): {error}. The endpoint must answer the POST with validationToken with 200 OK and the token as text/plain within 10 seconds."
            ))
        })?;
    }
    let stored = ChangeSubscription {
        subscription_id: Uuid::new_v4(),
        resource: body.resource.trim().trim_start_matches('/').to_string(),
        change_types,
        notification_url: body.notification_url,
        lifecycle_notification_url: body.lifecycle_notification_url,
        client_state: body.client_state,
        expires_at,
        created_at: now,
        removed_at: None,
    };
    let to_store = stored.clone();
    let audit = subscription_audit(
        &tenant.caller,
        "Add",
        stored.subscription_id,
        &stored.resource,
        &[],
        &[
            ("ChangeType", stored.change_types.clone()),
            ("NotificationUrl", stored.notification_url.clone()),
            ("ExpirationDateTime", format_date_time(stored.expires_at)),
        ],
    );
    tenant
        .with_store(move |store, tenant_id| {
            store
                .create_change_subscription(tenant_id, &to_store, &[audit])
                .map_err(storage)
        })
        .await?;
    reload(&state, &tenant).await?;
    let location = format!("{}/v1.0/subscriptions/{}", request.origin, stored.subscription_id);
    let value = serde_json::to_value(subscription_of(&stored))
        .map_err(|error| ApiError::internal(error.to_string()))?;
    let body = crate::odata::with_context(request.context("subscriptions/$entity"), value);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(body)).into_response())
}

/// List subscriptions.
///
/// Graph-compatible: the tenant's live subscriptions (expired and removed ones are gone, as in
/// Graph; `GET /licensd/v1/subscriptions` shows them with their deliveries).
#[utoipa::path(get, path = "/v1.0/subscriptions", tag = "Graph: change notifications",
    responses(
        (status = 200, description = "The live subscriptions", body = SubscriptionCollectionResponse),
    ))]
pub async fn list_change_subscriptions(
    tenant: Tenant,
    request: ODataRequest,
) -> Result<Json<Value>, ApiError> {
    let now = licensd_runtime::tenants::now().0;
    let value = stored_subscriptions(&tenant)
        .await?
        .iter()
        .filter(|subscription| live(subscription, now))
        .map(subscription_of)
        .collect();
    let response = SubscriptionCollectionResponse {
        odata_context: request.context("subscriptions"),
        value,
    };
    serde_json::to_value(response)
        .map(Json)
        .map_err(|error| ApiError::internal(error.to_string()))
}

async fn live_subscription(tenant: &Tenant, id: &str) -> Result<ChangeSubscription, ApiError> {
    let subscription_id = Uuid::try_parse(id).map_err(|_| ApiError::not_found(id))?;
    let now = licensd_runtime::tenants::now().0;
    stored_subscriptions(tenant)
        .await?
        .into_iter()
        .find(|subscription| subscription.subscription_id == subscription_id && live(subscription, now))
        .ok_or_else(|| ApiError::not_found(id))
}

/// Get a subscription.
#[utoipa::path(get, path = "/v1.0/subscriptions/{id}", tag = "Graph: change notifications",
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 200, description = "The subscription", body = Subscription),
        (status = 404, description = "No such live subscription", body = ErrorResponse),
    ))]
pub async fn get_change_subscription(
    tenant: Tenant,
    request: ODataRequest,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let stored = live_subscription(&tenant, &id).await?;
    let value = serde_json::to_value(subscription_of(&stored))
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(Json(crate::odata::with_context(
        request.context("subscriptions/$entity"),
        value,
    )))
}

/// Renew a subscription.
///
/// Graph-compatible: a new `expirationDateTime`, at most 41,760 minutes away. An expired
/// subscription cannot be renewed (404): create a new one.
#[utoipa::path(patch, path = "/v1.0/subscriptions/{id}", tag = "Graph: change notifications",
    params(("id" = Uuid, Path, description = "The subscription's id")),
    request_body = RenewSubscriptionRequest,
    responses(
        (status = 200, description = "The renewed subscription", body = Subscription),
        (status = 400, description = "An expiry in the past or too far", body = ErrorResponse),
        (status = 404, description = "No such live subscription", body = ErrorResponse),
    ))]
pub async fn renew_change_subscription(
    State(state): State<AppState>,
    tenant: Tenant,
    request: ODataRequest,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RenewSubscriptionRequest>,
) -> Result<Json<Value>, ApiError> {
    let now = licensd_runtime::tenants::now().0;
    let mut stored = live_subscription(&tenant, &id).await?;
    let expires_at = expiry(&body.expiration_date_time, now)?;
    let subscription_id = stored.subscription_id;
    let audit = subscription_audit(
        &tenant.caller,
        "Update",
        subscription_id,
        &stored.resource,
        &[("ExpirationDateTime", format_date_time(stored.expires_at))],
        &[("ExpirationDateTime", format_date_time(expires_at))],
    );
    let renewed = tenant
        .with_store(move |store, tenant_id| {
            store
                .renew_change_subscription(tenant_id, subscription_id, expires_at, &[audit])
                .map_err(storage)
        })
        .await?;
    if !renewed {
        return Err(ApiError::not_found(&id));
    }
    reload(&state, &tenant).await?;
    stored.expires_at = expires_at;
    let value = serde_json::to_value(subscription_of(&stored))
        .map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(Json(crate::odata::with_context(
        request.context("subscriptions/$entity"),
        value,
    )))
}

/// Delete a subscription.
#[utoipa::path(delete, path = "/v1.0/subscriptions/{id}", tag = "Graph: change notifications",
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses(
        (status = 204, description = "Deleted: no more notifications"),
        (status = 404, description = "No such subscription", body = ErrorResponse),
    ))]
pub async fn delete_change_subscription(
    State(state): State<AppState>,
    tenant: Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subscription_id = Uuid::try_parse(&id).map_err(|_| ApiError::not_found(&id))?;
    let resource = stored_subscriptions(&tenant)
        .await?
        .into_iter()
        .find(|subscription| subscription.subscription_id == subscription_id)
        .map(|subscription| subscription.resource)
        .unwrap_or_default();
    let audit = subscription_audit(
        &tenant.caller,
        "Delete",
        subscription_id,
        &resource,
        &[("Resource", resource.clone())],
        &[],
    );
    let deleted = tenant
        .with_store(move |store, tenant_id| {
            store
                .delete_change_subscription(tenant_id, subscription_id, &[audit])
                .map_err(storage)
        })
        .await?;
    if !deleted {
        return Err(ApiError::not_found(&id));
    }
    reload(&state, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Graph's notification and lifecycle bodies.
pub struct GraphRenderer;

fn resource_path(change: &ObjectChange) -> String {
    match change.kind {
        ObjectKind::User => format!("Users/{}", change.id),
        ObjectKind::Group => format!("Groups/{}", change.id),
    }
}

impl NotificationRenderer for GraphRenderer {
    fn changes(
        &self,
        tenant_id: Uuid,
        subscription: &ChangeSubscription,
        changes: &[ObjectChange],
    ) -> Vec<u8> {
        let expiration = format_date_time(subscription.expires_at);
        let value: Vec<Value> = changes
            .iter()
            .map(|change| {
                let resource = resource_path(change);
                let mut resource_data = json!({
                    "@odata.type": match change.kind {
                        ObjectKind::User => "#Microsoft.Graph.User",
                        ObjectKind::Group => "#Microsoft.Graph.Group",
                    },
                    "@odata.id": resource,
                    "id": change.id,
                    "organizationId": tenant_id,
                });
                if !change.members.is_empty() {
                    let members: Vec<Value> = change
                        .members
                        .iter()
                        .map(|(member, removed)| {
                            if *removed {
                                json!({"id": member, "@removed": {"reason": "deleted"}})
                            } else {
                                json!({"id": member})
                            }
                        })
                        .collect();
                    resource_data["members@delta"] = Value::Array(members);
                }
                json!({
                    "subscriptionId": subscription.subscription_id,
                    "subscriptionExpirationDateTime": expiration,
                    "changeType": match change.change_type {
                        ChangeType::Created => "created",
                        ChangeType::Updated => "updated",
                        ChangeType::Deleted => "deleted",
                    },
                    "resource": resource,
                    "resourceData": resource_data,
                    "clientState": subscription.client_state,
                    "tenantId": tenant_id,
                })
            })
            .collect();
        json!({ "value": value }).to_string().into_bytes()
    }

    fn lifecycle(
        &self,
        tenant_id: Uuid,
        subscription: &ChangeSubscription,
        event: LifecycleEvent,
    ) -> Vec<u8> {
        json!({
            "value": [{
                "subscriptionId": subscription.subscription_id,
                "subscriptionExpirationDateTime": format_date_time(subscription.expires_at),
                "tenantId": tenant_id,
                "clientState": subscription.client_state,
                "lifecycleEvent": event.as_str(),
            }]
        })
        .to_string()
        .into_bytes()
    }
}
