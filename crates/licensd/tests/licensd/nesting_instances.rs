//! Two `licensd serve` processes on one PostgreSQL database (issue 17): a nesting edge added and
//! removed, a user attribute changed and a dynamic group's rule changed through the first are
//! seen through the second — the nested member's license, the license following the department,
//! the rule's new members' licenses — within the bound of any other write
//! ([`FRESH_READ_BOUND`] once the first shows it), caught up from the change log: `/readyz` of
//! the second counts incremental catch-ups and no full reload, and its log has no reload.

use std::time::{Duration, Instant};

use licensd_fixtures::seed_world::{SeedSeats, SeedWorld, EMS_E3, OFFICE_365_E3};
use serde_json::{json, Value};

use crate::durability::{catch_up_counts, FRESH_READ_BOUND};
use crate::support::{http, store_tenant, Server, TestDatabase};

/// A user's license assignment states through an instance.
fn states(address: &str, token: &str, user: &str) -> Vec<Value> {
    let (status, body) = http(
        address,
        "GET",
        &format!("/v1.0/users/{user}?$select=id,licenseAssignmentStates"),
        token,
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["licenseAssignmentStates"]
        .as_array()
        .expect("states")
        .clone()
}

/// Whether a user holds an Active state of `sku` from `group`.
fn holds(address: &str, token: &str, user: &str, sku: &str, group: &str) -> bool {
    states(address, token, user)
        .iter()
        .any(|state| state["skuId"] == sku && state["assignedByGroup"] == group && state["state"] == "Active")
}

/// Waits until `expected` holds through the first instance (processing done), then checks the
/// second agrees within [`FRESH_READ_BOUND`]; returns how long the second took.
fn seen_through_both(first: &str, second: &Server, what: &str, expected: impl Fn(&str) -> bool) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !expected(first) {
        assert!(
            Instant::now() < deadline,
            "the first instance never showed {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let through_second = second.address();
    loop {
        if expected(&through_second) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < FRESH_READ_BOUND,
            "the second instance did not show {what} within {FRESH_READ_BOUND:?}: {}",
            second.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn send(address: &str, token: &str, method: &str, path: &str, body: Value, expected: u16) -> Value {
    let (status, answer) = http(address, method, path, token, Some(&body));
    assert_eq!(status, expected, "{method} {path}: {answer}");
    answer
}

#[test]
fn nesting_attribute_and_rule_changes_are_caught_up_incrementally_by_another_instance_postgres() {
    let Some(database) = TestDatabase::postgres("nesting_instances") else {
        return;
    };
    let world = SeedWorld::new(SeedSeats {
        office_365_e1: 10,
        office_365_e3: 10,
        ems_e3: 10,
        workplace_analytics: 10,
    })
    .expect("seed world");
    store_tenant(&database, &world.engine);
    let token = licensd_runtime::access::generate_token_text().expect("a token");
    let environment = [("LICENSD_BOOTSTRAP_TOKEN", token.as_str())];
    let mut first = Server::start_with(&database, "first", 50, 20, &environment);
    first.wait_until_serving(Duration::from_secs(60));
    let through_first = first.address();
    let token = token.as_str();

    // The tenant, through the first: transitive licensing on; All Staff (E3) and Engineering
    // with Alice; a dynamic group Sales (EMS E3) for the Sales department; Bob in Marketing,
    // Carol in Support.
    send(
        &through_first,
        token,
        "PATCH",
        "/licensd/v1/settings",
        json!({"transitiveLicensing": true}),
        200,
    );
    let create_group = |name: &str, extra: Value| -> String {
        let mut body = json!({"displayName": name, "mailEnabled": false,
                              "mailNickname": name.replace(' ', ""), "securityEnabled": true});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        send(&through_first, token, "POST", "/v1.0/groups", body, 201)["id"]
            .as_str()
            .expect("a group id")
            .to_string()
    };
    let create_user = |name: &str, department: &str| -> String {
        send(
            &through_first,
            token,
            "POST",
            "/v1.0/users",
            json!({"displayName": name, "userPrincipalName": format!("{name}@contoso.com"),
                   "mailNickname": name, "usageLocation": "US", "accountEnabled": true,
                   "department": department}),
            201,
        )["id"]
            .as_str()
            .expect("a user id")
            .to_string()
    };
    let all_staff = create_group("All Staff", json!({}));
    let engineering = create_group("Engineering", json!({}));
    let sales = create_group(
        "Sales",
        json!({"groupTypes": ["DynamicMembership"], "membershipRule": "user.department -eq \"Sales\"",
               "membershipRuleProcessingState": "On"}),
    );
    let alice = create_user("alice", "Engineering");
    let bob = create_user("bob", "Marketing");
    let carol = create_user("carol", "Support");
    for (group, sku) in [(&all_staff, OFFICE_365_E3), (&sales, EMS_E3)] {
        send(
            &through_first,
            token,
            "POST",
            &format!("/v1.0/groups/{group}/assignLicense"),
            json!({"addLicenses": [{"skuId": sku.to_string(), "disabledPlans": []}], "removeLicenses": []}),
            202,
        );
    }
    send(
        &through_first,
        token,
        "POST",
        &format!("/v1.0/groups/{engineering}/members/$ref"),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{alice}")}),
        204,
    );

    // The second instance loads the tenant as it is now; what follows it must catch up on.
    let mut second = Server::start_with(&database, "second", 50, 20, &environment);
    second.wait_until_serving(Duration::from_secs(60));
    let (incremental_before, reloads_before) = catch_up_counts(&second.address());
    let (e3, ems) = (OFFICE_365_E3.to_string(), EMS_E3.to_string());

    // 1. Engineering nested in All Staff: Alice gets All Staff's E3.
    send(
        &through_first,
        token,
        "POST",
        &format!("/v1.0/groups/{all_staff}/members/$ref"),
        json!({"@odata.id": format!("https://graph.microsoft.com/v1.0/groups/{engineering}")}),
        204,
    );
    let nested = seen_through_both(&through_first, &second, "Alice's E3 through the nesting", |at| {
        holds(at, token, &alice, &e3, &all_staff)
    });
    let (status, members) = http(
        &second.address(),
        "GET",
        &format!("/v1.0/groups/{all_staff}/members/microsoft.graph.group"),
        token,
        None,
    );
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["value"][0]["id"], engineering.as_str(), "{members}");

    // 2. Bob's department becomes Sales: he joins the dynamic group and gets its EMS E3.
    send(
        &through_first,
        token,
        "PATCH",
        &format!("/v1.0/users/{bob}"),
        json!({"department": "Sales"}),
        204,
    );
    let attribute = seen_through_both(&through_first, &second, "Bob's EMS E3 from Sales", |at| {
        holds(at, token, &bob, &ems, &sales)
    });

    // 3. Sales' rule now names Support: Carol joins and is licensed, Bob leaves and loses it.
    send(
        &through_first,
        token,
        "PATCH",
        &format!("/v1.0/groups/{sales}"),
        json!({"membershipRule": "user.department -eq \"Support\"", "membershipRuleProcessingState": "On"}),
        204,
    );
    let rule = seen_through_both(&through_first, &second, "the rule change's licenses", |at| {
        holds(at, token, &carol, &ems, &sales)
            && !states(at, token, &bob)
                .iter()
                .any(|state| state["assignedByGroup"] == sales.as_str())
    });

    // 4. Engineering out of All Staff again: Alice's E3 goes.
    let (status, body) = http(
        &through_first,
        "DELETE",
        &format!("/v1.0/groups/{all_staff}/members/{engineering}/$ref"),
        token,
        None,
    );
    assert_eq!(status, 204, "{body}");
    let unnested = seen_through_both(
        &through_first,
        &second,
        "Alice's E3 gone with the nesting",
        |at| {
            !states(at, token, &alice)
                .iter()
                .any(|state| state["assignedByGroup"] == all_staff.as_str())
        },
    );

    let (incremental, reloads) = catch_up_counts(&second.address());
    assert_eq!(
        reloads,
        reloads_before,
        "the second instance reloaded the tenant: {}",
        second.log_text()
    );
    assert!(
        incremental > incremental_before,
        "the second instance caught up {incremental} times incrementally"
    );
    assert!(!second.log_text().contains("tenant reloaded from the store"));
    println!(
        "seen through the second instance after the first: nesting {nested:?}, attribute {attribute:?}, \
         rule {rule:?}, un-nesting {unnested:?} ({} incremental catch-ups)",
        incremental - incremental_before
    );
    first.stop();
    second.stop();
}
