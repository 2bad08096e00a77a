//! `licensd serve`: opens the store (SQLite by default, PostgreSQL for several instances), loads
//! every tenant's engine, runs the background processor and serves HTTP until shut down. The
//! tenants, the processor, access control and audit are `licensd_runtime`'s; this crate is the
//! HTTP surfaces over it: Graph (`graph`, with `odata`), the admin API (`admin`), SCIM (`scim`)
//! the console (`console`) and Prometheus metrics (`metrics`), each guarding its own routes, with the glue they share (`api`,
//! `auth`, `openapi`) and the accept loop (`serve`).

// `ExecuteError::Refused` carries the engine's `CommandError`, which names plans and products so
// every refusal explains itself; it is built only when a command is refused.
#![allow(clippy::result_large_err)]

pub mod activity;
pub mod admin;
pub mod alerts;
pub mod api;
pub mod auth;
pub mod console;
pub mod graph;
mod http;
pub mod metrics;
pub mod odata;
pub mod openapi;
mod openapi_body_checks;
mod openapi_query_options;
pub mod scim;
mod serve;

use std::future::Future;
use std::sync::{Arc, Mutex};

use licensd_runtime::access::{self, AuthenticationGuard, RateLimiter, TokenCache};
use licensd_runtime::health::WriteHealth;
use licensd_runtime::processor;
use licensd_store::Store;
use tokio::net::TcpListener;

pub use licensd_runtime::config::{ConfigError, ConfigFile, ConnectionLimits, ServerConfig, TlsFiles};
pub use licensd_runtime::tenants::{ExecuteError, Residency, SharedStore, TenantRuntime, Tenants};

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database {url}: {source}")]
    Open {
        url: String,
        source: licensd_store::StoreError,
    },
    #[error("cannot load tenants: {0}")]
    Load(#[from] ExecuteError),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot create the bootstrap token: {0}")]
    Bootstrap(String),
    #[error("cannot use the TLS certificate or key: {0}")]
    Tls(String),
}

/// State shared by the HTTP handlers: one `Arc`, so the copies every request takes (the
/// router's state, the extension the guards and the metrics layer read) cost one atomic
/// increment instead of a dozen and a few allocations. Its parts are read through it
/// ([`AppStateParts`]).
#[derive(Clone)]
pub struct AppState(Arc<AppStateParts>);

impl std::ops::Deref for AppState {
    type Target = AppStateParts;

