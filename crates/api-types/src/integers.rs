//! Whole numbers in request bodies. JSON Schema counts `21941.0` as an integer (a number with a
//! zero fractional part), so the server accepts it wherever an integer is documented: these
//! deserializers read an unsigned integer, or a number with no fractional part within range, and
//! refuse anything else as serde would (`invalid type` / `invalid value`).

use serde::de::{Deserializer, Error, Unexpected};
use serde::Deserialize;

/// A JSON number as read from a body.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

fn whole<E: Error>(number: Number) -> Result<u32, E> {
    let expected = &"a whole number from 0 to 4294967295";
    match number {
        Number::Unsigned(value) => {
            u32::try_from(value).map_err(|_| E::invalid_value(Unexpected::Unsigned(value), expected))
        }
        Number::Signed(value) => {
            u32::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), expected))
        }
        Number::Float(value) => {
            if value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value) {
                // Exact: a whole number within u32's range.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Ok(value as u32)
            } else {
                Err(E::invalid_value(Unexpected::Float(value), expected))
            }
        }
    }
}

/// A `u32`, written as an integer or as a number with no fractional part.
pub fn u32_whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    whole(Number::deserialize(deserializer)?)
}

/// An optional `u32` (absent or `null` is `None`), as [`u32_whole`].
pub fn optional_u32_whole<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::<Number>::deserialize(deserializer)?
        .map(whole)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "u32_whole")]
        seats: u32,
        #[serde(default, deserialize_with = "optional_u32_whole")]
        days: Option<u32>,
    }

    fn read(text: &str) -> Result<Body, String> {
        serde_json::from_str(text).map_err(|error| error.to_string())
    }

    #[test]
    fn whole_numbers_are_read_in_either_spelling() {
        assert_eq!(
            read(r#"{"seats": 21941.0}"#),
            Ok(Body {
                seats: 21941,
                days: None
            })
        );
        assert_eq!(
            read(r#"{"seats": 5, "days": 3.0}"#),
            Ok(Body {
                seats: 5,
                days: Some(3)
            })
        );
        assert_eq!(
            read(r#"{"seats": 4294967295, "days": null}"#),
            Ok(Body {
                seats: u32::MAX,
                days: None
            })
        );
        for refused in [
            r#"{"seats": 1.5}"#,
            r#"{"seats": -1}"#,
            r#"{"seats": -1.0}"#,
            r#"{"seats": 4294967296}"#,
            r#"{"seats": 4294967296.0}"#,
            r#"{"seats": "5"}"#,
            r#"{"seats": true}"#,
        ] {
            assert!(read(refused).is_err(), "{refused}");
        }
    }
}
