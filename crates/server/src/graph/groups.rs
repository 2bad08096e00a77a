//! Graph `/v1.0/groups`: create, read, update and delete security groups; `assignLicense` (the
//! same-group prerequisite check at once, the rest in the background: 202 + `Location`),
//! `members` with `$ref`, `membersWithLicenseErrors`, and licensd's group reprocess extension.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::graph::{
    AssignLicenseRequest, CreateGroupRequest, DirectoryObjectCollectionResponse, Group,
    GroupCollectionResponse, ReferenceRequest, UpdateGroupRequest, User, UserCollectionResponse,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::{Command, CommandError, Engine, MembershipRule, RuleProcessingState, Uuid};
use serde_json::Value;

use super::convert::{self, GroupSubject, UserSubject};
use super::users::{require_eventual_consistency, require_license_arrays};
use super::{
    CollectionQuery, ConsistencyLevelHeader, CountQuery, RequiredConsistencyLevelHeader, SelectQuery,
};
use crate::api::{parse_object_id, ApiError, JsonBody, PathParameters, Tenant};
use crate::odata::{
    with_context, ODataRequest, QueryOptions, Selection, Supported, GROUP_SCHEMA, USER_SCHEMA,
};

/// Whether `groupTypes` asks for a dynamic membership group (`[]` or `["DynamicMembership"]`).
fn is_dynamic(group_types: &[String]) -> Result<bool, ApiError> {
    match group_types {
        [] => Ok(false),
        [only] if only.eq_ignore_ascii_case("DynamicMembership") => Ok(true),
        [first, ..] => {
            let unsupported = group_types
                .iter()
                .find(|group_type| !group_type.eq_ignore_ascii_case("DynamicMembership"))
                .unwrap_or(first);
            Err(ApiError::new(
                ErrorCode::NotSupported,
                format!(
                    "Group type '{unsupported}' is not supported: licensd models security groups, with assigned members (groupTypes []) or dynamic ([\"DynamicMembership\"])."
                ),
            ))
        }
    }
}

fn parse_processing_state(text: &str) -> Result<RuleProcessingState, ApiError> {
    RuleProcessingState::parse(text).ok_or_else(|| {
        invalid(
            "membershipRuleProcessingState",
            &format!("'{text}' is neither On nor Paused"),
        )
    })
}

fn invalid(field: &'static str, reason: &str) -> ApiError {
    ApiError::from(CommandError::InvalidValue {
        field,
        reason: reason.to_string(),
    })
}

fn rule_error(error: licensd_engine::RuleError) -> ApiError {
    ApiError::from(CommandError::InvalidMembershipRule {
        position: error.position,
        message: error.message,
    })
}

/// Parses a group id from the address and checks that the group exists.
fn existing_group(engine: &Engine, group_id: Uuid) -> Result<Uuid, ApiError> {
    engine.group_view(group_id)?;
    Ok(group_id)
}

/// The group in the default shape, with `@odata.context`.
fn group_entity(engine: &Engine, request: &ODataRequest, group_id: Uuid) -> Result<Value, ApiError> {
    let group = convert::group_json(engine, group_id, &Selection::default_for(&GROUP_SCHEMA), false)?;
    Ok(with_context(request.context("groups/$entity"), group))
}

/// A 202 answer with the group and its address, for changes processed in the background.
async fn accepted_with_group(
    tenant: &Tenant,
    request: ODataRequest,
    group_id: Uuid,
) -> Result<Response, ApiError> {
    let location = format!("{}/v1.0/groups/{group_id}", request.origin);
    let group = tenant
        .read(move |engine| group_entity(engine, &request, group_id))
        .await?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(group)).into_response())
}

/// The groups a query keeps, in its order.
pub fn matching_groups(
    engine: &Engine,
    candidates: Vec<Uuid>,
    options: &QueryOptions,
) -> Result<Vec<Uuid>, ApiError> {
    options.arrange(candidates, |group_id| {
        Ok(GroupSubject {
            view: engine.group_view(group_id)?,
            dynamic: engine
                .dynamic_membership(group_id)?
                .map(|dynamic| (dynamic.rule.text().to_string(), dynamic.processing_state.as_str())),
        })
    })
}

/// The users a query keeps, in its order.
pub fn matching_users(
    engine: &Engine,
    candidates: Vec<Uuid>,
    options: &QueryOptions,
) -> Result<Vec<Uuid>, ApiError> {
    options.arrange(candidates, |user_id| {
        Ok(UserSubject {
            engine,
            view: engine.user_view(user_id)?,
        })
    })
}

