//! The `members` of a SCIM group as RFC 7644 and the identity providers write them: a member is
//! `{"value": id, …}` (or a bare id string), and PATCH operations on `members` add, replace or
//! remove them, including `members[value eq "…"]` as Entra ID and Okta send removals. The server
//! checks the ids against the directory and turns the resulting list into membership changes.

use std::collections::HashSet;

use serde_json::{json, Value};
use uuid::Uuid;

use super::error::BadRequest;
use super::filter::{get_ignoring_case, Filter};
use super::patch::{Op, Operation};
use super::schema::GROUP_RESOURCE;

/// A member's id from `{"value": id, …}` (or a bare id string).
fn member_id(member: &Value) -> Result<Uuid, BadRequest> {
    let text = match member {
        Value::String(text) => text.as_str(),
        Value::Object(object) => get_ignoring_case(object, "value")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                BadRequest::invalid_value("Each member needs a 'value': the id of a user or a group.")
            })?,
        _ => {
            return Err(BadRequest::invalid_value(
                "Each member must be an object with a 'value'.",
            ))
        }
    };
    Uuid::try_parse(text.trim()).map_err(|_| {
        BadRequest::invalid_value(format!(
            "The member '{text}' is not the id of a licensd user or group."
        ))
    })
}

/// The distinct member ids of a `members` value (an array, one member, or `null` for none), in
/// the order given.
pub fn member_ids(value: &Value) -> Result<Vec<Uuid>, BadRequest> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut ids = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for item in items {
        let id = member_id(item)?;
        if seen.insert(id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// The `type` each member of a `members` value declares (`"User"`, `"Group"` or anything else a
/// client wrote), for the members that declare one, in the order given. Members whose id does
/// not parse are left out ([`member_ids`] refuses them).
pub fn declared_member_types(value: &Value) -> Vec<(Uuid, String)> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    items
        .into_iter()
        .filter_map(|item| {
            let object = item.as_object()?;
            let id = get_ignoring_case(object, "value")
                .and_then(Value::as_str)
                .and_then(|text| Uuid::try_parse(text.trim()).ok())?;
            let declared = get_ignoring_case(object, "type").and_then(Value::as_str)?;
            Some((id, declared.to_string()))
        })
        .collect()
}

/// Whether an operation's path is the group's `members`.
pub fn targets_members(operation: &Operation) -> bool {
    operation.path.as_ref().is_some_and(|path| {
        !path.whole_extension && path.attr.urn.is_none() && path.attr.name.eq_ignore_ascii_case("members")
    })
}

/// Applies a `members` operation to the member list. `type_of` tells what a member is (`"User"`
/// or `"Group"`), which a removal filter may name (`members[type eq "Group"]`).
pub fn apply_to_members(
    members: &mut Vec<Uuid>,
    operation: &Operation,
    type_of: &dyn Fn(Uuid) -> &'static str,
) -> Result<(), BadRequest> {
    let path = operation.path.as_ref();
    if path.is_some_and(|path| path.attr.sub.is_some() || path.sub.is_some()) {
        return Err(BadRequest::invalid_path(
            "A member's sub-attributes cannot be changed: add or remove the member.",
        ));
    }
    let filter: Option<&Filter> = path.and_then(|path| path.filter.as_ref());
    let value = operation.value.as_ref();
    match (operation.op, filter) {
        (Op::Add, None) => {
            let mut present: HashSet<Uuid> = members.iter().copied().collect();
            for id in member_ids(value.unwrap_or(&Value::Null))? {
                if present.insert(id) {
                    members.push(id);
                }
            }
        }
        (Op::Replace, None) => *members = member_ids(value.unwrap_or(&Value::Null))?,
        (Op::Remove, None) => match value {
            // Entra ID: `{"op": "Remove", "path": "members", "value": [{"value": id}]}`.
            Some(value) if !value.is_null() => {
                let gone: HashSet<Uuid> = member_ids(value)?.into_iter().collect();
                members.retain(|id| !gone.contains(id));
            }
            _ => members.clear(),
        },
        (Op::Remove, Some(filter)) => {
            let members_path = path.map(|path| path.attr.clone());
            members.retain(|id| {
                let member = json!({"value": id, "type": type_of(*id)});
                !filter.matches_in(&member, &GROUP_RESOURCE, members_path.as_ref())
            });
        }
        (_, Some(_)) => {
            return Err(BadRequest::invalid_path(
                "Members are added or replaced without a filter: {\"op\": \"add\", \"path\": \"members\", \"value\": [{\"value\": id}]}.",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_patch_path;

    fn operation(op: Op, path: Option<&str>, value: Option<Value>) -> Operation {
        Operation {
            op,
            path: path.map(|path| parse_patch_path(path, &GROUP_RESOURCE).expect("path")),
            value,
        }
    }

    fn users(_: Uuid) -> &'static str {
        "User"
    }

    #[test]
    fn member_operations_in_the_shapes_identity_providers_send() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let mut members = vec![a];
        apply_to_members(
            &mut members,
            &operation(
                Op::Add,
                Some("members"),
                Some(json!([{"value": b.to_string()}, {"value": a.to_string()}])),
            ),
            &users,
        )
        .expect("add");
        assert_eq!(members, [a, b]);
        apply_to_members(
            &mut members,
            &operation(Op::Remove, Some(&format!("members[value eq \"{a}\"]")), None),
            &users,
        )
        .expect("remove by filter");
        assert_eq!(members, [b]);
        apply_to_members(
            &mut members,
            &operation(
                Op::Remove,
                Some("members"),
                Some(json!([{"value": b.to_string()}])),
            ),
            &users,
        )
        .expect("remove by value");
        assert!(members.is_empty());
        apply_to_members(
            &mut members,
            &operation(
                Op::Replace,
                Some("members"),
                Some(json!([{"value": c.to_string()}])),
            ),
            &users,
        )
        .expect("replace");
        assert_eq!(members, [c]);
        assert!(apply_to_members(
            &mut members,
            &operation(Op::Add, Some("members"), Some(json!([{"value": "nope"}]))),
            &users
        )
        .is_err());
        assert!(apply_to_members(
            &mut members,
            &operation(
                Op::Replace,
                Some("members[value eq \"x\"].value"),
                Some(json!("y"))
            ),
            &users
        )
        .is_err());
        apply_to_members(
            &mut members,
            &operation(Op::Remove, Some("members"), None),
            &users,
        )
        .expect("remove all");
        assert!(members.is_empty());
    }

    #[test]
    fn a_removal_filter_may_name_the_member_type_and_types_are_read_as_declared() {
        let (user, group) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let type_of = move |id: Uuid| if id == group { "Group" } else { "User" };
        let mut members = vec![user, group];
        apply_to_members(
            &mut members,
            &operation(Op::Remove, Some("members[type eq \"Group\"]"), None),
            &type_of,
        )
        .expect("remove the groups");
        assert_eq!(members, [user]);
        assert_eq!(
            declared_member_types(&json!([
                {"value": user.to_string(), "type": "User"},
                {"value": group.to_string()},
                {"value": "not an id", "type": "Group"}
            ])),
            [(user, "User".to_string())]
        );
    }
}
