//! Resource documents: canonicalizing what a client sent against the schemas (attribute names
//! ignore case, Entra ID's `"True"`/`"False"` become booleans, a complex attribute given as a
//! string becomes `{"value": …}`, unknown attributes are dropped, at most one `primary`), and
//! applying PATCH operations (RFC 7644 §3.5.2) to a resource's JSON: `add`, `remove` and
//! `replace`, with or without a path, value filters and extension URNs. Operation names ignore
//! case (`"Replace"` from Entra ID).

use serde_json::{Map, Value};

use super::error::BadRequest;
use super::filter::{attribute_of, get_ignoring_case, parse_patch_path, PatchPath};
use super::schema::{Attribute, Kind, Mutability, ResourceKind, Schema, PATCH_OP};

/// A PATCH operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Add,
    Remove,
    Replace,
}

/// One operation of a PATCH request, its path parsed.
#[derive(Clone, Debug)]
pub struct Operation {
    pub op: Op,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// Parses a `PatchOp` request body.
pub fn parse_patch_request(body: &Value, kind: &ResourceKind) -> Result<Vec<Operation>, BadRequest> {
    let Some(object) = body.as_object() else {
        return Err(BadRequest::invalid_syntax(
            "A PATCH body must be a JSON object (a PatchOp message).",
        ));
    };
    if let Some(schemas) = get_ignoring_case(object, "schemas") {
        let listed = schemas.as_array().is_some_and(|schemas| {
            schemas
                .iter()
                .any(|schema| schema.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
        });
        if !listed {
            return Err(BadRequest::invalid_syntax(format!(
                "A PATCH body's schemas must list {PATCH_OP}."
            )));
        }
    }
    let Some(operations) = get_ignoring_case(object, "Operations").and_then(Value::as_array) else {
        return Err(BadRequest::invalid_syntax(
            "A PATCH body needs an 'Operations' array.",
        ));
    };
    if operations.is_empty() {
        return Err(BadRequest::invalid_syntax(
            "A PATCH body's 'Operations' is empty.",
        ));
    }
    operations
        .iter()
        .map(|operation| {
            let Some(operation) = operation.as_object() else {
                return Err(BadRequest::invalid_syntax(
                    "Each PATCH operation must be a JSON object.",
                ));
            };
            let op = match get_ignoring_case(operation, "op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
            {
                Some(op) if op == "add" => Op::Add,
                Some(op) if op == "remove" => Op::Remove,
                Some(op) if op == "replace" => Op::Replace,
                other => {
                    return Err(BadRequest::invalid_syntax(format!(
                        "A PATCH operation's 'op' must be add, remove or replace, not {}.",
                        other.map_or("nothing".to_string(), |op| format!("'{op}'"))
                    )))
                }
            };
            let path = match get_ignoring_case(operation, "path") {
                None | Some(Value::Null) => None,
                Some(Value::String(path)) if path.trim().is_empty() => None,
                Some(Value::String(path)) => Some(parse_patch_path(path, kind)?),
                Some(_) => {
                    return Err(BadRequest::invalid_path(
                        "A PATCH operation's 'path' must be a string.",
                    ))
                }
            };
            let value = get_ignoring_case(operation, "value").cloned();
            if op == Op::Remove && path.is_none() {
                return Err(BadRequest::no_target("A remove operation needs a 'path'."));
            }
            if op != Op::Remove && value.is_none() {
                return Err(BadRequest::invalid_value(
                    "An add or replace operation needs a 'value'.",
                ));
            }
            Ok(Operation { op, path, value })
        })
        .collect()
}

/// The key of `object` equal to `name` ignoring case.
fn key_of(object: &Map<String, Value>, name: &str) -> Option<String> {
    if object.contains_key(name) {
        return Some(name.to_string());
    }
    object.keys().find(|key| key.eq_ignore_ascii_case(name)).cloned()
}

fn set(object: &mut Map<String, Value>, name: &str, value: Value) {
    let key = key_of(object, name).unwrap_or_else(|| name.to_string());
    object.insert(key, value);
}

fn remove(object: &mut Map<String, Value>, name: &str) -> Option<Value> {
    key_of(object, name).and_then(|key| object.remove(&key))
}

fn as_list(value: Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// `add` or `replace` of `value` into `object[name]`, knowing whether the attribute is multi-valued.
fn put(object: &mut Map<String, Value>, name: &str, value: Value, multi: bool, op: Op) {
    if value.is_null() {
        if op == Op::Replace {
            remove(object, name);
        }
        return;
    }
    let existing = key_of(object, name).and_then(|key| object.get_mut(&key));
    match existing {
        Some(Value::Array(items)) if multi && op == Op::Add => {
            for item in as_list(value) {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
        }
        Some(Value::Object(current)) if !multi && value.is_object() => {
            if let Value::Object(new) = value {
                for (key, sub) in new {
                    if sub.is_null() {
                        remove(current, &key);
                    } else {
                        set(current, &key, sub);
                    }
                }
            }
        }
        _ => {
            let value = if multi {
                Value::Array(as_list(value))
            } else {
                value
            };
            set(object, name, value);
        }
    }
}

fn is_multi(kind: &ResourceKind, urn: Option<&str>, name: &str, value: Option<&Value>) -> bool {
    match attribute_of(kind, urn, name) {
        Some(attribute) => attribute.multi_valued,
        None => value.is_some_and(Value::is_array),
    }
}

/// The object of the extension `urn` in `document`, created when absent.
fn extension_object<'d>(
    document: &'d mut Map<String, Value>,
    urn: &str,
) -> Result<&'d mut Map<String, Value>, BadRequest> {
    let key = key_of(document, urn).unwrap_or_else(|| urn.to_string());
    match document.entry(key).or_insert_with(|| Value::Object(Map::new())) {
        Value::Object(object) => Ok(object),
        _ => Err(BadRequest::invalid_value(format!(
            "The extension '{urn}' must be a JSON object."
        ))),
    }
}

/// The object holding `path`'s attribute: the resource, or its extension object (created for
/// add and replace).
fn container<'d>(
    document: &'d mut Map<String, Value>,
    urn: Option<&str>,
    create: bool,
) -> Result<Option<&'d mut Map<String, Value>>, BadRequest> {
    let Some(urn) = urn else {
        return Ok(Some(document));
    };
    if !create && key_of(document, urn).is_none() {
        return Ok(None);
    }
    extension_object(document, urn).map(Some)
}

/// Applies one operation to a resource document.
pub fn apply(
    document: &mut Map<String, Value>,
    operation: &Operation,
    kind: &ResourceKind,
) -> Result<(), BadRequest> {
    let value = operation.value.clone().unwrap_or(Value::Null);
    let Some(path) = &operation.path else {
        // No path: the value is a resource fragment, applied attribute by attribute.
        let Value::Object(fragment) = value else {
            return Err(BadRequest::invalid_value(
                "Without a path, the value of an add or replace must be a JSON object of attributes.",
            ));
        };
        for (key, sub_value) in fragment {
            if let Some(extension) = kind.extension(&key) {
                let Value::Object(attributes) = sub_value else {
                    return Err(BadRequest::invalid_value(format!(
                        "The extension '{key}' must be a JSON object."
                    )));
                };
                let target = extension_object(document, extension.id)?;
                for (name, attribute_value) in attributes {
                    let multi = is_multi(kind, Some(extension.id), &name, Some(&attribute_value));
                    put(target, &name, attribute_value, multi, operation.op);
                }
            } else if key.eq_ignore_ascii_case("schemas") {
                continue;
            } else if key.to_ascii_lowercase().starts_with("urn:") {
                let path = parse_patch_path(&key, kind)?;
                apply(
                    document,
                    &Operation {
                        op: operation.op,
                        path: Some(path),
                        value: Some(sub_value),
                    },
                    kind,
                )?;
            } else {
                let multi = is_multi(kind, None, &key, Some(&sub_value));
                put(document, &key, sub_value, multi, operation.op);
            }
        }
        return Ok(());
    };
    if path.whole_extension {
        let urn = path.attr.name.as_str();
        return match operation.op {
            Op::Remove => {
                remove(document, urn);
                Ok(())
            }
            Op::Add | Op::Replace => {
                let Value::Object(attributes) = value else {
                    return Err(BadRequest::invalid_value(format!(
                        "The extension '{urn}' must be a JSON object."
                    )));
                };
                let target = extension_object(document, urn)?;
                for (name, attribute_value) in attributes {
                    let multi = is_multi(kind, Some(urn), &name, Some(&attribute_value));
                    put(target, &name, attribute_value, multi, operation.op);
                }
                Ok(())
            }
        };
    }
    let attr = &path.attr;
    let multi = is_multi(kind, attr.urn.as_deref(), &attr.name, operation.value.as_ref());
    let create = operation.op != Op::Remove;
    let Some(target) = container(document, attr.urn.as_deref(), create)? else {
        return Ok(());
    };
    match (&path.filter, &attr.sub) {
        (None, None) => match operation.op {
            Op::Remove => {
                match (
                    &operation.value,
                    key_of(target, &attr.name).and_then(|key| target.get_mut(&key)),
                ) {
                    // Entra ID removes members with `"path": "members", "value": [{"value": id}]`.
                    (Some(Value::Array(removed)), Some(Value::Array(items))) if multi => {
                        items.retain(|item| !removed.iter().any(|gone| same_value(item, gone)));
                        if items.is_empty() {
                            remove(target, &attr.name);
                        }
                    }
                    _ => {
                        remove(target, &attr.name);
                    }
                }
            }
            op => put(target, &attr.name, value, multi, op),
        },
        (None, Some(sub)) => {
            let entry = key_of(target, &attr.name).and_then(|key| target.get_mut(&key));
            match (operation.op, entry) {
                (Op::Remove, None) => {}
                (Op::Remove, Some(Value::Object(object))) => {
                    remove(object, sub);
                    if object.is_empty() {
                        remove(target, &attr.name);
                    }
                }
                (Op::Remove, Some(Value::Array(items))) => {
                    for item in items.iter_mut() {
                        if let Value::Object(object) = item {
                            remove(object, sub);
                        }
                    }
                    items.retain(|item| item.as_object().map_or(true, |object| !object.is_empty()));
                    if items.is_empty() {
                        remove(target, &attr.name);
                    }
                }
                (_, Some(Value::Array(items))) => {
                    if items.is_empty() {
                        items.push(Value::Object(Map::new()));
                    }
                    for item in items.iter_mut() {
                        if let Value::Object(object) = item {
                            set(object, sub, value.clone());
                        }
                    }
                }
                (_, Some(Value::Object(object))) => set(object, sub, value),
                (_, _) => {
                    let mut object = Map::new();
                    object.insert(sub.clone(), value);
                    let entry = if multi {
                        Value::Array(vec![Value::Object(object)])
                    } else {
                        Value::Object(object)
                    };
                    set(target, &attr.name, entry);
                }
            }
        }
        (Some(filter), _) => {
            let sub = path.sub.as_deref();
            let items = match key_of(target, &attr.name).and_then(|key| target.get_mut(&key)) {
                Some(Value::Array(items)) => Some(items),
                Some(_) => {
                    return Err(BadRequest::invalid_path(format!(
                        "'{}' is not multi-valued: a value filter does not apply.",
                        attr.name
                    )))
                }
                None => None,
            };
            let mut matched = false;
            if let Some(items) = items {
                let mut kept = Vec::with_capacity(items.len());
                for mut item in std::mem::take(items) {
                    if !filter.matches_in(&item, kind, Some(attr)) {
                        kept.push(item);
                        continue;
                    }
                    matched = true;
                    match (operation.op, sub, &mut item) {
                        (Op::Remove, None, _) => continue,
                        (Op::Remove, Some(sub), Value::Object(object)) => {
                            remove(object, sub);
                        }
                        (_, Some(sub), Value::Object(object)) => set(object, sub, value.clone()),
                        (_, None, Value::Object(object)) => match &value {
                            Value::Object(new) => {
                                for (key, sub_value) in new {
                                    set(object, key, sub_value.clone());
                                }
                            }
                            _ => {
                                return Err(BadRequest::invalid_value(
                                    "The value replacing a filtered value must be a JSON object.",
                                ))
                            }
                        },
                        (_, _, _) => {}
                    }
                    kept.push(item);
                }
                *items = kept;
                if items.is_empty() {
                    remove(target, &attr.name);
                }
            }
            if !matched && operation.op != Op::Remove {
                let Some(equalities) = filter.required_equalities() else {
                    return Err(BadRequest::no_target(format!(
                        "No value of '{}' matches the filter of the path.",
                        attr.name
                    )));
                };
                let mut object: Map<String, Value> = equalities.into_iter().collect();
                match (sub, value) {
                    (Some(sub), value) => {
                        object.insert(sub.to_string(), value);
                    }
                    (None, Value::Object(new)) => object.extend(new),
                    (None, _) => {
                        return Err(BadRequest::invalid_value(
                            "The value replacing a filtered value must be a JSON object.",
                        ))
                    }
                }
                put(
                    target,
                    &attr.name,
                    Value::Array(vec![Value::Object(object)]),
                    true,
                    Op::Add,
                );
            }
        }
    }
    Ok(())
}

/// Whether two values of a multi-valued attribute are the same (by `value` when both have one).
fn same_value(item: &Value, other: &Value) -> bool {
    match (item.get("value"), other.get("value")) {
        (Some(left), Some(right)) => left == right,
        _ => item == other,
    }
}

/// Canonicalizes a client's resource: attribute names as the schema spells them, values of the
/// declared types, read-only attributes and attributes no schema declares dropped.
pub fn canonicalize(
    document: &Map<String, Value>,
    kind: &ResourceKind,
) -> Result<Map<String, Value>, BadRequest> {
    let mut canonical = Map::new();
    for (key, value) in document {
        if let Some(extension) = kind.extension(key) {
            if value.is_null() {
                continue;
            }
            let Value::Object(attributes) = value else {
                return Err(BadRequest::invalid_value(format!(
                    "The extension '{key}' must be a JSON object."
                )));
            };
            let object = canonical_attributes(attributes, extension)?;
            if !object.is_empty() {
                canonical.insert(extension.id.to_string(), Value::Object(object));
            }
            continue;
        }
        if key.eq_ignore_ascii_case("externalId") {
            match value {
                Value::Null => {}
                Value::String(text) if text.is_empty() => {}
                Value::String(_) => {
                    canonical.insert("externalId".to_string(), value.clone());
                }
                _ => return Err(BadRequest::invalid_value("externalId must be a string.")),
            }
            continue;
        }
        if let Some(attribute) = kind.core.attribute(key) {
            if attribute.mutability == Mutability::ReadOnly {
                continue;
            }
            if let Some(value) = canonical_value(value, attribute)? {
                canonical.insert(attribute.name.to_string(), value);
            }
        }
    }
    Ok(canonical)
}

fn canonical_attributes(
    attributes: &Map<String, Value>,
    schema: &Schema,
) -> Result<Map<String, Value>, BadRequest> {
    let mut object = Map::new();
    for (key, value) in attributes {
        if let Some(attribute) = schema.attribute(key) {
            if attribute.mutability == Mutability::ReadOnly {
                continue;
            }
            if let Some(value) = canonical_value(value, attribute)? {
                object.insert(attribute.name.to_string(), value);
            }
        }
    }
    Ok(object)
}

fn canonical_value(value: &Value, attribute: &Attribute) -> Result<Option<Value>, BadRequest> {
    if value.is_null() {
        return Ok(None);
    }
    if attribute.multi_valued {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let mut canonical = Vec::new();
        for item in items {
            if let Some(item) = canonical_single(item, attribute)? {
                if !canonical.contains(&item) {
                    canonical.push(item);
                }
            }
        }
        // At most one primary value: the last one marked wins (it was added last).
        if let Some(last) = canonical
            .iter()
            .rposition(|item| item.get("primary") == Some(&Value::Bool(true)))
        {
            for (index, item) in canonical.iter_mut().enumerate() {
                if index != last && item.get("primary") == Some(&Value::Bool(true)) {
                    item["primary"] = Value::Bool(false);
                }
            }
        }
        return Ok((!canonical.is_empty()).then_some(Value::Array(canonical)));
    }
    canonical_single(value, attribute)
}

fn canonical_single(value: &Value, attribute: &Attribute) -> Result<Option<Value>, BadRequest> {
    let wrong = |expected: &str| {
        BadRequest::invalid_value(format!("'{}' must be {expected}, not {value}.", attribute.name))
    };
    Ok(match attribute.kind {
        Kind::Complex => match value {
            Value::Object(object) => {
                let mut canonical = Map::new();
                for (key, sub_value) in object {
                    if let Some(sub) = attribute.sub_attribute(key) {
                        if sub.mutability == Mutability::ReadOnly {
                            continue;
                        }
                        if let Some(sub_value) = canonical_value(sub_value, sub)? {
                            canonical.insert(sub.name.to_string(), sub_value);
                        }
                    }
                }
                (!canonical.is_empty()).then_some(Value::Object(canonical))
            }
            // Entra ID sends the enterprise `manager` as the manager's id.
            Value::String(text) if attribute.sub_attribute("value").is_some() => {
                (!text.is_empty()).then(|| serde_json::json!({ "value": text }))
            }
            _ => return Err(wrong("a JSON object")),
        },
        Kind::Boolean => match value {
            Value::Bool(_) => Some(value.clone()),
            Value::String(text) if text.eq_ignore_ascii_case("true") => Some(Value::Bool(true)),
            Value::String(text) if text.eq_ignore_ascii_case("false") => Some(Value::Bool(false)),
            _ => return Err(wrong("a boolean")),
        },
        Kind::Integer => match value {
            Value::Number(number) if number.is_i64() || number.is_u64() => Some(value.clone()),
            Value::String(text) => Some(Value::Number(
                text.trim()
                    .parse::<i64>()
                    .map_err(|_| wrong("an integer"))?
                    .into(),
            )),
            _ => return Err(wrong("an integer")),
        },
        Kind::String | Kind::Reference | Kind::Binary | Kind::DateTime => match value {
            Value::String(text) if text.is_empty() => None,
            Value::String(_) => Some(value.clone()),
            Value::Number(number) => Some(Value::String(number.to_string())),
            _ => return Err(wrong("a string")),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_RESOURCE};
    use serde_json::json;

    fn patched(document: Value, operations: Value) -> Result<Value, BadRequest> {
        let operations = parse_patch_request(
            &json!({"schemas": [PATCH_OP], "Operations": operations}),
            &USER_RESOURCE,
        )?;
        let Value::Object(mut document) = document else {
            panic!("object")
        };
        for operation in &operations {
            apply(&mut document, operation, &USER_RESOURCE)?;
        }
        Ok(Value::Object(canonicalize(&document, &USER_RESOURCE)?))
    }

    #[test]
    fn entra_shaped_operations_apply() {
        let result = patched(
            json!({"userName": "a@contoso.com", "active": true}),
            json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "a@contoso.com"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "m-1"},
                {"op": "Replace", "value": {"displayName": "A", "name.givenName": "ignored", "title": "Boss"}},
                {"op": "Add", "path": "addresses[type eq \"work\"].country", "value": "NL"}
            ]),
        )
        .expect("patched");
        assert_eq!(result["active"], json!(false));
        assert_eq!(
            result["emails"],
            json!([{"type": "work", "value": "a@contoso.com"}])
        );
        assert_eq!(result[ENTERPRISE_USER_SCHEMA]["manager"], json!({"value": "m-1"}));
        assert_eq!(result["displayName"], json!("A"));
        assert_eq!(result["title"], json!("Boss"));
        assert_eq!(result["addresses"], json!([{"type": "work", "country": "NL"}]));
    }