/// A `text/plain` count, the answer of every `/$count` segment.
pub fn count_response(count: usize) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], count.to_string()).into_response()
}

/// How a list of a group's members is shown: all of them as directory objects, or one type
/// (`/microsoft.graph.user`, `/microsoft.graph.group`) in that type's entity set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemberCast {
    DirectoryObjects,
    Users,
    Groups,
}

/// A group's members a query keeps: users, then groups (oldest nesting first), direct or at
/// any depth. Directory objects are filtered, searched and ordered as users (`$filter`,
/// `$search` and `$orderby` name user properties there): with any of them, the nested groups
/// are left out; the cast to groups filters them as groups.
fn member_ids(
    engine: &Engine,
    request: &ODataRequest,
    group_id: Uuid,
    cast: MemberCast,
    transitive: bool,
) -> Result<(Vec<Uuid>, QueryOptions), ApiError> {
    if cast == MemberCast::Groups {
        let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
        let groups = if transitive {
            engine.transitive_member_groups(group_id)?
        } else {
            engine.member_groups(group_id)?
        };
        return Ok((matching_groups(engine, groups, &options)?, options));
    }
    let options = request.options(&USER_SCHEMA, Supported::COLLECTION)?;
    let users = if transitive {
        engine.transitive_member_users(group_id)?
    } else {
        engine.group_members(group_id)?
    };
    let mut matching = matching_users(engine, users, &options)?;
    let plain = options.filter.is_none() && options.search.is_none() && options.order_by.is_none();
    if cast == MemberCast::DirectoryObjects && plain {
        matching.extend(if transitive {
            engine.transitive_member_groups(group_id)?
        } else {
            engine.member_groups(group_id)?
        });
    }
    Ok((matching, options))
}

/// A page of a group's members (users and nested groups; see [`member_ids`]).
async fn members_page(
    tenant: &Tenant,
    request: ODataRequest,
    id: &str,
    cast: MemberCast,
    transitive: bool,
) -> Result<Json<Value>, ApiError> {
    let group_id = parse_object_id(id)?;
    let response = tenant
        .read(move |engine| {
            let (matching, options) = member_ids(engine, &request, group_id, cast, transitive)?;
            let mut products = None;
            let as_directory_object = cast == MemberCast::DirectoryObjects;
            let page = options.page(matching, |id| *id).try_map(|member_id| {
                if engine.user_view(member_id).is_ok() {
                    convert::user_json_expanded(
                        engine,
                        member_id,
                        &options,
                        as_directory_object,
                        &mut products,
                    )
                } else {
                    convert::group_json(engine, member_id, &options.selection, as_directory_object)
                }
            })?;
            let fragment = match cast {
                MemberCast::DirectoryObjects => "directoryObjects".to_string(),
                MemberCast::Users => format!("users{}", options.context_suffix()),
                MemberCast::Groups => format!("groups{}", options.context_suffix()),
            };
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// The number of a group's members a query keeps (`ConsistencyLevel: eventual`).
async fn members_count(
    tenant: &Tenant,
    request: ODataRequest,
    id: &str,
    cast: MemberCast,
    transitive: bool,
) -> Result<Response, ApiError> {
    require_eventual_consistency(&request)?;
    let group_id = parse_object_id(id)?;
    let count = tenant
        .read(move |engine| Ok(member_ids(engine, &request, group_id, cast, transitive)?.0.len()))
        .await?;
    Ok(count_response(count))
}

/// List groups.
///
/// Graph-compatible. `$filter=hasMembersWithLicenseErrors eq true` lists the groups that need attention.
#[utoipa::path(get, path = "/v1.0/groups", tag = "Graph: groups", params(CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of groups", body = GroupCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
    ))]
pub async fn list_groups(tenant: Tenant, request: ODataRequest) -> Result<Json<Value>, ApiError> {
    let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
    let response = tenant
        .read(move |engine| {
            let matching = matching_groups(engine, engine.group_ids(), &options)?;
            let mut products = None;
            let page = options.page(matching, |group_id| *group_id).try_map(|group_id| {
                convert::group_json_expanded(engine, group_id, &options, false, &mut products)
            })?;
            let fragment = format!("groups{}", options.context_suffix());
            Ok(request.collection(&options, &fragment, page))
        })
        .await?;
    Ok(Json(response))
}

/// Count groups.
///
/// Graph-compatible: `text/plain` count of groups matching `$filter`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/groups/$count", tag = "Graph: groups",
    params(CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of groups", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid filter", body = ErrorResponse),
    ))]
