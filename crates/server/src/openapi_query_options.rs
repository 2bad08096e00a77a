//! The values of each operation's OData query options, written into the OpenAPI document as
//! patterns generated from the schema the operation's handler parses with
//! (`licensd_protocols::odata::patterns`): `$select` names that entity's selectable properties,
//! `$orderby`, `$expand` and `$search` its sortable, expandable and searchable ones, `$filter` a
//! regular subset of the filter grammar over its filterable properties, and the paging tokens
//! their shapes. A document generated from the same lists cannot drift from what the server
//! accepts.

use licensd_protocols::odata::{
    delta, patterns, EntitySchema, GROUP_SCHEMA, LICENSE_DETAILS_SCHEMA, SKIP_TOKEN_PATTERN,
    SUBSCRIBED_SKU_SCHEMA, USER_SCHEMA,
};
use serde_json::{Map, Value};

/// What an operation's query options are read against.
#[derive(Clone, Copy)]
enum Options {
    /// `QueryOptions` bound to an entity schema (collections, entities and `/$count`).
    Entity(&'static EntitySchema),
    /// A delta query of an entity (groups also select `members`).
    Delta(&'static EntitySchema, &'static [&'static str]),
    /// The audit log's own grammar.
    AuditLog,
}

/// Every `/v1.0` path with query options and the schema its handler parses them with (the
/// `request.options(&SCHEMA, ...)` of each handler in `crate::graph`).
const OPERATIONS: &[(&str, Options)] = &[
    ("/v1.0/users", Options::Entity(&USER_SCHEMA)),
    ("/v1.0/users/$count", Options::Entity(&USER_SCHEMA)),
    ("/v1.0/users/delta", Options::Delta(&USER_SCHEMA, &[])),
    ("/v1.0/users/{id}", Options::Entity(&USER_SCHEMA)),
    (
        "/v1.0/users/{id}/licenseDetails",
        Options::Entity(&LICENSE_DETAILS_SCHEMA),
    ),
    ("/v1.0/users/{id}/memberOf", Options::Entity(&GROUP_SCHEMA)),
    ("/v1.0/users/{id}/memberOf/$count", Options::Entity(&GROUP_SCHEMA)),
    (
        "/v1.0/users/{id}/memberOf/microsoft.graph.group",
        Options::Entity(&GROUP_SCHEMA),
    ),
    (
        "/v1.0/users/{id}/memberOf/{group_id}",
        Options::Entity(&GROUP_SCHEMA),
    ),
    (
        "/v1.0/users/{id}/transitiveMemberOf",
        Options::Entity(&GROUP_SCHEMA),
    ),
    (
        "/v1.0/users/{id}/transitiveMemberOf/$count",
        Options::Entity(&GROUP_SCHEMA),
    ),
    ("/v1.0/groups", Options::Entity(&GROUP_SCHEMA)),
    ("/v1.0/groups/$count", Options::Entity(&GROUP_SCHEMA)),
    ("/v1.0/groups/delta", Options::Delta(&GROUP_SCHEMA, &["members"])),
    ("/v1.0/groups/{id}", Options::Entity(&GROUP_SCHEMA)),
    // Members are read as users (a nested group is listed after them, never filtered on group
    // properties: with `$filter`, `$search` or `$orderby` nested groups are left out).
    ("/v1.0/groups/{id}/members", Options::Entity(&USER_SCHEMA)),
    ("/v1.0/groups/{id}/members/$count", Options::Entity(&USER_SCHEMA)),
    (
        "/v1.0/groups/{id}/members/microsoft.graph.user",
        Options::Entity(&USER_SCHEMA),
    ),
    (
        "/v1.0/groups/{id}/members/microsoft.graph.user/$count",
        Options::Entity(&USER_SCHEMA),
    ),
    // Nested groups, read as groups.
    (
        "/v1.0/groups/{id}/members/microsoft.graph.group",
        Options::Entity(&GROUP_SCHEMA),
    ),
    ("/v1.0/groups/{id}/memberOf", Options::Entity(&GROUP_SCHEMA)),
    (
        "/v1.0/groups/{id}/transitiveMemberOf",
        Options::Entity(&GROUP_SCHEMA),
    ),
    (
        "/v1.0/groups/{id}/members/{member_id}",
        Options::Entity(&USER_SCHEMA),
    ),
    (
        "/v1.0/groups/{id}/transitiveMembers",
        Options::Entity(&USER_SCHEMA),
    ),
    (
        "/v1.0/groups/{id}/transitiveMembers/$count",
        Options::Entity(&USER_SCHEMA),
    ),
    (
        "/v1.0/groups/{id}/membersWithLicenseErrors",
        Options::Entity(&USER_SCHEMA),
    ),
    ("/v1.0/subscribedSkus", Options::Entity(&SUBSCRIBED_SKU_SCHEMA)),
    (
        "/v1.0/subscribedSkus/{id}",
        Options::Entity(&SUBSCRIBED_SKU_SCHEMA),
    ),
    ("/v1.0/auditLogs/directoryAudits", Options::AuditLog),
];

/// The pattern of one query option of an operation, `None` where the option has no pattern of
/// its own (`$top`, `$count` keep their typed schemas).
fn pattern(options: Options, option: &str) -> Option<String> {
    match options {
        Options::Entity(schema) => match option {
            "$select" => Some(patterns::select(schema).anchored()),
            "$filter" => patterns::filter(schema).map(|expression| expression.anchored()),
            "$orderby" => patterns::order_by(schema).map(|expression| expression.anchored()),
            "$search" => patterns::search(schema).map(|expression| expression.anchored()),
            "$expand" => patterns::expand(schema).map(|expression| expression.anchored()),
            "$skiptoken" => Some(SKIP_TOKEN_PATTERN.to_string()),
            _ => None,
        },
        Options::Delta(schema, extra) => match option {
            "$select" => Some(patterns::select_with(schema, extra).anchored()),
            "$deltatoken" => Some(delta::DELTA_TOKEN_PATTERN.to_string()),
            "$skiptoken" => Some(delta::SKIP_TOKEN_PATTERN.to_string()),
            _ => None,
        },
        Options::AuditLog => match option {
            "$filter" => Some(patterns::audit_filter().anchored()),
            "$top" => Some(patterns::page_size().anchored()),
            "$skiptoken" => Some(patterns::sequence_number().anchored()),
            _ => None,
        },
    }
}

/// Writes the pattern of every query option of the operations in [`OPERATIONS`] into the
/// document, drops an option the entity does not have (`$expand` where nothing expands), and
/// makes every property of the entities those operations return optional: with `$select` a
/// response carries only the properties named.
pub fn document_query_options(document: &mut Value) {
    let selectable = selectable_entities(document);
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in &selectable {
            if let Some(schema) = schemas.get_mut(name).and_then(Value::as_object_mut) {
                schema.remove("required");
            }
        }
    }
    let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, options) in OPERATIONS {
        let Some(operation) = paths.get_mut(*path).and_then(|item| item.get_mut("get")) else {
            continue;
        };
        let Some(parameters) = operation.get_mut("parameters").and_then(Value::as_array_mut) else {
            continue;
        };
        parameters.retain_mut(|parameter| {
            let Some(parameter) = parameter.as_object_mut() else {
                return true;
            };
            if parameter.get("in").and_then(Value::as_str) != Some("query") {
                return true;
            }
            let Some(name) = parameter.get("name").and_then(Value::as_str).map(str::to_string) else {
                return true;
            };
            let entity_lacks_option = matches!(options, Options::Entity(_))
                && matches!(name.as_str(), "$filter" | "$orderby" | "$search" | "$expand")
                && pattern(*options, &name).is_none();
            if entity_lacks_option {
                return false;
            }
            if let Some(pattern) = pattern(*options, &name) {
                constrain(parameter, pattern);
            }
            true
        });
    }
}

/// The component named by a `$ref`, if it names one.
fn component(schema: &Value) -> Option<&str> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
}

