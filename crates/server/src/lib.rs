//! `licensd serve`: opens the store (SQLite by default, PostgreSQL for several instances), loads
//! every tenant's engine, runs the background processor and serves HTTP until shut down.

// `ExecuteError::Refused` carries the engine's `CommandError`, which names plans and products so
// every refusal explains itself; it is built only when a command is refused.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod api;
pub mod config;
pub mod console;
pub mod graph;
mod http;
pub mod odata;
pub mod openapi;
pub mod processor;
pub mod tenants;

use std::future::Future;
use std::sync::{Arc, Mutex};

use licensd_store::Store;
use tokio::net::TcpListener;

pub use config::{ConfigError, ConfigFile, ServerConfig};
pub use tenants::{ExecuteError, SharedStore, TenantRuntime, Tenants};

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
}

/// State shared by the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    pub store: SharedStore,
    pub tenants: Arc<Tenants>,
}

/// Opens the store and loads the tenants (what `serve` does before listening).
pub fn open(config: &ServerConfig) -> Result<AppState, ServerError> {
    let store = Store::open(&config.database_url).map_err(|source| ServerError::Open {
        url: config.database_url.clone(),
        source,
    })?;
    let store: SharedStore = Arc::new(Mutex::new(store));
    let tenants = Arc::new(Tenants::load_all(&store)?);
    Ok(AppState { store, tenants })
}

/// Runs the server on `listener` until `shutdown` completes, then stops accepting requests,
/// lets the processor finish its batch in flight and returns.
pub async fn run(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let open_config = config.clone();
    let state = tokio::task::spawn_blocking(move || open(&open_config))
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))??;
    let processor = processor::Processor::start(config.clone(), state.store.clone(), state.tenants.clone())?;
    tracing::info!(address = %listener.local_addr()?, database = %redact(&config.database_url), "licensd is serving");
    let router = http::router(state);
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    tokio::task::spawn_blocking(move || processor.stop())
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    served?;
    Ok(())
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
