//! The cost and idle-seat reports through the HTTP API (issue 19: "cost and idle-seat reports on
//! a 1M-user tenant: ≤ 1 s"). A generated tenant (`licensd_fixtures::generator`: by default
//! 1,000,000 users, 5,000 groups, 30 products), evaluated, with a department for most users
//! (12 values) and a company (3 values), 1 % of the accounts disabled, a price for every product
//! (two currencies), and activity for a tenth of the users (a third of them inactive for 200
//! days, a third left yesterday, a third signed in 5 days ago), is stored in SQLite (or with
//! `LICENSD_BENCH_DATABASE=postgres` a fresh PostgreSQL schema) and served by a real `licensd
//! serve` on loopback; one client then GETs, each `LICENSD_BENCH_RUNS` times (median printed):
//!
//! - `/licensd/v1/spend/cost` (JSON) and `?format=csv`;
//! - `/licensd/v1/spend/idle` (JSON, the default first 1,000 seats and the total), with
//!   `top=1000000` (every idle seat), and `?format=csv` (every idle seat);
//! - the console's spend page `/spend` (HTML: cost report, idle count, chart).
//!
//! References measured in the same run: the engine's own `cost_report` and `idle_seats` over the
//! same tenant, prices and activity, in this process (what the HTTP figures add to), and
//! `GET /healthz` (the HTTP floor); and the store's part, the query of the activity of possibly
//! idle users, in this process. Each answer is checked: the totals and the idle count are the
//! engine's, the idle CSV has one row per idle seat.
//!
//! `cargo bench -p licensd-server --bench spend` (release: `target/release/deps/spend-<hash>
//! --bench`); `LICENSD_BENCH_USERS` (default 1,000,000 with `--bench`, else 2,000),
//! `LICENSD_BENCH_RUNS` (default 5 with `--bench`, else 1), `LICENSD_BENCH_DATABASE`.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use licensd_engine::spend::{IdlePolicy, SeatPrice, SpendInputs, UserActivity, DAY_MILLISECONDS};
use licensd_engine::user_attributes::UserAttribute;
use licensd_engine::{Engine, Timestamp, Uuid};
use licensd_fixtures::generator::{build_engine, GeneratorConfig};
use licensd_server::ServerConfig;
use licensd_store::{SkuPrice, Store, UserActivityRecord, WriteBatch};
use rustc_hash::FxHashMap;

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;

use database::{BenchDatabase, BenchResult};
use measure::{env_or, overview};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The tenant, evaluated, with departments, companies and disabled accounts; its prices and
/// activity as the store will hold them.
struct Prepared {
    engine: Engine,
    prices: Vec<SkuPrice>,
    activity: Vec<UserActivityRecord>,
}

fn prepare(users: usize, now: i64) -> BenchResult<Prepared> {
    let config = GeneratorConfig::new(users, (users / 200).max(20), 30, 1);
    let (mut built, summary) = build_engine(&config).map_err(|error| error.to_string())?;
    built.process_all(Timestamp(summary.last_timestamp.0 + 1));
    // Departments, companies and disabled accounts, set on the image and loaded back (the
    // generator gives none).
    let mut image = built.to_image();
    drop(built);
    for (index, user) in image.users.iter_mut().enumerate() {
        if index % 25 != 0 {
            user.attributes
                .insert(UserAttribute::DEPARTMENT, format!("Department {:02}", index % 12));
        }
        user.attributes.insert(
            UserAttribute::COMPANY_NAME,
            ["Contoso", "Fabrikam", "Northwind"][index % 3].to_string(),
        );
        if index % 100 == 7 {
            user.account_enabled = false;
        }
    }
    let engine = Engine::from_image(image).map_err(|error| error.to_string())?;
    let prices = engine
        .sku_usages()
        .into_iter()
        .enumerate()
        .map(|(index, usage)| SkuPrice {
            sku_id: usage.sku_id,
            price_minor: 500 + 100 * index as i64,
            currency: if index % 2 == 0 { "EUR" } else { "USD" }.to_string(),
        })
        .collect();
    let activity = engine
        .user_ids()
        .into_iter()
        .enumerate()
        .filter(|(index, _)| index % 10 == 0)
        .map(|(index, user_id)| match (index / 10) % 3 {
            0 => UserActivityRecord {
                user_id,
                last_sign_in: Some(now - 200 * DAY_MILLISECONDS),
                leave_date: None,
            },
            1 => UserActivityRecord {
                user_id,
                last_sign_in: Some(now - 30 * DAY_MILLISECONDS),
                leave_date: Some(now - DAY_MILLISECONDS),
            },
            _ => UserActivityRecord {
                user_id,
                last_sign_in: Some(now - 5 * DAY_MILLISECONDS),
                leave_date: None,
            },
        })
        .collect();
    Ok(Prepared {
        engine,
        prices,
        activity,
    })
}

