//! Property tests of the server's parsers of request input: object ids, JSON bodies, tokens,
//! usage locations and proxy addresses (the OData and SCIM grammars are fuzzed in
//! licensd-protocols' own `tests/parsers.rs`). Whatever the input, a parser answers (never
//! panics), and what it accepts is well-formed: an accepted id is a GUID that prints back the
//! same, an accepted body re-serializes to an equivalent value, an accepted token prints back
//! identically.

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use licensd_api_types::graph::AssignLicenseRequest;
use licensd_engine::{CountryCode, ProxyAddress, Uuid};
use licensd_server::api::extract::parse_json_body;
use licensd_server::api::parse_object_id;
use licensd_server::auth::IssuedToken;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

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

/// Fuzzing with deep inputs (issue 20): whatever the nesting, the JSON body parser returns on a
/// test thread's 2 MiB stack (the size of tokio's workers) and accepts exactly what is within its
/// limit.
mod deep {
    use licensd_server::api::extract::{check_json_depth, parse_json_body, MAX_JSON_DEPTH};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn json_bodies_of_any_depth_return_and_respect_the_depth_limit(
            depth in prop_oneof![0usize..64, 64usize..200_000],
            open in prop::sample::select(vec![("[", "]"), ("{\"a\":", "}")]),
        ) {
            let text = format!("{}1{}", open.0.repeat(depth), open.1.repeat(depth));
            prop_assert_eq!(check_json_depth(text.as_bytes()).is_ok(), depth <= MAX_JSON_DEPTH);
            // A body is also refused unless it is a JSON object (hostile input, issue 15).
            let is_object = open.0.starts_with('{') && depth >= 1;
            let parsed = parse_json_body::<serde_json::Value>(text.as_bytes());
            prop_assert_eq!(parsed.is_ok(), depth <= MAX_JSON_DEPTH && is_object);
        }
    }
}
