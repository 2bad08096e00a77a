//! `/licensd/v1/whatif` and `/licensd/v1/changes`: simulate a list of changes without applying
//! anything (the users whose states would change, per product and group), and apply exactly
//! such a list — the "apply" of a proposed fix — through the same commands as every other write.

use axum::Json;
use licensd_api_types::diagnosis::{
    ApplyChangesRequest, ApplyChangesResponse, WhatIfRequest, WhatIfResponse,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::WhatIfOptions;

use super::diagnosis::{commands_of, what_if_error, wire_what_if};
use crate::api::{ApiError, JsonBody, Tenant};
use licensd_runtime::tenants::now;

/// Users listed in a what-if when the request does not say.
const DEFAULT_LISTED_USERS: u32 = 100;
/// The most users a what-if lists.
const MAX_LISTED_USERS: u32 = 10_000;

/// Simulate changes.
///
/// licensd extension: applies the changes to a private copy of the tenant, processes it to the
/// end, and answers which users' states would change (fixed, newly broken, seats consumed or
/// freed) per product and group. Nothing is applied. A change the tenant would refuse is
/// refused here with the same error, naming the change.
#[utoipa::path(post, path = "/licensd/v1/whatif", tag = "licensd: diagnosis",
    request_body = WhatIfRequest,
    responses(
        (status = 200, description = "The predicted effect", body = WhatIfResponse),
        (status = 400, description = "A change is invalid or would be refused", body = ErrorResponse),
        (status = 404, description = "A change names a user or group that does not exist", body = ErrorResponse),
    ))]
pub async fn what_if(
    tenant: Tenant,
    JsonBody(body): JsonBody<WhatIfRequest>,
) -> Result<Json<WhatIfResponse>, ApiError> {
    let commands = commands_of(&body.changes)?;
    let listed = body.max_listed_users.unwrap_or(DEFAULT_LISTED_USERS);
    if listed > MAX_LISTED_USERS {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!("maxListedUsers must be at most {MAX_LISTED_USERS}."),
        ));
    }
    let options = WhatIfOptions {
        max_listed_users: listed as usize,
    };
    let report = tenant
        .read(move |engine| {
            engine
                .what_if(&commands, now(), options)
                .map(|report| wire_what_if(&report))
                .map_err(what_if_error)
        })
        .await?;
    Ok(Json(report))
}

/// Apply changes.
///
/// licensd extension: applies the changes in order, each as its own command (validated at
/// once, persisted in its own transaction), as proposed by a fix of a diagnosis or the advisor.
/// Every change is checked for shape first, so a malformed list changes nothing; a change the
/// engine refuses stops the list there, with the earlier changes applied and the error naming
/// the refused change.
#[utoipa::path(post, path = "/licensd/v1/changes", tag = "licensd: diagnosis",
    request_body = ApplyChangesRequest,
    responses(
        (status = 200, description = "Every change was applied", body = ApplyChangesResponse),
        (status = 400, description = "A change is invalid or was refused", body = ErrorResponse),
        (status = 404, description = "A change names a user or group that does not exist", body = ErrorResponse),
    ))]
pub async fn apply_changes(
    tenant: Tenant,
    JsonBody(body): JsonBody<ApplyChangesRequest>,
) -> Result<Json<ApplyChangesResponse>, ApiError> {
    let commands = commands_of(&body.changes)?;
    let mut queued_users = 0u64;
    for (index, command) in commands.into_iter().enumerate() {
        let outcome = tenant.execute(command).await.map_err(|error| ApiError {
            message: if index == 0 {
                format!("Change 0 was refused: {}", error.message)
            } else {
                format!(
                    "Change {index} was refused (changes 0 to {} were applied): {}",
                    index - 1,
                    error.message
                )
            },
            ..error
        })?;
        queued_users += outcome.queued_users as u64;
    }
    Ok(Json(ApplyChangesResponse {
        applied_changes: body.changes.len() as u64,
        queued_users,
    }))
}
