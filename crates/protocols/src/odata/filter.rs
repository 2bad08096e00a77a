//! `$filter`: a lexer, a parser that binds property names to an entity's schema (so a typo or a
//! type mismatch is a 400, never an empty result), and evaluation against one entity at a time.
//!
//! Supported: `eq`, `ne`, `and`, `or`, `not`, parentheses, `startswith(property, 'text')`,
//! `property in ('a', 'b')`, and `any` on collections: `proxyAddresses/any(p:p eq 'smtp:…')`,
//! `proxyAddresses/any(p:startswith(p, 'smtp:'))`, `assignedLicenses/any(x:x/skuId eq {guid})`,
//! `assignedLicenses/any()`. Text comparisons ignore case, as Graph's do. Anything else (`gt`,
//! `endswith`, `all`, navigation) is answered `Request_UnsupportedQuery`.
//!
//! The parser recurses, and so do evaluation and dropping of the tree it builds: a filter is
//! bounded before anything is built — at most [`MAX_FILTER_LENGTH`] characters, nesting
//! (parentheses, `not`, `any`) at most [`MAX_FILTER_DEPTH`] deep and at most
//! [`MAX_FILTER_CLAUSES`] comparisons — and answered 400 naming the limit it exceeds.

use uuid::Uuid;

use super::{EntitySchema, Property, PropertyKind, QueryError};

/// The longest `$filter` accepted, in characters.
pub const MAX_FILTER_LENGTH: usize = 4_096;
/// The deepest nesting accepted: parentheses, `not` and `any(...)` each add a level.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most comparisons (and function calls) one `$filter` may combine.
pub const MAX_FILTER_CLAUSES: usize = 100;

/// A filter bound to a schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    /// `property eq value` (or `ne` when `negated`).
    Equals {
        property: &'static str,
        value: BoundValue,
        negated: bool,
    },
    /// `property in (values)`.
    In {
        property: &'static str,
        values: Vec<BoundValue>,
    },
    /// `startswith(property, 'prefix')`; the prefix is lower case.
    StartsWith {
        property: &'static str,
        prefix: String,
    },
    /// `collection/any(variable: predicate)`, or `collection/any()` for "not empty".
    Any {
        property: &'static str,
        predicate: Option<Box<Filter>>,
    },
    /// `collection/$count eq|ne|gt|ge|lt|le number` (an advanced query).
    Count {
        property: &'static str,
        operator: CountOperator,
        value: i64,
    },
}

/// The comparisons `collection/$count` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountOperator {
    Equal,
    NotEqual,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
}

/// A literal checked against the type of the property it is compared with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundValue {
    /// Lower case, for comparisons that ignore case.
    Text(String),
    Boolean(bool),
    Guid(Uuid),
    Null,
}

/// The value of a property of one entity, for evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PropertyValue {
    Text(Option<String>),
    Boolean(bool),
    Guid(Uuid),
    Texts(Vec<String>),
    Licenses(Vec<Uuid>),
}

/// What a filter is evaluated against: one user, one group, or an element inside `any`.
pub trait FilterSubject {
    fn value(&self, property: &'static str) -> PropertyValue;
}

/// The range variable's element in `proxyAddresses/any(p: …)`: a text.
struct TextElement<'a>(&'a str);

impl FilterSubject for TextElement<'_> {
    fn value(&self, _property: &'static str) -> PropertyValue {
        PropertyValue::Text(Some(self.0.to_string()))
    }
}

/// The range variable's element in `assignedLicenses/any(x: x/skuId …)`.
struct LicenseElement(Uuid);

impl FilterSubject for LicenseElement {
    fn value(&self, _property: &'static str) -> PropertyValue {
        PropertyValue::Guid(self.0)
    }
}

impl Filter {
    /// Whether Graph answers this filter only as an advanced query (`/$count` inside it).
    pub fn needs_advanced_query(&self) -> bool {
        match self {
            Filter::And(left, right) | Filter::Or(left, right) => {
                left.needs_advanced_query() || right.needs_advanced_query()
            }
            Filter::Not(inner) => inner.needs_advanced_query(),
            Filter::Count { .. } => true,
            _ => false,
        }
    }

