//! Authentication and authorization. Every request except the health checks, the OpenAPI
//! document, the console's static assets and its sign-in page must present a licensd token —
//! `Authorization: Bearer lsd_…` for the APIs (`/v1.0`, `/licensd`, `/scim`: bearer tokens only)
//! and the CLI, or on console pages the console's `licensd_session` cookie (set by signing in
//! with a token; `HttpOnly`, `SameSite=Strict`; the console refuses cross-site changes itself,
//! `console::forms::same_origin_changes`). Before any
//! database lookup, [`AuthenticationGuard`] answers 429 to an address that caused too many
//! failed authentications and 401 to a token id known to be unknown. [`authenticate`] then
//! checks the token against the store on every request (so a revocation or an expiry is seen at
//! once, by every instance), rate-limits it, checks the route against the token's [`Role`], and
//! hands the handlers a [`Caller`]: the tenant the token belongs to, and who is asking. Commands
//! are checked again per command inside `TenantRuntime::execute`, whatever surface sent them.

mod guard;
mod rate_limit;
mod role;
mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use licensd_api_types::ErrorCode;
use licensd_engine::Uuid;
use licensd_store::AccessTokenRecord;

pub use guard::{AuthenticationGuard, MAX_REMEMBERED_TOKENS, UNKNOWN_TOKEN_MEMORY, VERIFIED_TOKEN_MEMORY};
pub use rate_limit::{RateLimit, RateLimiter};
pub use role::{CommandKind, ReadScope, Role, UnknownRole};
pub use token::{IssuedToken, RandomnessError, TokenFormatError, TOKEN_PREFIX};

use crate::api::{ApiError, RequestIds, SelectedTenant};
use crate::tenants::{lock_store, now, ExecuteError, SharedStore};
use crate::AppState;

/// The console's session cookie: it holds the token the administrator signed in with.
pub const SESSION_COOKIE: &str = "licensd_session";

/// Who makes a request: a token of one tenant with one role, or licensd itself (background
/// processing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub tenant_id: Uuid,
    /// `None` for licensd's own background work.
    pub token_id: Option<Uuid>,
    pub display_name: String,
    pub role: Role,
    pub request_id: String,
}

impl Caller {
    /// licensd's background processing of a tenant.
    pub fn background(tenant_id: Uuid) -> Caller {
        Caller {
            tenant_id,
            token_id: None,
            display_name: "licensd background processing".to_string(),
            role: Role::GlobalAdministrator,
            request_id: String::new(),
        }
    }
}

/// Creates a token for a tenant and stores its hash; returns the token's text (show it once).
pub fn create_token(
    store: &SharedStore,
    tenant_id: Uuid,
    display_name: &str,
    role: Role,
    expires_at: Option<i64>,
    created_by: &str,
) -> Result<(AccessTokenRecord, String), TokenError> {
    let token = IssuedToken::generate()?;
    let record = AccessTokenRecord {
        token_id: token.token_id,
        tenant_id,
        display_name: display_name.to_string(),
        role: role.as_str().to_string(),
        secret_hash: token.secret_hash(),
        created_at: now().0,
        created_by: created_by.to_string(),
        expires_at,
        revoked_at: None,
    };
    lock_store(store)?.create_access_token(&record)?;
    Ok((record, token.reveal()))
}

/// Stores a token the operator chose (`LICENSD_BOOTSTRAP_TOKEN`) as the tenant's Global
/// Administrator; it must have licensd's token format.
pub fn store_given_token(
    store: &SharedStore,
    tenant_id: Uuid,
    text: &str,
    display_name: &str,
) -> Result<AccessTokenRecord, TokenError> {
    let token = IssuedToken::parse(text.trim())?;
    let record = AccessTokenRecord {
        token_id: token.token_id,
        tenant_id,
        display_name: display_name.to_string(),
        role: Role::GlobalAdministrator.as_str().to_string(),
        secret_hash: token.secret_hash(),
        created_at: now().0,
        created_by: "bootstrap".to_string(),
        expires_at: None,
        revoked_at: None,
    };
    lock_store(store)?.create_access_token(&record)?;
    Ok(record)
}

