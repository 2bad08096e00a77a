//! `/metrics` (issue 16): read with a Prometheus text parser, as Prometheus would scrape it —
//! per tenant on the API address (a token that reads the overview), every tenant and the HTTP
//! request figures on the `metrics-listen` address (no token).

use std::time::Duration;

use serde_json::json;

use crate::support::{client_with_token, on_both_backends, TestDatabase, TestServer, E3};

on_both_backends!(metrics_show_the_tenant_as_prometheus_reads_it);

/// Parses an exposition with `prometheus-parse`.
fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_string())))
        .expect("a Prometheus exposition")
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, wanted)| sample.labels.get(key) == Some(*wanted))
        })
        .map(|sample| match &sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => *value,
            other => panic!("{name} is not a plain value: {other:?}"),
        })
        .collect();
    assert_eq!(matching.len(), 1, "one sample {name} {labels:?} in the scrape");
    matching[0]
}

async fn fetch(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    let response = client.get(url).send().await.expect("answered");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, content_type, response.text().await.expect("a body"))
}

async fn metrics_show_the_tenant_as_prometheus_reads_it(server: &TestServer) {
    server.import_seed_products(5, 2, 5, 5).await;
    let group = server.create_group("Metrics staff").await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    for name in ["metrics1", "metrics2", "metrics3"] {
        let user = server.create_user(name, Some("US")).await;
        server.add_member(group, user).await;
    }
    server.settle().await;
    // The processor counts a step just after the step's states show, so the counter may trail
    // the settled states by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, text) = fetch(&server.client, &server.url("/metrics")).await;
        let evaluated = value(&parse(&text), "licensd_evaluated_users_total", &[]);
        if evaluated >= 3.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "evaluated_users_total stayed at {evaluated}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, content_type, text) = fetch(&server.client, &server.url("/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.ends_with("# EOF\n"), "{text}");
    let exposition = parse(&text);
    let e3 = [("sku_part_number", "ENTERPRISEPACK")];
    assert_eq!(value(&exposition, "licensd_seats_purchased", &e3), 2.0);
    assert_eq!(value(&exposition, "licensd_seats_consumed", &e3), 2.0);
    assert_eq!(value(&exposition, "licensd_seats_available", &e3), 0.0);
    assert_eq!(value(&exposition, "licensd_users_waiting_for_seats", &e3), 1.0);
    assert_eq!(
        value(
            &exposition,
            "licensd_license_errors",
            &[("error", "CountViolation")]
        ),
        1.0
    );
    assert_eq!(
        value(&exposition, "licensd_license_states", &[("status", "Active")]),
        2.0
    );
    assert_eq!(
        value(&exposition, "licensd_license_states", &[("status", "Error")]),
        1.0
    );
    assert_eq!(value(&exposition, "licensd_users_with_license_errors", &[]), 1.0);
    assert_eq!(value(&exposition, "licensd_users", &[]), 3.0);
    assert_eq!(value(&exposition, "licensd_queued_users", &[]), 0.0);
    assert_eq!(
        value(&exposition, "licensd_oldest_queued_user_wait_seconds", &[]),
        0.0
    );
    assert!(value(&exposition, "licensd_evaluated_users_total", &[]) >= 3.0);
    assert!(value(&exposition, "licensd_processing_steps_total", &[]) >= 1.0);
    // One tenant only, and no instance-wide HTTP figures on the tenant's address.
    let tenants: std::collections::BTreeSet<&String> = exposition
        .samples
        .iter()
        .filter_map(|sample| sample.labels.get("tenant").map(|_| &sample.metric))
        .collect();
    assert!(!tenants.is_empty());
    assert!(exposition
        .samples
        .iter()
        .all(|sample| !sample.metric.starts_with("licensd_http")));

    // A seat bought shows at once; the waiting user is then licensed by the processor.
    server
        .patch(&format!("/licensd/v1/skus/{E3}"), json!({"prepaidUnits": 3}))
        .await
        .expect(200);
    server.settle().await;
    let (_, _, text) = fetch(&server.client, &server.url("/metrics")).await;
    let exposition = parse(&text);
    assert_eq!(value(&exposition, "licensd_seats_consumed", &e3), 3.0);
    assert_eq!(value(&exposition, "licensd_users_waiting_for_seats", &e3), 0.0);

    // Reading needs a token that reads the overview.
    let anonymous = reqwest::Client::new();
    let (status, _, _) = scrape_status(&anonymous, &server.url("/metrics")).await;
    assert_eq!(status, 401);
    for (role, expected) in [("ReportsReader", 200), ("ProvisioningAgent", 403)] {
        let created = server
            .post("/licensd/v1/tokens", json!({"displayName": role, "role": role}))
            .await
            .expect(201);
        let token = created.body["secret"]
            .as_str()
            .expect("the token's text")
            .to_string();
        let (status, _, _) = scrape_status(&client_with_token(&token), &server.url("/metrics")).await;
        assert_eq!(status, expected, "{role}");
    }
}

async fn scrape_status(client: &reqwest::Client, url: &str) -> (u16, String, String) {
    fetch(client, url).await
}

/// The `metrics-listen` address: every tenant and the HTTP figures, by route template, no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_address_serves_every_tenant_and_request_figures_without_a_token() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let metrics_address = free.local_addr().expect("address");
    drop(free);
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        config.metrics_listen = Some(metrics_address);
    })
    .await;
    let user = server.create_user("scraped", Some("US")).await;
    server.get(&format!("/v1.0/users/{user}")).await.expect(200);
    server.get("/v1.0/users/not-a-user").await.expect(404);

    let anonymous = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let (status, _, text) = fetch(&anonymous, &format!("http://{metrics_address}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    let exposition = parse(&text);
    assert_eq!(value(&exposition, "licensd_users", &[]), 1.0);
    // prometheus-parse stops at braces inside label values (route templates), so the request
    // figures are read as lines here; tests/prometheus/run.sh parses the whole exposition with
    // the Prometheus project's own OpenMetrics parser (Python prometheus_client) in CI.
    for line in [
        r#"licensd_http_requests_total{method="GET",route="/v1.0/users/{id}",status="200"} 1"#,
        r#"licensd_http_requests_total{method="GET",route="/v1.0/users/{id}",status="404"} 1"#,
        r#"licensd_http_requests_total{method="POST",route="/v1.0/users",status="201"} 1"#,
    ] {
        assert!(
            text.lines().any(|text_line| text_line == line),
            "{line} in {text}"
        );
    }
    // How the instance caught up with other instances' writes (process-wide counters, which
    // other tests' instances in this process move too: only their presence is checked here;
    // durability::foreign_writes_are_caught_up_incrementally_not_reloaded_postgres checks them).
    assert!(value(&exposition, "licensd_catch_ups_total", &[("kind", "full_reload")]) >= 0.0);
    assert!(value(&exposition, "licensd_catch_ups_total", &[("kind", "incremental")]) >= 0.0);
    // Routes are labelled by template, never by the ids in the path.
    assert!(!text.contains(&user.to_string()), "{text}");
    assert!(
        text.contains("licensd_http_request_duration_seconds_bucket"),
        "a latency histogram: {text}"
    );
    server.stop().await;
}
