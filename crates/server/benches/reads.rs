//! Reads of license states over HTTP (issue 14's read figure): a `licensd serve` on SQLite or
//! PostgreSQL holding a generated tenant, and 16 clients over loopback sending
//! `GET /v1.0/users/{id}?$select=licenseAssignmentStates` for users spread over the tenant.
//! Measured twice: while the processor evaluates the whole tenant (every user queued at start, as
//! after a catalog change or an import; the phase ends when the queue is empty, so every request
//! measured overlaps processing), and once the queue is empty. The reference, in the same
//! run on the same server and clients, is `GET /healthz` (no token, no lookup): the HTTP floor of
//! this machine. Bounded: a few seconds per phase, loopback only.
//!
//! `cargo bench -p licensd-server --bench reads`; `LICENSD_BENCH_USERS` (default 100,000),
//! `LICENSD_BENCH_CLIENTS` (default 16), `LICENSD_BENCH_SECONDS` (default 5),
//! `LICENSD_BENCH_DATABASE` (`sqlite`, the default, or `postgres`: a fresh schema, dropped at the end),
//! `LICENSD_BENCH_PROCESSING_BATCH` (users per processing step; default the server's default).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use licensd_engine::Uuid;
use licensd_server::ServerConfig;

#[path = "support/database.rs"]
mod database;
#[path = "support/measure.rs"]
mod measure;

use database::{BenchDatabase, BenchResult};

/// The `licensd` binary's allocator (`crates/licensd/src/main.rs`): the server measured here
/// allocates as the one deployed (the bench's clients, in the same process, use it too).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use measure::{env_or, generated_tenant, overview, store_with_token, Figures};

/// `clients` clients send requests until `done` completes; client `k` asks for the addresses
/// `addresses[(k + i * clients * 7919) % len]`, so clients spread over the tenant.
async fn phase(
    addresses: Arc<Vec<String>>,
    token: Option<String>,
    clients: usize,
    done: impl std::future::Future<Output = BenchResult<()>>,
) -> BenchResult<Figures> {
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let addresses = Arc::clone(&addresses);
        let token = token.clone();
        let running = Arc::clone(&running);
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut position = client_index;
            while running.load(Ordering::Relaxed) {
                let address = &addresses[position % addresses.len()];
                position = position.wrapping_add(clients * 7919);
                let mut request = client.get(address);
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let started = Instant::now();
                let response = request.send().await?;
                let status = response.status();
                let _body = response.bytes().await?;
                latencies.push(started.elapsed());
                if !status.is_success() {
                    return Err(format!("{address} answered {status}").into());
                }
            }
            BenchResult::Ok(latencies)
        }));
    }
    let started = Instant::now();
    let finished = done.await;
    running.store(false, Ordering::Relaxed);
    finished?;
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Figures::of(latencies, started.elapsed(), "request"))
}

/// Reads the server could not answer at once because a change held the tenant's engine (they
/// waited on a blocking thread), so far.
fn given_back_queries() -> u64 {
    licensd_runtime::tenants::QUERIES_GIVEN_BACK.load(Ordering::Relaxed)
}

/// `n reads waited for the engine (x %)` of a phase.
fn waited(figures: &Figures, given_back: u64) -> String {
    format!(
        "{given_back} reads waited for the engine, {:.1} %",
        given_back as f64 / figures.count.max(1) as f64 * 100.0
    )
}

async fn queued_users(client: &reqwest::Client, base: &str, token: &str) -> BenchResult<u64> {
    Ok(overview(client, base, token).await?.queued_users)
}

/// Stores a generated tenant of `users` users, every one queued, and a Global Administrator
/// token for it.
fn prepare(directory: &std::path::Path, users: usize) -> BenchResult<(BenchDatabase, Vec<Uuid>, String)> {
    let database = BenchDatabase::from_environment(directory, "licensd_reads")?;
    let image = generated_tenant(users)?;
    let user_ids: Vec<Uuid> = image.users.iter().map(|user| user.id).collect();
    let token = store_with_token(&database, image, "reads bench")?;
    Ok((database, user_ids, token))
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let users: usize = env_or("LICENSD_BENCH_USERS", if bench_mode { 100_000 } else { 2_000 });
    let clients: usize = env_or("LICENSD_BENCH_CLIENTS", 16);
    let seconds: u64 = env_or("LICENSD_BENCH_SECONDS", if bench_mode { 5 } else { 1 });
    // A generated tenant, stored with every user queued (as the reprocess benchmark stores it).
    // The store's PostgreSQL client is synchronous: the set-up runs outside the async runtime.
    let directory = tempfile::tempdir()?;
    let (database, user_ids, token) = tokio::task::block_in_place(|| prepare(directory.path(), users))?;
    println!(
        "reads of license states over HTTP, {}, {users} users, {clients} clients, {seconds} s per phase",
        database.name
    );
    let url = database.url.clone();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut server_config = ServerConfig::defaults(directory.path());
    server_config.database_url = url;
    server_config.listen = address;
    server_config.rate_limit.per_second = 0;
    if let Ok(batch) = std::env::var("LICENSD_BENCH_PROCESSING_BATCH") {
        server_config.processing_batch_size = batch.parse()?;
    }
    println!(
        "  processing steps of {} users",
        server_config.processing_batch_size
    );
    let (stop, receiver) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(licensd_server::run(listener, server_config, async move {
        let _ = receiver.await;
    }));
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        if Instant::now() > deadline {
            return Err("the server did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let states: Arc<Vec<String>> = Arc::new(
        user_ids
            .iter()
            .map(|id| format!("{base}/v1.0/users/{id}?$select=licenseAssignmentStates"))
            .collect(),
    );
    let health: Arc<Vec<String>> = Arc::new(vec![format!("{base}/healthz")]);

    let for_seconds = || async move {
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        BenchResult::Ok(())
    };
    let queued_before = queued_users(&client, &base, &token).await?;
    // Until the queue is empty: every request measured overlaps processing.
    let drained = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(600);
            while queued_users(&client, &base, &token).await? > 0 {
                if Instant::now() > deadline {
                    return Err("the processor did not drain the queue in 10 minutes".into());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            BenchResult::Ok(())
        }
    };
    let processing = Instant::now();
    let given_back = given_back_queries();
    let during = phase(Arc::clone(&states), Some(token.clone()), clients, drained).await?;
    println!(
        "  states while the processor evaluates the tenant     {during}   ({queued_before} queued users evaluated in {:.1} s; {})",
        processing.elapsed().as_secs_f64(),
        waited(&during, given_back_queries() - given_back)
    );
    let reference = phase(health, None, clients, for_seconds()).await?;
    let given_back = given_back_queries();
    let idle = phase(states, Some(token.clone()), clients, for_seconds()).await?;
    println!(
        "  states, queue empty                                 {idle}   ({})",
        waited(&idle, given_back_queries() - given_back)
    );
    println!("  reference: GET /healthz (no token, no lookup)       {reference}");
    println!(
        "  states / reference (requests per second): {:.0} %",
        idle.per_second / reference.per_second * 100.0
    );

    let _ = stop.send(());
    server.await??;
    tokio::task::block_in_place(|| database.drop_schema())?;
    Ok(())
}
