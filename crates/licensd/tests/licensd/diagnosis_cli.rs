//! The diagnosis commands end to end: `licensd explain user|group`, `licensd whatif FILE`,
//! `licensd apply FILE` and `licensd advisor` run as processes against `licensd demo`, their
//! tables and `--json` output checked against the demo tenant's known errors (user001's E3 in
//! conflict with its direct E1, Mobility's users waiting for EMS seats), a fix's prediction
//! checked against what applying it really does, and the exit codes: 0 success, 1 refused,
//! 2 bad usage (an unreadable or malformed changes file), 3 server unreachable.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::admin_cli::{run_cli, sku_id, wait_for_json, DemoServer};

/// Writes `document` as a changes file in the server's directory.
fn write_changes(server: &DemoServer, name: &str, document: &Value) -> PathBuf {
    let path = server.directory.path().join(name);
    std::fs::write(&path, serde_json::to_string_pretty(document).expect("JSON"))
        .expect("write the changes file");
    path
}

/// The problem of a user diagnosis on a product, if any.
fn problem<'a>(diagnosis: &'a Value, sku_id: &str) -> Option<&'a Value> {
    diagnosis["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .find(|problem| problem["skuId"] == sku_id)
}

fn fix_of_kind<'a>(fixes: &'a Value, kind: &str) -> &'a Value {
    fixes
        .as_array()
        .expect("fixes")
        .iter()
        .find(|fix| fix["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} fix in {fixes:#}"))
}

fn plan_names(plans: &Value) -> Vec<&str> {
    plans
        .as_array()
        .expect("plans")
        .iter()
        .filter_map(|plan| plan["servicePlanName"].as_str())
        .collect()
}

