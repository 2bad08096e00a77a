//! Access control, protocol-free: who a caller is ([`Caller`]), what each role may read and
//! change ([`Role`], [`RouteAccess`], and per command [`Role::may_execute`]), the tokens that
//! identify callers ([`create_token`], [`verify`]), and the decision every surface's guard asks
//! for before its handler runs: [`screen`] a presented credential (no database work: the
//! [`AuthenticationGuard`] answers an address that caused too many failures, and a token id known
//! to be unknown), [`check`] it — in the [`TokenCache`] of tokens verified in the last few
//! seconds ([`cached`], no database work either), else against the store — then [`admit`] it
//! under the token's [`RateLimiter`] and the route's [`RouteAccess`]. A revocation reaches the
//! cache of every instance at once (see [`TokenCache`]); expiry is checked on every request.
//! Each step refuses with a [`Refusal`]; the surfaces render it in their own shape (Graph's
//! envelope, SCIM's error, the console's sign-in redirect).

mod cache;
mod guard;
mod rate_limit;
mod role;
mod route;
mod token;

use std::net::IpAddr;
use std::time::Duration;

use licensd_engine::Uuid;
use licensd_store::AccessTokenRecord;

pub use cache::{CacheTicket, TokenCache, CONFIRMATION_WINDOW, MAX_CACHED_TOKENS, TOKEN_CACHE_MEMORY};
pub use guard::{AuthenticationGuard, MAX_REMEMBERED_TOKENS, UNKNOWN_TOKEN_MEMORY, VERIFIED_TOKEN_MEMORY};
pub use rate_limit::{RateLimit, RateLimiter};
pub use role::{CommandKind, ReadScope, Role, UnknownRole};
pub use route::{RouteAccess, ANY_CHANGE};
pub use token::{IssuedToken, RandomnessError, TokenFormatError, TOKEN_PREFIX};

use crate::tenants::{lock_store, now, ExecuteError, SharedStore};

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

/// Why the bootstrap token could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The store's lock is poisoned.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error("LICENSD_BOOTSTRAP_TOKEN is not a licensd token: {0}")]
    NotAToken(TokenFormatError),
    #[error(transparent)]
    Store(#[from] licensd_store::StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Makes sure a tenant can be administered: when it has no token yet, stores the configured
/// bootstrap token (`given`, from `LICENSD_BOOTSTRAP_TOKEN`) as its Global Administrator, or
/// generates one. Returns the token's text when one was generated here, to be shown once.
/// Several instances may start at once: a given token another one stored first is no error.
pub fn ensure_bootstrap_token(
    store: &SharedStore,
    tenant_id: Uuid,
    given: Option<&str>,
) -> Result<Option<String>, BootstrapError> {
    let existing = lock_store(store)?.access_tokens(tenant_id)?;
    if let Some(given) = given {
        let token = IssuedToken::parse(given.trim()).map_err(BootstrapError::NotAToken)?;
        if existing.iter().any(|record| record.token_id == token.token_id) {
            return Ok(None);
        }
        match store_given_token(store, tenant_id, given, "Bootstrap administrator") {
            Ok(_) => return Ok(None),
            // Another instance stored the same token first.
            Err(_) if lock_store(store)?.access_token(token.token_id)?.is_some() => return Ok(None),
            Err(error) => return Err(error.into()),
        }
    }
    if !existing.is_empty() {
        return Ok(None);
    }
    let (_, text) = create_token(
        store,
        tenant_id,
        "Bootstrap administrator",
        Role::GlobalAdministrator,
        None,
        "bootstrap",
    )?;
    Ok(Some(text))
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rejection {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    WrongSecret,
    /// The stored token has a role this version does not know.
    UnknownRole,
    /// The store could not be asked.
    Unchecked,
}

impl Rejection {
    fn reason(self) -> &'static str {
        match self {
            Rejection::Missing => "no credential",
            Rejection::Malformed => "not a licensd token",
            Rejection::Unknown => "unknown token",
            Rejection::Revoked => "revoked token",
            Rejection::Expired => "expired token",
            Rejection::WrongSecret => "wrong secret",
            Rejection::UnknownRole => "a stored token has an unknown role",
            Rejection::Unchecked => "the store could not be asked",
        }
    }
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
#[derive(Debug, thiserror::Error)]
#[error("credential refused: {}", .0.reason())]
pub struct VerifyError(Rejection);

impl VerifyError {
    fn internal(detail: String) -> VerifyError {
        tracing::error!(%detail, "a token could not be checked");
        VerifyError(Rejection::Unchecked)
    }

    /// Why, for the server's own debug log (never the token itself).
    pub fn reason(&self) -> &'static str {
        self.0.reason()
    }
}

/// Whose requests are over their limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Throttled {
    /// The client address caused too many failed authentications.
    FailedAuthentications,
    /// The token made too many requests.
    Token,
}

