//! Graph `/v1.0/users`: create, read (by id or `userPrincipalName`), update and delete users;
//! `assignLicense` (checked at once, 200 with the user), `licenseDetails`,
//! `reprocessLicenseAssignment` and `memberOf`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::graph::{
    AssignLicenseRequest, CreateUserRequest, DirectoryObjectCollectionResponse, Group,
    GroupCollectionResponse, LicenseDetailsCollectionResponse, UpdateUserRequest, User,
    UserCollectionResponse,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::{
    AssignedLicense, Command, CommandError, CountryCode, Engine, NewUser, ProxyAddress, UserAttribute,
    UserAttributeChanges, UserChanges, Uuid,
};
use serde_json::Value;

use super::convert;
use super::groups::{count_response, matching_groups, matching_users, unsupported_cast};
use super::{
    CollectionQuery, ConsistencyLevelHeader, CountQuery, RequiredConsistencyLevelHeader, SelectQuery,
};
use crate::api::{parse_object_id, resolve_user, ApiError, JsonBody, PathParameters, Tenant};
use crate::odata::{
    with_context, ODataRequest, Selection, Supported, GROUP_SCHEMA, LICENSE_DETAILS_SCHEMA, USER_SCHEMA,
};

/// The user in the default shape, with `@odata.context`, for answers to actions.
fn user_entity(engine: &Engine, request: &ODataRequest, user_id: Uuid) -> Result<Value, ApiError> {
    let selection = Selection::default_for(&USER_SCHEMA);
    let user = convert::user_json(engine, user_id, &selection, false, &mut None)?;
    Ok(with_context(request.context("users/$entity"), user))
}

fn parse_usage_location(text: &str) -> Result<CountryCode, ApiError> {
    Ok(CountryCode::parse(text)?)
}

fn parse_proxy_addresses(addresses: &[String]) -> Result<Vec<ProxyAddress>, ApiError> {
    addresses
        .iter()
        .map(|address| ProxyAddress::parse(address).map_err(ApiError::from))
        .collect()
}

/// The directory attributes a create or update body sets (`Some`) or clears (`None`, also for
/// an empty string), checked by the engine.
fn attribute_changes(
    top_level: Vec<(&'static str, Option<&str>)>,
    extensions: Option<&licensd_api_types::graph::OnPremisesExtensionAttributes>,
) -> UserAttributeChanges {
    let mut changes = UserAttributeChanges::new();
    for (name, value) in top_level {
        if let Some(attribute) = UserAttribute::from_name(name) {
            changes.insert(
                attribute,
                value.filter(|text| !text.is_empty()).map(str::to_string),
            );
        }
    }
    for (number, value) in extensions
        .map(|extensions| extensions.present())
        .unwrap_or_default()
    {
        if let Some(attribute) = UserAttribute::extension(number) {
            changes.insert(
                attribute,
                value.filter(|text| !text.is_empty()).map(str::to_string),
            );
        }
    }
    changes
}

fn require_display_name(display_name: &str) -> Result<(), ApiError> {
    if display_name.trim().is_empty() {
        return Err(ApiError::from(CommandError::InvalidValue {
            field: "displayName",
            reason: "must not be empty".to_string(),
        }));
    }
    Ok(())
}

/// List users.
///
/// Graph-compatible. Pages of 100 by default, with `$select`, `$filter`, `$top`, `$count`.
#[utoipa::path(get, path = "/v1.0/users", tag = "Graph: users", params(CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of users", body = UserCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
    ))]
pub async fn list_users(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    let options = request.options(&USER_SCHEMA, Supported::COLLECTION)?;
    let response = tenant
        .read(move |engine| {
            let matching = matching_users(engine, engine.user_ids(), &options)?;
            let mut products = None;
            let page = options.page(matching, |user_id| *user_id).try_map(|user_id| {
                convert::user_json_expanded(engine, user_id, &options, false, &mut products)
            })?;
            let fragment = format!("users{}", options.context_suffix());
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// Count users.
///
/// Graph-compatible: `text/plain` count of users matching `$filter`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/users/$count", tag = "Graph: users",
    params(CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of users", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid filter", body = ErrorResponse),
    ))]
pub async fn count_users(tenant: Tenant, request: ODataRequest) -> Result<Response, ApiError> {
    require_eventual_consistency(&request)?;
    let options = request.options(&USER_SCHEMA, Supported::COLLECTION)?;
    let count = tenant
        .read(move |engine| {
            if options.filter.is_none() && options.search.is_none() {
                return Ok(engine.user_count());
            }
            Ok(matching_users(engine, engine.user_ids(), &options)?.len())
        })
        .await?;
    Ok(count_response(count))
}

