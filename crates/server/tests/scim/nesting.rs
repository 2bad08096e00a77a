//! Nested groups through SCIM (issue 17): a group's members may be groups — `"type": "Group"`,
//! or a value that is a group's id — in POST, PATCH and PUT; they read back typed `Group` with a
//! `$ref` to `/Groups`; a removal filter may name the type; a nesting that would form a cycle, a
//! member declared of the wrong type or an unknown id is refused with a SCIM error and nothing
//! changes; and with transitive licensing on, a user in a group nested through SCIM receives the
//! licensed group's products, which go again when the nesting is undone.

use serde_json::{json, Value};
use uuid::Uuid;

use super::support::{TestDatabase, TestServer, E3};
use super::{expect_scim_error, id_of, patch_op, GROUP_SCHEMA, LICENSING, SCIM, USER_SCHEMA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_nest_through_scim_on_sqlite() {
    let server = TestServer::start(TestDatabase::sqlite()).await;
    groups_nest_through_scim(&server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_nest_through_scim_on_postgres() {
    if let Some(database) = TestDatabase::postgres("scim_nesting") {
        let server = TestServer::start(database).await;
        groups_nest_through_scim(&server).await;
        server.stop().await;
    }
}

/// A group's SCIM members as (value, type, $ref).
async fn scim_members(server: &TestServer, group: Uuid) -> Vec<(String, String, String)> {
    let body = server
        .get(&format!("{SCIM}/Groups/{group}"))
        .await
        .expect(200)
        .body;
    body["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|member| {
                    (
                        member["value"].as_str().expect("value").to_string(),
                        member["type"].as_str().expect("type").to_string(),
                        member["$ref"].as_str().expect("$ref").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The groups nested directly in a group, through Graph.
async fn nested_groups(server: &TestServer, group: Uuid) -> Vec<String> {
    server
        .get(&format!("/v1.0/groups/{group}/members/microsoft.graph.group"))
        .await
        .expect(200)
        .body["value"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|group| group["id"].as_str().expect("id").to_string())
        .collect()
}

async fn e3_from(server: &TestServer, user: Uuid, group: Uuid) -> Option<Value> {
    server
        .states(user)
        .await
        .into_iter()
        .find(|state| state["skuId"] == E3 && state["assignedByGroup"] == group.to_string())
}

async fn create_group(server: &TestServer, name: &str, members: Value) -> Uuid {
    let created = server
        .post(
            &format!("{SCIM}/Groups"),
            json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": members}),
        )
        .await
        .expect(201);
    id_of(&created)
}

async fn groups_nest_through_scim(server: &TestServer) {
    server.import_seed_products(0, 10, 0, 0).await;
    server
        .patch("/licensd/v1/settings", json!({"transitiveLicensing": true}))
        .await
        .expect(200);
    let alice = id_of(
        &server
            .post(
                &format!("{SCIM}/Users"),
                json!({"schemas": [USER_SCHEMA, LICENSING], "userName": "alice@contoso.com",
                       LICENSING: {"usageLocation": "US"}}),
            )
            .await
            .expect(201),
    );
    // Platform ⊂ Engineering (created with a member typed Group) ⊂ All Staff (licensed).
    let platform = create_group(server, "Platform", json!([{"value": alice.to_string()}])).await;
    let engineering = create_group(
        server,
        "Engineering",
        json!([{"value": platform.to_string(), "type": "Group"}]),
    )
    .await;
    let all_staff = create_group(server, "All Staff", json!([])).await;
    server.assign_to_group(all_staff, &[E3]).await.expect(202);
    assert_eq!(nested_groups(server, engineering).await, [platform.to_string()]);

    // A PATCH adds Engineering by its id alone (Entra ID's shape, no type).
    let patched = server
        .patch(
            &format!("{SCIM}/Groups/{all_staff}"),
            patch_op(
                json!([{"op": "Add", "path": "members", "value": [{"value": engineering.to_string()}]}]),
            ),
        )
        .await;
    assert_eq!(patched.status, 200, "{:#}", patched.body);
    let base = server.url(SCIM);
    assert_eq!(
        scim_members(server, all_staff).await,
        [(
            engineering.to_string(),
            "Group".to_string(),
            format!("{base}/Groups/{engineering}")
        )]
    );
    assert_eq!(
        scim_members(server, platform).await,
        [(
            alice.to_string(),
            "User".to_string(),
            format!("{base}/Users/{alice}")
        )]
    );
    // Alice, two levels down, is licensed by All Staff.
    server.settle().await;
    let state = e3_from(server, alice, all_staff)
        .await
        .expect("E3 through the nesting");
    assert_eq!(state["state"], "Active", "{state:#}");
    assert_eq!(server.consumed_units(E3).await, 1);

    // Refused, nothing changed: a cycle (All Staff into Platform, which is below it), the group
    // itself, a user declared a Group, a group declared a User, an unknown id.
    let platform_version = server
        .get(&format!("{SCIM}/Groups/{platform}"))
        .await
        .expect(200)
        .body["meta"]["version"]
        .clone();
    let cycle = server
        .patch(
            &format!("{SCIM}/Groups/{platform}"),
            patch_op(json!([{"op": "add", "path": "members", "value": [{"value": all_staff.to_string(), "type": "Group"}]}])),
        )
        .await;
    let detail = expect_scim_error(cycle, 400, Some("invalidValue"));
    assert!(detail.contains("cycle"), "{detail}");
    assert!(
        detail.contains(&all_staff.to_string()) && detail.contains(&platform.to_string()),
        "{detail}"
    );
    // The same through PUT, whose removal of Alice must not happen either.
    let put_cycle = server
        .put(
            &format!("{SCIM}/Groups/{platform}"),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Platform",
                   "members": [{"value": engineering.to_string(), "type": "Group"}]}),
        )
        .await;
    expect_scim_error(put_cycle, 400, Some("invalidValue"));
    let itself = server
        .patch(
            &format!("{SCIM}/Groups/{platform}"),
            patch_op(json!([{"op": "add", "path": "members", "value": [{"value": platform.to_string()}]}])),
        )
        .await;
    expect_scim_error(itself, 400, Some("invalidValue"));
    for (member, declared) in [(alice, "Group"), (engineering, "User"), (engineering, "Device")] {
        let wrong = server
            .patch(
                &format!("{SCIM}/Groups/{platform}"),
                patch_op(json!([{"op": "add", "path": "members", "value": [{"value": member.to_string(), "type": declared}]}])),
            )
            .await;
        let detail = expect_scim_error(wrong, 400, Some("invalidValue"));
        assert!(detail.contains(&member.to_string()), "{detail}");
    }
    let unknown = server
        .patch(
            &format!("{SCIM}/Groups/{platform}"),
            patch_op(json!([{"op": "add", "path": "members", "value": [{"value": Uuid::new_v4().to_string(), "type": "Group"}]}])),
        )
        .await;
    expect_scim_error(unknown, 400, Some("invalidValue"));
    let after = server
        .get(&format!("{SCIM}/Groups/{platform}"))
        .await
        .expect(200)
        .body;
    assert_eq!(after["meta"]["version"], platform_version, "{after:#}");
    assert!(nested_groups(server, platform).await.is_empty());
    assert_eq!(nested_groups(server, all_staff).await, [engineering.to_string()]);

    // PUT replaces the members, users and groups alike: Engineering keeps Platform and gains
    // Alice directly.
    let put = server
        .put(
            &format!("{SCIM}/Groups/{engineering}"),
            json!({"schemas": [GROUP_SCHEMA], "displayName": "Engineering",
                   "members": [{"value": platform.to_string(), "type": "Group"},
                               {"value": alice.to_string(), "type": "User"}]}),
        )
        .await;
    assert_eq!(put.status, 200, "{:#}", put.body);
    let members = scim_members(server, engineering).await;
    assert_eq!(members.len(), 2, "{members:?}");
    assert!(members.contains(&(
        alice.to_string(),
        "User".to_string(),
        format!("{base}/Users/{alice}")
    )));
    assert!(members.contains(&(
        platform.to_string(),
        "Group".to_string(),
        format!("{base}/Groups/{platform}")
    )));

    // A removal filter naming the type takes the nested groups out, not the users: All Staff
    // loses Engineering and Alice's E3 goes (one seat freed).
    server
        .patch(
            &format!("{SCIM}/Groups/{all_staff}"),
            patch_op(json!([{"op": "remove", "path": "members[type eq \"Group\"]"}])),
        )
        .await
        .expect(200);
    assert!(nested_groups(server, all_staff).await.is_empty());
    server.settle().await;
    assert!(e3_from(server, alice, all_staff).await.is_none());
    assert_eq!(server.consumed_units(E3).await, 0);
    server
        .patch(
            &format!("{SCIM}/Groups/{engineering}"),
            patch_op(json!([{"op": "remove", "path": "members[type eq \"Group\"]"}])),
        )
        .await
        .expect(200);
    assert_eq!(
        scim_members(server, engineering).await,
        [(
            alice.to_string(),
            "User".to_string(),
            format!("{base}/Users/{alice}")
        )]
    );
}
