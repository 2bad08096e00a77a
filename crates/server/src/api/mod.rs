//! Plumbing shared by the Graph-compatible API (`/v1.0`) and licensd's admin API
//! (`/licensd/v1`): errors in Graph's envelope with request ids, JSON bodies, the tenant a
//! request acts on, the request's origin for absolute links, and the guard both APIs put on
//! their routes ([`guard::guarded`]).

pub mod error;
pub mod extract;
pub mod guard;
pub mod validation;

pub use error::{request_context, ApiError, RequestIds};
pub use extract::{
    check_json_depth, parse_object_id, resolve_user, JsonBody, PathParameters, PublicLinks, RequestOrigin,
    SelectedTenant, Tenant, MAX_BODY_BYTES, MAX_JSON_DEPTH,
};