    pub fn matches(&self, subject: &dyn FilterSubject) -> bool {
        match self {
            Filter::And(left, right) => left.matches(subject) && right.matches(subject),
            Filter::Or(left, right) => left.matches(subject) || right.matches(subject),
            Filter::Not(inner) => !inner.matches(subject),
            Filter::Equals {
                property,
                value,
                negated,
            } => equals(&subject.value(property), value) != *negated,
            Filter::In { property, values } => {
                let actual = subject.value(property);
                values.iter().any(|value| equals(&actual, value))
            }
            Filter::StartsWith { property, prefix } => match subject.value(property) {
                PropertyValue::Text(Some(text)) => text.to_lowercase().starts_with(prefix.as_str()),
                _ => false,
            },
            Filter::Any { property, predicate } => match subject.value(property) {
                PropertyValue::Texts(texts) => texts.iter().any(|text| {
                    predicate
                        .as_ref()
                        .map_or(true, |predicate| predicate.matches(&TextElement(text)))
                }),
                PropertyValue::Licenses(sku_ids) => sku_ids.iter().any(|sku_id| {
                    predicate
                        .as_ref()
                        .map_or(true, |predicate| predicate.matches(&LicenseElement(*sku_id)))
                }),
                _ => false,
            },
            Filter::Count {
                property,
                operator,
                value,
            } => {
                let length = match subject.value(property) {
                    PropertyValue::Texts(texts) => texts.len(),
                    PropertyValue::Licenses(sku_ids) => sku_ids.len(),
                    _ => 0,
                };
                let length = i64::try_from(length).unwrap_or(i64::MAX);
                match operator {
                    CountOperator::Equal => length == *value,
                    CountOperator::NotEqual => length != *value,
                    CountOperator::Greater => length > *value,
                    CountOperator::GreaterOrEqual => length >= *value,
                    CountOperator::Less => length < *value,
                    CountOperator::LessOrEqual => length <= *value,
                }
            }
        }
    }
}

fn equals(actual: &PropertyValue, expected: &BoundValue) -> bool {
    match (actual, expected) {
        (PropertyValue::Text(Some(text)), BoundValue::Text(expected)) => text.to_lowercase() == *expected,
        (PropertyValue::Text(None), BoundValue::Null) => true,
        (PropertyValue::Boolean(actual), BoundValue::Boolean(expected)) => actual == expected,
        (PropertyValue::Guid(actual), BoundValue::Guid(expected)) => actual == expected,
        _ => false,
    }
}

// ----- lexing ---------------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Identifier(String),
    Text(String),
    Guid(Uuid),
    Number(i64),
    OpenParenthesis,
    CloseParenthesis,
    Comma,
    Colon,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(name) => format!("'{name}'"),
            Token::Text(text) => format!("'{}'", text.replace('\'', "''")),
            Token::Guid(guid) => guid.to_string(),
            Token::Number(number) => number.to_string(),
            Token::OpenParenthesis => "'('".to_string(),
            Token::CloseParenthesis => "')'".to_string(),
            Token::Comma => "','".to_string(),
            Token::Colon => "':'".to_string(),
        }
    }
}

fn syntax_error(message: impl std::fmt::Display) -> QueryError {
    QueryError::invalid(format!("Invalid filter clause: {message}"))
}

fn lex(text: &str) -> Result<Vec<(Token, usize)>, QueryError> {
    let characters: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        let start = index;
        match character {
            c if c.is_whitespace() => {
                index += 1;
            }
            '(' | ')' | ',' | ':' => {
                tokens.push((
                    match character {
                        '(' => Token::OpenParenthesis,
                        ')' => Token::CloseParenthesis,
                        ',' => Token::Comma,
                        _ => Token::Colon,
                    },
                    start,
                ));
                index += 1;
            }
            '\'' => {
                let mut value = String::new();
                index += 1;
                loop {
                    match characters.get(index) {
                        None => {
                            return Err(syntax_error(format!(
                                "the text starting at position {start} has no closing quote."
                            )))
                        }
                        Some('\'') if characters.get(index + 1) == Some(&'\'') => {
                            value.push('\'');
                            index += 2;
                        }
                        Some('\'') => {
                            index += 1;
                            break;
                        }
                        Some(other) => {
                            value.push(*other);
                            index += 1;
                        }
                    }
                }
                tokens.push((Token::Text(value), start));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '$' | '-' | '@') => {
                while index < characters.len()
                    && (characters[index].is_ascii_alphanumeric()
                        || matches!(characters[index], '_' | '$' | '-' | '@' | '/' | '.'))
                {
                    index += 1;
                }
                let word: String = characters[start..index].iter().collect();
                let token = if word.len() == 36 && word.matches('-').count() == 4 {
                    match Uuid::try_parse(&word) {
                        Ok(guid) => Token::Guid(guid),
                        Err(_) => return Err(syntax_error(format!("'{word}' is not a valid GUID."))),
                    }
                } else if let Ok(number) = word.parse::<i64>() {
                    Token::Number(number)
                } else if word.contains('-') || word.contains('@') {
                    return Err(syntax_error(format!(
                        "'{word}' at position {start} is not a property, a keyword or a literal (text needs single quotes)."
                    )));
                } else {
                    Token::Identifier(word)
                };
                tokens.push((token, start));
            }
            other => {
                return Err(syntax_error(format!(
                    "the character '{other}' at position {start} is not valid here."
                )))
            }
        }
    }
    Ok(tokens)
}

