//! Metrics for Prometheus (issue 16): `GET /metrics` in the OpenMetrics text format that
//! Prometheus scrapes, written with `prometheus-client`.
//!
//! - On the API listener `/metrics` needs a bearer token whose role reads the tenant overview
//!   (Global Reader, Reports Reader, the administrators) and shows the caller's tenant only.
//! - With `metrics-listen` set, a second listener serves `/metrics` without a token for every
//!   tenant, with the HTTP request figures of the instance: bind it to an address only the
//!   monitoring network reaches.
//!
//! Per tenant: users, groups, queued users and how long the oldest has waited (on the instance
//! that processes it), users evaluated, states changed, processing steps (failed ones too) and the
//! time they took, license assignment states by status, assignments in error by kind, users with
//! errors, and per product the seats purchased, consumed, available and waiting. Per instance:
//! HTTP requests by method, route and status, with a latency histogram. Figures of the engine are
//! read when scraped (one pass over the tenant's states, under its lock).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use licensd_runtime::access::{ReadScope, RouteAccess};
use licensd_runtime::statistics::TenantProcessingFigures;
use licensd_runtime::tenants::TenantRuntime;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::extract::Tenant;
use crate::api::guard::guard;
use crate::api::ApiError;
use crate::AppState;

/// The content type of the OpenMetrics text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// The HTTP request figures of this instance, kept from start.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> HttpMetrics {
        HttpMetrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(|| {
                // 0.5 ms to about 4 s.
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.0005, 2.0, 14,
                ))
            }),
        }
    }
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: StatusCode, took: Duration) {
        let labels = RequestLabels {
            method: method.to_string(),
            route: route.to_string(),
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        self.durations.get_or_create(&labels).observe(took.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "licensd_http_requests",
            "HTTP requests answered, by method, route and status",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "licensd_http_request_duration",
            "Time from a request's arrival to its response's headers, by method, route and status",
            Unit::Seconds,
            self.durations.clone(),
        );
    }
}

/// Records every routed request's method, route template (never the raw path, which holds ids)
/// and status. Layered on the routes, after routing.
pub async fn record_request(Extension(state): Extension<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(request).await;
    state
        .http_metrics
        .record(&method, &route, response.status(), started.elapsed());
    response
}

/// `/metrics` on the API listener: the caller's tenant.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/metrics",
        get(tenant_metrics).route_layer(axum::middleware::from_fn_with_state(
            RouteAccess::Reads(ReadScope::Overview),
            guard,
        )),
    )
}

/// The router of the `metrics-listen` address: every tenant and the HTTP figures, no token.
pub fn open_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(all_metrics))
        .with_state(state)
}

async fn tenant_metrics(Extension(state): Extension<AppState>, tenant: Tenant) -> Response {
    let tenant_id = tenant.id();
    render(state, move |state| Ok(vec![state.tenants.get(tenant_id)?]), false).await
}

async fn all_metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    render(state, |state| state.tenants.all(), true).await
}

