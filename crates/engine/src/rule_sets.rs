//! Membership rules evaluated over every user at once: a rule's result is a set of users (one
//! bit per user slot) built from its comparisons, each evaluated once per distinct attribute
//! value rather than once per user.
//!
//! The directory interns attribute values (a tenant has a few thousand distinct values per
//! attribute), so an attribute's users are grouped by lower-cased value once (a column), and a
//! comparison such as `user.jobTitle -startsWith "SDE"` tests each distinct value and takes the
//! users of those that pass. `-and`, `-or` and `-not` are word-wide operations on the sets. The
//! semantics are the per-user evaluator's ([`crate::membership_rule`]): the positive operators
//! never hold on a missing value (`null`), the negated ones are the complement of the positive
//! ones among live users, `-eq null` holds on users without the attribute. What has no column
//! (user principal name, display name, object id, usage location, proxy addresses,
//! `memberOf -all` and other `memberOf` conditions than `group.objectId -in [...]`) is evaluated
//! per user with the per-user evaluator, so every rule is exact; `user.memberOf -any
//! (group.objectId -in [...])` is the union of the named groups' members.

use rustc_hash::FxHashMap;

use crate::engine::Engine;
use crate::handles::UserRef;
use crate::membership_rule::{Comparison, Expression, Operator, Property, Quantifier, Subject, Value};
use crate::model::Uuid;
use crate::user_attributes::UserAttribute;

/// A set of users: one bit per user slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserSet {
    words: Vec<u64>,
}

impl UserSet {
    fn empty(slots: usize) -> UserSet {
        UserSet {
            words: vec![0; slots.div_ceil(64)],
        }
    }

    fn insert(&mut self, slot: u32) {
        let slot = slot as usize;
        self.words[slot >> 6] |= 1 << (slot & 63);
    }

    pub(crate) fn contains(&self, user: UserRef) -> bool {
        let slot = user.0 as usize;
        self.words
            .get(slot >> 6)
            .is_some_and(|word| (word >> (slot & 63)) & 1 == 1)
    }

    fn intersect(&mut self, other: &UserSet) {
        for (word, other) in self.words.iter_mut().zip(&other.words) {
            *word &= other;
        }
    }

    fn unite(&mut self, other: &UserSet) {
        for (word, other) in self.words.iter_mut().zip(&other.words) {
            *word |= other;
        }
    }

    /// The users of `within` not in this set.
    fn complement_within(&mut self, within: &UserSet) {
        for (word, within) in self.words.iter_mut().zip(&within.words) {
            *word = !*word & within;
        }
    }

    fn is_empty(&self) -> bool {
        self.words.iter().all(|word| *word == 0)
    }

    /// How many users the set holds.
    pub(crate) fn len(&self) -> usize {
        self.words.iter().map(|word| word.count_ones() as usize).sum()
    }

    /// The users, in handle order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = UserRef> + '_ {
        self.words.iter().enumerate().flat_map(|(index, word)| {
            let mut rest = *word;
            std::iter::from_fn(move || {
                if rest == 0 {
                    return None;
                }
                let bit = rest.trailing_zeros();
                rest &= rest - 1;
                Some(UserRef((index as u32) * 64 + bit))
            })
        })
    }
}

/// One attribute's users grouped by lower-cased value.
struct Column<'a> {
    /// Distinct lower-cased values and the users holding each.
    values: Vec<(&'a str, Vec<u32>)>,
    by_value: FxHashMap<&'a str, usize>,
    /// Users with a value.
    present: UserSet,
}

/// Evaluates rules over every user of an engine as it is now; columns are built on first use
/// and shared by every rule evaluated with the same instance.
pub(crate) struct RuleSets<'a> {
    engine: &'a Engine,
    slots: usize,
    /// Live users (deleted users leave empty slots), built on first use.
    live: Option<UserSet>,
    enabled: Option<UserSet>,
    columns: FxHashMap<UserAttribute, Column<'a>>,
}

