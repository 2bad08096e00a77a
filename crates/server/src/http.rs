//! The HTTP surface: health checks today; the Graph-shaped API and the console build on this
//! router.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::tenants::lock_store;
use crate::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Liveness: the process serves requests.
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers and tenants are loaded.
async fn readyz(State(state): State<AppState>) -> (StatusCode, String) {
    let checked = tokio::task::spawn_blocking(move || -> Result<usize, String> {
        let mut store = lock_store(&state.store).map_err(|error| error.to_string())?;
        store.tenant_ids().map_err(|error| error.to_string())?;
        Ok(state.tenants.all().map_err(|error| error.to_string())?.len())
    })
    .await;
    match checked {
        Ok(Ok(tenants)) => (StatusCode::OK, format!("ready: {tenants} tenant(s)")),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the database does not answer".to_string(),
            )
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready".to_string()),
    }
}
