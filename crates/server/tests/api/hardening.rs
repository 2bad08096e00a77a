//! Hardening (issue 20), over real sockets: one request must not crash the server (deep and long
//! filters on every endpoint that parses one), a slow client must not hold it (header, body and
//! keep-alive timeouts; shutdown with a half-sent request ends within the drain period), made-up
//! tokens must not flood it (429 per address, no database lookup; a negative cache of unknown
//! ids), fields are bounded (Graph's limits, nothing stored), the console's cookie is no API
//! credential and the console refuses cross-site changes, and `/readyz` reports a full disk.

use std::time::{Duration, Instant};

use licensd_server::ServerConfig;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{on_both_backends, TestDatabase, TestServer};

on_both_backends!(
    oversized_fields_are_refused_on_graph_and_admin_and_nothing_is_stored,
    oversized_fields_are_refused_on_scim_and_nothing_is_stored,
);

/// `depth` nested parentheses around one comparison.
fn nested(depth: usize, comparison: &str) -> String {
    format!("{}{comparison}{}", "(".repeat(depth), ")".repeat(depth))
}

/// How many users the tenant has.
async fn user_count(server: &TestServer) -> usize {
    let listed = server.get("/v1.0/users?$top=999").await.expect(200).body;
    listed["value"].as_array().expect("users").len()
}

/// The server still answers after a refused request.
async fn assert_alive(server: &TestServer) {
    server.get("/healthz").await.expect(200);
    server.get("/v1.0/users?$top=1").await.expect(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_and_long_filters_are_refused_on_every_endpoint_and_the_server_lives() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales", "mailEnabled": false, "mailNickname": "sales",
                   "securityEnabled": true, "groupTypes": []}),
        )
        .await
        .expect(201)
        .id();
    // The attack of the issue: ~2,150 parentheses (refused by length before any parsing), and a
    // short filter nested deeper than the limit (refused by depth), and too many clauses.
    let odata_filters = [
        nested(2_150, "displayName eq 'a'"),
        nested(40, "displayName eq 'a'"),
        format!("{}displayName eq 'a'", "not ".repeat(40)),
        vec!["displayName eq 'a'"; 101].join(" or "),
    ];
    let graph_paths = [
        "/v1.0/users".to_string(),
        "/v1.0/users/$count".to_string(),
        "/v1.0/groups".to_string(),
        "/v1.0/groups/$count".to_string(),
        format!("/v1.0/groups/{group}/members"),
        format!("/v1.0/groups/{group}/membersWithLicenseErrors"),
    ];
    for path in &graph_paths {
        for filter in &odata_filters {
            let reply = server
                .send(
                    server
                        .client
                        .get(server.url(path))
                        .header("ConsistencyLevel", "eventual")
                        .query(&[("$filter", filter)]),
                )
                .await;
            let message = reply.expect_error(400, "Request_BadRequest");
            assert!(
                ["4096", "32 levels", "100 comparisons"]
                    .iter()
                    .any(|limit| message.contains(limit)),
                "{path}: {message}"
            );
            assert_alive(&server).await;
        }
    }
    // The audit log has a parser of its own, bounded too.
    let audit = server
        .send(
            server
                .client
                .get(server.url("/v1.0/auditLogs/directoryAudits"))
                .query(&[("$filter", &odata_filters[0])]),
        )
        .await;
    assert_eq!(audit.status, 400, "{:#}", audit.body);
    assert_alive(&server).await;

    let scim_filters = [
        nested(2_150, "userName eq \"a\""),
        nested(40, "userName eq \"a\""),
        format!("{}userName eq \"a\"{}", "not (".repeat(20), ")".repeat(20)),
        vec!["userName eq \"a\""; 101].join(" or "),
    ];
    for resource in ["Users", "Groups"] {
        let attribute = if resource == "Users" {
            "userName"
        } else {
            "displayName"
        };
        for filter in &scim_filters {
            let filter = filter.replace("userName", attribute);
            let listed = server
                .send(
                    server
                        .client
                        .get(server.url(&format!("/scim/v2/{resource}")))
                        .query(&[("filter", &filter)]),
                )
                .await;
            assert_eq!(listed.status, 400, "{:#}", listed.body);
            assert_eq!(listed.body["scimType"], "invalidFilter", "{:#}", listed.body);
            let searched = server
                .post(
                    &format!("/scim/v2/{resource}/.search"),
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": filter}),
                )
                .await;
            assert_eq!(searched.status, 400, "{:#}", searched.body);
            let detail = searched.body["detail"].as_str().expect("detail");
            assert!(
                ["4096", "32 levels", "100 comparisons"]
                    .iter()
                    .any(|limit| detail.contains(limit)),
                "{detail}"
            );
            assert_alive(&server).await;
        }
    }
    // PATCH paths and attribute lists parse filters too.
    let user = server
        .post(
            "/scim/v2/Users",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "deep@contoso.com"}),
        )
        .await
        .expect(201);
    let user_id = user.body["id"].as_str().expect("id").to_string();
    for depth in [40, 2_150] {
        let path = format!("emails[{}].value", nested(depth, "type eq \"work\""));
        let patched = server
            .send(
                server
                    .client
                    .patch(server.url(&format!("/scim/v2/Users/{user_id}")))
                    .json(
                        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                                  "Operations": [{"op": "replace", "path": path, "value": "x@contoso.com"}]}),
                    ),
            )
            .await;
        assert_eq!(patched.status, 400, "{:#}", patched.body);
        assert_eq!(patched.body["scimType"], "invalidPath", "{:#}", patched.body);
        let selected = server
            .send(
                server
                    .client
                    .get(server.url(&format!("/scim/v2/Users/{user_id}")))
                    .query(&[("attributes", &path)]),
            )
            .await;
        assert_eq!(selected.status, 400, "{:#}", selected.body);
        assert_alive(&server).await;
    }
    // JSON bodies nested deeper than the limit are refused before any deserializer recurses.
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let graph = server
        .post_raw("/v1.0/users", "application/json", deep_json.clone())
        .await;
    assert!(graph
        .expect_error(400, "Request_BadRequest")
        .contains("32 levels"));
    let scim = server
        .post_raw("/scim/v2/Users", "application/scim+json", deep_json)
        .await;
    assert_eq!(scim.status, 400, "{:#}", scim.body);
    assert!(scim.body["detail"]
        .as_str()
        .expect("detail")
        .contains("32 levels"));
    assert_alive(&server).await;
    server.stop().await;
}

