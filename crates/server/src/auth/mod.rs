//! The HTTP side of access control, shared by every surface's guard: which credential a request
//! presents — `Authorization: Bearer lsd_…` for the APIs (`/v1.0`, `/licensd`, `/scim`: bearer
//! tokens only) and the CLI, or on console pages the console's `licensd_session` cookie (set by
//! signing in with a token; `HttpOnly`, `SameSite=Strict`; the console refuses cross-site
//! changes itself, `console::forms::same_origin_changes`) — and [`authorize`], which runs the
//! runtime's protocol-free decision (`licensd_runtime::access`: screen, check — in the token
//! cache, else against the store —, rate limit, the route's [`RouteAccess`]) on it and hands the handlers a `Caller`:
//! the tenant the token belongs to, and who is asking.
//!
//! Each surface attaches its own guard to its routes, stating what each route reads and may
//! change, and renders a [`Refusal`] in its own shape: `api::guard` (Graph and the admin API,
//! Graph's envelope), `scim::guard` (SCIM's error) and `console::guard` (a sign-in redirect or a
//! page). Routes without a guard are public: the health checks, the API descriptions, the
//! console's sign-in page and assets. Commands are checked again per command inside
//! `TenantRuntime::execute`, whatever surface sent them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use licensd_runtime::access::{self, Refusal, RouteAccess};
use licensd_runtime::tenants::now;

use crate::api::{RequestIds, SelectedTenant};

use crate::AppState;
/// The token format, named here too for the parsers' fuzz test (`tests/parsers.rs`), which
/// feeds it hostile token texts.
pub use licensd_runtime::access::IssuedToken;

/// The console's session cookie: it holds the token the administrator signed in with.
pub const SESSION_COOKIE: &str = "licensd_session";

/// The credentials a surface takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credentials {
    /// A bearer token only: the APIs. A cookie is sent by a browser on its own, whoever made it
    /// send the request, so it is no API credential.
    Bearer,
    /// A bearer token, or else the console's session cookie: the console's pages.
    BearerOrSessionCookie,
}

/// The presented credential: a bearer token, or else (where the surface takes it) the
/// console's session cookie. An `Authorization` header of another scheme presents an empty
/// credential (refused, and counted against the address).
fn credential(headers: &HeaderMap, accepted: Credentials) -> Option<String> {
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
    match accepted {
        Credentials::Bearer => None,
        Credentials::BearerOrSessionCookie => session_cookie(headers),
    }
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

/// Whether a request of this method may change something (all but the read-only methods).
pub fn may_change(method: &Method) -> bool {
    !(method == Method::GET || method == Method::HEAD || method == Method::OPTIONS)
}

/// Authenticates the request's credential and checks it against the route's requirement; on
/// success the request carries the `Caller` and its [`SelectedTenant`] for the handlers.
/// Everything before the store lookup costs no database work.
pub async fn authorize(
    state: &AppState,
    request: &mut Request,
    accepted: Credentials,
    access: RouteAccess,
) -> Result<(), Refusal> {
    // Borrowed for the refusals' log lines, not copied for every request let through.
    let (method, uri) = (request.method(), request.uri());
    let refused = |refusal: Refusal| {
        let path = uri.path();
        match &refusal {
            Refusal::Unauthenticated { reason } => {
                tracing::debug!(%method, %path, reason, "credential refused")
            }
            Refusal::Forbidden { role } => {
                tracing::info!(role = %role, %method, %path, "request refused by role")
            }
            _ => {}
        }
        refusal
    };
    let Some(text) = credential(request.headers(), accepted) else {
        return Err(Refusal::Unauthenticated {
            reason: "no credential",
        });
    };
    let address = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
    let screened = access::screen(&state.authentication_guard, text, address).map_err(refused)?;
    // A token verified in the last few seconds is answered here, without a blocking thread.
    let cached = access::cached(&state.token_cache, &screened, now().0)
        .filter(|checked| state.tenants.get(checked.record.tenant_id).is_ok());
    let checked = if let Some(checked) = cached {
        checked
    } else {
        let auth_store = Arc::clone(&state.auth_store);
        let guard = Arc::clone(&state.authentication_guard);
        let cache = Arc::clone(&state.token_cache);
        let tenants = Arc::clone(&state.tenants);
        tokio::task::spawn_blocking(move || {
            let checked = access::check(&auth_store, &guard, &cache, screened, address, now().0)?;
            // The tenant's engine, loaded now if this instance does not hold it (asked about
            // for the first time, evicted for being idle, or created by another instance).
            if let Err(error) = tenants.load(checked.record.tenant_id) {
                tracing::warn!(tenant = %checked.record.tenant_id, %error, "loading the caller's tenant failed");
            }
            Ok(checked)
        })
        .await
        .map_err(|error| Refusal::Unchecked(error.to_string()))?
        .map_err(refused)?
    };
    let request_id = request
        .extensions()
        .get::<RequestIds>()
        .map(|ids| ids.request_id.clone())
        .unwrap_or_default();
    let caller = access::admit(
        &state.rate_limiter,
        checked,
        access,
        may_change(method),
        request_id,
    )
    .map_err(refused)?;
    request.extensions_mut().insert(SelectedTenant(caller.tenant_id));
    request.extensions_mut().insert(caller);
    Ok(())
}

/// `WWW-Authenticate: Bearer realm="licensd"`, on every 401.
pub fn challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"licensd\""),
    );
    response
}

