//! Signing in and out of the console. The sign-in page takes a licensd token (the one
//! `licensd serve` or `licensd demo` printed, or one from `licensd token create`), checks it, and
//! keeps it in the `licensd_session` cookie — `HttpOnly` (scripts cannot read it),
//! `SameSite=Strict` (other sites' pages cannot send it), `Secure` over HTTPS. Every later request
//! is checked against the store, so revoking the token signs the browser out at once.

use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::forms::{local_path, see_other, FormFields};
use super::layout::{self, message, MessageKind};
use crate::auth::SESSION_COOKIE;
use crate::AppState;
use licensd_runtime::access;
use licensd_runtime::tenants::now;

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    next: Option<String>,
}

fn sign_in_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let content = html! {
        h1 { "Sign in to licensd" }
        @if let Some(problem) = problem {
            (message(MessageKind::Error, html! { p { (problem) } }))
        }
        p {
            "Paste a licensd token: the Global Administrator token that " code { "licensd serve" }
            " or " code { "licensd demo" } " printed when it started, or one created with "
            code { "licensd token create" } "."
        }
        form.sign-in method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Token" }
            input #token type="password" name="token" autocomplete="off" required placeholder="lsd_…";
            button type="submit" { "Sign in" }
        }
    };
    layout::html_response(status, layout::signed_out_document("Sign in", content))
}

/// `GET /login`.
pub async fn show(Query(query): Query<SignInQuery>) -> Response {
    let next = query
        .next
        .as_deref()
        .and_then(local_path)
        .unwrap_or_else(|| "/".to_string());
    sign_in_page(StatusCode::OK, &next, None)
}

/// `POST /login`: checks the token and sets the session cookie.
pub async fn submit(State(state): State<AppState>, fields: FormFields) -> Result<Response, ConsoleError> {
    let next = fields
        .first("next")
        .and_then(local_path)
        .unwrap_or_else(|| "/".to_string());
    let token = fields.first("token").unwrap_or("").trim().to_string();
    let store = state.auth_store.clone();
    let checked = {
        let token = token.clone();
        tokio::task::spawn_blocking(move || access::verify(&store, &token, now().0))
            .await
            .map_err(|error| ConsoleError::Internal {
                detail: format!("the sign-in check failed: {error}"),
            })?
    };
    if let Err(error) = checked {
        tracing::info!(reason = error.reason(), "console sign-in refused");
        return Ok(sign_in_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("This token is not valid: it is unknown, mistyped, expired or revoked."),
        ));
    }
    let secure = if state.https { "; Secure" } else { "" };
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut response = see_other(&next);
    let value = HeaderValue::from_str(&cookie)
        .map_err(|_| ConsoleError::bad_request("The token cannot be stored."))?;
    response.headers_mut().append(header::SET_COOKIE, value);
    Ok(response)
}

/// `POST /logout`: forgets the session cookie (the token itself stays valid; revoke it to end it).
pub async fn sign_out(State(state): State<AppState>) -> Response {
    let secure = if state.https { "; Secure" } else { "" };
    let mut response = see_other("/login");
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    )) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response.into_response()
}
