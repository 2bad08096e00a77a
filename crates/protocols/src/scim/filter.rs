//! SCIM attribute paths and filters (RFC 7644 §3.4.2.2, §3.5.2): parsing `userName eq "x"`,
//! `emails[type eq "work" and value co "@contoso"]`, `members[value eq "…"]`, extension URNs
//! (`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department`) and evaluating them
//! against a resource's JSON. Attribute names compare without case; strings compare without case
//! unless the schema marks the attribute `caseExact`.
//!
//! The parser recurses, and so do evaluation and dropping of the tree it builds: a filter or a
//! PATCH path is bounded before anything is built — at most [`MAX_FILTER_LENGTH`] characters,
//! nesting (parentheses, `not`, `[...]`) at most [`MAX_FILTER_DEPTH`] deep and at most
//! [`MAX_FILTER_CLAUSES`] comparisons — and answered 400 (`invalidFilter` or `invalidPath`)
//! naming the limit it exceeds.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::{BadRequest, ScimType};
use super::schema::{Attribute, Kind, ResourceKind};

/// The longest filter or PATCH path accepted, in characters.
pub const MAX_FILTER_LENGTH: usize = 4_096;
/// The deepest nesting accepted: parentheses, `not` and `attr[...]` each add a level.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most comparisons one filter may combine.
pub const MAX_FILTER_CLAUSES: usize = 100;

/// `[urn:]name[.sub]`: `urn` is set for an extension attribute (never for the core schema).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub urn: Option<String>,
    pub name: String,
    pub sub: Option<String>,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare(AttrPath, CompareOp, Value),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`, whose paths are
    /// relative to that value.
    Within(AttrPath, Box<Filter>),
}

/// A PATCH path: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`; `attr.urn` is `None`
/// and `attr.name` the URN itself when the path names a whole extension.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchPath {
    pub attr: AttrPath,
    pub filter: Option<Filter>,
    /// Set only with a filter (`attr[filter].sub`); without one the sub-attribute is in `attr.sub`.
    pub sub: Option<String>,
    /// The path names a whole extension (`urn:…:User`): `attr.name` is the URN.
    pub whole_extension: bool,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$'
}

/// Splits `urn:…:name.sub` into the URN and the rest, knowing the resource's extensions.
/// Returns `(urn, rest)` where `rest` may be empty when the text is a bare extension URN.
fn split_urn<'a>(text: &'a str, kind: &ResourceKind) -> Result<(Option<String>, &'a str), BadRequest> {
    if !text.to_ascii_lowercase().starts_with("urn:") {
        return Ok((None, text));
    }
    let lower = text.to_ascii_lowercase();
    let mut candidates: Vec<&str> = kind.extensions.iter().map(|schema| schema.id).collect();
    candidates.push(kind.core.id);
    for urn in candidates {
        let urn_lower = urn.to_ascii_lowercase();
        if lower == urn_lower {
            let is_core = urn == kind.core.id;
            return Ok((if is_core { None } else { Some(urn.to_string()) }, ""));
        }
        if lower.starts_with(&urn_lower) && lower.as_bytes().get(urn.len()) == Some(&b':') {
            let rest = &text[urn.len() + 1..];
            let is_core = urn == kind.core.id;
            return Ok((if is_core { None } else { Some(urn.to_string()) }, rest));
        }
    }
    Err(BadRequest::invalid_path(format!(
        "'{text}' names a schema this resource type does not have"
    )))
}

struct Parser<'a> {
    text: &'a str,
    position: usize,
    kind: &'a ResourceKind,
    /// How deeply the parser is nested now (parentheses, `not`, `[...]`).
    depth: usize,
    /// Comparisons read so far.
    clauses: usize,
}