// ----- parsing --------------------------------------------------------------------------------

/// The schema of the elements of a text collection inside `any`.
static TEXT_ELEMENT: EntitySchema = EntitySchema {
    type_name: "Edm.String",
    entity_set: "",
    properties: &[Property::filter_only("$this", PropertyKind::Text)],
};

/// The schema of `assignedLicense` inside `assignedLicenses/any`.
static LICENSE_ELEMENT: EntitySchema = EntitySchema {
    type_name: "microsoft.graph.assignedLicense",
    entity_set: "",
    properties: &[Property::filter_only("skuId", PropertyKind::Guid)],
};

struct Parser {
    tokens: Vec<(Token, usize)>,
    position: usize,
    schema: &'static EntitySchema,
    /// Inside `any`: the range variable and the element schema.
    lambda: Option<(String, &'static EntitySchema)>,
    /// How deeply the parser is nested now (parentheses, `not`, `any`).
    depth: usize,
    /// Comparisons and calls read so far.
    clauses: usize,
}

/// Parses and binds a `$filter` against an entity's schema.
pub fn parse(text: &str, schema: &'static EntitySchema) -> Result<Filter, QueryError> {
    let length = text.chars().count();
    if length > MAX_FILTER_LENGTH {
        return Err(QueryError::invalid(format!(
            "The $filter is {length} characters long; at most {MAX_FILTER_LENGTH} are allowed."
        )));
    }
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(syntax_error("the filter is empty."));
    }
    let mut parser = Parser {
        tokens,
        position: 0,
        schema,
        lambda: None,
        depth: 0,
        clauses: 0,
    };
    let filter = parser.parse_or()?;
    if let Some((token, at)) = parser.tokens.get(parser.position) {
        return Err(syntax_error(format!(
            "unexpected {} at position {at}; expected 'and', 'or' or the end of the filter.",
            token.describe()
        )));
    }
    Ok(filter)
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Identifier(word)) if word.eq_ignore_ascii_case(keyword))
}

