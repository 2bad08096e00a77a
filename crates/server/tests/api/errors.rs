//! The error envelope everywhere: Graph's shape with request ids (echoing `client-request-id`),
//! unknown addresses, wrong methods, oversized and malformed bodies, health checks untouched.

use serde_json::json;

use crate::support::{on_both_backends, TestServer};

on_both_backends!(errors_use_graphs_envelope_everywhere);

async fn errors_use_graphs_envelope_everywhere(server: &TestServer) {
    let reply = server
        .send(
            server
                .client
                .get(server.url("/v1.0/users/nobody@contoso.com"))
                .header("client-request-id", "my-correlation-id"),
        )
        .await;
    assert_eq!(
        reply.header("client-request-id").as_deref(),
        Some("my-correlation-id")
    );
    assert_eq!(
        reply.body["error"]["innerError"]["client-request-id"],
        "my-correlation-id"
    );
    assert_eq!(
        reply.body["error"]["innerError"]["licensdCode"],
        "resource_not_found"
    );
    let message = reply.expect_error(404, "Request_ResourceNotFound");
    assert_eq!(
        message,
        "Resource 'nobody@contoso.com' does not exist or one of its queried reference-property objects are not present."
    );

    let success = server.get("/v1.0/users").await.expect(200);
    assert!(
        success.header("request-id").is_some(),
        "every response has a request-id"
    );

    let unknown = server
        .get("/v1.0/printers")
        .await
        .expect_error(404, "Request_ResourceNotFound");
    assert_eq!(unknown, "Resource not found for the segment 'printers'.");
    server
        .get("/licensd/v1/nothing")
        .await
        .expect_error(404, "Request_ResourceNotFound");
    let method = server
        .send(server.client.put(server.url("/v1.0/users")).json(&json!({})))
        .await
        .expect_error(405, "Request_BadRequest");
    assert!(method.contains("PUT"), "{method}");

    let too_large = server
        .post_raw(
            "/v1.0/groups",
            "application/json",
            format!("{{\"displayName\": \"{}\"}}", "g".repeat(1024 * 1024 + 1)),
        )
        .await;
    assert_eq!(too_large.header("connection").as_deref(), Some("close"));
    too_large.expect_error(413, "Request_EntityTooLarge");
    server
        .post_raw("/v1.0/groups", "application/json", "[1, 2")
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post_raw("/v1.0/groups", "application/json", "")
        .await
        .expect_error(400, "Request_BadRequest");
    server
        .post_raw("/v1.0/groups", "application/json", "[]")
        .await
        .expect_error(400, "Request_BadRequest");
    let groups = server.get("/v1.0/groups").await.expect(200).body;
    assert_eq!(groups["value"], json!([]), "no refused body created anything");

    let health = server.get("/healthz").await.expect(200);
    assert_eq!(health.body, json!("ok"));
    server.get("/readyz").await.expect(200);
}
