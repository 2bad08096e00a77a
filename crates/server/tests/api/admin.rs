//! `/licensd/v1`: the bundled catalog and its import, custom products, seats and subscription
//! status, service plans and their rules, default rules, settings, overview and explanations.

use serde_json::json;

use crate::support::{on_both_backends, TestServer, E1, E3, EXCHANGE_PLAN_1, EXCHANGE_PLAN_2, TEAMS};

on_both_backends!(
    the_catalog_is_browsed_and_imported,
    custom_products_seats_and_status,
    service_plan_rules_are_read_and_replaced,
    settings_overview_and_explanations,
);

async fn the_catalog_is_browsed_and_imported(server: &TestServer) {
    let all = server.get("/licensd/v1/catalog/products").await.expect(200).body;
    assert!(all["value"].as_array().map(Vec::len).unwrap_or_default() > 100);
    let found = server
        .get("/licensd/v1/catalog/products?search=enterprisepack")
        .await
        .expect(200)
        .body;
    let products = found["value"].as_array().expect("products");
    assert!(products.iter().any(|product| product["skuId"] == E3));

    let imported = server
        .post(
            "/licensd/v1/catalog/import",
            json!({"products": [{"skuPartNumber": "STANDARDPACK", "prepaidUnits": 5},
                                {"skuId": E3, "skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": 2}]}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(imported["products"].as_array().map(Vec::len), Some(2));
    assert_eq!(imported["products"][1]["prepaidUnits"], 2);
    assert_eq!(imported["products"][1]["availableUnits"], 2);
    let with_rules = imported["servicePlansWithDefaultRules"]
        .as_array()
        .expect("rules");
    assert!(
        with_rules.contains(&json!(EXCHANGE_PLAN_1)),
        "the Exchange plans exclude each other"
    );
    let exchange = server
        .get(&format!("/licensd/v1/servicePlans/{EXCHANGE_PLAN_1}"))
        .await
        .expect(200)
        .body;
    assert!(exchange["rules"]["mutuallyExclusiveWith"]
        .as_array()
        .expect("exclusions")
        .contains(&json!(EXCHANGE_PLAN_2)));

    for (body, code) in [
        (
            json!({"products": [{"skuId": E1, "prepaidUnits": 1}]}),
            "Request_BadRequest",
        ),
        (
            json!({"products": [{"skuPartNumber": "NO_SUCH_PRODUCT", "prepaidUnits": 1}]}),
            "Request_BadRequest",
        ),
        (json!({"products": [{"prepaidUnits": 1}]}), "Request_BadRequest"),
        (json!({"products": []}), "Request_BadRequest"),
        (
            json!({"products": [{"skuId": E1, "skuPartNumber": "ENTERPRISEPACK", "prepaidUnits": 1}]}),
            "Request_BadRequest",
        ),
        (
            json!({"products": [{"skuPartNumber": "EMS", "prepaidUnits": -1}]}),
            "Request_BadRequest",
        ),
        (
            json!({"products": [{"skuPartNumber": "EMS", "prepaidUnits": 1}, {"skuPartNumber": "ems", "prepaidUnits": 1}]}),
            "Request_BadRequest",
        ),
    ] {
        server
            .post("/licensd/v1/catalog/import", body)
            .await
            .expect_error(400, code);
    }
    let listed = server.get("/licensd/v1/skus").await.expect(200).body;
    assert_eq!(
        listed["value"].as_array().map(Vec::len),
        Some(2),
        "refused imports added nothing"
    );
}

async fn custom_products_seats_and_status(server: &TestServer) {
    let created = server
        .post(
            "/licensd/v1/skus",
            json!({"skuPartNumber": "CONTOSO_TOOLS", "displayName": "Contoso Tools", "prepaidUnits": 1,
                   "servicePlans": [{"servicePlanName": "CONTOSO_WIKI", "displayName": "Contoso Wiki"}]}),
        )
        .await
        .expect(201)
        .body;
    let sku = created["skuId"].as_str().expect("skuId").to_string();
    assert_eq!(created["servicePlans"][0]["servicePlanName"], "CONTOSO_WIKI");
    assert_eq!(created["capabilityStatus"], "Enabled");
    server
        .post(
            "/licensd/v1/skus",
            json!({"skuId": sku, "skuPartNumber": "AGAIN", "prepaidUnits": 1, "servicePlans": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            "/licensd/v1/skus",
            json!({"skuPartNumber": "X", "prepaidUnits": 1, "servicePlans": [], "appliesTo": "Planet"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");

    let first = server.create_user("first", Some("US")).await;
    let second = server.create_user("second", Some("US")).await;
    let group = server.create_group("Tools").await;
    server.add_member(group, first).await;
    server.add_member(group, second).await;
    server.assign_to_group(group, &[&sku]).await.expect(202);
    server.settle().await;
    let details = server
        .get(&format!("/licensd/v1/skus/{sku}"))
        .await
        .expect(200)
        .body;
    assert_eq!(details["consumedUnits"], 1);
    assert_eq!(details["waitingUsers"], 1);
    assert_eq!(details["licensedGroups"], json!([group.to_string()]));
    let users = details["licensedUsers"].as_array().expect("users");
    assert_eq!(users.len(), 2);
    assert_eq!(
        users[1]["errors"],
        json!([{"assignedByGroup": group.to_string(), "error": "CountViolation"}])
    );

    // Buying a seat heals the waiting user by itself (self-healing is on by default).
    let bought = server
        .patch(&format!("/licensd/v1/skus/{sku}"), json!({"prepaidUnits": 2}))
        .await
        .expect(200)
        .body;
    assert_eq!(bought["prepaidUnits"], 2);
    server.settle().await;
    assert_eq!(server.state(second, &sku, Some(group)).await["state"], "Active");

    // Reducing below consumption takes nothing away.
    let reduced = server
        .patch(&format!("/licensd/v1/skus/{sku}"), json!({"prepaidUnits": 1}))
        .await
        .expect(200)
        .body;
    assert_eq!(reduced["overAllocatedUnits"], 1);
    assert_eq!(reduced["consumedUnits"], 2);

    // A new plan is enabled in every existing assignment.
    let with_plan = server
        .post(
            &format!("/licensd/v1/skus/{sku}/servicePlans"),
            json!({"servicePlanName": "CONTOSO_CHAT"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(with_plan["servicePlans"].as_array().map(Vec::len), Some(2));
    server
        .post(
            &format!("/licensd/v1/skus/{sku}/servicePlans"),
            json!({"servicePlanName": ""}),
        )
        .await
        .expect_error(400, "Request_BadRequest");

    // Suspending the subscription disables every assignment of it.
    server
        .patch(
            &format!("/licensd/v1/skus/{sku}"),
            json!({"capabilityStatus": "Suspended"}),
        )
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(server.state(first, &sku, Some(group)).await["state"], "Disabled");
    server
        .patch(
            &format!("/licensd/v1/skus/{sku}"),
            json!({"capabilityStatus": "Paused"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(
            &format!("/licensd/v1/skus/{}", uuid::Uuid::new_v4()),
            json!({"prepaidUnits": 1}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get(&format!("/licensd/v1/skus/{}", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get("/licensd/v1/skus/not-a-guid")
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            &format!("/licensd/v1/skus/{}/servicePlans", uuid::Uuid::new_v4()),
            json!({"servicePlanName": "X"}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn service_plan_rules_are_read_and_replaced(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let plans = server.get("/licensd/v1/servicePlans").await.expect(200).body;
    assert!(plans["value"].as_array().map(Vec::len).unwrap_or_default() > 20);
    let teams = server
        .get(&format!("/licensd/v1/servicePlans/{TEAMS}"))
        .await
        .expect(200)
        .body;
    assert_eq!(teams["servicePlanName"], "TEAMS1");
    assert_eq!(teams["rules"]["unavailableIn"], json!(["CU"]));

    let replaced = server
        .put(
            &format!("/licensd/v1/servicePlans/{TEAMS}/rules"),
            json!({"unavailableIn": ["CU", "IR"], "needsUniqueProxyAddress": false}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(replaced["rules"]["unavailableIn"], json!(["CU", "IR"]));
    assert_eq!(replaced["rules"]["mutuallyExclusiveWith"], json!([]));

    server
        .put(
            &format!("/licensd/v1/servicePlans/{TEAMS}/rules"),
            json!({"unavailableIn": ["Cuba"]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .put(
            &format!("/licensd/v1/servicePlans/{TEAMS}/rules"),
            json!({"mutuallyExclusiveWith": [TEAMS]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .put(
            &format!("/licensd/v1/servicePlans/{TEAMS}/rules"),
            json!({"requiresAnyOf": [uuid::Uuid::new_v4()]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .put(
            &format!("/licensd/v1/servicePlans/{TEAMS}/rules"),
            json!({"unknownRule": true}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .put(
            &format!("/licensd/v1/servicePlans/{}/rules", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get(&format!("/licensd/v1/servicePlans/{}", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");

    // Clearing the Exchange exclusion, then restoring the catalog's defaults.
    server
        .change_rules(EXCHANGE_PLAN_1, |rules| {
            rules["mutuallyExclusiveWith"] = json!([])
        })
        .await;
    let cleared = server
        .get(&format!("/licensd/v1/servicePlans/{EXCHANGE_PLAN_2}"))
        .await
        .expect(200)
        .body;
    assert!(
        !cleared["rules"]["mutuallyExclusiveWith"]
            .as_array()
            .expect("exclusions")
            .contains(&json!(EXCHANGE_PLAN_1)),
        "exclusions are symmetric"
    );
    let restored = server
        .post_empty("/licensd/v1/servicePlans/defaultRules")
        .await
        .expect(200)
        .body;
    assert!(restored["servicePlansWithDefaultRules"]
        .as_array()
        .expect("plans")
        .contains(&json!(EXCHANGE_PLAN_1)));
    let exchange = server
        .get(&format!("/licensd/v1/servicePlans/{EXCHANGE_PLAN_2}"))
        .await
        .expect(200)
        .body;
    assert!(exchange["rules"]["mutuallyExclusiveWith"]
        .as_array()
        .expect("exclusions")
        .contains(&json!(EXCHANGE_PLAN_1)));
    assert_eq!(
        exchange["rules"]["needsUniqueProxyAddress"], true,
        "other rules are kept"
    );
}

async fn settings_overview_and_explanations(server: &TestServer) {
    let settings = server.get("/licensd/v1/settings").await.expect(200).body;
    assert_eq!(settings["defaultUsageLocation"], json!(null));
    assert_eq!(settings["selfHealing"], true);
    assert!(settings["tenantId"].is_string());

    server.import_seed_products(10, 10, 10, 10).await;
    let group = server.create_group("Everyone").await;
    let homeless = server.create_user("homeless", None).await;
    server.add_member(group, homeless).await;
    server.assign_to_group(group, &[E3]).await.expect(202);
    server.settle().await;
    let state = server.state(homeless, E3, Some(group)).await;
    assert_eq!(state["error"], "ProhibitedInUsageLocationViolation");

    let overview = server.get("/licensd/v1/overview").await.expect(200).body;
    assert_eq!(overview["groupsWithErrors"], 1);
    assert_eq!(overview["usersWithErrors"], 1);
    assert_eq!(
        overview["errorsByKind"],
        json!({"ProhibitedInUsageLocationViolation": 1})
    );
    assert_eq!(
        overview["groupsNeedingAttention"],
        json!([{"id": group.to_string(), "displayName": "Everyone", "membersWithLicenseErrors": 1,
                "licenseProcessingState": "ProcessingComplete"}])
    );
    assert_eq!(overview["products"].as_array().map(Vec::len), Some(4));

    let explained = server
        .get("/licensd/v1/users/homeless@contoso.com/licenseAssignmentStates")
        .await
        .expect(200)
        .body;
    let explanation = explained["value"][0]["explanation"]
        .as_str()
        .expect("an explanation");
    assert!(explanation.contains("usage location"), "{explanation}");
    assert_eq!(explained["value"][0]["skuPartNumber"], "ENTERPRISEPACK");

    // The tenant's default location heals the user (self-healing re-queues users without one).
    let changed = server
        .patch("/licensd/v1/settings", json!({"defaultUsageLocation": "US"}))
        .await
        .expect(200)
        .body;
    assert_eq!(changed["defaultUsageLocation"], "US");
    server.settle().await;
    assert_eq!(server.state(homeless, E3, Some(group)).await["state"], "Active");
    let explained = server
        .get(&format!("/licensd/v1/users/{homeless}/licenseAssignmentStates"))
        .await
        .expect(200)
        .body;
    assert_eq!(explained["value"][0]["explanation"], json!(null));

    let changed = server
        .patch(
            "/licensd/v1/settings",
            json!({"defaultUsageLocation": null, "selfHealing": false}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(changed["defaultUsageLocation"], json!(null));
    assert_eq!(changed["selfHealing"], false);
    server
        .patch("/licensd/v1/settings", json!({"defaultUsageLocation": "Mars"}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch("/licensd/v1/settings", json!({"theme": "dark"}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .get(&format!(
            "/licensd/v1/users/{}/licenseAssignmentStates",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}