    fn deref(&self) -> &AppStateParts {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct AppStateParts {
    pub store: SharedStore,
    /// A second connection for checking tokens, so authentication does not wait behind a
    /// processing step's write.
    pub auth_store: SharedStore,
    pub tenants: Arc<Tenants>,
    pub rate_limiter: Arc<RateLimiter>,
    /// Failed authentications per client address, and token ids known to be unknown.
    pub authentication_guard: Arc<AuthenticationGuard>,
    /// Tokens verified in the last few seconds; the processor's watcher keeps it up to date.
    pub token_cache: Arc<TokenCache>,
    /// Whether the database took the last write (for `/readyz`).
    pub write_health: Arc<WriteHealth>,
    /// Whether the server speaks HTTPS (the console's cookie is then `Secure`).
    pub https: bool,
    /// How absolute links are built (public URL, trusted proxies, scheme).
    pub links: api::PublicLinks,
    /// HTTP request counts and latencies since start (for `/metrics`).
    pub http_metrics: Arc<metrics::HttpMetrics>,
    /// The SSRF guard and validation handshake of subscribers' endpoints.
    pub endpoints: licensd_delivery::EndpointValidator,
}

impl AppState {
    /// The tenant's runtime: at once when this instance holds the tenant, else loaded on a
    /// blocking thread first (see `Tenants::load`).
    pub async fn tenant_runtime(
        &self,
        tenant_id: licensd_engine::Uuid,
    ) -> Result<Arc<TenantRuntime>, ExecuteError> {
        if let Ok(runtime) = self.tenants.get(tenant_id) {
            return Ok(runtime);
        }
        let tenants = Arc::clone(&self.tenants);
        tokio::task::spawn_blocking(move || tenants.load(tenant_id))
            .await
            .map_err(|error| ExecuteError::Load(error.to_string()))?
    }
}

fn open_store(config: &ServerConfig) -> Result<SharedStore, ServerError> {
    let store = Store::open(&config.database_url).map_err(|source| ServerError::Open {
        url: config.database_url.clone(),
        source,
    })?;
    Ok(Arc::new(Mutex::new(store)))
}

/// Opens the store and loads the tenants (what `serve` does before listening).
pub fn open(config: &ServerConfig) -> Result<AppState, ServerError> {
    let store = open_store(config)?;
    let residency = match config.tenant_idle_eviction {
        None => Residency::Everything,
        Some(idle) => Residency::OnDemand { idle },
    };
    let tenants = Arc::new(Tenants::open(&store, residency)?);
    tenants
        .notifier()
        .set_renderer(Arc::new(graph::subscriptions::GraphRenderer));
    tenants.alerts().set_renderer(Arc::new(alerts::AlertBodies));
    let auth_store = open_store(config)?;
    let endpoints = licensd_delivery::EndpointValidator::new(licensd_delivery::TargetPolicy {
        allow_link_local: config.notifications.allow_link_local_targets,
    })
    .map_err(|error| ServerError::Io(std::io::Error::other(error.to_string())))?;
    Ok(AppState(Arc::new(AppStateParts {
        store,
        auth_store,
        tenants,
        rate_limiter: Arc::new(RateLimiter::new(config.rate_limit)),
        authentication_guard: Arc::new(AuthenticationGuard::new(config.authentication_failure_limit)),
        token_cache: Arc::new(TokenCache::new()),
        write_health: Arc::new(WriteHealth::new(&config.database_url)),
        https: config.tls.is_some(),
        links: api::PublicLinks {
            public_url: config.public_url.clone(),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            https: config.tls.is_some(),
        },
        http_metrics: Arc::new(metrics::HttpMetrics::default()),
        endpoints,
    })))
}

/// Starts the delivery worker of this process: it sends the outbox's deliveries (change
/// notifications, alerts) and reports Graph subscriptions' failing endpoints to their lifecycle.
pub fn start_delivery(
    state: &AppState,
    config: &ServerConfig,
) -> Result<licensd_delivery::DeliveryWorker, ServerError> {
    let notifier = state.tenants.notifier();
    let observer = licensd_delivery::ObserverChain(vec![Arc::new(licensd_delivery::GraphLifecycle {
        notifier: Arc::clone(&notifier),
        removal_after: config.notifications.removal_after_abandoned,
    })]);
    Ok(licensd_delivery::DeliveryWorker::start(
        licensd_delivery::WorkerSettings {
            database_url: config.database_url.clone(),
            worker_id: config.instance_id.clone(),
            notifications: config.notifications.clone(),
            changes: Some(Arc::clone(&notifier)),
            write_gate: Some(Arc::clone(&state.store)),
        },
        notifier.delivery_signal(),
        Arc::new(observer),
    )?)
}

/// Makes sure the default tenant can be administered: when it has no token yet, stores the
/// configured bootstrap token (`LICENSD_BOOTSTRAP_TOKEN`) as its Global Administrator, or
/// generates one. Returns the token's text when one was generated here, to be shown once.
pub fn ensure_bootstrap_token(
    state: &AppState,
    config: &ServerConfig,
) -> Result<Option<String>, ServerError> {
    access::ensure_bootstrap_token(
        &state.store,
        state.tenants.default_tenant(),
        config.bootstrap_token.as_deref(),
    )
    .map_err(|error| match error {
        access::BootstrapError::Execute(error) => ServerError::Load(error),
        refused => ServerError::Bootstrap(refused.to_string()),
    })
}

/// Runs the server on `listener` until `shutdown` completes, then stops accepting requests, lets
/// requests in flight finish for at most the configured drain period, lets the processor finish
/// its batch in flight and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    // A certificate that cannot be used stops the start before anything else happens.
    let tls = match &config.tls {
        Some(files) => Some(load_tls(files).await?),
        None => None,
    };
    let open_config = config.clone();
    let (state, bootstrap) = tokio::task::spawn_blocking(move || -> Result<_, ServerError> {
        let state = open(&open_config)?;
        let bootstrap = ensure_bootstrap_token(&state, &open_config)?;
        Ok((state, bootstrap))
    })
    .await
    .map_err(|error| std::io::Error::other(error.to_string()))??;
    if let Some(token) = bootstrap {
        // Printed once, to the terminal only (never to the log): only its hash is stored.
        println!(
            "\nlicensd created a Global Administrator token for the default tenant.\n\
             It is shown only this once; keep it safe (licensd stores only its hash):\n\n    {token}\n\n\
             Use it as `Authorization: Bearer <token>`, in LICENSD_TOKEN for the CLI, or to sign in to the console.\n"
        );
    }
    let processor = processor::Processor::start_watched(
        config.clone(),
        state.store.clone(),
        state.tenants.clone(),
        Arc::clone(&state.write_health),
        Arc::clone(&state.token_cache),
    )?;
    let delivery = start_delivery(&state, &config)?;
    // The synchronous PostgreSQL client must not be dropped on an async thread (its drop blocks):
    // these clones outlive the router and are dropped on a blocking thread below.
    let stores = (state.store.clone(), state.auth_store.clone());
    tracing::info!(
        address = %listener.local_addr()?,
        database = %redact(&config.database_url),
        https = config.tls.is_some(),
        "licensd is serving"
    );
    let metrics_server = match config.metrics_listen {
        Some(address) => Some(serve_metrics(address, state.clone()).await?),
        None => None,
    };
    let router = http::router(state);
    let served = serve::serve(listener, router, tls, config.connections, shutdown).await;
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    tokio::task::spawn_blocking(move || {
        processor.stop();
        delivery.stop();
        drop(stores);
    })
    .await
    .map_err(|error| std::io::Error::other(error.to_string()))?;
    served?;
    Ok(())
}

/// Serves every tenant's `/metrics` on `address` (no token) until aborted.
async fn serve_metrics(
    address: std::net::SocketAddr,
    state: AppState,
) -> Result<tokio::task::JoinHandle<()>, ServerError> {
    let listener = TcpListener::bind(address).await?;
    tracing::info!(address = %listener.local_addr()?, "metrics are served");
    let router = metrics::open_router(state);
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, router).await {
            tracing::error!(%error, "the metrics listener failed");
        }
    }))
}

/// The rustls configuration of `--tls-cert` / `--tls-key` (PEM files), with the ring provider,
/// offering HTTP/1.1 only (the protocol the accept loop bounds).
async fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServerError> {
    // Installing fails only if another provider was installed first, which is then used.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let loaded = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.certificate, &files.private_key)
        .await
        .map_err(|error| {
            ServerError::Tls(format!(
                "{} / {}: {error}",
                files.certificate.display(),
                files.private_key.display()
            ))
        })?;
    let mut server_config = loaded.get_inner().as_ref().clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server_config))
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            super::redact("postgres://app:secret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            super::redact("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
        assert_eq!(super::redact("sqlite://./licensd.db"), "sqlite://./licensd.db");
    }
}
