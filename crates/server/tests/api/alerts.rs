//! License alerts end to end: rules created through `/licensd/v1/alertRules`, changes made
//! through the API, and the alerts received by a real HTTP receiver on the loopback — once per
//! transition (entering an error, leaving it, a seat threshold crossed upwards), one digest for
//! a burst, in plain JSON, Slack and Teams shapes — on SQLite and PostgreSQL. Bad rules are
//! refused with a 400 naming the field, and nothing is stored. A reclamation policy's run
//! delivers one alert naming the seats it gave a notice (not repeated by later runs while the
//! notices stand) and one naming the seats it reclaimed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

use crate::reclamation::{age_notices, now_milliseconds, DAY};
use crate::support::{TestDatabase, TestServer, E1, E3};

/// What the receiver got: path, body, and the `X-Licensd-Alert-Id` header.
type Received = (String, Value, Option<String>);

/// A webhook receiver on the loopback: every POST body, by path, in arrival order.
struct Receiver {
    base: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let store = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(
                move |axum::extract::Path(path): axum::extract::Path<String>,
                      headers: axum::http::HeaderMap,
                      body: axum::body::Bytes| {
                    let store = Arc::clone(&store);
                    async move {
                        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        let alert_id = headers
                            .get("x-licensd-alert-id")
                            .and_then(|value| value.to_str().ok())
                            .map(str::to_string);
                        store.lock().unwrap().push((path, value, alert_id));
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            base: format!("http://{address}"),
            received,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }

    fn at(&self, path: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _, _)| at == path)
            .map(|(_, body, _)| body.clone())
            .collect()
    }

    /// The `X-Licensd-Alert-Id` headers `path` received.
    fn alert_ids(&self, path: &str) -> Vec<Option<String>> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _, _)| at == path)
            .map(|(_, _, alert_id)| alert_id.clone())
            .collect()
    }

    /// Waits (at most 30 s) until `path` received `count` bodies, then a little longer to catch
    /// extra ones.
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.at(path).len() < count {
            assert!(
                Instant::now() < deadline,
                "{path} received {} of {count} alerts: {:#?}",
                self.at(path).len(),
                self.at(path)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.at(path)
    }
}

async fn start(database: TestDatabase) -> TestServer {
    TestServer::start_with(database, |config| {
        config.notifications.retry_base = Duration::from_millis(50);
    })
    .await
}

macro_rules! on_both_databases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let server = super::start(super::TestDatabase::sqlite()).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(database) = super::TestDatabase::postgres(stringify!($case)) else {
                        return;
                    };
                    let server = super::start(database).await;
                    super::$case(&server).await;
                    server.stop().await;
                }
            )*
        }
    };
}

on_both_databases!(
    error_rules_fire_once_per_transition_with_one_digest_per_burst,
    a_seat_rule_fires_when_crossing_up_and_rearms_below,
    bad_rules_are_refused_naming_the_field_and_nothing_is_stored,
    reclamation_rules_tell_of_notices_once_and_of_seats_reclaimed,
);

async fn create_rule(server: &TestServer, rule: Value) -> Uuid {
    server.post("/licensd/v1/alertRules", rule).await.expect(201).id()
}

