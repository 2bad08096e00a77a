//! Property tests of the protocol grammars, fed hostile text: OData `$filter` and SCIM filters and
//! PATCH paths. Whatever the input, a parser answers (never panics); whatever the nesting or the
//! length, it returns on a test thread's 2 MiB stack (the size of tokio's workers), accepts
//! exactly what is within its limits, and names the limit it refuses (issue 20).

// Test and benchmark code: a failed assumption is a failed run, so unwrap/expect/panic are fine
// here (the workspace denies them everywhere else).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use licensd_protocols::odata::filter;
use licensd_protocols::odata::USER_SCHEMA;
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
}

/// Fuzzing with deep and long inputs (issue 20): whatever the nesting or the length, every
/// recursive parser returns on a test thread's 2 MiB stack (the size of tokio's workers), accepts
/// exactly what is within its limits, and names the limit it refuses.
mod deep_and_long {
    use licensd_protocols::odata::filter::{self, MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH};
    use licensd_protocols::odata::USER_SCHEMA;
    use licensd_protocols::scim::filter::{parse_filter, parse_patch_path};
    use licensd_protocols::scim::schema::USER_RESOURCE;
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
    }
}
