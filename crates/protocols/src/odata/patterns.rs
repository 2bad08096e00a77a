//! Regular expressions of the query option values an entity accepts, built from the same schema
//! lists the parsers bind to ([`EntitySchema`] properties and the `$orderby` / `$search` /
//! `$expand` capabilities), so the OpenAPI document can state exactly which `$select`,
//! `$orderby`, `$expand`, `$search` and `$filter` values the server answers. Each is a regular
//! subset of the grammar the parser accepts (`$filter` and `$search` are not regular in full:
//! parentheses nest), written as an ECMA-262 pattern (what JSON Schema's `pattern` is). Every
//! string a pattern matches is accepted by the parser: the tests enumerate representative
//! strings of each pattern and generate random ones from it.

use super::query::{expandable_properties, expansion_target, searchable_properties, sortable_properties};
use super::{EntitySchema, PropertyKind};

/// A regular expression built from parts: written as a pattern, and enumerated as representative
/// strings (every alternative and every sample character at least once) for tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expression {
    /// Text matched as it is.
    Literal(String),
    /// A character class as written in the pattern, with characters it matches.
    Class {
        pattern: &'static str,
        samples: &'static [&'static str],
    },
    Sequence(Vec<Expression>),
    Alternatives(Vec<Expression>),
    /// The inner expression `min` to `max` times.
    Repeat {
        inner: Box<Expression>,
        min: u32,
        max: u32,
    },
}

fn literal(text: &str) -> Expression {
    Expression::Literal(text.to_string())
}

fn sequence(parts: impl IntoIterator<Item = Expression>) -> Expression {
    Expression::Sequence(parts.into_iter().collect())
}

fn alternatives(parts: impl IntoIterator<Item = Expression>) -> Expression {
    Expression::Alternatives(parts.into_iter().collect())
}

fn repeat(inner: Expression, min: u32, max: u32) -> Expression {
    Expression::Repeat {
        inner: Box::new(inner),
        min,
        max,
    }
}

fn optional(inner: Expression) -> Expression {
    repeat(inner, 0, 1)
}

/// Escapes the characters ECMA-262 (and Rust's and Python's regular expressions) give a meaning
/// outside a class.
fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if "\\^$.|?*+()[]{}".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

impl Expression {
    /// The expression as an unanchored pattern.
    pub fn pattern(&self) -> String {
        match self {
            Expression::Literal(text) => escape(text),
            Expression::Class { pattern, .. } => pattern.to_string(),
            Expression::Sequence(parts) => parts.iter().map(Expression::grouped_in_sequence).collect(),
            Expression::Alternatives(parts) => parts
                .iter()
                .map(Expression::pattern)
                .collect::<Vec<_>>()
                .join("|"),
            Expression::Repeat { inner, min, max } => {
                let quantifier = match (min, max) {
                    (0, 1) => "?".to_string(),
                    (min, max) if min == max => format!("{{{min}}}"),
                    (min, max) => format!("{{{min},{max}}}"),
                };
                format!("{}{quantifier}", inner.atom())
            }
        }
    }

    /// The expression as one unit a quantifier can follow.
    fn atom(&self) -> String {
        match self {
            Expression::Class { .. } => self.pattern(),
            Expression::Literal(text) if text.chars().count() == 1 => self.pattern(),
            _ => format!("(?:{})", self.pattern()),
        }
    }

    /// The expression as a part of a sequence (alternatives need a group there).
    fn grouped_in_sequence(&self) -> String {
        match self {
            Expression::Alternatives(parts) if parts.len() > 1 => format!("(?:{})", self.pattern()),
            _ => self.pattern(),
        }
    }

    /// The expression as a whole-value pattern.
    pub fn anchored(&self) -> String {
        format!("^(?:{})$", self.pattern())
    }