/// Creates `count` users (with a usage location) and adds them to `group`, 20 per `$batch`.
async fn create_members(server: &TestServer, group: Uuid, count: usize) -> Vec<Uuid> {
    let mut users = Vec::new();
    let names: Vec<String> = (0..count).map(|index| format!("member{index:03}")).collect();
    for chunk in names.chunks(20) {
        let requests: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(index, name)| {
                json!({"id": index.to_string(), "method": "POST", "url": "/users",
                "headers": {"Content-Type": "application/json"},
                "body": {
                    "displayName": name, "userPrincipalName": format!("{name}@contoso.com"),
                    "mailNickname": name, "usageLocation": "US", "accountEnabled": true,
                    "passwordProfile": {"password": "not stored"},
                }})
            })
            .collect();
        let answer = server
            .post("/v1.0/$batch", json!({"requests": requests}))
            .await
            .expect(200)
            .body;
        let created: Vec<Uuid> = answer["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|response| {
                assert_eq!(response["status"], 201, "{response:#}");
                Uuid::parse_str(response["body"]["id"].as_str().unwrap()).unwrap()
            })
            .collect();
        let requests: Vec<Value> = created
            .iter()
            .enumerate()
            .map(|(index, user)| {
                json!({"id": index.to_string(), "method": "POST", "url": format!("/groups/{group}/members/$ref"),
                    "headers": {"Content-Type": "application/json"},
                    "body": {"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}})
            })
            .collect();
        let answer = server
            .post("/v1.0/$batch", json!({"requests": requests}))
            .await
            .expect(200)
            .body;
        for response in answer["responses"].as_array().unwrap() {
            assert_eq!(response["status"], 204, "{response:#}");
        }
        users.extend(created);
    }
    users
}

async fn error_rules_fire_once_per_transition_with_one_digest_per_burst(server: &TestServer) {
    let receiver = Receiver::start().await;
    // No E3 seat at all: every member of the group falls into CountViolation.
    server.import_seed_products(0, 0, 0, 0).await;
    let group = server.create_group("Sales").await;
    let entered = create_rule(
        server,
        json!({"displayName": "Sales without a seat", "condition": "licenseErrorEntered",
            "errorKinds": ["CountViolation"], "groupId": group,
            "webhookUrl": receiver.url("entered"), "format": "json", "digestWindowSeconds": 0}),
    )
    .await;
    create_rule(
        server,
        json!({"displayName": "Errors resolved", "condition": "licenseErrorLeft",
            "webhookUrl": receiver.url("left"), "format": "slack", "digestWindowSeconds": 0}),
    )
    .await;
    // Another kind of error only: never fires here.
    create_rule(
        server,
        json!({"displayName": "Location problems", "condition": "licenseErrorEntered",
            "errorKinds": ["ProhibitedInUsageLocationViolation"],
            "webhookUrl": receiver.url("location"), "format": "teams", "digestWindowSeconds": 0}),
    )
    .await;
    let users = create_members(server, group, 200).await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    server.settle().await;

    // One change put 200 users into CountViolation: one message, with the count and ten users.
    let messages = receiver.wait_for("entered", 1).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let alert = &messages[0];
    assert_eq!(alert["ruleId"], entered.to_string());
    assert_eq!(alert["ruleName"], "Sales without a seat");
    assert_eq!(alert["condition"], "licenseErrorEntered");
    assert_eq!(alert["count"], 200);
    assert!(alert["summary"].as_str().unwrap().contains("200"), "{alert:#}");
    let named = alert["users"].as_array().unwrap();
    assert_eq!(named.len(), 10);
    for user in named {
        assert_eq!(user["error"], "CountViolation");
        assert_eq!(user["skuPartNumber"], "ENTERPRISEPACK");
        assert_eq!(user["groupId"], group.to_string());
        let id = Uuid::parse_str(user["userId"].as_str().unwrap()).unwrap();
        assert!(users.contains(&id));
    }
    assert!(alert["alertId"].as_str().is_some_and(|id| !id.is_empty()));
    // The same id in the header, for receivers that drop retried deliveries.
    assert_eq!(
        receiver.alert_ids("entered"),
        vec![alert["alertId"].as_str().map(str::to_string)]
    );

    // Staying in error fires nothing: the group is processed again, the users stay in error.
    server
        .post_empty(&format!("/v1.0/groups/{group}/reprocessLicenseAssignment"))
        .await;
    server.settle().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.at("entered").len(), 1);
    assert!(receiver.at("left").is_empty());

    // Seats bought: every user leaves the error, the leave rule fires once, as a Slack message.
    server
        .patch(&format!("/licensd/v1/skus/{E3}"), json!({"prepaidUnits": 200}))
        .await
        .expect(200);
    server.settle().await;
    let left = receiver.wait_for("left", 1).await;
    assert_eq!(left.len(), 1, "{left:#?}");
    let slack = &left[0];
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.starts_with("Errors resolved: 200 license assignments left"),
        "{text}"
    );
    let blocks = slack["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(blocks[1]["text"]["text"]
        .as_str()
        .unwrap()
        .contains("… and 190 more"));
    assert_eq!(blocks.last().unwrap()["type"], "context");
    assert_eq!(receiver.at("entered").len(), 1);
    assert!(receiver.at("location").is_empty());
}

