//! Provisioning flows as Microsoft Entra ID and Okta send them, ending in license states: a group
//! licensed through Graph gets its members through SCIM PATCHes (`"op": "Add"`, Entra's
//! capitalisation, `members` removal by value and by `members[value eq "…"]` filter), a soft
//! delete (`active: "False"`) keeps the seat as the engine does for disabled accounts, a removal
//! from the group or a hard delete frees it for the next user waiting.

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::{TestDatabase, TestServer, E1, E3};
use super::{
    expect_scim_error, id_of, list, patch_op, ENTERPRISE, GROUP_SCHEMA, LICENSING, SCIM, USER_SCHEMA,
};

/// The user Entra ID's default attribute mappings send.
fn entra_user(user_name: &str, given: &str, country: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": given.to_lowercase(),
        "userName": user_name,
        "active": true,
        "displayName": format!("{given} Example"),
        "title": "Engineer",
        "emails": [{"primary": true, "type": "work", "value": user_name}],
        "preferredLanguage": "en-US",
        "name": {"formatted": format!("{given} Example"), "familyName": "Example", "givenName": given},
        "addresses": [{"type": "work", "formatted": "1 Main St", "streetAddress": "1 Main St",
                       "locality": "Amsterdam", "postalCode": "1000", "country": country}],
        "phoneNumbers": [{"type": "work", "value": "+31 20 000 0000"}],
        ENTERPRISE: {"employeeNumber": "42", "department": "Sales"}
    })
}

async fn state_of(server: &TestServer, user: Uuid, sku: &str, group: Uuid) -> Option<Value> {
    let group = json!(group.to_string());
    server
        .states(user)
        .await
        .into_iter()
        .find(|state| state["skuId"] == sku && state["assignedByGroup"] == group)
}

