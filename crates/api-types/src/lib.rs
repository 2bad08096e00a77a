//! licensd's wire types: the JSON shapes of Microsoft Graph v1.0 that licensd answers with and
//! accepts ([`graph`]), licensd's own administration shapes ([`admin`]), and the one table of
//! error codes with Graph's error envelope ([`error`]).
//!
//! Invariant: these are plain data types with serde and OpenAPI schemas. They know nothing of
//! the engine or the server; the server converts engine types into them at its edge.

pub mod admin;
pub mod alerts;
pub mod audit;
pub mod diagnosis;
pub mod error;
pub mod graph;
pub mod graph_sync;
pub mod integers;
pub mod limits;
pub mod objects;
pub mod reclamation;
pub mod schemas;
pub mod spend;
pub mod time;
pub mod tokens;

pub use error::{ErrorBody, ErrorCode, ErrorResponse, InnerError};
