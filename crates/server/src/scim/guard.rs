//! The guard of the SCIM surface: every SCIM route reads or changes the directory, so each is
//! registered with the [`RouteAccess`] it requires (searches are POSTs that change nothing), and a
//! refusal is answered in SCIM's error shape (RFC 7644 §3.12), which provisioning clients parse.
//! Bearer tokens only.

use axum::extract::{OriginalUri, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use licensd_runtime::access::{CommandKind, ReadScope, Refusal, RouteAccess};

use super::error::ScimError;
use crate::api::ApiError;
use crate::auth::{self, Credentials};
use crate::AppState;

/// Users and groups: read with the directory, changed as directory.
pub const DIRECTORY: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Directory,
    kinds: &[CommandKind::Directory],
};

/// Searches (`POST …/.search`) and discovery: reads of the directory.
pub const READS_DIRECTORY: RouteAccess = RouteAccess::Reads(ReadScope::Directory);

/// Authenticates and authorizes one SCIM request before its handler runs.
pub async fn guard(
    State(access): State<RouteAccess>,
    Extension(state): Extension<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth::authorize(&state, &mut request, Credentials::Bearer, access).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            // Under the nested router the path lost its `/scim/v2`; name the one the client sent.
            let path = request
                .extensions()
                .get::<OriginalUri>()
                .map_or_else(|| request.uri().path().to_string(), |uri| uri.path().to_string());
            refusal_response(&refusal, &path)
        }
    }
}

/// A refusal in SCIM's error shape.
fn refusal_response(refusal: &Refusal, path: &str) -> Response {
    match refusal {
        Refusal::Unauthenticated { .. } => auth::challenge(
            ScimError::new(StatusCode::UNAUTHORIZED, None, refusal.to_string()).into_response(),
        ),
        Refusal::TooManyRequests { .. } => auth::with_retry_after(
            ScimError::new(StatusCode::TOO_MANY_REQUESTS, None, refusal.to_string()).into_response(),
            refusal,
        ),
        Refusal::Forbidden { role } => ScimError::new(
            StatusCode::FORBIDDEN,
            None,
            format!("The {} role may not use {path}.", role.display_name()),
        )
        .into_response(),
        Refusal::Unchecked(_) => ApiError::internal(refusal.to_string()).into_response(),
    }
}
