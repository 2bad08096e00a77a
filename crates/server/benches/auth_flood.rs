//! Made-up tokens against a valid token's throughput (issue 20), over loopback: a `licensd
//! serve` on a fresh SQLite file; for a fixed time, valid-token requests (`GET /v1.0/users?$top=1`)
//! alone, then the same while other clients flood the server with random well-formed tokens. Run
//! twice in the same process: with the per-address failed-authentication limit (the default,
//! 10/s, bursts of 50) and with it turned off (every made-up token costs a database lookup, as
//! before issue 20), as the reference. Bounded: a few seconds per phase, loopback only.
//!
//! `cargo bench -p licensd-server --bench auth_flood`; `LICENSD_BENCH_SECONDS` (default 3) and
//! `LICENSD_BENCH_CLIENTS` (concurrent clients of each kind, default 4).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use licensd_server::ServerConfig;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Server {
    base: String,
    token: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), licensd_server::ServerError>>,
    _directory: tempfile::TempDir,
}

async fn start(address_limit: bool) -> BenchResult<Server> {
    let directory = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut config = ServerConfig::defaults(directory.path());
    config.database_url = format!("sqlite://{}", directory.path().join("bench.db").display());
    config.listen = address;
    config.rate_limit.per_second = 0;
    if !address_limit {
        config.authentication_failure_limit.per_second = 0;
    }
    let token = licensd_runtime::access::generate_token_text()?;
    config.bootstrap_token = Some(token.clone());
    let (stop, receiver) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(licensd_server::run(listener, config, async move {
        let _ = receiver.await;
    }));
    let base = format!("http://{address}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("{base}/readyz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        if Instant::now() > deadline {
            return Err("the server did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Server {
        base,
        token,
        stop,
        task,
        _directory: directory,
    })
}

/// Sends requests until `running` turns false; counts answers by status class.
async fn hammer(
    base: String,
    token: Option<String>,
    running: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    unauthorized: Arc<AtomicU64>,
    limited: Arc<AtomicU64>,
) -> BenchResult<()> {
    let client = reqwest::Client::new();
    let url = format!("{base}/v1.0/users?$top=1");
    while running.load(Ordering::Relaxed) {
        let credential = match &token {
            Some(token) => token.clone(),
            None => licensd_runtime::access::generate_token_text()?,
        };
        let status = client
            .get(&url)
            .bearer_auth(credential)
            .send()
            .await?
            .status()
            .as_u16();
        match status {
            200 => ok.fetch_add(1, Ordering::Relaxed),
            401 => unauthorized.fetch_add(1, Ordering::Relaxed),
            429 => limited.fetch_add(1, Ordering::Relaxed),
            other => return Err(format!("unexpected status {other}").into()),
        };
    }
    Ok(())
}

struct Phase {
    valid_per_second: f64,
    flood_per_second: f64,
    flood_401: u64,
    flood_429: u64,
}

async fn phase(server: &Server, clients: usize, seconds: u64, flood: bool) -> BenchResult<Phase> {
    let running = Arc::new(AtomicBool::new(true));
    let counters: Vec<Arc<AtomicU64>> = (0..6).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        tasks.push(tokio::spawn(hammer(
            server.base.clone(),
            Some(server.token.clone()),
            Arc::clone(&running),
            Arc::clone(&counters[0]),
            Arc::clone(&counters[1]),
            Arc::clone(&counters[2]),
        )));
        if flood {
            tasks.push(tokio::spawn(hammer(
                server.base.clone(),
                None,
                Arc::clone(&running),
                Arc::clone(&counters[3]),
                Arc::clone(&counters[4]),
                Arc::clone(&counters[5]),
            )));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = |index: usize| counters[index].load(Ordering::Relaxed);
    if count(1) + count(2) + count(3) > 0 {
        return Err("a valid token was refused or a made-up one accepted".into());
    }
    Ok(Phase {
        valid_per_second: count(0) as f64 / elapsed,
        flood_per_second: (count(4) + count(5)) as f64 / elapsed,
        flood_401: count(4),
        flood_429: count(5),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> BenchResult<()> {
    let seconds: u64 = std::env::var("LICENSD_BENCH_SECONDS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3)
        .clamp(1, 30);
    let clients: usize = std::env::var("LICENSD_BENCH_CLIENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(4)
        .clamp(1, 64);
    println!("auth_flood: SQLite, {clients} valid clients (+{clients} flooding), {seconds} s per phase");
    for address_limit in [true, false] {
        let server = start(address_limit).await?;
        // The valid token is in use before the flood starts.
        let quiet = phase(&server, clients, seconds, false).await?;
        let flooded = phase(&server, clients, seconds, true).await?;
        println!(
            "  per-address limit {}: valid alone {:>7.0} req/s; valid under flood {:>7.0} req/s ({:.0}%); \
             flood {:>7.0} req/s ({} answered 401, {} answered 429)",
            if address_limit { "on " } else { "off" },
            quiet.valid_per_second,
            flooded.valid_per_second,
            100.0 * flooded.valid_per_second / quiet.valid_per_second.max(1.0),
            flooded.flood_per_second,
            flooded.flood_401,
            flooded.flood_429,
        );
        let _ = server.stop.send(());
        server.task.await??;
    }
    Ok(())
}
