//! Hostile JSON bodies over HTTP, answered alike on SQLite and PostgreSQL: a body that is not an
//! object (serde would read an array into a struct by position), a control character such as
//! NUL in any text, and an integer beyond Graph's Int32 are each a 400 naming the property, and
//! change nothing.

use serde_json::json;

use crate::support::{on_both_backends, TestServer};

on_both_backends!(hostile_bodies_are_refused_and_change_nothing);

async fn hostile_bodies_are_refused_and_change_nothing(server: &TestServer) {
    let before = server.user_count().await;
    let message = server
        .post(
            "/v1.0/users",
            json!([true, "Array User", "arrayuser@contoso.com"]),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert_eq!(message, "The request body must be a JSON object, not an array.");
    for (body, property) in [
        (
            json!({"displayName": "Nul\u{0}User", "userPrincipalName": "nul@contoso.com", "accountEnabled": true}),
            "'displayName'",
        ),
        (
            json!({"displayName": "Escape", "userPrincipalName": "esc\u{1b}@contoso.com", "accountEnabled": true}),
            "'userPrincipalName'",
        ),
        (
            json!({"displayName": "Proxy", "userPrincipalName": "proxy@contoso.com", "proxyAddresses": ["SMTP:a\u{7f}@contoso.com"]}),
            "'proxyAddresses[0]'",
        ),
    ] {
        let message = server
            .post("/v1.0/users", body.clone())
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(property), "{body}: {message}");
        assert!(message.contains("control character"), "{message}");
    }
    assert_eq!(server.user_count().await, before, "nothing was created");
    let group = server.create_group("Staff").await;
    let message = server
        .patch(
            &format!("/v1.0/groups/{group}"),
            json!({"displayName": "Sta\u{0}ff"}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("'displayName'"), "{message}");
    let unchanged = server
        .get(&format!("/v1.0/groups/{group}"))
        .await
        .expect(200)
        .body;
    assert_eq!(unchanged["displayName"], "Staff");

    let message = server
        .post(
            "/licensd/v1/skus",
            json!({"skuPartNumber": "HUGE", "prepaidUnits": 2147483648u64, "servicePlans": []}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(
        message.contains("'prepaidUnits'") && message.contains("Int32"),
        "{message}"
    );
    server
        .post(
            "/licensd/v1/skus",
            json!({"skuPartNumber": "LARGEST", "prepaidUnits": 2147483647u64, "servicePlans": []}),
        )
        .await
        .expect(201);
    let products = server.get("/licensd/v1/skus").await.expect(200).body;
    assert!(
        !products.to_string().contains("HUGE"),
        "the refused product was not created: {products}"
    );
}
