//! `POST /v1.0/$batch`: Graph's JSON batching through the same router as single requests —
//! per-request status, headers and body, `dependsOn` with 424 for the dependents of a failure,
//! each request authorized and audited as if sent alone, and the limits (20 requests, no nested
//! batch, relative URLs only).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{client_with_token, on_both_backends, TestServer, E3};

on_both_backends!(
    a_batch_answers_each_request_as_if_sent_alone,
    a_batch_checks_each_request_against_the_callers_role,
    malformed_batches_run_nothing
);

fn response<'a>(batch: &'a Value, id: &str) -> &'a Value {
    batch["responses"]
        .as_array()
        .expect("responses")
        .iter()
        .find(|response| response["id"] == id)
        .unwrap_or_else(|| panic!("a response for {id}: {batch:#}"))
}

fn new_user(name: &str) -> Value {
    json!({
        "displayName": name,
        "userPrincipalName": format!("{name}@contoso.com"),
        "mailNickname": name,
        "usageLocation": "US",
        "accountEnabled": true,
        "passwordProfile": {"password": "not stored"},
    })
}

async fn a_batch_answers_each_request_as_if_sent_alone(server: &TestServer) {
    server.import_seed_products(5, 3, 2, 1).await;
    let missing = Uuid::new_v4();
    let batch = server
        .post(
            "/v1.0/$batch",
            json!({"requests": [
                {"id": "skus", "method": "GET", "url": "/subscribedSkus?$select=skuId,skuPartNumber"},
                {"id": "create", "method": "POST", "url": "users", "body": new_user("batched"),
                 "headers": {"Content-Type": "application/json"}},
                {"id": "count", "method": "GET", "url": "/users/$count", "headers": {"ConsistencyLevel": "eventual"},
                 "dependsOn": ["create"]},
                {"id": "missing", "method": "GET", "url": format!("/users/{missing}")},
                {"id": "dependent", "method": "POST", "url": "/users", "body": new_user("never"), "depends_on": ["missing"]},
                {"id": "page", "method": "GET", "url": "/v1.0/users?$top=1&$select=id"},
            ]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        batch["responses"].as_array().expect("responses").len(),
        6,
        "{batch:#}"
    );

    let skus = response(&batch, "skus");
    assert_eq!(skus["status"], 200);
    assert!(skus["headers"]["Content-Type"]
        .as_str()
        .expect("a content type")
        .contains("json"));
    assert_eq!(
        skus["body"]["value"].as_array().expect("value").len(),
        4,
        "{skus:#}"
    );
    assert!(skus["body"]["value"]
        .as_array()
        .expect("value")
        .iter()
        .any(|sku| sku["skuId"] == E3));

    let created = response(&batch, "create");
    assert_eq!(created["status"], 201, "{created:#}");
    let user_id = created["body"]["id"]
        .as_str()
        .expect("the new user's id")
        .to_string();
    assert_eq!(
        created["headers"]["Location"],
        format!("{}/v1.0/users/{user_id}", server.base),
        "{created:#}"
    );
    // The user exists as if created alone, and the change is audited under its own request.
    server.get(&format!("/v1.0/users/{user_id}")).await.expect(200);
    let audit = server
        .get(&format!(
            "/v1.0/auditLogs/directoryAudits?$filter=targetResources/any(t:t/id eq '{user_id}')"
        ))
        .await
        .expect(200)
        .body;
    let records = audit["value"].as_array().expect("value");
    assert!(
        records
            .iter()
            .any(|record| record["activityDisplayName"] == "Add user"),
        "{audit:#}"
    );
    let batch_request_ids: Vec<&str> = records
        .iter()
        .filter_map(|record| record["correlationId"].as_str())
        .collect();
    assert!(!batch_request_ids.is_empty(), "{audit:#}");

    let count = response(&batch, "count");
    assert_eq!(count["status"], 200, "{count:#}");
    assert_eq!(count["body"], "1", "a text body is a JSON string: {count:#}");

    let missing_answer = response(&batch, "missing");
    assert_eq!(missing_answer["status"], 404);
    assert_eq!(
        missing_answer["body"]["error"]["code"],
        "Request_ResourceNotFound"
    );
    let dependent = response(&batch, "dependent");
    assert_eq!(dependent["status"], 424, "{dependent:#}");
    assert_eq!(dependent["body"]["error"]["code"], "FailedDependency");
    let never = server
        .get("/v1.0/users?$filter=userPrincipalName eq 'never@contoso.com'")
        .await
        .expect(200)
        .body;
    assert_eq!(never["value"], json!([]), "a failed dependency runs nothing");

    let page = response(&batch, "page");
    assert_eq!(page["status"], 200);
    assert_eq!(page["body"]["value"].as_array().expect("value").len(), 1);
    let next = page["body"]["@odata.nextLink"].as_str().unwrap_or("");
    assert!(next.is_empty() || next.starts_with(&server.base), "{page:#}");
}

async fn a_batch_checks_each_request_against_the_callers_role(server: &TestServer) {
    let created = server
        .post(
            "/licensd/v1/tokens",
            json!({"displayName": "batch reader", "role": "GlobalReader"}),
        )
        .await
        .expect(201);
    let reader = client_with_token(created.body["secret"].as_str().expect("secret"));
    let batch = server
        .send(reader.post(server.url("/v1.0/$batch")).json(&json!({"requests": [
            {"id": "1", "method": "GET", "url": "/users"},
            {"id": "2", "method": "POST", "url": "/users", "body": new_user("forbidden"),
             "headers": {"Authorization": format!("Bearer {}", server.token)}},
        ]})))
        .await
        .expect(200)
        .body;
    assert_eq!(response(&batch, "1")["status"], 200);
    let refused = response(&batch, "2");
    assert_eq!(
        refused["status"], 403,
        "a request cannot borrow another token: {refused:#}"
    );
    assert_eq!(refused["body"]["error"]["code"], "Authorization_RequestDenied");
    assert_eq!(server.user_count().await, 0);

    // Without credentials the batch itself is refused.
    let anonymous = reqwest::Client::new();
    let refused = server
        .send(
            anonymous
                .post(server.url("/v1.0/$batch"))
                .json(&json!({"requests": [{"id": "1", "method": "GET", "url": "/users"}]})),
        )
        .await;
    assert_eq!(refused.status, 401);
}

async fn malformed_batches_run_nothing(server: &TestServer) {
    let too_many: Vec<Value> = (0..21)
        .map(|index| json!({"id": index.to_string(), "method": "POST", "url": "/users", "body": new_user(&format!("u{index}"))}))
        .collect();
    let message = server
        .post("/v1.0/$batch", json!({ "requests": too_many }))
        .await
        .expect_error(400, "Request_BadRequest");
    assert!(message.contains("limit is 20"), "{message}");
    let cases = [
        (json!({"requests": []}), "no requests"),
        (
            json!({"requests": [{"id": "1", "method": "POST", "url": "/$batch", "body": {"requests": []}}]}),
            "cannot contain another $batch",
        ),
        (
            json!({"requests": [{"id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users"}]}),
            "absolute URL",
        ),
        (
            json!({"requests": [
                {"id": "1", "method": "POST", "url": "/users", "body": new_user("first")},
                {"id": "1", "method": "GET", "url": "/users"}]}),
            "more than one request",
        ),
        (
            json!({"requests": [
                {"id": "1", "method": "POST", "url": "/users", "body": new_user("first"), "dependsOn": ["2"]},
                {"id": "2", "method": "GET", "url": "/users"}]}),
            "not an earlier request",
        ),
        (
            json!({"requests": [{"id": "1", "method": "TRACE", "url": "/users"}]}),
            "method 'TRACE'",
        ),
        (
            json!({"requests": [{"id": "1", "method": "GET", "url": "/users", "body": [null, null]}]}),
            "must be a JSON object",
        ),
        (
            json!([{"id": "1", "method": "GET", "url": "/users"}]),
            "must be a JSON object",
        ),
    ];
    for (body, expected) in cases {
        let message = server
            .post("/v1.0/$batch", body.clone())
            .await
            .expect_error(400, "Request_BadRequest");
        assert!(message.contains(expected), "{body}: {message}");
    }
    // The batch's body counts toward the body limit of every request (1 MiB).
    let huge = "x".repeat(1024 * 1024);
    let too_large = server
        .post(
            "/v1.0/$batch",
            json!({"requests": [{"id": "1", "method": "POST", "url": "/users", "body": new_user(&huge)}]}),
        )
        .await;
    assert_eq!(too_large.status, 413, "{:#}", too_large.body);
    assert_eq!(server.user_count().await, 0, "a refused batch changes nothing");
}