    /// Representative strings the expression matches: every alternative and every sample of a
    /// class at least once, repetitions at their least, one more and their most.
    pub fn samples(&self) -> Vec<String> {
        match self {
            Expression::Literal(text) => vec![text.clone()],
            Expression::Class { samples, .. } => samples.iter().map(|sample| sample.to_string()).collect(),
            Expression::Alternatives(parts) => parts.iter().flat_map(Expression::samples).collect(),
            Expression::Sequence(parts) => {
                let each: Vec<Vec<String>> = parts.iter().map(Expression::samples).collect();
                combine(&each)
            }
            Expression::Repeat { inner, min, max } => {
                let inner_samples = inner.samples();
                let mut counts = vec![*min, min.saturating_add(1).min(*max), *max];
                counts.dedup();
                let mut result = Vec::new();
                for count in counts {
                    let copies = usize::try_from(count).unwrap_or(0);
                    if copies == 0 {
                        result.push(String::new());
                        continue;
                    }
                    // Rotate through the inner samples so each appears.
                    let rounds = inner_samples.len().div_ceil(copies).max(1);
                    for round in 0..rounds {
                        let text: String = (0..copies)
                            .map(|index| {
                                inner_samples[(round * copies + index) % inner_samples.len()].clone()
                            })
                            .collect();
                        result.push(text);
                    }
                }
                result.dedup();
                result
            }
        }
    }
}

/// Strings of a sequence: as many as its part with the most samples, each part's samples used
/// in turn, so every sample of every part appears once at least.
fn combine(parts: &[Vec<String>]) -> Vec<String> {
    let rows = parts.iter().map(Vec::len).max().unwrap_or(0);
    if parts.iter().any(Vec::is_empty) {
        return Vec::new();
    }
    (0..rows.max(1))
        .map(|row| {
            parts
                .iter()
                .map(|samples| samples[row % samples.len()].as_str())
                .collect()
        })
        .collect()
}

/// Any of these names, as written.
fn names(names: &[&str]) -> Expression {
    alternatives(names.iter().map(|name| literal(name)))
}

/// The most names one `$select` lists in a pattern.
const MAX_SELECTED: u32 = 16;

/// `$select`: selectable names of the schema or `*`, comma separated.
pub fn select(schema: &EntitySchema) -> Expression {
    select_with(schema, &[])
}

/// `$select` with extra names the endpoint reads itself (delta's `members`).
pub fn select_with(schema: &EntitySchema, extra: &[&str]) -> Expression {
    let mut selectable: Vec<&str> = schema
        .properties
        .iter()
        .filter(|property| property.selectable)
        .map(|property| property.name)
        .collect();
    selectable.extend_from_slice(extra);
    selectable.push("*");
    let name = names(&selectable);
    sequence([
        name.clone(),
        repeat(sequence([literal(","), name]), 0, MAX_SELECTED - 1),
    ])
}

/// `$orderby`: one sortable property, optionally `asc` or `desc`.
pub fn order_by(schema: &EntitySchema) -> Option<Expression> {
    let sortable = sortable_properties(schema);
    if sortable.is_empty() {
        return None;
    }
    Some(sequence([
        names(&sortable),
        optional(sequence([literal(" "), names(&["asc", "desc"])])),
    ]))
}

/// `$expand`: one expandable navigation property, optionally with `($select=...)` of the
/// objects it leads to.
pub fn expand(schema: &EntitySchema) -> Option<Expression> {
    let expandable = expandable_properties(schema);
    let branches: Vec<Expression> = expandable
        .iter()
        .filter_map(|navigation| {
            let target = expansion_target(schema, navigation)?;
            Some(sequence([
                literal(navigation),
                optional(sequence([literal("($select="), select(target), literal(")")])),
            ]))
        })
        .collect();
    (!branches.is_empty()).then(|| alternatives(branches))
}

/// Words of a `$search` clause: at least one letter or digit, no double quote.
const SEARCH_WORD: Expression = Expression::Class {
    pattern: "[A-Za-z0-9]",
    samples: &["a", "Z", "7"],
};
const SEARCH_TEXT: Expression = Expression::Class {
    pattern: "[^\"\\u0000-\\u001F\\u007F-\\u009F]",
    samples: &[" ", "x", ".", "@", "é"],
};

/// The most clauses one `$search` or `$filter` pattern joins.
const MAX_CLAUSES: u32 = 8;
/// The longest text literal in a pattern.
const MAX_TEXT: u32 = 32;

