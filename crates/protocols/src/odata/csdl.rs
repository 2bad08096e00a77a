//! The CSDL (OData's XML schema, the `$metadata` document every `@odata.context` points to) of
//! what licensd serves under `/v1.0`, generated from an OpenAPI document's JSON: the component
//! schemas give each entity and complex type its properties, so the CSDL and `/openapi.json`
//! cannot drift (a property added to `User` appears in both). What OpenAPI cannot say (keys, base
//! types, navigation properties, entity sets, bound actions) is the fixed table below. JSON in,
//! XML text out: the server serves it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::Value;

/// Why the CSDL could not be generated: the OpenAPI document lacks a schema the tables name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CsdlError {
    #[error("the OpenAPI document has no component schemas")]
    NoComponentSchemas,
    #[error("the OpenAPI document has no schema {0}")]
    MissingSchema(String),
}

const NAMESPACE: &str = "microsoft.graph";

/// An entity type: the OpenAPI schema it comes from, its CSDL name, and its base type (whose
/// key it inherits) or its own key.
pub struct EntityType {
    /// The OpenAPI component schema its properties come from.
    pub schema: &'static str,
    /// Its CSDL name.
    pub name: &'static str,
    /// The base type it derives from (inheriting its key), or `None` for its own `id` key.
    pub base: Option<&'static str>,
    /// Its navigation properties: (name, type, contained).
    pub navigation: &'static [(&'static str, &'static str, bool)],
}

/// The entity types of `/v1.0`; navigation properties are (name, type, contained).
pub const ENTITY_TYPES: &[EntityType] = &[
    EntityType {
        schema: "User",
        name: "user",
        base: Some("directoryObject"),
        navigation: &[
            ("memberOf", "Collection(microsoft.graph.directoryObject)", false),
            (
                "transitiveMemberOf",
                "Collection(microsoft.graph.directoryObject)",
                false,
            ),
            (
                "licenseDetails",
                "Collection(microsoft.graph.licenseDetails)",
                true,
            ),
        ],
    },
    EntityType {
        schema: "Group",
        name: "group",
        base: Some("directoryObject"),
        navigation: &[
            ("members", "Collection(microsoft.graph.directoryObject)", false),
            (
                "transitiveMembers",
                "Collection(microsoft.graph.directoryObject)",
                false,
            ),
            (
                "membersWithLicenseErrors",
                "Collection(microsoft.graph.directoryObject)",
                false,
            ),
        ],
    },
    EntityType {
        schema: "SubscribedSku",
        name: "subscribedSku",
        base: None,
        navigation: &[],
    },
    EntityType {
        schema: "LicenseDetails",
        name: "licenseDetails",
        base: None,
        navigation: &[],
    },
    EntityType {
        schema: "DirectoryAudit",
        name: "directoryAudit",
        base: None,
        navigation: &[],
    },
];

/// Entity sets and singletons of the container: (name, type, is a singleton).
const CONTAINER: &[(&str, &str, bool)] = &[
    ("users", "user", false),
    ("groups", "group", false),
    ("directoryObjects", "directoryObject", false),
    ("subscribedSkus", "subscribedSku", false),
    ("auditLogs", "auditLogRoot", true),
];

/// A bound action: its name, binding type, parameters (name, type) and return type.
type BoundAction = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
);

/// The bound actions of `/v1.0`.
const ACTIONS: &[BoundAction] = &[
    (
        "assignLicense",
        "microsoft.graph.user",
        &[
            ("addLicenses", "Collection(microsoft.graph.assignedLicense)"),
            ("removeLicenses", "Collection(Edm.Guid)"),
        ],
        Some("microsoft.graph.user"),
    ),
    (
        "assignLicense",
        "microsoft.graph.group",
        &[
            ("addLicenses", "Collection(microsoft.graph.assignedLicense)"),
            ("removeLicenses", "Collection(Edm.Guid)"),
        ],
        Some("microsoft.graph.group"),
    ),
    (
        "reprocessLicenseAssignment",
        "microsoft.graph.user",
        &[],
        Some("microsoft.graph.user"),
    ),
    (
        "reprocessLicenseAssignment",
        "microsoft.graph.group",
        &[],
        Some("microsoft.graph.group"),
    ),
    (
        "getByIds",
        "Collection(microsoft.graph.directoryObject)",
        &[
            ("ids", "Collection(Edm.String)"),
            ("types", "Collection(Edm.String)"),
        ],
        Some("Collection(microsoft.graph.directoryObject)"),
    ),
];