    #[test]
    fn filtered_paths_replace_and_remove_values() {
        let user = json!({
            "userName": "a@contoso.com",
            "emails": [{"value": "a@x.com", "type": "work", "primary": true}, {"value": "b@x.com", "type": "home"}],
            "name": {"givenName": "A", "familyName": "B"}
        });
        let result = patched(
            user.clone(),
            json!([
                {"op": "replace", "path": "emails[type eq \"home\"].value", "value": "c@x.com"},
                {"op": "remove", "path": "name.familyName"}
            ]),
        )
        .expect("patched");
        assert_eq!(result["emails"][1]["value"], json!("c@x.com"));
        assert_eq!(result["name"], json!({"givenName": "A"}));
        let result = patched(
            user.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"work\"]"}]),
        )
        .expect("patched");
        assert_eq!(result["emails"], json!([{"value": "b@x.com", "type": "home"}]));
        let result = patched(
            user.clone(),
            json!([{"op": "add", "path": "emails", "value": [{"value": "d@x.com", "primary": true}]}]),
        )
        .expect("patched");
        assert_eq!(
            result["emails"][0]["primary"],
            json!(false),
            "one primary at most"
        );
        assert_eq!(result["emails"][2]["primary"], json!(true));
        let result = patched(
            user.clone(),
            json!([{"op": "replace", "path": "emails[type co \"W\"].display", "value": "Work"}]),
        )
        .expect("patched");
        assert_eq!(
            result["emails"][0]["display"],
            json!("Work"),
            "case-insensitive filter on type"
        );
        assert!(result["emails"][1].get("display").is_none());
        let error = patched(
            user,
            json!([{"op": "replace", "path": "phoneNumbers[type co \"w\"].value", "value": "1"}]),
        )
        .expect_err("no target");
        assert_eq!(error.scim_type, ScimType::NoTarget);
    }

    #[test]
    fn malformed_requests_are_refused() {
        for operations in [
            json!([{"op": "move", "path": "title", "value": "x"}]),
            json!([{"op": "remove"}]),
            json!([{"op": "add", "path": "title"}]),
            json!([{"op": "replace", "path": "active", "value": "maybe"}]),
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
            json!([]),
        ] {
            assert!(
                patched(json!({"userName": "a@contoso.com"}), operations.clone()).is_err(),
                "{operations}"
            );
        }
    }
}