/// Refuses a filter or path longer than [`MAX_FILTER_LENGTH`] before it is parsed.
fn check_length(text: &str, what: &str) -> Result<(), String> {
    let length = text.chars().count();
    if length > MAX_FILTER_LENGTH {
        return Err(format!(
            "The {what} is {length} characters long; at most {MAX_FILTER_LENGTH} are allowed."
        ));
    }
    Ok(())
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, kind: &'a ResourceKind) -> Parser<'a> {
        Parser {
            text,
            position: 0,
            kind,
            depth: 0,
            clauses: 0,
        }
    }

    /// Enters one more level of nesting, refusing a filter nested deeper than the limit.
    fn enter(&mut self) -> Result<(), BadRequest> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(self.error(&format!(
                "the filter nests deeper than {MAX_FILTER_DEPTH} levels (parentheses, 'not' and '[...]')"
            )));
        }
        Ok(())
    }

    fn rest(&self) -> &'a str {
        &self.text[self.position..]
    }

    fn skip_spaces(&mut self) {
        while self.rest().starts_with(' ') {
            self.position += 1;
        }
    }

    fn error(&self, message: &str) -> BadRequest {
        BadRequest::invalid_filter(format!(
            "The filter '{}' is invalid at position {}: {message}.",
            self.text,
            self.position + 1
        ))
    }

    /// A keyword (`and`, `or`, `not`, an operator) followed by a space, `(` or the end.
    fn keyword(&mut self, word: &str) -> bool {
        let rest = self.rest();
        if rest.len() >= word.len() && rest[..word.len()].eq_ignore_ascii_case(word) {
            let after = rest[word.len()..].chars().next();
            // `pr` may close a group: `not (title pr)`, `emails[value pr]`.
            if after.map_or(true, |c| matches!(c, ' ' | '(' | ')' | ']')) {
                self.position += word.len();
                return true;
            }
        }
        false
    }

    fn attr_path(&mut self, relative: bool) -> Result<AttrPath, BadRequest> {
        let start = self.position;
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(is_name_char(c) || c == '.' || c == ':'))
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(self.error("an attribute name is expected"));
        }
        self.position += end;
        let token = &self.text[start..start + end];
        parse_attr_path(token, self.kind, relative).map_err(|error| {
            if error.scim_type == ScimType::InvalidPath {
                self.error(&error.detail)
            } else {
                error
            }
        })
    }

    fn value(&mut self) -> Result<Value, BadRequest> {
        let rest = self.rest();
        if rest.starts_with('"') {
            let bytes = rest.as_bytes();
            let mut index = 1;
            while index < bytes.len() {
                match bytes[index] {
                    b'\\' => index += 2,
                    b'"' => {
                        let literal = &rest[..=index];
                        self.position += index + 1;
                        return serde_json::from_str(literal).map_err(|_| self.error("a malformed string"));
                    }
                    _ => index += 1,
                }
            }
            return Err(self.error("a string is not closed"));
        }
        let end = rest.find([' ', ')', ']']).unwrap_or(rest.len());
        let token = &rest[..end];
        let value = match token.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            _ => serde_json::from_str::<serde_json::Number>(token)
                .map(Value::Number)
                .map_err(|_| self.error("a value must be a quoted string, a number, true, false or null"))?,
        };
        self.position += end;
        Ok(value)
    }

    fn expression(&mut self, relative: bool) -> Result<Filter, BadRequest> {
        let mut left = self.term(relative)?;
        loop {
            self.skip_spaces();
            if self.keyword("or") {
                self.skip_spaces();
                let right = self.term(relative)?;
                left = Filter::Or(Box::new(left), Box::new(right));
            } else {
                return Ok(left);
            }
        }
    }

    fn term(&mut self, relative: bool) -> Result<Filter, BadRequest> {
        let mut left = self.factor(relative)?;
        loop {
            let saved = self.position;
            self.skip_spaces();
            if self.keyword("and") {
                self.skip_spaces();
                let right = self.factor(relative)?;
                left = Filter::And(Box::new(left), Box::new(right));
            } else {
                self.position = saved;
                return Ok(left);
            }
        }
    }

    fn factor(&mut self, relative: bool) -> Result<Filter, BadRequest> {
        self.skip_spaces();
        if self.keyword("not") {
            self.skip_spaces();
            if !self.rest().starts_with('(') {
                return Err(self.error("'not' must be followed by a parenthesized filter"));
            }
            self.enter()?;
            let inner = self.parenthesized(relative)?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.rest().starts_with('(') {
            return self.parenthesized(relative);
        }
        self.clauses += 1;
        if self.clauses > MAX_FILTER_CLAUSES {
            return Err(self.error(&format!(
                "the filter combines more than {MAX_FILTER_CLAUSES} comparisons"
            )));
        }
        let path = self.attr_path(relative)?;
        if self.rest().starts_with('[') {
            if relative {
                return Err(self.error("filters cannot be nested"));
            }
            if path.sub.is_some() {
                return Err(self.error("a value filter applies to an attribute, not a sub-attribute"));
            }
            self.position += 1;
            self.enter()?;
            let inner = self.expression(true)?;
            self.skip_spaces();
            if !self.rest().starts_with(']') {
                return Err(self.error("']' is expected"));
            }
            self.position += 1;
            self.depth -= 1;
            return Ok(Filter::Within(path, Box::new(inner)));
        }
        if !self.rest().starts_with(' ') {
            return Err(self.error("an operator is expected after the attribute"));
        }
        self.skip_spaces();
        if self.keyword("pr") {
            return Ok(Filter::Present(path));
        }
        let operators = [
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];
        for (word, operator) in operators {
            let rest = self.rest();
            if rest.len() > word.len()
                && rest[..word.len()].eq_ignore_ascii_case(word)
                && rest.as_bytes()[word.len()] == b' '
            {
                self.position += word.len();
                self.skip_spaces();
                let value = self.value()?;
                return Ok(Filter::Compare(path, operator, value));
            }
        }
        Err(self.error("one of eq, ne, co, sw, ew, gt, ge, lt, le or pr is expected"))
    }

    fn parenthesized(&mut self, relative: bool) -> Result<Filter, BadRequest> {
        self.position += 1;
        self.enter()?;
        let inner = self.expression(relative)?;
        self.skip_spaces();
        if !self.rest().starts_with(')') {
            return Err(self.error("')' is expected"));
        }
        self.position += 1;
        self.depth -= 1;
        Ok(inner)
    }
}