/// The entities (components) the operations with `$select` answer with: the 200 response's
/// schema, or the items of its `value` collection.
fn selectable_entities(document: &Value) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (path, _) in OPERATIONS {
        let Some(operation) = document.pointer(&format!(
            "/paths/{}/get",
            path.replace('~', "~0").replace('/', "~1")
        )) else {
            continue;
        };
        let selects = operation
            .get("parameters")
            .and_then(Value::as_array)
            .is_some_and(|parameters| parameters.iter().any(|parameter| parameter["name"] == "$select"));
        if !selects {
            continue;
        }
        let Some(schema) = operation.pointer("/responses/200/content/application~1json/schema") else {
            continue;
        };
        let mut candidates = vec![schema.clone()];
        if let Some(name) = component(schema) {
            if let Some(resolved) = document.pointer(&format!("/components/schemas/{name}")) {
                candidates.push(resolved.clone());
            }
        }
        for candidate in &candidates {
            let item = candidate.pointer("/properties/value/items").unwrap_or(candidate);
            if let Some(name) = component(item) {
                if !names.iter().any(|known| known == name) && !name.ends_with("CollectionResponse") {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

fn constrain(parameter: &mut Map<String, Value>, pattern: String) {
    let schema = parameter
        .entry("schema")
        .or_insert_with(|| serde_json::json!({"type": "string"}));
    if let Some(schema) = schema.as_object_mut() {
        schema.remove("minLength");
        schema.insert("pattern".to_string(), Value::String(pattern));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every operation of the document with an OData query option is in [`OPERATIONS`], and
    /// every entry of it is an operation of the document.
    #[test]
    fn every_operation_with_query_options_has_its_schema() {
        let document = serde_json::to_value(crate::openapi::api_router().1).expect("a document");
        let paths = document["paths"].as_object().expect("paths");
        for (path, item) in paths {
            let Some(parameters) = item.pointer("/get/parameters").and_then(Value::as_array) else {
                continue;
            };
            let has_options = parameters.iter().any(|parameter| {
                parameter["in"] == "query"
                    && parameter["name"]
                        .as_str()
                        .is_some_and(|name| name.starts_with('$'))
            });
            if has_options {
                assert!(
                    OPERATIONS.iter().any(|(known, _)| known == path),
                    "{path} has query options but no schema in OPERATIONS"
                );
            }
        }
        for (path, _) in OPERATIONS {
            assert!(paths.contains_key(*path), "{path} is not in the document");
        }
    }

    #[test]
    fn the_served_document_states_each_entitys_names() {
        let served: Value =
            serde_json::from_str(&crate::openapi::document_json().expect("a document")).expect("JSON");
        let parameter = |path: &str, name: &str| -> Value {
            served["paths"][path]["get"]["parameters"]
                .as_array()
                .and_then(|parameters| parameters.iter().find(|parameter| parameter["name"] == name))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let select = |path: &str| parameter(path, "$select")["schema"]["pattern"].clone();
        assert_eq!(select("/v1.0/users"), patterns::select(&USER_SCHEMA).anchored());
        assert_eq!(
            select("/v1.0/users/{id}/memberOf"),
            patterns::select(&GROUP_SCHEMA).anchored()
        );
        assert_eq!(
            select("/v1.0/groups/{id}/members"),
            patterns::select(&USER_SCHEMA).anchored()
        );
        assert_eq!(
            select("/v1.0/groups/delta"),
            patterns::select_with(&GROUP_SCHEMA, &["members"]).anchored()
        );
        assert_eq!(
            select("/v1.0/subscribedSkus"),
            patterns::select(&SUBSCRIBED_SKU_SCHEMA).anchored()
        );
        assert_eq!(
            parameter("/v1.0/users", "$filter")["schema"]["pattern"],
            patterns::filter(&USER_SCHEMA).expect("filterable").anchored()
        );
        assert!(parameter("/v1.0/users", "$select")["schema"]
            .get("minLength")
            .is_none());
        for entity in ["User", "Group", "SubscribedSku", "LicenseDetails"] {
            let schema = &served["components"]["schemas"][entity];
            assert!(schema["properties"].is_object(), "{entity}");
            assert!(
                schema.get("required").is_none(),
                "{entity}: with $select any property can be absent"
            );
        }
        let orderby = parameter("/v1.0/groups", "$orderby")["schema"]["pattern"].clone();
        assert_eq!(orderby, "^(?:displayName(?: (?:asc|desc))?)$");
        assert_eq!(
            parameter("/v1.0/users/delta", "$deltatoken")["schema"]["pattern"],
            delta::DELTA_TOKEN_PATTERN
        );
        assert!(parameter("/v1.0/auditLogs/directoryAudits", "$filter")["schema"]["pattern"].is_string());
    }
}
