//! Integration tests of the HTTP API over real HTTP: a real server (`licensd_server::run`) on a
//! free port over SQLite and, when reachable, PostgreSQL; every endpoint of the Graph-compatible
//! surface and the admin surface, success and error paths, and the OpenAPI document. One binary
//! with a module per concern (link time).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/admin.rs"]
mod admin;
#[path = "api/alerts.rs"]
mod alerts;
#[path = "api/batch.rs"]
mod batch;
#[path = "api/delta.rs"]
mod delta;
#[path = "api/diagnosis.rs"]
mod diagnosis;
#[path = "api/directory_subscriptions.rs"]
mod directory_subscriptions;
#[path = "api/dynamic_groups.rs"]
mod dynamic_groups;
#[path = "api/errors.rs"]
mod errors;
#[path = "api/graph_queries.rs"]
mod graph_queries;
#[path = "api/groups.rs"]
mod groups;
#[path = "api/hardening.rs"]
mod hardening;
#[path = "api/hostile_input.rs"]
mod hostile_input;
#[path = "api/links.rs"]
mod links;
#[path = "api/metrics.rs"]
mod metrics;
#[path = "api/migration.rs"]
mod migration;
#[path = "api/nesting.rs"]
mod nesting;
#[path = "api/notifications.rs"]
mod notifications;
#[path = "api/odata.rs"]
mod odata;
#[path = "api/openapi.rs"]
mod openapi;
#[path = "../../delivery/tests/receiver/mod.rs"]
mod receiver;
#[path = "api/reclamation.rs"]
mod reclamation;
#[path = "api/residency.rs"]
mod residency;
#[path = "api/scenarios.rs"]
mod scenarios;
#[path = "api/security.rs"]
mod security;
#[path = "api/spend.rs"]
mod spend;
#[path = "api/subscribed_skus.rs"]
mod subscribed_skus;
#[path = "api/support.rs"]
mod support;
#[path = "api/users.rs"]
mod users;
