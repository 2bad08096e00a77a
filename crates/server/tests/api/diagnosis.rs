//! Diagnosis, what-if, applying changes and the advisor over HTTP: the seed's conflicting
//! licenses explained with their fixes, a fix's predicted effect equal to what applying it
//! really does, what-if changing nothing, refusals naming the change, and the advisor's report.

use serde_json::{json, Value};

use crate::support::{on_both_backends, TestServer, E1, E3, EMS};

on_both_backends!(
    a_user_diagnosis_proposes_fixes_whose_prediction_comes_true,
    a_group_diagnosis_groups_members_by_cause,
    what_if_changes_nothing_and_refuses_bad_changes,
    the_advisor_reports_redundant_licenses_and_exhausted_products,
);

async fn a_user_diagnosis_proposes_fixes_whose_prediction_comes_true(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let group = server.create_group("Sales - E3").await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    let dan = server.create_user("dan", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{dan}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server.add_member(group, dan).await;
    server.settle().await;

    // By userPrincipalName as well as by id.
    let diagnosis = server
        .get("/licensd/v1/users/dan@contoso.com/diagnosis")
        .await
        .expect(200)
        .body;
    assert_eq!(diagnosis["id"], dan.to_string());
    let problems = diagnosis["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1);
    let problem = &problems[0];
    assert_eq!(problem["error"], "MutuallyExclusiveViolation");
    assert_eq!(problem["assignedByGroup"], group.to_string());
    assert_eq!(problem["groupDisplayName"], "Sales - E3");
    assert_eq!(problem["involvement"]["rule"], "mutuallyExclusiveWith");
    assert_eq!(problem["involvement"]["otherAssignment"]["skuId"], E1);
    assert_eq!(
        problem["involvement"]["otherAssignment"]["assignedByGroup"],
        Value::Null
    );
    let plan_names: Vec<&str> = problem["involvement"]["plans"]
        .as_array()
        .expect("plans")
        .iter()
        .filter_map(|plan| plan["servicePlanName"].as_str())
        .collect();
    assert!(plan_names.contains(&"EXCHANGE_S_ENTERPRISE"), "{plan_names:?}");
    // Every conflicting pair at once (E3's Exchange and SharePoint against E1's), each with the
    // direct E1 that enables the other plan, so one change can resolve them all.
    let conflicts = problem["involvement"]["conflicts"]
        .as_array()
        .expect("every conflicting pair");
    let pairs: Vec<(&str, &str)> = conflicts
        .iter()
        .map(|conflict| {
            (
                conflict["servicePlan"]["servicePlanName"]
                    .as_str()
                    .unwrap_or_default(),
                conflict["conflictingServicePlan"]["servicePlanName"]
                    .as_str()
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert!(pairs.len() >= 2, "{pairs:?}");
    assert!(
        pairs.contains(&("EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_STANDARD")),
        "{pairs:?}"
    );
    assert!(
        pairs.iter().any(|(plan, _)| plan.starts_with("SHAREPOINT")),
        "{pairs:?}"
    );
    assert!(
        conflicts
            .iter()
            .all(|conflict| conflict["conflictingSkuId"] == E1
                && conflict["conflictingAssignedByGroup"].is_null()),
        "{conflicts:#?}"
    );
    let fixes = problem["fixes"].as_array().expect("fixes");
    let kinds: Vec<&str> = fixes.iter().filter_map(|fix| fix["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "RemoveConflictingDirectLicense",
            "DisableConflictingPlansInOtherAssignment",
            "DisableConflictingPlansInThisAssignment"
        ]
    );
    let removal = &fixes[0];
    assert_eq!(removal["redundantLicense"], true);
    assert_eq!(removal["clearedUsers"], 1);
    let predicted = removal["prediction"]["users"]
        .as_array()
        .expect("predicted users")
        .iter()
        .find(|user| user["userId"] == dan.to_string())
        .expect("dan is predicted")
        .clone();
    assert_eq!(predicted["effect"], "Fixed");
    assert_eq!(predicted["seatsFreed"], json!([E1]));

    // The same changes through what-if predict the same, and applying them makes it true.
    let changes = removal["changes"].clone();
    let what_if = server
        .post("/licensd/v1/whatif", json!({"changes": changes}))
        .await
        .expect(200)
        .body;
    assert_eq!(what_if["fixedUsers"], 1);
    assert_eq!(what_if["newlyBrokenUsers"], 0);
    assert_eq!(
        server.state(dan, E3, Some(group)).await["error"],
        "MutuallyExclusiveViolation"
    );
    let applied = server
        .post("/licensd/v1/changes", json!({"changes": changes}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        applied["appliedChanges"],
        changes.as_array().expect("changes").len()
    );
    server.settle().await;
    let states = server.states(dan).await;
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["skuId"], E3);
    assert_eq!(states[0]["state"], "Active");
    let expected: Vec<(Value, Value)> = predicted["statesAfter"]
        .as_array()
        .expect("predicted states")
        .iter()
        .map(|state| (state["skuId"].clone(), state["state"].clone()))
        .collect();
    assert_eq!(expected, vec![(json!(E3), json!("Active"))]);
    let healthy = server
        .get(&format!("/licensd/v1/users/{dan}/diagnosis"))
        .await
        .expect(200)
        .body;
    assert_eq!(healthy["problems"], json!([]));
    // Self-healing history: removing the direct license re-queued dan, whose error cleared.
    let healing = &healthy["lastSelfHealing"];
    assert_eq!(healing["reason"], "DirectLicenseRemoved", "{healthy:#}");
    assert_eq!(healing["skuId"], E1);
    assert_eq!(healing["errorsCleared"], true);
    assert_eq!(
        healing["description"],
        "its direct Office 365 E1 license was removed"
    );
    assert!(
        healing["evaluatedDateTime"]
            .as_str()
            .is_some_and(|time| time.ends_with('Z')),
        "{healing}"
    );
    assert_eq!(healthy["pendingSelfHealing"], Value::Null);
    server
        .get("/licensd/v1/users/nobody@contoso.com/diagnosis")
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn a_group_diagnosis_groups_members_by_cause(server: &TestServer) {
    server.import_seed_products(10, 10, 1, 10).await;
    let group = server.create_group("Mobility - EMS").await;
    server.assign_to_group(group, &[EMS]).await.expect(202);
    let mut users = Vec::new();
    for name in ["ana", "ben", "cleo"] {
        let user = server.create_user(name, Some("US")).await;
        server.add_member(group, user).await;
        users.push(user);
    }
    let eve = server.create_user("eve", Some("US")).await;
    server.add_member(group, eve).await;
    server.settle().await;

    // By display name as well as by id.
    let diagnosis = server
        .get("/licensd/v1/groups/Mobility%20-%20EMS/diagnosis")
        .await
        .expect(200)
        .body;
    assert_eq!(diagnosis["id"], group.to_string());
    assert_eq!(diagnosis["usersInError"], 3);
    let causes = diagnosis["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1);
    assert_eq!(causes[0]["error"], "CountViolation");
    assert_eq!(causes[0]["userCount"], 3);
    assert_eq!(causes[0]["involvement"]["seats"]["prepaidUnits"], 1);
    assert_eq!(causes[0]["involvement"]["seats"]["waitingUsers"], 3);
    let fix = &causes[0]["fixes"][0];
    assert_eq!(fix["kind"], "BuySeats");
    assert_eq!(fix["clearedUsers"], 3);
    assert_eq!(
        fix["changes"][0],
        json!({"type": "setPrepaidUnits", "skuId": EMS, "prepaidUnits": 4})
    );
    server
        .post("/licensd/v1/changes", json!({"changes": fix["changes"]}))
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(server.consumed_units(EMS).await, 4);
    server
        .get(&format!("/licensd/v1/groups/{}/diagnosis", uuid::Uuid::nil()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn what_if_changes_nothing_and_refuses_bad_changes(server: &TestServer) {
    server.import_seed_products(10, 1, 10, 10).await;
    let group = server.create_group("E3").await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    let ana = server.create_user("ana", Some("US")).await;
    let ben = server.create_user("ben", Some("US")).await;
    server.add_member(group, ana).await;
    server.settle().await;

    let what_if = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "addGroupMember", "groupId": group, "userId": ben}], "maxListedUsers": 5}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(what_if["newlyBrokenUsers"], 1);
    assert_eq!(what_if["users"][0]["userId"], ben.to_string());
    assert_eq!(what_if["users"][0]["effect"], "NewlyBroken");
    assert_eq!(what_if["users"][0]["errorsAfter"][0]["error"], "CountViolation");
    assert_eq!(what_if["skus"][0]["waitingUsersAfter"], 1);
    assert_eq!(what_if["groups"][0]["groupId"], group.to_string());
    // Nothing was applied.
    assert_eq!(server.states(ben).await, Vec::<Value>::new());

    // Refusals: the engine's error, naming the change; nothing applied.
    let message = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "reprocessUser", "userId": ben},
                               {"type": "addGroupMember", "groupId": group, "userId": ana}]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.starts_with("Change 1 would be refused"), "{message}");
    let message = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "updateUser", "userId": ben, "usageLocation": "USA"}]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.starts_with("Change 0:"), "{message}");
    server
        .post("/licensd/v1/whatif", json!({"changes": []}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "launchRockets"}]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    let message = server
        .post(
            "/licensd/v1/changes",
            json!({"changes": [{"type": "addGroupMember", "groupId": group, "userId": ben},
                               {"type": "addGroupMember", "groupId": group, "userId": ben}]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        message.contains("Change 1 was refused (changes 0 to 0 were applied)"),
        "{message}"
    );
}

async fn the_advisor_reports_redundant_licenses_and_exhausted_products(server: &TestServer) {
    server.import_seed_products(10, 10, 1, 10).await;
    let sales = server.create_group("Sales - E3").await;
    server.assign_to_group(sales, &[E3]).await.expect(202);
    let mobility = server.create_group("Mobility - EMS").await;
    server.assign_to_group(mobility, &[EMS]).await.expect(202);
    let dan = server.create_user("dan", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{dan}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    server.add_member(sales, dan).await;
    for name in ["ana", "ben"] {
        let user = server.create_user(name, Some("US")).await;
        server.add_member(mobility, user).await;
    }
    server.settle().await;

    let report = server.get("/licensd/v1/advisor").await.expect(200).body;
    let redundant = report["redundantDirectAssignments"]
        .as_array()
        .expect("redundant");
    assert_eq!(redundant.len(), 1);
    assert_eq!(redundant[0]["user"]["id"], dan.to_string());
    assert_eq!(redundant[0]["skuId"], E1);
    assert_eq!(redundant[0]["reason"], "SupersededByGroupProduct");
    assert_eq!(redundant[0]["supersedingSkuId"], E3);
    assert_eq!(redundant[0]["freesSeat"], true);
    let exhausted = report["productsNearExhaustion"].as_array().expect("exhaustion");
    let ems = exhausted
        .iter()
        .find(|product| product["skuId"] == EMS)
        .expect("EMS");
    assert_eq!(ems["waitingUsers"], 1);
    assert_eq!(ems["shortfall"], 1);
    assert_eq!(report["reclaimableSeats"][0]["skuId"], E1);
    // Acting on the finding frees the E1 seat.
    server
        .post("/licensd/v1/changes", json!({"changes": redundant[0]["changes"]}))
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(server.consumed_units(E1).await, 0);
}
