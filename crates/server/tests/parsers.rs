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

/// Fuzzing with deep and long inputs (issue 20): whatever the nesting or the length, every
/// recursive parser returns on a test thread's 2 MiB stack (the size of tokio's workers), accepts
/// exactly what is within its limits, and names the limit it refuses.
mod deep_and_long {
    use licensd_server::api::extract::{check_json_depth, parse_json_body, MAX_JSON_DEPTH};
    use licensd_server::odata::filter::{self, MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH};
    use licensd_server::odata::USER_SCHEMA;
    use licensd_server::scim::filter::{parse_filter, parse_patch_path};
    use licensd_server::scim::schema::USER_RESOURCE;
    use proptest::prelude::*;

    /// An opening of one nesting step with the levels it adds, and its closing.
    fn odata_nesting() -> impl Strategy<Value = (&'static str, usize, &'static str)> {
        prop::sample::select(vec![("(", 1, ")"), ("not ", 1, ""), ("not (", 2, ")")])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn odata_filters_of_any_depth_return_and_respect_the_depth_limit(
            (open, levels, close) in odata_nesting(),
            depth in prop_oneof![0usize..64, 64usize..6_000],
        ) {
            let text = format!("{}displayName eq 'a'{}", open.repeat(depth), close.repeat(depth));
            let parsed = filter::parse(&text, &USER_SCHEMA);
            let within = depth * levels <= MAX_FILTER_DEPTH && text.chars().count() <= filter::MAX_FILTER_LENGTH;
            prop_assert_eq!(parsed.is_ok(), within, "{}", text.len());
            if let Err(error) = parsed {
                prop_assert!(error.message.contains("32 levels") || error.message.contains("4096"), "{}", error.message);
            }
        }

        #[test]
        fn odata_filters_of_any_length_return_and_respect_the_clause_limit(
            clauses in prop_oneof![1usize..120, 120usize..2_000],
            joiner in prop::sample::select(vec![" or ", " and "]),
        ) {
            let text = vec!["displayName eq 'a'"; clauses].join(joiner);
            let parsed = filter::parse(&text, &USER_SCHEMA);
            prop_assert_eq!(parsed.is_ok(), clauses <= MAX_FILTER_CLAUSES);
        }

        #[test]
        fn scim_filters_and_paths_of_any_depth_return_and_respect_the_limits(
            (open, levels) in prop::sample::select(vec![("(", 1usize), ("not (", 2usize)]),
            depth in prop_oneof![0usize..64, 64usize..6_000],
            clauses in 1usize..300,
        ) {
            let text = format!("{}userName eq \"a\"{}", open.repeat(depth), ")".repeat(depth));
            let within = depth * levels <= MAX_FILTER_DEPTH && text.chars().count() <= 4_096;
            prop_assert_eq!(parse_filter(&text, &USER_RESOURCE).is_ok(), within);
            // A PATCH path's value filter is parsed on its own: its brackets add no level.
            let path = format!("emails[{}type eq \"work\"{}].value", "(".repeat(depth), ")".repeat(depth));
            let within = depth <= MAX_FILTER_DEPTH && path.chars().count() <= 4_096;
            prop_assert_eq!(parse_patch_path(&path, &USER_RESOURCE).is_ok(), within);
            let long = vec!["userName eq \"a\""; clauses].join(" or ");
            prop_assert_eq!(parse_filter(&long, &USER_RESOURCE).is_ok(), clauses <= 100);
        }

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
