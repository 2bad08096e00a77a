//! The membership rule language's tokens and grammar: Entra's syntax for user rules (see
//! `docs/dynamic-groups.md`), parsed into [`Expression`]s with errors that name the character
//! where the rule went wrong.

use regex::{Regex, RegexBuilder};

use super::{Comparison, Expression, Item, Operator, Property, Quantifier, RuleError, Subject, Value};
use crate::model::Uuid;

/// The longest rule Entra accepts, in characters.
pub const MAX_RULE_LENGTH: usize = 3072;

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Open,
    Close,
    OpenList,
    CloseList,
    Comma,
    /// An operator, lower-cased, without its hyphen (`eq`, `startswith`, `and`, `any`).
    Operator(String),
    /// A bare word: a property (`user.department`, `_`, `group.objectId`), `true`, `false`,
    /// `null` or a number.
    Word(String),
    /// A quoted string, unescaped.
    Text(String),
}

/// A token and the 1-based character where it starts.
#[derive(Clone, Debug)]
struct Located {
    token: Token,
    at: usize,
}

const OPERATORS: &[&str] = &[
    "eq",
    "ne",
    "startswith",
    "notstartswith",
    "endswith",
    "notendswith",
    "contains",
    "notcontains",
    "match",
    "notmatch",
    "in",
    "notin",
    "and",
    "or",
    "not",
    "any",
    "all",
    "le",
    "ge",
];

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@' | '$' | '+')
}

/// Whether `c` is a hyphen as rules are written (ASCII, or the en dash Microsoft's
/// documentation prints).
fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2013}')
}

fn tokenize(rule: &str) -> Result<Vec<Located>, RuleError> {
    let chars: Vec<char> = rule.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        let c = chars[index];
        let at = index + 1;
        match c {
            c if c.is_whitespace() => index += 1,
            '(' | ')' | '[' | ']' | ',' => {
                let token = match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::OpenList,
                    ']' => Token::CloseList,
                    _ => Token::Comma,
                };
                tokens.push(Located { token, at });
                index += 1;
            }
            '`' => {
                // `"Sales`": a value that contains its double quotes (the documented escape).
                if chars.get(index + 1) != Some(&'"') {
                    return Err(RuleError::new(at, "a backtick escapes a double quote: write `\""));
                }
                let mut text = String::from('"');
                index += 2;
                loop {
                    match chars.get(index) {
                        None => return Err(RuleError::new(at, "this string has no closing `\"")),
                        Some('`') if chars.get(index + 1) == Some(&'"') => {
                            text.push('"');
                            index += 2;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            index += 1;
                        }
                    }
                }
                tokens.push(Located {
                    token: Token::Text(text),
                    at,
                });
            }
            '"' => {
                // "text", with `" for a double quote inside and `` for a backtick.
                let mut text = String::new();
                index += 1;
                loop {
                    match chars.get(index) {
                        None => return Err(RuleError::new(at, "this string has no closing double quote")),
                        Some('`') => match chars.get(index + 1) {
                            Some(escaped @ ('"' | '`')) => {
                                text.push(*escaped);
                                index += 2;
                            }
                            _ => {
                                text.push('`');
                                index += 1;
                            }
                        },
                        Some('"') => {
                            index += 1;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            index += 1;
                        }
                    }
                }
                tokens.push(Located {
                    token: Token::Text(text),
                    at,
                });
            }
            '\'' => {
                // 'text', with '' for a single quote inside.
                let mut text = String::new();
                index += 1;
                loop {
                    match chars.get(index) {
                        None => return Err(RuleError::new(at, "this string has no closing single quote")),
                        Some('\'') if chars.get(index + 1) == Some(&'\'') => {
                            text.push('\'');
                            index += 2;
                        }
                        Some('\'') => {
                            index += 1;
                            break;
                        }
                        Some(other) => {
                            text.push(*other);
                            index += 1;
                        }
                    }
                }
                tokens.push(Located {
                    token: Token::Text(text),
                    at,
                });
            }
            c if is_hyphen(c) => {
                let start = index + 1;
                let mut end = start;
                while end < chars.len() && chars[end].is_ascii_alphabetic() {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect::<String>().to_lowercase();
                if OPERATORS.contains(&name.as_str()) {
                    tokens.push(Located {
                        token: Token::Operator(name),
                        at,
                    });
                    index = end;
                } else if chars.get(start).is_some_and(char::is_ascii_digit) {
                    // A negative number.
                    let mut end = start;
                    while end < chars.len() && is_word_char(chars[end]) {
                        end += 1;
                    }
                    tokens.push(Located {
                        token: Token::Word(chars[index..end].iter().collect()),
                        at,
                    });
                    index = end;
                } else {
                    let shown: String = chars[index..end.max(index + 1)].iter().collect();
                    return Err(RuleError::new(
                        at,
                        format!(
                            "unknown operator \"{shown}\"; the operators are {}",
                            operator_list()
                        ),
                    ));
                }
            }
            c if is_word_char(c) => {
                let mut end = index;
                while end < chars.len() && is_word_char(chars[end]) {
                    end += 1;
                }
                let word: String = chars[index..end].iter().collect();
                let lower = word.to_lowercase();
                // Operators may be written without their hyphen (`user.city eq "Lagos"`).
                let token = if OPERATORS.contains(&lower.as_str()) {
                    Token::Operator(lower)
                } else {
                    Token::Word(word)
                };
                tokens.push(Located { token, at });
                index = end;
            }
            other => {
                return Err(RuleError::new(at, format!("unexpected character '{other}'")));
            }
        }
    }
    Ok(tokens)
}