/// `AssignedLicense` → `assignedLicense`.
fn csdl_name(schema: &str) -> String {
    let mut characters = schema.chars();
    match characters.next() {
        Some(first) => first.to_lowercase().chain(characters).collect(),
        None => String::new(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The schema name a `$ref` points to.
fn referenced(reference: &Value) -> Option<&str> {
    reference
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|text| text.strip_prefix("#/components/schemas/"))
}

/// The CSDL type of a JSON schema, and whether it can be null; collects the complex types it
/// refers to.
fn csdl_type(schema: &Value, complex: &mut BTreeSet<String>) -> (String, bool) {
    if let Some(name) = referenced(schema) {
        complex.insert(name.to_string());
        return (format!("{NAMESPACE}.{}", csdl_name(name)), false);
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
            let nullable = options
                .iter()
                .any(|option| option.get("type").and_then(Value::as_str) == Some("null"));
            if let Some(option) = options
                .iter()
                .find(|option| option.get("type").and_then(Value::as_str) != Some("null"))
            {
                let (name, inner_nullable) = csdl_type(option, complex);
                return (name, nullable || inner_nullable);
            }
        }
    }
    let (type_name, nullable) = match schema.get("type") {
        Some(Value::String(name)) => (name.as_str(), false),
        Some(Value::Array(names)) => {
            let nullable = names.iter().any(|name| name.as_str() == Some("null"));
            let name = names
                .iter()
                .filter_map(Value::as_str)
                .find(|name| *name != "null")
                .unwrap_or("string");
            (name, nullable)
        }
        _ => ("object", false),
    };
    let format = schema.get("format").and_then(Value::as_str);
    let edm = match (type_name, format) {
        ("array", _) => {
            let items = schema.get("items").cloned().unwrap_or(Value::Null);
            let (inner, _) = csdl_type(&items, complex);
            return (format!("Collection({inner})"), nullable);
        }
        ("string", Some("uuid")) => "Edm.Guid",
        ("string", Some("date-time")) => "Edm.DateTimeOffset",
        ("string", _) => "Edm.String",
        ("boolean", _) => "Edm.Boolean",
        ("integer", Some("int32")) => "Edm.Int32",
        ("integer", _) => "Edm.Int64",
        ("number", _) => "Edm.Double",
        _ => "Edm.Untyped",
    };
    (edm.to_string(), nullable)
}

/// The `<Property>` elements of a schema's properties, skipping OData annotations and `skip`.
fn properties(schema: &Value, skip: &[&str], complex: &mut BTreeSet<String>, output: &mut String) {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        if name.starts_with('@') || skip.contains(&name.as_str()) {
            continue;
        }
        let (type_name, nullable) = csdl_type(property, complex);
        let nullable = nullable || !required.contains(&name.as_str());
        let _ = writeln!(
            output,
            "        <Property Name=\"{}\" Type=\"{}\"{}/>",
            escape(name),
            escape(&type_name),
            if nullable { "" } else { " Nullable=\"false\"" }
        );
    }
}

