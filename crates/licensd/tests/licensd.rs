//! Integration tests of the `licensd` binary and the server library, one binary with a module per
//! concern (link time).

#[path = "licensd/durability.rs"]
mod durability;
#[path = "licensd/support.rs"]
mod support;
#[path = "licensd/tidy.rs"]
mod tidy;
