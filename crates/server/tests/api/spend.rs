//! Spend over real HTTP on both databases: prices (set, refused, removed, audited), the cost
//! report whose product, source and total views add up (JSON and CSV), users' activity and the
//! idle seats it reveals (left, disabled, inactive), and the seat history that survives a
//! restart, with a snapshot on every change of purchased seats.

use std::time::{Duration, Instant};

use licensd_api_types::spend::parse_amount;
use licensd_api_types::time::format_date_time;
use serde_json::{json, Value};

use crate::support::{TestDatabase, TestServer, E1, E3, EMS};

const DAY: i64 = 24 * 60 * 60 * 1000;

fn now_milliseconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

fn fast_history(config: &mut licensd_server::ServerConfig) {
    config.lifecycle_check_interval = Duration::from_millis(50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_on_sqlite() {
    let server = TestServer::start_with(TestDatabase::sqlite(), fast_history).await;
    let server = spend_scenario(server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_on_postgres() {
    let Some(database) = TestDatabase::postgres("spend_scenario") else {
        return;
    };
    let server = TestServer::start_with(database, fast_history).await;
    let server = spend_scenario(server).await;
    server.stop().await;
}

fn amount(value: &Value) -> i64 {
    parse_amount(value.as_str().unwrap_or_else(|| panic!("an amount: {value}"))).expect("an amount")
}

/// Sums `amounts` ([{currency, amount}]) of one currency.
fn sum_of(amounts: &Value, currency: &str) -> i64 {
    amounts
        .as_array()
        .expect("amounts")
        .iter()
        .filter(|entry| entry["currency"] == currency)
        .map(|entry| amount(&entry["amount"]))
        .sum()
}

async fn wait_for_history(server: &TestServer, sku: &str, count: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let history = server
            .get(&format!("/licensd/v1/skus/{sku}/history"))
            .await
            .expect(200)
            .body;
        if history["value"].as_array().expect("value").len() >= count {
            return history;
        }
        assert!(
            Instant::now() < deadline,
            "{count} snapshots expected: {history:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spend_scenario(server: TestServer) -> TestServer {
    server.import_seed_products(10, 6, 4, 0).await;

    // Prices: refused input changes nothing; a price is audited; removal works.
    for (body, named) in [
        (
            json!({"pricePerSeat": "12.345", "currency": "EUR"}),
            "pricePerSeat",
        ),
        (json!({"pricePerSeat": "-1", "currency": "EUR"}), "pricePerSeat"),
        (json!({"pricePerSeat": "10", "currency": "EURO"}), "currency"),
        (
            json!({"pricePerSeat": 10, "currency": "EUR"}),
            "expected a string",
        ),
        (
            json!({"pricePerSeat": "10", "currency": "EUR", "extra": 1}),
            "extra",
        ),
    ] {
        let message = server
            .put(&format!("/licensd/v1/skus/{E3}/price"), body)
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(named), "{message}");
    }
    server
        .put(
            "/licensd/v1/skus/00000000-0000-0000-0000-000000000001/price",
            json!({"pricePerSeat": "1", "currency": "EUR"}),
        )
        .await
        .expect(404);
    assert_eq!(
        server.get("/licensd/v1/prices").await.expect(200).body["value"],
        json!([])
    );
    let set = server
        .put(
            &format!("/licensd/v1/skus/{E3}/price"),
            json!({"pricePerSeat": "33.5", "currency": "eur"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (set["pricePerSeat"].as_str(), set["currency"].as_str()),
        (Some("33.50"), Some("EUR"))
    );
    server
        .put(
            &format!("/licensd/v1/skus/{E1}/price"),
            json!({"pricePerSeat": "10", "currency": "EUR"}),
        )
        .await
        .expect(200);
    server
        .put(
            &format!("/licensd/v1/skus/{EMS}/price"),
            json!({"pricePerSeat": "7.25", "currency": "USD"}),
        )
        .await
        .expect(200);
    let audit = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update product price'")
        .await
        .expect(200)
        .body;
    assert_eq!(audit["value"].as_array().expect("audit").len(), 3, "{audit:#}");

    // A tenant: Sales (E3 + EMS) with 4 members, one also holding E3 directly; two direct E1.
    let sales = server.create_group("Sales").await;
    let mut users = Vec::new();
    for number in 0..6 {
        users.push(server.create_user(&format!("spend{number}"), Some("US")).await);
    }
    server.assign_to_group(sales, &[E3, EMS]).await.expect(202);
    for user in &users[..4] {
        server.add_member(sales, *user).await;
    }
    for (user, sku) in [(users[0], E3), (users[4], E1), (users[5], E1)] {
        server
            .post(
                &format!("/v1.0/users/{user}/assignLicense"),
                json!({"addLicenses": [{"skuId": sku, "disabledPlans": []}], "removeLicenses": []}),
            )
            .await
            .expect(200);
    }
    server.settle().await;

    // Activity: users[1] left yesterday, users[2] has not signed in for 100 days, users[4] is
    // disabled, users[3] signed in today. Bad dates are refused and change nothing.
    let now = now_milliseconds();
    let message = server
        .patch(
            &format!("/licensd/v1/users/{}/activity", users[1]),
            json!({"employeeLeaveDateTime": "yesterday"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("employeeLeaveDateTime"), "{message}");
    let refused_batch = server
        .post(
            "/licensd/v1/activity",
            json!({"value": [
                {"id": users[1].to_string(), "employeeLeaveDateTime": format_date_time(now - DAY)},
                {"id": "nobody@contoso.com", "employeeLeaveDateTime": format_date_time(now - DAY)},
            ]}),
        )
        .await;
    assert_eq!(refused_batch.status, 404);
    assert_eq!(
        server
            .get(&format!("/licensd/v1/users/{}/activity", users[1]))
            .await
            .expect(200)
            .body["employeeLeaveDateTime"],
        Value::Null,
        "a refused batch stores nothing"
    );
    let stored = server
        .post(
            "/licensd/v1/activity",
            json!({"value": [
                {"id": users[1].to_string(), "employeeLeaveDateTime": format_date_time(now - DAY)},
                {"id": "spend2@contoso.com", "signInActivity": {"lastSignInDateTime": format_date_time(now - 100 * DAY)}},
                {"id": users[3].to_string(), "signInActivity": {"lastSignInDateTime": format_date_time(now)}},
            ]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(stored["value"].as_array().expect("value").len(), 3);
    server
        .patch(
            &format!("/v1.0/users/{}", users[4]),
            json!({"accountEnabled": false}),
        )
        .await
        .expect(204);

    // The advisor shows what freeing its reclaimable seats saves: users[4]'s E1 (disabled).
    let advisor = server.get("/licensd/v1/advisor").await.expect(200).body;
    assert_eq!(
        advisor["moneySavedPerMonth"],
        json!([{"currency": "EUR", "amount": "10.00"}]),
        "{advisor:#}"
    );

    // The cost report: every view adds up.
    let report = server.get("/licensd/v1/spend/cost").await.expect(200).body;
    let products = report["products"].as_array().expect("products");
    let product = |sku: &str| {
        products
            .iter()
            .find(|product| product["skuId"] == sku)
            .unwrap_or_else(|| panic!("{sku} in {report:#}"))
    };
    assert_eq!(
        product(E3)["consumed"],
        4,
        "one seat for the user with E3 from two sources"
    );
    assert_eq!(amount(&product(E3)["consumedCost"]), 4 * 3350);
    assert_eq!(amount(&product(E3)["purchasedCost"]), 6 * 3350);
    assert_eq!(product(E1)["consumed"], 2);
    assert_eq!(product(E1)["idleDisabled"], 1);
    assert_eq!(product(E3)["idleLeft"], 1);
    assert_eq!(product(E3)["idleInactive"], 1);
    assert_eq!(product(E3)["unassigned"], 2);
    assert_eq!(amount(&product(E3)["idleCost"]), 4 * 3350);
    let sources = report["sources"].as_array().expect("sources");
    for currency in ["EUR", "USD"] {
        let by_products: i64 = products
            .iter()
            .filter(|product| product["currency"] == currency)
            .map(|product| amount(&product["consumedCost"]))
            .sum();
        let by_sources: i64 = sources
            .iter()
            .map(|source| sum_of(&source["cost"], currency))
            .sum();
        for view in ["departments", "companies"] {
            let by_view: i64 = report[view]
                .as_array()
                .expect("view")
                .iter()
                .map(|entry| sum_of(&entry["cost"], currency))
                .sum();
            assert_eq!(by_products, by_view, "{view} {currency}: {report:#}");
        }
        let total = report["totals"]
            .as_array()
            .expect("totals")
            .iter()
            .find(|total| total["currency"] == currency)
            .expect("a total");
        assert_eq!(by_products, by_sources, "{currency}: {report:#}");
        assert_eq!(by_products, amount(&total["consumed"]));
    }
    let direct = sources
        .iter()
        .find(|source| source["source"] == "direct")
        .expect("direct");
    assert_eq!(sum_of(&direct["cost"], "EUR"), 3350 + 2 * 1000);
    let group = sources
        .iter()
        .find(|source| source["groupId"] == sales.to_string())
        .expect("Sales");
    assert_eq!(sum_of(&group["cost"], "EUR"), 3 * 3350);
    assert_eq!(sum_of(&group["cost"], "USD"), 4 * 725);

    // CSV: the same figures.
    let csv = server.get("/licensd/v1/spend/cost?format=csv").await.expect(200);
    assert!(csv
        .header("content-type")
        .unwrap_or_default()
        .starts_with("text/csv"));
    let text = csv.body.as_str().expect("CSV text").to_string();
    let e3_row = text
        .lines()
        .find(|line| line.starts_with("product,") && line.contains(E3))
        .expect("the E3 row");
    assert!(e3_row.ends_with(",6,4,4,201.00,134.00,134.00"), "{e3_row}");
    assert!(
        text.lines()
            .any(|line| line == "total,,,,,EUR,,,,,301.00,154.00,224.00"),
        "{text}"
    );

    // Idle seats with their reasons.
    let idle = server.get("/licensd/v1/spend/idle").await.expect(200).body;
    let reasons: Vec<(String, String, String)> = idle["value"]
        .as_array()
        .expect("value")
        .iter()
        .map(|seat| {
            (
                seat["userPrincipalName"].as_str().unwrap_or_default().to_string(),
                seat["skuId"].as_str().unwrap_or_default().to_string(),
                seat["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        reasons.contains(&("spend1@contoso.com".into(), E3.into(), "left".into())),
        "{idle:#}"
    );
    assert!(reasons.contains(&("spend2@contoso.com".into(), E3.into(), "inactive".into())));
    assert!(reasons.contains(&("spend4@contoso.com".into(), E1.into(), "disabled".into())));
    assert!(!reasons.iter().any(|(user, _, _)| user == "spend3@contoso.com"));
    assert_eq!(
        idle["total"], 5,
        "left and inactive hold E3 and EMS, disabled holds E1"
    );
    // The same seats as CSV: a header, then one line per seat.
    let idle_csv = server.get("/licensd/v1/spend/idle?format=csv").await.expect(200);
    let idle_text = idle_csv.body.as_str().expect("CSV text").to_string();
    let idle_lines: Vec<&str> = idle_text.lines().collect();
    assert!(
        idle_lines[0].starts_with("userId,userPrincipalName,skuId,"),
        "{idle_text}"
    );
    assert_eq!(idle_lines.len(), 6, "{idle_text}");
    assert!(
        idle_lines
            .iter()
            .any(|line| line.contains("spend4@contoso.com") && line.contains(",disabled,")),
        "{idle_text}"
    );
    // A longer inactivity threshold: spend2 is no longer idle.
    let longer = server
        .get("/licensd/v1/spend/idle?inactiveDays=365")
        .await
        .expect(200)
        .body;
    assert_eq!(longer["total"], 3);
    for bad in ["inactiveDays=0", "inactiveDays=x", "format=xml", "top=-1"] {
        server
            .get(&format!("/licensd/v1/spend/idle?{bad}"))
            .await
            .expect_error(400, "Request_BadRequest");
    }

    // Seat history: a first snapshot, another when the purchased seats change.
    let first = wait_for_history(&server, E3, 1).await;
    assert_eq!(first["value"][0]["purchased"], 6);
    server
        .patch(&format!("/licensd/v1/skus/{E3}"), json!({"prepaidUnits": 8}))
        .await
        .expect(200);
    let second = wait_for_history(&server, E3, 2).await;
    assert_eq!(second["value"][1]["purchased"], 8);
    assert_eq!(second["value"][1]["consumed"], 4);
    for bad in ["from=tomorrow", "to=", "from=2026-12-02&to=2026-12-01"] {
        let message = server
            .get(&format!("/licensd/v1/skus/{E3}/history?{bad}"))
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(
            message.contains("from") || message.contains("to"),
            "{bad}: {message}"
        );
    }
    let empty = server
        .get(&format!(
            "/licensd/v1/skus/{E3}/history?to={}",
            format_date_time(now - 10 * DAY)
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(empty["value"], json!([]));

    // A restart: history, prices and activity are still there.
    let before_restart = server.get("/licensd/v1/spend/cost").await.expect(200).body;
    let server = server.restart(fast_history).await;
    let after = server
        .get(&format!("/licensd/v1/skus/{E3}/history"))
        .await
        .expect(200)
        .body;
    assert!(after["value"].as_array().expect("value").len() >= 2, "{after:#}");
    assert_eq!(
        after["value"].as_array().expect("value")[..2],
        second["value"].as_array().expect("value")[..2]
    );
    let again = server.get("/licensd/v1/spend/cost").await.expect(200).body;
    assert_eq!(again["totals"], before_restart["totals"]);
    assert_eq!(again["products"], before_restart["products"]);
    server
}
