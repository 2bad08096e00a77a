//! `$orderby`, `$search` and `$expand`, bound to an entity's schema with Graph's rules for
//! directory objects: which properties sort and search, which need an advanced query
//! (`ConsistencyLevel: eventual` with `$count=true`), Graph's tokenized `"property:value"` search,
//! and one `$expand` of `members` (groups) or `memberOf` (users) of at most 20 objects.

use std::cmp::Ordering;

use super::{
    parse_select, EntitySchema, FilterSubject, PropertyValue, QueryError, Selection, GROUP_SCHEMA,
    USER_SCHEMA,
};

/// Graph returns at most this many objects of an expanded navigation property.
pub const MAX_EXPANDED_OBJECTS: usize = 20;

/// One sortable property: its name and whether sorting on it is an advanced query.
struct Sortable {
    name: &'static str,
    advanced_only: bool,
}

/// What `$orderby`, `$search` and `$expand` may use on an entity type.
struct Capabilities {
    sortable: &'static [Sortable],
    searchable: &'static [&'static str],
    /// Navigation properties and the schema of the objects they lead to.
    expandable: &'static [(&'static str, &'static EntitySchema)],
}

static USER_CAPABILITIES: Capabilities = Capabilities {
    sortable: &[
        Sortable {
            name: "displayName",
            advanced_only: false,
        },
        Sortable {
            name: "userPrincipalName",
            advanced_only: false,
        },
        Sortable {
            name: "mail",
            advanced_only: true,
        },
    ],
    searchable: &["displayName", "userPrincipalName", "mail"],
    expandable: &[("memberOf", &GROUP_SCHEMA)],
};

static GROUP_CAPABILITIES: Capabilities = Capabilities {
    sortable: &[Sortable {
        name: "displayName",
        advanced_only: false,
    }],
    searchable: &["displayName"],
    expandable: &[("members", &USER_SCHEMA)],
};

static NO_CAPABILITIES: Capabilities = Capabilities {
    sortable: &[],
    searchable: &[],
    expandable: &[],
};

fn capabilities(schema: &EntitySchema) -> &'static Capabilities {
    match schema.type_name {
        "microsoft.graph.user" => &USER_CAPABILITIES,
        "microsoft.graph.group" => &GROUP_CAPABILITIES,
        _ => &NO_CAPABILITIES,
    }
}

/// The names of the sortable properties of a schema, for messages and documentation.
pub fn sortable_properties(schema: &EntitySchema) -> Vec<&'static str> {
    capabilities(schema)
        .sortable
        .iter()
        .map(|sortable| sortable.name)
        .collect()
}

/// The names of the searchable properties of a schema.
pub fn searchable_properties(schema: &EntitySchema) -> &'static [&'static str] {
    capabilities(schema).searchable
}

/// The navigation properties `$expand` accepts on a schema.
pub fn expandable_properties(schema: &EntitySchema) -> Vec<&'static str> {
    capabilities(schema)
        .expandable
        .iter()
        .map(|(name, _)| *name)
        .collect()
}

/// The schema of the objects an expandable navigation property leads to.
pub fn expansion_target(schema: &EntitySchema, navigation: &str) -> Option<&'static EntitySchema> {
    capabilities(schema)
        .expandable
        .iter()
        .find(|(name, _)| *name == navigation)
        .map(|(_, target)| *target)
}

// ----- $orderby -------------------------------------------------------------------------------

/// `$orderby=property [asc|desc]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBy {
    pub property: &'static str,
    pub descending: bool,
    advanced_only: bool,
}

impl OrderBy {
    /// The sort key of one entity: its text value, ignoring case as Graph does.
    pub fn key_of(&self, subject: &dyn FilterSubject) -> Option<String> {
        match subject.value(self.property) {
            PropertyValue::Text(text) => text.map(|text| text.to_lowercase()),
            _ => None,
        }
    }