async fn render(
    state: AppState,
    tenants: impl FnOnce(&AppState) -> Result<Vec<Arc<TenantRuntime>>, licensd_runtime::tenants::ExecuteError>
        + Send
        + 'static,
    with_http: bool,
) -> Response {
    let rendered = tokio::task::spawn_blocking(move || -> Result<String, ApiError> {
        let runtimes = tenants(&state)?;
        let processing = state.tenants.statistics().figures(Instant::now());
        let mut registry = Registry::default();
        let tenant_metrics = TenantMetrics::default();
        for runtime in runtimes {
            let figures = processing.iter().find(|figures| figures.tenant_id == runtime.id);
            tenant_metrics.observe(&runtime, figures)?;
        }
        tenant_metrics.register(&mut registry);
        if with_http {
            state.http_metrics.register(&mut registry);
            register_catch_ups(&mut registry);
            register_residency(&mut registry, state.tenants.residency_report()?);
            let (pending, events) = {
                let mut store = licensd_runtime::tenants::lock_store(&state.store)?;
                let internal = |error: licensd_store::StoreError| ApiError::internal(error.to_string());
                (
                    store.pending_deliveries().map_err(internal)?,
                    store.pending_change_events().map_err(internal)?,
                )
            };
            register_deliveries(&mut registry, pending, events);
        }
        let mut text = String::new();
        encode_registry(&mut text, &registry).map_err(|error| ApiError::internal(error.to_string()))?;
        encode_eof(&mut text).map_err(|error| ApiError::internal(error.to_string()))?;
        Ok(text)
    })
    .await;
    match rendered {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(error)) => error.into_response(),
        Err(error) => ApiError::internal(error.to_string()).into_response(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CatchUpLabels {
    kind: &'static str,
}

/// How this instance caught up with other instances' writes since it started: incrementally
/// (the rows the writes touched) or by reloading a whole tenant.
fn register_catch_ups(registry: &mut Registry) {
    use std::sync::atomic::Ordering;
    let catch_ups: Family<CatchUpLabels, Counter> = Family::default();
    for (kind, count) in [
        ("incremental", &licensd_runtime::tenants::INCREMENTAL_CATCH_UPS),
        ("full_reload", &licensd_runtime::tenants::FULL_RELOADS),
    ] {
        catch_ups
            .get_or_create(&CatchUpLabels { kind })
            .inc_by(count.load(Ordering::Relaxed));
    }
    registry.register(
        "licensd_catch_ups",
        "Times this instance brought a tenant up to other instances' writes, by kind (incremental or a full reload)",
        catch_ups,
    );
}

/// Which tenants this instance holds in memory and how many it loaded and evicted since it
/// started (`tenant-idle-eviction-s`).
fn register_residency(registry: &mut Registry, report: licensd_runtime::tenants::ResidencyReport) {
    let gauge = |value: usize| {
        let gauge: Gauge = Gauge::default();
        gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
        gauge
    };
    let counter = |value: u64| {
        let counter: Counter = Counter::default();
        counter.inc_by(value);
        counter
    };
    registry.register(
        "licensd_tenants_known",
        "Tenants of the database this instance knows of",
        gauge(report.known),
    );
    registry.register(
        "licensd_tenants_resident",
        "Tenants whose engine this instance holds in memory",
        gauge(report.resident),
    );
    registry.register(
        "licensd_resident_users",
        "Users in the engines this instance holds in memory",
        gauge(report.resident_users),
    );
    registry.register(
        "licensd_tenant_loads",
        "Tenants this instance loaded (at start, for a request or to process them)",
        counter(report.loads),
    );
    registry.register(
        "licensd_tenant_evictions",
        "Tenants this instance evicted from memory for being idle",
        counter(report.evictions),
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// What this instance's delivery worker did since it started (webhooks: Graph change and
/// lifecycle notifications, other owners' such as alerts), and the deliveries pending in the
/// database (every instance's).
fn register_deliveries(registry: &mut Registry, pending: u64, events: u64) {
    use std::sync::atomic::Ordering;
    let deliveries: Family<DeliveryLabels, Counter> = Family::default();
    let notifications: Family<KindLabels, Counter> = Family::default();
    for (kind, counters) in licensd_delivery::COUNTERS.kinds() {
        for (outcome, count) in [
            ("delivered", &counters.delivered),
            ("failed_attempt", &counters.failed_attempts),
            ("abandoned", &counters.abandoned),
        ] {
            deliveries
                .get_or_create(&DeliveryLabels { kind, outcome })
                .inc_by(count.load(Ordering::Relaxed));
        }
        notifications
            .get_or_create(&KindLabels { kind })
            .inc_by(counters.items_delivered.load(Ordering::Relaxed));
    }
    registry.register(
        "licensd_deliveries",
        "Webhook delivery attempts by this instance, by kind (graph_change, graph_lifecycle, other) and outcome (delivered; failed_attempt, retried or not; abandoned after the last attempt or a refused target)",
        deliveries,
    );
    registry.register(
        "licensd_notifications_delivered",
        "Notifications (entries of delivered bodies) this instance delivered, by kind",
        notifications,
    );
    let pending_gauge: Gauge = Gauge::default();
    pending_gauge.set(i64::try_from(pending).unwrap_or(i64::MAX));
    registry.register(
        "licensd_deliveries_pending",
        "Deliveries in the outbox not delivered or abandoned yet (every instance's)",
        pending_gauge,
    );
    let events_gauge: Gauge = Gauge::default();
    events_gauge.set(i64::try_from(events).unwrap_or(i64::MAX));
    registry.register(
        "licensd_change_events_pending",
        "Writes' change records not yet fanned out into deliveries by a delivery worker (every instance's)",
        events_gauge,
    );
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    tenant: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    tenant: String,
    error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductLabels {
    tenant: String,
    sku_id: String,
    sku_part_number: String,
}

/// The per-tenant figures of one scrape.
#[derive(Default)]
struct TenantMetrics {
    users: Family<TenantLabels, Gauge>,
    groups: Family<TenantLabels, Gauge>,
    queued_users: Family<TenantLabels, Gauge>,
    oldest_queued_wait: Family<TenantLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    evaluated_users: Family<TenantLabels, Counter>,
    changed_states: Family<TenantLabels, Counter>,
    processing_steps: Family<TenantLabels, Counter>,
    failed_processing_steps: Family<TenantLabels, Counter>,
    processing_time: Family<TenantLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    states: Family<StatusLabels, Gauge>,
    errors: Family<ErrorLabels, Gauge>,
    users_with_errors: Family<TenantLabels, Gauge>,
    seats_purchased: Family<ProductLabels, Gauge>,
    seats_consumed: Family<ProductLabels, Gauge>,
    seats_available: Family<ProductLabels, Gauge>,
    users_waiting_for_seats: Family<ProductLabels, Gauge>,
}

fn count(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl TenantMetrics {
    fn observe(
        &self,
        runtime: &TenantRuntime,
        processing: Option<&TenantProcessingFigures>,
    ) -> Result<(), ApiError> {
        let tenant = runtime.id.to_string();
        let labels = TenantLabels {
            tenant: tenant.clone(),
        };
        let (overview, states, products) = runtime.read(|engine| {
            (
                engine.tenant_overview(),
                engine.state_counts(),
                engine.sku_usages(),
            )
        })?;
        self.users.get_or_create(&labels).set(count(overview.users));
        self.groups.get_or_create(&labels).set(count(overview.groups));
        self.queued_users
            .get_or_create(&labels)
            .set(count(overview.queued_users));
        self.users_with_errors
            .get_or_create(&labels)
            .set(count(overview.users_with_errors));
        for (status, number) in states {
            self.states
                .get_or_create(&StatusLabels {
                    tenant: tenant.clone(),
                    status: status.as_str().to_string(),
                })
                .set(count(number));
        }
        for (kind, number) in overview.errors_by_kind {
            self.errors
                .get_or_create(&ErrorLabels {
                    tenant: tenant.clone(),
                    error: kind.as_str().to_string(),
                })
                .set(count(number));
        }
        for product in products {
            let labels = ProductLabels {
                tenant: tenant.clone(),
                sku_id: product.sku_id.to_string(),
                sku_part_number: product.sku_part_number.clone(),
            };
            self.seats_purchased
                .get_or_create(&labels)
                .set(i64::from(product.prepaid_units));
            self.seats_consumed
                .get_or_create(&labels)
                .set(i64::from(product.consumed_units));
            self.seats_available
                .get_or_create(&labels)
                .set(i64::from(product.available_units));
            self.users_waiting_for_seats
                .get_or_create(&labels)
                .set(count(product.waiting_users));
        }
        if let Some(processing) = processing {
            self.evaluated_users
                .get_or_create(&labels)
                .inc_by(processing.evaluated_users);
            self.changed_states
                .get_or_create(&labels)
                .inc_by(processing.changed_states);
            self.processing_steps
                .get_or_create(&labels)
                .inc_by(processing.steps);
            self.failed_processing_steps
                .get_or_create(&labels)
                .inc_by(processing.failed_steps);
            self.processing_time
                .get_or_create(&labels)
                .inc_by(processing.step_time.as_secs_f64());
            if processing.processed_here {
                // The engine's queue is the truth a reader sees (a processing step's users leave
                // it when evaluated, a few ms before the step commits and the arrival records
                // are drained): nobody queued, nobody waiting.
                let wait = if overview.queued_users == 0 {
                    std::time::Duration::ZERO
                } else {
                    processing.oldest_queued_wait.unwrap_or_default()
                };
                self.oldest_queued_wait
                    .get_or_create(&labels)
                    .set(wait.as_secs_f64());
            }
        }
        Ok(())
    }

    fn register(self, registry: &mut Registry) {
        registry.register("licensd_users", "Users of the tenant", self.users);
        registry.register("licensd_groups", "Groups of the tenant", self.groups);
        registry.register(
            "licensd_queued_users",
            "Users waiting for their licenses to be evaluated",
            self.queued_users,
        );
        registry.register_with_unit(
            "licensd_oldest_queued_user_wait",
            "How long the longest-waiting queued user has waited (reported by the instance that processes the tenant; 0 when none waits)",
            Unit::Seconds,
            self.oldest_queued_wait,
        );
        registry.register(
            "licensd_evaluated_users",
            "Users evaluated by this instance's processor",
            self.evaluated_users,
        );
        registry.register(
            "licensd_changed_states",
            "License assignment states changed by this instance's processor",
            self.changed_states,
        );
        registry.register(
            "licensd_processing_steps",
            "Processing steps this instance ran",
            self.processing_steps,
        );
        registry.register(
            "licensd_failed_processing_steps",
            "Processing steps of this instance that failed (nothing written; retried)",
            self.failed_processing_steps,
        );
        registry.register_with_unit(
            "licensd_processing",
            "Time this instance's processing steps took",
            Unit::Seconds,
            self.processing_time,
        );
        registry.register(
            "licensd_license_states",
            "License assignment states by status",
            self.states,
        );
        registry.register(
            "licensd_license_errors",
            "License assignments in error by kind",
            self.errors,
        );
        registry.register(
            "licensd_users_with_license_errors",
            "Users with at least one license assignment in error",
            self.users_with_errors,
        );
        registry.register(
            "licensd_seats_purchased",
            "Seats purchased (prepaid units) per product",
            self.seats_purchased,
        );
        registry.register(
            "licensd_seats_consumed",
            "Seats consumed per product",
            self.seats_consumed,
        );
        registry.register(
            "licensd_seats_available",
            "Seats purchased and not consumed per product",
            self.seats_available,
        );
        registry.register(
            "licensd_users_waiting_for_seats",
            "Users whose assignment of the product fails with CountViolation",
            self.users_waiting_for_seats,
        );
    }
}