/// Stores the tenant, its prices and activity, and a Global Administrator token; returns the
/// token's text.
fn store(database: &BenchDatabase, prepared: &Prepared) -> BenchResult<String> {
    let image = prepared.engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = Store::open(&database.url)?;
    store.create_tenant(&image.settings)?;
    store.write(tenant_id, &WriteBatch::from_image(image))?;
    for price in &prepared.prices {
        store.set_sku_price(tenant_id, price.sku_id, Some(price), &[])?;
    }
    store.set_user_activity(tenant_id, &prepared.activity, &[])?;
    let token = licensd_runtime::access::generate_token_text()?;
    let shared = Arc::new(Mutex::new(store));
    licensd_runtime::access::store_given_token(&shared, tenant_id, &token, "spend bench")
        .map_err(|error| error.to_string())?;
    Ok(token)
}

/// `runs` GETs of `path`, each read to the end; the median time, the body of the last one.
async fn timed_get(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    runs: usize,
) -> BenchResult<(Duration, bytes::Bytes)> {
    let mut samples = Vec::with_capacity(runs);
    let mut body = bytes::Bytes::new();
    for _ in 0..runs {
        let started = Instant::now();
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        body = response.bytes().await?;
        samples.push(started.elapsed());
        if !status.is_success() {
            return Err(format!("{path} answered {status}: {}", String::from_utf8_lossy(&body)).into());
        }
    }
    Ok((median(samples), body))
}

