//! Users' directory attributes through Graph (`POST`/`PATCH /users`, `$select`, `$filter`) and
//! dynamic membership groups (`groupTypes: ["DynamicMembership"]`, `membershipRule`,
//! `membershipRuleProcessingState`): memberships and seats follow attribute changes, a paused
//! rule freezes members, bad rules and hand-made memberships are refused with 400, and an
//! instance started on the same database has the same rules and members.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{on_both_backends, TestServer, E3, EMS};

on_both_backends!(
    user_attributes_are_written_read_selected_and_filtered,
    dynamic_groups_follow_attributes_and_the_seats_follow,
    dynamic_group_requests_are_checked,
    a_rule_change_is_previewed_before_anything_is_saved,
    a_group_changes_membership_type_both_ways_previewed_and_audited,
);

async fn create_user_in(server: &TestServer, name: &str, department: &str) -> Uuid {
    server
        .post(
            "/v1.0/users",
            json!({
                "displayName": name,
                "userPrincipalName": format!("{name}@contoso.com"),
                "usageLocation": "US",
                "department": department,
            }),
        )
        .await
        .expect(201)
        .id()
}

async fn members(server: &TestServer, group: Uuid) -> Vec<String> {
    let mut ids: Vec<String> = server
        .get(&format!("/v1.0/groups/{group}/members?$select=id"))
        .await
        .expect(200)
        .body["value"]
        .as_array()
        .expect("members")
        .iter()
        .map(|member| member["id"].as_str().expect("id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[Uuid]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
    ids.sort();
    ids
}

async fn user_attributes_are_written_read_selected_and_filtered(server: &TestServer) {
    let created = server
        .post(
            "/v1.0/users",
            json!({
                "displayName": "Adele",
                "userPrincipalName": "adele@contoso.com",
                "department": "Sales",
                "jobTitle": "Account manager",
                "companyName": "Contoso Ltd",
                "officeLocation": "18/2111",
                "city": "Paris",
                "employeeId": "E-1001",
                "userType": "Member",
                "onPremisesExtensionAttributes": {"extensionAttribute3": "cost-center-42"},
            }),
        )
        .await
        .expect(201);
    let id = created.id();
    // jobTitle and officeLocation are returned by default, as in Graph; department is not.
    assert_eq!(created.body["jobTitle"], "Account manager");
    assert_eq!(created.body["officeLocation"], "18/2111");
    assert!(created.body.get("department").is_none());
    let selected = server
        .get(&format!(
            "/v1.0/users/{id}?$select=department,companyName,city,state,employeeId,userType,onPremisesExtensionAttributes"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(selected["department"], "Sales");
    assert_eq!(selected["companyName"], "Contoso Ltd");
    assert_eq!(selected["city"], "Paris");
    assert_eq!(selected["state"], Value::Null);
    assert_eq!(selected["employeeId"], "E-1001");
    assert_eq!(selected["userType"], "Member");
    assert_eq!(
        selected["onPremisesExtensionAttributes"]["extensionAttribute3"],
        "cost-center-42"
    );
    assert_eq!(
        selected["onPremisesExtensionAttributes"]["extensionAttribute15"],
        Value::Null
    );

    // PATCH changes what is present, null clears, the rest stays.
    server
        .patch(
            &format!("/v1.0/users/{id}"),
            json!({"department": "Marketing", "city": null,
                   "onPremisesExtensionAttributes": {"extensionAttribute3": null, "extensionAttribute7": "x"}}),
        )
        .await
        .expect(204);
    let after = server
        .get(&format!(
            "/v1.0/users/{id}?$select=department,city,companyName,onPremisesExtensionAttributes"
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(after["department"], "Marketing");
    assert_eq!(after["city"], Value::Null);
    assert_eq!(after["companyName"], "Contoso Ltd");
    assert_eq!(
        after["onPremisesExtensionAttributes"]["extensionAttribute3"],
        Value::Null
    );
    assert_eq!(after["onPremisesExtensionAttributes"]["extensionAttribute7"], "x");

    // $filter on an attribute.
    server.create_user("bob", Some("US")).await;
    let filtered = server
        .get("/v1.0/users?$filter=department eq 'Marketing'&$select=id,department")
        .await
        .expect(200)
        .body;
    assert_eq!(
        filtered["value"],
        json!([{"id": id.to_string(), "department": "Marketing"}])
    );

    // A value over Graph's limit is refused and changes nothing.
    let message = server
        .patch(
            &format!("/v1.0/users/{id}"),
            json!({"department": "Finance", "employeeId": "12345678901234567"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("employeeId"), "{message}");
    let unchanged = server
        .get(&format!("/v1.0/users/{id}?$select=department"))
        .await
        .expect(200)
        .body;
    assert_eq!(unchanged["department"], "Marketing");
}

async fn dynamic_groups_follow_attributes_and_the_seats_follow(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 0).await;
    let sales_rule = r#"user.department -eq "Sales""#;
    let sales = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales (dynamic)", "mailEnabled": false, "mailNickname": "sales",
                   "securityEnabled": true, "groupTypes": ["DynamicMembership"],
                   "membershipRule": sales_rule, "membershipRuleProcessingState": "On"}),
        )
        .await
        .expect(201);
    assert_eq!(sales.body["groupTypes"], json!(["DynamicMembership"]));
    assert_eq!(sales.body["membershipRule"], sales_rule);
    assert_eq!(sales.body["membershipRuleProcessingState"], "On");
    let sales = sales.id();
    let marketing = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Marketing (dynamic)", "mailEnabled": false, "mailNickname": "marketing",
                   "securityEnabled": true, "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -in [\"Marketing\", \"Brand\"]"}),
        )
        .await
        .expect(201)
        .id();
    server.assign_to_group(sales, &[E3]).await.expect(202);
    server.assign_to_group(marketing, &[EMS]).await.expect(202);
    let ann = create_user_in(server, "ann", "Sales").await;
    let bob = create_user_in(server, "bob", "Marketing").await;
    server.settle().await;
    assert_eq!(members(server, sales).await, sorted(&[ann]));
    assert_eq!(members(server, marketing).await, sorted(&[bob]));
    assert_eq!(server.consumed_units(E3).await, 1);
    assert_eq!(server.consumed_units(EMS).await, 1);

    // Ann moves to Marketing: memberships, then licenses and seats follow.
    server
        .patch(&format!("/v1.0/users/{ann}"), json!({"department": "Marketing"}))
        .await
        .expect(204);
    assert_eq!(members(server, sales).await, Vec::<String>::new());
    assert_eq!(members(server, marketing).await, sorted(&[ann, bob]));
    server.settle().await;
    assert_eq!(server.consumed_units(E3).await, 0);
    assert_eq!(server.consumed_units(EMS).await, 2);
    assert_eq!(server.state(ann, EMS, Some(marketing)).await["state"], "Active");

    // Paused: attribute changes no longer move anyone.
    server
        .patch(
            &format!("/v1.0/groups/{marketing}"),
            json!({"membershipRuleProcessingState": "Paused"}),
        )
        .await
        .expect(204);
    server
        .patch(&format!("/v1.0/users/{bob}"), json!({"department": "Sales"}))
        .await
        .expect(204);
    assert_eq!(members(server, marketing).await, sorted(&[ann, bob]), "frozen");
    assert_eq!(members(server, sales).await, sorted(&[bob]));
    let paused = server
        .get(&format!("/v1.0/groups/{marketing}"))
        .await
        .expect(200)
        .body;
    assert_eq!(paused["membershipRuleProcessingState"], "Paused");

    // A new rule through PATCH applies at once.
    server
        .patch(
            &format!("/v1.0/groups/{marketing}"),
            json!({"membershipRule": "user.displayName -startsWith \"b\"", "membershipRuleProcessingState": "On"}),
        )
        .await
        .expect(204);
    assert_eq!(members(server, marketing).await, sorted(&[bob]));

    // The audit log records the rule change as "Update group" with the old and new rule.
    let audit = server
        .get("/v1.0/auditLogs/directoryAudits?$filter=activityDisplayName eq 'Update group'")
        .await
        .expect(200)
        .body;
    let text = audit.to_string();
    assert!(text.contains("MembershipRule"), "{text}");
    assert!(text.contains("startsWith"), "{text}");

    // Another instance on the same database has the same rules and members.
    let other = server.start_another().await;
    let group = other
        .get(&format!("/v1.0/groups/{marketing}"))
        .await
        .expect(200)
        .body;
    assert_eq!(group["membershipRule"], "user.displayName -startsWith \"b\"");
    assert_eq!(members(&other, marketing).await, sorted(&[bob]));
    assert_eq!(members(&other, sales).await, sorted(&[bob]));
    other.stop().await;
}

async fn dynamic_group_requests_are_checked(server: &TestServer) {
    let before = server.get("/v1.0/groups").await.expect(200).body["value"]
        .as_array()
        .expect("groups")
        .len();
    let message = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Broken", "mailEnabled": false, "mailNickname": "broken",
                   "securityEnabled": true, "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -eq \"Sales\" -and"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("at character 33"), "{message}");
    for body in [
        json!({"displayName": "No rule", "groupTypes": ["DynamicMembership"]}),
        json!({"displayName": "Rule only", "membershipRule": "user.city -eq \"Paris\""}),
        json!({"displayName": "Bad state", "groupTypes": ["DynamicMembership"],
               "membershipRule": "user.city -eq \"Paris\"", "membershipRuleProcessingState": "Sometimes"}),
    ] {
        server
            .post("/v1.0/groups", body)
            .await
            .expect_error(400, "Request_BadRequest");
    }
    server
        .post(
            "/v1.0/groups",
            json!({"displayName": "M365", "groupTypes": ["Unified"]}),
        )
        .await
        .expect_error(400, "Request_NotSupported");
    let after = server.get("/v1.0/groups").await.expect(200).body["value"]
        .as_array()
        .expect("groups")
        .len();
    assert_eq!(after, before, "nothing was created");

    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Paris", "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.city -eq \"Paris\""}),
        )
        .await
        .expect(201)
        .id();
    let user = server.create_user("carol", Some("US")).await;
    let message = server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}")}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("dynamic membership group"), "{message}");
    let message = server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"membershipRule": "user.city -eq"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("needs a value"), "{message}");
    let kept = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(kept["membershipRule"], "user.city -eq \"Paris\"");
    // groupTypes [] makes it a group with assigned members again.
    server
        .patch(&format!("/v1.0/groups/{group}"), json!({"groupTypes": []}))
        .await
        .expect(204);
    server.add_member(group, user).await;
    let assigned = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(assigned["groupTypes"], json!([]));
    assert_eq!(assigned["membershipRule"], Value::Null);
}

