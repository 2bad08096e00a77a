//! The guard of the Graph-compatible API and the admin API: each of their routes is registered
//! through [`guarded`] with the [`RouteAccess`] it requires, and a refusal is answered in Graph's
//! error envelope (401 with a bearer challenge, 403 naming the role and the route, 429 with
//! `Retry-After`). Bearer tokens only: a cookie is no API credential.

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use licensd_api_types::ErrorCode;
use licensd_runtime::access::{Refusal, RouteAccess};
use utoipa_axum::router::{UtoipaMethodRouter, UtoipaMethodRouterExt};

use super::ApiError;
use crate::auth::{self, Credentials};
use crate::AppState;

/// The routes of `routes`, each reachable only by callers `access` lets through.
pub fn guarded(routes: UtoipaMethodRouter<AppState>, access: RouteAccess) -> UtoipaMethodRouter<AppState> {
    routes.map(|method_router| method_router.route_layer(middleware::from_fn_with_state(access, guard)))
}

/// Authenticates and authorizes one request before its handler runs (the middleware of
/// [`guarded`], for routes registered without the OpenAPI document).
pub async fn guard(
    State(access): State<RouteAccess>,
    Extension(state): Extension<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth::authorize(&state, &mut request, Credentials::Bearer, access).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal_response(&refusal, request.uri().path()),
    }
}

/// A refusal in Graph's error envelope.
pub fn refusal_response(refusal: &Refusal, path: &str) -> Response {
    match refusal {
        Refusal::Unauthenticated { .. } => {
            auth::challenge(ApiError::of(ErrorCode::Unauthenticated).into_response())
        }
        Refusal::TooManyRequests { .. } => auth::with_retry_after(
            ApiError::new(ErrorCode::TooManyRequests, refusal.to_string()).into_response(),
            refusal,
        ),
        Refusal::Forbidden { role } => ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "Insufficient privileges to complete the operation: the {} role may not use {path}.",
                role.display_name()
            ),
        )
        .into_response(),
        Refusal::Unchecked(_) => ApiError::internal(refusal.to_string()).into_response(),
    }
}