/// `Retry-After` on a rate-limit refusal.
pub fn with_retry_after(mut response: Response, refusal: &Refusal) -> Response {
    if let Some(seconds) = refusal.retry_after_seconds() {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::Router;
    use licensd_runtime::access::Role;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn the_bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; licensd_session=lsd_cookie"),
        );
        let console = Credentials::BearerOrSessionCookie;
        assert_eq!(credential(&headers, console).as_deref(), Some("lsd_cookie"));
        assert_eq!(credential(&headers, Credentials::Bearer), None);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer lsd_header"),
        );
        assert_eq!(credential(&headers, console).as_deref(), Some("lsd_header"));
        assert_eq!(
            credential(&headers, Credentials::Bearer).as_deref(),
            Some("lsd_header")
        );
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&headers, console).as_deref(), Some(""));
    }

    /// The served router over a fresh SQLite tenant, with a token of every role.
    struct Served {
        router: Router,
        tokens: HashMap<Role, String>,
        _directory: tempfile::TempDir,
    }

    impl Served {
        fn start() -> Served {
            let directory = tempfile::tempdir().expect("temporary directory");
            let config = crate::ServerConfig::defaults(directory.path());
            let state = crate::open(&config).expect("server state");
            let tenant_id = state.tenants.default_tenant();
            let tokens = Role::ALL
                .into_iter()
                .map(|role| {
                    let (_, token) =
                        access::create_token(&state.store, tenant_id, role.as_str(), role, None, "test")
                            .expect("token");
                    (role, token)
                })
                .collect();
            Served {
                router: crate::http::router(state),
                tokens,
                _directory: directory,
            }
        }

        /// Whether a route's guard refuses the role this request (a refusal by the handler or
        /// the command check does not count: the guard runs before both).
        async fn refuses(&self, role: Role, method: Method, path: &str) -> bool {
            let request = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::AUTHORIZATION, format!("Bearer {}", self.tokens[&role]))
                .body(Body::empty())
                .expect("request");
            let response = self.router.clone().oneshot(request).await.expect("answer");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("body");
            let body = String::from_utf8_lossy(&body);
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{role} {method} {path}: {body}");
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is no route"
            );
            status == StatusCode::FORBIDDEN
                && (body.contains("may not use") || body.contains("open this page or make this change"))
        }

        async fn reads(&self, role: Role, path: &str) -> bool {
            !self.refuses(role, Method::GET, path).await
        }
    }

    #[tokio::test]
    async fn routes_map_to_the_parts_of_the_tenant_they_touch() {
        let served = Served::start();
        // The overview and the audit log: what Reports Readers see, and provisioning does not.
        for path in [
            "/v1.0/auditLogs/directoryAudits",
            "/licensd/v1/overview",
            "/",
            "/processing",
            "/activity",
        ] {
            assert!(served.reads(Role::ReportsReader, path).await, "{path}");
            assert!(!served.reads(Role::ProvisioningAgent, path).await, "{path}");
        }
        // The directory: what provisioning sees, and Reports Readers do not.
        for path in [
            "/v1.0/users/abc",
            "/v1.0/users/abc/memberOf",
            "/v1.0/groups",
            "/v1.0/users/delta()",
            "/scim/v2/Users",
            "/scim/v2/Schemas",
        ] {
            assert!(served.reads(Role::ProvisioningAgent, path).await, "{path}");
            assert!(!served.reads(Role::ReportsReader, path).await, "{path}");
        }
        // Licensing: the readers of the whole tenant only.
        for path in [
            "/v1.0/users/abc/licenseDetails",
            "/v1.0/groups/abc/membersWithLicenseErrors",
            "/v1.0/subscribedSkus",
            "/v1.0/directory/subscriptions",
            "/licensd/v1/skus",
            "/licensd/v1/advisor",
            "/users",
            "/products",
        ] {
            assert!(served.reads(Role::GlobalReader, path).await, "{path}");
            assert!(!served.reads(Role::ProvisioningAgent, path).await, "{path}");
            assert!(!served.reads(Role::ReportsReader, path).await, "{path}");
        }
        // Tokens: Global Administrators only.
        assert!(
            served
                .reads(Role::GlobalAdministrator, "/licensd/v1/tokens")
                .await
        );
        for role in [
            Role::LicenseAdministrator,
            Role::UserAdministrator,
            Role::GlobalReader,
        ] {
            assert!(!served.reads(role, "/licensd/v1/tokens").await, "{role}");
        }
    }

    #[tokio::test]
    async fn read_only_roles_are_refused_every_change_before_the_handler() {
        let served = Served::start();
        let (post, patch) = (Method::POST, Method::PATCH);
        for role in [Role::GlobalReader, Role::ReportsReader] {
            assert!(
                served
                    .refuses(role, post.clone(), "/v1.0/users/x/assignLicense")
                    .await
            );
            assert!(served.refuses(role, patch.clone(), "/v1.0/users/x").await);
            assert!(served.refuses(role, post.clone(), "/groups/x/reprocess").await);
            assert!(served.refuses(role, post.clone(), "/scim/v2/Users").await);
        }
        assert!(
            !served
                .refuses(Role::GlobalReader, post.clone(), "/licensd/v1/whatif")
                .await
        );
        assert!(
            !served
                .refuses(Role::GlobalReader, post.clone(), "/scim/v2/Users/.search")
                .await
        );
        assert!(
            !served
                .refuses(Role::GlobalReader, Method::GET, "/v1.0/users")
                .await
        );
        assert!(
            served
                .refuses(Role::ReportsReader, Method::GET, "/v1.0/users")
                .await
        );
        assert!(
            !served
                .refuses(Role::ReportsReader, Method::GET, "/licensd/v1/overview")
                .await
        );
        assert!(
            served
                .refuses(Role::LicenseAdministrator, Method::GET, "/licensd/v1/tokens")
                .await
        );
        assert!(
            !served
                .refuses(Role::GlobalAdministrator, post.clone(), "/licensd/v1/tokens")
                .await
        );
        assert!(
            !served
                .refuses(Role::ProvisioningAgent, post.clone(), "/scim/v2/Users")
                .await
        );
        assert!(
            served
                .refuses(
                    Role::ProvisioningAgent,
                    post.clone(),
                    "/v1.0/users/x/assignLicense"
                )
                .await
        );
        assert!(
            served
                .refuses(
                    Role::LicenseAdministrator,
                    post.clone(),
                    "/licensd/v1/catalog/import"
                )
                .await
        );
        assert!(
            served
                .refuses(Role::UserAdministrator, patch.clone(), "/licensd/v1/settings")
                .await
        );
        assert!(
            !served
                .refuses(Role::LicenseAdministrator, patch.clone(), "/v1.0/users/x")
                .await
        );
        assert!(
            served
                .refuses(Role::LicenseAdministrator, Method::DELETE, "/v1.0/users/x")
                .await
        );
        assert!(
            served
                .refuses(Role::LicenseAdministrator, post.clone(), "/v1.0/users")
                .await
        );
        assert!(
            served
                .refuses(Role::ProvisioningAgent, Method::GET, "/v1.0/subscribedSkus")
                .await
        );
        // A batch changes nothing itself: each of its requests is checked as if sent alone.
        assert!(!served.refuses(Role::ReportsReader, post, "/v1.0/$batch").await);
    }
}
