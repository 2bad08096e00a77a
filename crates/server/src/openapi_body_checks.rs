//! The checks every JSON request body passes before its handler reads it (`api::validation` and
//! `licensd_api_types::limits`), written into the OpenAPI document's request schemas so the
//! document states what the server accepts: each string's length limit (by property name, the
//! same table the server checks), no control characters, and integers within `Edm.Int32`. They
//! are global rules of the server, so they are applied to the document in one pass rather than
//! repeated on every field of every wire type.

use std::collections::BTreeSet;

use licensd_api_types::limits::{max_length, MAX_PROPERTY_NAME_LENGTH};
use serde_json::{Map, Value};

/// Text without control characters (Unicode category Cc, what `char::is_control` finds), as an
/// ECMA-262 regular expression.
pub const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// Request types that are enums tagged by `type` whose variants refuse unknown properties
/// (`#[serde(deny_unknown_fields)]`), which utoipa does not write into the variants' schemas.
const CLOSED_TAGGED_ENUMS: &[&str] = &["Change"];

/// Adds the body checks to every schema a request body refers to (inline or through
/// `#/components/schemas/...`, however deeply nested).
pub fn document_body_checks(document: &mut Value) {
    for name in CLOSED_TAGGED_ENUMS {
        let Some(variants) = document
            .pointer_mut(&format!("/components/schemas/{name}/oneOf"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for variant in variants.iter_mut().filter_map(Value::as_object_mut) {
            variant
                .entry("additionalProperties")
                .or_insert(Value::Bool(false));
        }
    }
    let mut component_names = BTreeSet::new();
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for item in paths.values_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for operation in item.values_mut() {
                let Some(content) = operation
                    .pointer_mut("/requestBody/content")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for media in content.values_mut() {
                    if let Some(schema) = media.get_mut("schema") {
                        constrain(schema, "(body)", &mut component_names);
                    }
                }
            }
        }
    }
    // Components refer to other components: constrain until no new name is found.
    let mut done = BTreeSet::new();
    while let Some(name) = component_names.iter().find(|name| !done.contains(*name)).cloned() {
        done.insert(name.clone());
        if let Some(schema) = document.pointer_mut(&format!("/components/schemas/{name}")) {
            constrain(schema, "(body)", &mut component_names);
        }
    }
}

/// The component a `$ref` names, if it names one.
fn referenced_component(schema: &Map<String, Value>) -> Option<String> {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        .map(str::to_string)
}

/// Whether a schema's `type` is, or includes, `wanted`.
fn has_type(schema: &Map<String, Value>, wanted: &str) -> bool {
    match schema.get("type") {
        Some(Value::String(name)) => name == wanted,
        Some(Value::Array(names)) => names.iter().any(|name| name.as_str() == Some(wanted)),
        _ => false,
    }
}