/// `$search`: `"property:words"` clauses on the searchable properties joined by `AND` / `OR`.
pub fn search(schema: &EntitySchema) -> Option<Expression> {
    let searchable = searchable_properties(schema);
    if searchable.is_empty() {
        return None;
    }
    let clause = sequence([
        literal("\""),
        names(searchable),
        literal(":"),
        repeat(SEARCH_TEXT, 0, MAX_TEXT),
        SEARCH_WORD,
        repeat(SEARCH_TEXT, 0, MAX_TEXT),
        literal("\""),
    ]);
    Some(sequence([
        clause.clone(),
        repeat(
            sequence([literal(" "), names(&["AND", "OR"]), literal(" "), clause]),
            0,
            MAX_CLAUSES - 1,
        ),
    ]))
}

/// A quoted text literal: any characters but controls, a quote doubled.
fn quoted_text() -> Expression {
    sequence([
        literal("'"),
        repeat(
            alternatives([
                Expression::Class {
                    pattern: "[^'\\u0000-\\u001F\\u007F-\\u009F]",
                    samples: &["a", " ", "(", "é", ",", "\""],
                },
                literal("''"),
            ]),
            0,
            MAX_TEXT,
        ),
        literal("'"),
    ])
}

/// A GUID as `$filter` writes it (no quotes).
fn guid() -> Expression {
    let hex = || Expression::Class {
        pattern: "[0-9a-fA-F]",
        samples: &["0", "a", "F", "9"],
    };
    sequence([
        repeat(hex(), 8, 8),
        literal("-"),
        repeat(hex(), 4, 4),
        literal("-"),
        repeat(hex(), 4, 4),
        literal("-"),
        repeat(hex(), 4, 4),
        literal("-"),
        repeat(hex(), 12, 12),
    ])
}

fn equality() -> Expression {
    names(&["eq", "ne"])
}

/// The comparisons `$filter` answers on one property, by its kind.
fn property_clauses(name: &'static str, kind: PropertyKind) -> Vec<Expression> {
    match kind {
        PropertyKind::Text => vec![
            sequence([
                literal(name),
                literal(" "),
                equality(),
                literal(" "),
                alternatives([quoted_text(), literal("null")]),
            ]),
            sequence([
                literal("startswith("),
                literal(name),
                optional(literal(" ")),
                literal(","),
                optional(literal(" ")),
                quoted_text(),
                literal(")"),
            ]),
            sequence([
                literal(name),
                literal(" in ("),
                quoted_text(),
                repeat(sequence([literal(","), quoted_text()]), 0, 3),
                literal(")"),
            ]),
        ],
        PropertyKind::Boolean => vec![sequence([
            literal(name),
            literal(" "),
            equality(),
            literal(" "),
            names(&["true", "false"]),
        ])],
        PropertyKind::Guid => vec![sequence([
            literal(name),
            literal(" "),
            equality(),
            literal(" "),
            guid(),
        ])],
        PropertyKind::TextCollection => vec![
            sequence([
                literal(name),
                literal("/any(p:p "),
                equality(),
                literal(" "),
                quoted_text(),
                literal(")"),
            ]),
            sequence([
                literal(name),
                literal("/any(p:startswith(p,"),
                quoted_text(),
                literal("))"),
            ]),
            sequence([literal(name), literal("/any()")]),
        ],
        PropertyKind::LicenseCollection => vec![
            sequence([
                literal(name),
                literal("/any(x:x/skuId "),
                equality(),
                literal(" "),
                guid(),
                literal(")"),
            ]),
            sequence([literal(name), literal("/any()")]),
        ],
        PropertyKind::Complex => Vec::new(),
    }
}

/// `$filter`: comparisons of the filterable properties by their kind (`eq`/`ne` with a quoted
/// text or `null`, `startswith` and `in` on text; `true`/`false`; GUIDs; `any` on collections),
/// each optionally negated with `not`, joined by `and` / `or`. Counting inside a filter
/// (`/$count`, an advanced query) and parentheses are left out of the pattern.
pub fn filter(schema: &EntitySchema) -> Option<Expression> {
    let clauses: Vec<Expression> = schema
        .properties
        .iter()
        .filter(|property| property.filterable)
        .flat_map(|property| property_clauses(property.name, property.kind))
        .collect();
    if clauses.is_empty() {
        return None;
    }
    let clause = sequence([optional(literal("not ")), alternatives(clauses)]);
    Some(sequence([
        clause.clone(),
        repeat(
            sequence([literal(" "), names(&["and", "or"]), literal(" "), clause]),
            0,
            MAX_CLAUSES - 1,
        ),
    ]))
}

