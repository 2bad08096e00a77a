//! The seed document's scenarios end to end over HTTP: products assigned to groups, members
//! processed in the background, each licensing error recorded on the right user with Graph's
//! codes, then resolved the ways the seed lists and reprocessed.

use serde_json::json;

use crate::support::{on_both_backends, TestServer, E1, E3, EMS, WORKPLACE_ANALYTICS};

on_both_backends!(the_seed_scenarios_over_http);

async fn the_seed_scenarios_over_http(server: &TestServer) {
    // Seats: E3 for two; the seed's portal has no self-healing, errors wait for a reprocess.
    server.import_seed_products(10, 2, 10, 10).await;
    server
        .patch("/licensd/v1/settings", json!({"selfHealing": false}))
        .await
        .expect(200);
    let group = server.create_group("Contoso - E3 + EMS").await;
    server.assign_to_group(group, &[E3, EMS]).await.expect(202);

    // Not enough licenses.
    let ana = server.create_user("ana", Some("US")).await;
    let ben = server.create_user("ben", Some("US")).await;
    let cleo = server.create_user("cleo", Some("US")).await;
    // Conflicting service plans: Dan holds E1 directly (Exchange Plan 1 against Plan 2).
    let dan = server.create_user("dan", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{dan}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    // Usage location: Eve is in Cuba, where Teams is unavailable.
    let eve = server.create_user("eve", Some("CU")).await;
    // Duplicate proxy address: Fay shares Ana's address, and E3 contains a mailbox.
    let fay = server
        .post(
            "/v1.0/users",
            json!({"displayName": "fay", "userPrincipalName": "fay@contoso.com", "usageLocation": "US",
                   "proxyAddresses": ["SMTP:fay@contoso.com", "smtp:ana@contoso.com"]}),
        )
        .await
        .expect(201)
        .id();
    for user in [dan, eve, fay, ana, ben, cleo] {
        server.add_member(group, user).await;
    }
    server.settle().await;

    let dan_state = server.state(dan, E3, Some(group)).await;
    assert_eq!(dan_state["state"], "Error");
    assert_eq!(dan_state["error"], "MutuallyExclusiveViolation");
    let dan_ems = server.state(dan, EMS, Some(group)).await;
    assert_eq!(dan_ems["state"], "Error", "all of a group's products or none");
    assert_eq!(
        server.state(eve, E3, Some(group)).await["error"],
        "ProhibitedInUsageLocationViolation"
    );
    assert_eq!(
        server.state(fay, E3, Some(group)).await["error"],
        "UniquenessViolation"
    );
    assert_eq!(
        server.state(ana, E3, Some(group)).await["error"],
        "UniquenessViolation"
    );
    assert_eq!(server.state(ben, E3, Some(group)).await["state"], "Active");
    assert_eq!(server.state(cleo, E3, Some(group)).await["state"], "Active");
    assert_eq!(server.consumed_units(E3).await, 2);

    let in_error = server
        .get(&format!(
            "/v1.0/groups/{group}/membersWithLicenseErrors?$select=userPrincipalName"
        ))
        .await
        .expect(200)
        .body;
    let mut names: Vec<String> = in_error["value"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| user["userPrincipalName"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ana@contoso.com",
            "dan@contoso.com",
            "eve@contoso.com",
            "fay@contoso.com"
        ]
    );
    let attention = server
        .get("/v1.0/groups?$filter=hasMembersWithLicenseErrors eq true&$select=id")
        .await
        .expect(200)
        .body;
    assert_eq!(attention["value"], json!([{"id": group.to_string()}]));

    // Resolve each: remove Dan's direct E1, move Eve, fix Fay's address, buy seats.
    server
        .post(
            &format!("/v1.0/users/{dan}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [E1]}),
        )
        .await
        .expect(200);
    server
        .patch(&format!("/v1.0/users/{eve}"), json!({"usageLocation": "NL"}))
        .await
        .expect(204);
    server
        .patch(
            &format!("/v1.0/users/{fay}"),
            json!({"proxyAddresses": ["SMTP:fay@contoso.com"]}),
        )
        .await
        .expect(204);
    server
        .patch(&format!("/licensd/v1/skus/{E3}"), json!({"prepaidUnits": 6}))
        .await
        .expect(200);
    server
        .post_empty(&format!("/v1.0/groups/{group}/reprocessLicenseAssignment"))
        .await
        .expect(202);
    server.settle().await;
    for user in [ana, ben, cleo, dan, eve, fay] {
        assert_eq!(
            server.state(user, E3, Some(group)).await["state"],
            "Active",
            "{user}"
        );
        assert_eq!(
            server.state(user, EMS, Some(group)).await["error"],
            "None",
            "{user}"
        );
    }
    let cleared = server
        .get(&format!("/v1.0/groups/{group}/membersWithLicenseErrors"))
        .await
        .expect(200)
        .body;
    assert_eq!(cleared["value"], json!([]));
    assert_eq!(server.consumed_units(E3).await, 6);
    assert_eq!(server.consumed_units(EMS).await, 6);

    // Several groups, one seat: a user in two groups with E3 consumes one unit.
    let second = server.create_group("Contoso - E3 again").await;
    server.assign_to_group(second, &[E3]).await.expect(202);
    server.add_member(second, ana).await;
    server.settle().await;
    assert_eq!(server.state(ana, E3, Some(second)).await["state"], "Active");
    assert_eq!(server.consumed_units(E3).await, 6);

    // The add-on: Workplace Analytics needs Exchange in the same group.
    let analysts = server.create_group("Analysts").await;
    let refused = server
        .assign_to_group(analysts, &[WORKPLACE_ANALYTICS])
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(refused.starts_with("License operation failed."), "{refused}");
}
