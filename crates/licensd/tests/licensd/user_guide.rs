//! `docs/user-guide.md` stays true: its table of the demo tenant's errors is checked against a
//! running `licensd demo`, then every `$ licensd …` line of its ```sh blocks is run, in the
//! guide's order, against that one demo server — with the files its `$ cat > FILE <<'EOF'`
//! blocks write — checking the exit code (0, or the number after a following `$ echo $?`) and the
//! first line of the output shown in the guide (up to a `…`, which elides what differs between
//! runs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::admin_cli::DemoServer;

const GUIDE: &str = include_str!("../../../../docs/user-guide.md");

/// One thing the guide does in a shell.
#[derive(Debug)]
enum Step {
    /// `$ cat > name <<'EOF'` … `EOF`.
    Write { name: String, content: String },
    /// `$ licensd …`, with the exit code and the first output line the guide shows.
    Run {
        line: String,
        arguments: Vec<String>,
        exit_code: i32,
        first_line: Option<String>,
    },
}

/// The steps of the guide's ```sh blocks, in order.
fn steps(guide: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = guide.lines().peekable();
    let mut in_shell = false;
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            in_shell = !in_shell && line.trim() == "```sh";
            continue;
        }
        if !in_shell {
            continue;
        }
        if let Some(rest) = line.strip_prefix("$ cat > ") {
            let name = rest
                .strip_suffix(" <<'EOF'")
                .unwrap_or_else(|| panic!("a here-document ends with <<'EOF': {line}"));
            let mut content = String::new();
            for body in lines.by_ref() {
                if body == "EOF" {
                    break;
                }
                content.push_str(body);
                content.push('\n');
            }
            steps.push(Step::Write {
                name: name.to_string(),
                content,
            });
        } else if let Some(command) = line.strip_prefix("$ licensd ") {
            // The output shown, up to the next command or the end of the block.
            let mut output = Vec::new();
            while let Some(next) = lines.peek() {
                if next.starts_with("$ ") || next.starts_with("```") {
                    break;
                }
                output.push(lines.next().expect("peeked"));
            }
            let mut exit_code = 0;
            if lines.peek() == Some(&"$ echo $?") {
                lines.next();
                exit_code = lines
                    .next()
                    .and_then(|code| code.trim().parse().ok())
                    .unwrap_or_else(|| panic!("`$ echo $?` after `{line}` shows a number"));
            }
            steps.push(Step::Run {
                line: line.to_string(),
                arguments: shell_words(command),
                exit_code,
                first_line: output
                    .first()
                    .filter(|first| !first.trim().is_empty())
                    .map(|first| first.to_string()),
            });
        }
    }
    steps
}

/// Splits a command line as a POSIX shell would for the guide's commands: words separated by
/// spaces, with single- and double-quoted parts.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for character in line.chars() {
        match (quote, character) {
            (Some(open), c) if c == open => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(character);
                in_word = true;
            }
            (None, ' ') => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                assert!(
                    !"|&;<>$`\\".contains(c),
                    "the guide's `$ licensd` lines are plain commands, without `{c}`: {line}"
                );
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unbalanced quote: {line}");
    if in_word {
        words.push(word);
    }
    words
}

/// A GET of licensd's API answered as JSON (a few lines of HTTP/1.1: no client needed).
fn get_json(server: &DemoServer, path: &str) -> Value {
    let address = server.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect to the demo");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token
    )
    .expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "GET {path}: {answer}");
    let body = answer.split_once("\r\n\r\n").expect("a body").1;
    serde_json::from_str(body).unwrap_or_else(|error| panic!("GET {path} ({error}): {body}"))
}

/// Waits until background processing is idle: no user queued, no group in progress — the guide
/// reads its results "a moment later".
fn wait_until_idle(server: &DemoServer) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let overview = get_json(server, "/licensd/v1/overview");
        let groups = get_json(server, "/v1.0/groups?$select=licenseProcessingState");
        let busy_groups = groups["value"]
            .as_array()
            .expect("groups")
            .iter()
            .any(|group| group["licenseProcessingState"]["state"] != "ProcessingComplete");
        if overview["queuedUsers"] == 0 && !busy_groups {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "processing did not finish within 60 s: {overview}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A row of the guide's table of the demo tenant: a group, its members and users in error, and
/// the count of each error kind (the numbers before the `Kind` names of the last column).
struct DocumentedGroup {
    name: String,
    members: u64,
    in_error: u64,
    kinds: Vec<(String, u64)>,
}

/// The rows of the guide's table of the demo tenant.
fn documented_groups(guide: &str) -> Vec<DocumentedGroup> {
    let header = "| Group | Product | Members | In error | Error kinds |";
    let table = guide
        .split_once(header)
        .unwrap_or_else(|| panic!("the guide has the table `{header}`"))
        .1;
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let number = |cell: &str| -> u64 { cell.parse().expect("a number") };
            let mut kinds = Vec::new();
            let words: Vec<&str> = cells[5].split_whitespace().collect();
            for pair in words.windows(2) {
                if let (Ok(count), Some(kind)) = (
                    pair[0].trim_start_matches('(').parse::<u64>(),
                    pair[1].strip_prefix('`').and_then(|kind| kind.strip_suffix('`')),
                ) {
                    kinds.push((kind.to_string(), count));
                }
            }
            DocumentedGroup {
                name: cells[1].to_string(),
                members: number(cells[3]),
                in_error: number(cells[4]),
                kinds,
            }
        })
        .collect()
}

