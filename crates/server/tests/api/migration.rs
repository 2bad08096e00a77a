//! `POST /licensd/v1/migrations/directToGroup` over real HTTP on both databases: the report
//! sorts users (covered, losing plans, not in the group), a dry run changes nothing, the real
//! run removes only the covered direct licenses in batches and nobody loses a plan; bad input
//! is refused.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{TestDatabase, TestServer, E3, EXCHANGE_PLAN_2};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_on_sqlite() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    migration_scenario(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_on_postgres() {
    let Some(database) = TestDatabase::postgres("migration_scenario") else {
        return;
    };
    let server = TestServer::start(database).await;
    migration_scenario(&server).await;
    server.stop().await;
}

async fn assign_direct(server: &TestServer, user: Uuid, disabled: &[&str]) {
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": disabled}], "removeLicenses": []}),
        )
        .await
        .expect(200);
}

async fn direct_skus(server: &TestServer, user: Uuid) -> Vec<Value> {
    server
        .states(user)
        .await
        .into_iter()
        .filter(|state| state["assignedByGroup"].is_null())
        .map(|state| state["skuId"].clone())
        .collect()
}

async fn plans_of(server: &TestServer, user: Uuid) -> Vec<String> {
    let details = server
        .get(&format!("/v1.0/users/{user}/licenseDetails"))
        .await
        .expect(200)
        .body;
    let mut plans: Vec<String> = details["value"]
        .as_array()
        .expect("value")
        .iter()
        .flat_map(|detail| detail["servicePlans"].as_array().cloned().unwrap_or_default())
        .filter(|plan| plan["provisioningStatus"] == "Success")
        .map(|plan| plan["servicePlanId"].as_str().unwrap_or_default().to_string())
        .collect();
    plans.sort();
    plans.dedup();
    plans
}

fn ids(report: &Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .expect(list)
        .iter()
        .map(|user| user["userId"].as_str().unwrap_or_default().to_string())
        .collect()
}

async fn migration_scenario(server: &TestServer) {
    server.import_seed_products(5, 10, 2, 0).await;
    let group = server.create_group("Knowledge workers").await;
    server
        .post(
            &format!("/v1.0/groups/{group}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": [EXCHANGE_PLAN_2]}], "removeLicenses": []}),
        )
        .await
        .expect(202);
    let covered_a = server.create_user("covereda", Some("US")).await;
    let covered_b = server.create_user("coveredb", Some("US")).await;
    let full = server.create_user("full", Some("US")).await;
    let outside = server.create_user("outside", Some("US")).await;
    assign_direct(server, covered_a, &[EXCHANGE_PLAN_2]).await;
    assign_direct(server, covered_b, &[EXCHANGE_PLAN_2]).await;
    assign_direct(server, full, &[]).await;
    assign_direct(server, outside, &[]).await;
    for user in [covered_a, covered_b, full] {
        server.add_member(group, user).await;
    }
    server.settle().await;
    let plans_before: Vec<Vec<String>> = futures_plans(server, &[covered_a, covered_b, full, outside]).await;

    // Refusals change nothing.
    server
        .post(
            "/licensd/v1/migrations/directToGroup",
            json!({"groupId": Uuid::new_v4(), "skuId": E3}),
        )
        .await
        .expect(404);
    let bare = server.create_group("No licenses").await;
    let message = server
        .post(
            "/licensd/v1/migrations/directToGroup",
            json!({"groupId": bare, "skuId": E3, "dryRun": false}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("does not assign"), "{message}");
    server
        .post(
            "/licensd/v1/migrations/directToGroup",
            json!({"groupId": group, "skuId": E3, "dryRun": false, "batchSize": 0}),
        )
        .await
        .expect_error(400, "Request_BadRequest");

    // The dry run: the report and the what-if, nothing changed.
    let dry = server
        .post(
            "/licensd/v1/migrations/directToGroup",
            json!({"groupId": group, "skuId": E3}),
        )
        .await
        .expect(200)
        .body;
    let mut covered = ids(&dry, "covered");
    covered.sort();
    let mut expected = vec![covered_a.to_string(), covered_b.to_string()];
    expected.sort();
    assert_eq!(covered, expected, "{dry:#}");
    assert_eq!(ids(&dry, "losingPlans"), vec![full.to_string()]);
    assert_eq!(dry["losingPlans"][0]["reason"], "fewerPlans");
    assert_eq!(dry["losingPlans"][0]["plans"], json!(["EXCHANGE_S_ENTERPRISE"]));
    assert_eq!(ids(&dry, "notInGroup"), vec![outside.to_string()]);
    assert_eq!(dry["whatIf"]["newlyBrokenUsers"], 0);
    assert_eq!(dry["removed"], 0);
    assert_eq!(direct_skus(server, covered_a).await, vec![json!(E3)]);

    // The real run, one user per batch.
    let run = server
        .post(
            "/licensd/v1/migrations/directToGroup",
            json!({"groupId": group, "skuId": E3, "dryRun": false, "batchSize": 1}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(run["removed"], 2, "{run:#}");
    assert_eq!(run["batches"].as_array().expect("batches").len(), 2);
    assert_eq!(run["stoppedBy"], Value::Null);
    assert_eq!(run["usersWhoLostPlans"], json!([]));
    server.settle().await;
    assert!(direct_skus(server, covered_a).await.is_empty());
    assert!(direct_skus(server, covered_b).await.is_empty());
    assert_eq!(direct_skus(server, full).await, vec![json!(E3)]);
    assert_eq!(direct_skus(server, outside).await, vec![json!(E3)]);
    // Nobody lost a plan.
    let plans_after = futures_plans(server, &[covered_a, covered_b, full, outside]).await;
    assert_eq!(plans_before, plans_after);
    // Audited as ordinary license changes.
    let audit = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Change user license'")
        .await
        .expect(200)
        .body;
    assert!(audit["value"].as_array().expect("audit").len() >= 6, "{audit:#}");
}

async fn futures_plans(server: &TestServer, users: &[Uuid]) -> Vec<Vec<String>> {
    let mut plans = Vec::new();
    for user in users {
        plans.push(plans_of(server, *user).await);
    }
    plans
}
