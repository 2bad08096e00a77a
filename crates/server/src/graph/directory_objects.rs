//! Graph `POST /v1.0/directoryObjects/getByIds`: users and groups by id in one request, as
//! directory objects with their `@odata.type`, the way scripts resolve ids found in audit logs
//! and group memberships.

use axum::Json;
use licensd_api_types::graph::{DirectoryObjectCollectionResponse, GetByIdsRequest};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::Uuid;
use serde_json::Value;

use super::convert;
use crate::api::{ApiError, JsonBody, Tenant};
use crate::odata::{ODataRequest, Page, Selection, Supported, GROUP_SCHEMA, USER_SCHEMA};

/// The most ids Graph accepts in one `getByIds`.
pub const MAX_IDS: usize = 1000;

/// The directory object types a `types` entry may name, and whether licensd models them.
fn requested_types(types: Option<&[String]>) -> Result<(bool, bool), ApiError> {
    let Some(types) = types.filter(|types| !types.is_empty()) else {
        return Ok((true, true));
    };
    let (mut users, mut groups) = (false, false);
    for name in types {
        match name.trim_start_matches("microsoft.graph.").to_ascii_lowercase().as_str() {
            "user" => users = true,
            "group" => groups = true,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::NotSupported,
                    format!(
                        "The type '{name}' is not supported in getByIds: licensd models users and groups only (types 'user' and 'group')."
                    ),
                ))
            }
        }
    }
    Ok((users, groups))
}

/// Get directory objects by id.
///
/// Graph-compatible: the users and groups among `ids` (up to 1000), in the order given, each
/// with `@odata.type`; unknown ids are left out, as in Graph. `types` limits the answer to
/// `user` and/or `group` (other Graph types are refused: licensd does not model them).
#[utoipa::path(post, path = "/v1.0/directoryObjects/getByIds", tag = "Graph: directoryObjects",
    request_body = GetByIdsRequest,
    responses(
        (status = 200, description = "The objects found", body = DirectoryObjectCollectionResponse),
        (status = 400, description = "An invalid body, an id that is not a GUID, over 1000 ids, or an unsupported type", body = ErrorResponse),
    ))]
pub async fn get_by_ids(
    tenant: Tenant,
    request: ODataRequest,
    JsonBody(body): JsonBody<GetByIdsRequest>,
) -> Result<Json<Value>, ApiError> {
    if body.ids.len() > MAX_IDS {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!(
                "Too many ids: {} given, at most {MAX_IDS} are accepted.",
                body.ids.len()
            ),
        ));
    }
    let ids = body
        .ids
        .iter()
        .map(|id| Uuid::try_parse(id.trim()).map_err(|_| ApiError::invalid_object_identifier(id)))
        .collect::<Result<Vec<Uuid>, ApiError>>()?;
    let (want_users, want_groups) = requested_types(body.types.as_deref())?;
    let options = request.options(&USER_SCHEMA, Supported::SELECT_ONLY)?;
    if options.selection.explicit.is_some() {
        return Err(ApiError::unsupported_query(
            "$select is not supported on getByIds in licensd: users and groups are returned with their default properties.",
        ));
    }
    let response = tenant
        .read(move |engine| {
            let user_selection = Selection::default_for(&USER_SCHEMA);
            let group_selection = Selection::default_for(&GROUP_SCHEMA);
            let mut products = None;
            let mut found = Vec::new();
            let mut seen = std::collections::HashSet::new();
            for id in ids {
                if !seen.insert(id) {
                    continue;
                }
                if want_users && engine.user_view(id).is_ok() {
                    found.push(convert::user_json(
                        engine,
                        id,
                        &user_selection,
                        true,
                        &mut products,
                    )?);
                } else if want_groups && engine.group_view(id).is_ok() {
                    found.push(convert::group_json(engine, id, &group_selection, true)?);
                }
            }
            let page = Page {
                total: found.len(),
                items: found,
                next_skip_token: None,
            };
            Ok(request.collection(&options, "directoryObjects", page))
        })
        .await?;
    Ok(Json(response))
}
