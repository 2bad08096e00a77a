//! Nested groups over real HTTP (issue 17): a group added to a group by `members/$ref`, listed
//! among the members as `#microsoft.graph.group`, in `transitiveMembers`, `memberOf` and
//! `transitiveMemberOf`; a cycle refused with nothing changed; transitive licensing turned on
//! through `/licensd/v1/settings` licenses the nested member (the state names the group that
//! carries the license, the explained state the path); removing the edge frees the seat.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{on_both_backends, TestServer, E3};

on_both_backends!(
    nested_groups_are_added_listed_refused_in_cycles_and_license_transitively_when_enabled,
    a_nesting_change_is_previewed_by_what_if_before_anything_is_saved,
);

fn ids(body: &Value) -> Vec<String> {
    body["value"]
        .as_array()
        .expect("a collection")
        .iter()
        .map(|item| item["id"].as_str().expect("an id").to_string())
        .collect()
}

async fn nest(server: &TestServer, group: Uuid, member: Uuid) -> crate::support::Reply {
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{member}")}),
        )
        .await
}

async fn nested_groups_are_added_listed_refused_in_cycles_and_license_transitively_when_enabled(
    server: &TestServer,
) {
    server.import_seed_products(10, 10, 10, 10).await;
    let all_staff = server.create_group("All Staff").await;
    let engineering = server.create_group("Engineering").await;
    let platform = server.create_group("Platform").await;
    let alice = server.create_user("alice", Some("US")).await;
    let bob = server.create_user("bob", Some("US")).await;
    server.add_member(platform, alice).await;
    server.add_member(all_staff, bob).await;
    nest(server, all_staff, engineering).await.expect(204);
    nest(server, engineering, platform).await.expect(204);
    server.assign_to_group(all_staff, &[E3]).await.expect(202);

    // Listing: users first, then nested groups typed as groups.
    let members = server
        .get(&format!("/v1.0/groups/{all_staff}/members"))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&members), vec![bob.to_string(), engineering.to_string()]);
    assert_eq!(members["value"][1]["@odata.type"], "#microsoft.graph.group");
    assert_eq!(members["value"][1]["displayName"], "Engineering");
    let groups = server
        .get(&format!("/v1.0/groups/{all_staff}/members/microsoft.graph.group"))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&groups), vec![engineering.to_string()]);
    let transitive = server
        .get(&format!("/v1.0/groups/{all_staff}/transitiveMembers"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        ids(&transitive),
        vec![
            bob.to_string(),
            alice.to_string(),
            engineering.to_string(),
            platform.to_string()
        ]
    );
    let member = server
        .get(&format!("/v1.0/groups/{engineering}/members/{platform}"))
        .await
        .expect(200)
        .body;
    assert_eq!(member["@odata.type"], "#microsoft.graph.group");
    let parents = server
        .get(&format!("/v1.0/groups/{platform}/memberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&parents), vec![engineering.to_string()]);
    let ancestors = server
        .get(&format!("/v1.0/groups/{platform}/transitiveMemberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        ids(&ancestors),
        vec![engineering.to_string(), all_staff.to_string()]
    );
    let alice_direct = server
        .get(&format!("/v1.0/users/{alice}/memberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&alice_direct), vec![platform.to_string()]);
    let alice_transitive = server
        .get(&format!("/v1.0/users/{alice}/transitiveMemberOf"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        ids(&alice_transitive),
        vec![
            platform.to_string(),
            engineering.to_string(),
            all_staff.to_string()
        ]
    );

    // A cycle is refused and changes nothing; so is a group nested twice.
    let message = nest(server, platform, all_staff)
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        message.contains("cycle") || message.contains("already a member"),
        "{message}"
    );
    nest(server, platform, platform)
        .await
        .expect_error(400, "Request_BadRequest");
    nest(server, all_staff, engineering)
        .await
        .expect_error(400, "Request_BadRequest");
    let platform_members = server
        .get(&format!("/v1.0/groups/{platform}/members"))
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&platform_members), vec![alice.to_string()]);

    // Entra's behaviour by default: only the direct member is licensed.
    server.settle().await;
    assert!(server.states(alice).await.is_empty());
    assert_eq!(server.consumed_units(E3).await, 1);
    let settings = server.get("/licensd/v1/settings").await.expect(200).body;
    assert_eq!(settings["transitiveLicensing"], false);

    // Transitive licensing on: Alice receives All Staff's product through the path.
    let settings = server
        .patch("/licensd/v1/settings", json!({"transitiveLicensing": true}))
        .await
        .expect(200)
        .body;
    assert_eq!(settings["transitiveLicensing"], true);
    server.settle().await;
    let state = server.state(alice, E3, Some(all_staff)).await;
    assert_eq!(state["state"], "Active");
    assert_eq!(server.consumed_units(E3).await, 2);
    let explained = server
        .get(&format!("/licensd/v1/users/{alice}/licenseAssignmentStates"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        explained["value"][0]["licensedThrough"]["text"],
        "via Platform → Engineering → All Staff"
    );
    assert_eq!(
        explained["value"][0]["licensedThrough"]["groupIds"],
        json!([platform, engineering, all_staff])
    );

    // Removing the nesting edge removes the license and frees the seat.
    server
        .delete(&format!("/v1.0/groups/{engineering}/members/{platform}/$ref"))
        .await
        .expect(204);
    server.settle().await;
    assert!(server.states(alice).await.is_empty());
    assert_eq!(server.consumed_units(E3).await, 1);
    server
        .delete(&format!("/v1.0/groups/{engineering}/members/{platform}/$ref"))
        .await
        .expect_error(404, "Request_ResourceNotFound");

    // Audited like any membership change.
    let audits = server
        .get("/v1.0/auditLogs/directoryAudits?$top=50")
        .await
        .expect(200)
        .body;
    let nesting_records = audits["value"]
        .as_array()
        .expect("records")
        .iter()
        .filter(|record| {
            record["activityDisplayName"] == "Add member to group"
                && record["targetResources"][0]["id"] == json!(engineering)
        })
        .count();
    assert_eq!(nesting_records, 1, "{audits:#}");
    let setting_change = audits["value"]
        .as_array()
        .expect("records")
        .iter()
        .find(|record| record["activityDisplayName"] == "Update company settings")
        .expect("the setting change is audited");
    let changed = &setting_change["targetResources"][0]["modifiedProperties"];
    assert!(
        changed
            .as_array()
            .expect("modified properties")
            .iter()
            .any(|property| {
                property["displayName"] == "TransitiveLicensing"
                    && property["oldValue"] == "false"
                    && property["newValue"] == "true"
            }),
        "{setting_change:#}"
    );
}

/// What-if of a nesting change and of the setting: who would gain a license, who would get a
/// new error (not enough seats), seats per product; nothing is saved, and a cycle is refused.
async fn a_nesting_change_is_previewed_by_what_if_before_anything_is_saved(server: &TestServer) {
    server.import_seed_products(10, 2, 10, 10).await;
    let all_staff = server.create_group("All Staff").await;
    let engineering = server.create_group("Engineering").await;
    let bob = server.create_user("bob", Some("US")).await;
    let alice = server.create_user("alice", Some("US")).await;
    let carol = server.create_user("carol", Some("US")).await;
    server.add_member(all_staff, bob).await;
    server.add_member(engineering, alice).await;
    server.add_member(engineering, carol).await;
    server.assign_to_group(all_staff, &[E3]).await.expect(202);
    server.settle().await;
    let changes = json!([
        {"type": "addGroupMemberGroup", "groupId": all_staff, "memberGroupId": engineering},
        {"type": "setTransitiveLicensing", "enabled": true},
    ]);
    let what_if = server
        .post("/licensd/v1/whatif", json!({"changes": changes}))
        .await
        .expect(200)
        .body;
    assert_eq!(what_if["changedUsers"], 2, "{what_if:#}");
    assert_eq!(
        what_if["newlyBrokenUsers"], 1,
        "one seat left for two users: {what_if:#}"
    );
    let e3 = what_if["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|sku| sku["skuId"] == E3)
        .expect("E3 predicted")
        .clone();
    assert_eq!(
        (
            e3["consumedUnitsBefore"].clone(),
            e3["consumedUnitsAfter"].clone()
        ),
        (json!(1), json!(2))
    );
    // Nothing was saved.
    assert_eq!(server.consumed_units(E3).await, 1);
    assert!(server.states(alice).await.is_empty());
    let settings = server.get("/licensd/v1/settings").await.expect(200).body;
    assert_eq!(settings["transitiveLicensing"], false);
    let members = server
        .get(&format!("/v1.0/groups/{all_staff}/members/microsoft.graph.group"))
        .await
        .expect(200)
        .body;
    assert_eq!(members["value"], json!([]));
    // The setting alone changes nothing while nothing is nested.
    let alone = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "setTransitiveLicensing", "enabled": true}]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(alone["changedUsers"], 0);
    // A cycle in the preview is refused like the change itself.
    server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [
                {"type": "addGroupMemberGroup", "groupId": all_staff, "memberGroupId": engineering},
                {"type": "addGroupMemberGroup", "groupId": engineering, "memberGroupId": all_staff},
            ]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    // Applied, the prediction comes true.
    server
        .post("/licensd/v1/changes", json!({"changes": changes}))
        .await
        .expect(200);
    server.settle().await;
    assert_eq!(server.consumed_units(E3).await, 2);
    let alice_state = server.state(alice, E3, Some(all_staff)).await;
    let carol_state = server.state(carol, E3, Some(all_staff)).await;
    assert_eq!(alice_state["state"], "Active", "the older membership first");
    assert_eq!(carol_state["error"], "CountViolation");
    // The diagnosis says which path the failing license comes through.
    let diagnosis = server
        .get(&format!("/licensd/v1/users/{carol}/diagnosis"))
        .await
        .expect(200)
        .body;
    assert_eq!(diagnosis["problems"][0]["assignedByGroup"], json!(all_staff));
    assert_eq!(
        diagnosis["problems"][0]["licensedThrough"], "via Engineering → All Staff",
        "{diagnosis:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_licensed_groups_processing_state_counts_queued_nested_members_sqlite() {
    let database = crate::support::TestDatabase::sqlite();
    a_licensed_groups_processing_state_counts_queued_nested_members(database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_licensed_groups_processing_state_counts_queued_nested_members_postgres() {
    if let Some(database) = crate::support::TestDatabase::postgres("nested_processing_state") {
        a_licensed_groups_processing_state_counts_queued_nested_members(database).await;
    }
}

async fn processing_state(server: &TestServer, group: Uuid) -> String {
    server
        .get(&format!("/v1.0/groups/{group}?$select=id,licenseProcessingState"))
        .await
        .expect(200)
        .body["licenseProcessingState"]["state"]
        .as_str()
        .expect("a processing state")
        .to_string()
}

/// With the processor held (no wake-up on writes, an hour between rounds) a nested member stays
/// queued: with transitive licensing on, the licensed group above it is not complete while it
/// is; with the setting off, only its own group waits for it. Once processing runs (a restart
/// with the usual configuration), every group is complete and the member holds the license.
async fn a_licensed_groups_processing_state_counts_queued_nested_members(
    database: crate::support::TestDatabase,
) {
    let held = |config: &mut licensd_server::ServerConfig| {
        config.processing_wake_on_write = false;
        config.processing_idle_interval = std::time::Duration::from_secs(3600);
    };
    let server = TestServer::start_with(database, held).await;
    server.import_seed_products(0, 10, 0, 0).await;
    server
        .patch("/licensd/v1/settings", json!({"transitiveLicensing": true}))
        .await
        .expect(200);
    let all_staff = server.create_group("All Staff").await;
    let engineering = server.create_group("Engineering").await;
    let platform = server.create_group("Platform").await;
    nest(&server, all_staff, engineering).await.expect(204);
    nest(&server, engineering, platform).await.expect(204);
    server.assign_to_group(all_staff, &[E3]).await.expect(202);
    let alice = server.create_user("alice", Some("US")).await;
    server.add_member(platform, alice).await;
    let overview = server.get("/licensd/v1/overview").await.expect(200).body;
    assert_eq!(overview["queuedUsers"], 1, "{overview:#}");

    // All Staff has no direct member; Alice, two levels below it and queued, counts for it.
    assert_eq!(processing_state(&server, all_staff).await, "QueuedForProcessing");
    assert_eq!(
        processing_state(&server, engineering).await,
        "QueuedForProcessing"
    );
    assert_eq!(processing_state(&server, platform).await, "QueuedForProcessing");
    let listed = server
        .get("/v1.0/groups?$select=id,licenseProcessingState&$top=999")
        .await
        .expect(200)
        .body;
    let all_staff_listed = listed["value"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|group| group["id"] == all_staff.to_string())
        .expect("All Staff listed")
        .clone();
    assert_eq!(
        all_staff_listed["licenseProcessingState"]["state"], "QueuedForProcessing",
        "{all_staff_listed:#}"
    );

    // Entra's behaviour (setting off): only direct members count.
    server
        .patch("/licensd/v1/settings", json!({"transitiveLicensing": false}))
        .await
        .expect(200);
    assert_eq!(processing_state(&server, all_staff).await, "ProcessingComplete");
    assert_eq!(processing_state(&server, platform).await, "QueuedForProcessing");
    server
        .patch("/licensd/v1/settings", json!({"transitiveLicensing": true}))
        .await
        .expect(200);
    assert_eq!(processing_state(&server, all_staff).await, "QueuedForProcessing");

    // Processing runs: complete everywhere, and Alice holds All Staff's E3.
    let server = server.restart(|_| {}).await;
    server.settle().await;
    for group in [all_staff, engineering, platform] {
        assert_eq!(processing_state(&server, group).await, "ProcessingComplete");
    }
    let state = server.state(alice, E3, Some(all_staff)).await;
    assert_eq!(state["state"], "Active", "{state:#}");
    server.stop().await;
}
