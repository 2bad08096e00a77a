//! The OpenAPI document: served at `/openapi.json`, OpenAPI 3, and naming every route of both
//! surfaces with its methods, so the document cannot silently drift from the server.

use serde_json::Value;

use crate::support::{on_both_backends, TestServer};

on_both_backends!(the_openapi_document_covers_every_route);

/// Every route and method the server answers, besides the health checks and the document.
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1.0/auditLogs/directoryAudits", &["get"]),
    ("/v1.0/$batch", &["post"]),
    ("/v1.0/users/delta", &["get"]),
    ("/v1.0/groups/delta", &["get"]),
    ("/v1.0/directory/subscriptions", &["get"]),
    ("/v1.0/directory/subscriptions/{id}", &["get"]),
    ("/licensd/v1/skus/{sku_id}/subscription", &["patch"]),
    ("/v1.0/subscribedSkus", &["get"]),
    ("/v1.0/subscribedSkus/{id}", &["get"]),
    ("/v1.0/users", &["get", "post"]),
    ("/v1.0/users/$count", &["get"]),
    ("/v1.0/users/{id}", &["get", "patch", "delete"]),
    ("/v1.0/users/{id}/assignLicense", &["post"]),
    ("/v1.0/users/{id}/licenseDetails", &["get"]),
    ("/v1.0/users/{id}/reprocessLicenseAssignment", &["post"]),
    ("/v1.0/users/{id}/memberOf", &["get"]),
    ("/v1.0/users/{id}/memberOf/$count", &["get"]),
    ("/v1.0/users/{id}/memberOf/microsoft.graph.group", &["get"]),
    ("/v1.0/users/{id}/memberOf/{group_id}", &["get"]),
    ("/v1.0/users/{id}/transitiveMemberOf", &["get"]),
    ("/v1.0/users/{id}/transitiveMemberOf/$count", &["get"]),
    ("/v1.0/directoryObjects/getByIds", &["post"]),
    ("/v1.0/$metadata", &["get"]),
    ("/v1.0/groups", &["get", "post"]),
    ("/v1.0/groups/$count", &["get"]),
    ("/v1.0/groups/{id}", &["get", "patch", "delete"]),
    ("/v1.0/groups/{id}/assignLicense", &["post"]),
    ("/v1.0/groups/{id}/members", &["get"]),
    ("/v1.0/groups/{id}/members/$ref", &["post"]),
    ("/v1.0/groups/{id}/members/$count", &["get"]),
    ("/v1.0/groups/{id}/members/microsoft.graph.user", &["get"]),
    ("/v1.0/groups/{id}/members/microsoft.graph.user/$count", &["get"]),
    ("/v1.0/groups/{id}/members/microsoft.graph.group", &["get"]),
    ("/v1.0/groups/{id}/members/{member_id}", &["get"]),
    ("/v1.0/groups/{id}/memberOf", &["get"]),
    ("/v1.0/groups/{id}/transitiveMemberOf", &["get"]),
    ("/v1.0/groups/{id}/transitiveMembers", &["get"]),
    ("/v1.0/groups/{id}/transitiveMembers/$count", &["get"]),
    ("/v1.0/groups/{id}/members/{member_id}/$ref", &["delete"]),
    ("/v1.0/groups/{id}/membersWithLicenseErrors", &["get"]),
    ("/v1.0/groups/{id}/reprocessLicenseAssignment", &["post"]),
    ("/licensd/v1/catalog/products", &["get"]),
    ("/licensd/v1/catalog/import", &["post"]),
    ("/licensd/v1/skus", &["get", "post"]),
    ("/licensd/v1/skus/{sku_id}", &["get", "patch"]),
    ("/licensd/v1/skus/{sku_id}/servicePlans", &["post"]),
    ("/licensd/v1/servicePlans", &["get"]),
    ("/licensd/v1/servicePlans/{service_plan_id}", &["get"]),
    ("/licensd/v1/servicePlans/{service_plan_id}/rules", &["put"]),
    ("/licensd/v1/servicePlans/defaultRules", &["post"]),
    ("/licensd/v1/settings", &["get", "patch"]),
    ("/licensd/v1/overview", &["get"]),
    ("/licensd/v1/tokens", &["get", "post"]),
    ("/licensd/v1/tokens/{id}", &["delete"]),
    ("/licensd/v1/users/{id}/licenseAssignmentStates", &["get"]),
    ("/licensd/v1/users/{id}/diagnosis", &["get"]),
    ("/licensd/v1/groups/{id}/diagnosis", &["get"]),
    ("/licensd/v1/whatif", &["post"]),
    ("/licensd/v1/changes", &["post"]),
    ("/licensd/v1/advisor", &["get"]),
    ("/licensd/v1/alertRules", &["get", "post"]),
    ("/licensd/v1/alertRules/{id}", &["get", "delete"]),
    ("/v1.0/subscriptions", &["get", "post"]),
    ("/v1.0/subscriptions/{id}", &["get", "patch", "delete"]),
    ("/licensd/v1/subscriptions", &["get"]),
    ("/licensd/v1/subscriptions/{id}/deliveries", &["get"]),
    ("/licensd/v1/deliveries", &["get"]),
    ("/licensd/v1/prices", &["get"]),
    ("/licensd/v1/skus/{sku_id}/price", &["put", "delete"]),
    ("/licensd/v1/skus/{sku_id}/history", &["get"]),
    ("/licensd/v1/spend/cost", &["get"]),
    ("/licensd/v1/spend/idle", &["get"]),
    ("/licensd/v1/users/{id}/activity", &["get", "patch"]),
    ("/licensd/v1/activity", &["post"]),
    ("/licensd/v1/migrations/directToGroup", &["post"]),
    ("/licensd/v1/reclamationPolicies", &["get", "post"]),
    (
        "/licensd/v1/reclamationPolicies/{id}",
        &["get", "delete", "patch"],
    ),
    (
        "/licensd/v1/reclamationPolicies/{id}/exemptions/{user_id}",
        &["put", "delete"],
    ),
    ("/licensd/v1/reclamationPolicies/{id}/run", &["post"]),
    ("/licensd/v1/reclamationNotices", &["get"]),
    ("/licensd/v1/reclamations/{audit_id}/revert", &["post"]),
];