/// `/$count` segments need `ConsistencyLevel: eventual`, as in Graph.
pub fn require_eventual_consistency(request: &ODataRequest) -> Result<(), ApiError> {
    let eventual = request
        .headers
        .get("consistencylevel")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("eventual"));
    if eventual {
        Ok(())
    } else {
        Err(ApiError::unsupported_query(
            "Counting requires the ConsistencyLevel header set to eventual (an advanced query).",
        ))
    }
}

/// Create a user.
///
/// Graph-compatible. `mailNickname` and `passwordProfile` are accepted and not stored;
/// `proxyAddresses` can be set (a licensd extension: read-only in Graph).
#[utoipa::path(post, path = "/v1.0/users", tag = "Graph: users", request_body = CreateUserRequest,
    responses(
        (status = 201, description = "The new user", body = User, headers(("Location" = String, description = "The user's address"))),
        (status = 400, description = "Invalid body or a duplicate userPrincipalName", body = ErrorResponse),
        (status = 413, description = "Body over 1 MiB", body = ErrorResponse),
    ))]
pub async fn create_user(
    tenant: Tenant,
    request: ODataRequest,
    JsonBody(body): JsonBody<CreateUserRequest>,
) -> Result<Response, ApiError> {
    require_display_name(&body.display_name)?;
    let usage_location = body
        .usage_location
        .as_deref()
        .map(parse_usage_location)
        .transpose()?;
    let proxy_addresses = parse_proxy_addresses(body.proxy_addresses.as_deref().unwrap_or_default())?;
    let attributes = attribute_changes(
        body.directory_attributes(),
        body.on_premises_extension_attributes.as_ref(),
    )
    .into_iter()
    .filter_map(|(attribute, value)| Some((attribute, value?)))
    .collect();
    let user_id = Uuid::new_v4();
    tenant
        .execute(Command::CreateUser(NewUser {
            id: user_id,
            user_principal_name: body.user_principal_name,
            display_name: body.display_name,
            usage_location,
            proxy_addresses,
            account_enabled: body.account_enabled.unwrap_or(true),
            attributes,
        }))
        .await?;
    let location = format!("{}/v1.0/users/{user_id}", request.origin);
    let user = tenant
        .read(move |engine| user_entity(engine, &request, user_id))
        .await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(user)).into_response())
}

/// Get a user.
///
/// Graph-compatible. By id or `userPrincipalName`. `licenseAssignmentStates` and `assignedPlans`
/// only with `$select`.
#[utoipa::path(get, path = "/v1.0/users/{id}", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), SelectQuery),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn get_user(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let options = request.options(&USER_SCHEMA, Supported::ENTITY)?;
    let user = tenant
        .read_entity(move |engine| {
            // A GUID is looked up once, by `user_json` (an unknown one is the same 404).
            let user_id = match Uuid::try_parse(&id) {
                Ok(user_id) => user_id,
                Err(_) => resolve_user(engine, &id)?,
            };
            let user = convert::user_json_expanded(engine, user_id, &options, false, &mut None)?;
            let fragment = format!("users{}/$entity", options.context_suffix());
            Ok(with_context(request.context(&fragment), user))
        })
        .await?;
    Ok(Json(user))
}

