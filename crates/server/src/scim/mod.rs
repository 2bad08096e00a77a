//! SCIM 2.0 provisioning (RFC 7643/7644) under `/scim/v2`, for identity providers such as
//! Microsoft Entra ID and Okta: discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`),
//! `Users` and `Groups` with create, read, replace, PATCH, delete, filtered and paged lists and
//! `/.search`. Each route states what it reads or changes ([`guard`]). Every change is an engine command run through [`Tenant::execute`], the same path
//! (queue, audit, roles) as the Graph surface; attributes licensing does not model (`externalId`,
//! `name`, the enterprise extension…) are kept with the user or group as opaque directory
//! attributes ([`licensd_engine::Command::SetDirectoryAttributes`]). See `docs/scim.md`.

pub mod discovery;
pub mod error;
pub mod groups;
mod guard;
pub mod users;

use std::hash::{Hash, Hasher};

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use licensd_engine::{Command, CommandOutcome, Engine};
use serde_json::Value;

// The SCIM grammar (schemas, filters and paths, PATCH, list queries) is licensd-protocols';
// re-exported here so the handlers name it as part of this surface.
pub use licensd_protocols::scim::{filter, patch, project, schema, selection_of, ListQuery, MAX_RESULTS};

use self::error::ScimError;
use crate::api::{RequestOrigin, Tenant, MAX_BODY_BYTES};
use crate::AppState;

/// The media type of SCIM bodies.
pub const SCIM_CONTENT_TYPE: &str = "application/scim+json";
/// Where the SCIM endpoints live.
pub const BASE_PATH: &str = "/scim/v2";

/// The `/scim/v2` routes, with SCIM errors for unknown addresses and methods.
pub fn router() -> Router<AppState> {
    let directory = || middleware::from_fn_with_state(guard::DIRECTORY, guard::guard);
    let reads = || middleware::from_fn_with_state(guard::READS_DIRECTORY, guard::guard);
    let changes = Router::new()
        .route("/Users", get(users::list).post(users::create))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        )
        .route("/Groups", get(groups::list).post(groups::create))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route("/Bulk", post(discovery::bulk))
        .route_layer(directory());
    let reads_only = Router::new()
        .route("/ServiceProviderConfig", get(discovery::service_provider_config))
        .route("/ResourceTypes", get(discovery::resource_types))
        .route("/ResourceTypes/{id}", get(discovery::resource_type))
        .route("/Schemas", get(discovery::schemas))
        .route("/Schemas/{id}", get(discovery::schema))
        // Searches change nothing although they are POSTs.
        .route("/Users/.search", post(users::search))
        .route("/Groups/.search", post(groups::search))
        .route("/.search", post(discovery::search_everything))
        .route_layer(reads());
    // Unknown addresses and methods under `/scim/v2` need a credential too: they say nothing
    // to anyone who has none.
    let scim = changes
        .merge(reads_only)
        .fallback(not_found.layer(directory()))
        .method_not_allowed_fallback(method_not_allowed.layer(directory()));
    Router::new().nest(BASE_PATH, scim)
}

async fn not_found() -> ScimError {
    ScimError::not_found("No SCIM endpoint at this address.")
}

async fn method_not_allowed() -> ScimError {
    ScimError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        None,
        "This SCIM endpoint does not support this HTTP method.",
    )
}