#[test]
fn explain_user_names_the_conflicting_plans_and_group_and_the_fix_comes_true() {
    let server = DemoServer::start();
    let e1 = sku_id(&server, "STANDARDPACK");
    let e3 = sku_id(&server, "ENTERPRISEPACK");

    // The table: the assignment in error, its group, the conflicting plans and the fixes.
    let table = server.text(&["explain", "user", "user001@contoso.com"]);
    assert!(table.starts_with("user001@contoso.com ("), "{table}");
    assert!(
        table.contains(
            "ENTERPRISEPACK from group \"Sales - Office 365 E3\": MutuallyExclusiveViolation (Error)"
        ),
        "{table}"
    );
    assert!(table.contains("Rule: mutuallyExclusiveWith"), "{table}");
    assert!(
        table.contains("Other assignment: STANDARDPACK (direct)"),
        "{table}"
    );
    assert!(table.contains("Exchange Online (Plan 2)"), "{table}");
    assert!(table.contains("Exchange Online (Plan 1)"), "{table}");
    assert!(table.contains("[redundant license]"), "{table}");

    // The JSON: the API's shape.
    let diagnosis = server.json(&["explain", "user", "user001@contoso.com"]);
    assert_eq!(diagnosis["userPrincipalName"], "user001@contoso.com");
    let user_id = diagnosis["id"].as_str().expect("id").to_string();
    let conflict = problem(&diagnosis, &e3).expect("the E3 problem").clone();
    assert_eq!(conflict["error"], "MutuallyExclusiveViolation");
    assert_eq!(conflict["groupDisplayName"], "Sales - Office 365 E3");
    let involvement = &conflict["involvement"];
    assert_eq!(involvement["rule"], "mutuallyExclusiveWith");
    assert_eq!(involvement["otherAssignment"]["skuId"], e1.as_str());
    assert_eq!(involvement["otherAssignment"]["assignedByGroup"], Value::Null);
    let plans = plan_names(&involvement["plans"]);
    assert!(plans.contains(&"EXCHANGE_S_ENTERPRISE"), "{plans:?}");
    assert!(plans.contains(&"SHAREPOINTENTERPRISE"), "{plans:?}");
    let other_plans = plan_names(&involvement["otherPlans"]);
    assert!(other_plans.contains(&"EXCHANGE_S_STANDARD"), "{other_plans:?}");
    assert!(other_plans.contains(&"SHAREPOINTSTANDARD"), "{other_plans:?}");

    // The same user by id gives the same diagnosis.
    let by_id = server.json(&["explain", "user", &user_id]);
    assert_eq!(by_id["problems"], diagnosis["problems"]);

    // whatif of the removal's changes predicts the error cleared and changes nothing.
    let removal = fix_of_kind(&conflict["fixes"], "RemoveConflictingDirectLicense");
    assert_eq!(removal["redundantLicense"], true);
    let file = write_changes(&server, "fix.json", &json!({"changes": removal["changes"]}));
    let file_argument = file.to_str().expect("UTF-8 path");
    let prediction = server.json(&["whatif", file_argument]);
    assert_eq!(prediction["fixedUsers"], 1, "{prediction:#}");
    assert_eq!(prediction["newlyBrokenUsers"], 0, "{prediction:#}");
    let predicted = prediction["users"]
        .as_array()
        .expect("users")
        .iter()
        .find(|user| user["userId"] == user_id.as_str())
        .expect("user001 is predicted");
    assert_eq!(predicted["effect"], "Fixed");
    assert_eq!(predicted["seatsFreed"], json!([e1]));
    let table = server.text(&["whatif", file_argument]);
    assert!(table.contains("1 fixed, 0 newly broken"), "{table}");
    assert!(table.contains("Fixed user001@contoso.com"), "{table}");
    // Nothing was applied.
    let unchanged = server.json(&["explain", "user", "user001@contoso.com"]);
    assert_eq!(
        problem(&unchanged, &e3).map(|problem| &problem["error"]),
        Some(&json!("MutuallyExclusiveViolation"))
    );

    // apply of the same file applies every change, and after processing the error is gone.
    let applied = server.json(&["apply", file_argument]);
    assert_eq!(
        applied["appliedChanges"],
        removal["changes"].as_array().expect("changes").len()
    );
    let healed = wait_for_json(
        &server,
        &["explain", "user", "user001@contoso.com"],
        "user001's error to clear",
        |diagnosis| diagnosis["queued"] == false && diagnosis["problems"] == json!([]),
    );
    assert_eq!(healed["id"], user_id.as_str());
    // Self-healing history: the removal re-queued user001, whose error cleared.
    assert_eq!(
        healed["lastSelfHealing"]["reason"], "DirectLicenseRemoved",
        "{healed:#}"
    );
    assert_eq!(healed["lastSelfHealing"]["skuId"], e1.as_str());
    assert_eq!(healed["lastSelfHealing"]["errorsCleared"], true);
    let table = server.text(&["explain", "user", "user001@contoso.com"]);
    assert!(table.contains("No license errors."), "{table}");
    assert!(
        table.contains(" because its direct Office 365 E1 license was removed; its errors cleared."),
        "{table}"
    );
    assert!(table.contains("Re-evaluated automatically on "), "{table}");
    // The prediction's states came true: E3 from the group, active, and no E1 any more.
    let shown = server.json(&["user", "show", "user001@contoso.com"]);
    let states: Vec<(String, String)> = shown["user"]["licenseAssignmentStates"]
        .as_array()
        .expect("states")
        .iter()
        .map(|state| {
            (
                state["skuId"].as_str().unwrap_or_default().to_string(),
                state["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let predicted_states: Vec<(String, String)> = predicted["statesAfter"]
        .as_array()
        .expect("predicted states")
        .iter()
        .map(|state| {
            (
                state["skuId"].as_str().unwrap_or_default().to_string(),
                state["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        predicted_states.iter().all(|(sku, _)| *sku != e1),
        "{predicted_states:?}"
    );
    for expected in &predicted_states {
        assert!(states.contains(expected), "{states:?} lacks {expected:?}");
    }
    assert!(
        states.iter().all(|(sku, _)| *sku != e1),
        "E1 was removed: {states:?}"
    );

    let missing = server.run(&["explain", "user", "nobody@contoso.com"]);
    missing.assert_exit(1);
    assert!(
        missing
            .stderr
            .starts_with("error: explaining user nobody@contoso.com: "),
        "{}",
        missing.stderr
    );
    assert!(
        missing.stderr.contains("Request_ResourceNotFound"),
        "{}",
        missing.stderr
    );
}

#[test]
fn explain_group_groups_the_waiting_members_and_buying_seats_clears_them() {
    let server = DemoServer::start();
    let ems = sku_id(&server, "EMS");
    let diagnosis = server.json(&["explain", "group", "Mobility - EMS E3"]);
    assert_eq!(diagnosis["displayName"], "Mobility - EMS E3");
    assert_eq!(diagnosis["usersInError"], 10);
    let causes = diagnosis["causes"].as_array().expect("causes");
    assert_eq!(causes.len(), 1, "{diagnosis:#}");
    let cause = &causes[0];
    assert_eq!(cause["error"], "CountViolation");
    assert_eq!(cause["skuId"], ems.as_str());
    assert_eq!(cause["userCount"], 10);
    assert_eq!(
        cause["involvement"]["seats"],
        json!({"prepaidUnits": 140, "consumedUnits": 140, "waitingUsers": 10})
    );
    let users: Vec<&str> = cause["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|user| user["userPrincipalName"].as_str())
        .collect();
    let expected: Vec<String> = (121..=130)
        .map(|number| format!("user{number:03}@contoso.com"))
        .collect();
    assert_eq!(users, expected);
    let buy = fix_of_kind(&cause["fixes"], "BuySeats");
    assert_eq!(buy["clearedUsers"], 10);
    // user121 keeps its blocked E3 removal (DependencyViolation), so 9 users are left with no
    // error at all.
    assert_eq!(buy["prediction"]["fixedUsers"], 9);
    assert_eq!(buy["prediction"]["newlyBrokenUsers"], 0);

    let table = server.text(&["explain", "group", "Mobility - EMS E3"]);
    assert!(table.contains("Mobility - EMS E3 ("), "{table}");
    assert!(table.contains("): 10 member(s) in error"), "{table}");
    assert!(table.contains("CountViolation on EMS: 10 user(s)"), "{table}");
    assert!(
        table.contains("Seats: 140 purchased, 140 assigned, 10 user(s) waiting"),
        "{table}"
    );
    assert!(table.contains("EMS: purchased 140 -> 150"), "{table}");

    // The bare array of a fix's changes is a valid file too; applying it clears the group.
    let file = write_changes(&server, "buy.json", &buy["changes"]);
    let applied = server.json(&["apply", file.to_str().expect("UTF-8 path")]);
    assert_eq!(
        applied["appliedChanges"],
        buy["changes"].as_array().expect("changes").len()
    );
    wait_for_json(
        &server,
        &["explain", "group", "Mobility - EMS E3"],
        "the waiting members to get their seats",
        |diagnosis| diagnosis["usersInError"] == 0,
    );
    let products = server.json(&["sku", "list"]);
    let ems_row = products["value"]
        .as_array()
        .expect("products")
        .iter()
        .find(|product| product["skuId"] == ems.as_str())
        .expect("EMS")
        .clone();
    assert_eq!(ems_row["prepaidUnits"], 150);
    assert_eq!(ems_row["consumedUnits"], 150);
    assert_eq!(ems_row["waitingUsers"], 0);

    let unknown = server.run(&["explain", "group", "No such group"]);
    unknown.assert_exit(1);
    assert!(
        unknown.stderr.contains("no group is named 'No such group'")
            || unknown.stderr.contains("Request_ResourceNotFound"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn bad_changes_files_exit_with_2_and_refused_changes_with_1() {
    let server = DemoServer::start();
    let directory = server.directory.path();

    let missing = directory.join("missing.json");
    let not_json = write_changes(&server, "placeholder.json", &json!(null));
    std::fs::write(&not_json, "{ this is not JSON").expect("write");
    let no_changes = write_changes(&server, "no-changes.json", &json!({"change": []}));
    let scalar = write_changes(&server, "scalar.json", &json!(42));
    let bad_change = write_changes(
        &server,
        "bad-change.json",
        &json!([{"type": "launchRockets", "userId": "user001@contoso.com"}]),
    );
    let cases: [(&PathBuf, &str); 5] = [
        (&missing, "error: reading "),
        (&not_json, "is not JSON"),
        (&no_changes, "has no \"changes\""),
        (
            &scalar,
            "must hold an array of changes or an object with \"changes\"",
        ),
        (&bad_change, "are not valid"),
    ];
    for command in ["whatif", "apply"] {
        for (file, message) in cases {
            let output = server.run(&[command, file.to_str().expect("UTF-8 path")]);
            output.assert_exit(2);
            assert!(output.stdout.is_empty(), "{}", output.stdout);
            assert!(
                output.stderr.starts_with("error: ") && output.stderr.contains(message),
                "{command} {}: {}",
                file.display(),
                output.stderr
            );
            assert!(
                output.stderr.contains(&file.display().to_string()),
                "the message names the file: {}",
                output.stderr
            );
        }
    }
    // Missing the file argument is a usage error too.
    server.run(&["whatif"]).assert_exit(2);

    // A well-formed change the engine refuses: exit 1, naming the change (counted from 0);
    // nothing applied.
    // user125 waits for an EMS seat: a direct EMS license is refused (no seat is free).
    let ems = sku_id(&server, "EMS");
    let user = server.json(&["user", "show", "user125@contoso.com"]);
    let user_id = user["user"]["id"].as_str().expect("id").to_string();
    let refused_file = write_changes(
        &server,
        "refused.json",
        &json!({"changes": [
            {"type": "reprocessUser", "userId": user_id},
            {"type": "assignUserLicenses", "userId": user_id, "addLicenses": [{"skuId": ems}]}
        ]}),
    );
    let refused_argument = refused_file.to_str().expect("UTF-8 path");
    let refused = server.run(&["whatif", refused_argument]);
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("Change 1 would be refused"),
        "{}",
        refused.stderr
    );
    let refused = server.run(&["apply", refused_argument]);
    refused.assert_exit(1);
    assert!(
        refused.stderr.starts_with("error: applying the changes: "),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("Change 1 was refused (changes 0 to 0 were applied)"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("CountViolation"), "{}", refused.stderr);
    let after = server.json(&["user", "show", "user125@contoso.com"]);
    assert!(
        after["user"]["licenseAssignmentStates"]
            .as_array()
            .expect("states")
            .iter()
            .all(|state| !(state["skuId"] == ems.as_str() && state["assignedByGroup"].is_null())),
        "no direct EMS license: {after:#}"
    );
}

#[test]
fn advisor_reports_the_redundant_e1_and_the_exhausted_ems() {
    let server = DemoServer::start();
    let report = server.json(&["advisor"]);
    let redundant = report["redundantDirectAssignments"]
        .as_array()
        .expect("redundant assignments");
    let user001 = redundant
        .iter()
        .find(|finding| finding["user"]["userPrincipalName"] == "user001@contoso.com")
        .unwrap_or_else(|| panic!("user001's E1 is redundant: {report:#}"));
    assert_eq!(user001["skuPartNumber"], "STANDARDPACK");
    assert_eq!(user001["groupDisplayName"], "Sales - Office 365 E3");
    assert_eq!(user001["reason"], "SupersededByGroupProduct");
    assert_eq!(user001["freesSeat"], true);
    let exhausted = report["productsNearExhaustion"]
        .as_array()
        .expect("exhaustion")
        .iter()
        .find(|product| product["skuPartNumber"] == "EMS")
        .unwrap_or_else(|| panic!("EMS is exhausted: {report:#}"));
    assert_eq!(exhausted["availableUnits"], 0);
    assert_eq!(exhausted["waitingUsers"], 10);
    assert!(
        exhausted["shortfall"]
            .as_u64()
            .is_some_and(|shortfall| shortfall >= 10),
        "{exhausted}"
    );

    let table = server.text(&["advisor"]);
    let redundant_count = redundant.len();
    assert!(
        table.starts_with(&format!("Redundant direct assignments: {redundant_count}\n")),
        "{table}"
    );
    assert!(
        table.contains(
            "  user001@contoso.com STANDARDPACK (SupersededByGroupProduct from group \"Sales - Office 365 E3\", frees a seat)"
        ),
        "{table}"
    );
    assert!(table.contains("Products near exhaustion: "), "{table}");
    assert!(table.contains("  EMS: 0 available, 10 waiting"), "{table}");
}

#[test]
fn diagnosis_commands_exit_with_3_when_the_server_is_unreachable() {
    let home = tempfile::tempdir().expect("temporary directory");
    let file = home.path().join("changes.json");
    std::fs::write(&file, "[]").expect("write");
    let file = file.to_str().expect("UTF-8 path");
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port");
    let url = format!("http://127.0.0.1:{port}");
    for arguments in [
        vec!["explain", "user", "user001@contoso.com"],
        vec!["explain", "group", "Sales - Office 365 E3"],
        vec!["whatif", file],
        vec!["apply", file],
        vec!["advisor"],
    ] {
        let mut all = arguments.clone();
        all.extend(["--server", &url]);
        let output = run_cli(&all, home.path(), &[("LICENSD_TOKEN", "unused")]);
        output.assert_exit(3);
        assert!(output.stdout.is_empty(), "{}", output.stdout);
        assert!(output.stderr.starts_with("error: "), "{}", output.stderr);
    }
}
