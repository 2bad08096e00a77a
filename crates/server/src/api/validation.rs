//! Checks every JSON request body passes before it is read into its type, the same for every
//! endpoint and both databases: the body is a JSON object (serde would otherwise read an array
//! into a struct field by field), no text contains a control character (NUL is refused by
//! PostgreSQL and kept by SQLite; none belongs in a name), and every integer fits Graph's
//! `Edm.Int32` (typed clients cannot read more). Each check is a separate function and names
//! the property at fault. Length limits live next to the wire types.

use licensd_api_types::ErrorCode;
use serde_json::Value;

use super::error::ApiError;

/// Runs every check on a parsed body.
pub fn check_request_body(body: &Value) -> Result<(), ApiError> {
    require_object(body)?;
    refuse_control_characters(body, &mut String::new())?;
    require_int32_integers(body, &mut String::new())
}

/// A body is a JSON object, as in Graph.
pub fn require_object(body: &Value) -> Result<(), ApiError> {
    let kind = match body {
        Value::Object(_) => return Ok(()),
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    Err(ApiError::new(
        ErrorCode::InvalidRequestBody,
        format!("The request body must be a JSON object, not {kind}."),
    ))
}

/// `a.b[2].c`, the name of a nested property in messages.
fn child_path(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Visits every value of a body with its property path.
fn visit(
    value: &Value,
    path: &mut String,
    check: &mut dyn FnMut(&Value, &str) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    check(value, path)?;
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let mut child_path = child_path(path, key);
                visit(child, &mut child_path, check)?;
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                let mut child_path = format!("{path}[{index}]");
                visit(child, &mut child_path, check)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// No text (value or property name) contains a control character (U+0000–U+001F, U+007F–U+009F).
pub fn refuse_control_characters(body: &Value, path: &mut String) -> Result<(), ApiError> {
    visit(body, path, &mut |value, path| {
        let texts: Vec<(&str, String)> = match value {
            Value::String(text) => vec![(text.as_str(), path.to_string())],
            Value::Object(object) => object
                .keys()
                .map(|key| (key.as_str(), child_path(path, "(a property name)")))
                .collect(),
            _ => Vec::new(),
        };
        for (text, name) in texts {
            if let Some(control) = text.chars().find(|character| character.is_control()) {
                let name = if name.is_empty() {
                    "the body".to_string()
                } else {
                    name
                };
                return Err(ApiError::new(
                    ErrorCode::InvalidValue,
                    format!(
                        "The property '{name}' contains the control character U+{:04X}; control characters are not accepted.",
                        u32::from(control)
                    ),
                ));
            }
        }
        Ok(())
    })
}

/// Every integer is within `Edm.Int32` (−2147483648 to 2147483647).
pub fn require_int32_integers(body: &Value, path: &mut String) -> Result<(), ApiError> {
    visit(body, path, &mut |value, path| {
        let Value::Number(number) = value else {
            return Ok(());
        };
        let in_range = match (number.as_i64(), number.as_u64()) {
            (Some(signed), _) => i32::try_from(signed).is_ok(),
            (None, Some(_)) => false,
            // A fraction or exponent: the type check that follows decides.
            (None, None) => true,
        };
        if in_range {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::InvalidValue,
                format!(
                    "The property '{path}' is {number}, outside Edm.Int32 (-2147483648 to 2147483647), the integer type of Graph's clients."
                ),
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_objects_without_control_characters_or_huge_integers() {
        assert!(
            check_request_body(&json!({"displayName": "Anna", "n": 2147483647, "m": -2147483648})).is_ok()
        );
        for (body, named) in [
            (json!([true, "Array User"]), "an array"),
            (json!("text"), "a string"),
            (json!({"displayName": "A\u{0}B"}), "'displayName'"),
            (
                json!({"addLicenses": [{"skuId": "x\u{1b}"}]}),
                "'addLicenses[0].skuId'",
            ),
            (json!({"a\u{7}": 1}), "(a property name)"),
            (json!({"prepaidUnits": 2147483648u64}), "'prepaidUnits'"),
            (json!({"nested": {"count": -2147483649i64}}), "'nested.count'"),
        ] {
            let error = check_request_body(&body).unwrap_err();
            assert!(error.message.contains(named), "{body}: {}", error.message);
        }
    }
}
