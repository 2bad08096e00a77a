//! Plumbing shared by the Graph-compatible API (`/v1.0`) and licensd's admin API
//! (`/licensd/v1`): errors in Graph's envelope with request ids, JSON bodies, the tenant a
//! request acts on, and the request's origin for absolute links.

pub mod error;
pub mod extract;
pub mod validation;

pub use error::{request_context, ApiError, RequestIds};
pub use extract::{
    check_json_depth, parse_object_id, JsonBody, PathParameters, PublicLinks, RequestOrigin, SelectedTenant,
    Tenant, MAX_BODY_BYTES, MAX_JSON_DEPTH,
};
