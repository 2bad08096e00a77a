//! Integration tests of the engine, one binary with a module per concern (link time).

#[path = "engine/commands.rs"]
mod commands;
#[path = "engine/diagnosis.rs"]
mod diagnosis;
#[path = "engine/properties.rs"]
mod properties;
#[path = "engine/scenarios.rs"]
mod scenarios;
#[path = "engine/self_healing.rs"]
mod self_healing;