/// A SCIM JSON answer with its status and optional `ETag` / `Location`.
pub struct ScimResponse {
    pub status: StatusCode,
    pub body: Value,
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl ScimResponse {
    pub fn ok(body: Value) -> ScimResponse {
        ScimResponse {
            status: StatusCode::OK,
            body,
            etag: None,
            location: None,
        }
    }
}

impl IntoResponse for ScimResponse {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(SCIM_CONTENT_TYPE),
        );
        if let Some(etag) = self
            .etag
            .and_then(|etag| header::HeaderValue::from_str(&etag).ok())
        {
            headers.insert(header::ETAG, etag);
        }
        if let Some(location) = self
            .location
            .and_then(|location| header::HeaderValue::from_str(&location).ok())
        {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

/// The tenant of a SCIM request (the API's [`Tenant`], with SCIM errors).
pub struct ScimTenant(pub Tenant);

impl FromRequestParts<AppState> for ScimTenant {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Tenant::from_request_parts(parts, state)
            .await
            .map(ScimTenant)
            .map_err(ScimError::from)
    }
}

impl ScimTenant {
    /// Runs a query against the engine.
    pub async fn read<T, F>(&self, query: F) -> Result<T, ScimError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ScimError> + Send + 'static,
    {
        self.0
            .read(move |engine| Ok(query(engine)))
            .await
            .map_err(ScimError::from)?
    }

    /// Applies a command through the same path as the Graph surface.
    pub async fn execute(&self, command: Command) -> Result<CommandOutcome, ScimError> {
        self.0.execute(command).await.map_err(ScimError::from)
    }
}

/// The base URL of the SCIM service as the client addressed it (`…/scim/v2`).
pub struct ScimBase(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ScimBase {
    type Rejection = ScimError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let RequestOrigin(origin) = RequestOrigin::from_request_parts(parts, state)
            .await
            .map_err(ScimError::from)?;
        Ok(ScimBase(format!("{origin}{BASE_PATH}")))
    }
}

/// A JSON request body: `application/scim+json` or `application/json` (or no content type).
pub struct ScimBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for ScimBody {
    type Rejection = ScimError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = content_type.split(';').next().unwrap_or("").trim().to_string();
            if !(essence == "application/json" || essence.ends_with("+json")) {
                return Err(ScimError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    None,
                    format!("The body must be application/scim+json or application/json, not '{essence}'."),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ScimError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    None,
                    format!("The body is larger than {MAX_BODY_BYTES} bytes."),
                )
            } else {
                ScimError::invalid_syntax(format!("The body could not be read: {}", rejection.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ScimError::invalid_syntax(
                "The body is empty; a JSON object is expected.",
            ));
        }
        crate::api::extract::check_json_depth(&bytes).map_err(ScimError::invalid_syntax)?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| ScimError::invalid_syntax(format!("The body is not valid JSON: {error}.")))?;
        if let Some(overlong) = licensd_api_types::limits::find_overlong(&value) {
            return Err(ScimError::invalid_value(overlong.to_string()));
        }
        if !value.is_object() {
            return Err(ScimError::invalid_syntax("The body must be a JSON object."));
        }
        Ok(ScimBody(value))
    }
}

/// A weak ETag of a resource's content.
pub fn version_of(content: &impl Hash) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    content.hash(&mut hasher);
    format!("W/\"{:016x}\"", hasher.finish())
}

/// Refuses a change when `If-Match` names another version (412), as RFC 7644 §3.14 describes.
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ScimError> {
    let Some(expected) = headers
        .get(header::IF_MATCH)
        .and_then(|value| value.to_str().ok())
    else {
        return Ok(());
    };
    let matches = expected.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag == current || tag.trim_start_matches("W/") == current.trim_start_matches("W/")
    });
    if matches {
        Ok(())
    } else {
        Err(ScimError::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            format!("The resource's version is {current}, not {expected}: it changed since it was read."),
        ))
    }
}

/// Whether `If-None-Match` names the current version (a GET is then answered 304).
pub fn not_modified(headers: &HeaderMap, current: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(str::trim)
                .any(|tag| tag == current || tag == "*")
        })
}

/// The 304 answer.
pub fn not_modified_response(etag: String) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = header::HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_compares_versions() {
        let mut headers = HeaderMap::new();
        assert!(check_if_match(&headers, "W/\"1\"").is_ok());
        headers.insert(header::IF_MATCH, "W/\"2\"".parse().expect("header"));
        assert_eq!(
            check_if_match(&headers, "W/\"1\"").expect_err("stale").status,
            StatusCode::PRECONDITION_FAILED
        );
        assert!(check_if_match(&headers, "W/\"2\"").is_ok());
    }
}
