//! Extractors shared by both APIs: [`JsonBody`] (JSON bodies with clear 400/413/415 answers),
//! [`Tenant`] (the tenant a request acts on, with blocking engine work moved off the async
//! threads) and [`RequestOrigin`] (the absolute address for `@odata.nextLink` and `Location`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use licensd_api_types::ErrorCode;
use licensd_engine::{Command, CommandOutcome, Engine, Uuid};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::AppState;
use licensd_runtime::access::Caller;
use licensd_runtime::tenants::{ReadIfFree, SharedStore, TenantRuntime};

/// The largest request body accepted (a bigger one is answered 413 and changes nothing).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The deepest nesting of arrays and objects accepted in a JSON body. Every body licensd takes is
/// at most a few levels deep; the limit is checked on the raw bytes, before any recursive
/// deserializer or tree walk sees the body (serde_json's own limit, 128, is checked while it
/// already recurses).
pub const MAX_JSON_DEPTH: usize = 32;

/// Refuses a JSON text nested deeper than [`MAX_JSON_DEPTH`], without recursion: a scan that
/// counts `[` and `{` outside strings. Returns the message to answer with.
pub fn check_json_depth(bytes: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for byte in bytes {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(format!(
                        "The request body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels."
                    ));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// A JSON request body. Malformed JSON, unknown properties, wrong types and malformed GUIDs are
/// answered 400 with serde's precise description; a body over [`MAX_BODY_BYTES`] 413; a
/// non-JSON content type 415.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type.to_str().unwrap_or("").to_ascii_lowercase();
            let essence = content_type.split(';').next().unwrap_or("").trim();
            let is_json = essence == "application/json" || essence.ends_with("+json");
            if !is_json {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    format!(
                        "The request body must be JSON (Content-Type: application/json), not '{essence}'."
                    ),
                ));
            }
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::of(ErrorCode::PayloadTooLarge)
            } else {
                ApiError::new(
                    ErrorCode::InvalidRequestBody,
                    format!("The request body could not be read: {}", rejection.body_text()),
                )
            }
        })?;
        parse_json_body(&bytes).map(JsonBody)
    }
}

/// Parses a JSON body, telling syntax errors from shape errors.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::InvalidRequestBody,
            "The request body is empty; a JSON object is expected.",
        ));
    }
    check_json_depth(bytes).map_err(|message| ApiError::new(ErrorCode::InvalidRequestBody, message))?;
    // The body is judged as a whole before it is given the handler's shape: an object, every
    // string within its length limit and free of control characters, integers within Int32.
    let body: serde_json::Value = serde_json::from_slice(bytes).map_err(json_error)?;
    if let Some(overlong) = licensd_api_types::limits::find_overlong(&body) {
        return Err(ApiError::new(ErrorCode::InvalidRequestBody, overlong.to_string()));
    }
    super::validation::check_request_body(&body)?;
    serde_json::from_value(body).map_err(|error| {
        ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!("Invalid request body: {error}."),
        )
    })
}

/// A serde_json error as Graph's error: syntax (malformed JSON) or shape (invalid body).
fn json_error(error: serde_json::Error) -> ApiError {
    match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => ApiError::new(
            ErrorCode::MalformedJson,
            format!("The request body is not valid JSON: {error}."),
        ),
        serde_json::error::Category::Data | serde_json::error::Category::Io => ApiError::new(
            ErrorCode::InvalidRequestBody,
            format!("Invalid request body: {error}."),
        ),
    }
}

/// Path parameters, with Graph's envelope when the address cannot be decoded (invalid
/// percent-encoding, for instance).
pub struct PathParameters<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParameters<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(parameters)| PathParameters(parameters))
            .map_err(|rejection| {
                ApiError::new(
                    ErrorCode::InvalidObjectIdentifier,
                    format!("The address cannot be read: {}.", rejection.body_text()),
                )
            })
    }
}

/// The tenant of a request: the route's guard inserts it (the token's tenant) into the
/// request's extensions, next to the [`Caller`].
#[derive(Clone, Copy, Debug)]
pub struct SelectedTenant(pub Uuid);

/// The tenant a request acts on. Engine work is blocking (locks and database writes), so both
/// [`Tenant::read`] and [`Tenant::execute`] run it on tokio's blocking threads.
#[derive(Clone)]
pub struct Tenant {
    pub runtime: Arc<TenantRuntime>,
    store: SharedStore,
    /// Where the outcome of each write is recorded (for `/readyz`).
    write_health: Arc<licensd_runtime::health::WriteHealth>,
    /// Who asks: the token the route's guard verified.
    pub caller: Caller,
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The route's guard puts the caller in every request it lets through; a route
        // outside it has no tenant to act on.
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::of(ErrorCode::Unauthenticated))?;
        let runtime = state.tenant_runtime(caller.tenant_id).await?;
        Ok(Tenant {
            runtime,
            store: state.store.clone(),
            write_health: Arc::clone(&state.write_health),
            caller,
        })
    }
}

