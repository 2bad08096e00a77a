//! Writes over HTTP (issue 14's write figure): a `licensd serve` on SQLite or PostgreSQL holding
//! a generated tenant, and 8 clients over loopback sending `POST /v1.0/groups/{id}/members/$ref`
//! for distinct (user, group) pairs — each user is added to a group it is not a member of, so
//! every request is an accepted `AddGroupMember` (licensed groups queue the user, and the
//! processor evaluates it meanwhile, as in production). The reference, in the same run on the same
//! database, is a raw loop of single-row `INSERT` transactions into a scratch table from 8
//! threads, each with its own connection (SQLite: the store's pragmas — WAL, `synchronous =
//! NORMAL`; PostgreSQL: autocommit): what the database itself commits per second. Printed: writes
//! per second, p50/p99, and the ratio to the reference. Bounded: a few seconds per phase,
//! loopback only.
//!
//! `cargo bench -p licensd-server --bench writes`; `LICENSD_BENCH_USERS` (default 100,000),
//! `LICENSD_BENCH_CLIENTS` (default 8), `LICENSD_BENCH_SECONDS` (default 5),
//! `LICENSD_BENCH_DATABASE` (`sqlite`, the default, or `postgres`: a fresh schema, dropped at the end).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
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
use measure::{env_or, generated_tenant, overview, store_with_token, Figures};

/// The generated tenant, stored, with a Global Administrator token and the (user, group) pairs
/// to add: rounds over every user, each user paired with a group it is not a member of (a
/// different group in every round).
struct Prepared {
    database: BenchDatabase,
    token: String,
    pairs: Vec<(Uuid, Uuid)>,
}

fn prepare(directory: &std::path::Path, users: usize, rounds: usize) -> BenchResult<Prepared> {
    let database = BenchDatabase::from_environment(directory, "licensd_writes")?;
    let image = generated_tenant(users)?;
    let groups: Vec<Uuid> = image.groups.iter().map(|group| group.id).collect();
    let mut pairs = Vec::with_capacity(image.users.len() * rounds);
    let mut taken: Vec<HashSet<Uuid>> = image
        .users
        .iter()
        .map(|user| {
            user.memberships
                .iter()
                .map(|membership| membership.group_id)
                .collect()
        })
        .collect();
    for round in 0..rounds {
        for (index, user) in image.users.iter().enumerate() {
            let start = index.wrapping_mul(7919).wrapping_add(round * 131);
            let free = (0..groups.len())
                .map(|offset| groups[(start + offset) % groups.len()])
                .find(|group| !taken[index].contains(group));
            if let Some(group) = free {
                taken[index].insert(group);
                pairs.push((user.id, group));
            }
        }
    }
    let token = store_with_token(&database, image, "writes bench")?;
    Ok(Prepared {
        database,
        token,
        pairs,
    })
}