/// Parses `[urn:]name[.sub]`; `relative` paths (inside `[...]`) name sub-attributes.
fn parse_attr_path(token: &str, kind: &ResourceKind, relative: bool) -> Result<AttrPath, BadRequest> {
    let (urn, rest) = if relative {
        (None, token)
    } else {
        split_urn(token, kind)?
    };
    let (name, sub) = match rest.split_once('.') {
        Some((name, sub)) => (name, Some(sub)),
        None => (rest, None),
    };
    let valid = |part: &str| !part.is_empty() && part.chars().all(is_name_char);
    if !valid(name) || sub.is_some_and(|sub| !valid(sub)) {
        return Err(BadRequest::invalid_path(format!(
            "'{token}' is not an attribute path"
        )));
    }
    Ok(AttrPath {
        urn,
        name: name.to_string(),
        sub: sub.map(str::to_string),
    })
}

/// Parses a filter (the `filter` query parameter).
pub fn parse_filter(text: &str, kind: &ResourceKind) -> Result<Filter, BadRequest> {
    check_length(text, "filter").map_err(BadRequest::invalid_filter)?;
    let mut parser = Parser::new(text.trim(), kind);
    if parser.text.is_empty() {
        return Err(BadRequest::invalid_filter("The filter is empty."));
    }
    let filter = parser.expression(false)?;
    parser.skip_spaces();
    if !parser.rest().is_empty() {
        return Err(parser.error("unexpected text"));
    }
    Ok(filter)
}

