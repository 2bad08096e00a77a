//! Graph JSON batching, `POST /v1.0/$batch`: up to 20 requests in one call, each sent through
//! the same router as if it had come alone (authenticated, rate-limited, authorized and audited
//! under its own request id with the caller's credentials), with `dependsOn` (a request whose
//! dependency failed is answered 424 without running) and per-request status, headers and body.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request};
use axum::response::IntoResponse;
use axum::{Json, Router};
use licensd_api_types::graph_sync::{BatchRequest, BatchRequestItem, BatchResponse, BatchResponseItem};
use licensd_api_types::{ErrorCode, ErrorResponse};
use serde_json::Value;
use tower::ServiceExt;

use crate::api::{ApiError, JsonBody, PublicLinks};

/// Graph's limit of requests in one batch.
pub const MAX_BATCH_REQUESTS: usize = 20;

/// The largest response body of one request that a batch answer carries (a page of 999 users
/// with every property stays far below it).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// The router a batch sends its requests through: the whole HTTP surface (its layers included)
/// but without this extension, so a batch inside a batch finds no dispatcher.
#[derive(Clone)]
pub struct BatchDispatcher(pub Router);

/// Headers of the batch request that every request of it carries, whatever it says itself: the
/// caller's credentials (a request of a batch cannot act as someone else) and the address the
/// client used (for absolute links).
const INHERITED_HEADERS: [HeaderName; 5] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::HOST,
    HeaderName::from_static("x-forwarded-proto"),
    HeaderName::from_static("x-forwarded-host"),
];

/// Headers of a request's answer that describe the batch's transport, not the request.
const TRANSPORT_HEADERS: [HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::CONNECTION,
    header::TRANSFER_ENCODING,
];

/// Run several requests in one call.
///
/// Graph-compatible JSON batching: up to 20 requests with relative URLs (`/users?$top=5`),
/// `method`, optional `headers`, `body` and `dependsOn`. Each request is authenticated,
/// authorized, rate-limited and audited exactly as if it had been sent alone; requests run one
/// after the other in the order given and the answers come in that order. A request whose
/// dependency failed is answered 424. A batch inside a batch is refused.
#[utoipa::path(post, path = "/v1.0/$batch", tag = "Graph: batch", request_body = BatchRequest,
    responses(
        (status = 200, description = "One answer per request", body = BatchResponse),
        (status = 400, description = "No requests, more than 20, duplicate ids, an unknown or later `dependsOn`, an absolute or nested `$batch` URL, an unknown method, a body that is not a JSON object", body = ErrorResponse),
    ))]
pub async fn run_batch(
    extensions: Extensions,
    headers: HeaderMap,
    JsonBody(batch): JsonBody<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    let Some(BatchDispatcher(router)) = extensions.get::<BatchDispatcher>().cloned() else {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestBody,
            "A $batch cannot contain another $batch.",
        ));
    };
    let prepared = validate(&batch)?;
    let mut failed: HashSet<&str> = HashSet::new();
    let mut responses = Vec::with_capacity(prepared.len());
    for (item, method, path) in prepared {
        let depends_on = item.depends_on.as_deref().unwrap_or_default();
        let answer = if let Some(dependency) = depends_on.iter().find(|id| failed.contains(id.as_str())) {
            failed_dependency(&item.id, dependency).await
        } else {
            let request = build_request(item, method, path, &headers, &extensions)?;
            match router.clone().oneshot(request).await {
                Ok(response) => to_batch_response(&item.id, response).await?,
                Err(never) => match never {},
            }
        };
        if answer.status >= 400 {
            failed.insert(item.id.as_str());
        }
        responses.push(answer);
    }
    Ok(Json(BatchResponse { responses }))
}

