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

/// A list of proxy addresses, or `null`; each at most once (the server compares them ignoring
/// case, which JSON Schema's `uniqueItems` cannot say).
pub fn optional_proxy_addresses() -> Array {
    ArrayBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::Array, Type::Null]))
        .unique_items(true)
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

/// The stable names of the token roles (`licensd_runtime::access::Role::ALL`; the server also
/// reads display names and kebab-case, ignoring case).
pub const ROLE_NAMES: &[&str] = &[
    "GlobalAdministrator",
    "LicenseAdministrator",
    "UserAdministrator",
    "GlobalReader",
    "ReportsReader",
    "ProvisioningAgent",
];

/// What the server reads as one of these words: their letters and digits in order, ignoring
/// ASCII case, with anything but ASCII letters, digits and control characters around and between
/// them (the server keeps only the ASCII letters and digits: `License Administrator`,
/// `license-administrator`).
fn any_of_alphanumerics_ignoring_case(words: &[&str]) -> String {
    const SEPARATORS: &str = "[^A-Za-z0-9\\u0000-\\u001F\\u007F-\\u009F]*";
    let spelled: Vec<String> = words
        .iter()
        .map(|word| {
            word.chars()
                .filter(char::is_ascii_alphanumeric)
                .map(|character| {
                    if character.is_ascii_alphabetic() {
                        format!(
                            "[{}{}]{SEPARATORS}",
                            character.to_ascii_uppercase(),
                            character.to_ascii_lowercase()
                        )
                    } else {
                        format!("{character}{SEPARATORS}")
                    }
                })
                .collect()
        })
        .collect();
    format!("^{SEPARATORS}(?:{})$", spelled.join("|"))
}

/// A token role: its stable name, display name or kebab-case, any case.
pub fn role() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(any_of_alphanumerics_ignoring_case(ROLE_NAMES)))
        .examples([serde_json::json!("LicenseAdministrator")])
        .build()
}

/// What a product applies to, any case, or `null` (`User`).
pub fn optional_applies_to() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .pattern(Some(any_of_ignoring_case(&["User", "Company"])))
        .examples([serde_json::json!("User")])
        .build()
}

/// A UTC date-time as the server reads it (`crate::time::parse_date_time`): a date, or a date
/// with a time and `Z`, optionally with fractional seconds; days up to 28 in the pattern, so
/// every month has them.
pub const DATE_TIME_PATTERN: &str = "^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])(?:T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,9})?Z)?$";

/// A date-time (a query option's value).
pub fn date_time() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some(DATE_TIME_PATTERN))
        .examples([serde_json::json!("2026-12-01T00:00:00Z")])
        .build()
}

/// A date-time, or `null`.
pub fn optional_date_time() -> Object {
    ObjectBuilder::new()
        .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
        .pattern(Some(DATE_TIME_PATTERN))
        .examples([serde_json::json!("2026-12-31T00:00:00Z")])
        .build()
}

/// A directory object id: a GUID in any of its written forms (braces and hyphens optional, as
/// `Uuid::try_parse` reads them).
pub const GUID_PATTERN: &str =
    "^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$";

/// A list of at most 1,000 GUIDs as text (`getByIds`).
pub fn guid_texts() -> Array {
    ArrayBuilder::new()
        .max_items(Some(1_000))
        .items(
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .pattern(Some(GUID_PATTERN)),
        )
        .build()
}

/// A user principal name as the engine reads it: one `@`, 1–64 bytes before it, a domain with
/// a dot after it, at most 256 bytes, no white space (Unicode) or control characters. Byte
/// lengths are not regular over all of Unicode, so the pattern is the union of two shapes that
/// always fit: printable ASCII up to the byte limits, or any allowed characters in numbers that
/// fit in four bytes each (16 before the `@`, 23 on either side of the domain's dot).
pub const USER_PRINCIPAL_NAME_PATTERN: &str = concat!(
    "^(?:[!-?A-~]{1,64}|[^@\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]{1,16})",
    "@(?:[!-?A-~]{0,95}\\.[!-?A-~]{0,95}|[^@\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]{0,23}\\.[^@\\u0000-\\u0020\\u007F-\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]{0,23})$"
);

fn user_principal_name_object(nullable: bool) -> Object {
    let schema_type = if nullable {
        SchemaType::Array(vec![Type::String, Type::Null])
    } else {
        SchemaType::Type(Type::String)
    };
    ObjectBuilder::new()
        .schema_type(schema_type)
        .pattern(Some(USER_PRINCIPAL_NAME_PATTERN))
        .examples([serde_json::json!("adele@contoso.com")])
        .build()
}

/// A user principal name.
pub fn user_principal_name() -> Object {
    user_principal_name_object(false)
}

/// A user principal name, or `null` (unchanged).
pub fn optional_user_principal_name() -> Object {
    user_principal_name_object(true)
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
    fn role_names_are_matched_by_their_letters() {
        let pattern = any_of_alphanumerics_ignoring_case(&["Ab1"]);
        let separators = "[^A-Za-z0-9\\u0000-\\u001F\\u007F-\\u009F]*";
        assert_eq!(
            pattern,
            format!("^{separators}(?:[Aa]{separators}[Bb]{separators}1{separators})$")
        );
    }

    #[test]
    fn words_are_matched_ignoring_case() {
        assert_eq!(any_of_ignoring_case(&["Get", "X-1"]), "^(?:[Gg][Ee][Tt]|[Xx]-1)$");
    }

    #[test]
    fn the_date_time_pattern_is_read_by_the_server() {
        // No regex engine here: the pattern's own samples and edges, by hand.
        for text in [
            "2026-12-31",
            "2026-02-28T23:59:59Z",
            "2024-01-01T00:00:00.123456789Z",
        ] {
            assert!(crate::time::parse_date_time(text).is_some(), "{text}");
        }
        assert!(DATE_TIME_PATTERN.contains("(?:0[1-9]|1[0-9]|2[0-8])"));
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
