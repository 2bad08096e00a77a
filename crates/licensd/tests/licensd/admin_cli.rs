//! The admin CLI end to end: each command (`sku list`, `user show`, `group show`, `errors`,
//! `assign`/`unassign`, `reprocess`, `seats set`) run as a process against `licensd demo` serving
//! the demo tenant on a free port, with its tables, its `--json` output parsed, and the exit codes
//! scripts rely on: 0 success, 1 refused, 2 bad usage or configuration, 3 server unreachable.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `licensd demo` serving the demo tenant from a fresh directory; killed when dropped.
pub(crate) struct DemoServer {
    child: Child,
    pub(crate) url: String,
    /// The demo's Global Administrator token (given to it as `LICENSD_BOOTSTRAP_TOKEN`).
    pub(crate) token: String,
    pub(crate) directory: tempfile::TempDir,
}

impl DemoServer {
    pub(crate) fn start() -> DemoServer {
        let mut directory = tempfile::tempdir().expect("temporary directory");
        let token = licensd_runtime::access::generate_token_text().expect("a token");
        // A free port can be taken by another test between our probe and the demo's bind: retry.
        for attempt in 0..5 {
            let port = free_port();
            let log = directory.path().join(format!("demo-{attempt}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_licensd"))
                .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
                .arg(directory.path().join("data"))
                .env("LICENSD_LOG", "warn")
                .env("LICENSD_BOOTSTRAP_TOKEN", &token)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("start licensd demo");
            let mut server = DemoServer {
                child,
                url: format!("http://127.0.0.1:{port}"),
                token: token.clone(),
                directory,
            };
            if server.wait_until_listening(port, &log) {
                return server;
            }
            directory = server.take_directory();
        }
        panic!("licensd demo did not start on any of 5 free ports");
    }

