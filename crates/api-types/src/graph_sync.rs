//! Microsoft Graph shapes of JSON batching (`POST /v1.0/$batch`), delta queries
//! (`users/delta`, `groups/delta`) and the tenant's subscriptions (`directory/subscriptions`,
//! Graph's `companySubscription`), kept apart from the entity shapes of [`crate::graph`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /v1.0/$batch`: up to 20 requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequest {
    pub requests: Vec<BatchRequestItem>,
}

/// One request of a batch, as Graph's JSON batching describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BatchRequestItem {
    /// Correlates the request with its response; unique in the batch.
    #[schema(example = "1")]
    pub id: String,
    /// `GET`, `POST`, `PATCH`, `PUT` or `DELETE`.
    #[schema(schema_with = crate::schemas::batch_method)]
    pub method: String,
    /// The address relative to `/v1.0`, such as `/users?$top=5` or `subscribedSkus`.
    #[schema(example = "/users?$select=id,assignedLicenses")]
    pub url: String,
    /// Request headers (`Content-Type` for a body, `ConsistencyLevel`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::schemas::optional_header_map)]
    pub headers: Option<BTreeMap<String, String>>,
    /// The JSON body of a `POST`, `PATCH` or `PUT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
    /// Ids of earlier requests that must succeed before this one runs; when one fails this
    /// request is answered 424 without running. (`depends_on` is accepted too: Microsoft's
    /// Python SDK sends that name.)
    #[serde(default, alias = "depends_on", skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
}

/// The answer of `POST /v1.0/$batch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    pub responses: Vec<BatchResponseItem>,
}

/// The answer to one request of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponseItem {
    pub id: String,
    /// The HTTP status the request would have had alone.
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The JSON body (a text body, such as a `$count`, as a JSON string); absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub body: Option<serde_json::Value>,
}

/// Graph `companySubscription`: the tenant's subscription to one product, with its lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompanySubscription {
    /// The subscription's id (licensd: the product's `skuId`, one subscription per product).
    pub id: String,
    /// The id of the subscription in the commerce system (licensd: the same as `id`).
    pub commerce_subscription_id: String,
    pub sku_id: Uuid,
    #[schema(example = "ENTERPRISEPACK")]
    pub sku_part_number: String,
    /// `Enabled`, `Warning`, `Suspended`, `Deleted` or `LockedOut`.
    #[schema(example = "Enabled")]
    pub status: String,
    /// Seats of the subscription.
    pub total_licenses: i64,
    pub is_trial: bool,
    /// When the subscription started (ISO 8601 UTC).
    pub created_date_time: Option<String>,
    /// When its status changes next (the end of the term, of the grace period, ...).
    pub next_lifecycle_date_time: Option<String>,
    /// The service plans the subscription provides.
    pub service_status: Vec<ServicePlanStatus>,
    /// `User` (assignable to users and groups) or `Company`.
    #[schema(example = "User")]
    pub owner_type: Option<String>,
}

/// Graph `servicePlanInfo` inside a `companySubscription`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePlanStatus {
    pub service_plan_id: Uuid,
    #[schema(example = "EXCHANGE_S_ENTERPRISE")]
    pub service_plan_name: String,
    #[schema(example = "Success")]
    pub provisioning_status: String,
    #[schema(example = "User")]
    pub applies_to: String,
}

/// A page of `GET /v1.0/directory/subscriptions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CompanySubscriptionCollectionResponse {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    pub value: Vec<CompanySubscription>,
}

/// A page of a delta query: the objects that changed, then `@odata.nextLink` while more pages
/// follow or `@odata.deltaLink` on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeltaResponse {
    #[serde(rename = "@odata.context")]
    pub odata_context: String,
    #[serde(rename = "@odata.nextLink", default, skip_serializing_if = "Option::is_none")]
    pub odata_next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default, skip_serializing_if = "Option::is_none")]
    pub odata_delta_link: Option<String>,
    /// Changed objects (in the shape of `$select`), and `{"id", "@removed": {"reason": "deleted"}}`
    /// for deleted ones.
    #[schema(value_type = Vec<Object>)]
    pub value: Vec<serde_json::Value>,
}
