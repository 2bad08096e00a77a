//! OpenAPI schemas of request properties whose rule is longer than an attribute can say: the
//! usage locations the server accepts (every officially assigned ISO 3166-1 alpha-2 code, upper
//! case) and proxy addresses (`prefix:address`, an SMTP address as `name@domain`). Used through
//! `#[schema(schema_with = ...)]` so the document states exactly what the server refuses.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{Array, Object};

/// Every officially assigned ISO 3166-1 alpha-2 code (the engine's `CountryCode` accepts these).
pub const ASSIGNED_COUNTRY_CODES: &str = "ADAEAFAGAIALAMAOAQARASATAUAWAXAZBABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZCACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZDEDJDKDMDODZECEEEGEHERESETFIFJFKFMFOFRGAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGYHKHMHNHRHTHUIDIEILIMINIOIQIRISITJEJMJOJPKEKGKHKIKMKNKPKRKWKYKZLALBLCLILKLRLSLTLULVLYMAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZNANCNENFNGNINLNONPNRNUNZOMPAPEPFPGPHPKPLPMPNPRPSPTPWPYQARERORSRURWSASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZTCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZUAUGUMUSUYUZVAVCVEVGVIVNVUWFWSYEYTZAZMZW";

/// A proxy address: a prefix of 1–16 letters, digits or `-`, a colon and an address without
/// white space or control characters; with the `SMTP` prefix (any case) the address is
/// `name@domain` with one `@`.
pub const PROXY_ADDRESS_PATTERN: &str = "^(?:[Ss][Mm][Tt][Pp]:[^@\\s\\u0000-\\u001F\\u007F-\\u009F]+@[^@\\s\\u0000-\\u001F\\u007F-\\u009F]+|(?![Ss][Mm][Tt][Pp]:)[A-Za-z0-9-]{1,16}:[^\\s\\u0000-\\u001F\\u007F-\\u009F]{1,1024})$";

fn country_code_object(nullable: bool) -> Object {
    let codes: Vec<&str> = ASSIGNED_COUNTRY_CODES
        .as_bytes()
        .chunks(2)
        .filter_map(|code| std::str::from_utf8(code).ok())
        .collect();
    let schema_type = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(format!("^(?:{})$", codes.join("|"))))
        .description(Some(
            "An officially assigned ISO 3166-1 alpha-2 country code, upper case, such as US.",
        ))
        .build()
}

/// A usage location (required where it is used).
pub fn country_code() -> Object {
    country_code_object(false)
}

/// A usage location, or `null` (absent, or removed where `null` removes it).
pub fn optional_country_code() -> Object {
    country_code_object(true)
}

/// A list of usage locations.
pub fn country_codes() -> Array {
    ArrayBuilder::new().items(country_code()).build()
}

fn proxy_address() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(PROXY_ADDRESS_PATTERN))
        .build()
}

/// A list of proxy addresses, or `null`.
pub fn optional_proxy_addresses() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(proxy_address())
        .build()
}

fn optional_boolean(only: bool) -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Boolean, Type::Null]))
        .enum_values(Some([Some(only), None]))
        .build()
}

/// `true` or `null`: the only value licensd models (security groups).
pub fn optional_true() -> Object {
    optional_boolean(true)
}

/// `false` or `null`: the only value licensd models (groups without mail).
pub fn optional_false() -> Object {
    optional_boolean(false)
}

/// The directory object types `getByIds` can return: `user` and `group`, in any case, with or
/// without the `microsoft.graph.` namespace.
pub fn optional_directory_object_types() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(
                    "^(?:microsoft\\.graph\\.)?(?:[Uu][Ss][Ee][Rr]|[Gg][Rr][Oo][Uu][Pp])$",
                )),
        )
        .build()
}

/// A pattern matching exactly these words, ignoring ASCII case (ECMA-262 has no inline flag).
fn any_of_ignoring_case(words: &[&str]) -> String {
    let spelled: Vec<String> = words
        .iter()
        .map(|word| {
            word.chars()
                .map(|character| {
                    if character.is_ascii_alphabetic() {
                        format!(
                            "[{}{}]",
                            character.to_ascii_uppercase(),
                            character.to_ascii_lowercase()
                        )
                    } else {
                        character.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", spelled.join("|"))
}

/// A product's subscription status, any case (the server reads it ignoring case).
pub fn optional_capability_status() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .pattern(Some(any_of_ignoring_case(&[
            "Enabled",
            "Warning",
            "Suspended",
            "LockedOut",
            "Deleted",
        ])))
        .examples([serde_json::json!("Suspended")])
        .build()
}

/// The method of a request in a `$batch`, any case.
pub fn batch_method() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(any_of_ignoring_case(&[
            "GET", "POST", "PATCH", "PUT", "DELETE",
        ])))
        .examples([serde_json::json!("GET")])
        .build()
}

/// Request header names: HTTP tokens (RFC 9110), mapped to their values.
pub fn optional_header_map() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Object, Type::Null]))
        .additional_properties(Some(
            ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)),
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
        ))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_matched_ignoring_case() {
        assert_eq!(any_of_ignoring_case(&["Get", "X-1"]), "^(?:[Gg][Ee][Tt]|[Xx]-1)$");
    }

    #[test]
    fn the_country_codes_are_those_the_engine_accepts() {
        // Two upper-case letters each, sorted and without repeats, as the engine's table.
        let codes: Vec<&[u8]> = ASSIGNED_COUNTRY_CODES.as_bytes().chunks(2).collect();
        assert_eq!(codes.len(), 249);
        assert!(codes
            .iter()
            .all(|code| code.len() == 2 && code.iter().all(u8::is_ascii_uppercase)));
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
        let pattern = country_code().pattern.unwrap_or_default();
        assert!(
            pattern.starts_with("^(?:AD|AE|") && pattern.ends_with("|ZW)$"),
            "{pattern}"
        );
    }
}
