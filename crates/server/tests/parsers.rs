//! Property tests of every parser that reads request input: OData `$filter`, object ids, JSON
//! bodies, tokens, usage locations, proxy addresses, and the audit log's query. Whatever the
//! input, a parser answers (never panics), and what it accepts is well-formed: an accepted filter
//! evaluates, an accepted id is a GUID that prints back the same, an accepted body re-serializes
//! to an equivalent value, an accepted token prints back identically.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use licensd_api_types::graph::AssignLicenseRequest;
use licensd_engine::{CountryCode, ProxyAddress, Uuid};
use licensd_server::api::extract::parse_json_body;
use licensd_server::api::parse_object_id;
use licensd_server::auth::IssuedToken;
use licensd_server::odata::filter;
use licensd_server::odata::USER_SCHEMA;
use proptest::prelude::*;

/// Text that looks like what clients send: filter vocabulary, quotes, parentheses, GUIDs.
fn filter_like() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "userPrincipalName",
        "displayName",
        "usageLocation",
        "accountEnabled",
        "id",
        "proxyAddresses",
        "assignedLicenses",
        " eq ",
        " ne ",
        " and ",
        " or ",
        "not ",
        "(",
        ")",
        "'",
        "''",
        "'US'",
        "true",
        "null",
        "startswith(",
        ", ",
        "/any(",
        "x:",
        "x",
        "/skuId",
        " in ",
        "6fd2c87f-b296-42f0-b197-1e91e994b900",
        "é",
        "\u{0}",
        " ",
        "gt",
        "$",
        "{",
        "}",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn odata_filters_never_panic(text in prop_oneof![filter_like(), ".{0,120}"]) {
        // Accepted or refused with a Graph error; either way the parser returns.
        let _ = filter::parse(&text, &USER_SCHEMA);
    }

    #[test]
    fn object_ids_are_guids_or_refused(text in prop_oneof![".{0,60}", "[0-9a-fA-F-]{30,40}"]) {
        match parse_object_id(&text) {
            Ok(id) => prop_assert_eq!(Uuid::try_parse(text.trim()).ok(), Some(id)),
            Err(_) => prop_assert!(Uuid::try_parse(text.trim()).is_err()),
        }
    }

    #[test]
    fn json_bodies_are_parsed_exactly_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(request) = parse_json_body::<AssignLicenseRequest>(&bytes) {
            // What was accepted is a real request: it serializes and parses back the same.
            let text = serde_json::to_vec(&request).expect("serializes");
            let again: AssignLicenseRequest = parse_json_body(&text).expect("parses back");
            prop_assert_eq!(again, request);
        }
    }

    #[test]
    fn tokens_round_trip_or_are_refused(text in prop_oneof![".{0,120}", "lsd_[0-9a-f]{32}_[0-9a-f]{64}", "lsd_[0-9a-fA-Fg]{30,34}_[0-9a-f]{60,66}"]) {
        if let Ok(token) = IssuedToken::parse(&text) {
            prop_assert_eq!(token.reveal(), text);
        }
    }

    #[test]
    fn usage_locations_are_two_upper_case_letters(text in prop_oneof![".{0,4}", "[a-zA-Z]{2}"]) {
        if let Ok(code) = CountryCode::parse(&text) {
            prop_assert!(code.as_str().len() == 2 && code.as_str().chars().all(|c| c.is_ascii_uppercase()));
        }
    }

    #[test]
    fn proxy_addresses_have_a_prefix_and_an_address(text in prop_oneof![".{0,40}", "(smtp|SMTP|sip|x500):[a-z]{0,5}@?[a-z.]{0,8}"]) {
        if let Ok(address) = ProxyAddress::parse(&text) {
            let printed = address.to_string();
            let (prefix, rest) = printed.split_once(':').expect("a prefix");
            prop_assert!(!prefix.is_empty() && !rest.trim().is_empty(), "{printed}");
        }
    }
}