impl Parser {
    /// Enters one more level of nesting, refusing a filter nested deeper than the limit.
    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(QueryError::invalid(format!(
                "The $filter nests deeper than {MAX_FILTER_DEPTH} levels (parentheses, 'not' and 'any') at position {at}."
            )));
        }
        Ok(())
    }

    /// Counts one more comparison or call, refusing a filter with more than the limit.
    fn count_clause(&mut self) -> Result<(), QueryError> {
        self.clauses += 1;
        if self.clauses > MAX_FILTER_CLAUSES {
            return Err(QueryError::invalid(format!(
                "The $filter combines more than {MAX_FILTER_CLAUSES} comparisons."
            )));
        }
        Ok(())
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|(token, _)| token)
    }

    fn next(&mut self) -> Result<(Token, usize), QueryError> {
        let token = self
            .tokens
            .get(self.position)
            .cloned()
            .ok_or_else(|| syntax_error("the filter ends too early."))?;
        self.position += 1;
        Ok(token)
    }

    fn expect(&mut self, expected: Token) -> Result<(), QueryError> {
        let (token, at) = self.next()?;
        if token == expected {
            Ok(())
        } else {
            Err(syntax_error(format!(
                "expected {} at position {at}, found {}.",
                expected.describe(),
                token.describe()
            )))
        }
    }

    fn parse_or(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.parse_and()?;
        while is_keyword(self.peek(), "or") {
            self.position += 1;
            let right = self.parse_and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_and(&mut self) -> Result<Filter, QueryError> {
        let mut left = self.parse_unary()?;
        while is_keyword(self.peek(), "and") {
            self.position += 1;
            let right = self.parse_unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn parse_unary(&mut self) -> Result<Filter, QueryError> {
        if is_keyword(self.peek(), "not") {
            let at = self.tokens.get(self.position).map_or(0, |(_, at)| *at);
            self.position += 1;
            self.enter(at)?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(Filter::Not(Box::new(inner)));
        }
        self.parse_primary()
    }

    fn parse_primary(&mut self) -> Result<Filter, QueryError> {
        let (token, at) = self.next()?;
        match token {
            Token::OpenParenthesis => {
                self.enter(at)?;
                let inner = self.parse_or()?;
                self.expect(Token::CloseParenthesis)?;
                self.depth -= 1;
                Ok(inner)
            }
            Token::Identifier(name) if self.peek() == Some(&Token::OpenParenthesis) => {
                self.position += 1;
                self.count_clause()?;
                self.enter(at)?;
                let call = self.parse_call(&name, at)?;
                self.depth -= 1;
                Ok(call)
            }
            Token::Identifier(name) if name.ends_with("/$count") => self.parse_count(&name),
            Token::Identifier(name) => {
                self.count_clause()?;
                let property = self.resolve(&name)?;
                self.parse_comparison(property)
            }
            other => Err(syntax_error(format!(
                "expected a property or a function at position {at}, found {}.",
                other.describe()
            ))),
        }
    }

    /// `name(` was read.
    fn parse_call(&mut self, name: &str, at: usize) -> Result<Filter, QueryError> {
        if let Some(collection) = name.strip_suffix("/any") {
            return self.parse_any(collection);
        }
        if name.ends_with("/all") {
            return Err(QueryError::unsupported(
                "The lambda operator 'all' is not supported; use 'any' (with 'not' where needed).",
            ));
        }
        match name.to_ascii_lowercase().as_str() {
            "startswith" => {
                let (path, _) = self.next()?;
                let Token::Identifier(path) = path else {
                    return Err(syntax_error(
                        "the first argument of startswith must be a property.",
                    ));
                };
                let property = self.resolve(&path)?;
                if property.kind != PropertyKind::Text {
                    return Err(type_mismatch(property, "startswith"));
                }
                self.expect(Token::Comma)?;
                let (literal, literal_at) = self.next()?;
                let Token::Text(prefix) = literal else {
                    return Err(syntax_error(format!(
                        "the second argument of startswith (position {literal_at}) must be a quoted text."
                    )));
                };
                self.expect(Token::CloseParenthesis)?;
                Ok(Filter::StartsWith {
                    property: property.name,
                    prefix: prefix.to_lowercase(),
                })
            }
            "endswith" | "contains" | "substringof" | "tolower" | "toupper" | "length" | "indexof" => {
                Err(QueryError::unsupported(format!(
                    "The function '{name}' is not supported; licensd supports startswith."
                )))
            }
            _ => Err(syntax_error(format!(
                "unknown function '{name}' at position {at}."
            ))),
        }
    }

    /// `collection/any(` was read.
    fn parse_any(&mut self, collection: &str) -> Result<Filter, QueryError> {
        if self.lambda.is_some() {
            return Err(QueryError::unsupported(
                "Nested lambda operators are not supported.",
            ));
        }
        let property = self.resolve(collection)?;
        let element_schema: &'static EntitySchema = match property.kind {
            PropertyKind::TextCollection => &TEXT_ELEMENT,
            PropertyKind::LicenseCollection => &LICENSE_ELEMENT,
            _ => {
                return Err(syntax_error(format!(
                    "'any' needs a collection, and '{}' is not one.",
                    property.name
                )))
            }
        };
        if self.peek() == Some(&Token::CloseParenthesis) {
            self.position += 1;
            return Ok(Filter::Any {
                property: property.name,
                predicate: None,
            });
        }
        let (variable, at) = self.next()?;
        let Token::Identifier(variable) = variable else {
            return Err(syntax_error(format!(
                "expected a range variable (such as x) at position {at}."
            )));
        };
        if variable.contains('/') {
            return Err(syntax_error(format!(
                "'{variable}' is not a valid range variable."
            )));
        }
        self.expect(Token::Colon)?;
        self.lambda = Some((variable, element_schema));
        let predicate = self.parse_or();
        self.lambda = None;
        let predicate = predicate?;
        self.expect(Token::CloseParenthesis)?;
        Ok(Filter::Any {
            property: property.name,
            predicate: Some(Box::new(predicate)),
        })
    }

    /// `collection/$count` was read: a comparison with a whole number follows.
    fn parse_count(&mut self, name: &str) -> Result<Filter, QueryError> {
        let collection = name.trim_end_matches("/$count");
        let property = self.resolve(collection)?;
        if !matches!(
            property.kind,
            PropertyKind::TextCollection | PropertyKind::LicenseCollection
        ) {
            return Err(syntax_error(format!(
                "'/$count' needs a collection, and '{}' is not one.",
                property.name
            )));
        }
        let (operator, at) = self.next()?;
        let operator = match &operator {
            Token::Identifier(word) => match word.to_ascii_lowercase().as_str() {
                "eq" => CountOperator::Equal,
                "ne" => CountOperator::NotEqual,
                "gt" => CountOperator::Greater,
                "ge" => CountOperator::GreaterOrEqual,
                "lt" => CountOperator::Less,
                "le" => CountOperator::LessOrEqual,
                _ => {
                    return Err(syntax_error(format!(
                        "'{word}' at position {at} is not a comparison (eq, ne, gt, ge, lt, le)."
                    )))
                }
            },
            other => {
                return Err(syntax_error(format!(
                    "expected a comparison after '{name}' at position {at}, found {}.",
                    other.describe()
                )))
            }
        };
        let (literal, literal_at) = self.next()?;
        let Token::Number(value) = literal else {
            return Err(syntax_error(format!(
                "'{name}' is compared with a whole number; found {} at position {literal_at}.",
                literal.describe()
            )));
        };
        Ok(Filter::Count {
            property: property.name,
            operator,
            value,
        })
    }

    fn parse_comparison(&mut self, property: &'static Property) -> Result<Filter, QueryError> {
        let (operator, at) = self.next()?;
        let Token::Identifier(operator) = operator else {
            return Err(syntax_error(format!(
                "expected an operator (eq, ne, in) after '{}' at position {at}, found {}.",
                property.name,
                operator.describe()
            )));
        };
        match operator.to_ascii_lowercase().as_str() {
            "eq" | "ne" => {
                let value = self.parse_literal(property)?;
                Ok(Filter::Equals {
                    property: property.name,
                    value,
                    negated: operator.eq_ignore_ascii_case("ne"),
                })
            }
            "in" => {
                self.expect(Token::OpenParenthesis)?;
                let mut values = vec![self.parse_literal(property)?];
                while self.peek() == Some(&Token::Comma) {
                    self.position += 1;
                    values.push(self.parse_literal(property)?);
                }
                self.expect(Token::CloseParenthesis)?;
                Ok(Filter::In {
                    property: property.name,
                    values,
                })
            }
            "gt" | "ge" | "lt" | "le" | "has" => Err(QueryError::unsupported(format!(
                "The operator '{operator}' is not supported; licensd supports eq, ne, in, startswith and any."
            ))),
            _ => Err(syntax_error(format!(
                "'{operator}' at position {at} is not an operator (eq, ne, in)."
            ))),
        }
    }

    fn parse_literal(&mut self, property: &'static Property) -> Result<BoundValue, QueryError> {
        let (token, at) = self.next()?;
        let mismatch = |found: &str| {
            QueryError::invalid(format!(
                "Invalid filter clause: a binary operator with incompatible types was detected. Found operand types '{}' and '{found}' (position {at}).",
                property.kind.edm_name()
            ))
        };
        match property.kind {
            PropertyKind::Text => match token {
                Token::Text(text) => Ok(BoundValue::Text(text.to_lowercase())),
                Token::Identifier(word) if word == "null" => Ok(BoundValue::Null),
                Token::Identifier(word) if word == "true" || word == "false" => Err(mismatch("Edm.Boolean")),
                Token::Guid(_) => Err(mismatch("Edm.Guid")),
                Token::Number(_) => Err(mismatch("Edm.Int64")),
                other => Err(syntax_error(format!(
                    "expected a quoted text at position {at}, found {}.",
                    other.describe()
                ))),
            },
            PropertyKind::Guid => match token {
                Token::Guid(guid) => Ok(BoundValue::Guid(guid)),
                Token::Text(text) => Uuid::try_parse(&text)
                    .map(BoundValue::Guid)
                    .map_err(|_| QueryError::invalid(format!("Invalid filter clause: '{text}' is not a valid GUID."))),
                Token::Identifier(word) if word == "null" => Ok(BoundValue::Null),
                Token::Identifier(word) if word == "true" || word == "false" => Err(mismatch("Edm.Boolean")),
                Token::Number(_) => Err(mismatch("Edm.Int64")),
                other => Err(syntax_error(format!(
                    "expected a GUID at position {at}, found {}.",
                    other.describe()
                ))),
            },
            PropertyKind::Boolean => match token {
                Token::Identifier(word) if word == "true" => Ok(BoundValue::Boolean(true)),
                Token::Identifier(word) if word == "false" => Ok(BoundValue::Boolean(false)),
                Token::Text(_) => Err(mismatch("Edm.String")),
                Token::Guid(_) => Err(mismatch("Edm.Guid")),
                Token::Number(_) => Err(mismatch("Edm.Int64")),
                other => Err(syntax_error(format!(
                    "expected true or false at position {at}, found {}.",
                    other.describe()
                ))),
            },
            PropertyKind::TextCollection | PropertyKind::LicenseCollection => {
                Err(QueryError::invalid(format!(
                    "Invalid filter clause: '{}' is a collection; compare its elements with {}/any(x:x eq …).",
                    property.name, property.name
                )))
            }
            PropertyKind::Complex => Err(QueryError::unsupported(format!(
                "The property '{}' cannot be compared.",
                property.name
            ))),
        }
    }

    /// Resolves a property path in the current scope.
    fn resolve(&self, path: &str) -> Result<&'static Property, QueryError> {
        if let Some((variable, element_schema)) = &self.lambda {
            let element_schema: &'static EntitySchema = element_schema;
            if path == variable.as_str() {
                return element_schema.property("$this").ok_or_else(|| {
                    QueryError::invalid(format!(
                        "Invalid filter clause: the elements of this collection are objects; name a property, such as {variable}/skuId."
                    ))
                });
            }
            let Some(member) = path.strip_prefix(&format!("{variable}/")) else {
                return Err(QueryError::invalid(format!(
                    "Invalid filter clause: inside 'any', properties must start with the range variable '{variable}' (found '{path}')."
                )));
            };
            return match element_schema.property(member) {
                Some(property) if property.filterable => Ok(property),
                _ => Err(QueryError::unsupported(format!(
                    "Filtering on '{member}' of {} is not supported.",
                    element_schema.type_name
                ))),
            };
        }
        if path.contains('/') {
            return Err(QueryError::unsupported(format!(
                "The property path '{path}' is not supported in $filter."
            )));
        }
        match self.schema.property(path) {
            None => Err(QueryError::invalid(format!(
                "Invalid filter clause: could not find a property named '{path}' on type '{}'.",
                self.schema.type_name
            ))),
            Some(property) if !property.filterable => Err(QueryError::unsupported(format!(
                "Filtering on the property '{}' is not supported.",
                property.name
            ))),
            Some(property) => Ok(property),
        }
    }
}

fn type_mismatch(property: &Property, function: &str) -> QueryError {
    QueryError::invalid(format!(
        "Invalid filter clause: {function} needs a text property, and '{}' is {}.",
        property.name,
        property.kind.edm_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::QueryErrorKind;
    use crate::odata::{GROUP_SCHEMA, USER_SCHEMA};

    struct Person {
        display_name: &'static str,
        usage_location: Option<&'static str>,
        enabled: bool,
        proxy_addresses: Vec<&'static str>,
        licenses: Vec<Uuid>,
    }

    impl FilterSubject for Person {
        fn value(&self, property: &'static str) -> PropertyValue {
            match property {
                "displayName" => PropertyValue::Text(Some(self.display_name.to_string())),
                "usageLocation" => PropertyValue::Text(self.usage_location.map(str::to_string)),
                "accountEnabled" => PropertyValue::Boolean(self.enabled),
                "proxyAddresses" => {
                    PropertyValue::Texts(self.proxy_addresses.iter().map(|a| a.to_string()).collect())
                }
                "assignedLicenses" => PropertyValue::Licenses(self.licenses.clone()),
                _ => PropertyValue::Text(None),
            }
        }
    }

    const E3: Uuid = Uuid::from_u128(0x6fd2c87f_b296_42f0_b197_1e91e994b900);

    fn adele() -> Person {
        Person {
            display_name: "Adele Vance",
            usage_location: Some("US"),
            enabled: true,
            proxy_addresses: vec!["SMTP:adele@contoso.com", "smtp:av@contoso.com"],
            licenses: vec![E3],
        }
    }

    fn check(filter: &str, expected: bool) {
        let bound = parse(filter, &USER_SCHEMA).unwrap_or_else(|error| panic!("{filter}: {}", error.message));
        assert_eq!(bound.matches(&adele()), expected, "{filter}");
    }

    fn refused(filter: &str, kind: QueryErrorKind) {
        match parse(filter, &USER_SCHEMA) {
            Ok(bound) => panic!("{filter} was accepted as {bound:?}"),
            Err(error) => assert_eq!(error.kind, kind, "{filter}: {}", error.message),
        }
    }

    #[test]
    fn supported_filters_evaluate_as_graph_does() {
        check("displayName eq 'adele vance'", true);
        check("displayName ne 'Adele Vance'", false);
        check("startswith(displayName,'ad')", true);
        check("startswith(displayName, 'Vance')", false);
        check("usageLocation in ('NL', 'us')", true);
        check("usageLocation eq null", false);
        check("accountEnabled eq true and not (usageLocation eq 'NL')", true);
        check("accountEnabled eq false or displayName eq 'x'", false);
        check("proxyAddresses/any(p:p eq 'SMTP:ADELE@contoso.com')", true);
        check("proxyAddresses/any(p:startswith(p, 'smtp:av'))", true);
        check(
            "assignedLicenses/any(x:x/skuId eq 6fd2c87f-b296-42f0-b197-1e91e994b900)",
            true,
        );
        check(
            "assignedLicenses/any(x:x/skuId eq '6fd2c87f-b296-42f0-b197-1e91e994b900')",
            true,
        );
        check(
            "assignedLicenses/any(x:x/skuId eq 00000000-b296-42f0-b197-1e91e994b900)",
            false,
        );
        check("assignedLicenses/any()", true);
        check("displayName eq 'O''Neil' or startswith(displayName, 'A')", true);
    }

    #[test]
    fn unsupported_or_malformed_filters_are_refused() {
        refused("displayName eq", QueryErrorKind::Invalid);
        refused("displayName eq 'unterminated", QueryErrorKind::Invalid);
        refused("favouriteColour eq 'red'", QueryErrorKind::Invalid);
        refused("accountEnabled eq 'yes'", QueryErrorKind::Invalid);
        refused("displayName gt 'A'", QueryErrorKind::Unsupported);
        refused("endswith(displayName, 'x')", QueryErrorKind::Unsupported);
        refused("proxyAddresses/all(p:p eq 'x')", QueryErrorKind::Unsupported);
        refused("proxyAddresses eq 'x'", QueryErrorKind::Invalid);
        refused("assignedLicenses/any(x:y/skuId eq 'x')", QueryErrorKind::Invalid);
        refused(
            "assignedLicenses/any(x:x/disabledPlans eq 'x')",
            QueryErrorKind::Unsupported,
        );
        refused("manager/displayName eq 'x'", QueryErrorKind::Unsupported);
        refused("licenseAssignmentStates eq 'x'", QueryErrorKind::Unsupported);
        refused("displayName eq 'a' extra", QueryErrorKind::Invalid);
        refused("", QueryErrorKind::Invalid);
    }

    #[test]
    fn groups_filter_on_members_with_license_errors() {
        let bound = parse("hasMembersWithLicenseErrors eq true", &GROUP_SCHEMA).expect("supported");
        assert!(matches!(
            bound,
            Filter::Equals {
                property: "hasMembersWithLicenseErrors",
                ..
            }
        ));
    }
}
