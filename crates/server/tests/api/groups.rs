//! `/v1.0/groups`: create, read, update, delete; `assignLicense` (202 + Location, the seed's
//! prerequisite message); members with `$ref`; `membersWithLicenseErrors`; the
//! `hasMembersWithLicenseErrors` filter; and licensd's group reprocess extension.

use serde_json::json;

use crate::support::{on_both_backends, TestServer, E1, E3, EMS, WORKPLACE_ANALYTICS};

on_both_backends!(
    groups_are_created_read_updated_and_deleted,
    group_assign_license_is_accepted_and_processed_in_the_background,
    group_assign_license_checks_prerequisites_within_the_group,
    members_are_added_listed_and_removed_by_reference,
    members_with_license_errors_and_groups_needing_attention,
);

async fn groups_are_created_read_updated_and_deleted(server: &TestServer) {
    let created = server
        .post(
            "/v1.0/groups",
            json!({"@odata.type": "#microsoft.graph.group", "displayName": "Sales", "mailEnabled": false,
                   "mailNickname": "sales", "securityEnabled": true, "groupTypes": []}),
        )
        .await
        .expect(201);
    let id = created.id();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/v1.0/groups/{id}", server.base))
    );
    assert_eq!(created.body["displayName"], "Sales");
    assert_eq!(created.body["securityEnabled"], true);
    assert_eq!(created.body["assignedLicenses"], json!([]));
    assert_eq!(
        created.body["licenseProcessingState"],
        json!({"state": "ProcessingComplete"})
    );

    let fetched = server.get(&format!("/v1.0/groups/{id}")).await.expect(200).body;
    assert_eq!(
        fetched["@odata.context"],
        format!("{}/v1.0/$metadata#groups/$entity", server.base)
    );
    let selected = server
        .get(&format!("/v1.0/groups/{id}?$select=displayName"))
        .await
        .expect(200)
        .body;
    assert_eq!(selected["displayName"], "Sales");
    assert!(selected.get("id").is_none());
    server
        .get(&format!("/v1.0/groups/{id}?$select=hasMembersWithLicenseErrors"))
        .await
        .expect_error(400, "Request_UnsupportedQuery");

    server
        .patch(
            &format!("/v1.0/groups/{id}"),
            json!({"displayName": "Sales", "mailNickname": "sales2"}),
        )
        .await
        .expect(204);
    server
        .patch(&format!("/v1.0/groups/{id}"), json!({"displayName": "Renamed"}))
        .await
        .expect(204);
    let renamed = server.get(&format!("/v1.0/groups/{id}")).await.expect(200);
    assert_eq!(renamed.body["displayName"], "Renamed");
    server
        .patch(&format!("/v1.0/groups/{id}"), json!({"displayName": "  "}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(&format!("/v1.0/groups/{id}"), json!({"description": "x"}))
        .await
        .expect_error(400, "Request_BadRequest");

    let not_a_guid = server
        .get("/v1.0/groups/sales")
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(not_a_guid, "Invalid object identifier 'sales'.");
    server
        .get(&format!("/v1.0/groups/{}", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");

    for refused in [
        json!({"displayName": "Mail", "mailEnabled": true, "securityEnabled": true, "mailNickname": "m"}),
        json!({"displayName": "Not security", "mailEnabled": false, "securityEnabled": false, "mailNickname": "n"}),
        json!({"displayName": "Unified", "groupTypes": ["Unified"], "mailNickname": "u"}),
    ] {
        server
            .post("/v1.0/groups", refused)
            .await
            .expect_error(400, "Request_NotSupported");
    }
    server
        .post("/v1.0/groups", json!({"displayName": ""}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post("/v1.0/groups", json!({"mailNickname": "nameless"}))
        .await
        .expect_error(400, "Request_BadRequest");

    server.delete(&format!("/v1.0/groups/{id}")).await.expect(204);
    server
        .get(&format!("/v1.0/groups/{id}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .delete(&format!("/v1.0/groups/{id}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn group_assign_license_is_accepted_and_processed_in_the_background(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let group = server.create_group("Engineering").await;
    let mut members = Vec::new();
    for name in ["ada", "grace", "linus"] {
        let user = server.create_user(name, Some("US")).await;
        server.add_member(group, user).await;
        members.push(user);
    }
    let accepted = server.assign_to_group(group, &[E3, EMS]).await.expect(202);
    assert_eq!(
        accepted.header("location"),
        Some(format!("{}/v1.0/groups/{group}", server.base))
    );
    assert_eq!(accepted.body["id"], group.to_string());
    assert_eq!(
        accepted.body["assignedLicenses"],
        json!([{"skuId": E3, "disabledPlans": []}, {"skuId": EMS, "disabledPlans": []}])
    );
    server.settle().await;
    for member in &members {
        let state = server.state(*member, E3, Some(group)).await;
        assert_eq!(state["state"], "Active");
        assert_eq!(state["error"], "None");
    }
    assert_eq!(server.consumed_units(E3).await, 3);
    assert_eq!(server.consumed_units(EMS).await, 3);

    // Removing a product from the group takes it from the members in the background.
    server
        .post(
            &format!("/v1.0/groups/{group}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [EMS]}),
        )
        .await
        .expect(202);
    server.settle().await;
    assert_eq!(server.consumed_units(EMS).await, 0);

    // A group with licenses cannot be deleted.
    let refused = server
        .delete(&format!("/v1.0/groups/{group}"))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(refused.contains("remove its licenses"), "{refused}");

    let missing = server
        .post(
            &format!("/v1.0/groups/{group}/assignLicense"),
            json!({"addLicenses": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        missing.ends_with("The missing parameters are: removeLicenses."),
        "{missing}"
    );
    server
        .post(
            &format!("/v1.0/groups/{}/assignLicense", uuid::Uuid::new_v4()),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .post(
            "/v1.0/groups/not-a-group/assignLicense",
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
}

async fn group_assign_license_checks_prerequisites_within_the_group(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let group = server.create_group("Analysts").await;
    let reply = server.assign_to_group(group, &[WORKPLACE_ANALYTICS]).await;
    assert_eq!(
        reply.body["error"]["innerError"]["licenseError"],
        "DependencyViolation"
    );
    let message = reply.expect_error(400, "Request_BadRequest");
    assert_eq!(
        message,
        "License operation failed. Make sure that the group has necessary services before adding or removing \
         a dependent service. The service Microsoft Workplace Analytics requires Exchange Online (Plan 1) or \
         Exchange Online (Plan 2) to be enabled as well."
    );
    let unchanged = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(unchanged["assignedLicenses"], json!([]));
    // With the prerequisite in the same group it is accepted.
    server
        .assign_to_group(group, &[E3, WORKPLACE_ANALYTICS])
        .await
        .expect(202);
}

async fn members_are_added_listed_and_removed_by_reference(server: &TestServer) {
    let group = server.create_group("Support").await;
    let first = server.create_user("first", Some("US")).await;
    let second = server.create_user("second", Some("US")).await;
    server.add_member(group, first).await;
    // Other forms of @odata.id are accepted as well.
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("{}/v1.0/users/{second}", server.base)}),
        )
        .await
        .expect(204);
    let members = server
        .get(&format!("/v1.0/groups/{group}/members"))
        .await
        .expect(200)
        .body;
    let values = members["value"].as_array().expect("members");
    assert_eq!(values.len(), 2);
    assert_eq!(values[0]["id"], first.to_string(), "oldest membership first");
    assert!(values
        .iter()
        .all(|member| member["@odata.type"] == "#microsoft.graph.user"));
    let filtered = server
        .get(&format!(
            "/v1.0/groups/{group}/members?$filter=startswith(userPrincipalName,'sec')&$select=id"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        filtered["value"],
        json!([{"@odata.type": "#microsoft.graph.user", "id": second.to_string()}])
    );

    let duplicate = server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{first}")}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(
        duplicate,
        "One or more added object references already exist for the following modified properties: 'members'."
    );
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{}", uuid::Uuid::new_v4())}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");
    // A group can be a member too (nested groups: `nesting.rs` tests them in full).
    let nested = server.create_group("Nested").await;
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{nested}")}),
        )
        .await
        .expect(204);
    server
        .delete(&format!("/v1.0/groups/{group}/members/{nested}/$ref"))
        .await
        .expect(204);
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": "https://graph.microsoft.com/v1.0/directoryObjects/nobody"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"id": first}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            &format!("/v1.0/groups/{}/members/$ref", uuid::Uuid::new_v4()),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{first}")}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");

    server
        .delete(&format!("/v1.0/groups/{group}/members/{first}/$ref"))
        .await
        .expect(204);
    server
        .delete(&format!("/v1.0/groups/{group}/members/{first}/$ref"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .delete(&format!("/v1.0/groups/{group}/members/nobody/$ref"))
        .await
        .expect_error(400, "Request_BadRequest");
    let remaining = server
        .get(&format!("/v1.0/groups/{group}/members"))
        .await
        .expect(200)
        .body;
    assert_eq!(remaining["value"].as_array().map(Vec::len), Some(1));
    server
        .get(&format!("/v1.0/groups/{}/members", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn members_with_license_errors_and_groups_needing_attention(server: &TestServer) {
    // E3 has two seats for three members: one CountViolation.
    server.import_seed_products(10, 2, 10, 10).await;
    server
        .patch("/licensd/v1/settings", json!({"selfHealing": false}))
        .await
        .expect(200);
    let healthy = server.create_group("Healthy").await;
    let crowded = server.create_group("Crowded").await;
    let mut members = Vec::new();
    for name in ["u1", "u2", "u3"] {
        let user = server.create_user(name, Some("US")).await;
        server.add_member(crowded, user).await;
        members.push(user);
    }
    server.assign_to_group(crowded, &[E3]).await.expect(202);
    server.assign_to_group(healthy, &[E1]).await.expect(202);
    server.settle().await;

    let in_error = server
        .get(&format!("/v1.0/groups/{crowded}/membersWithLicenseErrors"))
        .await
        .expect(200)
        .body;
    let users = in_error["value"].as_array().expect("users");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["@odata.type"], "#microsoft.graph.user");
    assert_eq!(
        users[0]["id"],
        members[2].to_string(),
        "the last one to be processed waits"
    );
    let state = server.state(members[2], E3, Some(crowded)).await;
    assert_eq!(state["state"], "Error");
    assert_eq!(state["error"], "CountViolation");

    let needing_attention = server
        .get("/v1.0/groups?$filter=hasMembersWithLicenseErrors eq true")
        .await
        .expect(200)
        .body;
    assert_eq!(
        needing_attention["value"]
            .as_array()
            .expect("groups")
            .iter()
            .map(|group| group["id"].clone())
            .collect::<Vec<_>>(),
        vec![json!(crowded.to_string())]
    );
    let fine = server
        .get("/v1.0/groups?$filter=hasMembersWithLicenseErrors%20eq%20false")
        .await
        .expect(200)
        .body;
    assert_eq!(fine["value"].as_array().map(Vec::len), Some(1));

    // Buy a seat and reprocess the group (licensd's extension): the error clears.
    server
        .patch(&format!("/licensd/v1/skus/{E3}"), json!({"prepaidUnits": 3}))
        .await
        .expect(200);
    let reprocessed = server
        .post_empty(&format!("/v1.0/groups/{crowded}/reprocessLicenseAssignment"))
        .await
        .expect(202);
    assert_eq!(
        reprocessed.header("location"),
        Some(format!("{}/v1.0/groups/{crowded}", server.base))
    );
    server.settle().await;
    assert_eq!(
        server.state(members[2], E3, Some(crowded)).await["state"],
        "Active"
    );
    let cleared = server
        .get(&format!("/v1.0/groups/{crowded}/membersWithLicenseErrors"))
        .await
        .expect(200)
        .body;
    assert_eq!(cleared["value"], json!([]));
    assert_eq!(server.consumed_units(E3).await, 3);
    server
        .post_empty(&format!(
            "/v1.0/groups/{}/reprocessLicenseAssignment",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get(&format!(
            "/v1.0/groups/{}/membersWithLicenseErrors",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}
