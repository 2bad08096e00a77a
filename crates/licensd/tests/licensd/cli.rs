//! The command line as a user runs it: `licensd demo --no-serve` prints the demo tenant with every
//! error of the seed; bad arguments fail with a clear message and a non-zero exit code.

use std::process::Command;

fn licensd(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_licensd"))
        .args(arguments)
        .output()
        .expect("run licensd")
}

/// The address a started server logged it serves on.
fn serving_address(server: &crate::support::Server) -> String {
    server
        .log_text()
        .split("licensd is serving address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address in the log")
        .to_string()
}

/// `licensd sku list --json` against the server at `address` with `token`; must succeed.
fn list_products(address: &str, token: &str, home: &std::path::Path) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_licensd"))
        .args(["sku", "list", "--json", "--server", &format!("http://{address}")])
        .env("LICENSD_TOKEN", token)
        .env("HOME", home)
        .output()
        .expect("run licensd");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

#[test]
fn demo_prints_every_error_of_the_seed_and_the_groups_needing_attention() {
    let output = licensd(&["demo", "--no-serve"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("300 users, 5 groups"), "{text}");
    assert!(text.contains("3 groups need your attention"), "{text}");
    for kind in [
        "CountViolation",
        "MutuallyExclusiveViolation",
        "DependencyViolation",
        "ProhibitedInUsageLocationViolation",
        "UniquenessViolation",
    ] {
        assert!(text.contains(kind), "{kind} missing from the demo: {text}");
    }
    assert!(text.contains("Enterprise Mobility + Security E3 (EMS)"), "{text}");
}

#[test]
fn bad_arguments_fail_with_a_message_and_a_non_zero_exit_code() {
    let output = licensd(&["serve", "--listen", "not-an-address"]);
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("--listen"), "{message}");
    let output = licensd(&["no-such-command"]);
    assert!(!output.status.success());
}

#[test]
fn tenants_are_created_with_their_own_administrator_and_served_apart() {
    let database = crate::support::TestDatabase::sqlite();
    let create = |name: &str| {
        let output = licensd(&[
            "tenant",
            "create",
            "--name",
            name,
            "--default-usage-location",
            "FR",
            "--json",
            "--database-url",
            &database.url,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON")
    };
    let contoso = create("Contoso");
    let fabrikam = create("Fabrikam");
    let listed = licensd(&["tenant", "list", "--database-url", &database.url]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    for tenant in [&contoso, &fabrikam] {
        assert!(
            listed.contains(tenant["tenantId"].as_str().expect("id")),
            "{listed}"
        );
    }
    let refused = licensd(&[
        "tenant",
        "create",
        "--name",
        "X",
        "--default-usage-location",
        "Narnia",
        "--database-url",
        &database.url,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--default-usage-location"));
    // A server on that database serves each tenant to its own token.
    let mut server = crate::support::Server::start(&database, "tenants", 100);
    server.wait_until_serving(std::time::Duration::from_secs(60));
    let address = serving_address(&server);
    for tenant in [&contoso, &fabrikam] {
        let token = tenant["token"].as_str().expect("token");
        list_products(&address, token, database.directory.path());
    }
    server.stop();
}

fn copy_directory(source: &std::path::Path, target: &std::path::Path) {
    std::fs::create_dir_all(target).expect("a directory");
    for entry in std::fs::read_dir(source).expect("the fixture") {
        let entry = entry.expect("an entry");
        let path = entry.path();
        if path.is_dir() {
            copy_directory(&path, &target.join(entry.file_name()));
        } else {
            std::fs::copy(&path, target.join(entry.file_name())).expect("a copy");
        }
    }
}

/// `licensd import` stores the users' last sign-in and leave date from the export, where the
/// admin API's activity routes (and reclamation policies) read them.
#[test]
fn import_stores_the_users_sign_in_activity_and_leave_dates() {
    let directory = tempfile::tempdir().expect("a directory");
    let export = directory.path().join("export");
    copy_directory(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../import/tests/fixtures/contoso"),
        &export,
    );
    let users_path = export.join("users.json");
    let mut users: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&users_path).expect("users.json")).expect("json");
    users["value"][0]["signInActivity"] = serde_json::json!({"lastSignInDateTime": "2026-08-01T10:00:00Z"});
    users["value"][1]["employeeLeaveDateTime"] = serde_json::json!("2026-10-31T00:00:00Z");
    std::fs::write(&users_path, users.to_string()).expect("write users.json");
    let database_url = format!("sqlite://{}", directory.path().join("licensd.db").display());
    let output = licensd(&[
        "import",
        export.to_str().expect("a path"),
        "--database-url",
        &database_url,
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(outcome["report"]["loaded"]["usersWithActivity"], 2, "{outcome:#}");
    let mut store = licensd_store::Store::open(&database_url).expect("the store");
    let tenant = store.tenant_ids().expect("tenants")[0];
    let user = |index: usize| {
        licensd_engine::Uuid::parse_str(users["value"][index]["id"].as_str().expect("id")).expect("a GUID")
    };
    let first = store
        .user_activity(tenant, user(0))
        .expect("read")
        .expect("stored");
    assert_eq!(
        first.last_sign_in,
        licensd_api_types::time::parse_date_time("2026-08-01T10:00:00Z")
    );
    assert_eq!(first.leave_date, None);
    let second = store
        .user_activity(tenant, user(1))
        .expect("read")
        .expect("stored");
    assert_eq!(
        second.leave_date,
        licensd_api_types::time::parse_date_time("2026-10-31T00:00:00Z")
    );
    assert!(store.user_activity(tenant, user(2)).expect("read").is_none());
}

#[test]
fn a_generated_tenant_with_token_is_served_to_that_token() {
    let database = crate::support::TestDatabase::sqlite();
    let generate = |seed: &str, token: bool| {
        let mut arguments = vec![
            "gen",
            "--users",
            "40",
            "--groups",
            "4",
            "--skus",
            "3",
            "--seed",
            seed,
            "--database-url",
            &database.url,
        ];
        if token {
            arguments.push("--token");
        }
        let output = licensd(&arguments);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    // Without --token nothing secret is printed; with it, the token's line.
    let plain = generate("7", false);
    assert!(plain.starts_with("tenant "), "{plain}");
    assert!(!plain.contains("token "), "{plain}");
    let printed = generate("8", true);
    let tenant_id = printed
        .strip_prefix("tenant ")
        .and_then(|rest| rest.split(':').next())
        .expect("the tenant's id")
        .to_string();
    let token = printed
        .lines()
        .find_map(|line| line.strip_prefix("token "))
        .expect("the token's line")
        .to_string();
    let mut server = crate::support::Server::start(&database, "generated", 100);
    server.wait_until_serving(std::time::Duration::from_secs(60));
    let address = serving_address(&server);
    let products = list_products(&address, &token, database.directory.path());
    let products = products
        .get("value")
        .and_then(|value| value.as_array())
        .or_else(|| products.as_array())
        .expect("a list of products")
        .len();
    assert_eq!(products, 3, "the generated tenant {tenant_id} holds 3 products");
    server.stop();
}