/// Update a user.
///
/// Graph-compatible (204). Only the properties present change; `usageLocation: null` clears it.
#[utoipa::path(patch, path = "/v1.0/users/{id}", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    request_body = UpdateUserRequest,
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Invalid body", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn update_user(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<UpdateUserRequest>,
) -> Result<StatusCode, ApiError> {
    if let Some(display_name) = &body.display_name {
        require_display_name(display_name)?;
    }
    let usage_location = match &body.usage_location {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(parse_usage_location(text)?)),
    };
    let proxy_addresses = body
        .proxy_addresses
        .as_deref()
        .map(parse_proxy_addresses)
        .transpose()?;
    let attributes = attribute_changes(
        body.directory_attributes(),
        body.on_premises_extension_attributes.as_ref(),
    );
    let user_id = tenant.read(move |engine| resolve_user(engine, &id)).await?;
    tenant
        .execute(Command::UpdateUser {
            user_id,
            changes: UserChanges {
                user_principal_name: body.user_principal_name,
                display_name: body.display_name,
                usage_location,
                proxy_addresses,
                account_enabled: body.account_enabled,
                attributes,
            },
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a user.
///
/// Graph-compatible (204). The user's seats are freed.
#[utoipa::path(delete, path = "/v1.0/users/{id}", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn delete_user(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let user_id = tenant.read(move |engine| resolve_user(engine, &id)).await?;
    tenant.execute(Command::DeleteUser { user_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The message Graph gives when `addLicenses` or `removeLicenses` is missing.
pub fn require_license_arrays(
    body: AssignLicenseRequest,
) -> Result<(Vec<AssignedLicense>, Vec<Uuid>), ApiError> {
    let mut missing = Vec::new();
    if body.add_licenses.is_none() {
        missing.push("addLicenses");
    }
    if body.remove_licenses.is_none() {
        missing.push("removeLicenses");
    }
    match (body.add_licenses, body.remove_licenses) {
        (Some(add), Some(remove)) => Ok((
            add.into_iter()
                .map(|license| AssignedLicense::with_disabled_plans(license.sku_id, license.disabled_plans))
                .collect(),
            remove,
        )),
        _ => Err(ApiError::new(
            ErrorCode::MissingParameters,
            format!(
                "One or more parameters of the operation 'assignLicense' are missing from the request payload. The missing parameters are: {}.",
                missing.join(", ")
            ),
        )),
    }
}

/// Assign or remove a user's direct licenses.
///
/// Graph-compatible. Both arrays are required (may be empty). Checked at once: seats, exclusive
/// plans, prerequisites, usage location and unique proxy addresses; 200 with the user.
#[utoipa::path(post, path = "/v1.0/users/{id}/assignLicense", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    request_body = AssignLicenseRequest,
    responses(
        (status = 200, description = "The user with its licenses", body = User),
        (status = 400, description = "A missing parameter or a licensing rule violated", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn assign_user_license(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<AssignLicenseRequest>,
) -> Result<Json<Value>, ApiError> {
    let (add_licenses, remove_licenses) = require_license_arrays(body)?;
    let user_id = tenant.read(move |engine| resolve_user(engine, &id)).await?;
    tenant
        .execute(Command::AssignUserLicenses {
            user_id,
            add_licenses,
            remove_licenses,
        })
        .await?;
    let user = tenant
        .read(move |engine| user_entity(engine, &request, user_id))
        .await?;
    Ok(Json(user))
}

/// List a user's license details.
///
/// Graph-compatible: one entry per product in effect, each plan `Success` or `Disabled`.
#[utoipa::path(get, path = "/v1.0/users/{id}/licenseDetails", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), SelectQuery),
    responses(
        (status = 200, description = "The user's products", body = LicenseDetailsCollectionResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn list_license_details(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let options = request.options(&LICENSE_DETAILS_SCHEMA, Supported::SELECT_ONLY)?;
    let response = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            let details = convert::license_details(engine, user_id)?;
            let values = details
                .into_iter()
                .map(|detail| {
                    serde_json::to_value(detail)
                        .map(|value| options.selection.apply(value))
                        .map_err(|error| ApiError::internal(error.to_string()))
                })
                .collect::<Result<Vec<Value>, ApiError>>()?;
            let page = crate::odata::Page {
                total: values.len(),
                items: values,
                next_skip_token: None,
            };
            let fragment = format!(
                "users('{user_id}')/licenseDetails{}",
                options.selection.context_suffix()
            );
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// Reprocess a user's licenses.
///
/// Graph-compatible: queues the user for evaluation (errors whose cause is gone clear); 200 with the user.
#[utoipa::path(post, path = "/v1.0/users/{id}/reprocessLicenseAssignment", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    responses(
        (status = 200, description = "The user", body = User),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn reprocess_user(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let user_id = tenant.read(move |engine| resolve_user(engine, &id)).await?;
    tenant.execute(Command::ReprocessUser { user_id }).await?;
    let user = tenant
        .read(move |engine| user_entity(engine, &request, user_id))
        .await?;
    Ok(Json(user))
}

/// List the groups a user is a direct member of.
///
/// Graph-compatible: directory objects with `@odata.type` `#microsoft.graph.group`.
#[utoipa::path(get, path = "/v1.0/users/{id}/memberOf", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "The user's groups", body = DirectoryObjectCollectionResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn list_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    memberships_page(&tenant, request, id, false, false).await
}

/// The groups a user is a member of: directly, or also through nested groups (`transitive`).
fn user_groups(engine: &Engine, user_id: Uuid, transitive: bool) -> Result<Vec<Uuid>, ApiError> {
    Ok(if transitive {
        engine.user_transitive_member_of(user_id)?
    } else {
        engine.user_view(user_id)?.member_of
    })
}

/// A page of the groups a user is a member of (directly, or at any depth when `transitive`),
/// as directory objects or cast to groups.
async fn memberships_page(
    tenant: &Tenant,
    request: ODataRequest,
    id: String,
    cast_to_groups: bool,
    transitive: bool,
) -> Result<Json<Value>, ApiError> {
    let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
    let response = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            let matching = matching_groups(engine, user_groups(engine, user_id, transitive)?, &options)?;
            let mut products = None;
            let page = options.page(matching, |group_id| *group_id).try_map(|group_id| {
                convert::group_json_expanded(engine, group_id, &options, !cast_to_groups, &mut products)
            })?;
            let fragment = if cast_to_groups {
                format!("groups{}", options.context_suffix())
            } else {
                "directoryObjects".to_string()
            };
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// The number of groups a user is a member of that a query keeps.
async fn memberships_count(
    tenant: &Tenant,
    request: ODataRequest,
    id: String,
    transitive: bool,
) -> Result<Response, ApiError> {
    require_eventual_consistency(&request)?;
    let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
    let count = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            Ok(matching_groups(engine, user_groups(engine, user_id, transitive)?, &options)?.len())
        })
        .await?;
    Ok(count_response(count))
}

/// Count the groups a user is a direct member of.
///
/// Graph-compatible: `text/plain`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/users/{id}/memberOf/$count", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of groups", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid query", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn count_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    memberships_count(&tenant, request, id, false).await
}

/// List the groups a user is a member of, cast to groups.
///
/// Graph-compatible type cast (`@odata.context` `groups`, no `@odata.type` per item).
#[utoipa::path(get, path = "/v1.0/users/{id}/memberOf/microsoft.graph.group", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "The user's groups", body = GroupCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn list_group_memberships(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    memberships_page(&tenant, request, id, true, false).await
}

/// Get one group of a user's memberships, or refuse an unsupported type cast.
///
/// Graph-compatible: `memberOf/{group-id}` is the group as a directory object (404 if the user is
/// not a member). A type cast licensd does not model (`memberOf/microsoft.graph.directoryRole`,
/// ...) is answered 400 `Request_UnsupportedQuery`, not a 404.
#[utoipa::path(get, path = "/v1.0/users/{id}/memberOf/{group_id}", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"),
           ("group_id" = Uuid, Path, description = "The group's id (`graph.group`, the cast with the namespace's alias, is served here too)"), SelectQuery),
    responses(
        (status = 200, description = "The group", body = Group),
        (status = 400, description = "Not a GUID, or a type cast licensd does not support", body = ErrorResponse),
        (status = 404, description = "No such user, or not a member", body = ErrorResponse),
    ))]
pub async fn get_membership(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters((id, group_id)): PathParameters<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // Microsoft's SDKs send casts with the namespace's alias (`memberOf/graph.group`).
    if group_id == "graph.group" {
        return memberships_page(&tenant, request, id, true, false).await;
    }
    if let Some(type_name) = group_id
        .strip_prefix("microsoft.graph.")
        .or_else(|| group_id.strip_prefix("graph."))
    {
        return Err(unsupported_cast("memberOf", type_name, "microsoft.graph.group"));
    }
    let group_id = parse_object_id(&group_id)?;
    let options = request.options(&GROUP_SCHEMA, Supported::SELECT_ONLY)?;
    let group = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            if !engine.user_view(user_id)?.member_of.contains(&group_id) {
                return Err(ApiError::not_found(group_id));
            }
            let group = convert::group_json(engine, group_id, &options.selection, true)?;
            Ok(with_context(request.context("directoryObjects/$entity"), group))
        })
        .await?;
    Ok(Json(group))
}

/// List the groups a user is a transitive member of.
///
/// Graph-compatible: the user's groups and every group they are nested in, each once.
#[utoipa::path(get, path = "/v1.0/users/{id}/transitiveMemberOf", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "The user's groups", body = DirectoryObjectCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn list_transitive_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    memberships_page(&tenant, request, id, false, true).await
}

/// Count the groups a user is a transitive member of.
///
/// Graph-compatible: `text/plain`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/users/{id}/transitiveMemberOf/$count", tag = "Graph: users",
    params(("id" = String, Path, description = "The user's id or userPrincipalName"), CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of groups", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid query", body = ErrorResponse),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn count_transitive_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    memberships_count(&tenant, request, id, true).await
}