impl Tenant {
    /// The tenant's id (Graph's `accountId`).
    pub fn id(&self) -> Uuid {
        self.runtime.id
    }

    /// Runs a query against the engine.
    pub async fn read<T, F>(&self, query: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || {
            runtime
                .read(query)
                .map_err(ApiError::from)
                .and_then(|answer| answer)
        })
        .await
        .map_err(|error| ApiError::internal(format!("a query task failed: {error}")))?
    }

    /// A query of small, bounded cost (one entity): answered on the async thread when the
    /// engine is free, which spares the hand-off to a blocking thread and back; when a write or
    /// a processing slice holds the engine, waited for on a blocking thread as [`Tenant::read`].
    pub async fn read_entity<T, F>(&self, query: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    {
        match self.runtime.read_if_free(query).map_err(ApiError::from)? {
            ReadIfFree::Answered(answer) => answer,
            ReadIfFree::Busy(query) => self.read(query).await,
        }
    }

    /// A read with the advisor's report, cached by the runtime per engine state.
    pub async fn read_advised<T, F>(&self, query: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Engine, &licensd_engine::AdvisorReport) -> Result<T, ApiError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        tokio::task::spawn_blocking(move || {
            runtime
                .read_advised(query)
                .map_err(ApiError::from)
                .and_then(|answer| answer)
        })
        .await
        .map_err(|error| ApiError::internal(format!("a query task failed: {error}")))?
    }

    /// Runs a query on the store for this tenant (the audit log, tokens) on a blocking thread.
    pub async fn with_store<T, F>(&self, query: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut licensd_store::Store, Uuid) -> Result<T, ApiError> + Send + 'static,
    {
        let store = self.store.clone();
        let tenant_id = self.runtime.id;
        tokio::task::spawn_blocking(move || {
            let mut store = licensd_runtime::tenants::lock_store(&store).map_err(ApiError::from)?;
            query(&mut store, tenant_id)
        })
        .await
        .map_err(|error| ApiError::internal(format!("a store task failed: {error}")))?
    }

    /// Runs runtime work that needs the store, the tenant's runtime and the caller (a
    /// reclamation run) on a blocking thread.
    pub async fn with_runtime<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&SharedStore, &TenantRuntime, &Caller) -> Result<T, ApiError> + Send + 'static,
    {
        let runtime = Arc::clone(&self.runtime);
        let store = self.store.clone();
        let caller = self.caller.clone();
        tokio::task::spawn_blocking(move || work(&store, &runtime, &caller))
            .await
            .map_err(|error| ApiError::internal(format!("a runtime task failed: {error}")))?
    }

    /// Applies many commands, queued together for the group commit; one result per command.
    pub async fn execute_batch(
        &self,
        commands: Vec<Command>,
    ) -> Result<Vec<Result<CommandOutcome, ApiError>>, ApiError> {
        let runtime = Arc::clone(&self.runtime);
        let store = self.store.clone();
        let caller = self.caller.clone();
        let results = tokio::task::spawn_blocking(move || runtime.execute_batch(&store, commands, &caller))
            .await
            .map_err(|error| ApiError::internal(format!("a command task failed: {error}")))?;
        Ok(results
            .into_iter()
            .map(|result| result.map_err(ApiError::from))
            .collect())
    }

    /// Applies a command and persists it; a refusal changes nothing.
    pub async fn execute(&self, command: Command) -> Result<CommandOutcome, ApiError> {
        let runtime = Arc::clone(&self.runtime);
        let store = self.store.clone();
        let caller = self.caller.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            runtime.execute(&store, command, &caller).map_err(ApiError::from)
        })
        .await
        .map_err(|error| ApiError::internal(format!("a command task failed: {error}")))?;
        match &outcome {
            Ok(_) => self.write_health.write_succeeded(),
            Err(error) if error.code == ErrorCode::StorageUnavailable => self
                .write_health
                .write_failed(error.log_detail.as_deref().unwrap_or(&error.message)),
            Err(_) => {}
        }
        outcome
    }
}

/// How absolute links (`@odata.nextLink`, `@odata.deltaLink`, `@odata.context`, `Location`) are
/// built: from the configured public URL when there is one; otherwise from the request's `Host`
/// with `https` when the server serves TLS, and from `X-Forwarded-Proto`/`X-Forwarded-Host` only
/// when the peer is a configured trusted proxy (anyone else could send them to poison links).
/// The HTTP layer puts it in every request's extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublicLinks {
    /// `--public-url`, without a trailing slash.
    pub public_url: Option<String>,
    /// `--trusted-proxy` addresses.
    pub trusted_proxies: Arc<Vec<IpAddr>>,
    /// Whether the server serves TLS itself (the scheme is then `https` on HTTP/1.1 and HTTP/2).
    pub https: bool,
}

