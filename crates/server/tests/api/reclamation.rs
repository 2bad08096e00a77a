//! Reclamation policies over real HTTP on both databases: bad policies refused with the field
//! named; for each policy (left, disabled, inactive) a dry run that lists who would be acted on
//! and changes nothing; a notice period that is respected (a notice, still pending at a second
//! run, acted on once its date has come); the action — direct assignment removed, static group
//! membership removed, dynamic group marked for review — audited with what it removed; a revert
//! that restores it from the audit record, once; exempt users; and the background processor
//! running an enabled policy by itself.

use std::time::{Duration, Instant};

use licensd_api_types::time::format_date_time;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{TestDatabase, TestServer, E1, E3};

pub(crate) const DAY: i64 = 24 * 60 * 60 * 1000;

pub(crate) fn now_milliseconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclamation_on_sqlite() {
    let server = TestServer::start_with(TestDatabase::sqlite(), |config| {
        config.lifecycle_check_interval = Duration::from_millis(50);
    })
    .await;
    reclamation_scenario(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclamation_on_postgres() {
    let Some(database) = TestDatabase::postgres("reclamation_scenario") else {
        return;
    };
    let server = TestServer::start_with(database, |config| {
        config.lifecycle_check_interval = Duration::from_millis(50);
    })
    .await;
    reclamation_scenario(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_and_enabling_on_sqlite() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    exemptions_and_enabling(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exemptions_and_enabling_on_postgres() {
    let Some(database) = TestDatabase::postgres("exemptions_and_enabling") else {
        return;
    };
    let server = TestServer::start(database).await;
    exemptions_and_enabling(&server).await;
    server.stop().await;
}

/// Exempting a user from a policy (and undoing it), disabling and enabling a policy and
/// changing its notice period: each audited with the old and new values, refusals naming what
/// was wrong and changing nothing.
async fn exemptions_and_enabling(server: &TestServer) {
    server.import_seed_products(10, 10, 0, 0).await;
    let leaver = server.create_user("exempted", Some("US")).await;
    let other = server.create_user("noticed", Some("US")).await;
    for user in [leaver, other] {
        server
            .post(
                &format!("/v1.0/users/{user}/assignLicense"),
                json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}),
            )
            .await
            .expect(200);
    }
    let yesterday = format_date_time(now_milliseconds() - DAY);
    server
        .post(
            "/licensd/v1/activity",
            json!({"value": [
                {"id": leaver, "employeeLeaveDateTime": yesterday},
                {"id": other, "employeeLeaveDateTime": yesterday},
            ]}),
        )
        .await
        .expect(200);
    server.settle().await;
    let policy = create_policy(
        server,
        json!({"displayName": "Leavers", "reason": "left", "skuId": E3, "noticeDays": 14, "enabled": false}),
    )
    .await;
    run(server, policy, false).await;
    let notices = |body: &Value| -> Vec<String> {
        let mut users: Vec<String> = body["value"]
            .as_array()
            .expect("notices")
            .iter()
            .map(|notice| {
                notice["userPrincipalName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        users.sort();
        users
    };
    let path = format!("/licensd/v1/reclamationNotices?policyId={policy}");
    assert_eq!(
        notices(&server.get(&path).await.expect(200).body),
        ["exempted@contoso.com", "noticed@contoso.com"]
    );

    // Exempting: the notice goes at once, the policy lists the user, audited; twice is once.
    let exemption = format!("/licensd/v1/reclamationPolicies/{policy}/exemptions/{leaver}");
    let answer = server.put(&exemption, json!({})).await.expect(200).body;
    assert_eq!(answer["excludedUserIds"], json!([leaver]));
    assert_eq!(
        notices(&server.get(&path).await.expect(200).body),
        ["noticed@contoso.com"]
    );
    server.put(&exemption, json!({})).await.expect(200);
    let updates = audits(server, "Update reclamation policy").await;
    assert_eq!(updates.len(), 1, "{updates:#?}");
    let property = &updates[0]["targetResources"][0]["modifiedProperties"][0];
    assert_eq!(property["displayName"], "ExemptUser");
    assert!(
        property["newValue"]
            .as_str()
            .unwrap_or_default()
            .contains("exempted@contoso.com"),
        "{property:#}"
    );
    // A run does not notice the exempt user again.
    let again = run(server, policy, false).await;
    assert_eq!(users_of(&again), ["noticed@contoso.com"]);
    // Unknown users and policies: 404, nothing changed.
    server
        .put(
            &format!(
                "/licensd/v1/reclamationPolicies/{policy}/exemptions/{}",
                Uuid::new_v4()
            ),
            json!({}),
        )
        .await
        .expect(404);
    server
        .put(
            &format!(
                "/licensd/v1/reclamationPolicies/{}/exemptions/{leaver}",
                Uuid::new_v4()
            ),
            json!({}),
        )
        .await
        .expect(404);
    server
        .delete(&format!(
            "/licensd/v1/reclamationPolicies/{policy}/exemptions/{other}"
        ))
        .await
        .expect(404);
    assert_eq!(audits(server, "Update reclamation policy").await.len(), 1);

    // Undoing: the policy applies again (the next run notices the user), audited.
    server.delete(&exemption).await.expect(204);
    server.delete(&exemption).await.expect(404);
    let policy_now = server
        .get(&format!("/licensd/v1/reclamationPolicies/{policy}"))
        .await
        .expect(200)
        .body;
    assert_eq!(policy_now["excludedUserIds"], json!([]));
    let again = run(server, policy, false).await;
    assert_eq!(users_of(&again), ["exempted@contoso.com", "noticed@contoso.com"]);
    assert_eq!(audits(server, "Update reclamation policy").await.len(), 2);

    // Enabling and the notice period: audited with old and new values; a bad value is refused
    // naming the field and changes nothing; a request that changes nothing records nothing.
    let policy_path = format!("/licensd/v1/reclamationPolicies/{policy}");
    let reply = server
        .patch(&policy_path, json!({"enabled": true, "noticeDays": 5000}))
        .await
        .expect(400);
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("noticeDays"));
    server
        .patch(&policy_path, json!({"enabledd": true}))
        .await
        .expect(400);
    assert_eq!(server.get(&policy_path).await.expect(200).body["enabled"], false);
    let answer = server
        .patch(&policy_path, json!({"enabled": true, "noticeDays": 7}))
        .await
        .expect(200)
        .body;
    assert_eq!(answer["enabled"], true);
    assert_eq!(answer["noticeDays"], 7);
    let stored = server.get(&policy_path).await.expect(200).body;
    assert_eq!(
        (stored["enabled"].clone(), stored["noticeDays"].clone()),
        (json!(true), json!(7))
    );
    let updates = audits(server, "Update reclamation policy").await;
    assert_eq!(updates.len(), 3);
    let changed: Vec<(String, String, String)> = updates
        .iter()
        .flat_map(|record| {
            record["targetResources"][0]["modifiedProperties"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter(|property| property["displayName"] != "ExemptUser")
        .map(|property| {
            (
                property["displayName"].as_str().unwrap_or_default().to_string(),
                property["oldValue"].as_str().unwrap_or_default().to_string(),
                property["newValue"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        changed.contains(&("Enabled".to_string(), "false".to_string(), "true".to_string())),
        "{changed:?}"
    );
    assert!(
        changed.contains(&("NoticeDays".to_string(), "14".to_string(), "7".to_string())),
        "{changed:?}"
    );
    server
        .patch(&policy_path, json!({"enabled": true}))
        .await
        .expect(200);
    server
        .patch(&policy_path, json!({"enabled": false}))
        .await
        .expect(200);
    assert_eq!(audits(server, "Update reclamation policy").await.len(), 4);
    server
        .patch(
            &format!("/licensd/v1/reclamationPolicies/{}", Uuid::new_v4()),
            json!({"enabled": true}),
        )
        .await
        .expect(404);
}

/// A user's direct licenses and groups, as Graph shows them.
async fn holdings(server: &TestServer, user: Uuid) -> (Vec<String>, Vec<String>) {
    let body = server
        .get(&format!(
            "/v1.0/users/{user}?$select=assignedLicenses,licenseAssignmentStates"
        ))
        .await
        .expect(200)
        .body;
    let mut direct: Vec<String> = body["licenseAssignmentStates"]
        .as_array()
        .expect("states")
        .iter()
        .filter(|state| state["assignedByGroup"].is_null())
        .map(|state| state["skuId"].as_str().unwrap_or_default().to_string())
        .collect();
    direct.sort();
    let groups = server
        .get(&format!("/v1.0/users/{user}/memberOf"))
        .await
        .expect(200)
        .body;
    let mut groups: Vec<String> = groups["value"]
        .as_array()
        .expect("memberOf")
        .iter()
        .map(|group| group["displayName"].as_str().unwrap_or_default().to_string())
        .collect();
    groups.sort();
    (direct, groups)
}

async fn audits(server: &TestServer, activity: &str) -> Vec<Value> {
    server
        .get(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq '{activity}'"
        ))
        .await
        .expect(200)
        .body["value"]
        .as_array()
        .expect("audit")
        .clone()
}

async fn create_policy(server: &TestServer, body: Value) -> Uuid {
    server
        .post("/licensd/v1/reclamationPolicies", body)
        .await
        .expect(201)
        .id()
}

async fn run(server: &TestServer, policy: Uuid, dry_run: bool) -> Value {
    server
        .post(
            &format!("/licensd/v1/reclamationPolicies/{policy}/run"),
            json!({"dryRun": dry_run}),
        )
        .await
        .expect(200)
        .body
}

fn seat_of<'a>(run: &'a Value, user: &str) -> &'a Value {
    run["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|seat| seat["userPrincipalName"] == user)
        .unwrap_or_else(|| panic!("{user} in {run:#}"))
}

fn users_of(run: &Value) -> Vec<String> {
    let mut users: Vec<String> = run["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|seat| seat["userPrincipalName"].as_str().unwrap_or_default().to_string())
        .collect();
    users.sort();
    users
}

/// Moves a policy's notices `days` into the past in the store, as if they had been given then
/// (what the passing of the notice period looks like to the next run).
pub(crate) async fn age_notices(server: &TestServer, policy: Uuid, days: i64) {
    let url = server.database_url.clone();
    tokio::task::spawn_blocking(move || {
        let mut store = licensd_store::Store::open(&url).expect("the store");
        let tenant = store.tenant_ids().expect("tenants")[0];
        let notices: Vec<_> = store
            .reclamation_notices(tenant, Some(policy))
            .expect("notices")
            .into_iter()
            .map(|mut notice| {
                notice.noticed_at -= days * DAY;
                notice.act_at -= days * DAY;
                notice
            })
            .collect();
        assert!(!notices.is_empty());
        store
            .record_reclamation_run(tenant, policy, now_milliseconds(), &notices, &[])
            .expect("aged notices");
    })
    .await
    .expect("the store task");
}

async fn reclamation_scenario(server: &TestServer) {
    server.import_seed_products(10, 10, 0, 0).await;
    server
        .put(
            &format!("/licensd/v1/skus/{E3}/price"),
            json!({"pricePerSeat": "33.50", "currency": "EUR"}),
        )
        .await
        .expect(200);

    // Sales (static) and Ops (dynamic: department Ops) give E3.
    let sales = server.create_group("Sales").await;
    server.assign_to_group(sales, &[E3]).await.expect(202);
    let ops = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Ops (dynamic)", "mailEnabled": false, "mailNickname": "ops",
                   "securityEnabled": true, "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -eq \"Ops\"", "membershipRuleProcessingState": "On"}),
        )
        .await
        .expect(201)
        .id();
    server.assign_to_group(ops, &[E3]).await.expect(202);
    let mut users = Vec::new();
    for number in 0..7 {
        users.push(server.create_user(&format!("reclaim{number}"), Some("US")).await);
    }
    let name = |number: usize| format!("reclaim{number}@contoso.com");
    // reclaim0: left; E3 direct (two plans off) and through Sales.
    // reclaim1: disabled; E3 through Sales. reclaim2: inactive; E3 direct.
    // reclaim3: inactive but exempt; E3 direct. reclaim4: signed in today; E3 direct.
    // reclaim5: inactive; E3 through the dynamic Ops. reclaim6: left; E1 direct.
    let e3_plans = server
        .get(&format!("/licensd/v1/skus/{E3}"))
        .await
        .expect(200)
        .body["servicePlans"]
        .as_array()
        .expect("plans")
        .iter()
        .take(2)
        .map(|plan| plan["servicePlanId"].clone())
        .collect::<Vec<_>>();
    assert!(e3_plans.iter().all(Value::is_string), "{e3_plans:?}");
    for (user, sku, disabled) in [
        (users[0], E3, json!(e3_plans)),
        (users[6], E1, json!([])),
        (users[2], E3, json!([])),
        (users[3], E3, json!([])),
        (users[4], E3, json!([])),
    ] {
        server
            .post(
                &format!("/v1.0/users/{user}/assignLicense"),
                json!({"addLicenses": [{"skuId": sku, "disabledPlans": disabled}], "removeLicenses": []}),
            )
            .await
            .expect(200);
    }
    server.add_member(sales, users[0]).await;
    server.add_member(sales, users[1]).await;
    server
        .patch(&format!("/v1.0/users/{}", users[5]), json!({"department": "Ops"}))
        .await
        .expect(204);
    server
        .patch(
            &format!("/v1.0/users/{}", users[1]),
            json!({"accountEnabled": false}),
        )
        .await
        .expect(204);
    let now = now_milliseconds();
    server
        .post(
            "/licensd/v1/activity",
            json!({"value": [
                {"id": name(0), "employeeLeaveDateTime": format_date_time(now - DAY)},
                {"id": name(6), "employeeLeaveDateTime": format_date_time(now - DAY)},
                {"id": name(2), "signInActivity": {"lastSignInDateTime": format_date_time(now - 100 * DAY)}},
                {"id": name(3), "signInActivity": {"lastSignInDateTime": format_date_time(now - 100 * DAY)}},
                {"id": name(5), "signInActivity": {"lastSignInDateTime": format_date_time(now - 100 * DAY)}},
                {"id": name(4), "signInActivity": {"lastSignInDateTime": format_date_time(now)}},
            ]}),
        )
        .await
        .expect(200);
    server.settle().await;

    // Bad policies: refused, the field named, nothing stored.
    for (body, named) in [
        (json!({"displayName": "x", "reason": "bored"}), "reason"),
        (json!({"displayName": " ", "reason": "left"}), "displayName"),
        (
            json!({"displayName": "x", "reason": "inactive", "inactiveDays": 0}),
            "inactiveDays",
        ),
        (
            json!({"displayName": "x", "reason": "left", "inactiveDays": 30}),
            "inactiveDays",
        ),
        (
            json!({"displayName": "x", "reason": "left", "noticeDays": 4000}),
            "noticeDays",
        ),
        (
            json!({"displayName": "x", "reason": "left", "skuId": Uuid::new_v4()}),
            "skuId",
        ),
        (
            json!({"displayName": "x", "reason": "left", "excludedUserIds": [Uuid::new_v4()]}),
            "excludedUserIds",
        ),
        (json!({"displayName": "x", "reason": "left", "extra": 1}), "extra"),
    ] {
        let message = server
            .post("/licensd/v1/reclamationPolicies", body)
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(named), "{named}: {message}");
    }
    assert_eq!(
        server
            .get("/licensd/v1/reclamationPolicies")
            .await
            .expect(200)
            .body["value"],
        json!([])
    );

    let leavers = create_policy(
        server,
        json!({"displayName": "Leavers", "reason": "left", "noticeDays": 0, "enabled": false}),
    )
    .await;
    let disabled = create_policy(
        server,
        json!({"displayName": "Disabled E3", "reason": "disabled", "skuId": E3, "noticeDays": 14, "enabled": false}),
    )
    .await;
    let inactive = create_policy(
        server,
        json!({"displayName": "Inactive E3", "reason": "inactive", "inactiveDays": 90, "skuId": E3,
               "noticeDays": 0, "enabled": false, "excludedUserIds": [users[3]]}),
    )
    .await;
    let listed = server
        .get("/licensd/v1/reclamationPolicies")
        .await
        .expect(200)
        .body;
    assert_eq!(listed["value"].as_array().expect("policies").len(), 3);
    let got = server
        .get(&format!("/licensd/v1/reclamationPolicies/{disabled}"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (&got["reason"], &got["noticeDays"], &got["skuId"]),
        (&json!("disabled"), &json!(14), &json!(E3))
    );
    assert_eq!(audits(server, "Add reclamation policy").await.len(), 3);

    // Dry runs: who would be acted on and how; nothing changes.
    let before: Vec<_> = {
        let mut all = Vec::new();
        for user in &users {
            all.push(holdings(server, *user).await);
        }
        all
    };
    let dry = run(server, leavers, true).await;
    assert_eq!(dry["dryRun"], true);
    assert_eq!(users_of(&dry), vec![name(0), name(6)], "{dry:#}");
    let e3_seat = dry["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|seat| seat["skuId"] == E3)
        .expect("E3 seat");
    assert_eq!(e3_seat["outcome"], "wouldReclaim");
    assert_eq!(e3_seat["reason"], "left");
    let actions: Vec<&str> = e3_seat["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|step| step["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(actions, vec!["removeDirectLicense", "removeFromGroup"]);
    assert_eq!(
        dry["moneySavedPerMonth"],
        json!([{"currency": "EUR", "amount": "33.50"}])
    );
    let dry_inactive = run(server, inactive, true).await;
    assert_eq!(
        users_of(&dry_inactive),
        vec![name(2), name(5)],
        "exempt reclaim3 and active reclaim4 are not listed"
    );
    assert_eq!(seat_of(&dry_inactive, &name(2))["outcome"], "wouldReclaim");
    let review = seat_of(&dry_inactive, &name(5));
    assert_eq!(review["outcome"], "review");
    assert_eq!(review["steps"][0]["action"], "review");
    assert_eq!(review["steps"][0]["reviewReason"], "dynamicGroup");
    let dry_disabled = run(server, disabled, true).await;
    assert_eq!(users_of(&dry_disabled), vec![name(1)]);
    assert_eq!(seat_of(&dry_disabled, &name(1))["outcome"], "noticed");
    for (user, was) in users.iter().zip(&before) {
        assert_eq!(&holdings(server, *user).await, was, "a dry run changes nothing");
    }
    assert_eq!(
        server
            .get("/licensd/v1/reclamationNotices")
            .await
            .expect(200)
            .body["value"],
        json!([]),
        "a dry run gives no notice"
    );
    assert!(audits(server, "Reclaim license").await.is_empty());

    // Leavers, no notice period: reclaim0's E3 (direct and Sales) and reclaim6's E1 go, audited.
    let done = run(server, leavers, false).await;
    assert_eq!(done["reclaimed"], 2, "{done:#}");
    server.settle().await;
    assert_eq!(holdings(server, users[0]).await, (vec![], vec![]));
    let records = audits(server, "Reclaim license").await;
    assert_eq!(records.len(), 2, "{records:#?}");
    let e3_audit = seat_of(&done, &name(0));
    let e3_audit_id = done["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .find(|seat| seat["skuId"] == E3)
        .expect("E3")["auditId"]
        .as_str()
        .expect("auditId")
        .to_string();
    assert!(e3_audit["auditId"].is_string());
    let record = records
        .iter()
        .find(|record| record["id"] == e3_audit_id)
        .unwrap_or_else(|| panic!("{e3_audit_id} in {records:#?}"));
    let properties = record["targetResources"][0]["modifiedProperties"]
        .as_array()
        .expect("properties");
    let old_of = |property: &str| {
        properties
            .iter()
            .find(|entry| entry["displayName"] == property)
            .map(|entry| entry["oldValue"].as_str().unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    assert!(old_of("DirectLicense").starts_with(E3), "{record:#}");
    assert!(old_of("MemberOf").starts_with(&sales.to_string()), "{record:#}");

    // Revert: the direct E3 with its disabled plans and the Sales membership come back; once.
    let reverted = server
        .post_empty(&format!("/licensd/v1/reclamations/{e3_audit_id}/revert"))
        .await
        .expect(200)
        .body;
    assert_eq!(reverted["restoredSkuIds"], json!([E3]));
    assert_eq!(reverted["restoredGroupIds"], json!([sales]));
    server.settle().await;
    assert_eq!(
        holdings(server, users[0]).await,
        (vec![E3.to_string()], vec!["Sales".to_string()])
    );
    // The direct state has its two disabled plans again (assignedLicenses is the union with
    // Sales' E3, so it shows none).
    let states = server.states(users[0]).await;
    let direct = states
        .iter()
        .find(|state| state["assignedByGroup"].is_null())
        .expect("the direct state");
    assert_eq!(
        direct["disabledPlans"].as_array().map(Vec::len),
        Some(2),
        "{direct:#} restored from {}",
        old_of("DirectLicense")
    );
    let again = server
        .post_empty(&format!("/licensd/v1/reclamations/{e3_audit_id}/revert"))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(again.contains("already reverted"), "{again}");
    let not_reclaim = audits(server, "Add reclamation policy").await[0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    server
        .post_empty(&format!("/licensd/v1/reclamations/{not_reclaim}/revert"))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post_empty(&format!("/licensd/v1/reclamations/{}/revert", Uuid::new_v4()))
        .await
        .expect(404);
    assert_eq!(audits(server, "Revert license reclamation").await.len(), 1);

    // Disabled, 14 days' notice: a notice now, still pending at the next run, acted on once the
    // notice date has come.
    let noticed = run(server, disabled, false).await;
    let seat = seat_of(&noticed, &name(1));
    assert_eq!(seat["outcome"], "noticed");
    let action_at = seat["actionDateTime"].as_str().expect("date").to_string();
    let notices = server
        .get(&format!("/licensd/v1/reclamationNotices?policyId={disabled}"))
        .await
        .expect(200)
        .body;
    assert_eq!(notices["value"][0]["userPrincipalName"], name(1));
    assert_eq!(notices["value"][0]["state"], "pending");
    assert_eq!(notices["value"][0]["actionDateTime"], action_at);
    let action = licensd_api_types::time::parse_date_time(&action_at).expect("a date");
    assert!((action - (now + 14 * DAY)).abs() < 60_000, "{action_at}");
    let second = run(server, disabled, false).await;
    assert_eq!(seat_of(&second, &name(1))["outcome"], "pending");
    assert_eq!(seat_of(&second, &name(1))["actionDateTime"], action_at);
    server.settle().await;
    assert_eq!(
        holdings(server, users[1]).await.1,
        vec!["Sales".to_string()],
        "the notice period is respected"
    );
    age_notices(server, disabled, 15).await;
    let acted = run(server, disabled, false).await;
    assert_eq!(seat_of(&acted, &name(1))["outcome"], "reclaimed", "{acted:#}");
    server.settle().await;
    assert_eq!(holdings(server, users[1]).await, (vec![], vec![]));
    assert_eq!(
        server
            .get(&format!("/licensd/v1/reclamationNotices?policyId={disabled}"))
            .await
            .expect(200)
            .body["value"],
        json!([])
    );

    // Inactive: reclaim2's direct E3 goes; reclaim5 (dynamic Ops) stays, noticed for review;
    // reclaim3 is exempt.
    let inactive_run = run(server, inactive, false).await;
    assert_eq!(seat_of(&inactive_run, &name(2))["outcome"], "reclaimed");
    assert_eq!(seat_of(&inactive_run, &name(5))["outcome"], "review");
    server.settle().await;
    assert_eq!(holdings(server, users[2]).await.0, Vec::<String>::new());
    assert_eq!(holdings(server, users[3]).await.0, vec![E3.to_string()]);
    assert_eq!(
        holdings(server, users[5]).await.1,
        vec!["Ops (dynamic)".to_string()]
    );
    let notices = server
        .get("/licensd/v1/reclamationNotices")
        .await
        .expect(200)
        .body;
    let review: Vec<_> = notices["value"]
        .as_array()
        .expect("notices")
        .iter()
        .filter(|notice| notice["state"] == "review")
        .collect();
    assert_eq!(review.len(), 1, "{notices:#}");
    assert_eq!(review[0]["userPrincipalName"], name(5));

    // Signing in again withdraws a notice.
    server
        .patch(
            &format!("/licensd/v1/users/{}/activity", users[5]),
            json!({"signInActivity": {"lastSignInDateTime": format_date_time(now_milliseconds())}}),
        )
        .await
        .expect(200);
    let withdrawn = run(server, inactive, false).await;
    assert_eq!(withdrawn["withdrawnNotices"], 1, "{withdrawn:#}");

    // The background processor runs an enabled policy by itself: reclaim4 is disabled now.
    server
        .patch(
            &format!("/v1.0/users/{}", users[4]),
            json!({"accountEnabled": false}),
        )
        .await
        .expect(204);
    create_policy(
        server,
        json!({"displayName": "Disabled, at once", "reason": "disabled", "noticeDays": 0}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !holdings(server, users[4]).await.0.is_empty() {
        assert!(Instant::now() < deadline, "the background run reclaimed nothing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let background = audits(server, "Reclaim license").await;
    assert!(background.iter().any(
        |record| record["targetResources"][0]["userPrincipalName"] == name(4)
            || record["targetResources"][0]["displayName"] == name(4)
    ));

    // Deleting a policy removes it and its notices.
    server
        .delete(&format!("/licensd/v1/reclamationPolicies/{inactive}"))
        .await
        .expect(204);
    server
        .get(&format!("/licensd/v1/reclamationPolicies/{inactive}"))
        .await
        .expect(404);
    server
        .delete(&format!("/licensd/v1/reclamationPolicies/{inactive}"))
        .await
        .expect(404);
}