/// The CSDL document of `/v1.0`, from the OpenAPI document's component schemas.
pub fn csdl(openapi: &Value) -> Result<String, CsdlError> {
    let schemas = openapi
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .ok_or(CsdlError::NoComponentSchemas)?;
    let mut output = String::new();
    let mut complex: BTreeSet<String> = BTreeSet::new();
    let entity_schemas: BTreeSet<&str> = ENTITY_TYPES.iter().map(|entity| entity.schema).collect();
    output.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    output.push_str("<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n");
    output.push_str("  <edmx:DataServices>\n");
    let _ = writeln!(
        output,
        "    <Schema Namespace=\"{NAMESPACE}\" Alias=\"graph\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
    );
    output.push_str("      <EntityType Name=\"directoryObject\" Abstract=\"true\" OpenType=\"true\">\n");
    output.push_str("        <Key><PropertyRef Name=\"id\"/></Key>\n");
    output.push_str("        <Property Name=\"id\" Type=\"Edm.String\" Nullable=\"false\"/>\n");
    output.push_str("      </EntityType>\n");
    for entity in ENTITY_TYPES {
        let schema = schemas
            .get(entity.schema)
            .ok_or_else(|| CsdlError::MissingSchema(entity.schema.to_string()))?;
        match entity.base {
            Some(base) => {
                let _ = writeln!(
                    output,
                    "      <EntityType Name=\"{}\" BaseType=\"{NAMESPACE}.{base}\" OpenType=\"true\">",
                    entity.name
                );
                properties(schema, &["id"], &mut complex, &mut output);
            }
            None => {
                let _ = writeln!(output, "      <EntityType Name=\"{}\">", entity.name);
                output.push_str("        <Key><PropertyRef Name=\"id\"/></Key>\n");
                properties(schema, &[], &mut complex, &mut output);
            }
        }
        for (name, type_name, contained) in entity.navigation {
            let _ = writeln!(
                output,
                "        <NavigationProperty Name=\"{name}\" Type=\"{type_name}\"{}/>",
                if *contained {
                    " ContainsTarget=\"true\""
                } else {
                    ""
                }
            );
        }
        output.push_str("      </EntityType>\n");
    }
    output.push_str("      <EntityType Name=\"auditLogRoot\">\n");
    output.push_str("        <Key><PropertyRef Name=\"id\"/></Key>\n");
    output.push_str("        <Property Name=\"id\" Type=\"Edm.String\" Nullable=\"false\"/>\n");
    output.push_str("        <NavigationProperty Name=\"directoryAudits\" Type=\"Collection(microsoft.graph.directoryAudit)\" ContainsTarget=\"true\"/>\n");
    output.push_str("      </EntityType>\n");
    // Complex types: every schema the entity types refer to, and what those refer to.
    let mut written: BTreeMap<String, ()> = BTreeMap::new();
    while let Some(name) = complex
        .iter()
        .find(|name| !written.contains_key(*name) && !entity_schemas.contains(name.as_str()))
        .cloned()
    {
        written.insert(name.clone(), ());
        let schema = schemas
            .get(&name)
            .ok_or_else(|| CsdlError::MissingSchema(name.clone()))?;
        let mut body = String::new();
        properties(schema, &[], &mut complex, &mut body);
        let _ = writeln!(output, "      <ComplexType Name=\"{}\">", csdl_name(&name));
        output.push_str(&body);
        output.push_str("      </ComplexType>\n");
    }
    for (name, binding, parameters, returns) in ACTIONS {
        let _ = writeln!(output, "      <Action Name=\"{name}\" IsBound=\"true\">");
        let _ = writeln!(
            output,
            "        <Parameter Name=\"bindingParameter\" Type=\"{binding}\"/>"
        );
        for (parameter, type_name) in *parameters {
            let _ = writeln!(
                output,
                "        <Parameter Name=\"{parameter}\" Type=\"{type_name}\"/>"
            );
        }
        if let Some(returns) = returns {
            let _ = writeln!(output, "        <ReturnType Type=\"{returns}\"/>");
        }
        output.push_str("      </Action>\n");
    }
    output.push_str("      <EntityContainer Name=\"GraphService\">\n");
    for (name, type_name, singleton) in CONTAINER {
        let element = if *singleton { "Singleton" } else { "EntitySet" };
        let type_attribute = if *singleton { "Type" } else { "EntityType" };
        let _ = writeln!(
            output,
            "        <{element} Name=\"{name}\" {type_attribute}=\"{NAMESPACE}.{type_name}\"/>"
        );
    }
    output.push_str("      </EntityContainer>\n");
    output.push_str("    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The smallest OpenAPI document naming every entity schema, with a few property shapes.
    fn openapi() -> Value {
        let mut schemas = serde_json::Map::new();
        for entity in ENTITY_TYPES {
            schemas.insert(
                entity.schema.to_string(),
                json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}),
            );
        }
        schemas.insert(
            "User".to_string(),
            json!({
                "type": "object",
                "required": ["id", "accountEnabled"],
                "properties": {
                    "@odata.type": {"type": "string"},
                    "id": {"type": "string", "format": "uuid"},
                    "accountEnabled": {"type": "boolean"},
                    "displayName": {"type": ["string", "null"]},
                    "assignedLicenses": {"type": "array", "items": {"$ref": "#/components/schemas/AssignedLicense"}},
                    "createdDateTime": {"oneOf": [{"type": "null"}, {"type": "string", "format": "date-time"}]}
                }
            }),
        );
        schemas.insert(
            "AssignedLicense".to_string(),
            json!({
                "type": "object",
                "required": ["skuId"],
                "properties": {
                    "skuId": {"type": "string", "format": "uuid"},
                    "disabledPlans": {"type": "array", "items": {"type": "string", "format": "uuid"}}
                }
            }),
        );
        json!({"components": {"schemas": schemas}})
    }

    #[test]
    fn properties_become_typed_csdl_properties() {
        let xml = csdl(&openapi()).expect("a document");
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"));
        assert!(xml.contains(
            "<EntityType Name=\"user\" BaseType=\"microsoft.graph.directoryObject\" OpenType=\"true\">"
        ));
        assert!(xml.contains("<Property Name=\"accountEnabled\" Type=\"Edm.Boolean\" Nullable=\"false\"/>"));
        assert!(xml.contains("<Property Name=\"displayName\" Type=\"Edm.String\"/>"));
        assert!(xml.contains("<Property Name=\"createdDateTime\" Type=\"Edm.DateTimeOffset\"/>"));
        assert!(xml.contains(
            "<Property Name=\"assignedLicenses\" Type=\"Collection(microsoft.graph.assignedLicense)\"/>"
        ));
        assert!(xml.contains("<ComplexType Name=\"assignedLicense\">"));
        assert!(xml.contains("<Property Name=\"skuId\" Type=\"Edm.Guid\" Nullable=\"false\"/>"));
        assert!(xml.contains("<Property Name=\"disabledPlans\" Type=\"Collection(Edm.Guid)\"/>"));
        // The base type's key is inherited, and annotations are not properties.
        let user = &xml[xml.find("<EntityType Name=\"user\"").expect("user")..];
        let user = &user[..user.find("</EntityType>").expect("closed")];
        assert!(!user.contains("<Property Name=\"id\""));
        assert!(!user.contains("@odata.type"));
        assert!(xml.contains("<EntitySet Name=\"users\" EntityType=\"microsoft.graph.user\"/>"));
        assert!(xml.contains("<Singleton Name=\"auditLogs\" Type=\"microsoft.graph.auditLogRoot\"/>"));
        assert!(xml.ends_with("</edmx:Edmx>\n"));
    }

    #[test]
    fn a_missing_schema_is_named() {
        assert_eq!(csdl(&json!({})), Err(CsdlError::NoComponentSchemas));
        let mut document = openapi();
        if let Some(schemas) = document
            .pointer_mut("/components/schemas")
            .and_then(Value::as_object_mut)
        {
            schemas.remove("AssignedLicense");
        }
        assert_eq!(
            csdl(&document),
            Err(CsdlError::MissingSchema("AssignedLicense".to_string()))
        );
    }
}
