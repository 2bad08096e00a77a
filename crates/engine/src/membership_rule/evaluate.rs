//! Evaluating a parsed rule against one user: comparisons without case, a missing value
//! (`null`) satisfying only `-eq null`, `-ne` and the negated operators, `-any` / `-all` over
//! the user's proxy addresses and groups.

use std::borrow::Cow;

use super::{Comparison, Expression, Item, Operator, Property, Quantifier, Subject, Value};
use crate::model::Uuid;

/// What a rule reads of a user. Texts are lower-cased.
pub trait RuleTarget {
    /// A single-valued property's value lower-cased, `None` when the user has none.
    fn text(&self, property: Property) -> Option<Cow<'_, str>>;
    fn account_enabled(&self) -> bool;
    /// The user's proxy addresses, lower-cased.
    fn proxy_addresses(&self) -> Vec<String>;
    /// The ids of the groups the user is a member of.
    fn member_of(&self) -> Vec<Uuid>;
}

/// The item `-any` / `-all` is looking at.
#[derive(Clone, Copy)]
pub(super) enum Current<'a> {
    Address(&'a str),
    Group(Uuid),
}

pub(super) fn evaluate(
    expression: &Expression,
    target: &impl RuleTarget,
    current: Option<Current<'_>>,
) -> bool {
    match expression {
        Expression::Compare(comparison) => compare(comparison, target, current),
        Expression::Not(inner) => !evaluate(inner, target, current),
        Expression::And(parts) => parts.iter().all(|part| evaluate(part, target, current)),
        Expression::Or(parts) => parts.iter().any(|part| evaluate(part, target, current)),
        Expression::Quantified {
            collection,
            quantifier,
            condition,
        } => match collection {
            Property::ProxyAddresses => {
                let addresses = target.proxy_addresses();
                let mut items = addresses.iter();
                let test = |address: &String| evaluate(condition, target, Some(Current::Address(address)));
                match quantifier {
                    Quantifier::Any => items.any(test),
                    Quantifier::All => items.all(test),
                }
            }
            _ => {
                let groups = target.member_of();
                let mut items = groups.iter();
                let test = |group: &Uuid| evaluate(condition, target, Some(Current::Group(*group)));
                match quantifier {
                    Quantifier::Any => items.any(test),
                    Quantifier::All => items.all(test),
                }
            }
        },
    }
}

fn compare(comparison: &Comparison, target: &impl RuleTarget, current: Option<Current<'_>>) -> bool {
    let group_text;
    let value: Option<Cow<'_, str>> = match comparison.subject {
        Subject::Property(Property::AccountEnabled) => {
            let enabled = target.account_enabled();
            return match (&comparison.value, comparison.operator) {
                (Value::Boolean(wanted), Operator::Eq) => enabled == *wanted,
                (Value::Boolean(wanted), Operator::Ne) => enabled != *wanted,
                // The parser allows nothing else on a boolean.
                _ => false,
            };
        }
        Subject::Property(property) => target.text(property),
        Subject::Item(Item::ProxyAddress) => match current {
            Some(Current::Address(address)) => Some(Cow::Borrowed(address)),
            _ => None,
        },
        Subject::GroupId => match current {
            Some(Current::Group(group)) => {
                group_text = group.to_string();
                Some(Cow::Borrowed(group_text.as_str()))
            }
            _ => None,
        },
    };
    let value = value.as_deref();
    match comparison.operator {
        Operator::Eq => equals(value, &comparison.value),
        Operator::Ne => !equals(value, &comparison.value),
        Operator::StartsWith => text_test(value, &comparison.value, |a, b| a.starts_with(b)),
        Operator::NotStartsWith => !text_test(value, &comparison.value, |a, b| a.starts_with(b)),
        Operator::EndsWith => text_test(value, &comparison.value, |a, b| a.ends_with(b)),
        Operator::NotEndsWith => !text_test(value, &comparison.value, |a, b| a.ends_with(b)),
        Operator::Contains => text_test(value, &comparison.value, |a, b| a.contains(b)),
        Operator::NotContains => !text_test(value, &comparison.value, |a, b| a.contains(b)),
        Operator::Match => matches_pattern(value, &comparison.value),
        Operator::NotMatch => !matches_pattern(value, &comparison.value),
        Operator::In => in_list(value, &comparison.value),
        Operator::NotIn => !in_list(value, &comparison.value),
    }
}

fn equals(value: Option<&str>, wanted: &Value) -> bool {
    match (value, wanted) {
        (None, Value::Null) => true,
        (Some(_), Value::Null) => false,
        (Some(value), Value::Text(text)) => value == text,
        _ => false,
    }
}

fn text_test(value: Option<&str>, wanted: &Value, test: impl Fn(&str, &str) -> bool) -> bool {
    match (value, wanted) {
        (Some(value), Value::Text(text)) => test(value, text),
        _ => false,
    }
}

fn matches_pattern(value: Option<&str>, wanted: &Value) -> bool {
    match (value, wanted) {
        (Some(value), Value::Pattern(pattern)) => pattern.is_match(value),
        _ => false,
    }
}

fn in_list(value: Option<&str>, wanted: &Value) -> bool {
    match (value, wanted) {
        (Some(value), Value::List(list)) => list.iter().any(|item| item == value),
        _ => false,
    }
}
