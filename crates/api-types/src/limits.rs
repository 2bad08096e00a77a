//! Length limits on every string property a client may send (Graph, admin and SCIM bodies), so
//! one request cannot store megabytes in a name. Graph's own limits where Graph has one
//! (`displayName` 256, `mailNickname` 64, `userPrincipalName` 113, ...), [`DEFAULT_MAX_LENGTH`]
//! for every other string. Lengths count characters (Unicode scalar values), as Graph does.

use serde_json::Value;

/// The limit of a string property Graph does not bound explicitly.
pub const DEFAULT_MAX_LENGTH: usize = 1_024;

/// The longest property name accepted in a body (SCIM extension URNs are the longest real ones).
pub const MAX_PROPERTY_NAME_LENGTH: usize = 256;

/// Properties with a limit of their own: Graph's where Graph documents one, and the SCIM names
/// that map onto them (`userName` is the user principal name, `familyName` the surname...).
pub const PROPERTY_LIMITS: &[(&str, usize)] = &[
    ("displayName", 256),
    ("mailNickname", 64),
    ("userPrincipalName", 113),
    ("userName", 113),
    ("givenName", 64),
    ("surname", 64),
    ("familyName", 64),
    ("jobTitle", 128),
    ("title", 128),
    ("department", 64),
    ("companyName", 64),
    ("officeLocation", 128),
    ("employeeId", 16),
    // SCIM's enterprise `employeeNumber` has no limit of its own (provisioning clients send
    // GUIDs and longer HR numbers), so it takes the default, not Graph's `employeeId` 16.
    ("city", 128),
    ("locality", 128),
    ("state", 128),
    ("region", 128),
    ("country", 128),
    ("postalCode", 40),
    ("mobilePhone", 64),
    ("mail", 254),
    ("externalId", 256),
    ("description", 1_024),
    // SCIM's search request and PATCH operations carry filters and paths, which the filter
    // parser bounds more tightly (4,096 characters) with SCIM's precise error type.
    ("filter", 8_192),
    ("path", 8_192),
];

/// The limit of a property, by its (case-insensitive) name.
pub fn max_length(property: &str) -> usize {
    PROPERTY_LIMITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(property))
        .map_or(DEFAULT_MAX_LENGTH, |(_, limit)| *limit)
}

/// A string (or a property name) longer than its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overlong {
    /// The property's name (`(property name)` when the name itself is too long).
    pub property: String,
    pub limit: usize,
    pub length: usize,
}

impl std::fmt::Display for Overlong {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "The property '{}' is {} characters long; at most {} are allowed.",
            self.property, self.length, self.limit
        )
    }
}

/// The last attribute name of a SCIM PATCH path (`emails[type eq "work"].value` → `value`,
/// `name.familyName` → `familyName`, `urn:…:User:department` → `department`).
fn path_attribute(path: &str) -> &str {
    let path = path.rsplit(']').next().unwrap_or(path);
    let path = path.rsplit('.').next().unwrap_or(path);
    path.rsplit(':').next().unwrap_or(path).trim()
}

/// The first string in `body` longer than its property's limit. A string is judged by the name
/// of the property holding it (array elements by the array's); the `value` of a SCIM PATCH
/// operation by the attribute its `path` names. Walks with its own stack (no recursion).
pub fn find_overlong(body: &Value) -> Option<Overlong> {
    let mut pending: Vec<(&str, &Value)> = vec![("(body)", body)];
    while let Some((property, value)) = pending.pop() {
        match value {
            Value::String(text) => {
                let limit = max_length(property);
                let length = text.chars().count();
                if length > limit {
                    return Some(Overlong {
                        property: property.to_string(),
                        limit,
                        length,
                    });
                }
            }
            Value::Array(items) => pending.extend(items.iter().map(|item| (property, item))),
            Value::Object(members) => {
                let patch_path = members.iter().find_map(|(name, value)| {
                    (name.eq_ignore_ascii_case("path"))
                        .then(|| value.as_str())
                        .flatten()
                        .map(path_attribute)
                });
                for (name, member) in members {
                    let length = name.chars().count();
                    if length > MAX_PROPERTY_NAME_LENGTH {
                        return Some(Overlong {
                            property: "(property name)".to_string(),
                            limit: MAX_PROPERTY_NAME_LENGTH,
                            length,
                        });
                    }
                    let judged_as = match patch_path {
                        Some(attribute) if name.eq_ignore_ascii_case("value") && !attribute.is_empty() => {
                            attribute
                        }
                        _ => name.as_str(),
                    };
                    pending.push((judged_as, member));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn graph_limits_apply_by_name_and_others_get_the_default() {
        assert_eq!(max_length("displayName"), 256);
        assert_eq!(max_length("DISPLAYNAME"), 256);
        assert_eq!(max_length("userPrincipalName"), 113);
        assert_eq!(max_length("anythingElse"), DEFAULT_MAX_LENGTH);
        assert_eq!(find_overlong(&json!({"displayName": "x".repeat(256)})), None);
        let overlong = find_overlong(&json!({"displayName": "é".repeat(257)})).expect("too long");
        assert_eq!(
            (overlong.property.as_str(), overlong.limit, overlong.length),
            ("displayName", 256, 257)
        );
        let nested = find_overlong(&json!({"emails": [{"value": "x".repeat(1_025)}]})).expect("too long");
        assert_eq!(nested.property, "value");
        let listed = find_overlong(&json!({"proxyAddresses": ["a", "x".repeat(1_025)]})).expect("too long");
        assert_eq!(listed.property, "proxyAddresses");
    }

    #[test]
    fn a_patch_value_is_judged_by_its_path() {
        let operation =
            json!({"Operations": [{"op": "replace", "path": "name.familyName", "value": "x".repeat(65)}]});
        assert_eq!(
            find_overlong(&operation).expect("too long").property,
            "familyName"
        );
        let filtered =
            json!({"op": "add", "path": "emails[type eq \"work\"].value", "value": "x".repeat(1_000)});
        assert_eq!(find_overlong(&filtered), None);
        let name = json!({"x".repeat(300): 1});
        assert_eq!(
            find_overlong(&name).expect("too long").limit,
            MAX_PROPERTY_NAME_LENGTH
        );
    }
}