pub async fn count_groups(tenant: Tenant, request: ODataRequest) -> Result<Response, ApiError> {
    require_eventual_consistency(&request)?;
    let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
    let count = tenant
        .read(move |engine| Ok(matching_groups(engine, engine.group_ids(), &options)?.len()))
        .await?;
    Ok(count_response(count))
}

/// Create a group.
///
/// Graph-compatible. licensd models security groups: `securityEnabled: false`, `mailEnabled: true`
/// or `groupTypes` other than `[]` are refused. `mailNickname` is accepted and not stored.
#[utoipa::path(post, path = "/v1.0/groups", tag = "Graph: groups", request_body = CreateGroupRequest,
    responses(
        (status = 201, description = "The new group", body = Group, headers(("Location" = String, description = "The group's address"))),
        (status = 400, description = "Invalid body", body = ErrorResponse),
    ))]
pub async fn create_group(
    tenant: Tenant,
    request: ODataRequest,
    JsonBody(body): JsonBody<CreateGroupRequest>,
) -> Result<Response, ApiError> {
    if body.security_enabled == Some(false) || body.mail_enabled == Some(true) {
        return Err(ApiError::new(
            ErrorCode::NotSupported,
            "licensd models security groups only (securityEnabled true, mailEnabled false), the groups Entra ID licenses.",
        ));
    }
    let dynamic = is_dynamic(body.group_types.as_deref().unwrap_or_default())?;
    let processing_state = body
        .membership_rule_processing_state
        .as_deref()
        .map(parse_processing_state)
        .transpose()?
        .unwrap_or_default();
    let rule = match (dynamic, body.membership_rule) {
        (true, Some(rule)) => {
            // Checked before the group exists, so a bad rule creates nothing.
            MembershipRule::parse(&rule).map_err(rule_error)?;
            Some(rule)
        }
        (true, None) => {
            return Err(invalid(
                "membershipRule",
                "a DynamicMembership group needs a membershipRule",
            ))
        }
        (false, Some(_)) => {
            return Err(invalid(
                "membershipRule",
                "a membershipRule needs groupTypes [\"DynamicMembership\"]",
            ))
        }
        (false, None) => None,
    };
    let group_id = Uuid::new_v4();
    tenant
        .execute(Command::CreateGroup {
            group_id,
            display_name: body.display_name,
        })
        .await?;
    if let Some(rule) = rule {
        let set = tenant
            .execute(Command::SetMembershipRule {
                group_id,
                rule: Some(rule),
                processing_state,
            })
            .await;
        if let Err(error) = set {
            // The rule names groups that do not exist or a cycle: the group goes again.
            tenant.execute(Command::DeleteGroup { group_id }).await?;
            return Err(error);
        }
    }
    let location = format!("{}/v1.0/groups/{group_id}", request.origin);
    let group = tenant
        .read(move |engine| group_entity(engine, &request, group_id))
        .await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(group)).into_response())
}