/// Generates a token in licensd's format without storing it (for `LICENSD_BOOTSTRAP_TOKEN`).
pub fn generate_token_text() -> Result<String, RandomnessError> {
    Ok(IssuedToken::generate()?.reveal())
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Randomness(#[from] RandomnessError),
    #[error("the bootstrap token is not a licensd token: {0}")]
    Format(#[from] TokenFormatError),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error("storage failed: {0}")]
    Store(#[from] licensd_store::StoreError),
}

/// Why a credential was not accepted (all answered 401, without saying which).
#[derive(Debug, PartialEq, Eq)]
enum Rejection {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    WrongSecret,
    /// The store could not be asked.
    Unchecked,
}

/// Paths anyone may request: health checks, the API descriptions (`/openapi.json` and Graph's
/// `$metadata`, public in Graph too), the console's assets and sign-in page.
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/openapi.json" | "/v1.0/$metadata" | "/login" | "/favicon.ico"
    ) || path.starts_with("/assets/")
}

/// Whether a path belongs to an API (answered with JSON) rather than the console (HTML).
fn is_api(path: &str) -> bool {
    path.starts_with("/v1.0") || path.starts_with("/licensd/") || path.starts_with("/scim/")
}

/// What a route touches, for the role check before the handler runs.
pub fn read_scope(path: &str) -> ReadScope {
    let lower = path.to_ascii_lowercase();
    if lower.starts_with("/licensd/v1/tokens") {
        ReadScope::Tokens
    } else if lower.starts_with("/v1.0/auditlogs") || lower == "/activity" || lower.starts_with("/activity/")
    {
        ReadScope::AuditLog
    } else if lower == "/licensd/v1/overview" || lower == "/" || lower == "/processing" {
        ReadScope::Overview
    } else if lower.starts_with("/scim/")
        || lower.starts_with("/v1.0/directoryobjects")
        || ((lower.starts_with("/v1.0/users") || lower.starts_with("/v1.0/groups"))
            && !lower.contains("/licensedetails")
            && !lower.contains("/memberswithlicenseerrors"))
    {
        ReadScope::Directory
    } else {
        ReadScope::Licensing
    }
}

/// Requests that change nothing although they are POSTs: simulations, Graph's `getByIds`, and
/// signing out.
fn is_read_only_post(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower == "/licensd/v1/whatif"
        || lower == "/v1.0/directoryobjects/getbyids"
        || lower == "/logout"
        || (lower.starts_with("/scim/") && lower.ends_with("/.search"))
}

fn is_safe(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD || method == Method::OPTIONS
}

/// The kinds of change a write request may make, judged from its path alone (the command
/// check inside `TenantRuntime::execute` then judges the exact change).
fn write_kinds(method: &Method, path: &str) -> &'static [CommandKind] {
    let lower = path.to_ascii_lowercase();
    if lower.ends_with("/assignlicense") || lower.ends_with("/reprocesslicenseassignment") {
        &[CommandKind::Licenses]
    } else if (lower.starts_with("/v1.0/users/") && method == Method::PATCH)
        || lower.ends_with("/usage-location")
    {
        // A user's usage location is a License Administrator's to set, the rest is directory.
        &[CommandKind::Directory, CommandKind::UsageLocation]
    } else if lower.starts_with("/v1.0/users")
        || lower.starts_with("/v1.0/groups")
        || lower.starts_with("/scim/")
    {
        &[CommandKind::Directory]
    } else if lower == "/licensd/v1/changes" {
        // Any change a role may make; each is checked as a command.
        &[
            CommandKind::Licenses,
            CommandKind::Directory,
            CommandKind::UsageLocation,
            CommandKind::Subscriptions,
            CommandKind::TenantSettings,
        ]
    } else if lower.starts_with("/licensd/v1/settings") {
        &[CommandKind::TenantSettings]
    } else if lower.starts_with("/licensd/") {
        &[CommandKind::Subscriptions]
    } else {
        // Console pages: each handler checks its action and the command is checked again.
        &[
            CommandKind::Licenses,
            CommandKind::Directory,
            CommandKind::UsageLocation,
            CommandKind::Subscriptions,
            CommandKind::TenantSettings,
        ]
    }
}

