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
pub mod nesting;
pub mod subscribed_skus;
pub mod subscriptions;
pub mod users;

use licensd_runtime::access::{CommandKind, ReadScope, RouteAccess};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::guard::{guard, guarded};
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
    #[param(min_length = 1)]
    select: Option<String>,
    /// `eq`, `ne`, `and`, `or`, `not`, `startswith`, `in`, and `any` on `proxyAddresses` and
    /// `assignedLicenses` (`assignedLicenses/any(x:x/skuId eq {guid})`). The pattern is the
    /// regular part of what is accepted: parentheses and `collection/$count` (an advanced query:
    /// `$count=true` and `ConsistencyLevel: eventual`) are accepted too.
    #[serde(rename = "$filter")]
    #[param(min_length = 1)]
    filter: Option<String>,
    /// Page size, 1 to 999 (default 100).
    #[serde(rename = "$top")]
    #[param(minimum = 1, maximum = 999)]
    top: Option<u32>,
    /// `true` adds `@odata.count`; needs the header `ConsistencyLevel: eventual`.
    #[serde(rename = "$count")]
    count: Option<bool>,
    /// Opaque position of the next page; use `@odata.nextLink` as given.
    #[serde(rename = "$skiptoken")]
    #[param(min_length = 1)]
    skiptoken: Option<String>,
    /// One property, `asc` (default) or `desc`: users `displayName`, `userPrincipalName`
    /// (`mail` in an advanced query); groups `displayName`. With `$filter` an advanced query.
    #[serde(rename = "$orderby")]
    #[param(min_length = 1)]
    orderby: Option<String>,
    /// Graph's tokenized search, `"property:words"` clauses joined by `AND` / `OR`; users
    /// `displayName`, `userPrincipalName`, `mail`; groups `displayName`. Needs
    /// `ConsistencyLevel: eventual`.
    #[serde(rename = "$search")]
    #[param(min_length = 1)]
    search: Option<String>,
    /// `members` on groups, `memberOf` on users, optionally with `($select=...)`; at most 20
    /// objects are expanded.
    #[serde(rename = "$expand")]
    #[param(min_length = 1)]
    expand: Option<String>,
}

/// The query options of a `/$count` segment.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CountQuery {
    /// As for the collection.
    #[serde(rename = "$filter")]
    #[param(min_length = 1)]
    filter: Option<String>,
    /// As for the collection.
    #[serde(rename = "$search")]
    #[param(min_length = 1)]
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
    #[param(min_length = 1)]
    select: Option<String>,
}

/// Users, groups and their membership: read with the directory, changed as directory.
const DIRECTORY: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Directory,
    kinds: &[CommandKind::Directory],
};

/// A user's properties: the usage location is a License Administrator's to set, the rest is
/// directory (each change is then checked as its command).
const USER_PROPERTIES: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Directory,
    kinds: &[CommandKind::Directory, CommandKind::UsageLocation],
};

/// Assigning licenses and reprocessing them.
const LICENSES: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::Licenses],
};

/// A product's subscription term.
const SUBSCRIPTIONS: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: &[CommandKind::Subscriptions],
};

const READS_DIRECTORY: RouteAccess = RouteAccess::Reads(ReadScope::Directory);
const READS_LICENSING: RouteAccess = RouteAccess::Reads(ReadScope::Licensing);
const READS_AUDIT_LOG: RouteAccess = RouteAccess::Reads(ReadScope::AuditLog);