/// Get a group.
///
/// Graph-compatible, with `assignedLicenses` and `licenseProcessingState`.
#[utoipa::path(get, path = "/v1.0/groups/{id}", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), SelectQuery),
    responses(
        (status = 200, description = "The group", body = Group),
        (status = 400, description = "The id is not a GUID", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn get_group(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let group_id = parse_object_id(&id)?;
    let options = request.options(&GROUP_SCHEMA, Supported::ENTITY)?;
    let group = tenant
        .read(move |engine| {
            let group = convert::group_json_expanded(engine, group_id, &options, false, &mut None)?;
            let fragment = format!("groups{}/$entity", options.context_suffix());
            Ok(with_context(request.context(&fragment), group))
        })
        .await?;
    Ok(Json(group))
}

/// Update a group.
///
/// Graph-compatible (204). `displayName` renames the group; `mailNickname` is accepted and not
/// stored. `groupTypes` changes the membership type: `["DynamicMembership"]` with a
/// `membershipRule` makes a group dynamic (its members become the users the rule selects), `[]`
/// makes a dynamic group assigned again, keeping its members (`membershipRule` null or unchanged).
#[utoipa::path(patch, path = "/v1.0/groups/{id}", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id")),
    request_body = UpdateGroupRequest,
    responses(
        (status = 204, description = "Updated"),
        (status = 400, description = "Invalid body", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn update_group(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<UpdateGroupRequest>,
) -> Result<StatusCode, ApiError> {
    let group_id = parse_object_id(&id)?;
    if body.group_types.is_some()
        || body.membership_rule.is_some()
        || body.membership_rule_processing_state.is_some()
    {
        let current = tenant
            .read(move |engine| {
                Ok(engine
                    .dynamic_membership(group_id)?
                    .map(|dynamic| (dynamic.rule.text().to_string(), dynamic.processing_state)))
            })
            .await?;
        let dynamic = match &body.group_types {
            Some(types) => is_dynamic(types)?,
            None => current.is_some(),
        };
        let processing_state = match body.membership_rule_processing_state.as_deref() {
            Some(text) => parse_processing_state(text)?,
            None => current.as_ref().map(|(_, state)| *state).unwrap_or_default(),
        };
        let rule = match (dynamic, body.membership_rule, current) {
            (true, Some(rule), _) => Some(rule),
            (true, None, Some((rule, _))) => Some(rule),
            (true, None, None) => {
                return Err(invalid(
                    "membershipRule",
                    "a DynamicMembership group needs a membershipRule",
                ))
            }
            // Made static (assigned) again: the current rule may be sent back unchanged, as a
            // client that read the group and dropped "DynamicMembership" does; the members stay.
            (false, Some(rule), Some((current, _))) if rule == current => None,
            (false, Some(_), _) => {
                return Err(invalid(
                    "membershipRule",
                    "a membershipRule needs groupTypes [\"DynamicMembership\"]",
                ))
            }
            (false, None, _) => None,
        };
        tenant
            .execute(Command::SetMembershipRule {
                group_id,
                rule,
                processing_state,
            })
            .await?;
    }
    match body.display_name {
        Some(display_name) => {
            tenant
                .execute(Command::UpdateGroup {
                    group_id,
                    display_name,
                })
                .await?;
        }
        None => {
            // Nothing licensd stores changes; the group must still exist.
            tenant
                .read(move |engine| Ok(engine.group_view(group_id)?.id))
                .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a group.
///
/// Graph-compatible (204). Refused while the group has licenses, as in Entra ID.
#[utoipa::path(delete, path = "/v1.0/groups/{id}", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The group still has licenses", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn delete_group(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let group_id = parse_object_id(&id)?;
    tenant.execute(Command::DeleteGroup { group_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Assign or remove a group's licenses.
///
/// Graph-compatible: 202 with the group and a `Location`. Every enabled plan needing a
/// prerequisite must have one in the group's own products (checked at once); seats, conflicts and
/// locations are checked per member in the background (watch `licenseProcessingState`).
#[utoipa::path(post, path = "/v1.0/groups/{id}/assignLicense", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id")),
    request_body = AssignLicenseRequest,
    responses(
        (status = 202, description = "Accepted; members are processed in the background", body = Group,
            headers(("Location" = String, description = "The group's address"))),
        (status = 400, description = "A missing parameter or a missing prerequisite", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn assign_group_license(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<AssignLicenseRequest>,
) -> Result<Response, ApiError> {
    let group_id = parse_object_id(&id)?;
    let (add_licenses, remove_licenses) = require_license_arrays(body)?;
    tenant
        .execute(Command::AssignGroupLicenses {
            group_id,
            add_licenses,
            remove_licenses,
        })
        .await?;
    accepted_with_group(&tenant, request, group_id).await
}

/// List a group's members.
///
/// Graph-compatible: users with `@odata.type` `#microsoft.graph.user`, oldest membership first,
/// then nested groups with `#microsoft.graph.group` (left out when `$filter`, `$search` or
/// `$orderby`, which name user properties here, is given).
#[utoipa::path(get, path = "/v1.0/groups/{id}/members", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of members", body = DirectoryObjectCollectionResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    members_page(&tenant, request, &id, MemberCast::DirectoryObjects, false).await
}

/// Count a group's members.
///
/// Graph-compatible: `text/plain` count of the members matching `$filter` / `$search`; needs
/// `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/groups/{id}/members/$count", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of members", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn count_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    members_count(&tenant, request, &id, MemberCast::DirectoryObjects, false).await
}

/// List a group's transitive members.
///
/// Graph-compatible: every user in the group or in a group nested in it (at any depth, each
/// once), then every nested group.
#[utoipa::path(get, path = "/v1.0/groups/{id}/transitiveMembers", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of members", body = DirectoryObjectCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_transitive_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    members_page(&tenant, request, &id, MemberCast::DirectoryObjects, true).await
}

/// Count a group's transitive members.
///
/// Graph-compatible: `text/plain`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/groups/{id}/transitiveMembers/$count", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of transitive members", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn count_transitive_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    members_count(&tenant, request, &id, MemberCast::DirectoryObjects, true).await
}

/// List a group's members that are users.
///
/// Graph-compatible type cast (`@odata.context` `users`): the direct user members.
#[utoipa::path(get, path = "/v1.0/groups/{id}/members/microsoft.graph.user", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of users", body = UserCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_user_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    members_page(&tenant, request, &id, MemberCast::Users, false).await
}

/// Count a group's members that are users.
///
/// Graph-compatible: `text/plain`; needs `ConsistencyLevel: eventual`.
#[utoipa::path(get, path = "/v1.0/groups/{id}/members/microsoft.graph.user/$count", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CountQuery, RequiredConsistencyLevelHeader),
    responses(
        (status = 200, description = "The number of user members", body = String, content_type = "text/plain"),
        (status = 400, description = "Missing ConsistencyLevel or an invalid query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn count_user_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    members_count(&tenant, request, &id, MemberCast::Users, false).await
}

/// List a group's members that are groups.
///
/// Graph-compatible type cast (`@odata.context` `groups`): the groups nested directly in this one,
/// oldest first.
#[utoipa::path(get, path = "/v1.0/groups/{id}/members/microsoft.graph.group", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of groups", body = GroupCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_group_members(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    members_page(&tenant, request, &id, MemberCast::Groups, false).await
}

/// Get one member of a group, or refuse an unsupported type cast.
///
/// Graph-compatible: `members/{member-id}` is the member as a directory object (404 if the user
/// is not a member); `members/graph.user` and `members/graph.group` (the casts with the
/// namespace's alias, as Microsoft's SDKs send them) are the casts. A type cast licensd does not model (`members/microsoft.graph.device`, ...)
/// is answered 400 `Request_UnsupportedQuery`, not a 404.
#[utoipa::path(get, path = "/v1.0/groups/{id}/members/{member_id}", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"),
           ("member_id" = Uuid, Path, description = "The member's id (`graph.user` and `graph.group`, the casts with the namespace's alias, are served here too)"), SelectQuery),
    responses(
        (status = 200, description = "The member", body = User),
        (status = 400, description = "Not a GUID, or a type cast licensd does not support", body = ErrorResponse),
        (status = 404, description = "No such group, or not a member", body = ErrorResponse),
    ))]
pub async fn get_member(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters((id, member_id)): PathParameters<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // Microsoft's SDKs send casts with the namespace's alias (`members/graph.user`).
    match member_id.as_str() {
        "graph.user" => return members_page(&tenant, request, &id, MemberCast::Users, false).await,
        "graph.group" => return members_page(&tenant, request, &id, MemberCast::Groups, false).await,
        _ => {}
    }
    let group_id = parse_object_id(&id)?;
    if let Some(type_name) = member_id
        .strip_prefix("microsoft.graph.")
        .or_else(|| member_id.strip_prefix("graph."))
    {
        return Err(unsupported_cast(
            "members",
            type_name,
            "microsoft.graph.user, microsoft.graph.group",
        ));
    }
    let member_id = parse_object_id(&member_id)?;
    let member = tenant
        .read(move |engine| {
            if engine.member_groups(group_id)?.contains(&member_id) {
                let options = request.options(&GROUP_SCHEMA, Supported::SELECT_ONLY)?;
                let group = convert::group_json(engine, member_id, &options.selection, true)?;
                return Ok(with_context(request.context("directoryObjects/$entity"), group));
            }
            let options = request.options(&USER_SCHEMA, Supported::SELECT_ONLY)?;
            if !engine.group_members(group_id)?.contains(&member_id) {
                return Err(ApiError::not_found(member_id));
            }
            let user = convert::user_json(engine, member_id, &options.selection, true, &mut None)?;
            Ok(with_context(request.context("directoryObjects/$entity"), user))
        })
        .await?;
    Ok(Json(member))
}

/// The answer to a type cast licensd does not model: a 400 that says so (never a 404 that
/// reads as a missing id).
pub fn unsupported_cast(navigation: &str, type_name: &str, supported: &str) -> ApiError {
    ApiError::unsupported_query(format!(
        "The type cast '{navigation}/microsoft.graph.{type_name}' is not supported: licensd models users and groups only; supported casts here: {supported}."
    ))
}

/// The directory object id at the end of an `@odata.id` (its forms are
/// `licensd_protocols::odata::reference`'s).
fn referenced_id(odata_id: &str) -> Result<Uuid, ApiError> {
    licensd_protocols::odata::reference::referenced_id(odata_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidObjectIdentifier,
            format!(
                "Invalid object identifier in @odata.id '{odata_id}': expected …/directoryObjects/{{id}}."
            ),
        )
    })
}

/// Add a member.
///
/// Graph-compatible (204). Body `{"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/{id}"}`,
/// a user or a group. A group that would become a member of itself (directly or through nested
/// groups) is refused with 400 `nesting_cycle`. Members of a nested group receive this group's
/// products only when the tenant's transitive licensing is on (off by default, as in Entra ID).
#[utoipa::path(post, path = "/v1.0/groups/{id}/members/$ref", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id")),
    request_body = ReferenceRequest,
    responses(
        (status = 204, description = "Added; the user's licenses are processed in the background"),
        (status = 400, description = "Already a member, or a nesting cycle", body = ErrorResponse),
        (status = 404, description = "No such group, user or member group", body = ErrorResponse),
    ))]
