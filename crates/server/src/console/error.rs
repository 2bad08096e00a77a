//! [`ConsoleError`]: why a console request failed, answered as an HTML page with the message
//! (never a blank page), or — when htmx sent the request — as a message fragment placed in the
//! page's message area by [`htmx_errors`]. Internal details go to the log, never to the browser.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use licensd_engine::CommandError;
use maud::{html, Markup};

use super::layout::{self, MessageKind};
use licensd_runtime::tenants::ExecuteError;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A user, group or product in the address does not exist.
    #[error("{what} does not exist.")]
    NotFound { what: String },
    /// The address or the form is malformed.
    #[error("{message}")]
    BadRequest { message: String },
    /// The request's role may not make this change.
    #[error("Your role may not {action}.")]
    Forbidden { action: &'static str },
    /// The request carries no valid session (the pages' guard normally redirects first).
    #[error("Sign in with a licensd token to use the console.")]
    SignInRequired,
    /// A change came from another site (cross-site request forgery is refused).
    #[error("Changes are accepted only from the console's own pages.")]
    CrossSite,
    /// The engine refused a change: nothing changed.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The database failed: nothing changed.
    #[error("The database did not answer; nothing was changed. Try again in a moment.")]
    Storage { detail: String },
    /// A failure of licensd itself.
    #[error("The console could not answer this request; the server log has the details.")]
    Internal { detail: String },
}

impl From<ExecuteError> for ConsoleError {
    fn from(error: ExecuteError) -> ConsoleError {
        match error {
            ExecuteError::Refused(refusal) => ConsoleError::Refused(refusal),
            ExecuteError::Store(store_error) => ConsoleError::Storage {
                detail: store_error.to_string(),
            },
            ExecuteError::UnknownTenant(tenant_id) => ConsoleError::NotFound {
                what: format!("The tenant {tenant_id}"),
            },
            ExecuteError::Forbidden { kind, .. } => ConsoleError::Forbidden {
                action: kind.description(),
            },
            ExecuteError::Load(_) | ExecuteError::Poisoned => ConsoleError::Internal {
                detail: error.to_string(),
            },
        }
    }
}

impl ConsoleError {
    pub fn bad_request(message: impl Into<String>) -> ConsoleError {
        ConsoleError::BadRequest {
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> ConsoleError {
        ConsoleError::NotFound { what: what.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::NotFound { .. } => StatusCode::NOT_FOUND,
            ConsoleError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ConsoleError::SignInRequired => StatusCode::UNAUTHORIZED,
            ConsoleError::Forbidden { .. } | ConsoleError::CrossSite => StatusCode::FORBIDDEN,
            ConsoleError::Refused(refusal) if refusal.is_not_found() => StatusCode::NOT_FOUND,
            ConsoleError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::Storage { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The page title of the error.
    pub fn title(&self) -> &'static str {
        match self {
            ConsoleError::NotFound { .. } => "Not found",
            ConsoleError::BadRequest { .. } => "The request cannot be read",
            ConsoleError::SignInRequired => "Sign-in required",
            ConsoleError::Forbidden { .. } | ConsoleError::CrossSite => "Not allowed",
            ConsoleError::Refused(refusal) if refusal.is_not_found() => "Not found",
            ConsoleError::Refused(_) => "The change was refused",
            ConsoleError::Storage { .. } => "Storage unavailable",
            ConsoleError::Internal { .. } => "Something went wrong",
        }
    }

    /// The message as a box (for pages and for htmx fragments).
    pub fn message_box(&self) -> Markup {
        layout::message(
            MessageKind::Error,
            html! {
                strong { (self.title()) ". " }
                (self.to_string())
            },
        )
    }
}

/// Marks a response as a console error, so [`htmx_errors`] can answer htmx with a fragment.
#[derive(Clone)]
struct RenderedError(Markup);

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match &self {
            ConsoleError::Storage { detail } | ConsoleError::Internal { detail } => {
                tracing::error!(%detail, status = self.status().as_u16(), "console request failed")
            }
            _ => tracing::debug!(error = %self, status = self.status().as_u16(), "console request refused"),
        }
        let fragment = self.message_box();
        let page = layout::document(
            self.title(),
            None,
            None,
            html! {
                h1 { (self.title()) }
                (fragment)
                p { a href="/" { "Back to the overview" } }
            },
        );
        let mut response = layout::html_response(self.status(), page);
        response.extensions_mut().insert(RenderedError(fragment));
        response
    }
}

/// Answers htmx requests that failed with the message alone, placed in the page's message area
/// (`#console-messages`) whatever element the request targeted.
pub async fn htmx_errors(request: Request, next: Next) -> Response {
    let is_htmx = request
        .headers()
        .get("hx-request")
        .is_some_and(|value| value.as_bytes() == b"true");
    let mut response = next.run(request).await;
    if let Some(RenderedError(fragment)) = response.extensions_mut().remove::<RenderedError>() {
        if is_htmx {
            let mut rebuilt = layout::html_response(response.status(), fragment);
            let headers = rebuilt.headers_mut();
            headers.insert("hx-retarget", HeaderValue::from_static("#console-messages"));
            headers.insert("hx-reswap", HeaderValue::from_static("innerHTML"));
            response = rebuilt;
        }
    }
    response
}