async fn assign(server: &TestServer, user: Uuid, sku: &str) {
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []}),
        )
        .await
        .expect(200);
}

async fn unassign(server: &TestServer, user: Uuid, sku: &str) {
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [sku]}),
        )
        .await
        .expect(200);
}

async fn a_seat_rule_fires_when_crossing_up_and_rearms_below(server: &TestServer) {
    let receiver = Receiver::start().await;
    server.import_seed_products(10, 0, 0, 0).await;
    create_rule(
        server,
        json!({"displayName": "E1 seats low", "condition": "seats", "skuId": E1,
            "threshold": "percentUsed", "percent": 90,
            "webhookUrl": receiver.url("seats"), "format": "teams"}),
    )
    .await;
    let mut users = Vec::new();
    for index in 0..10 {
        users.push(server.create_user(&format!("seat{index}"), Some("US")).await);
    }
    // 8 of 10: below; the 9th crosses 90 %; the 10th stays above.
    for user in &users[..10] {
        assign(server, *user, E1).await;
    }
    let messages = receiver.wait_for("seats", 1).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let teams = &messages[0];
    assert_eq!(teams["type"], "message");
    let attachments = teams["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["body"][0]["text"], "E1 seats low");
    assert_eq!(
        card["body"][1]["text"],
        "STANDARDPACK now has 90 % of its seats used"
    );
    assert!(card["body"][2]["text"]
        .as_str()
        .unwrap()
        .contains("STANDARDPACK: 9 of 10 seats used"));
    // Down to 8 re-arms it; up to 9 again fires again.
    unassign(server, users[9], E1).await;
    unassign(server, users[8], E1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.at("seats").len(), 1);
    assign(server, users[8], E1).await;
    let messages = receiver.wait_for("seats", 2).await;
    assert_eq!(messages.len(), 2, "{messages:#?}");
}

async fn bad_rules_are_refused_naming_the_field_and_nothing_is_stored(server: &TestServer) {
    server.import_seed_products(1, 0, 0, 0).await;
    let good = json!({"displayName": "ok", "condition": "licenseErrorEntered",
        "webhookUrl": "https://hooks.example.com/x"});
    let cases: Vec<(&str, Value)> = vec![
        ("condition", json!({"condition": "sometimes"})),
        ("displayName", json!({"displayName": "  "})),
        ("webhookUrl", json!({"webhookUrl": "ftp://example.com/hook"})),
        (
            "webhookUrl",
            json!({"webhookUrl": "https://user:secret@hooks.example.com/x"}),
        ),
        (
            "webhookUrl",
            json!({"webhookUrl": "http://169.254.169.254/latest"}),
        ),
        ("format", json!({"format": "discord"})),
        ("errorKinds", json!({"errorKinds": ["SeatsGone"]})),
        ("threshold", json!({"condition": "seats"})),
        ("threshold", json!({"condition": "seats", "threshold": "half"})),
        (
            "percent",
            json!({"condition": "seats", "threshold": "percentUsed"}),
        ),
        (
            "percent",
            json!({"condition": "seats", "threshold": "percentUsed", "percent": 150}),
        ),
        ("percent", json!({"percent": 50})),
        ("days", json!({"condition": "subscriptionEnding"})),
        ("days", json!({"condition": "subscriptionEnding", "days": 0})),
        ("seconds", json!({"condition": "processingLag", "seconds": 0})),
        (
            "errorKinds",
            json!({"condition": "processingLag", "seconds": 60, "errorKinds": ["CountViolation"]}),
        ),
        ("digestWindowSeconds", json!({"digestWindowSeconds": 86_401})),
        (
            "digestWindowSeconds",
            json!({"condition": "seats", "threshold": "noneAvailable", "digestWindowSeconds": 60}),
        ),
    ];
    for (field, change) in cases {
        let mut body = good.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let message = server
            .post("/licensd/v1/alertRules", body.clone())
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(field), "{field}: {message} ({body})");
    }
    // A group or product the tenant does not have: 404, naming the field.
    for (field, change) in [
        ("groupId", json!({"groupId": Uuid::new_v4()})),
        ("skuId", json!({"skuId": Uuid::new_v4()})),
    ] {
        let mut body = good.clone();
        for (key, value) in change.as_object().unwrap() {
            body[key] = value.clone();
        }
        let message = server
            .post("/licensd/v1/alertRules", body.clone())
            .await
            .expect_error(404, "Request_ResourceNotFound");
        assert!(message.contains(field), "{field}: {message} ({body})");
    }
    // An unknown property is refused too.
    let mut unknown = good.clone();
    unknown["channel"] = json!("#licensing");
    let message = server
        .post("/licensd/v1/alertRules", unknown)
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("channel"), "{message}");
    assert_eq!(
        server.get("/licensd/v1/alertRules").await.expect(200).body["value"],
        json!([])
    );
    // The good one is stored, read back, audited and removed.
    let id = create_rule(server, good).await;
    let rule = server
        .get(&format!("/licensd/v1/alertRules/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(rule["condition"], "licenseErrorEntered");
    assert_eq!(rule["format"], "json");
    assert_eq!(rule["errorKinds"], json!([]));
    // An error rule digests a minute of matches unless told otherwise.
    assert_eq!(rule["digestWindowSeconds"], 60);
    server
        .delete(&format!("/licensd/v1/alertRules/{id}"))
        .await
        .expect(204);
    server
        .delete(&format!("/licensd/v1/alertRules/{id}"))
        .await
        .expect(404);
    let audit = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=category eq 'AlertManagement'")
        .await
        .expect(200)
        .body;
    let activities: Vec<&str> = audit["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["activityDisplayName"].as_str().unwrap())
        .collect();
    assert_eq!(activities, vec!["Delete alert rule", "Add alert rule"]);
    // A whole number written with a zero fraction is an integer (as JSON Schema counts it).
    let id = create_rule(
        server,
        json!({"displayName": "ninety", "condition": "seats", "threshold": "percentUsed",
            "percent": 90.0, "webhookUrl": "https://hooks.example.com/x"}),
    )
    .await;
    let rule = server
        .get(&format!("/licensd/v1/alertRules/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(rule["percent"], 90);
    // Seat rules send at once: no window.
    assert_eq!(rule["digestWindowSeconds"], 0);
}

/// Rules stay fresh on every instance: a rule added through one instance fires for a change made
/// through another (which heard of it through PostgreSQL's NOTIFY).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_added_on_one_instance_fires_for_changes_through_another_postgres() {
    let Some(database) = TestDatabase::postgres("alert_rules_on_two_instances") else {
        return;
    };
    let first = start(database).await;
    let second = first.start_another().await;
    let receiver = Receiver::start().await;
    first.import_seed_products(2, 0, 0, 0).await;
    create_rule(
        &first,
        json!({"displayName": "E1 full", "condition": "seats", "skuId": E1,
            "threshold": "noneAvailable", "webhookUrl": receiver.url("full")}),
    )
    .await;
    let users = [
        second.create_user("one", Some("US")).await,
        second.create_user("two", Some("US")).await,
    ];
    // Within the bound of a lost notice (about a second), the second instance knows the rule.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assign(&second, users[0], E1).await;
    assign(&second, users[1], E1).await;
    let messages = receiver.wait_for("full", 1).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    assert_eq!(messages[0]["condition"], "seats");
    assert_eq!(messages[0]["products"][0]["consumedUnits"], 2);
    second.stop().await;
    first.stop().await;
}

/// Runs a reclamation policy for real.
async fn run_policy(server: &TestServer, policy: Uuid) -> Value {
    server
        .post(
            &format!("/licensd/v1/reclamationPolicies/{policy}/run"),
            json!({"dryRun": false}),
        )
        .await
        .expect(200)
        .body
}

async fn reclamation_rules_tell_of_notices_once_and_of_seats_reclaimed(server: &TestServer) {
    let receiver = Receiver::start().await;
    server.import_seed_products(10, 10, 0, 0).await;
    // Three leavers with a direct E3, one stayer with a direct E3, one leaver with E1 only.
    let mut leavers = Vec::new();
    for number in 0..3 {
        let user = server.create_user(&format!("leaver{number}"), Some("US")).await;
        assign(server, user, E3).await;
        leavers.push(user);
    }
    let stayer = server.create_user("stayer", Some("US")).await;
    assign(server, stayer, E3).await;
    let e1_leaver = server.create_user("e1leaver", Some("US")).await;
    assign(server, e1_leaver, E1).await;
    let yesterday = licensd_api_types::time::format_date_time(now_milliseconds() - DAY);
    server
        .post(
            "/licensd/v1/activity",
            json!({"value": [
                {"id": "leaver0@contoso.com", "employeeLeaveDateTime": yesterday},
                {"id": "leaver1@contoso.com", "employeeLeaveDateTime": yesterday},
                {"id": "leaver2@contoso.com", "employeeLeaveDateTime": yesterday},
                {"id": "e1leaver@contoso.com", "employeeLeaveDateTime": yesterday},
            ]}),
        )
        .await
        .expect(200);
    server.settle().await;
    // Disabled: only the runs of this test act (the background leaves it alone).
    let policy = server
        .post(
            "/licensd/v1/reclamationPolicies",
            json!({"displayName": "Leavers' E3", "reason": "left", "skuId": E3,
                "noticeDays": 14, "enabled": false}),
        )
        .await
        .expect(201)
        .id();

    // Bad reclamation rules: the field named, nothing stored.
    let rules_before = server.get("/licensd/v1/alertRules").await.expect(200).body;
    for (body, status, named) in [
        (
            json!({"displayName": "x", "condition": "reclamationNoticed", "threshold": "noneAvailable",
                "webhookUrl": receiver.url("bad")}),
            400,
            "threshold",
        ),
        (
            json!({"displayName": "x", "condition": "reclamationActed", "groupId": Uuid::new_v4(),
                "webhookUrl": receiver.url("bad")}),
            400,
            "groupId",
        ),
        (
            json!({"displayName": "x", "condition": "seats", "threshold": "noneAvailable",
                "policyId": policy, "webhookUrl": receiver.url("bad")}),
            400,
            "policyId",
        ),
        (
            json!({"displayName": "x", "condition": "reclamationNoticed", "policyId": Uuid::new_v4(),
                "webhookUrl": receiver.url("bad")}),
            404,
            "policyId",
        ),
    ] {
        let reply = server
            .post("/licensd/v1/alertRules", body.clone())
            .await
            .expect(status);
        let message = reply.body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(message.contains(named), "{body}: {message}");
    }
    assert_eq!(
        server.get("/licensd/v1/alertRules").await.expect(200).body,
        rules_before
    );

    let noticed = create_rule(
        server,
        json!({"displayName": "Seats about to be reclaimed", "condition": "reclamationNoticed",
            "policyId": policy, "webhookUrl": receiver.url("noticed"), "format": "json"}),
    )
    .await;
    create_rule(
        server,
        json!({"displayName": "Seats reclaimed", "condition": "reclamationActed",
            "webhookUrl": receiver.url("acted"), "format": "slack"}),
    )
    .await;
    // Another product: never fires here.
    create_rule(
        server,
        json!({"displayName": "E1 notices", "condition": "reclamationNoticed", "skuId": E1,
            "webhookUrl": receiver.url("e1"), "format": "teams"}),
    )
    .await;
    let listed = server
        .get(&format!("/licensd/v1/alertRules/{noticed}"))
        .await
        .expect(200)
        .body;
    assert_eq!(listed["condition"], "reclamationNoticed");
    assert_eq!(listed["policyId"], policy.to_string());

    // A dry run tells nobody.
    server
        .post(
            &format!("/licensd/v1/reclamationPolicies/{policy}/run"),
            json!({"dryRun": true}),
        )
        .await
        .expect(200);
    // The first run gives three notices: one alert naming the three leavers and the date.
    let ran_at = now_milliseconds();
    let run = run_policy(server, policy).await;
    assert_eq!(run["pending"], 3, "{run:#}");
    let messages = receiver.wait_for("noticed", 1).await;
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let alert = &messages[0];
    assert_eq!(alert["condition"], "reclamationNoticed");
    assert_eq!(alert["ruleId"], noticed.to_string());
    assert_eq!(alert["count"], 3);
    assert!(alert["users"].as_array().unwrap().is_empty());
    let mut named: Vec<String> = alert["reclamations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|seat| {
            assert_eq!(seat["policyId"], policy.to_string());
            assert_eq!(seat["policyName"], "Leavers' E3");
            assert_eq!(seat["skuPartNumber"], "ENTERPRISEPACK");
            assert_eq!(seat["reason"], "left");
            seat["userPrincipalName"].as_str().unwrap().to_string()
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            "leaver0@contoso.com",
            "leaver1@contoso.com",
            "leaver2@contoso.com"
        ]
    );
    let action_date = licensd_api_types::time::format_date_time(ran_at + 14 * DAY)[..10].to_string();
    assert!(
        alert["reclamations"][0]["actionDateTime"]
            .as_str()
            .unwrap()
            .starts_with(&action_date),
        "{alert:#}"
    );
    let summary = alert["summary"].as_str().unwrap();
    assert!(
        summary.contains("3 seats") && summary.contains(&action_date),
        "{summary}"
    );

    // A second run: the notices stand, nobody is told again.
    let run = run_policy(server, policy).await;
    assert_eq!(run["pending"], 3, "{run:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.at("noticed").len(), 1);
    assert!(receiver.at("acted").is_empty());

    // Exempting a leaver withdraws the notice; the notice period passes; the run reclaims the
    // other two: one Slack message naming them, and still no second notice alert.
    server
        .put(
            &format!(
                "/licensd/v1/reclamationPolicies/{policy}/exemptions/{}",
                leavers[2]
            ),
            json!({}),
        )
        .await
        .expect(200);
    age_notices(server, policy, 15).await;
    let run = run_policy(server, policy).await;
    assert_eq!(run["reclaimed"], 2, "{run:#}");
    server.settle().await;
    let acted = receiver.wait_for("acted", 1).await;
    assert_eq!(acted.len(), 1, "{acted:#?}");
    let text = acted[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("Seats reclaimed: 2 seats reclaimed by the policy \"Leavers' E3\""),
        "{text}"
    );
    let details = acted[0]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(
        details.contains("leaver0@contoso.com") && details.contains("leaver1@contoso.com"),
        "{details}"
    );
    assert!(!details.contains("leaver2@contoso.com"), "{details}");
    assert_eq!(receiver.at("noticed").len(), 1);
    assert!(receiver.at("e1").is_empty());
}

/// The digest window: one change (a license assigned to a group of 500 without a seat for any
/// of them) that puts every member into CountViolation, processed in several steps, is one message for a rule with a window (the count, the first
/// ten users, the window's start and end), sent when the window closes — after a restart of
/// licensd in the middle of the window too, since the held digest is in the store. A rule
/// without a window (0) gets one message per step of the same change.
async fn a_digest_window_makes_a_change_processed_in_steps_one_message(database: TestDatabase) {
    const MEMBERS: usize = 500;
    const WINDOW_SECONDS: i64 = 8;
    let configure = |config: &mut licensd_server::ServerConfig| {
        config.notifications.retry_base = Duration::from_millis(50);
        // 100 users per processing step: the change is processed in five steps at least.
        config.processing_batch_size = 100;
    };
    let server = TestServer::start_with(database, configure).await;
    let receiver = Receiver::start().await;
    server.import_seed_products(0, 0, 0, 0).await;
    let group = server.create_group("Everyone").await;
    let users = create_members(&server, group, MEMBERS).await;
    let windowed = create_rule(
        &server,
        json!({"displayName": "No seat", "condition": "licenseErrorEntered",
            "errorKinds": ["CountViolation"], "digestWindowSeconds": WINDOW_SECONDS,
            "webhookUrl": receiver.url("window"), "format": "json"}),
    )
    .await;
    create_rule(
        &server,
        json!({"displayName": "No seat, every step", "condition": "licenseErrorEntered",
            "errorKinds": ["CountViolation"], "digestWindowSeconds": 0,
            "webhookUrl": receiver.url("each")}),
    )
    .await;

    // The console's alerts page tells the window.
    let console = reqwest::Client::new();
    let page = server
        .send(
            console
                .get(server.url("/alerts"))
                .header("cookie", format!("licensd_session={}", server.token)),
        )
        .await
        .expect(200);
    let html = page.body.as_str().unwrap_or_default();
    assert!(
        html.contains(&format!("one message per {WINDOW_SECONDS} s window")),
        "{html}"
    );

    // E3 for the whole group, without a seat: all members fall into CountViolation, step by step.
    let reduced = Instant::now();
    server.assign_to_group(group, &[E3]).await.expect(202);
    server.settle().await;
    // Without a window: one message per processing step, several in all.
    let deadline = Instant::now() + Duration::from_secs(30);
    let count_of = |messages: &[Value]| -> u64 {
        messages
            .iter()
            .map(|message| message["count"].as_u64().unwrap())
            .sum()
    };
    while count_of(&receiver.at("each")) < MEMBERS as u64 {
        assert!(Instant::now() < deadline, "{:#?}", receiver.at("each"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let each = receiver.at("each");
    assert!(each.len() >= 2, "one change, several steps: {each:#?}");
    assert_eq!(count_of(&each), MEMBERS as u64);
    // With a window: nothing before it closes.
    if reduced.elapsed() < Duration::from_secs(WINDOW_SECONDS as u64 - 2) {
        assert!(receiver.at("window").is_empty(), "{:#?}", receiver.at("window"));
    }

    // licensd restarts in the middle of the window: the digest held in the store is sent.
    let server = server.restart(configure).await;
    let messages = receiver.wait_for("window", 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let messages = if receiver.at("window").len() > messages.len() {
        receiver.at("window")
    } else {
        messages
    };
    assert_eq!(messages.len(), 1, "{messages:#?}");
    let alert = &messages[0];
    assert_eq!(alert["ruleId"], windowed.to_string());
    assert_eq!(alert["condition"], "licenseErrorEntered");
    assert_eq!(alert["count"], MEMBERS as u64, "{alert:#}");
    let named = alert["users"].as_array().unwrap();
    assert_eq!(named.len(), 10);
    for user in named {
        assert_eq!(user["error"], "CountViolation");
        let id = Uuid::parse_str(user["userId"].as_str().unwrap()).unwrap();
        assert!(users.contains(&id));
    }
    let start = licensd_api_types::time::parse_date_time(alert["windowStartDateTime"].as_str().unwrap())
        .expect("window start");
    let end = licensd_api_types::time::parse_date_time(alert["windowEndDateTime"].as_str().unwrap())
        .expect("window end");
    assert_eq!(end - start, WINDOW_SECONDS * 1_000, "{alert:#}");
    assert_eq!(
        receiver.alert_ids("window"),
        vec![alert["alertId"].as_str().map(str::to_string)]
    );
    // Sent, and gone from the store: nothing more comes.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.at("window").len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_window_makes_a_change_processed_in_steps_one_message_sqlite() {
    a_digest_window_makes_a_change_processed_in_steps_one_message(TestDatabase::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_window_makes_a_change_processed_in_steps_one_message_postgres() {
    let Some(database) = TestDatabase::postgres("alert_digest_window") else {
        return;
    };
    a_digest_window_makes_a_change_processed_in_steps_one_message(database).await;
}
