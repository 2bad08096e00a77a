//! Integration tests of the Graph import and export, one binary with a module per concern (link
//! time): reading files, building the tenant, comparing states, exporting and round-tripping.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "import/building.rs"]
mod building;
#[path = "import/comparing.rs"]
mod comparing;
#[path = "import/exporting.rs"]
mod exporting;
#[path = "import/reading.rs"]
mod reading;
#[path = "import/support.rs"]
mod support;