/// Whether the role may make this request at all (the command check refines writes).
pub fn may_request(role: Role, method: &Method, path: &str) -> bool {
    if path.eq_ignore_ascii_case("/v1.0/$batch") {
        // A batch changes nothing itself; each of its requests is checked as if sent alone.
        return true;
    }
    let scope = read_scope(path);
    if scope == ReadScope::Tokens {
        return role.may_manage_tokens();
    }
    if is_safe(method) || is_read_only_post(path) {
        return role.may_read(scope);
    }
    write_kinds(method, path)
        .iter()
        .any(|kind| role.may_change(*kind))
}

/// The presented credential: a bearer token, or else (on console pages only) the console's
/// session cookie.
fn credential(headers: &HeaderMap, path: &str) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    {
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(token.trim().to_string());
        }
        return Some(String::new());
    }
    if is_api(path) {
        // The APIs take bearer tokens only: a cookie is sent by a browser on its own, whoever
        // made it send the request.
        return None;
    }
    session_cookie(headers)
}

/// The token in the console's session cookie, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// Checks a token's text against the store: the tenant it belongs to, its role and name.
pub fn verify(store: &SharedStore, text: &str, at: i64) -> Result<AccessTokenRecord, VerifyError> {
    if text.is_empty() {
        return Err(VerifyError(Rejection::Missing));
    }
    let token = IssuedToken::parse(text).map_err(|_| VerifyError(Rejection::Malformed))?;
    let record = lock_store(store)
        .map_err(|error| VerifyError::internal(error.to_string()))?
        .access_token(token.token_id)
        .map_err(|error| VerifyError::internal(error.to_string()))?
        .ok_or(VerifyError(Rejection::Unknown))?;
    if !token.matches(&record.secret_hash) {
        return Err(VerifyError(Rejection::WrongSecret));
    }
    if record.revoked_at.is_some() {
        return Err(VerifyError(Rejection::Revoked));
    }
    if record.expires_at.is_some_and(|expires_at| expires_at <= at) {
        return Err(VerifyError(Rejection::Expired));
    }
    Ok(record)
}

/// A credential was refused (or could not be checked).
#[derive(Debug)]
pub struct VerifyError(Rejection);

impl VerifyError {
    fn internal(detail: String) -> VerifyError {
        tracing::error!(%detail, "a token could not be checked");
        VerifyError(Rejection::Unchecked)
    }

    /// Why, for the server's own debug log (never the token itself).
    pub fn reason(&self) -> &'static str {
        match self.0 {
            Rejection::Missing => "no credential",
            Rejection::Malformed => "not a licensd token",
            Rejection::Unknown => "unknown token",
            Rejection::Revoked => "revoked token",
            Rejection::Expired => "expired token",
            Rejection::WrongSecret => "wrong secret",
            Rejection::Unchecked => "the store could not be asked",
        }
    }
}

fn is_scim(path: &str) -> bool {
    path.starts_with("/scim/")
}

/// A refusal in SCIM's error shape, for SCIM clients.
fn scim_refusal(status: StatusCode, detail: String) -> Response {
    crate::scim::error::ScimError::new(status, None, detail).into_response()
}

