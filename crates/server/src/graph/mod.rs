//! The Microsoft Graph v1.0-compatible surface under `/v1.0`: `subscribedSkus`, `users` and
//! `groups` with their licensing actions and relationships, with the same paths, JSON, query
//! options and error envelope as Graph, so Graph clients (Microsoft's SDKs included) work
//! unchanged. The one extension, `POST /v1.0/groups/{id}/reprocessLicenseAssignment`, is marked
//! as such in the OpenAPI document and `docs/api.md`.

pub mod audit_logs;
pub mod batch;
pub mod convert;
pub mod delta;
pub mod directory_objects;
pub mod directory_subscriptions;
pub mod groups;
pub mod metadata;
pub mod subscribed_skus;
pub mod users;

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Query options of collections of users and groups (for the OpenAPI document; parsing is in
/// [`crate::odata`]).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CollectionQuery {
    /// Properties to return, comma separated (`licenseAssignmentStates` and `assignedPlans` only
    /// this way).
    #[serde(rename = "$select")]
    select: Option<String>,
    /// `eq`, `ne`, `and`, `or`, `not`, `startswith`, `in`, and `any` on `proxyAddresses` and
    /// `assignedLicenses` (`assignedLicenses/any(x:x/skuId eq {guid})`).
    #[serde(rename = "$filter")]
    filter: Option<String>,
    /// Page size, 1 to 999 (default 100).
    #[serde(rename = "$top")]
    top: Option<u32>,
    /// `true` adds `@odata.count`; needs the header `ConsistencyLevel: eventual`.
    #[serde(rename = "$count")]
    count: Option<bool>,
    /// Opaque position of the next page; use `@odata.nextLink` as given.
    #[serde(rename = "$skiptoken")]
    skiptoken: Option<String>,
    /// One property, `asc` (default) or `desc`: users `displayName`, `userPrincipalName`
    /// (`mail` in an advanced query); groups `displayName`. With `$filter` an advanced query.
    #[serde(rename = "$orderby")]
    orderby: Option<String>,
    /// Graph's tokenized search, `"property:words"` clauses joined by `AND` / `OR`; users
    /// `displayName`, `userPrincipalName`, `mail`; groups `displayName`. Needs
    /// `ConsistencyLevel: eventual`.
    #[serde(rename = "$search")]
    search: Option<String>,
    /// `members` on groups, `memberOf` on users, optionally with `($select=...)`; at most 20
    /// objects are expanded.
    #[serde(rename = "$expand")]
    expand: Option<String>,
}

/// The query options of a `/$count` segment.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CountQuery {
    /// As for the collection.
    #[serde(rename = "$filter")]
    filter: Option<String>,
    /// As for the collection.
    #[serde(rename = "$search")]
    search: Option<String>,
}

/// The header every `/$count` segment needs.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct RequiredConsistencyLevelHeader {
    /// Must be `eventual`.
    #[serde(rename = "ConsistencyLevel")]
    #[param(inline)]
    consistency_level: ConsistencyLevel,
}

/// The one value of the `ConsistencyLevel` header licensd (like Graph) knows.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub enum ConsistencyLevel {
    #[serde(rename = "eventual")]
    Eventual,
}

/// The header advanced queries need.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ConsistencyLevelHeader {
    /// `eventual`, required with `$count=true`, `$search`, and `$orderby` with `$filter`; other
    /// values mean no advanced query (and are refused only where one is needed).
    #[serde(rename = "ConsistencyLevel")]
    consistency_level: Option<String>,
}

/// `$select`, the only query option of single entities and small collections.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SelectQuery {
    /// Properties to return, comma separated.
    #[serde(rename = "$select")]
    select: Option<String>,
}

/// Every `/v1.0` route with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(audit_logs::list_directory_audits))
        .routes(routes!(batch::run_batch))
        .routes(routes!(delta::users_delta))
        .routes(routes!(delta::groups_delta))
        // Graph's function-call form, which Microsoft's SDKs send (`users/delta()`).
        .route("/v1.0/users/delta()", axum::routing::get(delta::users_delta))
        .route("/v1.0/groups/delta()", axum::routing::get(delta::groups_delta))
        .routes(routes!(directory_subscriptions::list_subscriptions))
        .routes(routes!(directory_subscriptions::get_subscription))
        .routes(routes!(directory_subscriptions::set_lifecycle))
        .routes(routes!(subscribed_skus::list_subscribed_skus))
        .routes(routes!(subscribed_skus::get_subscribed_sku))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(users::count_users))
        .routes(routes!(users::get_user, users::update_user, users::delete_user))
        .routes(routes!(users::assign_user_license))
        .routes(routes!(users::list_license_details))
        .routes(routes!(users::reprocess_user))
        .routes(routes!(users::list_member_of))
        .routes(routes!(users::count_member_of))
        .routes(routes!(users::list_group_memberships))
        .routes(routes!(users::get_membership))
        .routes(routes!(users::list_transitive_member_of))
        .routes(routes!(users::count_transitive_member_of))
        .routes(routes!(groups::list_groups, groups::create_group))
        .routes(routes!(groups::count_groups))
        .routes(routes!(
            groups::get_group,
            groups::update_group,
            groups::delete_group
        ))
        .routes(routes!(groups::assign_group_license))
        .routes(routes!(groups::list_members))
        .routes(routes!(groups::count_members))
        .routes(routes!(groups::list_transitive_members))
        .routes(routes!(groups::count_transitive_members))
        .routes(routes!(groups::list_user_members))
        .routes(routes!(groups::count_user_members))
        .routes(routes!(groups::list_group_members))
        .routes(routes!(groups::get_member))
        .routes(routes!(groups::add_member))
        .routes(routes!(groups::remove_member))
        .routes(routes!(groups::list_members_with_license_errors))
        .routes(routes!(groups::reprocess_group))
        .routes(routes!(directory_objects::get_by_ids))
        .routes(routes!(metadata::metadata_document))
}