/// Parses a PATCH path or an entry of `attributes` / `excludedAttributes`.
pub fn parse_patch_path(text: &str, kind: &ResourceKind) -> Result<PatchPath, BadRequest> {
    check_length(text, "path").map_err(BadRequest::invalid_path)?;
    let text = text.trim();
    let invalid = |detail: String| BadRequest::invalid_path(detail);
    if let Some(open) = text.find('[') {
        let close = text
            .rfind(']')
            .filter(|close| *close > open)
            .ok_or_else(|| invalid(format!("'{text}': '[' is not closed")))?;
        let attr = parse_attr_path(&text[..open], kind, false)?;
        if attr.sub.is_some() {
            return Err(invalid(format!(
                "'{text}': a value filter applies to an attribute"
            )));
        }
        let filter_text = &text[open + 1..close];
        let mut parser = Parser::new(filter_text, kind);
        let filter = parser.expression(true).map_err(|error| invalid(error.detail))?;
        parser.skip_spaces();
        if !parser.rest().is_empty() {
            return Err(invalid(format!("'{text}': unexpected text in the value filter")));
        }
        let after = &text[close + 1..];
        let sub = match after {
            "" => None,
            _ => match after.strip_prefix('.') {
                Some(sub) if !sub.is_empty() && sub.chars().all(is_name_char) => Some(sub.to_string()),
                _ => return Err(invalid(format!("'{text}' is not an attribute path"))),
            },
        };
        return Ok(PatchPath {
            attr,
            filter: Some(filter),
            sub,
            whole_extension: false,
        });
    }
    let (urn, rest) = split_urn(text, kind)?;
    if rest.is_empty() {
        let Some(urn) = urn else {
            return Err(invalid(format!(
                "'{text}' names the resource's schema, not an attribute"
            )));
        };
        return Ok(PatchPath {
            attr: AttrPath {
                urn: None,
                name: urn,
                sub: None,
            },
            filter: None,
            sub: None,
            whole_extension: true,
        });
    }
    let mut attr = parse_attr_path(rest, kind, true)?;
    attr.urn = urn;
    Ok(PatchPath {
        attr,
        filter: None,
        sub: None,
        whole_extension: false,
    })
}

/// The definition of `path` in `kind`'s schemas, if it names one.
pub fn attribute_of(kind: &ResourceKind, urn: Option<&str>, name: &str) -> Option<&'static Attribute> {
    match urn {
        Some(urn) => kind.extension(urn)?.attribute(name),
        None => kind.core_attribute(name),
    }
}

/// A key of `object` equal to `name` ignoring case.
pub fn get_ignoring_case<'v>(object: &'v serde_json::Map<String, Value>, name: &str) -> Option<&'v Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// The values `path` designates in `resource` (multi-valued attributes flattened).
fn values_at<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let container = match &path.urn {
        Some(urn) => resource
            .as_object()
            .and_then(|object| get_ignoring_case(object, urn)),
        None => Some(resource),
    };
    let Some(attribute) = container
        .and_then(Value::as_object)
        .and_then(|object| get_ignoring_case(object, &path.name))
    else {
        return Vec::new();
    };
    let top: Vec<&Value> = match attribute {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    match &path.sub {
        None => top,
        Some(sub) => top
            .into_iter()
            .filter_map(|value| {
                value
                    .as_object()
                    .and_then(|object| get_ignoring_case(object, sub))
            })
            .flat_map(|value| match value {
                Value::Array(items) => items.iter().collect::<Vec<_>>(),
                Value::Null => Vec::new(),
                other => vec![other],
            })
            .collect(),
    }
}

