//! The console's static files, embedded in the binary: htmx (vendored from npm, `htmx.org`
//! 2.0.11, Zero-Clause BSD, see `assets/htmx.LICENSE`) and the hand-written style sheet and script (confirmations, local times, the plan picker). No build
//! step and no files next to the binary are needed.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ConsoleError;
use super::forms::PathParameters;

const HTMX: &[u8] = include_bytes!("../../assets/htmx.min.js");
const HTMX_LICENSE: &[u8] = include_bytes!("../../assets/htmx.LICENSE");
const STYLE_SHEET: &[u8] = include_bytes!("../../assets/console.css");
const CONSOLE_SCRIPT: &[u8] = include_bytes!("../../assets/console.js");

/// `GET /assets/{name}`.
pub async fn serve(PathParameters(name): PathParameters<String>) -> Result<Response, ConsoleError> {
    let (content_type, body) = match name.as_str() {
        "htmx.min.js" => ("text/javascript; charset=utf-8", HTMX),
        "htmx.LICENSE" => ("text/plain; charset=utf-8", HTMX_LICENSE),
        "console.css" => ("text/css; charset=utf-8", STYLE_SHEET),
        "console.js" => ("text/javascript; charset=utf-8", CONSOLE_SCRIPT),
        _ => return Err(ConsoleError::not_found(format!("The file /assets/{name}"))),
    };
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidated hourly: a new licensd version may ship new files under the same names.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response())
}