fn timed<T>(runs: usize, mut run: impl FnMut() -> T) -> (Duration, T) {
    let mut samples = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(std::hint::black_box(run()));
        samples.push(started.elapsed());
    }
    (median(samples), last.expect("at least one run"))
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let users: usize = env_or("LICENSD_BENCH_USERS", if bench_mode { 1_000_000 } else { 2_000 });
    let runs: usize = env_or("LICENSD_BENCH_RUNS", if bench_mode { 5 } else { 1 }).max(1);
    let now = licensd_runtime::tenants::now().0;
    let directory = tempfile::tempdir()?;
    let started = Instant::now();
    let (database, prepared, token) = tokio::task::block_in_place(|| {
        let database = BenchDatabase::from_environment(directory.path(), "licensd_spend")?;
        let prepared = prepare(users, now)?;
        let token = store(&database, &prepared)?;
        BenchResult::Ok((database, prepared, token))
    })?;
    println!(
        "spend reports over HTTP, {}: {} users, {} groups, {} products, {} users with activity (prepared and stored in {:.1} s), {runs} runs per figure (median)",
        database.name,
        prepared.engine.user_count(),
        prepared.engine.group_count(),
        prepared.prices.len(),
        prepared.activity.len(),
        started.elapsed().as_secs_f64()
    );

    // The engine's part, in this process: the reference.
    let prices: FxHashMap<Uuid, SeatPrice> = prepared
        .prices
        .iter()
        .map(|price| {
            (
                price.sku_id,
                SeatPrice {
                    minor_units: price.price_minor,
                    currency: price.currency.clone(),
                },
            )
        })
        .collect();
    let activity: FxHashMap<Uuid, UserActivity> = prepared
        .activity
        .iter()
        .map(|record| {
            (
                record.user_id,
                UserActivity {
                    last_sign_in: record.last_sign_in.map(Timestamp),
                    leave_date: record.leave_date.map(Timestamp),
                },
            )
        })
        .collect();
    let inputs = SpendInputs {
        prices: &prices,
        activity: &activity,
        policy: IdlePolicy {
            now: Timestamp(now),
            inactive_after_days: 90,
        },
    };
    // The store's part: the activity of possibly idle users, as the reports read it.
    let tenant_id = prepared.engine.settings().tenant_id;
    let (store_activity, possibly_idle) = tokio::task::block_in_place(|| {
        let mut store = Store::open(&database.url)?;
        let mut samples = Vec::with_capacity(runs);
        let mut rows = 0;
        for _ in 0..runs {
            let started = Instant::now();
            rows = store
                .possibly_idle_activity(tenant_id, now, now - 90 * DAY_MILLISECONDS)?
                .len();
            samples.push(started.elapsed());
        }
        BenchResult::Ok((median(samples), rows))
    })?;
    let (engine_cost, report) = timed(runs, || prepared.engine.cost_report(&inputs));
    let (engine_idle, idle_seats) = timed(runs, || prepared.engine.idle_seats(&inputs).len());
    let departments = report.departments.len();
    let totals = report.consumed_cost.clone();
    drop(prepared);

    // The server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut server_config = ServerConfig::defaults(directory.path());
    server_config.database_url = database.url.clone();
    server_config.listen = address;
    server_config.rate_limit.per_second = 0;
    let (stop, receiver) = tokio::sync::oneshot::channel::<()>();
    let loading = Instant::now();
    let server = tokio::spawn(licensd_server::run(listener, server_config, async move {
        let _ = receiver.await;
    }));
    let base = format!("http://{address}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(1200);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        if Instant::now() > deadline {
            return Err("the server did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while overview(&client, &base, &token).await?.queued_users > 0 {
        if Instant::now() > deadline {
            return Err("the processor did not drain the queue".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "  server ready with the tenant loaded in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    let health_runs = runs.max(50);
    let (health, _) = timed_get(&client, &base, &token, "/healthz", health_runs).await?;
    let (cost, cost_body) = timed_get(&client, &base, &token, "/licensd/v1/spend/cost", runs).await?;
    let (cost_csv, cost_csv_body) =
        timed_get(&client, &base, &token, "/licensd/v1/spend/cost?format=csv", runs).await?;
    let (idle, idle_body) = timed_get(&client, &base, &token, "/licensd/v1/spend/idle", runs).await?;
    let (idle_all, idle_all_body) =
        timed_get(&client, &base, &token, "/licensd/v1/spend/idle?top=1000000", runs).await?;
    let (idle_csv, idle_csv_body) =
        timed_get(&client, &base, &token, "/licensd/v1/spend/idle?format=csv", runs).await?;
    let (console, console_body) = timed_get(&client, &base, &token, "/spend", runs).await?;

    // What the answers say is what the engine computed.
    let cost_json: serde_json::Value = serde_json::from_slice(&cost_body)?;
    for (currency, amount) in &totals {
        let total = cost_json["totals"]
            .as_array()
            .and_then(|totals| totals.iter().find(|total| total["currency"] == currency.as_str()))
            .ok_or_else(|| format!("no {currency} total in the cost report"))?;
        let expected = licensd_api_types::spend::format_amount(*amount);
        if total["consumed"] != expected.as_str() {
            return Err(format!(
                "consumed {currency}: {} over HTTP, {expected} in the engine",
                total["consumed"]
            )
            .into());
        }
    }
    if cost_json["departments"].as_array().map(Vec::len) != Some(departments) {
        return Err("the departments differ from the engine's".into());
    }
    let idle_json: serde_json::Value = serde_json::from_slice(&idle_body)?;
    if idle_json["total"] != idle_seats as u64 {
        return Err(format!(
            "idle total {} over HTTP, {idle_seats} in the engine",
            idle_json["total"]
        )
        .into());
    }
    let idle_all_json: serde_json::Value = serde_json::from_slice(&idle_all_body)?;
    if idle_all_json["value"].as_array().map(Vec::len) != Some(idle_seats.min(1_000_000)) {
        return Err("top=1000000 did not list every idle seat".into());
    }
    let csv_rows = idle_csv_body.iter().filter(|byte| **byte == b'\n').count();
    if csv_rows != idle_seats + 1 {
        return Err(format!("the idle CSV has {csv_rows} lines for {idle_seats} idle seats").into());
    }
    if !String::from_utf8_lossy(&console_body).contains("Spend") {
        return Err("the console's spend page has no title".into());
    }

    let megabytes = |body: &bytes::Bytes| body.len() as f64 / 1_000_000.0;
    println!(
        "  {departments} departments, {} sources, {idle_seats} idle seats held",
        cost_json["sources"].as_array().map_or(0, Vec::len)
    );
    println!(
        "  reference: engine cost_report (in process)       {:>9.1} ms",
        milliseconds(engine_cost)
    );
    println!(
        "  reference: engine idle_seats (in process)        {:>9.1} ms",
        milliseconds(engine_idle)
    );
    println!(
        "  store: possibly_idle_activity (in process)       {:>9.1} ms ({possibly_idle} rows)",
        milliseconds(store_activity)
    );
    println!(
        "  reference: GET /healthz                          {:>9.3} ms (median of {health_runs})",
        milliseconds(health)
    );
    let line = |name: &str, time: Duration, reference: Duration, body: &bytes::Bytes| {
        println!(
            "  {name:<48} {:>9.1} ms  {:>5.2}x the engine's part  {:>8.2} MB",
            milliseconds(time),
            time.as_secs_f64() / reference.as_secs_f64(),
            megabytes(body)
        );
    };
    line("GET /licensd/v1/spend/cost", cost, engine_cost, &cost_body);
    line(
        "GET /licensd/v1/spend/cost?format=csv",
        cost_csv,
        engine_cost,
        &cost_csv_body,
    );
    line(
        "GET /licensd/v1/spend/idle (top 1000, total)",
        idle,
        engine_idle,
        &idle_body,
    );
    line(
        "GET /licensd/v1/spend/idle?top=1000000",
        idle_all,
        engine_idle,
        &idle_all_body,
    );
    line(
        "GET /licensd/v1/spend/idle?format=csv",
        idle_csv,
        engine_idle,
        &idle_csv_body,
    );
    line(
        "GET /spend (console page)",
        console,
        engine_cost + engine_idle,
        &console_body,
    );

    let _ = stop.send(());
    server.await??;
    tokio::task::block_in_place(|| database.drop_schema())?;
    Ok(())
}
