//! Integration tests of the engine, one binary with a module per concern (link time).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "engine/alerts.rs"]
mod alerts;
#[path = "engine/commands.rs"]
mod commands;
#[path = "engine/diagnosis.rs"]
mod diagnosis;
#[path = "engine/dynamic_groups.rs"]
mod dynamic_groups;
#[path = "engine/group_migration.rs"]
mod group_migration;
#[path = "engine/image.rs"]
mod image;
#[path = "engine/nesting.rs"]
mod nesting;
#[path = "engine/properties.rs"]
mod properties;
#[path = "engine/scenarios.rs"]
mod scenarios;
#[path = "engine/self_healing.rs"]
mod self_healing;
#[path = "engine/spend.rs"]
mod spend;