/// Constrains one schema, reached as the value of `property` (array items keep their array's
/// name, as the server's length check judges them).
fn constrain(schema: &mut Value, property: &str, components: &mut BTreeSet<String>) {
    let Some(schema) = schema.as_object_mut() else {
        return;
    };
    if let Some(name) = referenced_component(schema) {
        components.insert(name);
        return;
    }
    if has_type(schema, "string") && !schema.contains_key("enum") {
        // A GUID or a date-time has a shape of its own without control characters.
        let formatted = schema
            .get("format")
            .and_then(Value::as_str)
            .is_some_and(|format| matches!(format, "uuid" | "date-time"));
        if !formatted {
            schema
                .entry("maxLength")
                .or_insert_with(|| Value::from(max_length(property)));
            match schema.get("pattern").and_then(Value::as_str) {
                None => {
                    schema.insert("pattern".to_string(), Value::from(NO_CONTROL_CHARACTERS));
                }
                // An unanchored pattern of the property's own (such as "not blank") says nothing
                // of the rest of the text: both must hold.
                Some(own) if !own.starts_with('^') => {
                    let rule = serde_json::json!({ "pattern": NO_CONTROL_CHARACTERS });
                    match schema.get_mut("allOf").and_then(Value::as_array_mut) {
                        Some(all_of) => all_of.push(rule),
                        None => {
                            schema.insert("allOf".to_string(), Value::Array(vec![rule]));
                        }
                    }
                }
                Some(_) => {}
            }
        }
    }
    if has_type(schema, "integer") {
        schema.entry("minimum").or_insert_with(|| Value::from(i32::MIN));
        schema.entry("maximum").or_insert_with(|| Value::from(i32::MAX));
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        for (name, child) in properties.iter_mut() {
            constrain(child, name, components);
        }
    }
    if let Some(items) = schema.get_mut("items") {
        constrain(items, property, components);
    }
    if let Some(additional) = schema.get_mut("additionalProperties") {
        if additional.is_object() {
            constrain(additional, property, components);
            // A map: the server refuses longer property names in any body.
            schema
                .entry("propertyNames")
                .or_insert_with(|| serde_json::json!({ "maxLength": MAX_PROPERTY_NAME_LENGTH }));
        }
    }
    for composite in ["oneOf", "anyOf", "allOf"] {
        if let Some(members) = schema.get_mut(composite).and_then(Value::as_array_mut) {
            for member in members {
                constrain(member, property, components);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_strings_get_their_limit_and_no_control_characters_through_references() {
        let mut document = json!({
            "paths": {"/v1.0/users": {"post": {"requestBody": {"content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CreateUser"}
            }}}}}},
            "components": {"schemas": {
                "CreateUser": {"type": "object", "properties": {
                    "displayName": {"type": "string", "pattern": "\\S"},
                    "usageLocation": {"type": ["string", "null"], "pattern": "^[A-Z]{2}$"},
                    "proxyAddresses": {"type": "array", "items": {"type": "string"}},
                    "id": {"type": "string", "format": "uuid"},
                    "seats": {"type": "integer", "format": "int32", "minimum": 0},
                    "license": {"$ref": "#/components/schemas/License"}
                }},
                "License": {"type": "object", "properties": {"note": {"type": "string"}}},
                "UserResponse": {"type": "object", "properties": {"displayName": {"type": "string"}}}
            }}
        });
        document_body_checks(&mut document);
        let schemas = &document["components"]["schemas"];
        let user = &schemas["CreateUser"]["properties"];
        assert_eq!(user["displayName"]["maxLength"], 256);
        assert_eq!(user["displayName"]["pattern"], "\\S", "its own rule stays");
        assert_eq!(
            user["displayName"]["allOf"][0]["pattern"], NO_CONTROL_CHARACTERS,
            "an unanchored rule of its own is combined with the body check"
        );
        assert_eq!(
            user["usageLocation"]["pattern"], "^[A-Z]{2}$",
            "a pattern of its own stays"
        );
        assert_eq!(user["proxyAddresses"]["items"]["maxLength"], 1_024);
        assert!(user["id"].get("pattern").is_none(), "a GUID keeps its format");
        assert_eq!(user["seats"]["minimum"], 0);
        assert_eq!(user["seats"]["maximum"], i32::MAX);
        assert_eq!(
            schemas["License"]["properties"]["note"]["pattern"],
            NO_CONTROL_CHARACTERS
        );
        assert!(
            schemas["UserResponse"]["properties"]["displayName"]
                .get("pattern")
                .is_none(),
            "a response-only schema is not a request body"
        );
    }

    #[test]
    fn the_variants_of_a_change_refuse_other_properties_as_the_server_does() {
        let served: Value =
            serde_json::from_str(&crate::openapi::document_json().expect("a document")).expect("JSON");
        let variants = served["components"]["schemas"]["Change"]["oneOf"]
            .as_array()
            .expect("variants");
        assert!(variants.len() > 3);
        for variant in variants {
            assert_eq!(variant["additionalProperties"], false, "{variant}");
        }
        let refused = serde_json::from_value::<licensd_api_types::diagnosis::Change>(json!({
            "type": "assignGroupLicenses",
            "groupId": "ba9b12bb-ae59-42f0-8c8b-4f6edf752b2d",
            "userId": "4a1ad2b6-2c30-4cd4-a0e8-18896f47922f"
        }));
        assert!(
            refused.is_err(),
            "the server refuses an unknown property of a change"
        );
    }

    #[test]
    fn the_documented_roles_are_those_the_server_reads() {
        let documented = licensd_api_types::schemas::ROLE_NAMES;
        assert_eq!(documented.len(), licensd_runtime::access::Role::ALL.len());
        for role in licensd_runtime::access::Role::ALL {
            assert!(documented.contains(&role.as_str()), "{}", role.as_str());
        }
        for name in documented {
            assert!(name.parse::<licensd_runtime::access::Role>().is_ok(), "{name}");
        }
    }

    #[test]
    fn the_pattern_refuses_what_the_server_refuses() {
        // The pattern's class is exactly `char::is_control`: U+0000–U+001F and U+007F–U+009F.
        let controls: Vec<char> = (0u32..=0x10FFFF)
            .filter_map(char::from_u32)
            .filter(|character| character.is_control())
            .collect();
        assert_eq!(controls.first(), Some(&'\u{0}'));
        assert_eq!(controls.last(), Some(&'\u{9F}'));
        assert_eq!(controls.len(), 0x20 + 0x21);
    }

    #[test]
    fn the_documented_usage_locations_are_exactly_those_the_engine_accepts() {
        let documented: Vec<String> = licensd_api_types::schemas::ASSIGNED_COUNTRY_CODES
            .as_bytes()
            .chunks(2)
            .map(|code| String::from_utf8_lossy(code).into_owned())
            .collect();
        for first in b'A'..=b'Z' {
            for second in b'A'..=b'Z' {
                let code = String::from_utf8_lossy(&[first, second]).into_owned();
                assert_eq!(
                    licensd_engine::CountryCode::parse(&code).is_ok(),
                    documented.contains(&code),
                    "{code}"
                );
            }
        }
        assert!(
            licensd_engine::CountryCode::parse("us").is_err(),
            "lower case is refused, as documented"
        );
    }
}