async fn entra_flow(server: TestServer) {
    // Two seats of Office 365 E1.
    server.import_seed_products(2, 0, 0, 0).await;
    // Entra looks the group up by name, then creates it.
    let found = list(
        &server,
        "Groups",
        &[
            ("filter", "displayName eq \"Sales\""),
            ("excludedAttributes", "members"),
        ],
    )
    .await;
    assert_eq!(found["totalResults"], 0);
    let group = server
        .post(
            &format!("{SCIM}/Groups"),
            json!({"schemas": [GROUP_SCHEMA], "externalId": "sales-1", "displayName": "Sales", "members": []}),
        )
        .await
        .expect(201);
    let group_id = id_of(&group);
    assert_eq!(group.body["externalId"], "sales-1");
    // The administrator licenses the group through Graph.
    server.assign_to_group(group_id, &[E1]).await.expect(202);

    let mut users = Vec::new();
    for (user_name, given) in [
        ("alice@contoso.com", "Alice"),
        ("bob@contoso.com", "Bob"),
        ("carol@contoso.com", "Carol"),
    ] {
        let found = list(
            &server,
            "Users",
            &[("filter", &format!("userName eq \"{user_name}\""))],
        )
        .await;
        assert_eq!(found["totalResults"], 0, "{found:#}");
        let created = server
            .post(&format!("{SCIM}/Users"), entra_user(user_name, given, "NL"))
            .await
            .expect(201);
        assert_eq!(
            created
                .headers
                .get("location")
                .and_then(|value| value.to_str().ok()),
            created.body["meta"]["location"].as_str()
        );
        assert_eq!(created.body["externalId"], given.to_lowercase());
        assert_eq!(created.body[ENTERPRISE]["department"], "Sales");
        assert_eq!(
            created.body[LICENSING]["usageLocation"], "NL",
            "the work address's country"
        );
        users.push(id_of(&created));
    }
    let (alice, bob, carol) = (users[0], users[1], users[2]);
    // The usage location reached licensd's model.
    let graph_user = server.get(&format!("/v1.0/users/{alice}")).await.expect(200).body;
    assert_eq!(graph_user["usageLocation"], "NL");
    assert_eq!(graph_user["proxyAddresses"], json!(["SMTP:alice@contoso.com"]));

    // Entra adds members with a capitalised op, one PATCH per batch of members.
    server
        .patch(
            &format!("{SCIM}/Groups/{group_id}"),
            patch_op(json!([{"op": "Add", "path": "members", "value": [
                {"value": alice.to_string()}, {"value": bob.to_string()}, {"value": carol.to_string()}
            ]}])),
        )
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(
        state_of(&server, alice, E1, group_id).await.expect("alice")["state"],
        "Active"
    );
    assert_eq!(
        state_of(&server, bob, E1, group_id).await.expect("bob")["state"],
        "Active"
    );
    let carol_state = state_of(&server, carol, E1, group_id).await.expect("carol");
    assert_eq!(
        (carol_state["state"].as_str(), carol_state["error"].as_str()),
        (Some("Error"), Some("CountViolation"))
    );
    assert_eq!(server.consumed_units(E1).await, 2);
    // A SCIM client sees the licenses.
    let scim_alice = server
        .get(&format!("{SCIM}/Users/{alice}"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        scim_alice[LICENSING]["assignedLicenses"][0]["skuPartNumber"],
        "STANDARDPACK"
    );
    assert_eq!(scim_alice["groups"][0]["value"], group_id.to_string());
    assert_eq!(scim_alice["groups"][0]["display"], "Sales");

    // Soft delete: Entra sends `active` as the string "False". The account is disabled; as in
    // Entra ID, a disabled account keeps its licenses (the seat is not freed).
    let disabled = server
        .patch(
            &format!("{SCIM}/Users/{bob}"),
            patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await
        .expect(200);
    assert_eq!(disabled.body["active"], false);
    assert_eq!(
        server.get(&format!("/v1.0/users/{bob}")).await.expect(200).body["accountEnabled"],
        false
    );
    server.settle().await;
    assert_eq!(
        state_of(&server, bob, E1, group_id).await.expect("bob")["state"],
        "Active"
    );
    assert_eq!(server.consumed_units(E1).await, 2);

    // Entra removes the disabled user from the group (path + value, its own shape): the seat is
    // freed and goes to Carol, who was waiting.
    server
        .patch(
            &format!("{SCIM}/Groups/{group_id}"),
            patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": bob.to_string()}]}])),
        )
        .await
        .expect(200);
    server.settle().await;
    assert!(
        state_of(&server, bob, E1, group_id).await.is_none(),
        "bob lost the group's license"
    );
    assert_eq!(
        state_of(&server, carol, E1, group_id).await.expect("carol")["state"],
        "Active"
    );
    assert_eq!(server.consumed_units(E1).await, 2);

    // Hard delete frees Alice's seat.
    server.delete(&format!("{SCIM}/Users/{alice}")).await.expect(204);
    expect_scim_error(server.get(&format!("{SCIM}/Users/{alice}")).await, 404, None);
    server.settle().await;
    assert_eq!(server.consumed_units(E1).await, 1);
    let members = server
        .get(&format!("{SCIM}/Groups/{group_id}"))
        .await
        .expect(200)
        .body["members"]
        .clone();
    assert_eq!(
        members,
        json!([{"value": carol.to_string(), "$ref": server.url(&format!("{SCIM}/Users/{carol}")), "type": "User"}])
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_id_provisioning_ends_in_the_right_licenses_on_sqlite() {
    entra_flow(TestServer::start(TestDatabase::sqlite()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entra_id_provisioning_ends_in_the_right_licenses_on_postgres() {
    if let Some(database) = TestDatabase::postgres("scim_entra") {
        entra_flow(TestServer::start(database).await).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn okta_provisioning_ends_in_the_right_licenses() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    server.import_seed_products(0, 1, 0, 0).await;
    // Okta creates users with its own shape (password included, never stored) and a usage
    // location through licensd's extension.
    let mut ids = Vec::new();
    for name in ["dave", "erin"] {
        let user = server
            .post(
                &format!("{SCIM}/Users"),
                json!({
                    "schemas": [USER_SCHEMA, LICENSING],
                    "userName": format!("{name}@example.org"),
                    "name": {"givenName": name, "familyName": "Okta"},
                    "emails": [{"primary": true, "value": format!("{name}@example.org"), "type": "work"}],
                    "displayName": format!("{name} Okta"),
                    "locale": "en-US",
                    "externalId": format!("00u{name}"),
                    "groups": [],
                    "password": "Sup3rS3cret!",
                    "active": true,
                    LICENSING: {"usageLocation": "US"}
                }),
            )
            .await
            .expect(201);
        assert!(
            user.body.get("password").is_none(),
            "passwords are never returned"
        );
        ids.push(id_of(&user));
    }
    let (dave, erin) = (ids[0], ids[1]);
    // Okta finds users by userName and pushes a group, renames it with a value-only replace that
    // carries the id, then adds members.
    let found = list(
        &server,
        "Users",
        &[
            ("filter", "userName eq \"DAVE@example.org\""),
            ("startIndex", "1"),
            ("count", "100"),
        ],
    )
    .await;
    assert_eq!(found["totalResults"], 1, "userName compares without case");
    let group = server
        .post(
            &format!("{SCIM}/Groups"),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": []}),
        )
        .await
        .expect(201);
    let group_id = id_of(&group);
    server.assign_to_group(group_id, &[E3]).await.expect(202);
    let renamed = server
        .patch(
            &format!("{SCIM}/Groups/{group_id}"),
            patch_op(json!([{"op": "replace", "value": {"id": group_id.to_string(), "displayName": "Engineering (all)"}}])),
        )
        .await
        .expect(200);
    assert_eq!(renamed.body["displayName"], "Engineering (all)");
    server
        .patch(
            &format!("{SCIM}/Groups/{group_id}"),
            patch_op(json!([{"op": "add", "path": "members", "value": [
                {"value": dave.to_string(), "display": "dave@example.org"},
                {"value": erin.to_string(), "display": "erin@example.org"}
            ]}])),
        )
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(
        state_of(&server, dave, E3, group_id).await.expect("dave")["state"],
        "Active"
    );
    assert_eq!(
        state_of(&server, erin, E3, group_id).await.expect("erin")["error"],
        "CountViolation"
    );
    // Okta deactivates with a value-only replace, then updates the profile with PUT.
    server
        .patch(
            &format!("{SCIM}/Users/{erin}"),
            patch_op(json!([{"op": "replace", "value": {"active": false}}])),
        )
        .await
        .expect(200);
    let replaced = server
        .put(
            &format!("{SCIM}/Users/{dave}"),
            json!({"schemas": [USER_SCHEMA], "userName": "dave@example.org", "active": true,
                   "name": {"givenName": "David", "familyName": "Okta"},
                   "emails": [{"primary": true, "value": "david@example.org", "type": "work"}],
                   "externalId": "00udave", LICENSING: {"usageLocation": "US"}}),
        )
        .await
        .expect(200);
    assert_eq!(
        replaced.body["name"],
        json!({"givenName": "David", "familyName": "Okta"})
    );
    assert!(
        replaced.body.get("locale").is_none(),
        "PUT replaces: what is left out is cleared"
    );
    assert!(replaced.body.get("displayName").is_none());
    assert_eq!(
        replaced.body["emails"],
        json!([{"primary": true, "value": "david@example.org", "type": "work"}])
    );
    // Okta unassigns Dave from the group by filter: his seat goes to Erin (waiting, even if disabled).
    server
        .patch(
            &format!("{SCIM}/Groups/{group_id}"),
            patch_op(json!([{"op": "remove", "path": format!("members[value eq \"{dave}\"]")}])),
        )
        .await
        .expect(200);
    server.settle().await;
    assert!(state_of(&server, dave, E3, group_id).await.is_none());
    assert_eq!(
        state_of(&server, erin, E3, group_id).await.expect("erin")["state"],
        "Active"
    );
    // A group that still assigns licenses cannot be deleted (409); once its licenses are
    // removed through Graph it can.
    expect_scim_error(
        server.delete(&format!("{SCIM}/Groups/{group_id}")).await,
        409,
        None,
    );
    server
        .post(
            &format!("/v1.0/groups/{group_id}/assignLicense"),
            json!({"addLicenses": [], "removeLicenses": [E3]}),
        )
        .await
        .expect(202);
    server.settle().await;
    server
        .delete(&format!("{SCIM}/Groups/{group_id}"))
        .await
        .expect(204);
    assert_eq!(server.consumed_units(E3).await, 0);
    server.stop().await;
}
