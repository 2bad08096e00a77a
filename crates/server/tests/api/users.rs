//! `/v1.0/users`: create, read by id and by userPrincipalName, `$select`, update, delete,
//! `assignLicense` with each refusal and Graph's messages, `licenseDetails`,
//! `reprocessLicenseAssignment`, `memberOf`.

use serde_json::json;

use crate::support::{on_both_backends, TestServer, E1, E3, EXCHANGE_PLAN_2, WORKPLACE_ANALYTICS};

on_both_backends!(
    users_are_created_read_updated_and_deleted,
    creating_a_user_refuses_bad_input_and_changes_nothing,
    select_returns_license_assignment_states_only_when_asked,
    assign_license_applies_at_once_and_answers_with_the_user,
    assign_license_refusals_carry_graphs_messages,
    license_details_list_products_with_plan_status,
    reprocess_and_member_of,
    concurrent_reads_see_every_acknowledged_write,
);

async fn users_are_created_read_updated_and_deleted(server: &TestServer) {
    let created = server
        .post(
            "/v1.0/users",
            json!({
                "@odata.type": "#microsoft.graph.user",
                "accountEnabled": true,
                "displayName": "Adele Vance",
                "userPrincipalName": "AdeleV@contoso.com",
                "mailNickname": "AdeleV",
                "usageLocation": "US",
                "proxyAddresses": ["SMTP:adele@contoso.com", "smtp:av@contoso.com"],
                "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "xWwvJ]6NMw+bWH-d"}
            }),
        )
        .await
        .expect(201);
    let id = created.id();
    assert_eq!(
        created.header("location"),
        Some(format!("{}/v1.0/users/{id}", server.base))
    );
    assert_eq!(
        created.body["@odata.context"],
        format!("{}/v1.0/$metadata#users/$entity", server.base)
    );
    assert_eq!(created.body["displayName"], "Adele Vance");
    assert_eq!(created.body["mail"], "adele@contoso.com");
    assert_eq!(created.body["usageLocation"], "US");
    assert_eq!(created.body["assignedLicenses"], json!([]));
    assert!(created.body.get("licenseAssignmentStates").is_none());

    // By id and by userPrincipalName, ignoring case.
    let by_id = server.get(&format!("/v1.0/users/{id}")).await.expect(200);
    let by_name = server.get("/v1.0/users/adelev@CONTOSO.com").await.expect(200);
    assert_eq!(by_id.body, by_name.body);

    server
        .patch(
            &format!("/v1.0/users/{id}"),
            json!({"displayName": "Adele V.", "usageLocation": "NL", "accountEnabled": false,
                   "proxyAddresses": ["SMTP:adele.vance@contoso.com"]}),
        )
        .await
        .expect(204);
    let updated = server.get(&format!("/v1.0/users/{id}")).await.expect(200).body;
    assert_eq!(updated["displayName"], "Adele V.");
    assert_eq!(updated["usageLocation"], "NL");
    assert_eq!(updated["accountEnabled"], false);
    assert_eq!(updated["proxyAddresses"], json!(["SMTP:adele.vance@contoso.com"]));
    // null clears the usage location; absent properties stay.
    server
        .patch(&format!("/v1.0/users/{id}"), json!({"usageLocation": null}))
        .await
        .expect(204);
    let cleared = server.get(&format!("/v1.0/users/{id}")).await.expect(200).body;
    assert_eq!(cleared["usageLocation"], json!(null));
    assert_eq!(cleared["displayName"], "Adele V.");

    server
        .patch(&format!("/v1.0/users/{id}"), json!({"usageLocation": "XX"}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(
            &format!("/v1.0/users/{id}"),
            json!({"proxyAddresses": ["not an address"]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(
            &format!("/v1.0/users/{}", uuid::Uuid::new_v4()),
            json!({"displayName": "x"}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");

    server.delete(&format!("/v1.0/users/{id}")).await.expect(204);
    server
        .get(&format!("/v1.0/users/{id}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .delete(&format!("/v1.0/users/{id}"))
        .await
        .expect_error(404, "Request_ResourceNotFound");
    server
        .get("/v1.0/users/nobody@contoso.com")
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn creating_a_user_refuses_bad_input_and_changes_nothing(server: &TestServer) {
    server.create_user("adele", Some("US")).await;
    let before = server.user_count().await;

    let duplicate = server
        .post(
            "/v1.0/users",
            json!({"displayName": "Other", "userPrincipalName": "ADELE@contoso.com"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        duplicate
            .starts_with("Another object with the same value for property userPrincipalName already exists."),
        "{duplicate}"
    );
    let unknown_field = server
        .post(
            "/v1.0/users",
            json!({"displayName": "B", "userPrincipalName": "b@contoso.com", "shoeSize": 44}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        unknown_field.contains("unknown field `shoeSize`"),
        "{unknown_field}"
    );
    let malformed = server
        .post_raw("/v1.0/users", "application/json", "{\"displayName\": ")
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(malformed.contains("not valid JSON"), "{malformed}");
    server
        .post("/v1.0/users", json!({"displayName": "No name"}))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            "/v1.0/users",
            json!({"displayName": "B", "userPrincipalName": "b@contoso.com", "usageLocation": "Netherlands"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            "/v1.0/users",
            json!({"displayName": " ", "userPrincipalName": "b@contoso.com"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            "/v1.0/users",
            json!({"displayName": "B", "userPrincipalName": "no-at-sign"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post_raw("/v1.0/users", "text/plain", "displayName=B")
        .await
        .expect_error(415, "Request_BadRequest");
    let oversized = format!(
        "{{\"displayName\": \"{}\", \"userPrincipalName\": \"big@contoso.com\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let too_large = server
        .post_raw("/v1.0/users", "application/json", oversized)
        .await
        .expect_error(413, "Request_EntityTooLarge");
    assert!(too_large.contains("1 MiB"), "{too_large}");

    assert_eq!(
        server.user_count().await,
        before,
        "no refused request created a user"
    );
}

async fn select_returns_license_assignment_states_only_when_asked(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("megan", Some("US")).await;
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    let plain = server.get(&format!("/v1.0/users/{user}")).await.expect(200).body;
    assert!(plain.get("licenseAssignmentStates").is_none());
    assert!(plain.get("assignedPlans").is_none());

    let selected = server
        .get(&format!(
            "/v1.0/users/{user}?$select=displayName,assignedLicenses,assignedPlans,licenseAssignmentStates"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        selected["@odata.context"],
        format!(
            "{}/v1.0/$metadata#users(displayName,assignedLicenses,assignedPlans,licenseAssignmentStates)/$entity",
            server.base
        )
    );
    assert!(
        selected.get("id").is_none(),
        "only what was selected: {selected:#}"
    );
    assert!(selected.get("userPrincipalName").is_none());
    let states = selected["licenseAssignmentStates"].as_array().expect("states");
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["skuId"], E3);
    assert_eq!(states[0]["assignedByGroup"], json!(null));
    assert_eq!(states[0]["state"], "Active");
    assert_eq!(states[0]["error"], "None");
    assert_eq!(states[0]["disabledPlans"], json!([]));
    assert!(states[0]["lastUpdatedDateTime"]
        .as_str()
        .expect("a time")
        .ends_with('Z'));
    let plans = selected["assignedPlans"].as_array().expect("plans");
    let exchange = plans
        .iter()
        .find(|plan| plan["servicePlanId"] == EXCHANGE_PLAN_2)
        .expect("Exchange Online (Plan 2) is assigned");
    assert_eq!(exchange["service"], "exchange");
    assert_eq!(exchange["capabilityStatus"], "Enabled");

    server
        .get(&format!("/v1.0/users/{user}?$select=shoeSize"))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .get(&format!("/v1.0/users/{user}?$filter=displayName eq 'x'"))
        .await
        .expect_error(400, "Request_UnsupportedQuery");
}

async fn assign_license_applies_at_once_and_answers_with_the_user(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("lee", Some("US")).await;
    let reply = server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"@odata.type": "#microsoft.graph.assignedLicense", "skuId": E3,
                                   "disabledPlans": [EXCHANGE_PLAN_2]}],
                   "removeLicenses": []}),
        )
        .await
        .expect(200);
    assert_eq!(reply.body["id"], user.to_string());
    assert_eq!(
        reply.body["assignedLicenses"],
        json!([{"skuId": E3, "disabledPlans": [EXCHANGE_PLAN_2]}])
    );
    assert_eq!(server.consumed_units(E3).await, 1);

    // Re-adding replaces the disabled plans; removing frees the seat.
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    let reply = server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [E3]}),
        )
        .await
        .expect(200);
    assert_eq!(reply.body["assignedLicenses"], json!([]));
    assert_eq!(server.consumed_units(E3).await, 0);

    // By userPrincipalName too.
    server
        .post(
            "/v1.0/users/lee@contoso.com/assignLicense",
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    assert_eq!(server.consumed_units(E1).await, 1);
}

async fn assign_license_refusals_carry_graphs_messages(server: &TestServer) {
    server.import_seed_products(10, 1, 10, 10).await;
    let user = server.create_user("alex", Some("US")).await;
    let assign = |add: serde_json::Value, remove: serde_json::Value| {
        let path = format!("/v1.0/users/{user}/assignLicense");
        async move {
            server
                .post(&path, json!({"addLicenses": add, "removeLicenses": remove}))
                .await
        }
    };

    let missing = server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"removeLicenses": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(
        missing,
        "One or more parameters of the operation 'assignLicense' are missing from the request payload. \
         The missing parameters are: addLicenses."
    );
    let both_missing = server
        .post(&format!("/v1.0/users/{user}/assignLicense"), json!({}))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(both_missing.ends_with("The missing parameters are: addLicenses, removeLicenses."));
    let nothing = assign(json!([]), json!([]))
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(
        nothing,
        "No license changes provided. At least one license to add or remove must be specified."
    );
    assign(json!([{"skuId": "not-a-guid"}]), json!([]))
        .await
        .expect_error(400, "Request_BadRequest");
    assign(json!([{"skuId": uuid::Uuid::new_v4()}]), json!([]))
        .await
        .expect_error(400, "Request_BadRequest");
    assign(json!([{"skuId": E3, "colour": "blue"}]), json!([]))
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post(
            &format!("/v1.0/users/{}/assignLicense", uuid::Uuid::new_v4()),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect_error(404, "Request_ResourceNotFound");

    // Exclusive plans: E1's Exchange Plan 1 against E3's Exchange Plan 2.
    assign(json!([{"skuId": E1}]), json!([])).await.expect(200);
    let reply = assign(json!([{"skuId": E3}]), json!([])).await;
    assert_eq!(
        reply.body["error"]["innerError"]["licenseError"],
        "MutuallyExclusiveViolation"
    );
    let exclusive = reply.expect_error(400, "Request_BadRequest");
    assert!(
        exclusive.starts_with("License assignment failed because service plans "),
        "{exclusive}"
    );
    assert!(exclusive.contains("are mutually exclusive."), "{exclusive}");
    assign(json!([]), json!([E1])).await.expect(200);

    // Workplace Analytics depends on an Exchange plan.
    let dependency = assign(json!([{"skuId": WORKPLACE_ANALYTICS}]), json!([]))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        dependency.starts_with("License assignment failed because service plan Microsoft Workplace Analytics depends on the service plan(s) "),
        "{dependency}"
    );

    // No usage location.
    let nowhere = server.create_user("nowhere", None).await;
    let location = server
        .post(
            &format!("/v1.0/users/{nowhere}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        location.starts_with("License assignment cannot be done for user with invalid usage location."),
        "{location}"
    );

    // No seat left: E3 has one.
    assign(json!([{"skuId": E3}]), json!([])).await.expect(200);
    let other = server.create_user("other", Some("US")).await;
    let reply = server
        .post(
            &format!("/v1.0/users/{other}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3}], "removeLicenses": []}),
        )
        .await;
    assert_eq!(
        reply.body["error"]["innerError"]["licenseError"],
        "CountViolation"
    );
    assert_eq!(
        reply.body["error"]["innerError"]["licensdCode"],
        "license_assignment_failed"
    );
    reply.expect_error(400, "Request_BadRequest");

    // A shared proxy address blocks a mailbox plan.
    let twin = server
        .post(
            "/v1.0/users",
            json!({"displayName": "Twin", "userPrincipalName": "twin@contoso.com", "usageLocation": "US",
                   "proxyAddresses": ["SMTP:alex@contoso.com"]}),
        )
        .await
        .expect(201)
        .id();
    let uniqueness = server
        .post(
            &format!("/v1.0/users/{twin}/assignLicense"),
            json!({"addLicenses": [{"skuId": E1}], "removeLicenses": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        uniqueness.starts_with("Proxy address is already being used"),
        "{uniqueness}"
    );

    // Removing what is not assigned.
    server
        .post(
            &format!("/v1.0/users/{twin}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [E3]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(server.consumed_units(E3).await, 1, "refusals changed nothing");
}

async fn license_details_list_products_with_plan_status(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("diego", Some("US")).await;
    let empty = server
        .get(&format!("/v1.0/users/{user}/licenseDetails"))
        .await
        .expect(200)
        .body;
    assert_eq!(empty["value"], json!([]));
    server
        .post(
            &format!("/v1.0/users/{user}/assignLicense"),
            json!({"addLicenses": [{"skuId": E3, "disabledPlans": [EXCHANGE_PLAN_2]}], "removeLicenses": []}),
        )
        .await
        .expect(200);
    let details = server
        .get(&format!("/v1.0/users/{user}/licenseDetails"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        details["@odata.context"],
        format!("{}/v1.0/$metadata#users('{user}')/licenseDetails", server.base)
    );
    let products = details["value"].as_array().expect("details");
    assert_eq!(products.len(), 1);
    assert_eq!(products[0]["skuId"], E3);
    assert_eq!(products[0]["skuPartNumber"], "ENTERPRISEPACK");
    let plans = products[0]["servicePlans"].as_array().expect("plans");
    let exchange = plans
        .iter()
        .find(|plan| plan["servicePlanId"] == EXCHANGE_PLAN_2)
        .expect("Exchange is listed");
    assert_eq!(exchange["provisioningStatus"], "Disabled");
    assert!(plans.iter().any(|plan| plan["provisioningStatus"] == "Success"));
    let selected = server
        .get(&format!(
            "/v1.0/users/{user}/licenseDetails?$select=skuPartNumber"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(selected["value"], json!([{"skuPartNumber": "ENTERPRISEPACK"}]));
    server
        .get(&format!("/v1.0/users/{}/licenseDetails", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

async fn reprocess_and_member_of(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 10).await;
    let user = server.create_user("grady", Some("US")).await;
    let reply = server
        .post_empty(&format!("/v1.0/users/{user}/reprocessLicenseAssignment"))
        .await
        .expect(200);
    assert_eq!(reply.body["id"], user.to_string());
    server
        .post_empty(&format!(
            "/v1.0/users/{}/reprocessLicenseAssignment",
            uuid::Uuid::new_v4()
        ))
        .await
        .expect_error(404, "Request_ResourceNotFound");

    let first = server.create_group("Sales").await;
    let second = server.create_group("Marketing").await;
    server.add_member(first, user).await;
    server.add_member(second, user).await;
    let groups = server
        .get(&format!("/v1.0/users/{user}/memberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        groups["@odata.context"],
        format!("{}/v1.0/$metadata#directoryObjects", server.base)
    );
    let values = groups["value"].as_array().expect("groups");
    assert_eq!(values.len(), 2);
    assert!(values
        .iter()
        .all(|group| group["@odata.type"] == "#microsoft.graph.group"));
    let filtered = server
        .get(&format!(
            "/v1.0/users/{user}/memberOf?$filter=displayName eq 'marketing'&$select=id"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(
        filtered["value"],
        json!([{"@odata.type": "#microsoft.graph.group", "id": second.to_string()}])
    );
    server
        .get(&format!("/v1.0/users/{}/memberOf", uuid::Uuid::new_v4()))
        .await
        .expect_error(404, "Request_ResourceNotFound");
}

/// Reads of one tenant run side by side (they share the engine) and still reflect every write
/// of the instance: readers that keep asking for a user while its name is changed again and
/// again never see a name older than the last change acknowledged before they asked.
async fn concurrent_reads_see_every_acknowledged_write(server: &TestServer) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let user = server.create_user("reader", Some("US")).await;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let writing = Arc::new(AtomicBool::new(true));
    let address = server.url(&format!(
        "/v1.0/users/{user}?$select=displayName,licenseAssignmentStates"
    ));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (client, address) = (server.client.clone(), address.clone());
            let (acknowledged, writing) = (Arc::clone(&acknowledged), Arc::clone(&writing));
            tokio::spawn(async move {
                let mut reads = 0;
                while writing.load(Ordering::SeqCst) {
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let response = client.get(&address).send().await.expect("answered");
                    assert_eq!(response.status().as_u16(), 200);
                    let body: serde_json::Value = response.json().await.expect("JSON");
                    let name = body["displayName"].as_str().expect("a name");
                    let seen: usize = name.trim_start_matches("name ").parse().unwrap_or(0);
                    assert!(
                        seen >= floor,
                        "read {name:?} after change {floor} was acknowledged"
                    );
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for change in 1..=30 {
        server
            .patch(
                &format!("/v1.0/users/{user}"),
                json!({"displayName": format!("name {change}")}),
            )
            .await
            .expect(204);
        acknowledged.store(change, Ordering::SeqCst);
        // Right after the acknowledgement, on the same instance: the change is there.
        let reply = server.get(&format!("/v1.0/users/{user}")).await.expect(200);
        assert_eq!(reply.body["displayName"], format!("name {change}"));
    }
    writing.store(false, Ordering::SeqCst);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("a reader");
    }
    assert!(reads > 0, "the readers read while the name changed");
}
