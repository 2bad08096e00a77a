//! The activity extension (`urn:licensd:params:scim:schemas:extension:activity:2.0:User`): an
//! identity provider sends the last sign-in and the leave date with the user — on POST, PUT and
//! PATCH — and licensd stores them where the admin API's activity routes do (audited "Update
//! user activity"), so `/licensd/v1/users/{id}/activity`, the idle seats and reclamation
//! policies see them; SCIM reads them back and filters on them, an absent extension on PUT
//! keeps them, a PATCH removes them, a date that is not one is refused with nothing changed
//! (neither the date nor the other changes of the request); the extension is advertised in
//! `/Schemas` (string attributes with example date-times as `canonicalValues`) and
//! `/ResourceTypes`.

use serde_json::{json, Value};

use licensd_api_types::time::format_date_time;

use crate::support::{TestDatabase, TestServer, E3};
use crate::{expect_scim_error, id_of, patch_op, SCIM, USER_SCHEMA};

const ACTIVITY: &str = "urn:licensd:params:scim:schemas:extension:activity:2.0:User";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_activity_on_sqlite() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    scim_activity(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_activity_on_postgres() {
    if let Some(database) = TestDatabase::postgres("scim_activity") {
        let server = TestServer::start(database).await;
        scim_activity(&server).await;
        server.stop().await;
    }
}

async fn admin_activity(server: &TestServer, user: uuid::Uuid) -> Value {
    server
        .get(&format!("/licensd/v1/users/{user}/activity"))
        .await
        .expect(200)
        .body
}

/// How many "Update user activity" audit records there are.
async fn activity_audits(server: &TestServer) -> usize {
    server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update user activity'")
        .await
        .expect(200)
        .body["value"]
        .as_array()
        .expect("audits")
        .len()
}

async fn scim_activity(server: &TestServer) {
    // Advertised.
    let schema = server
        .get(&format!("{SCIM}/Schemas/{ACTIVITY}"))
        .await
        .expect(200)
        .body;
    let names: Vec<&str> = schema["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|attribute| attribute["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["lastSignInDateTime", "employeeLeaveDateTime"],
        "{schema:#}"
    );
    for attribute in schema["attributes"].as_array().expect("attributes") {
        // Text in the date-time form (see the schema's description), with examples of it.
        assert_eq!(attribute["type"], "string", "{attribute:#}");
        assert_eq!(attribute["mutability"], "readWrite", "{attribute:#}");
        let examples = attribute["canonicalValues"].as_array().expect("examples");
        assert!(!examples.is_empty(), "{attribute:#}");
        for example in examples {
            let text = example.as_str().expect("text");
            let parsed = licensd_api_types::time::parse_date_time(text).expect("a date-time");
            assert_eq!(
                format_date_time(parsed),
                text,
                "examples are in the form licensd answers"
            );
        }
    }
    let resource_type = server
        .get(&format!("{SCIM}/ResourceTypes/User"))
        .await
        .expect(200)
        .body;
    assert!(
        resource_type["schemaExtensions"]
            .as_array()
            .expect("extensions")
            .iter()
            .any(|extension| extension["schema"] == ACTIVITY),
        "{resource_type:#}"
    );

    // POST with the extension: stored, as the admin API shows it, and read back.
    let created = server
        .post(
            &format!("{SCIM}/Users"),
            json!({
                "schemas": [USER_SCHEMA, ACTIVITY],
                "userName": "leaver@contoso.com",
                ACTIVITY: {"lastSignInDateTime": "2026-06-01T08:00:00Z", "employeeLeaveDateTime": "2026-11-30T17:00:00Z"}
            }),
        )
        .await
        .expect(201);
    let user = id_of(&created);
    assert_eq!(
        created.body[ACTIVITY]["lastSignInDateTime"], "2026-06-01T08:00:00Z",
        "{:#}",
        created.body
    );
    assert!(created.body["schemas"]
        .as_array()
        .expect("schemas")
        .contains(&json!(ACTIVITY)));
    let stored = admin_activity(server, user).await;
    assert_eq!(
        stored["signInActivity"]["lastSignInDateTime"], "2026-06-01T08:00:00Z",
        "{stored:#}"
    );
    assert_eq!(
        stored["employeeLeaveDateTime"], "2026-11-30T17:00:00Z",
        "{stored:#}"
    );
    assert_eq!(activity_audits(server).await, 1);
    // GET and the list show them.
    let fetched = server.get(&format!("{SCIM}/Users/{user}")).await.expect(200).body;
    assert_eq!(fetched[ACTIVITY]["employeeLeaveDateTime"], "2026-11-30T17:00:00Z");
    let listed = crate::list(
        server,
        "Users",
        &[("filter", "userName eq \"leaver@contoso.com\"")],
    )
    .await;
    assert_eq!(
        listed["Resources"][0][ACTIVITY]["lastSignInDateTime"], "2026-06-01T08:00:00Z",
        "{listed:#}"
    );

    // PATCH one date: the other is kept.
    let patched = server
        .patch(
            &format!("{SCIM}/Users/{user}"),
            patch_op(json!([{"op": "replace", "path": format!("{ACTIVITY}:lastSignInDateTime"), "value": "2026-12-01T09:30:00Z"}])),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        patched[ACTIVITY]["lastSignInDateTime"], "2026-12-01T09:30:00Z",
        "{patched:#}"
    );
    let stored = admin_activity(server, user).await;
    assert_eq!(
        stored["signInActivity"]["lastSignInDateTime"],
        "2026-12-01T09:30:00Z"
    );
    assert_eq!(stored["employeeLeaveDateTime"], "2026-11-30T17:00:00Z");

    // A date that is not one is refused, nothing changed.
    let detail = expect_scim_error(
        server
            .patch(
                &format!("{SCIM}/Users/{user}"),
                patch_op(json!([{"op": "replace", "path": format!("{ACTIVITY}:employeeLeaveDateTime"), "value": "next week"}])),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    assert!(detail.contains("employeeLeaveDateTime 'next week'"), "{detail}");
    let audits_before = activity_audits(server).await;
    let detail = expect_scim_error(
        server
            .patch(
                &format!("{SCIM}/Users/{user}"),
                patch_op(json!([
                    {"op": "replace", "path": "displayName", "value": "Renamed"},
                    {"op": "replace", "path": format!("{ACTIVITY}:lastSignInDateTime"), "value": "2026-13-01T00:00:00Z"}
                ])),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    assert!(
        detail.contains("lastSignInDateTime '2026-13-01T00:00:00Z'"),
        "{detail}"
    );
    let unchanged = server.get(&format!("{SCIM}/Users/{user}")).await.expect(200).body;
    assert_ne!(unchanged["displayName"], "Renamed", "{unchanged:#}");
    assert_eq!(unchanged[ACTIVITY]["lastSignInDateTime"], "2026-12-01T09:30:00Z");
    assert_eq!(activity_audits(server).await, audits_before);
    let detail = expect_scim_error(
        server
            .post(
                &format!("{SCIM}/Users"),
                json!({"userName": "bad@contoso.com", ACTIVITY: {"lastSignInDateTime": "yesterday"}}),
            )
            .await,
        400,
        Some("invalidValue"),
    );
    assert!(detail.contains("lastSignInDateTime 'yesterday'"), "{detail}");
    assert_eq!(
        crate::list(server, "Users", &[("filter", "userName eq \"bad@contoso.com\"")]).await["totalResults"],
        0
    );
    assert_eq!(
        admin_activity(server, user).await["employeeLeaveDateTime"],
        "2026-11-30T17:00:00Z"
    );

    // Filters read the extension: a leaver, and users who signed in after a date.
    server
        .post(
            &format!("{SCIM}/Users"),
            json!({"userName": "stayer@contoso.com", ACTIVITY: {"lastSignInDateTime": "2026-12-02T10:00:00Z"}}),
        )
        .await
        .expect(201);
    server
        .post(
            &format!("{SCIM}/Users"),
            json!({"userName": "unknown@contoso.com"}),
        )
        .await
        .expect(201);
    let names = |list: &Value| -> Vec<String> {
        let mut names: Vec<String> = list["Resources"]
            .as_array()
            .expect("resources")
            .iter()
            .map(|user| user["userName"].as_str().expect("userName").to_string())
            .collect();
        names.sort();
        names
    };
    let leavers = crate::list(
        server,
        "Users",
        &[("filter", &format!("{ACTIVITY}:employeeLeaveDateTime pr"))],
    )
    .await;
    assert_eq!(names(&leavers), ["leaver@contoso.com"], "{leavers:#}");
    assert_eq!(
        leavers["Resources"][0][ACTIVITY]["employeeLeaveDateTime"],
        "2026-11-30T17:00:00Z"
    );
    let recent = crate::list(
        server,
        "Users",
        &[(
            "filter",
            &format!("{ACTIVITY}:lastSignInDateTime ge \"2026-12-01T09:30:00Z\""),
        )],
    )
    .await;
    assert_eq!(
        names(&recent),
        ["leaver@contoso.com", "stayer@contoso.com"],
        "{recent:#}"
    );
    let searched = server
        .post(
            &format!("{SCIM}/.search"),
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": format!("{ACTIVITY}:lastSignInDateTime gt \"2026-12-01T09:30:00Z\"")}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(names(&searched), ["stayer@contoso.com"], "{searched:#}");
    assert_eq!(
        searched["Resources"][0][ACTIVITY]["lastSignInDateTime"],
        "2026-12-02T10:00:00Z"
    );

    // A leaver reported through SCIM is what a reclamation policy acts on.
    server.import_seed_products(5, 5, 0, 0).await;
    server
        .patch(&format!("/v1.0/users/{user}"), json!({"usageLocation": "US"}))
        .await
        .expect(204);
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": []}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server.settle().await;
    let idle = server.get("/licensd/v1/spend/idle").await.expect(200).body;
    assert_eq!(idle["total"], 1, "{idle:#}");
    assert_eq!(idle["value"][0]["userId"], json!(user), "{idle:#}");
    assert_eq!(idle["value"][0]["reason"], "left", "{idle:#}");
    let policy = server
        .post(
            "/licensd/v1/reclamationPolicies",
            json!({"displayName": "Leavers", "reason": "left", "noticeDays": 0, "enabled": false}),
        )
        .await
        .expect(201)
        .id();
    let dry_run = server
        .post(
            &format!("/licensd/v1/reclamationPolicies/{policy}/run"),
            json!({"dryRun": true}),
        )
        .await
        .expect(200)
        .body;
    let acted_on: Vec<&Value> = dry_run["seats"]
        .as_array()
        .expect("seats")
        .iter()
        .map(|seat| &seat["userPrincipalName"])
        .collect();
    assert_eq!(acted_on, [&json!("leaver@contoso.com")], "{dry_run:#}");

    // PUT without the extension keeps the dates; PUT with it replaces them (an absent one clears).
    server
        .put(
            &format!("{SCIM}/Users/{user}"),
            json!({"schemas": [USER_SCHEMA], "userName": "leaver@contoso.com", "displayName": "Leaver"}),
        )
        .await
        .expect(200);
    assert_eq!(
        admin_activity(server, user).await["employeeLeaveDateTime"],
        "2026-11-30T17:00:00Z"
    );
    let replaced = server
        .put(
            &format!("{SCIM}/Users/{user}"),
            json!({"schemas": [USER_SCHEMA, ACTIVITY], "userName": "leaver@contoso.com",
                   ACTIVITY: {"employeeLeaveDateTime": "2027-01-31T17:00:00Z"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        replaced[ACTIVITY],
        json!({"employeeLeaveDateTime": "2027-01-31T17:00:00Z"}),
        "{replaced:#}"
    );
    let stored = admin_activity(server, user).await;
    assert!(
        stored["signInActivity"]["lastSignInDateTime"].is_null(),
        "{stored:#}"
    );
    assert_eq!(stored["employeeLeaveDateTime"], "2027-01-31T17:00:00Z");

    // PATCH remove of the extension clears the activity.
    let removed = server
        .patch(
            &format!("{SCIM}/Users/{user}"),
            patch_op(json!([{"op": "remove", "path": ACTIVITY}])),
        )
        .await
        .expect(200)
        .body;
    assert!(removed.get(ACTIVITY).is_none(), "{removed:#}");
    let stored = admin_activity(server, user).await;
    assert!(stored["employeeLeaveDateTime"].is_null(), "{stored:#}");
}