fn case_exact(kind: &ResourceKind, path: &AttrPath, parent: Option<&AttrPath>) -> bool {
    let (urn, name, sub) = match parent {
        Some(parent) => (
            parent.urn.as_deref(),
            parent.name.as_str(),
            Some(path.name.as_str()),
        ),
        None => (path.urn.as_deref(), path.name.as_str(), path.sub.as_deref()),
    };
    let Some(attribute) = attribute_of(kind, urn, name) else {
        return false;
    };
    match sub {
        Some(sub) => attribute.sub_attribute(sub).is_some_and(|sub| sub.case_exact),
        None => attribute.case_exact && attribute.kind != Kind::Complex,
    }
}

fn compare(actual: &Value, operator: CompareOp, expected: &Value, exact: bool) -> bool {
    match (actual, expected) {
        (Value::String(actual), Value::String(expected)) => {
            let (actual, expected) = if exact {
                (actual.clone(), expected.clone())
            } else {
                (actual.to_lowercase(), expected.to_lowercase())
            };
            match operator {
                CompareOp::Eq => actual == expected,
                CompareOp::Ne => actual != expected,
                CompareOp::Co => actual.contains(&expected),
                CompareOp::Sw => actual.starts_with(&expected),
                CompareOp::Ew => actual.ends_with(&expected),
                CompareOp::Gt => actual > expected,
                CompareOp::Ge => actual >= expected,
                CompareOp::Lt => actual < expected,
                CompareOp::Le => actual <= expected,
            }
        }
        (Value::Bool(actual), Value::Bool(expected)) => match operator {
            CompareOp::Eq => actual == expected,
            CompareOp::Ne => actual != expected,
            _ => false,
        },
        // Entra ID sends booleans as strings in some filters.
        (Value::Bool(actual), Value::String(expected)) => match expected.to_ascii_lowercase().as_str() {
            "true" | "false" => compare(
                &Value::Bool(*actual),
                operator,
                &Value::Bool(expected.eq_ignore_ascii_case("true")),
                exact,
            ),
            _ => false,
        },
        (Value::Number(actual), Value::Number(expected)) => {
            let (Some(actual), Some(expected)) = (actual.as_f64(), expected.as_f64()) else {
                return false;
            };
            let ordering = actual.partial_cmp(&expected);
            match operator {
                CompareOp::Eq => ordering == Some(Ordering::Equal),
                CompareOp::Ne => ordering != Some(Ordering::Equal),
                CompareOp::Gt => ordering == Some(Ordering::Greater),
                CompareOp::Ge => matches!(ordering, Some(Ordering::Greater | Ordering::Equal)),
                CompareOp::Lt => ordering == Some(Ordering::Less),
                CompareOp::Le => matches!(ordering, Some(Ordering::Less | Ordering::Equal)),
                _ => false,
            }
        }
        _ => false,
    }
}

fn present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(object) => !object.is_empty(),
        _ => true,
    }
}

impl Filter {
    /// Whether `resource` matches.
    pub fn matches(&self, resource: &Value, kind: &ResourceKind) -> bool {
        self.matches_in(resource, kind, None)
    }

    /// Evaluates against `value`; `parent` is the multi-valued attribute when `value` is one of
    /// its values (inside `attr[...]`).
    pub fn matches_in(&self, value: &Value, kind: &ResourceKind, parent: Option<&AttrPath>) -> bool {
        match self {
            Filter::Present(path) => values_at(value, path).into_iter().any(present),
            Filter::Compare(path, operator, expected) => {
                let exact = case_exact(kind, path, parent);
                let values = values_at(value, path);
                if *operator == CompareOp::Ne {
                    return !values
                        .into_iter()
                        .any(|actual| compare(actual, CompareOp::Eq, expected, exact));
                }
                if expected.is_null() {
                    return *operator == CompareOp::Eq && values.into_iter().all(|value| !present(value));
                }
                values
                    .into_iter()
                    .any(|actual| compare(actual, *operator, expected, exact))
            }
            Filter::And(left, right) => {
                left.matches_in(value, kind, parent) && right.matches_in(value, kind, parent)
            }
            Filter::Or(left, right) => {
                left.matches_in(value, kind, parent) || right.matches_in(value, kind, parent)
            }
            Filter::Not(inner) => !inner.matches_in(value, kind, parent),
            Filter::Within(path, inner) => values_at(value, path)
                .into_iter()
                .any(|item| inner.matches_in(item, kind, Some(path))),
        }
    }

