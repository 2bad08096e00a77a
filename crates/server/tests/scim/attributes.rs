//! SCIM attributes that are licensd directory attributes (`title`, `userType`, the enterprise
//! extension's `department`, `employeeNumber`, `organization`) drive dynamic membership rules —
//! a SCIM PATCH of the department moves the user from one licensed dynamic group to another and
//! the licenses follow — read back through Graph, and SCIM shows what Graph changed.

use serde_json::json;

use crate::support::{TestDatabase, TestServer, E1, E3};
use crate::{id_of, patch_op, ENTERPRISE, LICENSING, SCIM, USER_SCHEMA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_attributes_drive_dynamic_groups_on_sqlite() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    scim_attributes_drive_dynamic_groups(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim_attributes_drive_dynamic_groups_on_postgres() {
    if let Some(database) = TestDatabase::postgres("scim_dynamic") {
        let server = TestServer::start(database).await;
        scim_attributes_drive_dynamic_groups(&server).await;
        server.stop().await;
    }
}

async fn members(server: &TestServer, group: uuid::Uuid) -> Vec<String> {
    server
        .get(&format!("/v1.0/groups/{group}/members?$select=id"))
        .await
        .expect(200)
        .body["value"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| member["id"].as_str().expect("id").to_string())
        .collect()
}

/// The products a user holds from a group, with the state of each.
async fn licenses_from(server: &TestServer, user: uuid::Uuid, group: uuid::Uuid) -> Vec<(String, String)> {
    server
        .states(user)
        .await
        .into_iter()
        .filter(|state| state["assignedByGroup"] == group.to_string())
        .map(|state| {
            (
                state["skuId"].as_str().expect("skuId").to_string(),
                state["state"].as_str().expect("state").to_string(),
            )
        })
        .collect()
}

async fn scim_attributes_drive_dynamic_groups(server: &TestServer) {
    server.import_seed_products(5, 5, 0, 0).await;
    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Engineering", "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -eq \"Engineering\" -and user.jobTitle -startsWith \"Senior\""}),
        )
        .await
        .expect(201)
        .id();
    let sales = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales", "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -eq \"Sales\""}),
        )
        .await
        .expect(201)
        .id();
    server.assign_to_group(group, &[E1]).await.expect(202);
    server.assign_to_group(sales, &[E3]).await.expect(202);
    let created = server
        .post(
            &format!("{SCIM}/Users"),
            json!({"schemas": [USER_SCHEMA, ENTERPRISE, LICENSING], "userName": "dana@contoso.com",
                   "title": "Senior engineer", "userType": "Member",
                   LICENSING: {"usageLocation": "US"},
                   ENTERPRISE: {"department": "Engineering", "employeeNumber": "701", "organization": "Contoso"}}),
        )
        .await
        .expect(201);
    let dana = id_of(&created);
    assert_eq!(members(server, group).await, [dana.to_string()]);
    let graph = server
        .get(&format!(
            "/v1.0/users/{dana}?$select=department,jobTitle,employeeId,companyName,userType"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(graph["department"], "Engineering");
    assert_eq!(graph["jobTitle"], "Senior engineer");
    assert_eq!(graph["employeeId"], "701");
    assert_eq!(graph["companyName"], "Contoso");
    assert_eq!(graph["userType"], "Member");
    server.settle().await;
    assert_eq!(
        licenses_from(server, dana, group).await,
        [(E1.to_string(), "Active".to_string())]
    );
    assert!(licenses_from(server, dana, sales).await.is_empty());

    // A SCIM PATCH of the department moves Dana from Engineering to Sales, and the licenses
    // follow: Engineering's E1 goes (its seat is freed), Sales' E3 comes.
    server
        .patch(
            &format!("{SCIM}/Users/{dana}"),
            patch_op(
                json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Sales"}]),
            ),
        )
        .await
        .expect(200);
    assert!(members(server, group).await.is_empty());
    assert_eq!(members(server, sales).await, [dana.to_string()]);
    server.settle().await;
    assert!(licenses_from(server, dana, group).await.is_empty());
    assert_eq!(
        licenses_from(server, dana, sales).await,
        [(E3.to_string(), "Active".to_string())]
    );
    assert_eq!(server.consumed_units(E1).await, 0);
    assert_eq!(server.consumed_units(E3).await, 1);

    // A Graph PATCH shows through SCIM.
    server
        .patch(
            &format!("/v1.0/users/{dana}"),
            json!({"department": "Engineering", "jobTitle": null}),
        )
        .await
        .expect(204);
    let scim = server.get(&format!("{SCIM}/Users/{dana}")).await.expect(200).body;
    assert_eq!(scim[ENTERPRISE]["department"], "Engineering");
    assert_eq!(scim[ENTERPRISE]["organization"], "Contoso");
    assert!(scim.get("title").is_none(), "{scim:#}");
    assert!(
        members(server, group).await.is_empty(),
        "no Senior title any more"
    );

    // An employeeNumber longer than Graph's employeeId (16 characters) is a SCIM attribute only:
    // accepted and kept (provisioning clients send longer HR numbers), not Graph's employeeId.
    let long = server
        .patch(
            &format!("{SCIM}/Users/{dana}"),
            patch_op(json!([{"op": "replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "12345678901234567"}])),
        )
        .await;
    assert_eq!(long.status, 200, "{:#}", long.body);
    let scim = server.get(&format!("{SCIM}/Users/{dana}")).await.expect(200).body;
    assert_eq!(
        scim[ENTERPRISE]["employeeNumber"], "12345678901234567",
        "{scim:#}"
    );
    let graph = server
        .get(&format!("/v1.0/users/{dana}?$select=employeeId"))
        .await
        .expect(200)
        .body;
    assert!(graph["employeeId"].is_null(), "{graph:#}");
}