fn operator_list() -> String {
    "-eq -ne -startsWith -notStartsWith -endsWith -notEndsWith -contains -notContains -match -notMatch -in -notIn, -and -or -not, -any -all".to_string()
}

/// Parses a rule (see the module documentation of [`super`]).
pub(super) fn parse(rule: &str) -> Result<Expression, RuleError> {
    let length = rule.chars().count();
    if rule.trim().is_empty() {
        return Err(RuleError::new(1, "the rule is empty"));
    }
    if length > MAX_RULE_LENGTH {
        return Err(RuleError::new(
            MAX_RULE_LENGTH + 1,
            format!("a rule has at most {MAX_RULE_LENGTH} characters (this one has {length})"),
        ));
    }
    let tokens = tokenize(rule)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        end: length + 1,
        depth: 0,
    };
    let expression = parser.or(Scope::User)?;
    if let Some(extra) = parser.peek() {
        return Err(RuleError::new(
            extra.at,
            format!(
                "unexpected {} after a complete rule; join expressions with -and or -or",
                describe(&extra.token)
            ),
        ));
    }
    Ok(expression)
}

/// What the properties of an expression refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// The user: `user.department`.
    User,
    /// Items of `user.proxyAddresses`: `_`.
    ProxyAddress,
    /// Groups of `user.memberOf`: `group.objectId`.
    Group,
}

struct Parser {
    tokens: Vec<Located>,
    next: usize,
    /// The position just past the rule (for errors at its end).
    end: usize,
    depth: usize,
}

/// Nesting beyond this is refused (no rule needs it; it bounds the recursion).
const MAX_DEPTH: usize = 64;