    /// Compares two keys; entities without a value come last in either direction.
    pub fn compare(&self, left: Option<&str>, right: Option<&str>) -> Ordering {
        match (left, right) {
            (Some(left), Some(right)) if self.descending => right.cmp(left),
            (Some(left), Some(right)) => left.cmp(right),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}

pub fn parse_order_by(value: &str, schema: &'static EntitySchema) -> Result<OrderBy, QueryError> {
    let clauses: Vec<&str> = value.split(',').map(str::trim).collect();
    if clauses.len() > 1 {
        return Err(QueryError::unsupported(
            "Sorting on more than one property is not supported (as in Graph for directory objects).",
        ));
    }
    let mut words = clauses[0].split_whitespace();
    let (Some(name), direction, None) = (words.next(), words.next(), words.next()) else {
        return Err(QueryError::invalid(format!(
            "The $orderby value '{value}' is not valid: expected 'property', 'property asc' or 'property desc'."
        )));
    };
    let descending = match direction.map(str::to_ascii_lowercase).as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(QueryError::invalid(format!(
                "The $orderby direction '{other}' is not valid: use asc or desc."
            )))
        }
    };
    let property = schema.property(name).ok_or_else(|| {
        QueryError::invalid(format!(
            "Could not find a property named '{name}' on type '{}'.",
            schema.type_name
        ))
    })?;
    let sortable = capabilities(schema)
        .sortable
        .iter()
        .find(|sortable| sortable.name == property.name)
        .ok_or_else(|| {
            QueryError::unsupported(format!(
                "Sorting on '{}' is not supported; {} can be sorted on: {}.",
                property.name,
                schema.entity_set,
                sortable_properties(schema).join(", ")
            ))
        })?;
    Ok(OrderBy {
        property: property.name,
        descending,
        advanced_only: sortable.advanced_only,
    })
}

/// Graph sorts with `$filter`, and on some properties, only in an advanced query; `$search`
/// already is one (its header is required).
pub fn check_order_by_is_allowed(
    order_by: &OrderBy,
    filtered: bool,
    searched: bool,
    advanced: bool,
) -> Result<(), QueryError> {
    if advanced || searched {
        return Ok(());
    }
    if filtered {
        return Err(QueryError::unsupported(
            "Sorting not supported for current query: $orderby with $filter is an advanced query (add $count=true and the header 'ConsistencyLevel: eventual').",
        ));
    }
    if order_by.advanced_only {
        return Err(QueryError::unsupported(format!(
            "Sorting not supported for current query: sorting on '{}' is an advanced query (add $count=true and the header 'ConsistencyLevel: eventual').",
            order_by.property
        )));
    }
    Ok(())
}

// ----- $search --------------------------------------------------------------------------------

/// `$search`: `"property:words"` clauses joined by `AND` and `OR` (`AND` binds tighter).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Search {
    /// Every token of the words starts a token of the property's value.
    Term {
        property: &'static str,
        tokens: Vec<String>,
    },
    And(Box<Search>, Box<Search>),
    Or(Box<Search>, Box<Search>),
}

/// Splits a text as Graph's search index does: at anything that is not a letter or digit and
/// where a lower-case letter is followed by an upper-case one; lower case.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for character in text.chars() {
        if !character.is_alphanumeric() {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            previous_lower = false;
            continue;
        }
        if character.is_uppercase() && previous_lower && !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        previous_lower = character.is_lowercase() || character.is_numeric();
        current.extend(character.to_lowercase());
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

impl Search {
    pub fn matches(&self, subject: &dyn FilterSubject) -> bool {
        match self {
            Search::And(left, right) => left.matches(subject) && right.matches(subject),
            Search::Or(left, right) => left.matches(subject) || right.matches(subject),
            Search::Term { property, tokens } => match subject.value(property) {
                PropertyValue::Text(Some(text)) => {
                    let indexed = tokenize(&text);
                    tokens
                        .iter()
                        .all(|token| indexed.iter().any(|word| word.starts_with(token.as_str())))
                }
                _ => false,
            },
        }
    }
}

fn search_syntax_error(value: &str, reason: &str) -> QueryError {
    QueryError::invalid(format!(
        "Syntax error in $search '{value}': {reason} Use the form \"property:value\", for example $search=\"displayName:room\"."
    ))
}

