//! Membership rules of dynamic groups: Entra ID's rule language for users
//! (`user.department -eq "Sales" -and user.country -in ["FR", "DE"]`), parsed once into an
//! [`Expression`] that evaluates a user without allocating for the common operators, and that
//! says which properties it reads so a user's change re-evaluates only the rules that read what
//! changed. The grammar, its precedence and licensd's decisions are in `docs/dynamic-groups.md`.

mod evaluate;
mod parse;

use std::fmt;

use regex::Regex;

pub use evaluate::RuleTarget;
pub use parse::MAX_RULE_LENGTH;

use crate::model::Uuid;
use crate::user_attributes::UserAttribute;

/// A rule that could not be parsed: where (the 1-based character) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid membershipRule at character {position}: {message}")]
pub struct RuleError {
    pub position: usize,
    pub message: String,
}

impl RuleError {
    fn new(position: usize, message: impl Into<String>) -> RuleError {
        RuleError {
            position,
            message: message.into(),
        }
    }
}

/// A user property a rule can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Property {
    Attribute(UserAttribute),
    UsageLocation,
    UserPrincipalName,
    DisplayName,
    ObjectId,
    AccountEnabled,
    /// Multi-valued: read with `-any` / `-all`.
    ProxyAddresses,
    /// The groups the user is a member of; multi-valued.
    MemberOf,
}

/// Bits of [`PropertySet`] after the attributes' (which use their own index).
const USAGE_LOCATION_BIT: u32 = 40;

impl Property {
    /// The property named `name` (after `user.`), without case.
    pub fn from_name(name: &str) -> Option<Property> {
        if let Some(attribute) = UserAttribute::from_name(name) {
            return Some(Property::Attribute(attribute));
        }
        let lower = name.to_ascii_lowercase();
        Some(match lower.as_str() {
            "usagelocation" => Property::UsageLocation,
            "userprincipalname" => Property::UserPrincipalName,
            "displayname" => Property::DisplayName,
            "objectid" => Property::ObjectId,
            "accountenabled" => Property::AccountEnabled,
            "proxyaddresses" => Property::ProxyAddresses,
            "memberof" => Property::MemberOf,
            // Entra's rule name of officeLocation.
            "physicaldeliveryofficename" => Property::Attribute(UserAttribute::OFFICE_LOCATION),
            _ => return None,
        })
    }

    fn bit(self) -> u64 {
        let index = match self {
            Property::Attribute(attribute) => attribute.index() as u32,
            Property::UsageLocation => USAGE_LOCATION_BIT,
            Property::UserPrincipalName => USAGE_LOCATION_BIT + 1,
            Property::DisplayName => USAGE_LOCATION_BIT + 2,
            Property::ObjectId => USAGE_LOCATION_BIT + 3,
            Property::AccountEnabled => USAGE_LOCATION_BIT + 4,
            Property::ProxyAddresses => USAGE_LOCATION_BIT + 5,
            Property::MemberOf => USAGE_LOCATION_BIT + 6,
        };
        1 << index
    }
}

/// A set of properties (which ones a rule reads, which ones a change touched).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PropertySet(u64);

impl PropertySet {
    pub const EMPTY: PropertySet = PropertySet(0);
    pub const ALL: PropertySet = PropertySet(u64::MAX);

    pub fn of(properties: impl IntoIterator<Item = Property>) -> PropertySet {
        let mut set = PropertySet::EMPTY;
        for property in properties {
            set.insert(property);
        }
        set
    }

    pub fn insert(&mut self, property: Property) {
        self.0 |= property.bit();
    }

    pub fn contains(self, property: Property) -> bool {
        self.0 & property.bit() != 0
    }

    pub fn intersects(self, other: PropertySet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    Eq,
    Ne,
    StartsWith,
    NotStartsWith,
    EndsWith,
    NotEndsWith,
    Contains,
    NotContains,
    Match,
    NotMatch,
    In,
    NotIn,
}

impl Operator {
    fn from_name(name: &str) -> Option<Operator> {
        Some(match name {
            "eq" => Operator::Eq,
            "ne" => Operator::Ne,
            "startswith" => Operator::StartsWith,
            "notstartswith" => Operator::NotStartsWith,
            "endswith" => Operator::EndsWith,
            "notendswith" => Operator::NotEndsWith,
            "contains" => Operator::Contains,
            "notcontains" => Operator::NotContains,
            "match" => Operator::Match,
            "notmatch" => Operator::NotMatch,
            "in" => Operator::In,
            "notin" => Operator::NotIn,
            _ => return None,
        })
    }

    /// The operator as written (without its hyphen).
    pub fn name(self) -> &'static str {
        match self {
            Operator::Eq => "eq",
            Operator::Ne => "ne",
            Operator::StartsWith => "startsWith",
            Operator::NotStartsWith => "notStartsWith",
            Operator::EndsWith => "endsWith",
            Operator::NotEndsWith => "notEndsWith",
            Operator::Contains => "contains",
            Operator::NotContains => "notContains",
            Operator::Match => "match",
            Operator::NotMatch => "notMatch",
            Operator::In => "in",
            Operator::NotIn => "notIn",
        }
    }
}