async fn a_rule_change_is_previewed_before_anything_is_saved(server: &TestServer) {
    server.import_seed_products(10, 1, 10, 0).await;
    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales", "groupTypes": ["DynamicMembership"],
                   "membershipRule": "user.department -eq \"Sales\""}),
        )
        .await
        .expect(201)
        .id();
    server.assign_to_group(group, &[E3]).await.expect(202);
    let ann = create_user_in(server, "ann", "Sales").await;
    let bob = create_user_in(server, "bob", "Marketing").await;
    server.settle().await;
    let preview = |rule: &str, state: &str| {
        json!({"changes": [{"type": "setMembershipRule", "groupId": group,
                            "membershipRule": rule, "membershipRuleProcessingState": state}]})
    };
    // Widening the rule: Bob would join, but the one E3 seat is Ann's: he would be in error.
    let report = server
        .post(
            "/licensd/v1/whatif",
            preview("user.department -in [\"Sales\", \"Marketing\"]", "On"),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(report["membershipChanges"][0]["joined"], 1, "{report:#}");
    assert_eq!(report["membershipChanges"][0]["left"], 0);
    assert_eq!(
        report["membershipChanges"][0]["joinedUsers"],
        json!([bob.to_string()])
    );
    assert_eq!(report["newlyBrokenUsers"], 1);
    let e3 = report["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|sku| sku["skuId"] == E3)
        .expect("E3 in the report")
        .clone();
    assert_eq!(e3["waitingUsersAfter"], 1);
    // Moving the rule: Ann would leave and free her seat, Bob would take it.
    let report = server
        .post(
            "/licensd/v1/whatif",
            preview("user.department -eq \"Marketing\"", "On"),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        report["membershipChanges"][0]["leftUsers"],
        json!([ann.to_string()])
    );
    assert_eq!(
        report["membershipChanges"][0]["joinedUsers"],
        json!([bob.to_string()])
    );
    assert_eq!(report["newlyBrokenUsers"], 0);
    // Pausing changes no member.
    let report = server
        .post(
            "/licensd/v1/whatif",
            preview("user.department -eq \"Marketing\"", "Paused"),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(report["membershipChanges"], json!([]));
    // An invalid rule is refused with its position; nothing was saved by any preview.
    let message = server
        .post("/licensd/v1/whatif", preview("user.department -eq", "On"))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("character"), "{message}");
    assert_eq!(members(server, group).await, sorted(&[ann]));
    let saved = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(saved["membershipRule"], "user.department -eq \"Sales\"");
    assert_eq!(server.consumed_units(E3).await, 1);
}

/// The `modifiedProperties` entry named `name` of the audit records of `activity` for a target.
async fn audited_changes(server: &TestServer, target: Uuid, name: &str) -> Vec<(String, String)> {
    let log = server
        .get(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id eq '{target}')"
        ))
        .await
        .expect(200)
        .body;
    let mut changes = Vec::new();
    for record in log["value"].as_array().expect("value") {
        if record["activityDisplayName"] != "Update group" {
            continue;
        }
        for property in record["targetResources"][0]["modifiedProperties"]
            .as_array()
            .expect("modifiedProperties")
        {
            if property["displayName"] == name {
                changes.push((
                    property["oldValue"].as_str().expect("old").to_string(),
                    property["newValue"].as_str().expect("new").to_string(),
                ));
            }
        }
    }
    changes
}