fn describe(token: &Token) -> String {
    match token {
        Token::Open => "'('".to_string(),
        Token::Close => "')'".to_string(),
        Token::OpenList => "'['".to_string(),
        Token::CloseList => "']'".to_string(),
        Token::Comma => "','".to_string(),
        Token::Operator(name) => format!("operator -{name}"),
        Token::Word(word) => format!("\"{word}\""),
        Token::Text(text) => format!("string \"{text}\""),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Located> {
        self.tokens.get(self.next)
    }

    fn take(&mut self) -> Option<Located> {
        let token = self.tokens.get(self.next).cloned();
        self.next += 1;
        token
    }

    fn at_operator(&self, name: &str) -> bool {
        matches!(self.peek(), Some(Located { token: Token::Operator(found), .. }) if found == name)
    }

    fn position(&self) -> usize {
        self.peek().map(|token| token.at).unwrap_or(self.end)
    }

    fn or(&mut self, scope: Scope) -> Result<Expression, RuleError> {
        let mut parts = vec![self.and(scope)?];
        while self.at_operator("or") {
            self.next += 1;
            parts.push(self.and(scope)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expression::Or(parts)
        })
    }

    fn and(&mut self, scope: Scope) -> Result<Expression, RuleError> {
        let mut parts = vec![self.not(scope)?];
        while self.at_operator("and") {
            self.next += 1;
            parts.push(self.not(scope)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expression::And(parts)
        })
    }

    fn not(&mut self, scope: Scope) -> Result<Expression, RuleError> {
        if self.at_operator("not") {
            self.next += 1;
            self.enter()?;
            let inner = self.not(scope)?;
            self.depth -= 1;
            return Ok(Expression::Not(Box::new(inner)));
        }
        self.primary(scope)
    }

    fn enter(&mut self) -> Result<(), RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(RuleError::new(
                self.position(),
                format!("expressions nest at most {MAX_DEPTH} deep"),
            ));
        }
        Ok(())
    }

    fn expect_close(&mut self, opened_at: usize) -> Result<(), RuleError> {
        match self.take() {
            Some(Located {
                token: Token::Close, ..
            }) => Ok(()),
            Some(other) => Err(RuleError::new(
                other.at,
                format!(
                    "expected ')' closing the '(' at character {opened_at}, found {}",
                    describe(&other.token)
                ),
            )),
            None => Err(RuleError::new(
                self.end,
                format!("the '(' at character {opened_at} is never closed"),
            )),
        }
    }

    fn primary(&mut self, scope: Scope) -> Result<Expression, RuleError> {
        let Some(first) = self.take() else {
            return Err(RuleError::new(
                self.end,
                "the rule ends where an expression was expected",
            ));
        };
        match first.token {
            Token::Open => {
                self.enter()?;
                let inner = self.or(scope)?;
                self.expect_close(first.at)?;
                self.depth -= 1;
                Ok(inner)
            }
            Token::Word(word) => self.comparison(scope, &word, first.at),
            other => Err(RuleError::new(
                first.at,
                format!(
                    "expected a property such as user.department, found {}",
                    describe(&other)
                ),
            )),
        }
    }

    fn comparison(&mut self, scope: Scope, word: &str, at: usize) -> Result<Expression, RuleError> {
        let subject = resolve_subject(scope, word, at)?;
        let Some(operator) = self.take() else {
            return Err(RuleError::new(
                self.end,
                format!("{word} needs an operator and a value"),
            ));
        };
        let Token::Operator(name) = operator.token else {
            return Err(RuleError::new(
                operator.at,
                format!(
                    "expected an operator after {word}, found {}",
                    describe(&operator.token)
                ),
            ));
        };
        if name == "any" || name == "all" {
            let quantifier = if name == "any" {
                Quantifier::Any
            } else {
                Quantifier::All
            };
            let item_scope = match subject {
                Subject::Property(Property::ProxyAddresses) => Scope::ProxyAddress,
                Subject::Property(Property::MemberOf) => Scope::Group,
                _ => {
                    return Err(RuleError::new(
                        operator.at,
                        format!("-{name} applies to a multi-valued property (user.proxyAddresses, user.memberOf), not to {word}"),
                    ))
                }
            };
            let open = self.take();
            let Some(Located {
                token: Token::Open,
                at: opened_at,
            }) = open
            else {
                return Err(RuleError::new(
                    open.map(|token| token.at).unwrap_or(self.end),
                    format!("-{name} is followed by a condition in parentheses, such as (_ -contains \"contoso\")"),
                ));
            };
            self.enter()?;
            let condition = self.or(item_scope)?;
            self.expect_close(opened_at)?;
            self.depth -= 1;
            return Ok(Expression::Quantified {
                collection: match item_scope {
                    Scope::ProxyAddress => Property::ProxyAddresses,
                    _ => Property::MemberOf,
                },
                quantifier,
                condition: Box::new(condition),
            });
        }
        let Some(operator_kind) = Operator::from_name(&name) else {
            return Err(RuleError::new(
                operator.at,
                if name == "le" || name == "ge" {
                    "-le and -ge compare dates (user.employeeHireDate), which licensd does not keep"
                        .to_string()
                } else {
                    format!("-{name} joins expressions; a comparison operator was expected after {word}")
                },
            ));
        };
        if matches!(
            subject,
            Subject::Property(Property::ProxyAddresses | Property::MemberOf)
        ) {
            return Err(RuleError::new(
                operator.at,
                format!("{word} has several values: compare them with -any or -all, as in {word} -any (_ -contains \"contoso\")"),
            ));
        }
        let value = self.value(&subject, operator_kind, word, operator.at)?;
        Ok(Expression::Compare(Comparison {
            subject,
            operator: operator_kind,
            value,
        }))
    }

    fn value(
        &mut self,
        subject: &Subject,
        operator: Operator,
        word: &str,
        operator_at: usize,
    ) -> Result<Value, RuleError> {
        let Some(first) = self.take() else {
            return Err(RuleError::new(
                self.end,
                format!("{word} -{} needs a value", operator.name()),
            ));
        };
        let is_boolean = matches!(subject, Subject::Property(Property::AccountEnabled));
        if matches!(operator, Operator::In | Operator::NotIn) {
            let Token::OpenList = first.token else {
                return Err(RuleError::new(
                    first.at,
                    format!(
                        "-{} takes a list in brackets, such as [\"Sales\", \"Marketing\"]",
                        operator.name()
                    ),
                ));
            };
            let mut values = Vec::new();
            loop {
                let Some(item) = self.take() else {
                    return Err(RuleError::new(
                        self.end,
                        format!("the list at character {} is never closed", first.at),
                    ));
                };
                if let (Subject::GroupId, Token::Text(text) | Token::Word(text)) = (subject, &item.token) {
                    check_group_id(text, item.at)?;
                }
                match item.token {
                    Token::CloseList if values.is_empty() => break,
                    Token::Text(text) => values.push(text.to_lowercase()),
                    Token::Word(word)
                        if !matches!(word.to_lowercase().as_str(), "null" | "true" | "false") =>
                    {
                        values.push(word.to_lowercase())
                    }
                    other => {
                        return Err(RuleError::new(
                            item.at,
                            format!("expected a string in the list, found {}", describe(&other)),
                        ));
                    }
                }
                match self.take() {
                    Some(Located {
                        token: Token::Comma, ..
                    }) => {}
                    Some(Located {
                        token: Token::CloseList,
                        ..
                    }) => break,
                    Some(other) => {
                        return Err(RuleError::new(
                            other.at,
                            format!(
                                "expected ',' or ']' in the list, found {}",
                                describe(&other.token)
                            ),
                        ))
                    }
                    None => {
                        return Err(RuleError::new(
                            self.end,
                            format!("the list at character {} is never closed", first.at),
                        ))
                    }
                }
            }
            if is_boolean {
                return Err(RuleError::new(
                    operator_at,
                    format!("{word} is true or false: compare it with -eq or -ne"),
                ));
            }
            return Ok(Value::List(values));
        }
        let value = match first.token {
            Token::Text(text) => Value::Text(text.to_lowercase()),
            Token::Word(bare) => match bare.to_lowercase().as_str() {
                "null" => Value::Null,
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ if bare.parse::<f64>().is_ok() => Value::Text(bare.to_lowercase()),
                _ => {
                    return Err(RuleError::new(
                        first.at,
                        format!(
                            "expected a value in double quotes, true, false, null or a number, found {bare}"
                        ),
                    ))
                }
            },
            other => {
                return Err(RuleError::new(
                    first.at,
                    format!(
                        "expected a value after -{}, found {}",
                        operator.name(),
                        describe(&other)
                    ),
                ))
            }
        };
        match (&value, operator) {
            (Value::Null, Operator::Eq | Operator::Ne) => {}
            (Value::Null, _) => {
                return Err(RuleError::new(first.at, "null is compared with -eq or -ne only"));
            }
            (Value::Boolean(_), Operator::Eq | Operator::Ne) if is_boolean => {}
            (_, _) if is_boolean => {
                return Err(RuleError::new(
                    first.at,
                    format!("{word} is true or false: compare it with -eq true or -eq false"),
                ));
            }
            (Value::Boolean(_), _) => {
                return Err(RuleError::new(
                    first.at,
                    format!("{word} is a string: put the value in double quotes"),
                ));
            }
            (Value::Text(pattern), Operator::Match | Operator::NotMatch) => {
                return Ok(Value::Pattern(compile_pattern(pattern, first.at)?));
            }
            _ => {}
        }
        if let (Subject::GroupId, Value::Text(text)) = (subject, &value) {
            check_group_id(text, first.at)?;
        }
        Ok(value)
    }
}