/// Checks the whole batch before running any of it: a malformed batch runs nothing.
fn validate(batch: &BatchRequest) -> Result<Vec<(&BatchRequestItem, Method, String)>, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidRequestBody, message);
    if batch.requests.is_empty() {
        return Err(invalid("The batch has no requests; give 1 to 20.".to_string()));
    }
    if batch.requests.len() > MAX_BATCH_REQUESTS {
        return Err(invalid(format!(
            "The batch has {} requests; the limit is {MAX_BATCH_REQUESTS}.",
            batch.requests.len()
        )));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let mut prepared = Vec::with_capacity(batch.requests.len());
    for item in &batch.requests {
        if item.id.trim().is_empty() {
            return Err(invalid("A request of the batch has an empty id.".to_string()));
        }
        for dependency in item.depends_on.as_deref().unwrap_or_default() {
            if !seen.contains(dependency.as_str()) {
                return Err(invalid(format!(
                    "The request '{}' depends on '{dependency}', which is not an earlier request of the batch.",
                    item.id
                )));
            }
        }
        if !seen.insert(item.id.as_str()) {
            return Err(invalid(format!(
                "The id '{}' is used by more than one request of the batch.",
                item.id
            )));
        }
        let method = match item.method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            other => {
                return Err(invalid(format!(
                    "The request '{}' has the method '{other}'; use GET, POST, PATCH, PUT or DELETE.",
                    item.id
                )))
            }
        };
        if item.body.as_ref().is_some_and(|body| !body.is_object()) {
            return Err(invalid(format!(
                "The body of the request '{}' must be a JSON object.",
                item.id
            )));
        }
        let url = item.url.trim();
        if url.contains("://") || url.starts_with("//") {
            return Err(invalid(format!(
                "The request '{}' has an absolute URL; batch URLs are relative to /v1.0, such as /users.",
                item.id
            )));
        }
        let relative = url.trim_start_matches('/');
        // Microsoft's JavaScript SDK keeps the version in the URLs it batches (`/v1.0/users`).
        let relative = match relative.get(..5) {
            Some(version) if version.eq_ignore_ascii_case("v1.0/") => &relative[5..],
            _ => relative,
        };
        if relative.is_empty() {
            return Err(invalid(format!("The request '{}' has an empty URL.", item.id)));
        }
        let first_segment = relative.split(['/', '?']).next().unwrap_or("");
        if first_segment.eq_ignore_ascii_case("$batch") {
            return Err(invalid(format!(
                "The request '{}' is a $batch; a $batch cannot contain another $batch.",
                item.id
            )));
        }
        let path = format!("/v1.0/{relative}");
        if path.parse::<axum::http::Uri>().is_err() {
            return Err(invalid(format!(
                "The request '{}' has a URL that cannot be read: '{url}'.",
                item.id
            )));
        }
        prepared.push((item, method, path));
    }
    Ok(prepared)
}

/// The request as it would have come alone: its own headers and body, the batch's credentials
/// and address, the same connection details.
fn build_request(
    item: &BatchRequestItem,
    method: Method,
    path: String,
    batch_headers: &HeaderMap,
    batch_extensions: &Extensions,
) -> Result<Request<Body>, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidRequestBody, message);
    let mut request = Request::new(Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().map_err(|_| {
        invalid(format!(
            "The request '{}' has a URL that cannot be read.",
            item.id
        ))
    })?;
    let headers = request.headers_mut();
    for (name, value) in item.headers.iter().flatten() {
        let name = HeaderName::try_from(name.as_str()).map_err(|_| {
            invalid(format!(
                "The request '{}' has an invalid header name '{name}'.",
                item.id
            ))
        })?;
        let value = HeaderValue::try_from(value.as_str()).map_err(|_| {
            invalid(format!(
                "The request '{}' has an invalid value for header '{name}'.",
                item.id
            ))
        })?;
        headers.append(name, value);
    }
    for name in INHERITED_HEADERS {
        headers.remove(&name);
        for value in batch_headers.get_all(&name) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(body) = &item.body {
        let bytes = serde_json::to_vec(body)
            .map_err(|error| ApiError::internal(format!("a batch body does not serialize: {error}")))?;
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        *request.body_mut() = Body::from(bytes);
    }
    if let Some(connection) = batch_extensions.get::<ConnectInfo<SocketAddr>>() {
        request.extensions_mut().insert(*connection);
    }
    if let Some(links) = batch_extensions.get::<PublicLinks>() {
        request.extensions_mut().insert(links.clone());
    }
    Ok(request)
}

/// The answer of one request as the batch carries it.
async fn to_batch_response(
    id: &str,
    response: axum::response::Response,
) -> Result<BatchResponseItem, ApiError> {
    let (parts, body) = response.into_parts();
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        if TRANSPORT_HEADERS.contains(name) {
            continue;
        }
        if let Ok(text) = value.to_str() {
            headers.insert(canonical_header_name(name), text.to_string());
        }
    }
    let bytes = axum::body::to_bytes(body, MAX_RESPONSE_BYTES)
        .await
        .map_err(|error| ApiError::internal(format!("a batch response could not be read: {error}")))?;
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("json"));
    let body = if bytes.is_empty() {
        None
    } else if is_json {
        Some(
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        )
    } else {
        Some(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Ok(BatchResponseItem {
        id: id.to_string(),
        status: parts.status.as_u16(),
        headers,
        body,
    })
}

/// `Content-Type` rather than `content-type`, as Graph writes the headers of batch answers.
fn canonical_header_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|word| {
            let mut characters = word.chars();
            match characters.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + characters.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The 424 of a request whose dependency failed, in Graph's error envelope.
async fn failed_dependency(id: &str, dependency: &str) -> BatchResponseItem {
    let error = ApiError::new(
        ErrorCode::FailedDependency,
        format!("The request '{id}' was not run because the request '{dependency}' it depends on failed."),
    );
    match to_batch_response(id, error.into_response()).await {
        Ok(answer) => answer,
        Err(_) => BatchResponseItem {
            id: id.to_string(),
            status: 424,
            headers: BTreeMap::new(),
            body: None,
        },
    }
}
