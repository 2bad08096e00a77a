//! The command line as a user runs it: `licensd demo --no-serve` prints the demo tenant with every
//! error of the seed; bad arguments fail with a clear message and a non-zero exit code.

use std::process::Command;

fn licensd(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_licensd"))
        .args(arguments)
        .output()
        .expect("run licensd")
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
    let log = server.log_text();
    let address = log
        .split("licensd is serving address=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the address in the log")
        .to_string();
    for tenant in [&contoso, &fabrikam] {
        let output = Command::new(env!("CARGO_BIN_EXE_licensd"))
            .args(["sku", "list", "--json", "--server", &format!("http://{address}")])
            .env("LICENSD_TOKEN", tenant["token"].as_str().expect("token"))
            .env("HOME", database.directory.path())
            .output()
            .expect("run licensd");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    server.stop();
}