    /// The equalities on sub-attributes this filter requires when it is `a eq x [and b eq y…]`,
    /// so an `add`/`replace` with no matching value can create one (as Entra ID expects of
    /// `emails[type eq "work"].value`).
    pub fn required_equalities(&self) -> Option<Vec<(String, Value)>> {
        match self {
            Filter::Compare(path, CompareOp::Eq, value) if path.sub.is_none() && path.urn.is_none() => {
                Some(vec![(path.name.clone(), value.clone())])
            }
            Filter::And(left, right) => {
                let mut all = left.required_equalities()?;
                all.extend(right.required_equalities()?);
                Some(all)
            }
            _ => None,
        }
    }

    /// `userName eq "…"` at the top: the value, for an index lookup.
    pub fn top_level_equality(&self, name: &str) -> Option<&str> {
        match self {
            Filter::Compare(path, CompareOp::Eq, Value::String(value))
                if path.urn.is_none() && path.sub.is_none() && path.name.eq_ignore_ascii_case(name) =>
            {
                Some(value)
            }
            _ => None,
        }
    }

    /// Whether any path of the filter starts with `name` (to know what a resource must render).
    pub fn mentions(&self, name: &str) -> bool {
        match self {
            Filter::Present(path) | Filter::Compare(path, _, _) => {
                path.urn.is_none() && path.name.eq_ignore_ascii_case(name)
            }
            Filter::Within(path, _) => path.urn.is_none() && path.name.eq_ignore_ascii_case(name),
            Filter::And(left, right) | Filter::Or(left, right) => left.mentions(name) || right.mentions(name),
            Filter::Not(inner) => inner.mentions(name),
        }
    }

    /// Whether any path of the filter names an attribute of the extension `urn` (to know what
    /// a resource must render).
    pub fn mentions_extension(&self, urn: &str) -> bool {
        let of_extension = |path: &AttrPath| {
            path.urn
                .as_deref()
                .is_some_and(|own| own.eq_ignore_ascii_case(urn))
        };
        match self {
            Filter::Present(path) | Filter::Compare(path, _, _) | Filter::Within(path, _) => {
                of_extension(path)
            }
            Filter::And(left, right) | Filter::Or(left, right) => {
                left.mentions_extension(urn) || right.mentions_extension(urn)
            }
            Filter::Not(inner) => inner.mentions_extension(urn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "Bjensen@Example.com",
            "externalId": "bjensen",
            "active": true,
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Tour Operations"},
            "meta": {"lastModified": "2011-05-13T04:42:34Z"}
        })
    }

    fn matches(text: &str) -> bool {
        parse_filter(text, &USER_RESOURCE)
            .expect(text)
            .matches(&user(), &USER_RESOURCE)
    }