/// Reads until the server closes the connection (or `bound` passes): what was received, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(read)) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

fn short_timeouts(config: &mut ServerConfig) {
    config.connections.header_read_timeout = Duration::from_millis(300);
    config.connections.body_read_timeout = Duration::from_millis(300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_within_the_configured_timeouts() {
    let server = TestServer::start_with(TestDatabase::sqlite(), short_timeouts).await;
    let address = server.base.trim_start_matches("http://").to_string();
    // A bound far above the configured 300 ms: without the timeouts the connections stay open.
    let bound = Duration::from_secs(10);

    // A half-sent head.
    let mut half_head = TcpStream::connect(&address).await.expect("connect");
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\n")
        .await
        .expect("write");
    let (_, closed) = read_until_closed(&mut half_head, bound).await;
    assert!(closed, "a half-sent request head is closed");

    // A half-sent body: the request is answered 400 and the connection closed.
    let mut half_body = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /v1.0/users HTTP/1.1\r\nHost: licensd\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"displayName\"",
        server.token
    );
    half_body.write_all(head.as_bytes()).await.expect("write");
    let (answer, closed) = read_until_closed(&mut half_body, bound).await;
    assert!(closed, "a half-sent body is closed");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("not received within 300 ms"), "{answer}");

    // An idle keep-alive connection after a complete exchange.
    let mut idle = TcpStream::connect(&address).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\n\r\n")
        .await
        .expect("write");
    let (answer, closed) = read_until_closed(&mut idle, bound).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "an idle keep-alive connection is closed");

    assert_alive(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_until_one_is_free() {
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        config.connections.max_connections = 2;
        config.connections.header_read_timeout = Duration::from_secs(600);
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_string();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut holders = Vec::new();
    let mut held = 0;
    // Fill the cap with idle connections (the client's own pooled connection may hold a slot).
    while held < 2 {
        let mut stream = TcpStream::connect(&address).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\n\r\n")
            .await
            .expect("write");
        let mut buffer = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => {
                held += 1;
                holders.push(stream);
            }
            _ => {
                // Not served: the cap is already reached (a pooled client connection holds one).
                holders.push(stream);
                break;
            }
        }
    }
    let mut waiting = TcpStream::connect(&address).await.expect("connect");
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buffer)).await;
    assert!(
        early.is_err(),
        "a connection over the cap is not served while the cap is full"
    );
    // Freeing the slots lets it in.
    drop(holders);
    let (answer, _) = read_until_closed(&mut waiting, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_half_sent_request_ends_within_the_drain_period() {
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        // Timeouts far longer than the drain: only the drain period can end these connections.
        config.connections.header_read_timeout = Duration::from_secs(600);
        config.connections.body_read_timeout = Duration::from_secs(600);
        config.connections.shutdown_drain = Duration::from_millis(500);
    })
    .await;
    let address = server.base.trim_start_matches("http://").to_string();
    let mut half_head = TcpStream::connect(&address).await.expect("connect");
    half_head
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: licensd\r\n")
        .await
        .expect("write");
    let mut half_body = TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /v1.0/users HTTP/1.1\r\nHost: licensd\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{",
        server.token
    );
    half_body.write_all(head.as_bytes()).await.expect("write");
    // Let the server start reading both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::time::timeout(Duration::from_secs(15), server.stop())
        .await
        .expect("the server stops with half-sent requests open, after its drain period");
    let (_, closed) = read_until_closed(&mut half_body, Duration::from_secs(5)).await;
    assert!(closed, "the connection in flight was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_made_up_tokens_is_answered_429_while_a_valid_token_keeps_working() {
    // The default limit: 10 failed authentications per second per address, bursts of 50.
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        config.authentication_failure_limit = licensd_runtime::access::RateLimit {
            per_second: 10,
            burst: 50,
        };
    })
    .await;
    // The valid token is in use before the flood (so it is vetted and skips the address's bucket).
    server.get("/v1.0/users?$top=1").await.expect(200);
    let flood = reqwest::Client::new();
    let users = server.url("/v1.0/users?$top=1");
    let mut workers = Vec::new();
    for _ in 0..8 {
        let flood = flood.clone();
        let users = users.clone();
        workers.push(tokio::spawn(async move {
            let (mut refused, mut limited) = (0u32, 0u32);
            for _ in 0..625 {
                let bogus = licensd_runtime::access::generate_token_text().expect("token");
                let status = flood
                    .get(&users)
                    .bearer_auth(bogus)
                    .send()
                    .await
                    .expect("answered")
                    .status()
                    .as_u16();
                match status {
                    401 => refused += 1,
                    429 => limited += 1,
                    other => panic!("a made-up token got {other}"),
                }
            }
            (refused, limited)
        }));
    }
    let mut valid_answers = 0;
    while workers.iter().any(|worker| !worker.is_finished()) {
        server.get("/v1.0/users?$top=1").await.expect(200);
        valid_answers += 1;
    }
    let (mut refused, mut limited) = (0, 0);
    for worker in workers {
        let (worker_refused, worker_limited) = worker.await.expect("worker");
        refused += worker_refused;
        limited += worker_limited;
    }
    assert_eq!(refused + limited, 5_000);
    assert!(
        limited >= 4_000,
        "{limited} of 5,000 made-up tokens were answered 429 ({refused} 401)"
    );
    assert!(valid_answers > 0);
    // The answer of a limited request: made-up tokens until one is limited (the bucket refills
    // at 10 a second, so on a loaded machine the first after the flood may be let through).
    let mut limited_reply = None;
    for _ in 0..200 {
        let reply = server
            .send(
                flood
                    .get(&users)
                    .bearer_auth(licensd_runtime::access::generate_token_text().expect("token")),
            )
            .await;
        if reply.status == 429 {
            limited_reply = Some(reply);
            break;
        }
    }
    let limited_reply = limited_reply.expect("a burst of made-up tokens is limited");
    assert!(limited_reply.header("retry-after").is_some());
    assert!(limited_reply
        .expect_error(429, "TooManyRequests")
        .contains("this address"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_token_ids_are_remembered_without_asking_the_store_again() {
    // (The support turns the per-address limit off, so only the negative cache is at work.)
    let server = TestServer::start(TestDatabase::sqlite()).await;
    let store = std::sync::Arc::new(std::sync::Mutex::new(
        licensd_store::Store::open(&server.database_url).expect("open the store"),
    ));
    let tenant = store.lock().expect("lock").tenant_ids().expect("tenants")[0];
    let asked_before = licensd_runtime::access::generate_token_text().expect("token");
    let users = server.url("/v1.0/users?$top=1");
    let anonymous = reqwest::Client::new();
    let first = server
        .send(anonymous.get(&users).bearer_auth(&asked_before))
        .await;
    first.expect_error(401, "InvalidAuthenticationToken");
    // Both tokens now exist in the store; the one already found unknown is still refused from
    // the negative cache, the other one is accepted.
    let never_asked = licensd_runtime::access::generate_token_text().expect("token");
    for text in [&asked_before, &never_asked] {
        licensd_runtime::access::store_given_token(&store, tenant, text, "Created behind the server's back")
            .expect("store the token");
    }
    server
        .send(anonymous.get(&users).bearer_auth(&never_asked))
        .await
        .expect(200);
    server
        .send(anonymous.get(&users).bearer_auth(&asked_before))
        .await
        .expect_error(401, "InvalidAuthenticationToken");
    server.stop().await;
}

async fn oversized_fields_are_refused_on_graph_and_admin_and_nothing_is_stored(server: &TestServer) {
    let users_before = user_count(server).await;
    let refusals = [
        ("displayName", 257, 256),
        ("displayName", 1_000_000, 256),
        ("mailNickname", 65, 64),
        ("userPrincipalName", 114, 113),
    ];
    for (property, length, limit) in refusals {
        let mut body = json!({"accountEnabled": true, "displayName": "Adele", "mailNickname": "adele",
                              "userPrincipalName": "adele@contoso.com",
                              "passwordProfile": {"password": "x", "forceChangePasswordNextSignIn": true}});
        let value = if property == "userPrincipalName" {
            format!("{}@contoso.com", "a".repeat(length - "@contoso.com".len()))
        } else if length > 1_000 {
            "x".repeat(length)
        } else {
            "é".repeat(length)
        };
        body[property] = json!(value);
        let message = server
            .post("/v1.0/users", body)
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(
            message.contains(&format!("'{property}'")) && message.contains(&limit.to_string()),
            "{message}"
        );
    }
    assert_eq!(user_count(server).await, users_before);
    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales", "mailEnabled": false, "mailNickname": "sales",
                   "securityEnabled": true, "groupTypes": []}),
        )
        .await
        .expect(201)
        .id();
    let message = server
        .send(
            server
                .client
                .patch(server.url(&format!("/v1.0/groups/{group}")))
                .json(&json!({"description": "x".repeat(1_025)})),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        message.contains("'description'") && message.contains("1024"),
        "{message}"
    );
    let fetched = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert!(fetched["description"].is_null(), "{fetched:#}");
    // The admin API too: a token's display name.
    let message = server
        .post(
            "/licensd/v1/tokens",
            json!({"displayName": "t".repeat(300), "role": "GlobalReader"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("'displayName'"), "{message}");
}

async fn oversized_fields_are_refused_on_scim_and_nothing_is_stored(server: &TestServer) {
    let user_schema = "urn:ietf:params:scim:schemas:core:2.0:User";
    for body in [
        json!({"schemas": [user_schema], "userName": format!("{}@contoso.com", "a".repeat(110))}),
        json!({"schemas": [user_schema], "userName": "b@contoso.com", "displayName": "x".repeat(1_000_000)}),
        json!({"schemas": [user_schema], "userName": "c@contoso.com", "name": {"familyName": "x".repeat(65)}}),
    ] {
        let refused = server.post("/scim/v2/Users", body).await;
        assert_eq!(refused.status, 400, "{:#}", refused.body);
        assert_eq!(refused.body["scimType"], "invalidValue", "{:#}", refused.body);
        assert!(refused.body["detail"]
            .as_str()
            .expect("detail")
            .contains("at most"));
    }
    let listed = server.get("/scim/v2/Users").await.expect(200).body;
    assert_eq!(listed["totalResults"], 0, "{listed:#}");
    let created = server
        .post(
            "/scim/v2/Users",
            json!({"schemas": [user_schema], "userName": "d@contoso.com", "displayName": "D"}),
        )
        .await
        .expect(201);
    let id = created.body["id"].as_str().expect("id").to_string();
    let patched = server
        .send(
            server
                .client
                .patch(server.url(&format!("/scim/v2/Users/{id}")))
                .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                              "Operations": [{"op": "replace", "path": "displayName", "value": "y".repeat(257)}]})),
        )
        .await;
    assert_eq!(patched.status, 400, "{:#}", patched.body);
    assert!(patched.body["detail"]
        .as_str()
        .expect("detail")
        .contains("'displayName'"));
    let fetched = server.get(&format!("/scim/v2/Users/{id}")).await.expect(200).body;
    assert_eq!(fetched["displayName"], "D");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_cookie_is_no_api_credential_and_cross_site_console_posts_are_refused() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    let cookie = format!("licensd_session={}", server.token);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let count_before = user_count(&server).await;
    for path in ["/v1.0/users", "/licensd/v1/overview", "/scim/v2/Users"] {
        let refused = server
            .send(browser.get(server.url(path)).header("cookie", &cookie))
            .await;
        assert_eq!(refused.status, 401, "{path}: {:#}", refused.body);
    }
    // The forged request: cookie only, another origin, no content type.
    let forged = server
        .send(
            browser
                .post(server.url("/v1.0/users"))
                .header("cookie", &cookie)
                .header("origin", "https://evil.example")
                .body(
                    json!({"accountEnabled": true, "displayName": "Mallory", "mailNickname": "mallory",
                           "userPrincipalName": "mallory@contoso.com",
                           "passwordProfile": {"password": "x"}})
                    .to_string(),
                ),
        )
        .await;
    assert_eq!(forged.status, 401, "{:#}", forged.body);
    assert_eq!(user_count(&server).await, count_before);
    // The cookie still opens console pages.
    let page = server
        .send(browser.get(server.url("/")).header("cookie", &cookie))
        .await;
    assert_eq!(page.status, 200);
    // A console change from another site is refused; from the console itself it goes through.
    let host = server.base.trim_start_matches("http://").to_string();
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
    ] {
        let refused = server
            .send(
                browser
                    .post(server.url("/logout"))
                    .header("cookie", &cookie)
                    .header(name, value),
            )
            .await;
        assert_eq!(refused.status, 403, "{name}: {value}");
    }
    let same_origin = server
        .send(
            browser
                .post(server.url("/logout"))
                .header("cookie", &cookie)
                .header("origin", format!("http://{host}"))
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert!(
        same_origin.status == 303 || same_origin.status == 302 || same_origin.status == 200,
        "{}",
        same_origin.status
    );
    server.stop().await;
}

