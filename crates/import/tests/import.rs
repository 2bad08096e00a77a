//! Integration tests of the Graph import and export, one binary with a module per concern (link
//! time): reading files, building the tenant, comparing states, exporting and round-tripping.

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
