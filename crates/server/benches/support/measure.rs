//! What the HTTP benchmarks share: settings from the environment, the figures of a phase
//! (rate and latency percentiles), a generated tenant stored with a token, and the overview read
//! that tells when the processor is done.

// Included by several benchmarks (`#[path]`), each of which uses part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use licensd_api_types::admin::TenantOverview;
use licensd_engine::image::TenantImage;
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_store::{Store, WriteBatch};

use super::database::{BenchDatabase, BenchResult};

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Operations per second and latency percentiles of one phase.
pub struct Figures {
    pub per_second: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub count: usize,
    /// What one operation is called in the printed line (`request`, `operation`).
    pub unit: &'static str,
}

impl Figures {
    pub fn of(mut latencies: Vec<Duration>, elapsed: Duration, unit: &'static str) -> Figures {
        latencies.sort();
        let percentile = |fraction: f64| {
            latencies
                .get(((latencies.len() as f64 * fraction) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        Figures {
            per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
            p50: percentile(0.50),
            p99: percentile(0.99),
            count: latencies.len(),
            unit,
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{:>8.0} /s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} {}s)",
            self.per_second,
            self.p50.as_secs_f64() * 1000.0,
            self.p99.as_secs_f64() * 1000.0,
            self.count,
            self.unit
        )
    }
}

/// A generated tenant of `users` users (a group per 20 users, 50 products), nothing evaluated.
pub fn generated_tenant(users: usize) -> BenchResult<TenantImage> {
    let config = GeneratorConfig::new(users, (users / 20).max(10), 50, 1);
    let (engine, _) = build_engine(&config).map_err(|error| error.to_string())?;
    Ok(engine.to_image())
}

/// Stores `image` as a new tenant with a Global Administrator token named `name`; returns the
/// token's text.
pub fn store_with_token(database: &BenchDatabase, image: TenantImage, name: &str) -> BenchResult<String> {
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(&database.url)?;
    store.create_tenant(&image.settings)?;
    store.write(tenant_id, &WriteBatch::from_image(image))?;
    let token = licensd_runtime::access::generate_token_text()?;
    let shared = Arc::new(Mutex::new(store));
    licensd_runtime::access::store_given_token(&shared, tenant_id, &token, name)
        .map_err(|error| error.to_string())?;
    Ok(token)
}

/// The tenant overview, as an administrator reads it.
pub async fn overview(client: &reqwest::Client, base: &str, token: &str) -> BenchResult<TenantOverview> {
    Ok(client
        .get(format!("{base}/licensd/v1/overview"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}