/// An item of a multi-valued property inside `-any` / `-all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// `_` in `user.proxyAddresses -any (_ -contains "contoso")`.
    ProxyAddress,
}

/// What a comparison reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    Property(Property),
    Item(Item),
    /// `group.objectId` in `user.memberOf -any (group.objectId -in ['…'])`.
    GroupId,
}

/// A comparison's value. Texts are lower-cased: the rule language ignores case.
#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Boolean(bool),
    Text(String),
    List(Vec<String>),
    /// A case-insensitive regular expression (`-match`, `-notMatch`).
    Pattern(Regex),
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Boolean(a), Value::Boolean(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::List(a), Value::List(b)) => a == b,
            (Value::Pattern(a), Value::Pattern(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub subject: Subject,
    pub operator: Operator,
    pub value: Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantifier {
    Any,
    All,
}

/// A parsed rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Expression {
    Compare(Comparison),
    Not(Box<Expression>),
    And(Vec<Expression>),
    Or(Vec<Expression>),
    Quantified {
        collection: Property,
        quantifier: Quantifier,
        condition: Box<Expression>,
    },
}

impl Expression {
    /// Whether `target` satisfies this expression (outside any `-any` / `-all`).
    pub(crate) fn matches(&self, target: &impl RuleTarget) -> bool {
        evaluate::evaluate(self, target, None)
    }

    fn visit(&self, on_comparison: &mut impl FnMut(&Comparison), on_collection: &mut impl FnMut(Property)) {
        match self {
            Expression::Compare(comparison) => on_comparison(comparison),
            Expression::Not(inner) => inner.visit(on_comparison, on_collection),
            Expression::And(parts) | Expression::Or(parts) => {
                for part in parts {
                    part.visit(on_comparison, on_collection);
                }
            }
            Expression::Quantified {
                collection,
                condition,
                ..
            } => {
                on_collection(*collection);
                condition.visit(on_comparison, on_collection);
            }
        }
    }
}

/// Whether a dynamic group's rule is applied (`membershipRuleProcessingState`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RuleProcessingState {
    /// Memberships follow the rule.
    #[default]
    On,
    /// Memberships stay as they are until the rule is turned on again.
    Paused,
}

impl RuleProcessingState {
    /// Graph's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleProcessingState::On => "On",
            RuleProcessingState::Paused => "Paused",
        }
    }

    /// Graph's spelling, without case.
    pub fn parse(text: &str) -> Option<RuleProcessingState> {
        if text.eq_ignore_ascii_case("On") {
            Some(RuleProcessingState::On)
        } else if text.eq_ignore_ascii_case("Paused") {
            Some(RuleProcessingState::Paused)
        } else {
            None
        }
    }
}

impl fmt::Display for RuleProcessingState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A membership rule: its text as given, the parsed expression, the properties it reads and
/// the groups it names (`user.memberOf`).
#[derive(Clone, Debug)]
pub struct MembershipRule {
    text: String,
    expression: Expression,
    reads: PropertySet,
    groups: Vec<Uuid>,
}

impl PartialEq for MembershipRule {
    fn eq(&self, other: &MembershipRule) -> bool {
        self.text == other.text
    }
}

impl MembershipRule {
    /// Parses a rule; the error names the character where it went wrong.
    pub fn parse(text: &str) -> Result<MembershipRule, RuleError> {
        let expression = parse::parse(text)?;
        let reads = std::cell::Cell::new(PropertySet::EMPTY);
        let add = |property: Property| {
            let mut set = reads.get();
            set.insert(property);
            reads.set(set);
        };
        let mut groups = Vec::new();
        expression.visit(
            &mut |comparison| {
                if let Subject::Property(property) = comparison.subject {
                    add(property);
                }
                if comparison.subject == Subject::GroupId {
                    let values: Vec<&String> = match &comparison.value {
                        Value::Text(text) => vec![text],
                        Value::List(list) => list.iter().collect(),
                        _ => Vec::new(),
                    };
                    for value in values {
                        if let Ok(id) = Uuid::parse_str(value) {
                            groups.push(id);
                        }
                    }
                }
            },
            &mut |collection| add(collection),
        );
        let reads = reads.get();
        groups.sort_unstable();
        groups.dedup();
        Ok(MembershipRule {
            text: text.to_string(),
            expression,
            reads,
            groups,
        })
    }

    /// The rule as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    /// The properties the rule reads.
    pub fn reads(&self) -> PropertySet {
        self.reads
    }

    /// The groups named by `user.memberOf -any (group.objectId -in [...])`.
    pub fn referenced_groups(&self) -> &[Uuid] {
        &self.groups
    }

    /// Whether `target` satisfies the rule.
    pub fn matches(&self, target: &impl RuleTarget) -> bool {
        evaluate::evaluate(&self.expression, target, None)
    }
}

#[cfg(test)]
mod tests;