/// The counts the guide states ("22 users in error, 23 license assignments in error", and its
/// table per group) are the demo's.
fn assert_documented_counts(server: &DemoServer) {
    let errors = server.json(&["errors"]);
    let summary = "**22 users in error, 23 license assignments in error**";
    assert!(GUIDE.contains(summary), "the guide states {summary}");
    assert_eq!(errors["usersWithErrors"], 22, "{errors:#}");
    assert_eq!(errors["assignmentsWithErrors"], 23, "{errors:#}");
    let groups = documented_groups(GUIDE);
    assert_eq!(groups.len(), 5, "the demo's five groups");
    let mut documented_kinds: Vec<(String, u64)> = Vec::new();
    for DocumentedGroup {
        name,
        members,
        in_error,
        kinds,
    } in &groups
    {
        let group = server.json(&["group", "show", name]);
        assert_eq!(group["memberCount"], *members, "members of {name}");
        assert_eq!(
            group["membersWithLicenseErrors"]
                .as_array()
                .expect("members with errors")
                .len() as u64,
            *in_error,
            "users in error in {name}"
        );
        let reported = errors["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|group| group["displayName"] == name.as_str());
        let mut actual: Vec<(String, u64)> = reported
            .map(|group| {
                group["errorsByKind"]
                    .as_object()
                    .expect("errorsByKind")
                    .iter()
                    .map(|(kind, list)| (kind.clone(), list.as_array().expect("errors").len() as u64))
                    .collect()
            })
            .unwrap_or_default();
        actual.sort();
        let mut expected = kinds.clone();
        expected.sort();
        assert_eq!(actual, expected, "error kinds of {name}");
        documented_kinds.extend(expected);
    }
    let mut kinds: Vec<&str> = documented_kinds.iter().map(|(kind, _)| kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "CountViolation",
            "DependencyViolation",
            "MutuallyExclusiveViolation",
            "ProhibitedInUsageLocationViolation",
            "UniquenessViolation"
        ],
        "every error kind of the seed is in the demo"
    );
}

/// Whether the output's first line is the one the guide shows (up to its `…`).
fn first_line_matches(documented: &str, stdout: &str, stderr: &str) -> bool {
    let output = if stdout.trim().is_empty() { stderr } else { stdout };
    let actual = output.lines().find(|line| !line.trim().is_empty()).unwrap_or("");
    match documented.split_once('…') {
        Some((prefix, _)) => actual.starts_with(prefix.trim_end()),
        None => actual.trim_end() == documented.trim_end(),
    }
}

fn run_step(server: &DemoServer, directory: &Path, arguments: &[String]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_licensd"))
        .args(arguments)
        .args(["--server", &server.url])
        .current_dir(directory)
        .env("HOME", directory)
        .env("LICENSD_TOKEN", &server.token)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("LICENSD_CLI_CONFIG")
        .env_remove("LICENSD_SERVER")
        .output()
        .expect("run licensd");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).to_string(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn the_user_guide_commands_work_as_written_on_the_demo() {
    let steps = steps(GUIDE);
    let commands = steps
        .iter()
        .filter(|step| matches!(step, Step::Run { .. }))
        .count();
    assert!(commands >= 20, "the guide's commands were found: {steps:#?}");
    for expected in [
        "errors",
        "group",
        "user",
        "sku",
        "explain",
        "seats",
        "assign",
        "unassign",
        "whatif",
        "apply",
        "reprocess",
        "advisor",
        "token",
    ] {
        assert!(
            steps
                .iter()
                .any(|step| matches!(step, Step::Run { arguments, .. } if arguments[0] == expected)),
            "the guide shows `licensd {expected}`"
        );
    }

    let server = DemoServer::start();
    assert_documented_counts(&server);
    let directory = tempfile::tempdir().expect("a working directory");
    for step in &steps {
        match step {
            Step::Write { name, content } => {
                std::fs::write(directory.path().join(name), content).expect("write the file")
            }
            Step::Run {
                line,
                arguments,
                exit_code,
                first_line,
            } => {
                wait_until_idle(&server);
                let (code, stdout, stderr) = run_step(&server, directory.path(), arguments);
                assert_eq!(
                    code,
                    Some(*exit_code),
                    "docs/user-guide.md: `{line}`\nstdout:\n{stdout}\nstderr:\n{stderr}"
                );
                if let Some(documented) = first_line {
                    assert!(
                        first_line_matches(documented, &stdout, &stderr),
                        "docs/user-guide.md: `{line}` shows\n  {documented}\nbut its output is\n{stdout}{stderr}"
                    );
                }
            }
        }
    }
}

#[test]
fn shell_words_split_like_the_shell() {
    assert_eq!(
        shell_words(r#"group show "Sales - Office 365 E3" --json"#),
        ["group", "show", "Sales - Office 365 E3", "--json"]
    );
    assert_eq!(
        shell_words("assign user user002@contoso.com STANDARDPACK --disable-plan A,B"),
        [
            "assign",
            "user",
            "user002@contoso.com",
            "STANDARDPACK",
            "--disable-plan",
            "A,B"
        ]
    );
    assert_eq!(
        shell_words("token create --name 'a b'"),
        ["token", "create", "--name", "a b"]
    );
}
