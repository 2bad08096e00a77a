//! SCIM provisioning benchmark over real HTTP: a `licensd serve` on a fresh SQLite file gets a
//! product with enough seats and a group licensed through Graph, then N users are created through
//! `POST /scim/v2/Users` (one request each, as identity providers send them) and made members of
//! the group through `PATCH /scim/v2/Groups/{id}` (`add members`, 100 per request, as Entra ID
//! batches them); the time until every member's license is processed is measured too. In the same
//! run, on a second fresh server, the same users and memberships go through the Graph API
//! (`POST /v1.0/users`, `POST /v1.0/groups/{id}/members/$ref`) as the reference.
//!
//! `cargo bench -p licensd-server --bench scim`; `LICENSD_BENCH_USERS` (default 10,000).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use licensd_server::ServerConfig;
use serde_json::{json, Value};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const E3: &str = "6fd2c87f-b296-42f0-b197-1e91e994b900";
const MEMBERS_PER_PATCH: usize = 100;

struct Server {
    base: String,
    client: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), licensd_server::ServerError>>,
    _directory: tempfile::TempDir,
}

async fn start() -> BenchResult<Server> {
    let directory = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut config = ServerConfig::defaults(directory.path());
    config.database_url = format!("sqlite://{}", directory.path().join("bench.db").display());
    config.listen = address;
    config.rate_limit.per_second = 0;
    let token = licensd_runtime::access::generate_token_text()?;
    config.bootstrap_token = Some(token.clone());
    let (stop, receiver) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(licensd_server::run(listener, config, async move {
        let _ = receiver.await;
    }));
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse()?);
    let client = reqwest::Client::builder().default_headers(headers).build()?;
    let base = format!("http://{address}");
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
        client,
        stop,
        task,
        _directory: directory,
    })
}

impl Server {
    async fn send(&self, request: reqwest::RequestBuilder, expected: u16) -> BenchResult<Value> {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        if status != expected {
            return Err(format!("expected {expected}, got {status}: {text}").into());
        }
        Ok(if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        })
    }

    async fn post(&self, path: &str, body: Value, expected: u16) -> BenchResult<Value> {
        self.send(
            self.client.post(format!("{}{path}", self.base)).json(&body),
            expected,
        )
        .await
    }

    /// Subscribes to E3 with `seats`, creates a group through Graph and licenses it.
    async fn licensed_group(&self, seats: usize) -> BenchResult<String> {
        self.post(
            "/licensd/v1/catalog/import",
            json!({"products": [{"skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": seats}]}),
            201,
        )
        .await?;
        let group = self
            .post(
                "/v1.0/groups",
                json!({"displayName": "All staff", "mailEnabled": false, "mailNickname": "staff", "securityEnabled": true}),
                201,
            )
            .await?;
        let id = group["id"].as_str().ok_or("no group id")?.to_string();
        self.post(
            &format!("/v1.0/groups/{id}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}),
            202,
        )
        .await?;
        Ok(id)
    }

    /// Waits until every queued user is processed; returns the consumed E3 units.
    async fn settle(&self) -> BenchResult<i64> {
        loop {
            let overview = self
                .send(self.client.get(format!("{}/licensd/v1/overview", self.base)), 200)
                .await?;
            if overview["queuedUsers"] == 0 {
                let sku = self
                    .send(
                        self.client.get(format!("{}/v1.0/subscribedSkus/{E3}", self.base)),
                        200,
                    )
                    .await?;
                return Ok(sku["consumedUnits"].as_i64().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(self) -> BenchResult<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}

fn per_second(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

async fn scim_run(users: usize) -> BenchResult<(Duration, Duration, Duration)> {
    let server = start().await?;
    let group = server.licensed_group(users).await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(users);
    for index in 0..users {
        let user = server
            .post(
                "/scim/v2/Users",
                json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                    "userName": format!("user{index}@contoso.com"),
                    "externalId": format!("user{index}"),
                    "active": true,
                    "displayName": format!("User {index}"),
                    "name": {"givenName": "User", "familyName": format!("{index}")},
                    "emails": [{"primary": true, "type": "work", "value": format!("user{index}@contoso.com")}],
                    "addresses": [{"type": "work", "country": "US"}],
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
                }),
                201,
            )
            .await?;
        ids.push(user["id"].as_str().ok_or("no user id")?.to_string());
    }
    let created = started.elapsed();
    let started = Instant::now();
    for chunk in ids.chunks(MEMBERS_PER_PATCH) {
        let members: Vec<Value> = chunk.iter().map(|id| json!({"value": id})).collect();
        server
            .send(
                server
                    .client
                    .patch(format!("{}/scim/v2/Groups/{group}", server.base))
                    .json(&json!({
                        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                        "Operations": [{"op": "Add", "path": "members", "value": members}]
                    })),
                200,
            )
            .await?;
    }
    let membered = started.elapsed();
    let consumed = server.settle().await?;
    let processed = started.elapsed();
    if consumed != users as i64 {
        return Err(format!("{consumed} E3 units consumed, expected {users}").into());
    }
    server.stop().await?;
    Ok((created, membered, processed))
}

async fn graph_run(users: usize) -> BenchResult<(Duration, Duration, Duration)> {
    let server = start().await?;
    let group = server.licensed_group(users).await?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(users);
    for index in 0..users {
        let user = server
            .post(
                "/v1.0/users",
                json!({
                    "accountEnabled": true,
                    "displayName": format!("User {index}"),
                    "mailNickname": format!("user{index}"),
                    "userPrincipalName": format!("user{index}@contoso.com"),
                    "usageLocation": "US",
                    "proxyAddresses": [format!("SMTP:user{index}@contoso.com")],
                    "passwordProfile": {"password": "x", "forceChangePasswordNextSignIn": true}
                }),
                201,
            )
            .await?;
        ids.push(user["id"].as_str().ok_or("no user id")?.to_string());
    }
    let created = started.elapsed();
    let started = Instant::now();
    for id in &ids {
        server
            .post(
                &format!("/v1.0/groups/{group}/members/$ref"),
                json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")}),
                204,
            )
            .await?;
    }
    let membered = started.elapsed();
    let consumed = server.settle().await?;
    let processed = started.elapsed();
    if consumed != users as i64 {
        return Err(format!("{consumed} E3 units consumed, expected {users}").into());
    }
    server.stop().await?;
    Ok((created, membered, processed))
}

fn main() -> BenchResult<()> {
    let users: usize = std::env::var("LICENSD_BENCH_USERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        println!("SCIM provisioning of {users} users and a {users}-member group, SQLite, one client");
        let (created, membered, processed) = scim_run(users).await?;
        println!(
            "scim:  create users {:>8.2} s ({:>6.0}/s)  add members {:>7.2} s ({:>6.0}/s, {MEMBERS_PER_PATCH} per PATCH)  members licensed after {:>7.2} s",
            created.as_secs_f64(),
            per_second(users, created),
            membered.as_secs_f64(),
            per_second(users, membered),
            processed.as_secs_f64()
        );
        let (created, membered, processed) = graph_run(users).await?;
        println!(
            "graph: create users {:>8.2} s ({:>6.0}/s)  add members {:>7.2} s ({:>6.0}/s, 1 per request)   members licensed after {:>7.2} s",
            created.as_secs_f64(),
            per_second(users, created),
            membered.as_secs_f64(),
            per_second(users, membered),
            processed.as_secs_f64()
        );
        Ok(())
    })
}
