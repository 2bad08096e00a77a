//! `/licensd/v1/tokens`: a Global Administrator lists, creates and revokes the tenant's access
//! tokens (their routes' guard refuses every other role). A new token's secret is in the
//! creation answer only; the store keeps its hash. Creation and revocation are audited.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use licensd_api_types::time::format_date_time;
use licensd_api_types::tokens::{AccessToken, AccessTokenList, CreateAccessToken, CreatedAccessToken};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::Uuid;
use licensd_store::{AccessTokenRecord, ModifiedProperty};

use crate::api::{ApiError, JsonBody, PathParameters, Tenant};
use crate::AppState;
use licensd_runtime::access::{IssuedToken, Role};
use licensd_runtime::audit::token_changed;
use licensd_runtime::tenants::now;

/// The longest token display name.
const MAX_NAME_LENGTH: usize = 128;
/// The longest lifetime of a token, in days.
const MAX_DAYS: u32 = 3_650;

/// The wire shape of a stored token at a moment.
pub fn access_token(record: &AccessTokenRecord, at: i64) -> AccessToken {
    let status = if record.revoked_at.is_some() {
        "revoked"
    } else if record.expires_at.is_some_and(|expires_at| expires_at <= at) {
        "expired"
    } else {
        "active"
    };
    AccessToken {
        id: record.token_id,
        display_name: record.display_name.clone(),
        role: record.role.clone(),
        created_date_time: format_date_time(record.created_at),
        created_by: record.created_by.clone(),
        expiration_date_time: record.expires_at.map(format_date_time),
        revoked_date_time: record.revoked_at.map(format_date_time),
        status: status.to_string(),
    }
}

/// List access tokens.
///
/// licensd extension, Global Administrator only. Secrets are never shown.
#[utoipa::path(get, path = "/licensd/v1/tokens", tag = "licensd: tokens",
    responses(
        (status = 200, description = "The tenant's tokens, oldest first", body = AccessTokenList),
        (status = 403, description = "Not a Global Administrator", body = ErrorResponse),
    ))]
pub async fn list_tokens(tenant: Tenant) -> Result<Json<AccessTokenList>, ApiError> {
    let records = tenant
        .with_store(|store, tenant_id| {
            store
                .access_tokens(tenant_id)
                .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
    let at = now().0;
    Ok(Json(AccessTokenList {
        value: records.iter().map(|record| access_token(record, at)).collect(),
    }))
}

/// Create an access token.
///
/// licensd extension, Global Administrator only. The answer is the only place the secret
/// appears; store it safely.
#[utoipa::path(post, path = "/licensd/v1/tokens", tag = "licensd: tokens", request_body = CreateAccessToken,
    responses(
        (status = 201, description = "The token with its secret, shown once", body = CreatedAccessToken),
        (status = 400, description = "An invalid name, role or lifetime", body = ErrorResponse),
        (status = 403, description = "Not a Global Administrator", body = ErrorResponse),
    ))]
pub async fn create_token(
    tenant: Tenant,
    JsonBody(body): JsonBody<CreateAccessToken>,
) -> Result<Response, ApiError> {
    let display_name = body.display_name.trim().to_string();
    if display_name.is_empty()
        || display_name.chars().count() > MAX_NAME_LENGTH
        || display_name.chars().any(char::is_control)
    {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!("displayName must be 1 to {MAX_NAME_LENGTH} printable characters."),
        ));
    }
    let role: Role = body
        .role
        .parse()
        .map_err(|error: licensd_runtime::access::UnknownRole| {
            ApiError::new(ErrorCode::InvalidValue, error.to_string())
        })?;
    if let Some(days) = body.expires_in_days {
        if !(1..=MAX_DAYS).contains(&days) {
            return Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!("expiresInDays must be from 1 to {MAX_DAYS}, not {days}."),
            ));
        }
    }
    let issued = IssuedToken::generate().map_err(|error| ApiError::internal(error.to_string()))?;
    let created_at = now().0;
    let record = AccessTokenRecord {
        token_id: issued.token_id,
        tenant_id: tenant.id(),
        display_name,
        role: role.as_str().to_string(),
        secret_hash: issued.secret_hash(),
        created_at,
        created_by: tenant.caller.display_name.clone(),
        expires_at: body
            .expires_in_days
            .map(|days| created_at + i64::from(days) * 24 * 60 * 60 * 1_000),
        revoked_at: None,
    };
    let audit = token_changed(
        &tenant.caller,
        "Create access token",
        &record,
        ModifiedProperty {
            display_name: "Role".to_string(),
            old_value: String::new(),
            new_value: record.role.clone(),
        },
        now().0,
    );
    let stored = record.clone();
    tenant
        .with_store(move |store, _| {
            store
                .create_access_token_audited(&stored, &[audit])
                .map_err(|error| ApiError::internal(error.to_string()))
        })
        .await?;
    let answer = CreatedAccessToken {
        token: access_token(&record, created_at),
        secret: issued.reveal(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Revoke an access token.
///
/// licensd extension, Global Administrator only. Takes effect at once on every instance.
#[utoipa::path(delete, path = "/licensd/v1/tokens/{id}", tag = "licensd: tokens",
    params(("id" = Uuid, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked (revoking again changes nothing)"),
        (status = 404, description = "No such token in this tenant", body = ErrorResponse),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<StatusCode, ApiError> {
    let token_id = Uuid::try_parse(id.trim()).map_err(|_| ApiError::not_found(&id))?;
    let audit_tenant = tenant.clone();
    let answer = tenant
        .with_store(move |store, tenant_id| {
            let internal = |error: licensd_store::StoreError| ApiError::internal(error.to_string());
            let record = store
                .access_token(token_id)
                .map_err(internal)?
                .filter(|record| record.tenant_id == tenant_id)
                .ok_or_else(|| ApiError::not_found(token_id))?;
            let at = now().0;
            let audit = token_changed(
                &audit_tenant.caller,
                "Revoke access token",
                &record,
                ModifiedProperty {
                    display_name: "Status".to_string(),
                    old_value: if record.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    }
                    .to_string(),
                    new_value: "revoked".to_string(),
                },
                at,
            );
            store
                .revoke_access_token_audited(tenant_id, token_id, at, &[audit])
                .map_err(internal)?;
            // Refused by this instance from now on; the others hear of it from the store.
            state.token_cache.forget(token_id);
            Ok(StatusCode::NO_CONTENT)
        })
        .await?;
    Ok(answer)
}