pub fn parse_search(value: &str, schema: &'static EntitySchema) -> Result<Search, QueryError> {
    // Clauses in double quotes, separated by AND / OR.
    let mut clauses: Vec<Search> = Vec::new();
    let mut operators: Vec<bool> = Vec::new(); // true for AND
    let mut rest = value.trim();
    loop {
        let Some(after_quote) = rest.strip_prefix('"') else {
            return Err(search_syntax_error(
                value,
                "every clause must be in double quotes.",
            ));
        };
        let Some(end) = after_quote.find('"') else {
            return Err(search_syntax_error(
                value,
                "a clause has no closing double quote.",
            ));
        };
        clauses.push(parse_search_term(value, &after_quote[..end], schema)?);
        rest = after_quote[end + 1..].trim_start();
        if rest.is_empty() {
            break;
        }
        if let Some(after) = rest.strip_prefix("AND ") {
            operators.push(true);
            rest = after.trim_start();
        } else if let Some(after) = rest.strip_prefix("OR ") {
            operators.push(false);
            rest = after.trim_start();
        } else {
            return Err(search_syntax_error(
                value,
                "clauses must be joined by AND or OR (upper case).",
            ));
        }
    }
    // AND first, then OR.
    let mut clauses = clauses.into_iter();
    let Some(first) = clauses.next() else {
        return Err(search_syntax_error(value, "the search is empty."));
    };
    let mut alternatives: Vec<Search> = Vec::new();
    let mut current = first;
    for (is_and, clause) in operators.into_iter().zip(clauses) {
        if is_and {
            current = Search::And(Box::new(current), Box::new(clause));
        } else {
            alternatives.push(current);
            current = clause;
        }
    }
    let mut result = current;
    while let Some(previous) = alternatives.pop() {
        result = Search::Or(Box::new(previous), Box::new(result));
    }
    Ok(result)
}

fn parse_search_term(value: &str, clause: &str, schema: &'static EntitySchema) -> Result<Search, QueryError> {
    let Some((name, words)) = clause.split_once(':') else {
        return Err(search_syntax_error(
            value,
            &format!("the clause \"{clause}\" names no property (licensd, like Graph for directory objects, searches one property per clause)."),
        ));
    };
    let searchable = searchable_properties(schema);
    let property = searchable
        .iter()
        .find(|candidate| candidate.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            QueryError::unsupported(format!(
                "Searching on '{}' is not supported; {} can be searched on: {}.",
                name.trim(),
                schema.entity_set,
                searchable.join(", ")
            ))
        })?;
    let tokens = tokenize(words);
    if tokens.is_empty() {
        return Err(search_syntax_error(
            value,
            &format!("the clause \"{clause}\" has no word to search for."),
        ));
    }
    Ok(Search::Term { property, tokens })
}

// ----- $expand --------------------------------------------------------------------------------

/// `$expand=navigation` or `$expand=navigation($select=a,b)`.
#[derive(Clone, Debug)]
pub struct Expand {
    pub navigation: &'static str,
    /// What each expanded object carries.
    pub selection: Selection,
}