/// Runs `command`, returning whether it succeeded.
fn run(command: &str, arguments: &[&str]) -> bool {
    std::process::Command::new(command)
        .args(arguments)
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_reports_a_full_disk_and_recovers() {
    let mount = tempfile::tempdir().expect("mount point");
    let mount_path = mount.path().to_str().expect("path").to_string();
    if !run("mount", &["-t", "tmpfs", "-o", "size=8m", "tmpfs", &mount_path]) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: a tmpfs must be mountable for the full-disk test"
        );
        println!("skipped: cannot mount a tmpfs here (not root?); CI runs this test");
        return;
    }
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mount_path.clone());
    let database = TestDatabase::sqlite_in(mount.path());
    let server = TestServer::start(database).await;
    server.get("/readyz").await.expect(200);
    // Fill the file system.
    let filler = mount.path().join("filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
    let not_ready = server.get("/readyz").await;
    assert_eq!(not_ready.status, 503, "{:#}", not_ready.body);
    assert!(
        not_ready
            .body
            .as_str()
            .expect("text")
            .contains("cannot take writes"),
        "{:#}",
        not_ready.body
    );
    std::fs::remove_file(&filler).expect("free the disk");
    // Ready again once a write succeeds (the processor's lease renewal, every few milliseconds).
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "ready again once the disk has room");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