/// `clients` clients add members for `seconds`; client `k` takes pairs `k`, `k + clients`, ...
async fn add_members(
    base: &str,
    token: &str,
    pairs: Arc<Vec<(Uuid, Uuid)>>,
    clients: usize,
    seconds: u64,
) -> BenchResult<Figures> {
    let running = Arc::new(AtomicBool::new(true));
    let mut tasks = Vec::new();
    for client_index in 0..clients {
        let pairs = Arc::clone(&pairs);
        let running = Arc::clone(&running);
        let base = base.to_string();
        let token = token.to_string();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut latencies = Vec::new();
            let mut position = client_index;
            while running.load(Ordering::Relaxed) {
                let Some((user, group)) = pairs.get(position) else {
                    return Err("ran out of (user, group) pairs: raise LICENSD_BENCH_USERS".into());
                };
                position += clients;
                let started = Instant::now();
                let response = client
                    .post(format!("{base}/v1.0/groups/{group}/members/$ref"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")
                    }))
                    .send()
                    .await?;
                let status = response.status();
                let body = response.bytes().await?;
                latencies.push(started.elapsed());
                if !status.is_success() {
                    return Err(format!(
                        "adding {user} to {group} answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    )
                    .into());
                }
            }
            BenchResult::Ok(latencies)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    running.store(false, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Figures::of(latencies, started.elapsed(), "operation"))
}

/// The reference: `threads` threads, each with its own connection, insert one row per
/// transaction into a scratch table for `seconds`.
fn raw_inserts(database: &BenchDatabase, threads: usize, seconds: u64) -> BenchResult<Figures> {
    let path = database.url.strip_prefix("sqlite://").map(str::to_string);
    match &path {
        Some(path) => {
            let connection = rusqlite::Connection::open(path)?;
            connection.execute_batch(
                "CREATE TABLE IF NOT EXISTS bench_inserts (thread INTEGER NOT NULL, n INTEGER NOT NULL,
                     payload BLOB NOT NULL, PRIMARY KEY (thread, n)) WITHOUT ROWID",
            )?;
        }
        None => {
            let mut client = postgres::Client::connect(&database.url, postgres::NoTls)?;
            client.batch_execute(
                "CREATE TABLE IF NOT EXISTS bench_inserts (thread int8 NOT NULL, n int8 NOT NULL,
                     payload bytea NOT NULL, PRIMARY KEY (thread, n))",
            )?;
        }
    }
    let running = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let running = Arc::clone(&running);
            let path = path.clone();
            let url = database.url.clone();
            std::thread::spawn(move || -> BenchResult<Vec<Duration>> {
                let payload = vec![7u8; 32];
                let mut latencies = Vec::new();
                let mut n: i64 = 0;
                match path {
                    Some(path) => {
                        let connection = rusqlite::Connection::open(path)?;
                        connection.busy_timeout(Duration::from_secs(10))?;
                        connection
                            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")?;
                        let mut insert = connection
                            .prepare("INSERT INTO bench_inserts (thread, n, payload) VALUES (?1, ?2, ?3)")?;
                        while running.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            insert.execute(rusqlite::params![thread as i64, n, payload])?;
                            latencies.push(started.elapsed());
                            n += 1;
                        }
                    }
                    None => {
                        let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
                        let insert = client
                            .prepare("INSERT INTO bench_inserts (thread, n, payload) VALUES ($1, $2, $3)")?;
                        while running.load(Ordering::Relaxed) {
                            let started = Instant::now();
                            client.execute(&insert, &[&(thread as i64), &n, &payload])?;
                            latencies.push(started.elapsed());
                            n += 1;
                        }
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    running.store(false, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.join().map_err(|_| "an insert thread panicked")??);
    }
    let figures = Figures::of(latencies, started.elapsed(), "operation");
    match &path {
        Some(path) => {
            rusqlite::Connection::open(path)?.execute_batch("DROP TABLE bench_inserts")?;
        }
        None => {
            postgres::Client::connect(&database.url, postgres::NoTls)?
                .batch_execute("DROP TABLE bench_inserts")?;
        }
    }
    Ok(figures)
}

#[tokio::main]
async fn main() -> BenchResult<()> {
    let bench_mode = std::env::args().any(|argument| argument == "--bench");
    let users: usize = env_or("LICENSD_BENCH_USERS", if bench_mode { 100_000 } else { 2_000 });
    let clients: usize = env_or("LICENSD_BENCH_CLIENTS", 8);
    let seconds: u64 = env_or("LICENSD_BENCH_SECONDS", if bench_mode { 5 } else { 1 });
    let rounds: usize = env_or("LICENSD_BENCH_ROUNDS", if bench_mode { 2 } else { 5 });
    let directory = tempfile::tempdir()?;
    // The store's PostgreSQL client is synchronous: the set-up runs outside the async runtime.
    let prepared = tokio::task::block_in_place(|| prepare(directory.path(), users, rounds))?;
    let database = &prepared.database;
    println!(
        "writes over HTTP (POST groups/{{id}}/members/$ref), {}, {users} users, {clients} clients, {seconds} s per phase",
        database.name
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut server_config = ServerConfig::defaults(directory.path());
    server_config.database_url = database.url.clone();
    server_config.listen = address;
    server_config.rate_limit.per_second = 0;
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
    // Let the processor evaluate the stored tenant first, so the writes are measured on a
    // settled tenant.
    let deadline = Instant::now() + Duration::from_secs(600);
    while overview(&client, &base, &prepared.token).await?.queued_users > 0 {
        if Instant::now() > deadline {
            return Err("the processor did not drain the queue in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let pairs = Arc::new(prepared.pairs.clone());
    let writes = add_members(&base, &prepared.token, pairs, clients, seconds).await?;
    let queued = overview(&client, &base, &prepared.token).await?.queued_users;
    // The reference runs once the server is idle again.
    while overview(&client, &base, &prepared.token).await?.queued_users > 0 {
        if Instant::now() > deadline {
            return Err("the processor did not drain the queue in 10 minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let reference = tokio::task::block_in_place(|| raw_inserts(database, clients, seconds))?;
    println!(
        "  POST members/$ref                                  {writes}   (users queued at the end: {queued})"
    );
    println!("  reference: single-row INSERT transactions          {reference}");
    println!(
        "  writes / reference (per second): {:.1} %",
        writes.per_second / reference.per_second * 100.0
    );

    let _ = stop.send(());
    server.await??;
    tokio::task::block_in_place(|| prepared.database.drop_schema())?;
    Ok(())
}
