//! Nested objects in request bodies. serde reads a struct from a JSON array too, matching the
//! array's items to the fields by position; the server takes JSON objects only (as it does for a
//! whole body), so an object property given as an array is refused.

use serde::de::{DeserializeOwned, Deserializer, Error};
use serde::Deserialize;
use serde_json::{Map, Value};

/// An optional object: absent or `null` is `None`, an array (or any other non-object) is refused.
pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<Map<String, Value>>::deserialize(deserializer)? {
        None => Ok(None),
        Some(object) => T::deserialize(Value::Object(object))
            .map(Some)
            .map_err(D::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use crate::graph::UpdateUserRequest;

    #[test]
    fn a_password_profile_is_an_object_never_an_array() {
        let read = |text: &str| serde_json::from_str::<UpdateUserRequest>(text);
        assert!(read(r#"{"passwordProfile": {"password": "x"}}"#).is_ok());
        assert!(read(r#"{"passwordProfile": null}"#).is_ok());
        for refused in [
            r#"{"passwordProfile": ["x"]}"#,
            r#"{"passwordProfile": []}"#,
            r#"{"passwordProfile": "x"}"#,
            r#"{"passwordProfile": {"shoeSize": 1}}"#,
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
    }
}
