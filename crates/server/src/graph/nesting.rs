//! Graph `groups/{id}/memberOf` and `groups/{id}/transitiveMemberOf`: the groups a group is
//! nested in (issue 17, nested groups). Adding and removing a nested group goes through
//! `groups/{id}/members/$ref` (`groups.rs`), listing a group's nested groups through `members`.

use axum::Json;
use licensd_api_types::graph::DirectoryObjectCollectionResponse;
use licensd_api_types::ErrorResponse;
use licensd_engine::Uuid;
use serde_json::Value;

use super::convert;
use super::groups::matching_groups;
use super::{CollectionQuery, ConsistencyLevelHeader};
use crate::api::{parse_object_id, ApiError, PathParameters, Tenant};
use crate::odata::{ODataRequest, Supported, GROUP_SCHEMA};

/// A page of the groups a group is nested in, directly or at any depth.
async fn parents_page(
    tenant: &Tenant,
    request: ODataRequest,
    id: &str,
    transitive: bool,
) -> Result<Json<Value>, ApiError> {
    let group_id: Uuid = parse_object_id(id)?;
    let options = request.options(&GROUP_SCHEMA, Supported::COLLECTION)?;
    let response = tenant
        .read(move |engine| {
            let parents = if transitive {
                engine.group_transitive_member_of(group_id)?
            } else {
                engine.group_member_of(group_id)?
            };
            let matching = matching_groups(engine, parents, &options)?;
            let mut products = None;
            let page = options.page(matching, |id| *id).try_map(|parent| {
                convert::group_json_expanded(engine, parent, &options, true, &mut products)
            })?;
            Ok(request.collection(&options, "directoryObjects", page))
        })
        .await?;
    Ok(Json(response))
}

/// List the groups a group is a direct member of.
///
/// Graph-compatible: directory objects with `@odata.type` `#microsoft.graph.group`.
#[utoipa::path(get, path = "/v1.0/groups/{id}/memberOf", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "The groups this group is nested in", body = DirectoryObjectCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_group_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    parents_page(&tenant, request, &id, false).await
}

/// List the groups a group is a transitive member of.
///
/// Graph-compatible: every group this group is nested in, at any depth, nearest first.
#[utoipa::path(get, path = "/v1.0/groups/{id}/transitiveMemberOf", tag = "Graph: groups",
    params(("id" = Uuid, Path, description = "The group's id"), CollectionQuery, ConsistencyLevelHeader),
    responses(
        (status = 200, description = "The groups this group is nested in, at any depth", body = DirectoryObjectCollectionResponse),
        (status = 400, description = "An invalid or unsupported query", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn list_group_transitive_member_of(
    tenant: Tenant,
    request: ODataRequest,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<Value>, ApiError> {
    parents_page(&tenant, request, &id, true).await
}