impl<'a> RuleSets<'a> {
    pub(crate) fn new(engine: &'a Engine) -> RuleSets<'a> {
        RuleSets {
            engine,
            slots: engine.directory.user_slots(),
            live: None,
            enabled: None,
            columns: FxHashMap::default(),
        }
    }

    fn live(&mut self) -> &UserSet {
        let (engine, slots) = (self.engine, self.slots);
        self.live.get_or_insert_with(|| {
            let mut live = UserSet::empty(slots);
            for (user, _) in engine.directory.users() {
                live.insert(user.0);
            }
            live
        })
    }

    /// The users that satisfy `expression` (a rule's).
    pub(crate) fn members(&mut self, expression: &Expression) -> UserSet {
        match expression {
            Expression::Compare(comparison) => match self.comparison(comparison) {
                Some(set) => set,
                None => self.per_user(expression),
            },
            Expression::Not(inner) => {
                let mut set = self.members(inner);
                set.complement_within(self.live());
                set
            }
            Expression::And(parts) => {
                let Some((first, rest)) = parts.split_first() else {
                    return self.live().clone();
                };
                let mut set = self.members(first);
                for part in rest {
                    if set.is_empty() {
                        break;
                    }
                    let part = self.members(part);
                    set.intersect(&part);
                }
                set
            }
            Expression::Or(parts) => {
                let mut set = UserSet::empty(self.slots);
                for part in parts {
                    let part = self.members(part);
                    set.unite(&part);
                }
                set
            }
            Expression::Quantified { .. } => match self.member_of_any(expression) {
                Some(set) => set,
                None => self.per_user(expression),
            },
        }
    }

    /// The per-user evaluator on every live user.
    fn per_user(&self, expression: &Expression) -> UserSet {
        let mut set = UserSet::empty(self.slots);
        for (user, _) in self.engine.directory.users() {
            if expression.matches(&self.engine.rule_target(user)) {
                set.insert(user.0);
            }
        }
        set
    }

    /// `user.memberOf -any (group.objectId -in [...])` (or `-eq "..."`): the named groups'
    /// members; `None` for any other quantified expression.
    fn member_of_any(&mut self, expression: &Expression) -> Option<UserSet> {
        let Expression::Quantified {
            collection: Property::MemberOf,
            quantifier: Quantifier::Any,
            condition,
        } = expression
        else {
            return None;
        };
        let Expression::Compare(Comparison {
            subject: Subject::GroupId,
            operator,
            value,
        }) = condition.as_ref()
        else {
            return None;
        };
        let texts: Vec<&String> = match (operator, value) {
            (Operator::Eq, Value::Text(text)) => vec![text],
            (Operator::In, Value::List(list)) => list.iter().collect(),
            _ => return None,
        };
        let mut set = UserSet::empty(self.slots);
        for text in texts {
            // The per-user evaluator compares the group's id written as Uuid's `Display` does.
            let Ok(id) = Uuid::parse_str(text) else {
                continue;
            };
            if id.to_string() != *text {
                continue;
            }
            let Some(group) = self.engine.directory.find_group(id) else {
                continue;
            };
            if let Some(group) = self.engine.directory.group_if_live(group) {
                for member in &group.members {
                    set.insert(member.0);
                }
            }
        }
        set.intersect(self.live());
        Some(set)
    }

    /// A comparison on a directory attribute or on `accountEnabled`; `None` for the others.
    fn comparison(&mut self, comparison: &Comparison) -> Option<UserSet> {
        let attribute = match comparison.subject {
            Subject::Property(Property::Attribute(attribute)) => attribute,
            Subject::Property(Property::AccountEnabled) => return Some(self.account_enabled(comparison)),
            _ => return None,
        };
        let (positive, negated) = match comparison.operator {
            Operator::Eq => (Operator::Eq, false),
            Operator::Ne => (Operator::Eq, true),
            Operator::StartsWith => (Operator::StartsWith, false),
            Operator::NotStartsWith => (Operator::StartsWith, true),
            Operator::EndsWith => (Operator::EndsWith, false),
            Operator::NotEndsWith => (Operator::EndsWith, true),
            Operator::Contains => (Operator::Contains, false),
            Operator::NotContains => (Operator::Contains, true),
            Operator::Match => (Operator::Match, false),
            Operator::NotMatch => (Operator::Match, true),
            Operator::In => (Operator::In, false),
            Operator::NotIn => (Operator::In, true),
        };
        self.build_column(attribute);
        let column = self.columns.get(&attribute)?;
        // `-eq null` holds where the attribute is absent: the complement of those with a value.
        let mut complement = negated;
        let mut set = UserSet::empty(self.slots);
        let take = |set: &mut UserSet, users: &[u32]| {
            for user in users {
                set.insert(*user);
            }
        };
        let test_each = |set: &mut UserSet, test: &dyn Fn(&str) -> bool| {
            for (value, users) in &column.values {
                if test(value) {
                    take(set, users);
                }
            }
        };
        match (positive, &comparison.value) {
            (Operator::Eq, Value::Null) => {
                set = column.present.clone();
                complement = !negated;
            }
            (Operator::Eq, Value::Text(text)) => {
                if let Some(index) = column.by_value.get(text.as_str()) {
                    take(&mut set, &column.values[*index].1);
                }
            }
            (Operator::In, Value::List(list)) => {
                for item in list {
                    if let Some(index) = column.by_value.get(item.as_str()) {
                        take(&mut set, &column.values[*index].1);
                    }
                }
            }
            (Operator::StartsWith, Value::Text(text)) => {
                test_each(&mut set, &|value| value.starts_with(text.as_str()));
            }
            (Operator::EndsWith, Value::Text(text)) => {
                test_each(&mut set, &|value| value.ends_with(text.as_str()));
            }
            (Operator::Contains, Value::Text(text)) => {
                test_each(&mut set, &|value| value.contains(text.as_str()));
            }
            (Operator::Match, Value::Pattern(pattern)) => {
                test_each(&mut set, &|value| pattern.is_match(value));
            }
            // Any other value never holds, as in the per-user evaluator.
            _ => {}
        }
        if complement {
            set.complement_within(self.live());
        }
        Some(set)
    }

    fn account_enabled(&mut self, comparison: &Comparison) -> UserSet {
        let enabled = self.enabled.get_or_insert_with(|| {
            let mut set = UserSet::empty(self.slots);
            for (user, record) in self.engine.directory.users() {
                if record.account_enabled {
                    set.insert(user.0);
                }
            }
            set
        });
        let mut set = enabled.clone();
        match (&comparison.value, comparison.operator) {
            (Value::Boolean(true), Operator::Eq) | (Value::Boolean(false), Operator::Ne) => set,
            (Value::Boolean(false), Operator::Eq) | (Value::Boolean(true), Operator::Ne) => {
                set.complement_within(self.live());
                set
            }
            // The parser allows nothing else on a boolean.
            _ => UserSet::empty(self.slots),
        }
    }

    fn build_column(&mut self, attribute: UserAttribute) {
        if self.columns.contains_key(&attribute) {
            return;
        }
        let engine: &'a Engine = self.engine;
        let pool = engine.directory.attribute_values();
        // Value id -> position in `values` (several ids can share a lower-cased value).
        let mut entry_of: Vec<u32> = vec![u32::MAX; pool.value_count()];
        let mut values: Vec<(&'a str, Vec<u32>)> = Vec::new();
        let mut by_value: FxHashMap<&'a str, usize> = FxHashMap::default();
        let mut present = UserSet::empty(self.slots);
        for (user, id) in engine.directory.users_with_attribute(attribute) {
            let mut entry = entry_of[id.index()];
            if entry == u32::MAX {
                let lower = pool.lowercase(id);
                let position = *by_value.entry(lower).or_insert_with(|| {
                    values.push((lower, Vec::new()));
                    values.len() - 1
                });
                entry = position as u32;
                entry_of[id.index()] = entry;
            }
            values[entry as usize].1.push(user.0);
            present.insert(user.0);
        }
        self.columns.insert(
            attribute,
            Column {
                values,
                by_value,
                present,
            },
        );
    }
}
