//! Absolute links (`@odata.nextLink`, `@odata.context`, `@odata.deltaLink`, `Location`): from
//! `--public-url` when set; `https` whenever the server serves TLS, on HTTP/1.1 too; and
//! `X-Forwarded-Proto`/`X-Forwarded-Host` believed only from a `--trusted-proxy`.

use serde_json::{json, Value};

use crate::support::{TestDatabase, TestServer};

async fn two_users_and_a_page(server: &TestServer, headers: &[(&str, &str)]) -> (Value, String) {
    server.create_user("first", Some("US")).await;
    let mut request = server.client.post(server.url("/v1.0/users")).json(&json!({
        "displayName": "second", "userPrincipalName": "second@contoso.com", "mailNickname": "second",
        "accountEnabled": true, "passwordProfile": {"password": "not stored"}
    }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let created = server.send(request).await.expect(201);
    let location = created.header("location").expect("a Location header");
    let page = server
        .get_with_headers("/v1.0/users?$top=1", headers)
        .await
        .expect(200)
        .body;
    (page, location)
}

fn assert_links_start_with(page: &Value, location: &str, origin: &str) {
    for link in [
        page["@odata.nextLink"].as_str().expect("nextLink"),
        page["@odata.context"].as_str().expect("context"),
        location,
    ] {
        assert!(
            link.starts_with(&format!("{origin}/v1.0/")),
            "{link} starts with {origin}"
        );
    }
}

async fn links_follow_the_configuration(database: TestDatabase, second: TestDatabase) {
    let forwarded = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "proxy.example.com"),
    ];
    // Anyone can send X-Forwarded-*: without a trusted proxy they are ignored.
    let server = TestServer::start(database).await;
    let (page, location) = two_users_and_a_page(&server, &forwarded).await;
    assert_links_start_with(&page, &location, &server.base);
    server.stop().await;

    let trusting = TestServer::start_with(second, |config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    })
    .await;
    let (page, location) = two_users_and_a_page(&trusting, &forwarded).await;
    assert_links_start_with(&page, &location, "https://proxy.example.com");
    trusting.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_only_from_trusted_proxies_on_sqlite() {
    links_follow_the_configuration(TestDatabase::sqlite(), TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_believed_only_from_trusted_proxies_on_postgres() {
    let (Some(first), Some(second)) = (
        TestDatabase::postgres("links_untrusted"),
        TestDatabase::postgres("links_trusted"),
    ) else {
        return;
    };
    links_follow_the_configuration(first, second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_url_builds_every_link() {
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        config.public_url = Some("https://licensd.example.com/directory".to_string());
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("address")];
    })
    .await;
    let (page, location) = two_users_and_a_page(&server, &[("X-Forwarded-Host", "proxy.example.com")]).await;
    assert_links_start_with(&page, &location, "https://licensd.example.com/directory");
    let delta = server.get("/v1.0/users/delta").await.expect(200).body;
    let delta_link = delta["@odata.deltaLink"].as_str().expect("deltaLink");
    assert!(
        delta_link.starts_with("https://licensd.example.com/directory/v1.0/users/delta?"),
        "{delta_link}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_links_are_https_on_http1() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let certificate = directory.path().join("cert.pem");
    let private_key = directory.path().join("key.pem");
    std::fs::write(&certificate, certified.cert.pem()).expect("write the certificate");
    std::fs::write(&private_key, certified.key_pair.serialize_pem()).expect("write the key");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let token = licensd_runtime::access::generate_token_text().expect("token");
    let mut config = licensd_server::ServerConfig::defaults(directory.path());
    config.listen = listener.local_addr().expect("address");
    config.bootstrap_token = Some(token.clone());
    config.rate_limit.per_second = 0;
    config.tls = Some(licensd_server::TlsFiles {
        certificate,
        private_key,
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(licensd_server::run(listener, config, async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .http1_only()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).expect("pem"))
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPS server did not become ready"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut location = String::new();
    for name in ["first", "second"] {
        let created = client
            .post(format!("{base}/v1.0/users"))
            .bearer_auth(&token)
            .json(
                &json!({"displayName": name, "userPrincipalName": format!("{name}@contoso.com"),
                          "mailNickname": name, "accountEnabled": true}),
            )
            .send()
            .await
            .expect("answer");
        assert_eq!(created.status(), 201);
        assert_eq!(created.version(), reqwest::Version::HTTP_11);
        location = created
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .expect("Location")
            .to_string();
    }
    let page: Value = client
        .get(format!("{base}/v1.0/users?$top=1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert_links_start_with(&page, &location, &base);
    let _ = stop.send(());
    server.await.expect("task").expect("the server stopped cleanly");
}