impl Throttled {
    fn whose(self) -> &'static str {
        match self {
            Throttled::FailedAuthentications => "with failed authentication from this address",
            Throttled::Token => "for this token",
        }
    }
}

/// Why a request was refused before its handler ran. Every surface renders these in its own
/// shape; the texts here are the ones shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No credential, or one that was not accepted (the client is not told which; `reason` is
    /// for the server's debug log).
    #[error("Access token is missing, invalid, expired or revoked.")]
    Unauthenticated { reason: &'static str },
    /// Over a rate limit: retry after `retry_after`.
    #[error("Too many requests {}; retry after {} second(s).", .throttled.whose(), whole_seconds(*.retry_after))]
    TooManyRequests {
        throttled: Throttled,
        retry_after: Duration,
    },
    /// The caller's role may not use the route.
    #[error("the {} role may not make this request", .role.display_name())]
    Forbidden { role: Role },
    /// The token could not be checked (the store failed in a way that is no answer).
    #[error("the token check failed: {0}")]
    Unchecked(String),
}

/// A wait in whole seconds, rounded up.
fn whole_seconds(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl Refusal {
    /// The `Retry-After` of a rate-limit refusal, in whole seconds (at least 1).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Refusal::TooManyRequests { retry_after, .. } => Some(whole_seconds(*retry_after).max(1)),
            _ => None,
        }
    }

    fn unauthenticated(rejection: Rejection) -> Refusal {
        Refusal::Unauthenticated {
            reason: rejection.reason(),
        }
    }

    fn failed_authentications(retry_after: Duration) -> Refusal {
        Refusal::TooManyRequests {
            throttled: Throttled::FailedAuthentications,
            retry_after,
        }
    }
}

/// A presented credential that passed the checks costing no database work.
#[derive(Debug)]
pub struct Screened {
    token: IssuedToken,
    text: String,
}

/// Step one, before any database work: a credential that is no licensd token, or whose id the
/// store was found not to know, is refused; each failure (and each token id not verified
/// recently) takes one attempt from the address's bucket, which answers 429 once empty.
pub fn screen(guard: &AuthenticationGuard, text: String, address: IpAddr) -> Result<Screened, Refusal> {
    let token = match IssuedToken::parse(&text) {
        Ok(token) => token,
        Err(_) => {
            guard.charge(address).map_err(Refusal::failed_authentications)?;
            return Err(Refusal::unauthenticated(if text.is_empty() {
                Rejection::Missing
            } else {
                Rejection::Malformed
            }));
        }
    };
    let token_id = token.token_id;
    if !guard.recently_verified(token_id) || guard.is_known_unknown(token_id) {
        guard.charge(address).map_err(Refusal::failed_authentications)?;
        if guard.is_known_unknown(token_id) {
            return Err(Refusal::unauthenticated(Rejection::Unknown));
        }
    }
    Ok(Screened { token, text })
}

/// A token the store accepted, with its role.
#[derive(Debug)]
pub struct CheckedToken {
    pub record: AccessTokenRecord,
    pub role: Role,
}

/// Step two without blocking: the token as the [`TokenCache`] remembers it, when the store
/// verified it in the last few seconds, its secret matches, and it has not expired at `at`.
/// `None` when the store must be asked ([`check`]).
pub fn cached(cache: &TokenCache, screened: &Screened, at: i64) -> Option<CheckedToken> {
    cache
        .lookup(&screened.token, at)
        .map(|(record, role)| CheckedToken { record, role })
}