/// `scheme://host[:port]` of the request, as the client addressed the server (see
/// [`PublicLinks`]).
#[derive(Clone, Debug)]
pub struct RequestOrigin(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestOrigin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let default_links = PublicLinks::default();
        let links = parts.extensions.get::<PublicLinks>().unwrap_or(&default_links);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(address)| address.ip());
        Ok(RequestOrigin(origin_of(&parts.headers, &parts.uri, links, peer)))
    }
}

fn origin_of(
    headers: &HeaderMap,
    uri: &axum::http::Uri,
    links: &PublicLinks,
    peer: Option<IpAddr>,
) -> String {
    if let Some(public_url) = &links.public_url {
        return public_url.clone();
    }
    let from_trusted_proxy = peer.is_some_and(|peer| {
        let peer = peer.to_canonical();
        links
            .trusted_proxies
            .iter()
            .any(|proxy| proxy.to_canonical() == peer)
    });
    let forwarded = |name: &str| {
        if !from_trusted_proxy {
            return None;
        }
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
    };
    let own_scheme = if links.https {
        "https"
    } else {
        uri.scheme_str().unwrap_or("http")
    };
    let scheme = forwarded("x-forwarded-proto")
        .filter(|scheme| scheme == "http" || scheme == "https")
        .unwrap_or_else(|| own_scheme.to_string());
    let host = forwarded("x-forwarded-host")
        .or_else(|| uri.authority().map(|authority| authority.to_string()))
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        })
        .filter(|host| {
            host.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']' | '_'))
        })
        .unwrap_or_else(|| "localhost".to_string());
    format!("{scheme}://{host}")
}

/// Parses a GUID from the address or a body, with Graph's message when it is not one.
pub fn parse_object_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text.trim()).map_err(|_| ApiError::invalid_object_identifier(text))
}

/// Finds a user by id or by `userPrincipalName` (ignoring case), as Graph's `/users/{id | userPrincipalName}`.
pub fn resolve_user(engine: &Engine, id_or_principal_name: &str) -> Result<Uuid, ApiError> {
    match Uuid::try_parse(id_or_principal_name) {
        Ok(user_id) => {
            engine.user_view(user_id)?;
            Ok(user_id)
        }
        Err(_) => engine
            .user_by_principal_name(id_or_principal_name)
            .ok_or_else(|| ApiError::not_found(id_or_principal_name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_judged_precisely() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[allow(dead_code)]
            id: Uuid,
        }
        assert_eq!(
            parse_json_body::<Body>(b"{").unwrap_err().code,
            ErrorCode::MalformedJson
        );
        assert_eq!(
            parse_json_body::<Body>(b"").unwrap_err().code,
            ErrorCode::InvalidRequestBody
        );
        let unknown = parse_json_body::<Body>(br#"{"id": "00000000-0000-0000-0000-000000000000", "x": 1}"#)
            .unwrap_err();
        assert_eq!(unknown.code, ErrorCode::InvalidRequestBody);
        assert!(
            unknown.message.contains("unknown field `x`"),
            "{}",
            unknown.message
        );
        let bad_guid = parse_json_body::<Body>(br#"{"id": "nope"}"#).unwrap_err();
        assert_eq!(bad_guid.code, ErrorCode::InvalidRequestBody);
    }

    #[test]
    fn the_origin_follows_the_host_and_only_trusted_proxies() {
        let uri: axum::http::Uri = "/v1.0/users".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().expect("header"));
        let proxy: IpAddr = "10.0.0.7".parse().expect("address");
        let links = PublicLinks {
            trusted_proxies: Arc::new(vec![proxy]),
            ..PublicLinks::default()
        };
        assert_eq!(
            origin_of(&headers, &uri, &links, Some(proxy)),
            "http://127.0.0.1:8080"
        );
        headers.insert("x-forwarded-proto", "https".parse().expect("header"));
        headers.insert("x-forwarded-host", "licensd.example.com".parse().expect("header"));
        assert_eq!(
            origin_of(&headers, &uri, &links, Some(proxy)),
            "https://licensd.example.com"
        );
        let stranger: IpAddr = "10.0.0.8".parse().expect("address");
        assert_eq!(
            origin_of(&headers, &uri, &links, Some(stranger)),
            "http://127.0.0.1:8080"
        );
        assert_eq!(origin_of(&headers, &uri, &links, None), "http://127.0.0.1:8080");
        headers.insert("x-forwarded-host", "evil\"host".parse().expect("header"));
        assert_eq!(
            origin_of(&headers, &uri, &links, Some(proxy)),
            "https://localhost"
        );
        let tls = PublicLinks {
            https: true,
            ..PublicLinks::default()
        };
        assert_eq!(
            origin_of(&headers, &uri, &tls, Some(stranger)),
            "https://127.0.0.1:8080"
        );
        let public = PublicLinks {
            public_url: Some("https://licensd.example.com/base".to_string()),
            ..PublicLinks::default()
        };
        assert_eq!(
            origin_of(&headers, &uri, &public, Some(proxy)),
            "https://licensd.example.com/base"
        );
    }
}