fn compile_pattern(pattern: &str, at: usize) -> Result<Regex, RuleError> {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| RuleError::new(at, format!("invalid regular expression: {error}")))
}

fn check_group_id(text: &str, at: usize) -> Result<(), RuleError> {
    Uuid::parse_str(text)
        .map(|_| ())
        .map_err(|_| RuleError::new(at, format!("\"{text}\" is not a group's object id (a GUID)")))
}

fn resolve_subject(scope: Scope, word: &str, at: usize) -> Result<Subject, RuleError> {
    match scope {
        Scope::User => {
            let Some((object, name)) = word.split_once('.') else {
                return Err(RuleError::new(
                    at,
                    format!("expected a property such as user.department, found \"{word}\""),
                ));
            };
            if !object.eq_ignore_ascii_case("user") {
                return Err(RuleError::new(
                    at,
                    if object.eq_ignore_ascii_case("device") {
                        "licensd groups hold users: device rules are not supported".to_string()
                    } else {
                        format!("properties of a user rule start with \"user.\", found \"{word}\"")
                    },
                ));
            }
            match Property::from_name(name) {
                Some(property) => Ok(Subject::Property(property)),
                None if name.eq_ignore_ascii_case("assignedPlans") => Err(RuleError::new(
                    at,
                    "user.assignedPlans is not supported: a rule on licenses would feed back into the licenses groups assign (see docs/dynamic-groups.md)",
                )),
                None => Err(RuleError::new(
                    at,
                    format!("unknown property \"{word}\"; the supported user properties are listed in docs/dynamic-groups.md"),
                )),
            }
        }
        Scope::ProxyAddress => {
            if word == "_" {
                Ok(Subject::Item(Item::ProxyAddress))
            } else {
                Err(RuleError::new(
                    at,
                    format!(
                        "inside user.proxyAddresses -any/-all the address is written _, found \"{word}\""
                    ),
                ))
            }
        }
        Scope::Group => {
            if word.eq_ignore_ascii_case("group.objectId") {
                Ok(Subject::GroupId)
            } else {
                Err(RuleError::new(at, format!("inside user.memberOf -any/-all the group is written group.objectId, found \"{word}\"")))
            }
        }
    }
}