/// Entra ID's membership type change through `PATCH /groups/{id}`: `groupTypes: []` makes a
/// dynamic group assigned again, keeping its members and licenses (the rule may be sent back
/// unchanged; the what-if predicts no change); `["DynamicMembership"]` with a rule makes an
/// assigned group dynamic, members then follow the rule and licenses follow them (previewed
/// first). Both are audited as "Update group" with the old and new groupTypes; bad requests change
/// nothing; nested groups and dynamic groups do not mix.
async fn a_group_changes_membership_type_both_ways_previewed_and_audited(server: &TestServer) {
    server.import_seed_products(10, 10, 10, 0).await;
    let rule = r#"user.department -eq "Sales""#;
    let group = server
        .post(
            "/v1.0/groups",
            json!({"displayName": "Sales", "groupTypes": ["DynamicMembership"], "membershipRule": rule}),
        )
        .await
        .expect(201)
        .id();
    server.assign_to_group(group, &[E3]).await.expect(202);
    let ann = create_user_in(server, "ann", "Sales").await;
    let bob = create_user_in(server, "bob", "Marketing").await;
    let carol = create_user_in(server, "carol", "Sales").await;
    server.settle().await;
    assert_eq!(members(server, group).await, sorted(&[ann, carol]));
    assert_eq!(server.consumed_units(E3).await, 2);

    // Dynamic → assigned, previewed: nothing changes now.
    let report = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "setMembershipRule", "groupId": group, "membershipRule": null}]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(report["membershipChanges"], json!([]), "{report:#}");
    assert_eq!(report["changedUsers"], 0);
    // A different rule with groupTypes [] is refused; nothing changes.
    server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"groupTypes": [], "membershipRule": "user.city -eq \"Paris\""}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    let kept = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(kept["groupTypes"], json!(["DynamicMembership"]));
    // The group as read, without "DynamicMembership": assigned, same members and licenses.
    server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"groupTypes": [], "membershipRule": rule, "membershipRuleProcessingState": "On"}),
        )
        .await
        .expect(204);
    let assigned = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(assigned["groupTypes"], json!([]));
    assert_eq!(assigned["membershipRule"], Value::Null);
    assert_eq!(members(server, group).await, sorted(&[ann, carol]));
    server.settle().await;
    assert_eq!(server.consumed_units(E3).await, 2);
    assert_eq!(server.state(ann, E3, Some(group)).await["state"], "Active");
    // Attributes no longer move anyone; members are added by hand.
    server
        .patch(&format!("/v1.0/users/{ann}"), json!({"department": "Marketing"}))
        .await
        .expect(204);
    server.add_member(group, bob).await;
    server.settle().await;
    assert_eq!(members(server, group).await, sorted(&[ann, bob, carol]));
    assert_eq!(server.consumed_units(E3).await, 3);

    // Assigned → dynamic, previewed: Ann and Bob would leave and free their seats.
    let report = server
        .post(
            "/licensd/v1/whatif",
            json!({"changes": [{"type": "setMembershipRule", "groupId": group, "membershipRule": rule}]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(report["membershipChanges"][0]["joined"], 0, "{report:#}");
    assert_eq!(report["membershipChanges"][0]["left"], 2);
    let e3 = report["skus"]
        .as_array()
        .expect("skus")
        .iter()
        .find(|sku| sku["skuId"] == E3)
        .expect("E3 in the report")
        .clone();
    assert_eq!(
        (
            e3["consumedUnitsBefore"].clone(),
            e3["consumedUnitsAfter"].clone()
        ),
        (json!(3), json!(1))
    );
    assert_eq!(
        members(server, group).await,
        sorted(&[ann, bob, carol]),
        "a preview saves nothing"
    );
    // "DynamicMembership" without a rule is refused (the group has none any more).
    server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"groupTypes": ["DynamicMembership"]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"groupTypes": ["DynamicMembership"], "membershipRule": rule,
                   "membershipRuleProcessingState": "On"}),
        )
        .await
        .expect(204);
    assert_eq!(members(server, group).await, sorted(&[carol]));
    server.settle().await;
    assert_eq!(server.consumed_units(E3).await, 1);
    assert_eq!(server.states(bob).await, Vec::<Value>::new());
    server
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{bob}")}),
        )
        .await
        .expect_error(400, "Request_BadRequest");

    // Audited as "Update group" with the old and new groupTypes, rule and member count.
    let types = audited_changes(server, group, "GroupTypes").await;
    assert!(
        types.contains(&("[DynamicMembership]".to_string(), "[]".to_string())),
        "{types:?}"
    );
    assert!(
        types.contains(&("[]".to_string(), "[DynamicMembership]".to_string())),
        "{types:?}"
    );
    let rules = audited_changes(server, group, "MembershipRule").await;
    assert!(rules.contains(&(rule.to_string(), String::new())), "{rules:?}");
    assert!(rules.contains(&(String::new(), rule.to_string())), "{rules:?}");
    let counts = audited_changes(server, group, "MemberCount").await;
    assert!(counts.contains(&("3".to_string(), "1".to_string())), "{counts:?}");

    // Nested groups: none in a dynamic group, and a group with nested groups is not made dynamic.
    let platform = server.create_group("Platform").await;
    let reference =
        |id: Uuid| json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")});
    server
        .post(&format!("/v1.0/groups/{group}/members/$ref"), reference(platform))
        .await
        .expect_error(400, "Request_BadRequest");
    let staff = server.create_group("All Staff").await;
    server
        .post(&format!("/v1.0/groups/{staff}/members/$ref"), reference(platform))
        .await
        .expect(204);
    let message = server
        .patch(
            &format!("/v1.0/groups/{staff}"),
            json!({"groupTypes": ["DynamicMembership"], "membershipRule": rule}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("Platform"), "{message}");
    let staff_now = server
        .get(&format!("/v1.0/groups/{staff}"))
        .await
        .expect(200)
        .body;
    assert_eq!(staff_now["groupTypes"], json!([]));
}