    /// Whether the server listens; false if it exited (its port was taken).
    fn wait_until_listening(&mut self, port: u16, log: &Path) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return true;
            }
            if let Some(status) = self.child.try_wait().expect("wait") {
                println!(
                    "licensd demo exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
                return false;
            }
            assert!(
                Instant::now() < deadline,
                "licensd demo did not listen within 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn take_directory(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let replacement = tempfile::tempdir().expect("temporary directory");
        std::mem::replace(&mut self.directory, replacement)
    }

    /// Runs `licensd <arguments> --server <this server>`.
    pub(crate) fn run(&self, arguments: &[&str]) -> CliOutput {
        let mut all: Vec<&str> = arguments.to_vec();
        all.extend(["--server", &self.url]);
        run_cli(&all, self.directory.path(), &[("LICENSD_TOKEN", &self.token)])
    }

    /// Runs the command with `--json` and parses its output, failing the test if it failed.
    pub(crate) fn json(&self, arguments: &[&str]) -> Value {
        let mut all: Vec<&str> = arguments.to_vec();
        all.push("--json");
        let output = self.run(&all);
        output.assert_exit(0);
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|error| panic!("{arguments:?} --json is not JSON ({error}): {}", output.stdout))
    }

    /// Runs the command and returns its table, failing the test if it failed.
    pub(crate) fn text(&self, arguments: &[&str]) -> String {
        let output = self.run(arguments);
        output.assert_exit(0);
        output.stdout
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// A finished CLI process.
pub(crate) struct CliOutput {
    arguments: Vec<String>,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl CliOutput {
    pub(crate) fn assert_exit(&self, expected: i32) {
        assert_eq!(
            self.code,
            Some(expected),
            "licensd {:?}\nstdout:\n{}\nstderr:\n{}",
            self.arguments,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs the CLI with a home directory of its own (no configuration file unless the test writes
/// one) and none of the caller's licensd variables, plus `variables`.
pub(crate) fn run_cli(arguments: &[&str], home: &Path, variables: &[(&str, &str)]) -> CliOutput {
    let mut command = Command::new(env!("CARGO_BIN_EXE_licensd"));
    command
        .args(arguments)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("LICENSD_CLI_CONFIG")
        .env_remove("LICENSD_SERVER")
        .env_remove("LICENSD_TOKEN");
    for (name, value) in variables {
        command.env(name, value);
    }
    let output: Output = command.output().expect("run licensd");
    CliOutput {
        arguments: arguments.iter().map(|argument| argument.to_string()).collect(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// The user's direct assignment of a product in `user show --json` (Graph's state), if any.
fn direct_state<'a>(document: &'a Value, sku_id: &str) -> Option<&'a Value> {
    document["user"]["licenseAssignmentStates"]
        .as_array()
        .expect("states")
        .iter()
        .find(|state| state["skuId"] == sku_id && state["assignedByGroup"].is_null())
}

pub(crate) fn sku_id(server: &DemoServer, part_number: &str) -> String {
    let products = server.json(&["sku", "list"]);
    products["value"]
        .as_array()
        .expect("products")
        .iter()
        .find(|product| product["skuPartNumber"] == part_number)
        .and_then(|product| product["skuId"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no product {part_number}"))
}

/// Polls `check` on the JSON of a command until it holds (background processing).
pub(crate) fn wait_for_json(
    server: &DemoServer,
    arguments: &[&str],
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let document = server.json(arguments);
        if check(&document) {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {document:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sku_list_shows_every_product_with_its_seats() {
    let server = DemoServer::start();
    let table = server.text(&["sku", "list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PRODUCT"), "{table}");
    assert!(
        lines[0].contains("PURCHASED  ASSIGNED  AVAILABLE  WAITING"),
        "{table}"
    );
    assert_eq!(lines.len(), 5, "a header and four products: {table}");
    let ems = lines.iter().find(|line| line.contains(" EMS ")).expect("EMS row");
    assert!(ems.starts_with("Enterprise Mobility + Security E3"), "{table}");
    assert!(ems.ends_with("140       140          0       10"), "{table}");

    let products = server.json(&["sku", "list"]);
    let products = products["value"].as_array().expect("value");
    let part_numbers: Vec<&str> = products
        .iter()
        .filter_map(|product| product["skuPartNumber"].as_str())
        .collect();
    assert_eq!(
        part_numbers,
        ["STANDARDPACK", "ENTERPRISEPACK", "EMS", "WORKPLACE_ANALYTICS"]
    );
    let ems = &products[2];
    assert_eq!(ems["prepaidUnits"], 140);
    assert_eq!(ems["availableUnits"], 0);
    assert_eq!(ems["waitingUsers"], 10);
}

#[test]
fn user_show_gives_each_assignment_its_state_error_and_explanation() {
    let server = DemoServer::start();
    let table = server.text(&["user", "show", "user001@contoso.com"]);
    assert!(
        table.starts_with("User             user001@contoso.com\n"),
        "{table}"
    );
    assert!(
        table.contains("Member of        Sales - Office 365 E3, Mobility - EMS E3"),
        "{table}"
    );
    assert!(table.contains("STANDARDPACK    direct"), "{table}");
    assert!(
        table.contains("ENTERPRISEPACK  group Sales - Office 365 E3  Error   MutuallyExclusiveViolation"),
        "{table}"
    );
    assert!(
        table.contains("Conflicting service plans: Exchange Online (Plan 2)"),
        "{table}"
    );

    // user 121 left Sales but keeps its E3 (a blocked removal): the group is still named.
    let document = server.json(&["user", "show", "user121@contoso.com"]);
    let user_id = document["user"]["id"].as_str().expect("id").to_string();
    assert_eq!(document["user"]["userPrincipalName"], "user121@contoso.com");
    assert_eq!(document["memberOf"][0]["displayName"], "Mobility - EMS E3");
    let explained = document["explainedLicenseStates"].as_array().expect("explained");
    let errors: Vec<(&str, &str)> = explained
        .iter()
        .filter(|state| state["error"] != "None")
        .map(|state| {
            assert!(
                state["explanation"].as_str().is_some_and(|text| !text.is_empty()),
                "{state}"
            );
            (
                state["skuPartNumber"].as_str().unwrap_or_default(),
                state["error"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("ENTERPRISEPACK", "DependencyViolation"),
            ("EMS", "CountViolation")
        ]
    );
    assert_eq!(
        document["user"]["licenseAssignmentStates"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let by_id = server.text(&["user", "show", &user_id]);
    assert!(
        by_id.contains("group Sales - Office 365 E3  ActiveWithError  DependencyViolation"),
        "{by_id}"
    );

    let missing = server.run(&["user", "show", "nobody@contoso.com"]);
    missing.assert_exit(1);
    assert!(missing.stdout.is_empty(), "{}", missing.stdout);
    assert!(
        missing
            .stderr
            .starts_with("error: reading user nobody@contoso.com: "),
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
fn group_show_gives_licenses_processing_members_and_members_in_error() {
    let server = DemoServer::start();
    let table = server.text(&["group", "show", "Sales - Office 365 E3"]);
    assert!(
        table.contains("Processing           ProcessingComplete"),
        "{table}"
    );
    assert!(table.contains("Members              120\n"), "{table}");
    assert!(table.contains("Members with errors  8\n"), "{table}");
    assert!(
        table.contains("ENTERPRISEPACK  6fd2c87f-b296-42f0-b197-1e91e994b900  none"),
        "{table}"
    );
    assert!(
        table.contains("user061@contoso.com  ENTERPRISEPACK  Error            UniquenessViolation"),
        "{table}"
    );

    let document = server.json(&["group", "show", "Sales - Office 365 E3"]);
    let group_id = document["group"]["id"].as_str().expect("id").to_string();
    assert_eq!(document["memberCount"], 120);
    assert_eq!(
        document["group"]["licenseProcessingState"]["state"],
        "ProcessingComplete"
    );
    let members = document["membersWithLicenseErrors"].as_array().expect("members");
    assert_eq!(members.len(), 8);
    assert!(members
        .iter()
        .all(|member| member["licenseAssignmentStates"]
            .as_array()
            .is_some_and(|states| states
                .iter()
                .any(|state| state["assignedByGroup"] == group_id.as_str() && state["error"] != "None"))));

    // By id, and a group with few enabled plans.
    let by_id = server.json(&["group", "show", &group_id]);
    assert_eq!(by_id["group"]["displayName"], "Sales - Office 365 E3");
    let pilot = server.text(&["group", "show", "analytics pilot"]);
    assert!(
        pilot.contains("35 of 36 (enabled: EXCHANGE_S_ENTERPRISE)"),
        "{pilot}"
    );
    assert!(pilot.contains("Members with errors  0"), "{pilot}");

    let unknown = server.run(&["group", "show", "No such group"]);
    unknown.assert_exit(1);
    assert!(
        unknown.stderr.contains("no group is named 'No such group'"),
        "{}",
        unknown.stderr
    );
    let unknown_id = server.run(&["group", "show", "00000000-0000-4000-8000-000000000000"]);
    unknown_id.assert_exit(1);
    assert!(
        unknown_id.stderr.contains("Request_ResourceNotFound"),
        "{}",
        unknown_id.stderr
    );
}

#[test]
fn errors_lists_every_user_in_error_by_group_and_kind() {
    let server = DemoServer::start();
    let report = server.json(&["errors"]);
    assert_eq!(report["usersWithErrors"], 22);
    assert_eq!(report["assignmentsWithErrors"], 23);
    let groups = report["groups"].as_array().expect("groups");
    let summary: Vec<(String, Vec<(String, usize)>)> = groups
        .iter()
        .map(|group| {
            let kinds = group["errorsByKind"]
                .as_object()
                .expect("kinds")
                .iter()
                .map(|(kind, users)| (kind.clone(), users.as_array().map(Vec::len).unwrap_or(0)))
                .collect();
            (
                group["displayName"].as_str().unwrap_or_default().to_string(),
                kinds,
            )
        })
        .collect();
    let expected = |name: &str, kinds: &[(&str, usize)]| {
        (
            name.to_string(),
            kinds
                .iter()
                .map(|(kind, count)| (kind.to_string(), *count))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        summary,
        [
            expected(
                "Sales - Office 365 E3",
                &[
                    ("DependencyViolation", 1),
                    ("MutuallyExclusiveViolation", 5),
                    ("UniquenessViolation", 2)
                ]
            ),
            expected("Mobility - EMS E3", &[("CountViolation", 10)]),
            expected(
                "Frontline - Office 365 E1",
                &[("ProhibitedInUsageLocationViolation", 5)]
            ),
        ]
    );
    let first = &groups[0]["errorsByKind"]["MutuallyExclusiveViolation"][0];
    assert_eq!(first["userPrincipalName"], "user001@contoso.com");
    assert_eq!(first["skuPartNumber"], "ENTERPRISEPACK");
    assert_eq!(first["state"], "Error");
    assert_eq!(report["directAssignments"]["usersWithErrors"], 0);

    let table = server.text(&["errors"]);
    assert!(
        table.starts_with("22 users have license errors, in 23 license assignments.\n"),
        "{table}"
    );
    assert!(table.contains("Mobility - EMS E3 ("), "{table}");
    assert!(
        table.contains("CountViolation  user130@contoso.com  EMS      Error"),
        "{table}"
    );
    assert!(
        table.contains("ProhibitedInUsageLocationViolation            5"),
        "{table}"
    );
}

#[test]
fn assign_and_unassign_change_a_users_direct_licenses() {
    let server = DemoServer::start();
    let e3 = sku_id(&server, "ENTERPRISEPACK");
    let assigned = server.json(&[
        "assign",
        "user",
        "user125@contoso.com",
        "enterprisepack",
        "--disable-plan",
        "TEAMS1,SWAY",
    ]);
    let state = direct_state(&assigned, &e3).expect("a direct E3 state");
    assert_eq!(state["state"], "Active");
    assert_eq!(state["disabledPlans"].as_array().map(Vec::len), Some(2));

    // Assigning again replaces the disabled plans; the table says what happened.
    let table = server.text(&["assign", "user", "user125@contoso.com", &e3]);
    assert!(
        table.starts_with("Assigned ENTERPRISEPACK to user125@contoso.com directly.\n"),
        "{table}"
    );
    assert!(table.contains("ENTERPRISEPACK  direct"), "{table}");
    let document = server.json(&["user", "show", "user125@contoso.com"]);
    let state = direct_state(&document, &e3).expect("still assigned");
    assert_eq!(state["disabledPlans"], serde_json::json!([]));

    let removed = server.json(&["unassign", "user", "user125@contoso.com", "ENTERPRISEPACK"]);
    assert!(direct_state(&removed, &e3).is_none(), "{removed:#}");
    let not_assigned = server.run(&["unassign", "user", "user125@contoso.com", "ENTERPRISEPACK"]);
    not_assigned.assert_exit(1);
    assert!(
        not_assigned.stderr.contains("invalid_license_request"),
        "{}",
        not_assigned.stderr
    );
}

#[test]
fn refused_requests_exit_with_1_and_name_the_graph_error() {
    let server = DemoServer::start();
    // EMS has no free seat.
    let refused = server.run(&["assign", "user", "user125@contoso.com", "EMS"]);
    refused.assert_exit(1);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    for expected in [
        "error: assigning EMS to user user125@contoso.com: ",
        "Request_BadRequest",
        "license_assignment_failed",
        "CountViolation",
        "request-id ",
    ] {
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
    }
    // No E3 seat left once the seats are lowered to those assigned.
    server.json(&["seats", "set", "ENTERPRISEPACK", "134"]);
    let refused = server.run(&[
        "assign",
        "user",
        "user125@contoso.com",
        "ENTERPRISEPACK",
        "--json",
    ]);
    refused.assert_exit(1);
    assert!(
        refused.stdout.is_empty(),
        "no JSON on failure: {}",
        refused.stdout
    );
    assert!(refused.stderr.contains("CountViolation"), "{}", refused.stderr);
    // A conflicting plan, checked at once.
    let refused = server.run(&["assign", "user", "user001@contoso.com", "ENTERPRISEPACK"]);
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("MutuallyExclusiveViolation"),
        "{}",
        refused.stderr
    );

    let unknown_product = server.run(&["assign", "user", "user125@contoso.com", "SPE_E5"]);
    unknown_product.assert_exit(1);
    assert!(
        unknown_product
            .stderr
            .contains("the tenant has no product 'SPE_E5'; its products are: STANDARDPACK, ENTERPRISEPACK"),
        "{}",
        unknown_product.stderr
    );
    let unknown_id = server.run(&[
        "assign",
        "group",
        "Sales - Office 365 E3",
        "00000000-0000-4000-8000-0000000000e5",
    ]);
    unknown_id.assert_exit(1);
    let unknown_plan = server.run(&[
        "assign",
        "user",
        "user125@contoso.com",
        "ENTERPRISEPACK",
        "--disable-plan",
        "NO_SUCH_PLAN",
    ]);
    unknown_plan.assert_exit(1);
    assert!(
        unknown_plan
            .stderr
            .contains("ENTERPRISEPACK has no service plan 'NO_SUCH_PLAN'"),
        "{}",
        unknown_plan.stderr
    );
    // A group's missing prerequisite is refused at once (Workplace Analytics needs Exchange).
    let refused = server.run(&["assign", "group", "Mobility - EMS E3", "WORKPLACE_ANALYTICS"]);
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("DependencyViolation"),
        "{}",
        refused.stderr
    );
    let missing_user = server.run(&["reprocess", "user", "nobody@contoso.com"]);
    missing_user.assert_exit(1);
}

#[test]
fn group_licenses_change_in_the_background_and_reprocess_queues_members() {
    let server = DemoServer::start();
    let ems = sku_id(&server, "EMS");
    let removed = server.json(&["unassign", "group", "Mobility - EMS E3", "EMS"]);
    let group_id = removed["group"]["id"].as_str().expect("id").to_string();
    assert_eq!(removed["group"]["assignedLicenses"], serde_json::json!([]));
    assert_eq!(removed["group"]["displayName"], "Mobility - EMS E3");
    // The 120 members who held EMS through the group give their seats back.
    wait_for_json(&server, &["sku", "list"], "EMS seats freed", |products| {
        products["value"]
            .as_array()
            .and_then(|products| products.iter().find(|product| product["skuId"] == ems.as_str()))
            .is_some_and(|product| product["consumedUnits"] == 20 && product["waitingUsers"] == 0)
    });

    let table = server.text(&["assign", "group", &group_id, "EMS", "--disable-plan", "INTUNE_A"]);
    assert!(
        table.starts_with(&format!("Assigned EMS to group Mobility - EMS E3 ({group_id})")),
        "{table}"
    );
    assert!(
        table.contains(&format!("Follow it with: licensd group show {group_id}")),
        "{table}"
    );
    let group = wait_for_json(
        &server,
        &["group", "show", &group_id],
        "the group processed",
        |document| {
            document["group"]["licenseProcessingState"]["state"] == "ProcessingComplete"
                && document["membersWithLicenseErrors"].as_array().map(Vec::len) == Some(10)
        },
    );
    assert_eq!(
        group["group"]["assignedLicenses"][0]["disabledPlans"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let reprocessed = server.json(&["reprocess", "group", "Mobility - EMS E3"]);
    assert_eq!(reprocessed["group"]["id"], group_id.as_str());
    let table = server.text(&["reprocess", "group", &group_id]);
    assert!(
        table.starts_with("Queued the members of group Mobility - EMS E3"),
        "{table}"
    );
    let user = server.json(&["reprocess", "user", "user122@contoso.com"]);
    assert_eq!(user["user"]["userPrincipalName"], "user122@contoso.com");
    let table = server.text(&["reprocess", "user", "user122@contoso.com"]);
    assert!(
        table.starts_with("Queued user122@contoso.com for license processing"),
        "{table}"
    );
}

#[test]
fn seats_set_buys_seats_that_waiting_users_then_receive() {
    let server = DemoServer::start();
    let product = server.json(&["seats", "set", "EMS", "150"]);
    assert_eq!(product["skuPartNumber"], "EMS");
    assert_eq!(product["prepaidUnits"], 150);
    // Self-healing hands the ten new seats to the ten waiting users.
    let report = wait_for_json(&server, &["errors"], "the EMS errors resolved", |report| {
        report["usersWithErrors"] == 13
    });
    assert!(report["groups"].as_array().is_some_and(|groups| groups
        .iter()
        .all(|group| group["displayName"] != "Mobility - EMS E3")));
    let table = server.text(&["seats", "set", "EMS", "145"]);
    assert_eq!(
        table,
        "Enterprise Mobility + Security E3 (EMS): 145 purchased, 150 assigned, 0 available, 0 waiting.\n\
         5 more seats are assigned than purchased; nothing is taken away.\n"
    );
    let unknown = server.run(&["seats", "set", "NOPE", "1"]);
    unknown.assert_exit(1);
}

#[test]
fn an_unreachable_server_exits_with_3() {
    let home = tempfile::tempdir().expect("temporary directory");
    let port = free_port();
    let server = format!("http://127.0.0.1:{port}");
    for arguments in [
        vec!["sku", "list"],
        vec!["user", "show", "user001@contoso.com"],
        vec!["group", "show", "Sales"],
        vec!["errors", "--json"],
        vec!["assign", "user", "user001@contoso.com", "EMS"],
        vec!["unassign", "group", "Sales", "EMS"],
        vec!["reprocess", "user", "user001@contoso.com"],
        vec!["seats", "set", "EMS", "3"],
    ] {
        let mut all = arguments.clone();
        all.extend(["--server", &server]);
        let output = run_cli(&all, home.path(), &[]);
        output.assert_exit(3);
        assert!(output.stdout.is_empty(), "{}", output.stdout);
        assert!(
            output
                .stderr
                .contains(&format!("cannot reach licensd at {server}")),
            "{arguments:?}: {}",
            output.stderr
        );
        assert_eq!(output.stderr.lines().count(), 1, "one line: {}", output.stderr);
    }
    // The address can come from the environment too.
    let output = run_cli(&["sku", "list"], home.path(), &[("LICENSD_SERVER", &server)]);
    output.assert_exit(3);
}

#[test]
fn bad_usage_and_bad_configuration_exit_with_2() {
    let home = tempfile::tempdir().expect("temporary directory");
    for arguments in [
        vec!["sku"],
        vec!["sku", "lst"],
        vec!["user", "show"],
        vec!["assign", "user", "user001@contoso.com"],
        vec!["assign", "printer", "x", "EMS"],
        vec!["seats", "set", "EMS", "many"],
        vec!["seats", "set", "EMS", "-1"],
        vec!["errors", "--no-such-option"],
    ] {
        let output = run_cli(&arguments, home.path(), &[]);
        output.assert_exit(2);
        assert!(output.stdout.is_empty(), "{arguments:?}: {}", output.stdout);
        // clap names the mistake (a missing subcommand shows the command's help instead).
        assert!(
            output.stderr.starts_with("error: ") || output.stderr.contains("Usage: licensd "),
            "{arguments:?}: {}",
            output.stderr
        );
    }
    let output = run_cli(
        &["sku", "list", "--server", "ftp://example.com"],
        home.path(),
        &[],
    );
    output.assert_exit(2);
    assert!(
        output
            .stderr
            .contains("invalid server address 'ftp://example.com'"),
        "{}",
        output.stderr
    );
    let config = write_config(home.path(), "server = \"http://127.0.0.1:1\"\nsever = \"typo\"\n");
    let output = run_cli(&["sku", "list"], home.path(), &[]);
    output.assert_exit(2);
    assert!(
        output.stderr.contains(&config.display().to_string()),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("sever"), "{}", output.stderr);
    let output = run_cli(
        &["sku", "list"],
        home.path(),
        &[("LICENSD_CLI_CONFIG", "/nonexistent/licensd/cli.toml")],
    );
    output.assert_exit(2);
    assert!(
        output.stderr.contains("/nonexistent/licensd/cli.toml"),
        "{}",
        output.stderr
    );
}

#[test]
fn the_configuration_file_names_the_server_and_the_flag_wins() {
    let server = DemoServer::start();
    let home = tempfile::tempdir().expect("temporary directory");
    write_config(
        home.path(),
        &format!("server = \"{}\"\ntoken = \"{}\"\n", server.url, server.token),
    );
    let output = run_cli(&["sku", "list", "--json"], home.path(), &[]);
    output.assert_exit(0);
    let products: Value = serde_json::from_str(&output.stdout).expect("JSON");
    assert_eq!(products["value"].as_array().map(Vec::len), Some(4));
    // An explicit --server wins over the file.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let output = run_cli(&["sku", "list", "--server", &closed], home.path(), &[]);
    output.assert_exit(3);
    // So does LICENSD_SERVER, and LICENSD_TOKEN wins over the file's token: a wrong token is
    // refused by the server (exit 1, with the reason), the file's own one works.
    let output = run_cli(
        &["sku", "list"],
        home.path(),
        &[("LICENSD_SERVER", &server.url), ("LICENSD_TOKEN", "another")],
    );
    output.assert_exit(1);
    assert!(output.stderr.contains("Access token"), "{}", output.stderr);
    let output = run_cli(&["sku", "list"], home.path(), &[("LICENSD_SERVER", &server.url)]);
    output.assert_exit(0);
}

fn write_config(home: &Path, text: &str) -> PathBuf {
    let directory = home.join(".config").join("licensd");
    std::fs::create_dir_all(&directory).expect("configuration directory");
    let path = directory.join("cli.toml");
    std::fs::write(&path, text).expect("write the configuration");
    path
}

#[test]
fn tokens_are_created_listed_and_revoked_and_roles_bind_the_cli() {
    let server = DemoServer::start();
    let created = server.json(&[
        "token",
        "create",
        "--name",
        "reporting robot",
        "--role",
        "global-reader",
        "--expires-in-days",
        "30",
    ]);
    assert_eq!(created["role"], "GlobalReader");
    assert_eq!(created["status"], "active");
    assert!(created["expirationDateTime"].is_string());
    let secret = created["secret"].as_str().expect("the secret").to_string();
    let id = created["id"].as_str().expect("the id").to_string();
    let table = server.text(&["token", "list"]);
    assert!(
        table.contains("reporting robot") && table.contains("GlobalReader"),
        "{table}"
    );
    assert!(!table.contains(&secret), "secrets are never listed");
    // The reader may read but not change.
    let as_reader = |arguments: &[&str]| {
        let mut all: Vec<&str> = arguments.to_vec();
        all.extend(["--server", &server.url]);
        run_cli(&all, server.directory.path(), &[("LICENSD_TOKEN", &secret)])
    };
    as_reader(&["sku", "list"]).assert_exit(0);
    let refused = as_reader(&["seats", "set", "EMS", "3"]);
    refused.assert_exit(1);
    assert!(
        refused.stderr.contains("Insufficient privileges"),
        "{}",
        refused.stderr
    );
    let refused = as_reader(&["token", "list"]);
    refused.assert_exit(1);
    // Revoked: refused at once.
    let revoked = server.text(&["token", "revoke", &id]);
    assert!(revoked.contains(&id), "{revoked}");
    let refused = as_reader(&["sku", "list"]);
    refused.assert_exit(1);
    assert!(refused.stderr.contains("Access token"), "{}", refused.stderr);
    // Bad input is a clear refusal that changes nothing.
    let bad = server.run(&["token", "create", "--name", "x", "--role", "Owner"]);
    bad.assert_exit(1);
    assert!(bad.stderr.contains("unknown role 'Owner'"), "{}", bad.stderr);
    let missing = server.run(&["token", "revoke", "00000000-0000-0000-0000-000000000000"]);
    missing.assert_exit(1);
}

#[test]
fn group_add_member_nests_a_group_refuses_a_cycle_and_remove_member_takes_it_out() {
    let server = DemoServer::start();
    let added = server.json(&[
        "group",
        "add-member",
        "Sales - Office 365 E3",
        "--group",
        "Analytics pilot",
    ]);
    assert_eq!(added["member"]["type"], "group");
    assert_eq!(added["member"]["name"], "Analytics pilot");
    assert_eq!(added["added"], true);
    // The other way round would be a cycle: refused (exit 1), nothing changed.
    let cycle = server.run(&[
        "group",
        "add-member",
        "Analytics pilot",
        "--group",
        "Sales - Office 365 E3",
    ]);
    cycle.assert_exit(1);
    assert!(cycle.stderr.contains("cycle"), "{}", cycle.stderr);
    let table = server.text(&[
        "group",
        "remove-member",
        "Sales - Office 365 E3",
        "--group",
        "Analytics pilot",
    ]);
    assert!(table.starts_with("Removed group Analytics pilot"), "{table}");
    // Taking it out twice is refused: it is no longer a member.
    server
        .run(&[
            "group",
            "remove-member",
            "Sales - Office 365 E3",
            "--group",
            "Analytics pilot",
        ])
        .assert_exit(1);
    // Users too.
    let user = server.json(&[
        "group",
        "add-member",
        "Analytics pilot",
        "--user",
        "user200@contoso.com",
    ]);
    assert_eq!(user["member"]["type"], "user");
    // Neither --user nor --group: a usage error.
    server
        .run(&["group", "add-member", "Analytics pilot"])
        .assert_exit(2);
}

#[test]
fn group_create_with_a_rule_and_preview_rule() {
    let server = DemoServer::start();
    let created = server.text(&[
        "group",
        "create",
        "Dynamic pilot",
        "--rule",
        "user.userPrincipalName -startsWith \"user00\"",
    ]);
    assert!(created.contains("Created group Dynamic pilot"), "{created}");
    assert!(
        created.contains("Rule (On): user.userPrincipalName -startsWith \"user00\""),
        "{created}"
    );
    let shown = server.json(&["group", "show", "Dynamic pilot"]);
    let members = shown["memberCount"].as_u64().expect("count");
    assert!(members > 0, "{shown:#}");
    assert_eq!(
        shown["group"]["groupTypes"],
        serde_json::json!(["DynamicMembership"])
    );

    // Previewing another rule: every member would leave, as many join; nothing is saved.
    let preview = server.json(&[
        "group",
        "preview-rule",
        "Dynamic pilot",
        "--rule",
        "user.userPrincipalName -startsWith \"user01\"",
    ]);
    assert_eq!(preview["membershipChanges"][0]["left"], members, "{preview:#}");
    let text = server.text(&[
        "group",
        "preview-rule",
        "Dynamic pilot",
        "--rule",
        "user.userPrincipalName -startsWith \"user00\"",
        "--paused",
    ]);
    assert!(text.contains("No member would join or leave."), "{text}");
    let again = server.json(&["group", "show", "Dynamic pilot"]);
    assert_eq!(again["memberCount"], members);

    // An invalid rule is refused (exit 1) with its position.
    let refused = server.run(&["group", "create", "Broken", "--rule", "user.department -eq"]);
    refused.assert_exit(1);
    assert!(refused.stderr.contains("character"), "{}", refused.stderr);
}