fn unauthenticated(path: &str, method: &Method) -> Response {
    if is_scim(path) {
        let mut response = scim_refusal(
            StatusCode::UNAUTHORIZED,
            "Access token is missing, invalid, expired or revoked.".to_string(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"licensd\""),
        );
        return response;
    }
    if !is_api(path) && (method == Method::GET || method == Method::HEAD) {
        let next: String = form_urlencoded::byte_serialize(path.as_bytes()).collect();
        return Redirect::to(&format!("/login?next={next}")).into_response();
    }
    let mut response = ApiError::of(ErrorCode::Unauthenticated).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"licensd\""),
    );
    response
}

fn forbidden(path: &str, role: Role) -> Response {
    if is_scim(path) {
        return scim_refusal(
            StatusCode::FORBIDDEN,
            format!("The {} role may not use {path}.", role.display_name()),
        );
    }
    if !is_api(path) {
        return crate::console::ConsoleError::Forbidden {
            action: "open this page or make this change",
        }
        .into_response();
    }
    ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "Insufficient privileges to complete the operation: the {} role may not use {path}.",
            role.display_name()
        ),
    )
    .into_response()
}

fn too_many_requests(path: &str, retry_after: Duration, whose: &str) -> Response {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let message = format!("Too many requests {whose}; retry after {seconds} second(s).");
    let mut response = if is_scim(path) {
        scim_refusal(StatusCode::TOO_MANY_REQUESTS, message)
    } else {
        ApiError::new(ErrorCode::TooManyRequests, message).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// The middleware: authenticates, rate-limits and authorizes every non-public request.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    if is_public(&path) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let Some(text) = credential(request.headers(), &path) else {
        return unauthenticated(&path, &method);
    };
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
    let guard = Arc::clone(&state.authentication_guard);
    let refused_early = |error: Rejection| {
        tracing::debug!(%method, %path, reason = VerifyError(error).reason(), "credential refused");
    };
    // Everything up to the store lookup costs no database work.
    let token_id = match IssuedToken::parse(&text) {
        Ok(token) => token.token_id,
        Err(_) => {
            if let Err(retry_after) = guard.charge(address) {
                return too_many_requests(&path, retry_after, "with failed authentication from this address");
            }
            refused_early(if text.is_empty() {
                Rejection::Missing
            } else {
                Rejection::Malformed
            });
            return unauthenticated(&path, &method);
        }
    };
    let vetted = guard.recently_verified(token_id);
    if !vetted || guard.is_known_unknown(token_id) {
        if let Err(retry_after) = guard.charge(address) {
            return too_many_requests(&path, retry_after, "with failed authentication from this address");
        }
        if guard.is_known_unknown(token_id) {
            refused_early(Rejection::Unknown);
            return unauthenticated(&path, &method);
        }
    }
    let store = Arc::clone(&state.auth_store);
    let verified = tokio::task::spawn_blocking(move || verify(&store, &text, now().0)).await;
    let record = match verified {
        Ok(Ok(record)) => {
            guard.remember_verified(token_id);
            record
        }
        Ok(Err(error)) => {
            if error.0 == Rejection::Unknown {
                guard.remember_unknown(token_id);
            }
            if error.0 != Rejection::Unchecked && guard.forget_verified(token_id) {
                // A failure with a recently verified id is counted against the address.
                let _ = guard.charge(address);
            }
            tracing::debug!(%method, %path, reason = error.reason(), "credential refused");
            return unauthenticated(&path, &method);
        }
        Err(error) => return ApiError::internal(format!("the token check failed: {error}")).into_response(),
    };
    let Ok(role) = record.role.parse::<Role>() else {
        tracing::error!(token = %record.token_id, role = %record.role, "a stored token has an unknown role");
        return unauthenticated(&path, &method);
    };
    if state.tenants.get(record.tenant_id).is_err() {
        // The tenant was created by another instance since start.
        let store = state.store.clone();
        let tenants = Arc::clone(&state.tenants);
        let _ = tokio::task::spawn_blocking(move || tenants.discover(&store)).await;
    }
    if let Err(retry_after) = state.rate_limiter.check(record.token_id) {
        return too_many_requests(&path, retry_after, "for this token");
    }
    if !may_request(role, &method, &path) {
        tracing::info!(token = %record.token_id, role = %role, %method, %path, "request refused by role");
        return forbidden(&path, role);
    }
    let request_id = request
        .extensions()
        .get::<RequestIds>()
        .map(|ids| ids.request_id.clone())
        .unwrap_or_default();
    let caller = Caller {
        tenant_id: record.tenant_id,
        token_id: Some(record.token_id),
        display_name: record.display_name,
        role,
        request_id,
    };
    request.extensions_mut().insert(SelectedTenant(caller.tenant_id));
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_map_to_the_parts_of_the_tenant_they_touch() {
        assert_eq!(read_scope("/v1.0/auditLogs/directoryAudits"), ReadScope::AuditLog);
        assert_eq!(read_scope("/licensd/v1/overview"), ReadScope::Overview);
        assert_eq!(read_scope("/"), ReadScope::Overview);
        assert_eq!(read_scope("/v1.0/users/abc"), ReadScope::Directory);
        assert_eq!(read_scope("/v1.0/users/abc/licenseDetails"), ReadScope::Licensing);
        assert_eq!(read_scope("/v1.0/subscribedSkus"), ReadScope::Licensing);
        assert_eq!(read_scope("/scim/v2/Users"), ReadScope::Directory);
        assert_eq!(read_scope("/licensd/v1/tokens/x"), ReadScope::Tokens);
    }

    #[test]
    fn read_only_roles_are_refused_every_change_before_the_handler() {
        let post = Method::POST;
        for role in [Role::GlobalReader, Role::ReportsReader] {
            assert!(!may_request(role, &post, "/v1.0/users/x/assignLicense"));
            assert!(!may_request(role, &Method::PATCH, "/v1.0/users/x"));
        }
        assert!(may_request(Role::GlobalReader, &post, "/licensd/v1/whatif"));
        assert!(may_request(Role::GlobalReader, &Method::GET, "/v1.0/users"));
        assert!(!may_request(Role::ReportsReader, &Method::GET, "/v1.0/users"));
        assert!(may_request(
            Role::ReportsReader,
            &Method::GET,
            "/licensd/v1/overview"
        ));
        assert!(!may_request(
            Role::LicenseAdministrator,
            &Method::GET,
            "/licensd/v1/tokens"
        ));
        assert!(may_request(
            Role::GlobalAdministrator,
            &post,
            "/licensd/v1/tokens"
        ));
        assert!(may_request(Role::ProvisioningAgent, &post, "/scim/v2/Users"));
        assert!(!may_request(
            Role::ProvisioningAgent,
            &post,
            "/v1.0/users/x/assignLicense"
        ));
        assert!(!may_request(
            Role::LicenseAdministrator,
            &post,
            "/licensd/v1/catalog/import"
        ));
        assert!(!may_request(
            Role::UserAdministrator,
            &Method::PATCH,
            "/licensd/v1/settings"
        ));
        assert!(may_request(
            Role::LicenseAdministrator,
            &Method::PATCH,
            "/v1.0/users/x"
        ));
        assert!(!may_request(Role::LicenseAdministrator, &post, "/v1.0/users"));
        assert!(!may_request(
            Role::ProvisioningAgent,
            &Method::GET,
            "/v1.0/subscribedSkus"
        ));
    }

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; licensd_session=lsd_cookie"),
        );
        assert_eq!(credential(&headers, "/users").as_deref(), Some("lsd_cookie"));
        assert_eq!(credential(&headers, "/v1.0/users"), None);
        assert_eq!(credential(&headers, "/scim/v2/Users"), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lsd_header"),
        );
        assert_eq!(credential(&headers, "/users").as_deref(), Some("lsd_header"));
        assert_eq!(credential(&headers, "/v1.0/users").as_deref(), Some("lsd_header"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&headers, "/users").as_deref(), Some(""));
    }
}