pub fn parse_expand(value: &str, schema: &'static EntitySchema) -> Result<Expand, QueryError> {
    let value = value.trim();
    let (name, nested) = match value.find('(') {
        Some(open) => {
            let Some(inner) = value[open + 1..].strip_suffix(')') else {
                return Err(QueryError::invalid(format!(
                    "The $expand value '{value}' has unbalanced parentheses."
                )));
            };
            (value[..open].trim(), Some(inner))
        }
        None => (value, None),
    };
    if name.contains(',') || nested.is_some_and(|inner| inner.contains(")")) {
        return Err(QueryError::unsupported(
            "Only one navigation property can be expanded per request (as in Graph for directory objects).",
        ));
    }
    let expandable = capabilities(schema).expandable;
    let Some((navigation, target)) = expandable
        .iter()
        .find(|(navigation, _)| navigation.eq_ignore_ascii_case(name))
    else {
        let allowed = expandable_properties(schema);
        return Err(QueryError::unsupported(if allowed.is_empty() {
            format!(
                "Expanding '{name}' is not supported: licensd expands nothing on {}.",
                schema.entity_set
            )
        } else {
            format!(
                "Expanding '{name}' is not supported: licensd expands {} on {}.",
                allowed.join(", "),
                schema.entity_set
            )
        }));
    };
    let selection = match nested {
        None => Selection::default_for(target),
        Some(inner) => {
            let inner = inner.trim();
            let select = inner
                .split_once('=')
                .filter(|(option, _)| {
                    option
                        .trim()
                        .trim_start_matches('$')
                        .eq_ignore_ascii_case("select")
                })
                .map(|(_, names)| names);
            match select {
                Some(names) => parse_select(names, target)?,
                None => {
                    return Err(QueryError::unsupported(format!(
                        "Inside $expand only $select is supported, not '{inner}'."
                    )))
                }
            }
        }
    };
    Ok(Expand {
        navigation,
        selection,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::QueryErrorKind;

    struct Named(&'static str);

    impl FilterSubject for Named {
        fn value(&self, _property: &'static str) -> PropertyValue {
            PropertyValue::Text(Some(self.0.to_string()))
        }
    }

    #[test]
    fn tokens_split_at_separators_and_case_changes() {
        assert_eq!(tokenize("Adele Vance"), ["adele", "vance"]);
        assert_eq!(tokenize("AdeleV@contoso.com"), ["adele", "v", "contoso", "com"]);
        assert_eq!(tokenize("room-101"), ["room", "101"]);
    }

    #[test]
    fn search_matches_word_prefixes_with_and_before_or() {
        let search = parse_search("\"displayName:ade van\"", &USER_SCHEMA).expect("valid");
        assert!(search.matches(&Named("Adele Vance")));
        assert!(!search.matches(&Named("Adele Smith")));
        assert!(
            !search.matches(&Named("Made Vance")),
            "prefixes of words, not substrings"
        );
        let either = parse_search(
            "\"displayName:alex\" OR \"displayName:adele\" AND \"displayName:vance\"",
            &USER_SCHEMA,
        )
        .expect("valid");
        assert!(either.matches(&Named("Alex Wilber")));
        assert!(either.matches(&Named("Adele Vance")));
        assert!(!either.matches(&Named("Adele Smith")));
        for invalid in [
            "displayName:x",
            "\"x\"",
            "\"displayName:x\" \"displayName:y\"",
            "\"displayName:\"",
        ] {
            assert_eq!(
                parse_search(invalid, &USER_SCHEMA).unwrap_err().kind,
                QueryErrorKind::Invalid,
                "{invalid}"
            );
        }
        assert_eq!(
            parse_search("\"usageLocation:US\"", &USER_SCHEMA)
                .unwrap_err()
                .kind,
            QueryErrorKind::Unsupported
        );
    }

    #[test]
    fn order_by_accepts_graphs_sortable_properties_only() {
        let order = parse_order_by("displayName desc", &USER_SCHEMA).expect("valid");
        assert!(order.descending);
        assert_eq!(order.compare(Some("a"), Some("b")), Ordering::Greater);
        assert_eq!(order.compare(Some("a"), None), Ordering::Less);
        assert_eq!(
            parse_order_by("usageLocation", &USER_SCHEMA).unwrap_err().kind,
            QueryErrorKind::Unsupported
        );
        assert_eq!(
            parse_order_by("shoeSize", &USER_SCHEMA).unwrap_err().kind,
            QueryErrorKind::Invalid
        );
        assert_eq!(
            parse_order_by("displayName sideways", &USER_SCHEMA)
                .unwrap_err()
                .kind,
            QueryErrorKind::Invalid
        );
        assert_eq!(
            parse_order_by("displayName,userPrincipalName", &USER_SCHEMA)
                .unwrap_err()
                .kind,
            QueryErrorKind::Unsupported
        );
        let mail = parse_order_by("mail", &USER_SCHEMA).expect("valid");
        assert!(check_order_by_is_allowed(&mail, false, false, false).is_err());
        assert!(check_order_by_is_allowed(&mail, false, false, true).is_ok());
    }

    #[test]
    fn expand_names_one_navigation_property() {
        let expand = parse_expand("members($select=id,displayName)", &GROUP_SCHEMA).expect("valid");
        assert_eq!(expand.navigation, "members");
        assert!(expand.selection.includes("displayName"));
        assert!(!expand.selection.includes("mail"));
        assert_eq!(
            parse_expand("memberOf", &USER_SCHEMA).expect("valid").navigation,
            "memberOf"
        );
        for invalid in ["owners", "members,owners", "manager"] {
            assert_eq!(
                parse_expand(invalid, &GROUP_SCHEMA).unwrap_err().kind,
                QueryErrorKind::Unsupported,
                "{invalid}"
            );
        }
        assert_eq!(
            parse_expand("members($top=5)", &GROUP_SCHEMA).unwrap_err().kind,
            QueryErrorKind::Unsupported
        );
    }
}