/// A UTC date-time as the audit log's `$filter` reads it (days up to 28, so every month has it).
fn date_time() -> Expression {
    let digit = || Expression::Class {
        pattern: "[0-9]",
        samples: &["0", "5", "9"],
    };
    sequence([
        literal("20"),
        repeat(digit(), 2, 2),
        literal("-"),
        alternatives([
            sequence([
                literal("0"),
                Expression::Class {
                    pattern: "[1-9]",
                    samples: &["1", "9"],
                },
            ]),
            sequence([
                literal("1"),
                Expression::Class {
                    pattern: "[0-2]",
                    samples: &["0", "2"],
                },
            ]),
        ]),
        literal("-"),
        alternatives([
            sequence([
                literal("0"),
                Expression::Class {
                    pattern: "[1-9]",
                    samples: &["1", "9"],
                },
            ]),
            sequence([
                Expression::Class {
                    pattern: "[12]",
                    samples: &["1", "2"],
                },
                Expression::Class {
                    pattern: "[0-8]",
                    samples: &["0", "8"],
                },
            ]),
        ]),
        literal("T"),
        alternatives([
            sequence([
                Expression::Class {
                    pattern: "[01]",
                    samples: &["0", "1"],
                },
                digit(),
            ]),
            sequence([
                literal("2"),
                Expression::Class {
                    pattern: "[0-3]",
                    samples: &["0", "3"],
                },
            ]),
        ]),
        literal(":"),
        Expression::Class {
            pattern: "[0-5]",
            samples: &["0", "5"],
        },
        digit(),
        literal(":"),
        Expression::Class {
            pattern: "[0-5]",
            samples: &["0", "5"],
        },
        digit(),
        literal("Z"),
    ])
}

/// The audit log's `$filter`: one condition (two conditions on one property can contradict
/// each other, which the server refuses): `activityDisplayName`, `category` or `result` `eq` a
/// quoted text, `activityDateTime` `ge`/`gt`/`le`/`lt` a UTC date-time, or
/// `targetResources/any(t:t/id eq '{guid}')`.
pub fn audit_filter() -> Expression {
    alternatives([
        sequence([
            names(&["activityDisplayName", "category", "result"]),
            literal(" eq "),
            quoted_text(),
        ]),
        sequence([
            literal("activityDateTime "),
            names(&["ge", "gt", "le", "lt"]),
            literal(" "),
            date_time(),
        ]),
        sequence([literal("targetResources/any(t:t/id eq '"), guid(), literal("')")]),
    ])
}

/// A page size, 1 to 999, as `$top` is written.
pub fn page_size() -> Expression {
    sequence([
        Expression::Class {
            pattern: "[1-9]",
            samples: &["1", "9"],
        },
        repeat(
            Expression::Class {
                pattern: "[0-9]",
                samples: &["0", "9"],
            },
            0,
            2,
        ),
    ])
}