pub async fn add_member(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
    JsonBody(body): JsonBody<ReferenceRequest>,
) -> Result<StatusCode, ApiError> {
    let group_id = parse_object_id(&id)?;
    let member_id = referenced_id(&body.odata_id)?;
    // Three look-ups: answered on the async thread when the engine is free.
    let member_is_group = tenant
        .read_entity(move |engine| {
            existing_group(engine, group_id)?;
            if engine.user_view(member_id).is_ok() {
                return Ok(false);
            }
            if engine.group_view(member_id).is_ok() {
                return Ok(true);
            }
            Err(ApiError::not_found(member_id))
        })
        .await?;
    let command = if member_is_group {
        Command::AddGroupMemberGroup {
            group_id,
            member_group_id: member_id,
        }
    } else {
        Command::AddGroupMember {
            group_id,
            user_id: member_id,
        }
    };
    tenant.execute(command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a member.
///
/// Graph-compatible (204). The user's licenses from the group are removed in the background
/// (unless another plan depends on them).
#[utoipa::path(delete, path = "/v1.0/groups/{id}/members/{member_id}/$ref", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), ("member_id" = Uuid, Path, description = "The member's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such group, user or membership", body = ErrorResponse),
    ))]
pub async fn remove_member(
    tenant: Tenant,
    PathParameters((id, member_id)): PathParameters<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let group_id = parse_object_id(&id)?;
    let member_id = parse_object_id(&member_id)?;
    let member_is_group = tenant
        .read(move |engine| Ok::<_, ApiError>(engine.member_groups(group_id)?.contains(&member_id)))
        .await?;
    let command = if member_is_group {
        Command::RemoveGroupMemberGroup {
            group_id,
            member_group_id: member_id,
        }
    } else {
        Command::RemoveGroupMember {
            group_id,
            user_id: member_id,
        }
    };
    tenant.execute(command).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List members with license errors.
///
/// Graph-compatible: users with an error on an assignment from this group (including former
/// members whose removal is blocked by a dependency).
#[utoipa::path(get, path = "/v1.0/groups/{id}/membersWithLicenseErrors", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "A page of users in error", body = DirectoryObjectCollectionResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_members_with_license_errors(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    let group_id = parse_object_id(&id)?;
    let options = request.options(&USER_SCHEMA, Supported::COLLECTION)?;
    let response = tenant
        .read(move |engine| {
            let matching = matching_users(engine, engine.members_with_license_errors(group_id)?, &options)?;
            let mut products = None;
            let page = options.page(matching, |user_id| *user_id).try_map(|user_id| {
                convert::user_json_expanded(engine, user_id, &options, true, &mut products)
            })?;
            Ok(request.collection(&options, "directoryObjects", page))
        })
        .await?;
    Ok(Json(response))
}

/// Reprocess a group (licensd extension).
///
/// Not in Graph (the portal has a button): queues every member of the group, and every user it
/// still grants licenses to; 202 with the group.
#[utoipa::path(post, path = "/v1.0/groups/{id}/reprocessLicenseAssignment", tag = "licensd extensions to Graph",
    params(("id" = Uuid, Path, description = "The group's id")),
    responses(
        (status = 202, description = "Queued", body = Group, headers(("Location" = String, description = "The group's address"))),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn reprocess_group(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ApiError> {
    let group_id = parse_object_id(&id)?;
    tenant.execute(Command::ReprocessGroup { group_id }).await?;
    accepted_with_group(&tenant, request, group_id).await
}
