//! The guard of the console's pages: each page is registered with the [`RouteAccess`] it
//! requires, and takes the console's session cookie as well as a bearer token. A refusal is
//! answered the console's way: a browser without a valid session is sent to sign in (its page
//! comes back after), a role that may not open a page or make a change gets a page saying so.
//! Changes without a session, and rate limits, are answered in the APIs' envelope (no page to
//! show them on).

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use licensd_api_types::ErrorCode;
use licensd_runtime::access::{ReadScope, Refusal, RouteAccess, ANY_CHANGE};

use super::error::ConsoleError;
use crate::api::ApiError;
use crate::auth::{self, Credentials};
use crate::AppState;

/// The overview and the processing status: what Reports Readers see.
pub const OVERVIEW: RouteAccess = RouteAccess::Reads(ReadScope::Overview);

/// The activity pages (the audit log).
pub const ACTIVITY: RouteAccess = RouteAccess::Reads(ReadScope::AuditLog);

/// Every other page: read with licensing; its changes are of whatever kind its form makes
/// (each handler checks its action, and the command is checked again).
pub const PAGES: RouteAccess = RouteAccess::Changes {
    reads: ReadScope::Licensing,
    kinds: ANY_CHANGE,
};

/// Signing out changes nothing although it is a POST.
pub const SIGN_OUT: RouteAccess = RouteAccess::Reads(ReadScope::Licensing);

/// Authenticates and authorizes one console request before its page runs.
pub async fn guard(
    State(access): State<RouteAccess>,
    Extension(state): Extension<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth::authorize(&state, &mut request, Credentials::BearerOrSessionCookie, access).await {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal_response(&refusal, request.method(), request.uri().path()),
    }
}

/// A refusal the console's way.
fn refusal_response(refusal: &Refusal, method: &Method, path: &str) -> Response {
    match refusal {
        Refusal::Unauthenticated { .. } if method == Method::GET || method == Method::HEAD => {
            let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
            Redirect::to(&format!("/login?next={next}")).into_response()
        }
        Refusal::Unauthenticated { .. } => {
            auth::challenge(ApiError::of(ErrorCode::Unauthenticated).into_response())
        }
        Refusal::TooManyRequests { .. } => auth::with_retry_after(
            ApiError::new(ErrorCode::TooManyRequests, refusal.to_string()).into_response(),
            refusal,
        ),
        Refusal::Forbidden { .. } => ConsoleError::Forbidden {
            action: "open this page or make this change",
        }
        .into_response(),
        Refusal::Unchecked(_) => ApiError::internal(refusal.to_string()).into_response(),
    }
}
