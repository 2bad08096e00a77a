//! `GET /v1.0/directory/subscriptions` (Graph's `companySubscription`, one per product) and the
//! lifecycle set with `PATCH /licensd/v1/skus/{skuId}/subscription`: a subscription past the
//! end of its term moves its product to `Warning` (by the background processor as time passes)
//! and then `Suspended`; a renewal brings it back to `Enabled`.

use std::time::{Duration, Instant};

use licensd_api_types::time::format_date_time;
use serde_json::{json, Value};

use crate::support::{TestDatabase, TestServer, E3};

const DAY_MILLISECONDS: i64 = 24 * 60 * 60 * 1000;

async fn start(database: TestDatabase) -> TestServer {
    TestServer::start_with(database, |config| {
        config.lifecycle_check_interval = Duration::from_millis(50);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_on_sqlite() {
    let server = start(TestDatabase::sqlite()).await;
    subscriptions_follow_their_lifecycle(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_on_postgres() {
    let Some(database) = TestDatabase::postgres("subscriptions_follow_their_lifecycle") else {
        return;
    };
    let server = start(database).await;
    subscriptions_follow_their_lifecycle(&server).await;
    server.stop().await;
}

fn now_milliseconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

async fn e3_status(server: &TestServer) -> Value {
    server
        .get(&format!("/v1.0/subscribedSkus/{E3}"))
        .await
        .expect(200)
        .body
}

async fn subscriptions_follow_their_lifecycle(server: &TestServer) {
    server.import_seed_products(5, 3, 2, 1).await;
    let listed = server.get("/v1.0/directory/subscriptions").await.expect(200).body;
    assert_eq!(
        listed["@odata.context"],
        format!("{}/v1.0/$metadata#directory/subscriptions", server.base)
    );
    let subscriptions = listed["value"].as_array().expect("value");
    assert_eq!(subscriptions.len(), 4);
    let e3 = subscriptions
        .iter()
        .find(|subscription| subscription["skuId"] == E3)
        .expect("E3");
    assert_eq!(e3["id"], E3);
    assert_eq!(e3["commerceSubscriptionId"], E3);
    assert_eq!(e3["skuPartNumber"], "ENTERPRISEPACK");
    assert_eq!(e3["status"], "Enabled");
    assert_eq!(e3["totalLicenses"], 3);
    assert_eq!(e3["isTrial"], false);
    assert_eq!(e3["nextLifecycleDateTime"], Value::Null);
    assert!(!e3["serviceStatus"].as_array().expect("serviceStatus").is_empty());

    // A trial ending in a moment: Enabled now, Warning once the processor sees the date pass.
    let ends = now_milliseconds() + 1_500;
    let set = server
        .patch(
            &format!("/licensd/v1/skus/{E3}/subscription"),
            json!({"createdDateTime": "2026-01-01T00:00:00Z", "nextLifecycleDateTime": format_date_time(ends), "isTrial": true}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(set["status"], "Enabled", "{set:#}");
    assert_eq!(set["isTrial"], true);
    assert_eq!(set["createdDateTime"], "2026-01-01T00:00:00Z");
    assert_eq!(set["nextLifecycleDateTime"], format_date_time(ends));
    let audit = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update subscription'")
        .await
        .expect(200)
        .body;
    let record = &audit["value"][0];
    assert_eq!(record["targetResources"][0]["id"], E3, "{audit:#}");
    assert!(
        record["targetResources"][0]["modifiedProperties"]
            .as_array()
            .expect("modifiedProperties")
            .iter()
            .any(|property| property["displayName"] == "isTrial"),
        "{audit:#}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let sku = e3_status(server).await;
        if sku["capabilityStatus"] == "Warning" {
            assert_eq!(sku["prepaidUnits"]["warning"], 3, "{sku:#}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the product moves to Warning after its end: {sku:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let one = server
        .get(&format!("/v1.0/directory/subscriptions/{E3}"))
        .await
        .expect(200)
        .body;
    assert_eq!(one["status"], "Warning");
    assert_eq!(
        one["nextLifecycleDateTime"],
        format_date_time(ends + 30 * DAY_MILLISECONDS),
        "{one:#}"
    );

    // Forty days past its end: Suspended at once.
    let long_ago = now_milliseconds() - 40 * DAY_MILLISECONDS;
    let suspended = server
        .patch(
            &format!("/licensd/v1/skus/{E3}/subscription"),
            json!({"nextLifecycleDateTime": format_date_time(long_ago)}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(suspended["status"], "Suspended", "{suspended:#}");
    assert_eq!(suspended["isTrial"], true, "absent properties keep their value");
    assert_eq!(e3_status(server).await["capabilityStatus"], "Suspended");

    // Renewed: Enabled again.
    let renewed = server
        .patch(
            &format!("/licensd/v1/skus/{E3}/subscription"),
            json!({"nextLifecycleDateTime": format_date_time(now_milliseconds() + 365 * DAY_MILLISECONDS), "isTrial": false}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(renewed["status"], "Enabled");
    assert_eq!(e3_status(server).await["capabilityStatus"], "Enabled");

    // Mistakes change nothing.
    let message = server
        .patch(
            &format!("/licensd/v1/skus/{E3}/subscription"),
            json!({"nextLifecycleDateTime": "next tuesday"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("nextLifecycleDateTime"), "{message}");
    server
        .patch(
            &format!("/licensd/v1/skus/{E3}/subscription"),
            json!({"endsSoon": true}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    let unknown = uuid::Uuid::new_v4();
    server
        .patch(
            &format!("/licensd/v1/skus/{unknown}/subscription"),
            json!({"isTrial": true}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get(&format!("/v1.0/directory/subscriptions/{unknown}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    assert_eq!(e3_status(server).await["capabilityStatus"], "Enabled");
}