/// Step two, blocking (it may ask the store): the token's hash, revocation and expiry, and its
/// role — from the [`TokenCache`] when it remembers the token, else from the store, whose answer
/// the cache then remembers if it was a success. The guard learns the store's answers (ids
/// verified, ids unknown; a failure with an id verified recently is counted against the
/// address).
pub fn check(
    store: &SharedStore,
    guard: &AuthenticationGuard,
    cache: &TokenCache,
    screened: Screened,
    address: IpAddr,
    at: i64,
) -> Result<CheckedToken, Refusal> {
    if let Some(checked) = cached(cache, &screened, at) {
        return Ok(checked);
    }
    let token_id = screened.token.token_id;
    // Taken before the lookup: a revocation heard meanwhile keeps its result out of the cache.
    let ticket = cache.ticket();
    let record = match verify(store, &screened.text, at) {
        Ok(record) => {
            guard.remember_verified(token_id);
            record
        }
        Err(VerifyError(rejection)) => {
            if rejection == Rejection::Unknown {
                guard.remember_unknown(token_id);
            }
            if rejection != Rejection::Unchecked && guard.forget_verified(token_id) {
                // A failure with a recently verified id is counted against the address.
                let _ = guard.charge(address);
            }
            return Err(Refusal::unauthenticated(rejection));
        }
    };
    let Ok(role) = record.role.parse::<Role>() else {
        tracing::error!(token = %record.token_id, role = %record.role, "a stored token has an unknown role");
        return Err(Refusal::unauthenticated(Rejection::UnknownRole));
    };
    cache.remember(ticket, &record, role);
    Ok(CheckedToken { record, role })
}

/// Step three: the token's rate limit, then the route's requirement; the caller the handlers
/// act for. `changes` says whether the request's method may change something.
pub fn admit(
    rate_limiter: &RateLimiter,
    token: CheckedToken,
    access: RouteAccess,
    changes: bool,
    request_id: String,
) -> Result<Caller, Refusal> {
    rate_limiter
        .check(token.record.token_id)
        .map_err(|retry_after| Refusal::TooManyRequests {
            throttled: Throttled::Token,
            retry_after,
        })?;
    if !access.allows(token.role, changes) {
        return Err(Refusal::Forbidden { role: token.role });
    }
    Ok(Caller {
        tenant_id: token.record.tenant_id,
        token_id: Some(token.record.token_id),
        display_name: token.record.display_name,
        role: token.role,
        request_id,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use licensd_engine::TenantSettings;

    use super::*;

    #[test]
    fn a_credential_is_screened_checked_then_admitted_by_the_route() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/licensd.db", directory.path().display());
        let store: SharedStore = Arc::new(Mutex::new(licensd_store::Store::open(&url).expect("store")));
        let settings = TenantSettings::new(Uuid::new_v4(), "Contoso");
        lock_store(&store)
            .expect("store")
            .create_tenant(&settings)
            .expect("tenant");
        let (_, text) = create_token(
            &store,
            settings.tenant_id,
            "Reader",
            Role::GlobalReader,
            None,
            "test",
        )
        .expect("token");
        let guard = AuthenticationGuard::new(RateLimit {
            per_second: 1,
            burst: 2,
        });
        let rate_limiter = RateLimiter::new(RateLimit::default());
        let cache = TokenCache::new();
        let address = IpAddr::from([192, 0, 2, 1]);

        // Not a token: refused without a lookup, and charged to the address (1 of 2).
        let refused = screen(&guard, "not-a-token".to_string(), address).expect_err("malformed");
        assert!(matches!(refused, Refusal::Unauthenticated { .. }), "{refused:?}");
        // A token not verified recently is charged too (2 of 2), then checked against the store.
        let screened = screen(&guard, text.clone(), address).expect("a licensd token");
        let checked = check(&store, &guard, &cache, screened, address, now().0).expect("a stored token");
        let caller = admit(
            &rate_limiter,
            checked,
            RouteAccess::Reads(ReadScope::Licensing),
            false,
            "request-1".to_string(),
        )
        .expect("a reader reads");
        assert_eq!(caller.tenant_id, settings.tenant_id);
        assert_eq!(caller.role, Role::GlobalReader);
        assert_eq!(caller.request_id, "request-1");
        // Verified now: the empty bucket does not stop it, the route's requirement does.
        let screened = screen(&guard, text, address).expect("recently verified");
        let checked = check(&store, &guard, &cache, screened, address, now().0).expect("a stored token");
        let licenses = RouteAccess::Changes {
            reads: ReadScope::Licensing,
            kinds: &[CommandKind::Licenses],
        };
        let refused = admit(&rate_limiter, checked, licenses, true, String::new())
            .expect_err("a reader changes nothing");
        assert!(
            matches!(
                refused,
                Refusal::Forbidden {
                    role: Role::GlobalReader
                }
            ),
            "{refused:?}"
        );
        // A made-up token from the same address finds the bucket empty.
        let made_up = generate_token_text().expect("token");
        let refused = screen(&guard, made_up, address).expect_err("over the limit");
        assert!(
            matches!(
                refused,
                Refusal::TooManyRequests {
                    throttled: Throttled::FailedAuthentications,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(refused.retry_after_seconds().is_some_and(|seconds| seconds >= 1));
        assert!(refused
            .to_string()
            .contains("with failed authentication from this address"));
    }
}