/// Every `/v1.0` route with its OpenAPI description, each with what it requires of the caller's
/// role (`$metadata` is public, as in Graph).
pub fn router() -> OpenApiRouter<AppState> {
    let reads_directory = || axum::middleware::from_fn_with_state(READS_DIRECTORY, guard);
    OpenApiRouter::new()
        .routes(guarded(
            routes!(audit_logs::list_directory_audits),
            READS_AUDIT_LOG,
        ))
        // A batch changes nothing itself; each of its requests is checked as if sent alone.
        .routes(guarded(routes!(batch::run_batch), RouteAccess::AnyCaller))
        .routes(guarded(routes!(delta::users_delta), READS_DIRECTORY))
        .routes(guarded(routes!(delta::groups_delta), READS_DIRECTORY))
        // Graph's function-call form, which Microsoft's SDKs send (`users/delta()`).
        .route(
            "/v1.0/users/delta()",
            axum::routing::get(delta::users_delta).route_layer(reads_directory()),
        )
        .route(
            "/v1.0/groups/delta()",
            axum::routing::get(delta::groups_delta).route_layer(reads_directory()),
        )
        // Change notifications: watching users and groups needs reading them (as in Graph).
        .routes(guarded(
            routes!(
                subscriptions::create_change_subscription,
                subscriptions::list_change_subscriptions
            ),
            READS_DIRECTORY,
        ))
        .routes(guarded(
            routes!(
                subscriptions::get_change_subscription,
                subscriptions::renew_change_subscription,
                subscriptions::delete_change_subscription
            ),
            READS_DIRECTORY,
        ))
        .routes(guarded(
            routes!(directory_subscriptions::list_subscriptions),
            READS_LICENSING,
        ))
        .routes(guarded(
            routes!(directory_subscriptions::get_subscription),
            READS_LICENSING,
        ))
        .routes(guarded(
            routes!(directory_subscriptions::set_lifecycle),
            SUBSCRIPTIONS,
        ))
        .routes(guarded(
            routes!(subscribed_skus::list_subscribed_skus),
            READS_LICENSING,
        ))
        .routes(guarded(
            routes!(subscribed_skus::get_subscribed_sku),
            READS_LICENSING,
        ))
        .routes(guarded(routes!(users::list_users, users::create_user), DIRECTORY))
        .routes(guarded(routes!(users::count_users), READS_DIRECTORY))
        .routes(guarded(routes!(users::get_user, users::delete_user), DIRECTORY))
        .routes(guarded(routes!(users::update_user), USER_PROPERTIES))
        .routes(guarded(routes!(users::assign_user_license), LICENSES))
        .routes(guarded(routes!(users::list_license_details), READS_LICENSING))
        .routes(guarded(routes!(users::reprocess_user), LICENSES))
        .routes(guarded(routes!(users::list_member_of), READS_DIRECTORY))
        .routes(guarded(routes!(users::count_member_of), READS_DIRECTORY))
        .routes(guarded(routes!(users::list_group_memberships), READS_DIRECTORY))
        .routes(guarded(routes!(users::get_membership), READS_DIRECTORY))
        .routes(guarded(
            routes!(users::list_transitive_member_of),
            READS_DIRECTORY,
        ))
        .routes(guarded(
            routes!(users::count_transitive_member_of),
            READS_DIRECTORY,
        ))
        .routes(guarded(
            routes!(groups::list_groups, groups::create_group),
            DIRECTORY,
        ))
        .routes(guarded(routes!(groups::count_groups), READS_DIRECTORY))
        .routes(guarded(
            routes!(groups::get_group, groups::update_group, groups::delete_group),
            DIRECTORY,
        ))
        .routes(guarded(routes!(groups::assign_group_license), LICENSES))
        .routes(guarded(routes!(groups::list_members), READS_DIRECTORY))
        .routes(guarded(routes!(groups::count_members), READS_DIRECTORY))
        .routes(guarded(routes!(groups::list_transitive_members), READS_DIRECTORY))
        .routes(guarded(
            routes!(groups::count_transitive_members),
            READS_DIRECTORY,
        ))
        .routes(guarded(routes!(groups::list_user_members), READS_DIRECTORY))
        .routes(guarded(routes!(groups::count_user_members), READS_DIRECTORY))
        .routes(guarded(routes!(groups::list_group_members), READS_DIRECTORY))
        .routes(guarded(routes!(groups::get_member), READS_DIRECTORY))
        .routes(guarded(routes!(nesting::list_group_member_of), READS_DIRECTORY))
        .routes(guarded(
            routes!(nesting::list_group_transitive_member_of),
            READS_DIRECTORY,
        ))
        .routes(guarded(routes!(groups::add_member), DIRECTORY))
        .routes(guarded(routes!(groups::remove_member), DIRECTORY))
        .routes(guarded(
            routes!(groups::list_members_with_license_errors),
            READS_LICENSING,
        ))
        .routes(guarded(routes!(groups::reprocess_group), LICENSES))
        // Looking objects up by ids changes nothing although it is a POST.
        .routes(guarded(routes!(directory_objects::get_by_ids), READS_DIRECTORY))
        .routes(routes!(metadata::metadata_document))
}