    #[test]
    fn the_rfc_examples_evaluate() {
        assert!(matches(r#"userName eq "bjensen@example.com""#));
        assert!(matches(r#"USERNAME Eq "BJENSEN@EXAMPLE.COM""#));
        assert!(!matches(r#"externalId eq "BJENSEN""#), "externalId is case-exact");
        assert!(matches(r#"name.familyName co "ens""#));
        assert!(matches(r#"userName sw "bj""#));
        assert!(matches(r#"userName ew ".com""#));
        assert!(!matches("title pr"));
        assert!(matches("name pr and emails pr"));
        assert!(matches(r#"emails[type eq "work" and value co "@example.com"]"#));
        assert!(!matches(r#"emails[type eq "work" and value co "@jensen.org"]"#));
        assert!(matches(r#"emails.type eq "home""#));
        assert!(matches(r#"active eq true and not (userName eq "x")"#));
        assert!(matches(
            r#"(userName eq "x" or externalId eq "bjensen") and active eq "True""#
        ));
        assert!(matches(
            r#"meta.lastModified gt "2011-05-13T04:42:34Z" or meta.lastModified ge "2011-05-13T04:42:34Z""#
        ));
        assert!(matches(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "tour operations""#
        ));
        assert!(matches(r#"userName ne "someone""#));
        assert!(matches(r#"title ne "x""#), "an absent attribute is not equal");
    }

    #[test]
    fn malformed_filters_are_refused_with_invalid_filter() {
        for text in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName zz "x""#,
            r#"userName eq "x"#,
            r#"(userName eq "x""#,
            r#"userName eq "x" and"#,
            r#"emails[type eq "work""#,
            r#"urn:example:unknown:attr eq "x""#,
            r#"userName eq x"#,
        ] {
            let error = parse_filter(text, &USER_RESOURCE).expect_err(text);
            assert_eq!(error.scim_type, ScimType::InvalidFilter, "{text}: {error:?}");
        }
    }

    #[test]
    fn patch_paths_name_attributes_filters_and_extensions() {
        let path = parse_patch_path(r#"members[value eq "abc"]"#, &GROUP_RESOURCE).expect("path");
        assert_eq!(path.attr.name, "members");
        assert!(path.filter.is_some());
        let path = parse_patch_path(r#"emails[type eq "work"].value"#, &USER_RESOURCE).expect("path");
        assert_eq!(path.sub.as_deref(), Some("value"));
        assert_eq!(
            path.filter.and_then(|filter| filter.required_equalities()),
            Some(vec![("type".to_string(), json!("work"))])
        );
        let path = parse_patch_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
            &USER_RESOURCE,
        )
        .expect("path");
        assert_eq!(
            path.attr.urn.as_deref(),
            Some(crate::scim::schema::ENTERPRISE_USER_SCHEMA)
        );
        assert_eq!(
            (path.attr.name.as_str(), path.attr.sub.as_deref()),
            ("manager", Some("value"))
        );
        let path = parse_patch_path(
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
            &USER_RESOURCE,
        )
        .expect("path");
        assert!(path.whole_extension);
        let path = parse_patch_path(
            "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
            &USER_RESOURCE,
        )
        .expect("path");
        assert_eq!((path.attr.urn, path.attr.name.as_str()), (None, "displayName"));
        assert!(parse_patch_path("emails[type eq", &USER_RESOURCE).is_err());
        assert!(parse_patch_path("name..x", &USER_RESOURCE).is_err());
    }

    #[test]
    fn a_filter_tells_which_extensions_it_reads() {
        // `pr` closing a group parses.
        for text in [
            "not (userName pr)",
            "userName pr and not (title pr)",
            "emails[value pr]",
        ] {
            assert!(parse_filter(text, &USER_RESOURCE).is_ok(), "{text}");
        }
        assert!(!matches("not (externalId pr)"));
        assert!(matches("not (title pr)"));
        assert!(matches("emails[value pr]"));
        let activity = crate::scim::schema::ACTIVITY_USER_SCHEMA;
        let enterprise = crate::scim::schema::ENTERPRISE_USER_SCHEMA;
        let filter = parse_filter(
            &format!(r#"userName sw "a" and not ({activity}:employeeLeaveDateTime pr)"#),
            &USER_RESOURCE,
        )
        .expect("filter");
        assert!(filter.mentions_extension(activity));
        assert!(!filter.mentions_extension(enterprise));
        let filter =
            parse_filter(r#"userName sw "a" or displayName eq "b""#, &USER_RESOURCE).expect("filter");
        assert!(!filter.mentions_extension(activity));
    }
}
