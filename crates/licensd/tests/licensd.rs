//! Integration tests of the `licensd` binary and the server library, one binary with a module per
//! concern (link time).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Racing clients return the server's `ExecuteError`, which carries the engine's descriptive
// `CommandError`.
#![allow(clippy::result_large_err)]

#[path = "licensd/admin_cli.rs"]
mod admin_cli;
#[path = "licensd/alert_cli.rs"]
mod alert_cli;
#[path = "licensd/chaos.rs"]
mod chaos;
#[path = "licensd/cli.rs"]
mod cli;
#[path = "licensd/diagnosis_cli.rs"]
mod diagnosis_cli;
#[path = "licensd/durability.rs"]
mod durability;
#[path = "licensd/nesting_instances.rs"]
mod nesting_instances;
#[path = "licensd/notifications.rs"]
mod notifications;
#[path = "../../delivery/tests/receiver/mod.rs"]
mod receiver;
#[path = "licensd/shutdown.rs"]
mod shutdown;
#[path = "licensd/spend_cli.rs"]
mod spend_cli;
#[path = "licensd/support.rs"]
mod support;
#[path = "licensd/tidy.rs"]
mod tidy;
#[path = "licensd/token_cache.rs"]
mod token_cache;
#[path = "licensd/user_guide.rs"]
mod user_guide;
#[path = "licensd/writes.rs"]
mod writes;
