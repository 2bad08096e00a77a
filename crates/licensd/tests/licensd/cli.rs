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
