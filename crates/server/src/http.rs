//! The HTTP surface: health checks, the Graph-compatible API under `/v1.0`, licensd's admin API
//! under `/licensd/v1`, the OpenAPI document describing both at `/openapi.json`, and the admin web
//! console at `/` (`console::router`, HTML pages). Each surface guards its own routes (what each
//! reads and may change, `auth::authorize` underneath); the health checks, the document, Graph's
//! `$metadata` and the console's assets and sign-in page are open.
//! Every response carries `request-id` and security headers; API errors use Graph's envelope;
//! bodies over 1 MiB are refused.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Extension, Router};

use crate::api::error::{method_not_allowed, route_not_found};
use crate::api::{request_context, ApiError, MAX_BODY_BYTES};
use crate::AppState;
use licensd_runtime::tenants::{lock_store, ResidencyReport};

pub fn router(state: AppState) -> Router {
    let (api_routes, document) = crate::openapi::api_router();
    let document: Arc<Result<String, String>> =
        Arc::new(crate::openapi::served_json(&document).map_err(|error| error.to_string()));
    let links = state.links.clone();
    let served = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/openapi.json",
            get(move || openapi_document(Arc::clone(&document))),
        )
        .merge(api_routes)
        .merge(crate::console::router())
        .merge(crate::scim::router())
        .merge(crate::metrics::router())
        // After routing, so each request is counted under its route's template.
        .route_layer(middleware::from_fn(crate::metrics::record_request))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // The surfaces' guards find the state here (their routers are built before it exists).
        .layer(Extension(state.clone()))
        .layer(middleware::from_fn(request_context))
        .layer(middleware::map_response(api_security_headers))
        .layer(Extension(links))
        .with_state(state);
    // `$batch` sends its requests through the served router; the dispatcher is added outside
    // it, so a batch inside a batch finds none (and the router does not hold itself).
    served
        .clone()
        .layer(Extension(crate::graph::batch::BatchDispatcher(served)))
}

/// Headers every response carries (the console adds its content security policy): no MIME
/// sniffing, no framing, no referrer leaks, no caching of tenant data.
async fn api_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The OpenAPI 3 document, generated once at start from the handlers.
async fn openapi_document(document: Arc<Result<String, String>>) -> Response {
    match document.as_ref() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        Err(error) => {
            ApiError::internal(format!("the OpenAPI document does not serialize: {error}")).into_response()
        }
    }
}

/// Liveness: the process serves requests.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers, tenants are loaded, and the database takes writes (the last
/// write did not fail; a SQLite database's file system has room). The body also counts how this
/// instance caught up with writes made elsewhere: incrementally, or by full reloads.
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    if let Err(reason) = state.write_health.check() {
        tracing::debug!(%reason, "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: the database cannot take writes ({reason})"),
        );
    }
    let checked = tokio::task::spawn_blocking(move || -> Result<ResidencyReport, String> {
        let mut store = lock_store(&state.store).map_err(|error| error.to_string())?;
        store.tenant_ids().map_err(|error| error.to_string())?;
        drop(store);
        state
            .tenants
            .residency_report()
            .map_err(|error| error.to_string())
    })
    .await;
    match checked {
        Ok(Ok(report)) => {
            use std::sync::atomic::Ordering;
            let incremental = licensd_runtime::tenants::INCREMENTAL_CATCH_UPS.load(Ordering::Relaxed);
            let full = licensd_runtime::tenants::FULL_RELOADS.load(Ordering::Relaxed);
            (
                StatusCode::OK,
                format!(
                    "ready: {} tenant(s) in memory of {} known ({} loaded, {} evicted since start); \
                     caught up with other instances' writes: {incremental} incremental, {full} full reload(s)",
                    report.resident, report.known, report.loads, report.evictions
                ),
            )
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not answer".to_string(),
            )
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_string()),
    }
}
