//! The SCIM 2.0 grammar (RFC 7643/7644) licensd's `/scim/v2` surface speaks: the schemas it
//! serves ([`schema`]), filters and attribute paths ([`filter`]), PATCH operations and the
//! canonical form of a client's resource ([`patch`]), list queries with their projection and
//! `ListResponse` ([`list`]), and a group's `members` with their PATCH operations ([`members`]).
//! Everything works on JSON values and text; refusals are [`BadRequest`]s with RFC 7644's
//! `scimType`.

pub mod error;
pub mod filter;
pub mod list;
pub mod members;
pub mod patch;
pub mod schema;

pub use error::{BadRequest, ScimType};
pub use list::{project, selection_of, ListQuery, MAX_RESULTS};
