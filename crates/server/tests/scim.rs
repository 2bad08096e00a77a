//! Integration tests of the SCIM 2.0 endpoint over real HTTP, on SQLite and (when reachable)
//! PostgreSQL: the request shapes Microsoft Entra ID and Okta provisioning send, and the license
//! states they end in; the protocol (errors, filters, paging, attribute selection, ETags); and
//! directory attributes surviving a restart. The server harness is the API tests' (`api/support.rs`).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "api/support.rs"]
#[allow(dead_code, unused_macros, unused_imports)]
mod support;

#[path = "scim/activity.rs"]
mod activity;
#[path = "scim/attributes.rs"]
mod attributes;
#[path = "scim/idp.rs"]
mod idp;
#[path = "scim/nesting.rs"]
mod nesting;
#[path = "scim/protocol.rs"]
mod protocol;

use serde_json::{json, Value};
use support::{Reply, TestServer};
use uuid::Uuid;

/// The SCIM base path.
pub const SCIM: &str = "/scim/v2";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const LICENSING: &str = "urn:licensd:params:scim:schemas:extension:licensing:2.0:User";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The id of a SCIM resource in a reply.
pub fn id_of(reply: &Reply) -> Uuid {
    Uuid::parse_str(reply.body["id"].as_str().expect("an id")).expect("a GUID")
}

/// A PatchOp body.
pub fn patch_op(operations: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": operations})
}

/// Asserts a SCIM error with this status and `scimType` (`None`: none expected) and returns its detail.
#[track_caller]
pub fn expect_scim_error(reply: Reply, status: u16, scim_type: Option<&str>) -> String {
    assert_eq!(reply.status, status, "unexpected status; body: {:#}", reply.body);
    assert_eq!(reply.body["schemas"], json!([ERROR]), "{:#}", reply.body);
    assert_eq!(
        reply.body["status"],
        json!(status.to_string()),
        "status is a string"
    );
    assert_eq!(reply.body["scimType"].as_str(), scim_type, "{:#}", reply.body);
    assert!(
        reply
            .headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/scim+json")),
        "{:?}",
        reply.headers
    );
    reply.body["detail"].as_str().expect("a detail").to_string()
}

/// `GET /Users?filter=…` with the filter encoded, returning the ListResponse.
pub async fn list(server: &TestServer, resource: &str, query: &[(&str, &str)]) -> Value {
    let mut url = reqwest::Url::parse(&server.url(&format!("{SCIM}/{resource}"))).expect("url");
    for (key, value) in query {
        url.query_pairs_mut().append_pair(key, value);
    }
    server.get(url.as_str()).await.expect(200).body
}