async fn the_openapi_document_covers_every_route(server: &TestServer) {
    let reply = server.get("/openapi.json").await.expect(200);
    let document = reply.body;
    assert!(
        document["openapi"].as_str().unwrap_or_default().starts_with("3."),
        "OpenAPI 3"
    );
    assert_eq!(document["info"]["title"], "licensd");
    let paths = document["paths"].as_object().expect("paths");
    // OpenAPI requires unique operation ids (generated clients name their methods after them).
    let mut operation_ids = std::collections::BTreeMap::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            if let Some(id) = operation["operationId"].as_str() {
                if let Some(other) = operation_ids.insert(id.to_string(), format!("{method} {path}")) {
                    panic!("operationId {id} of {method} {path} is also {other}'s");
                }
            }
        }
    }
    assert_eq!(
        paths.len(),
        ROUTES.len(),
        "documented: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is not documented"));
        for method in *methods {
            let operation = &item[*method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            let tags = operation["tags"].as_array().expect("tags");
            let tag = tags[0].as_str().unwrap_or_default();
            let extension =
                path.starts_with("/licensd/") || path.ends_with("/groups/{id}/reprocessLicenseAssignment");
            assert_eq!(
                tag.starts_with("licensd"),
                extension,
                "{method} {path} is marked {tag}"
            );
        }
        // Every documented path answers (not 404 for an unknown route).
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{member_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{sku_id}", "00000000-0000-0000-0000-000000000000")
            .replace("{service_plan_id}", "00000000-0000-0000-0000-000000000000");
        let answer = server
            .send(
                server
                    .client
                    .request(reqwest::Method::OPTIONS, server.url(&concrete)),
            )
            .await;
        assert_eq!(answer.status, 405, "{path} is routed: {}", answer.body);
    }
    let schemas = document["components"]["schemas"].as_object().expect("schemas");
    for schema in [
        "User",
        "Group",
        "SubscribedSku",
        "LicenseAssignmentState",
        "AssignLicenseRequest",
        "ErrorResponse",
        "TenantOverview",
    ] {
        assert!(schemas.contains_key(schema), "schema {schema}");
    }
    // Every reference resolves.
    let text = document.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "dangling reference to {name}");
    }
    assert!(matches!(document["paths"], Value::Object(_)));
    the_document_tells_the_truth(server, &document).await;
}

/// Property names of every schema, walked through nested objects, arrays and `oneOf`.
fn property_names(schema: &Value, names: &mut Vec<String>) {
    match schema {
        Value::Object(object) => {
            if let Some(Value::Object(properties)) = object.get("properties") {
                names.extend(properties.keys().cloned());
            }
            for child in object.values() {
                property_names(child, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| property_names(item, names)),
        _ => {}
    }
}

/// The document matches the server: camelCase property names (the server refuses others), a
/// bearer scheme required everywhere but the public `$metadata`, the statuses of the layers
/// around the handlers on every operation, and optional what `$select` leaves out.
async fn the_document_tells_the_truth(server: &TestServer, document: &Value) {
    let mut names = Vec::new();
    property_names(&document["components"]["schemas"], &mut names);
    let snake: Vec<&String> = names.iter().filter(|name| name.contains('_')).collect();
    assert!(snake.is_empty(), "snake_case properties: {snake:?}");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"], serde_json::json!([{"bearer": []}]));
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            let responses = operation["responses"].as_object().expect("responses");
            if path == "/v1.0/$metadata" {
                assert_eq!(operation["security"], serde_json::json!([]), "public");
                continue;
            }
            for status in ["401", "403", "429"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} documents {status}"
                );
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} documents {status}"
                    );
                }
            }
            if path.contains('{') {
                assert!(responses.contains_key("404"), "{method} {path} documents 404");
            }
        }
    }
    // With `$select` any property of a user can be absent: none is required.
    let required = document["components"]["schemas"]["User"]["required"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for optional in ["assignedPlans", "licenseAssignmentStates"] {
        assert!(
            !required.contains(&Value::from(optional)),
            "{optional} is optional"
        );
    }
    // The camelCase change the document describes is the one the server accepts.
    let user = server.create_user("camel", Some("US")).await;
    let group = server.create_group("Camel").await;
    let simulated = server
        .post(
            "/licensd/v1/whatif",
            serde_json::json!({"changes": [{"type": "addGroupMember", "groupId": group, "userId": user}]}),
        )
        .await
        .expect(200);
    assert!(simulated.body.is_object());
    server
        .post(
            "/licensd/v1/whatif",
            serde_json::json!({"changes": [{"type": "addGroupMember", "group_id": group, "user_id": user}]}),
        )
        .await
        .expect_error(400, "Request_BadRequest");
}
