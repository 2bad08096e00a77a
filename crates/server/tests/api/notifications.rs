//! Graph change notifications over real HTTP, with a real HTTP receiver on loopback: the
//! validation handshake on create (and a create refused when it fails), created / updated /
//! deleted notifications of users in Graph's shape with the `clientState`, a license change as
//! an update of the user, `groups/{id}/members` and `users/{id}` subscriptions, renewal and
//! enforced expiry, Graph's limits, the SSRF guard, and the delivery status of the admin API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use licensd_api_types::time::format_date_time;
use serde_json::{json, Value};

use crate::receiver::{Received, Receiver};
use crate::support::{on_both_backends, TestServer, E3};

on_both_backends!(
    the_handshake_precedes_creation_and_users_changes_are_notified,
    a_failed_handshake_or_a_refused_target_creates_nothing,
    subscriptions_are_renewed_and_expire,
    member_and_single_user_subscriptions_see_only_their_object,
    graph_limits_are_enforced,
);

fn now_milliseconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn in_minutes(minutes: i64) -> String {
    format_date_time(now_milliseconds() + minutes * 60_000)
}

/// Waits (at most 20 s) until `done` holds for what the receiver got; returns it.
async fn wait_until(
    receiver: &Arc<Receiver>,
    what: &str,
    done: impl Fn(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received = receiver.received();
        if done(&received) {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {received:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every notification (`value` entries) of the deliveries received, handshakes left out.
fn notifications(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .filter(|request| request.validation_token().is_none())
        .flat_map(|request| {
            let body: Value = serde_json::from_slice(&request.body).expect("a JSON notification");
            body["value"].as_array().expect("value").clone()
        })
        .collect()
}

fn has(notifications: &[Value], change_type: &str, resource: &str) -> bool {
    notifications
        .iter()
        .any(|notification| notification["changeType"] == change_type && notification["resource"] == resource)
}

async fn subscribe(server: &TestServer, receiver: &Receiver, resource: &str, change_type: &str) -> Value {
    server
        .post(
            "/v1.0/subscriptions",
            json!({
                "changeType": change_type,
                "notificationUrl": receiver.url("/notify"),
                "resource": resource,
                "expirationDateTime": in_minutes(60),
                "clientState": "secretClientValue",
            }),
        )
        .await
        .expect(201)
        .body
}

async fn the_handshake_precedes_creation_and_users_changes_are_notified(server: &TestServer) {
    let receiver = Arc::new(Receiver::start());
    let created = server
        .post(
            "/v1.0/subscriptions",
            json!({
                "changeType": "created,updated,deleted",
                "notificationUrl": receiver.url("/notify"),
                "resource": "users",
                "expirationDateTime": in_minutes(60),
                "clientState": "secretClientValue",
            }),
        )
        .await
        .expect(201);
    let subscription = created.body.clone();
    let subscription_id = subscription["id"].as_str().expect("id").to_string();
    assert_eq!(subscription["resource"], "users");
    assert_eq!(subscription["changeType"], "created,updated,deleted");
    assert_eq!(subscription["clientState"], "secretClientValue");
    assert_eq!(
        created.header("location"),
        Some(format!("{}/v1.0/subscriptions/{subscription_id}", server.base))
    );
    // The handshake came before the answer: a POST with a validationToken, as text/plain.
    let handshake = &receiver.received()[0];
    assert_eq!(handshake.method, "POST");
    assert!(
        handshake.target.starts_with("/notify?validationToken="),
        "{}",
        handshake.target
    );
    assert!(handshake.validation_token().is_some());
    let listed = server.get("/v1.0/subscriptions").await.expect(200).body;
    assert_eq!(listed["value"][0]["id"], subscription_id.as_str());
    server
        .get(&format!("/v1.0/subscriptions/{subscription_id}"))
        .await
        .expect(200);

    server.import_seed_products(5, 5, 0, 0).await;
    let user = server.create_user("adele", Some("US")).await;
    let resource = format!("Users/{user}");
    let received = wait_until(&receiver, "created", |received| {
        has(&notifications(received), "created", &resource)
    })
    .await;
    let notification = notifications(&received)
        .into_iter()
        .find(|notification| notification["changeType"] == "created")
        .expect("created");
    assert_eq!(notification["subscriptionId"], subscription_id.as_str());
    assert_eq!(notification["clientState"], "secretClientValue");
    assert_eq!(
        notification["resourceData"]["@odata.type"],
        "#Microsoft.Graph.User"
    );
    assert_eq!(notification["resourceData"]["@odata.id"], resource.as_str());
    assert_eq!(notification["resourceData"]["id"], user.to_string());
    assert!(notification["tenantId"]
        .as_str()
        .is_some_and(|tenant| !tenant.is_empty()));
    assert!(notification["subscriptionExpirationDateTime"].as_str().is_some());
    let delivery = received
        .iter()
        .find(|request| request.validation_token().is_none())
        .expect("a delivery");
    assert_eq!(delivery.header("content-type"), Some("application/json"));

    // A property change, then a license change: each an update.
    server
        .patch(&format!("/v1.0/users/{user}"), json!({"displayName": "Adele V"}))
        .await
        .expect(204);
    let updates = |received: &[Received]| {
        notifications(received)
            .iter()
            .filter(|notification| {
                notification["changeType"] == "updated" && notification["resource"] == resource.as_str()
            })
            .count()
    };
    wait_until(&receiver, "the property update", |received| {
        updates(received) >= 1
    })
    .await;
    let before = updates(&receiver.received());
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    wait_until(&receiver, "the license update", |received| {
        updates(received) > before
    })
    .await;

    server.delete(&format!("/v1.0/users/{user}")).await.expect(204);
    wait_until(&receiver, "deleted", |received| {
        has(&notifications(received), "deleted", &resource)
    })
    .await;

    // Delivery status: the admin API lists the subscription's deliveries, delivered (the last
    // one is recorded just after its receiver answered: wait for that).
    let deadline = Instant::now() + Duration::from_secs(10);
    let deliveries = loop {
        let deliveries = server
            .get(&format!("/licensd/v1/subscriptions/{subscription_id}/deliveries"))
            .await
            .expect(200)
            .body;
        let pending = deliveries["value"]
            .as_array()
            .is_some_and(|listed| listed.iter().any(|delivery| delivery["status"] == "pending"));
        if !pending || Instant::now() >= deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let listed = deliveries["value"].as_array().expect("deliveries");
    assert!(listed.len() >= 4, "{deliveries:#}");
    assert!(
        listed.iter().all(|delivery| delivery["status"] == "delivered"),
        "{deliveries:#}"
    );

    server
        .delete(&format!("/v1.0/subscriptions/{subscription_id}"))
        .await
        .expect(204);
    server
        .get(&format!("/v1.0/subscriptions/{subscription_id}"))
        .await
        .expect(404);
    server
        .delete(&format!("/v1.0/subscriptions/{subscription_id}"))
        .await
        .expect(404);
}

async fn a_failed_handshake_or_a_refused_target_creates_nothing(server: &TestServer) {
    let failing = Receiver::scripted(|_, _| 500);
    let message = server
        .post(
            "/v1.0/subscriptions",
            json!({
                "changeType": "updated",
                "notificationUrl": failing.url("/notify"),
                "resource": "users",
                "expirationDateTime": in_minutes(60),
            }),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("validation"), "{message}");
    assert_eq!(failing.received().len(), 1, "the handshake was tried");
    for refused in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/hook",
        "ftp://example.com/hook",
        "not a url",
    ] {
        let message = server
            .post(
                "/v1.0/subscriptions",
                json!({
                    "changeType": "updated",
                    "notificationUrl": refused,
                    "resource": "users",
                    "expirationDateTime": in_minutes(60),
                }),
            )
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains("notificationUrl"), "{refused}: {message}");
    }
    let listed = server.get("/v1.0/subscriptions").await.expect(200).body;
    assert_eq!(listed["value"], json!([]));
}

async fn subscriptions_are_renewed_and_expire(server: &TestServer) {
    let receiver = Arc::new(Receiver::start());
    let subscription = subscribe(server, &receiver, "users", "created,updated").await;
    let id = subscription["id"].as_str().expect("id").to_string();
    let renewed_to = in_minutes(120);
    let renewed = server
        .patch(
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": renewed_to}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(renewed["expirationDateTime"], renewed_to.as_str());
    let read = server
        .get(&format!("/v1.0/subscriptions/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(read["expirationDateTime"], renewed_to.as_str());
    // Beyond Graph's maximum, or in the past: refused, the expiry unchanged.
    server
        .patch(
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": in_minutes(41_761)}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": in_minutes(-1)}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    let read = server
        .get(&format!("/v1.0/subscriptions/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(read["expirationDateTime"], renewed_to.as_str());

    // Renewed to two seconds from now: notifications until then, none after.
    let soon = format_date_time(now_milliseconds() + 2_000);
    server
        .patch(
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": soon}),
        )
        .await
        .expect(200);
    let before = server.create_user("before", None).await;
    wait_until(&receiver, "the notification before expiry", |received| {
        has(&notifications(received), "created", &format!("Users/{before}"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    server.get(&format!("/v1.0/subscriptions/{id}")).await.expect(404);
    server
        .patch(
            &format!("/v1.0/subscriptions/{id}"),
            json!({"expirationDateTime": in_minutes(60)}),
        )
        .await
        .expect(404);
    let after = server.create_user("after", None).await;
    // A second subscription created after the expiry hears of the next user; the expired one
    // must not have heard of `after` by then.
    let witness = Arc::new(Receiver::start());
    subscribe(server, &witness, "users", "updated").await;
    server
        .patch(&format!("/v1.0/users/{after}"), json!({"displayName": "After"}))
        .await
        .expect(204);
    wait_until(&witness, "the witness's notification", |received| {
        !notifications(received).is_empty()
    })
    .await;
    let heard = notifications(&receiver.received());
    assert!(
        !heard
            .iter()
            .any(|notification| notification["resource"] == format!("Users/{after}")),
        "an expired subscription was notified: {heard:#?}"
    );
}

async fn member_and_single_user_subscriptions_see_only_their_object(server: &TestServer) {
    let first = server.create_user("first", None).await;
    let second = server.create_user("second", None).await;
    let group = server.create_group("Sales").await;
    let members = Arc::new(Receiver::start());
    subscribe(server, &members, &format!("groups/{group}/members"), "updated").await;
    let single = Arc::new(Receiver::start());
    subscribe(server, &single, &format!("users/{second}"), "updated").await;
    server.add_member(group, first).await;
    let received = wait_until(&members, "the membership change", |received| {
        !notifications(received).is_empty()
    })
    .await;
    let notification = &notifications(&received)[0];
    assert_eq!(notification["resource"], format!("Groups/{group}"));
    assert_eq!(notification["changeType"], "updated");
    assert_eq!(
        notification["resourceData"]["@odata.type"],
        "#Microsoft.Graph.Group"
    );
    assert_eq!(
        notification["resourceData"]["members@delta"],
        json!([{"id": first.to_string()}])
    );
    server
        .patch(&format!("/v1.0/users/{second}"), json!({"displayName": "Second"}))
        .await
        .expect(204);
    let received = wait_until(&single, "the single user's update", |received| {
        !notifications(received).is_empty()
    })
    .await;
    let heard = notifications(&received);
    assert!(
        heard
            .iter()
            .all(|notification| notification["resource"] == format!("Users/{second}")),
        "{heard:#?}"
    );
    assert!(
        !notifications(&single.received())
            .iter()
            .any(|notification| notification["resource"] == format!("Users/{first}")),
        "users/{{id}} heard of another user"
    );
}

async fn graph_limits_are_enforced(server: &TestServer) {
    let receiver = Receiver::start();
    let base = json!({
        "changeType": "updated",
        "notificationUrl": receiver.url("/notify"),
        "resource": "users",
        "expirationDateTime": in_minutes(60),
    });
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    for (body, expected) in [
        (with("resource", json!("me/messages")), "Resource"),
        (with("changeType", json!("moved")), "changeType"),
        (with("changeType", json!("updated,updated")), "changeType"),
        (with("expirationDateTime", json!(in_minutes(41_761))), "41760"),
        (with("expirationDateTime", json!(in_minutes(-5))), "past"),
        (
            with("expirationDateTime", json!("tomorrow")),
            "expirationDateTime",
        ),
        (with("clientState", json!("x".repeat(129))), "clientState"),
        (with("unknownProperty", json!(1)), "unknownProperty"),
    ] {
        let message = server
            .post("/v1.0/subscriptions", body)
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(expected), "{expected}: {message}");
    }
    server
        .post("/v1.0/subscriptions", with("includeResourceData", json!(true)))
        .await
        .expect_error(400, "Request_NotSupported");
    server
        .post(
            "/v1.0/subscriptions",
            with("resource", json!(format!("users/{}", uuid::Uuid::new_v4()))),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    // A `top` that is not a number from 1 to 500 is a JSON 400 on both delivery lists.
    for path in [
        "/licensd/v1/deliveries?top=null".to_string(),
        format!(
            "/licensd/v1/subscriptions/{}/deliveries?top=null",
            uuid::Uuid::new_v4()
        ),
        "/licensd/v1/deliveries?top=0".to_string(),
        "/licensd/v1/deliveries?top=501".to_string(),
    ] {
        let message = server.get(&path).await.expect_error(400, "Request_BadRequest");
        assert!(message.contains("top"), "{path}: {message}");
    }
    // Nothing was sent: every refusal came before the handshake.
    assert!(receiver.received().is_empty());
    let listed = server.get("/v1.0/subscriptions").await.expect(200).body;
    assert_eq!(listed["value"], json!([]));
}

async fn start_failing_fast(database: crate::support::TestDatabase) -> TestServer {
    TestServer::start_with(database, |config| {
        config.notifications.retry_base = Duration::from_millis(20);
        config.notifications.retry_max = Duration::from_millis(40);
        config.notifications.max_attempts = 2;
        config.notifications.removal_after_abandoned = 2;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_told_missed_then_removed_sqlite() {
    let server = start_failing_fast(crate::support::TestDatabase::sqlite()).await;
    a_failing_endpoint_is_told_missed_then_removed(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_told_missed_then_removed_postgres() {
    let Some(database) = crate::support::TestDatabase::postgres("lifecycle_removed") else {
        return;
    };
    let server = start_failing_fast(database).await;
    a_failing_endpoint_is_told_missed_then_removed(&server).await;
    server.stop().await;
}

/// Notifications to an endpoint that answers only the handshake are abandoned after their last
/// attempt: each sends `missed` to the lifecycle endpoint, and the second in a row removes the
/// subscription (`subscriptionRemoved`); it is gone from Graph's list, shown removed by the
/// admin API, and hears of nothing more.
async fn a_failing_endpoint_is_told_missed_then_removed(server: &TestServer) {
    let failing = Arc::new(Receiver::scripted(|request, _| {
        if request.validation_token().is_some() {
            200
        } else {
            500
        }
    }));
    let lifecycle = Arc::new(Receiver::start());
    let subscription = server
        .post(
            "/v1.0/subscriptions",
            json!({
                "changeType": "created",
                "notificationUrl": failing.url("/notify"),
                "lifecycleNotificationUrl": lifecycle.url("/lifecycle"),
                "resource": "users",
                "expirationDateTime": in_minutes(60),
                "clientState": "lifecycle-state",
            }),
        )
        .await
        .expect(201)
        .body;
    let id = subscription["id"].as_str().expect("id").to_string();
    // Both handshakes happened.
    assert_eq!(failing.received().len(), 1);
    assert_eq!(lifecycle.received().len(), 1);
    server.create_user("one", None).await;
    let events = |received: &[Received]| -> Vec<String> {
        notifications(received)
            .iter()
            .map(|event| event["lifecycleEvent"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    wait_until(&lifecycle, "missed", |received| {
        events(received).contains(&"missed".to_string())
    })
    .await;
    server.create_user("two", None).await;
    let received = wait_until(&lifecycle, "subscriptionRemoved", |received| {
        events(received).contains(&"subscriptionRemoved".to_string())
    })
    .await;
    let removed = notifications(&received)
        .into_iter()
        .find(|event| event["lifecycleEvent"] == "subscriptionRemoved")
        .expect("subscriptionRemoved");
    assert_eq!(removed["subscriptionId"], id.as_str());
    assert_eq!(removed["clientState"], "lifecycle-state");
    assert!(removed["tenantId"].as_str().is_some());
    // Two attempts per notification, no more.
    assert_eq!(failing.received().len(), 1 + 2 * 2);
    server.get(&format!("/v1.0/subscriptions/{id}")).await.expect(404);
    let statuses = server.get("/licensd/v1/subscriptions").await.expect(200).body;
    assert_eq!(statuses["value"][0]["status"], "removed", "{statuses:#}");
    let deliveries = server
        .get(&format!("/licensd/v1/subscriptions/{id}/deliveries"))
        .await
        .expect(200)
        .body;
    let abandoned = deliveries["value"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|delivery| delivery["ownerKind"] == "graph-subscription")
        .inspect(|delivery| {
            assert_eq!(delivery["status"], "abandoned");
            assert_eq!(delivery["attempts"], 2);
            assert_eq!(delivery["lastStatusCode"], 500);
        })
        .count();
    assert_eq!(abandoned, 2, "{deliveries:#}");
    server.create_user("three", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing.received().len(), 5, "a removed subscription was notified");
    // The console's notifications page shows the same.
    let page = reqwest::Client::new()
        .get(format!("{}/notifications", server.base))
        .header("Cookie", format!("licensd_session={}", server.token))
        .send()
        .await
        .expect("the console page");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(&failing.url("/notify")), "{html}");
    assert!(html.contains(">removed<"), "{html}");
    assert!(html.contains(r#"data-status="abandoned""#), "{html}");
    assert!(
        html.contains(r#"href="/notifications""#),
        "the navigation links the page: {html}"
    );
}

/// The value of the sample whose line starts with `series` (name and labels as exposed).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in {text}"))
}

/// `/metrics` (on `metrics-listen`) counts deliveries, failed attempts and notifications
/// delivered, and the pending deliveries. The counters are the process's (other tests in this
/// binary move them too), so each is read before and after this test's own deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_and_failures_are_in_the_metrics() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let metrics_address = free.local_addr().expect("address");
    drop(free);
    let server = TestServer::start_with(crate::support::TestDatabase::sqlite(), |config| {
        config.metrics_listen = Some(metrics_address);
        config.notifications.retry_base = Duration::from_millis(20);
    })
    .await;
    let client = reqwest::Client::new();
    let scrape = || async {
        client
            .get(format!("http://{metrics_address}/metrics"))
            .send()
            .await
            .expect("scrape")
            .text()
            .await
            .expect("text")
    };
    let delivered = r#"licensd_deliveries_total{kind="graph_change",outcome="delivered"}"#;
    let failed = r#"licensd_deliveries_total{kind="graph_change",outcome="failed_attempt"}"#;
    let items = r#"licensd_notifications_delivered_total{kind="graph_change"}"#;
    let before = scrape().await;
    assert_eq!(sample(&before, "licensd_deliveries_pending"), 0.0);
    assert_eq!(sample(&before, "licensd_change_events_pending"), 0.0);
    // Fails twice, then accepts.
    let receiver = Arc::new(Receiver::scripted(|request, index| {
        if request.validation_token().is_some() {
            200
        } else if index < 3 {
            503
        } else {
            202
        }
    }));
    subscribe(&server, &receiver, "users", "created").await;
    server.create_user("counted", None).await;
    wait_until(&receiver, "the accepted delivery", |received| received.len() >= 4).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = scrape().await;
        if sample(&after, delivered) >= sample(&before, delivered) + 1.0 {
            assert!(sample(&after, failed) >= sample(&before, failed) + 2.0, "{after}");
            assert!(sample(&after, items) >= sample(&before, items) + 1.0, "{after}");
            // The write's change record was fanned out (it is a delivery now).
            assert_eq!(sample(&after, "licensd_change_events_pending"), 0.0, "{after}");
            break;
        }
        assert!(Instant::now() < deadline, "the delivery was not counted: {after}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}