/// A whole number as a cursor (the audit log's `$skiptoken`).
pub fn sequence_number() -> Expression {
    repeat(
        Expression::Class {
            pattern: "[0-9]",
            samples: &["0", "7"],
        },
        1,
        19,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::{
        filter as filter_grammar, query, QueryOptions, Supported, GROUP_SCHEMA, LICENSE_DETAILS_SCHEMA,
        SUBSCRIBED_SKU_SCHEMA, USER_SCHEMA,
    };
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;

    const SCHEMAS: [&EntitySchema; 4] = [
        &USER_SCHEMA,
        &GROUP_SCHEMA,
        &SUBSCRIBED_SKU_SCHEMA,
        &LICENSE_DETAILS_SCHEMA,
    ];

    fn matcher(expression: &Expression) -> regex::Regex {
        // The user's `$filter` pattern (every filterable property, directory attributes
        // included) compiles past the regex crate's default 10 MiB limit.
        regex::RegexBuilder::new(&expression.anchored())
            .size_limit(256 << 20)
            .build()
            .expect("the pattern compiles")
    }

    /// The representative strings of a pattern and 200 random ones generated from it.
    fn strings_of(expression: &Expression) -> Vec<String> {
        let mut strings = expression.samples();
        let strategy = proptest::string::string_regex(&expression.pattern()).expect("a regular pattern");
        let mut runner = TestRunner::deterministic();
        for _ in 0..200 {
            strings.push(strategy.new_tree(&mut runner).expect("a value").current());
        }
        strings
    }

    /// Every string of the pattern matches the pattern and is accepted by `accepts`.
    fn every_string_is_accepted(expression: &Expression, accepts: impl Fn(&str) -> Result<(), String>) {
        let matcher = matcher(expression);
        let strings = strings_of(expression);
        assert!(strings.len() > 10);
        for text in strings {
            assert!(
                matcher.is_match(&text),
                "{text:?} does not match {}",
                expression.anchored()
            );
            if let Err(message) = accepts(&text) {
                panic!(
                    "{text:?} matches {} but is refused: {message}",
                    expression.anchored()
                );
            }
        }
    }

    fn options(schema: &'static EntitySchema, query: &str) -> Result<(), String> {
        QueryOptions::parse(Some(query), true, schema, Supported::COLLECTION)
            .map(|_| ())
            .map_err(|error| error.message)
    }

    fn encoded(value: &str) -> String {
        form_urlencoded::byte_serialize(value.as_bytes()).collect()
    }

    #[test]
    fn samples_cover_every_alternative_and_repetition() {
        let expression = sequence([names(&["a", "b", "c"]), repeat(literal("x"), 0, 2)]);
        assert_eq!(expression.anchored(), "^(?:(?:a|b|c)x{0,2})$");
        let samples = expression.samples();
        for expected in ["a", "bx", "cxx"] {
            assert!(samples.contains(&expected.to_string()), "{samples:?}");
        }
        assert_eq!(escape("a(b)$c.d/e"), "a\\(b\\)\\$c\\.d/e");
    }

    #[test]
    fn select_patterns_accept_every_selectable_name_and_nothing_else() {
        for schema in SCHEMAS {
            let expression = select(schema);
            every_string_is_accepted(&expression, |text| {
                options(schema, &format!("$select={}", encoded(text)))
            });
            let matcher = matcher(&expression);
            for property in schema.properties {
                assert_eq!(
                    matcher.is_match(property.name),
                    property.selectable,
                    "{}",
                    property.name
                );
            }
            for bad in ["0", "", "shoeSize", "id,", ",id", "id/x", "**x"] {
                assert!(!matcher.is_match(bad), "{bad:?} on {}", schema.entity_set);
            }
        }
        let members = select_with(&GROUP_SCHEMA, &["members"]);
        assert!(matcher(&members).is_match("id,members"));
        assert!(!matcher(&select(&GROUP_SCHEMA)).is_match("id,members"));
        assert!(
            !matcher(&select(&GROUP_SCHEMA)).is_match("hasMembersWithLicenseErrors"),
            "filter-only"
        );
    }

    #[test]
    fn order_by_patterns_name_the_sortable_properties() {
        for schema in [&USER_SCHEMA, &GROUP_SCHEMA] {
            let expression = order_by(schema).expect("sortable");
            every_string_is_accepted(&expression, |text| {
                options(schema, &format!("$orderby={}&$count=true", encoded(text)))
            });
            let matcher = matcher(&expression);
            for bad in [
                "0",
                "",
                "usageLocation",
                "displayName sideways",
                "displayName,mail",
                "displayName  desc",
            ] {
                assert!(!matcher.is_match(bad), "{bad:?}");
            }
        }
        assert!(order_by(&SUBSCRIBED_SKU_SCHEMA).is_none());
    }

    #[test]
    fn expand_patterns_name_the_expandable_relations() {
        let user = expand(&USER_SCHEMA).expect("memberOf");
        every_string_is_accepted(&user, |text| {
            options(&USER_SCHEMA, &format!("$expand={}", encoded(text)))
        });
        let group = expand(&GROUP_SCHEMA).expect("members");
        every_string_is_accepted(&group, |text| {
            options(&GROUP_SCHEMA, &format!("$expand={}", encoded(text)))
        });
        let matcher = matcher(&group);
        assert!(matcher.is_match("members($select=id,displayName)"));
        for bad in [
            "0",
            "",
            "owners",
            "members,owners",
            "members($top=5)",
            "members($select=shoeSize)",
        ] {
            assert!(!matcher.is_match(bad), "{bad:?}");
        }
        assert!(expand(&LICENSE_DETAILS_SCHEMA).is_none());
    }

    #[test]
    fn search_patterns_use_graphs_clause_grammar() {
        for schema in [&USER_SCHEMA, &GROUP_SCHEMA] {
            let expression = search(schema).expect("searchable");
            every_string_is_accepted(&expression, |text| {
                query::parse_search(text, schema)
                    .map(|_| ())
                    .map_err(|error| error.message)?;
                options(schema, &format!("$search={}", encoded(text)))
            });
            let matcher = matcher(&expression);
            for bad in [
                "0",
                "",
                "displayName:x",
                "\"usageLocation:US\"",
                "\"displayName:\"",
                "\"displayName:--\"",
                "\"displayName:x\" \"displayName:y\"",
                "\"displayName:x\" and \"displayName:y\"",
            ] {
                assert!(!matcher.is_match(bad), "{bad:?}");
            }
        }
    }

    #[test]
    fn filter_patterns_follow_the_property_kinds() {
        for schema in [&USER_SCHEMA, &GROUP_SCHEMA] {
            let expression = filter(schema).expect("filterable");
            every_string_is_accepted(&expression, |text| {
                filter_grammar::parse(text, schema)
                    .map(|_| ())
                    .map_err(|error| error.message)?;
                options(schema, &format!("$filter={}", encoded(text)))
            });
            let matcher = matcher(&expression);
            for bad in [
                "0",
                "",
                "displayName eq 0",
                "displayName eq",
                "shoeSize eq 'x'",
                "id eq 'x'",
                "accountEnabled eq 'true'",
                "displayName gt 'a'",
                "proxyAddresses eq 'x'",
                "assignedLicenses/$count ne 0",
                "displayName eq 'unterminated",
                "licenseProcessingState eq 'x'",
            ] {
                assert!(!matcher.is_match(bad), "{bad:?} on {}", schema.entity_set);
            }
        }
        let users = matcher(&filter(&USER_SCHEMA).expect("users"));
        for good in [
            "accountEnabled eq true and startswith(displayName,'Ad')",
            "assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)",
            "not usageLocation eq null or proxyAddresses/any(p:startswith(p,'smtp:'))",
            "displayName eq 'O''Neil'",
        ] {
            assert!(users.is_match(good), "{good}");
        }
        let groups = matcher(&filter(&GROUP_SCHEMA).expect("groups"));
        assert!(groups.is_match("hasMembersWithLicenseErrors eq true"));
        assert!(!groups.is_match("accountEnabled eq true"));
        assert!(filter(&SUBSCRIBED_SKU_SCHEMA).is_none());
    }

    #[test]
    fn audit_log_patterns_are_read_by_the_audit_grammar() {
        use crate::odata::audit_filter::AuditLogOptions;
        every_string_is_accepted(&audit_filter(), |text| {
            AuditLogOptions::parse(Some(text), None, None)
                .map(|_| ())
                .map_err(|error| error.message)
        });
        every_string_is_accepted(&page_size(), |text| {
            AuditLogOptions::parse(None, Some(text), None)
                .map(|_| ())
                .map_err(|error| error.message)
        });
        every_string_is_accepted(&sequence_number(), |text| {
            AuditLogOptions::parse(None, None, Some(text))
                .map(|_| ())
                .map_err(|error| error.message)
        });
        let filters = matcher(&audit_filter());
        for bad in [
            "",
            "0",
            "result eq success",
            "activityDateTime eq 2024-05-01T00:00:00Z",
            "activityDateTime ge 2024-02-30T00:00:00Z",
            "category eq 'a' and category eq 'b'",
        ] {
            assert!(!filters.is_match(bad), "{bad:?}");
        }
        for bad in ["0", "1000", "01", ""] {
            assert!(!matcher(&page_size()).is_match(bad), "{bad:?}");
        }
    }
}
