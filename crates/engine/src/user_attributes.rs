//! Directory attributes of users (department, job title, company, office, location, employee
//! data, `mail`, `userType`, the fifteen on-premises extension attributes): their names as Graph
//! and the membership rule language spell them, their limits, and the pool that interns their
//! values so a million users share the few thousand distinct strings a tenant has.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::error::CommandError;

/// One directory attribute of a user. `Ord` follows [`UserAttribute::all`].
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserAttribute(u8);

/// The attributes' names as Graph and the rule language spell them, in [`UserAttribute`] order.
const NAMES: [&str; 26] = [
    "department",
    "jobTitle",
    "companyName",
    "officeLocation",
    "city",
    "state",
    "country",
    "employeeId",
    "employeeType",
    "mail",
    "userType",
    "extensionAttribute1",
    "extensionAttribute2",
    "extensionAttribute3",
    "extensionAttribute4",
    "extensionAttribute5",
    "extensionAttribute6",
    "extensionAttribute7",
    "extensionAttribute8",
    "extensionAttribute9",
    "extensionAttribute10",
    "extensionAttribute11",
    "extensionAttribute12",
    "extensionAttribute13",
    "extensionAttribute14",
    "extensionAttribute15",
];

/// The first extension attribute's index.
const FIRST_EXTENSION: u8 = 11;

impl UserAttribute {
    pub const DEPARTMENT: UserAttribute = UserAttribute(0);
    pub const JOB_TITLE: UserAttribute = UserAttribute(1);
    pub const COMPANY_NAME: UserAttribute = UserAttribute(2);
    pub const OFFICE_LOCATION: UserAttribute = UserAttribute(3);
    pub const CITY: UserAttribute = UserAttribute(4);
    pub const STATE: UserAttribute = UserAttribute(5);
    pub const COUNTRY: UserAttribute = UserAttribute(6);
    pub const EMPLOYEE_ID: UserAttribute = UserAttribute(7);
    pub const EMPLOYEE_TYPE: UserAttribute = UserAttribute(8);
    pub const MAIL: UserAttribute = UserAttribute(9);
    pub const USER_TYPE: UserAttribute = UserAttribute(10);

    /// Every attribute, in order (the top-level ones, then `extensionAttribute1`–`15`).
    pub fn all() -> impl Iterator<Item = UserAttribute> {
        (0..NAMES.len() as u8).map(UserAttribute)
    }

    /// The attributes that are properties of a Graph `user` (not extension attributes).
    pub fn top_level() -> impl Iterator<Item = UserAttribute> {
        (0..FIRST_EXTENSION).map(UserAttribute)
    }

    /// `onPremisesExtensionAttributes.extensionAttribute<number>`, `number` in 1..=15.
    pub fn extension(number: u8) -> Option<UserAttribute> {
        (1..=15)
            .contains(&number)
            .then(|| UserAttribute(FIRST_EXTENSION + number - 1))
    }

    /// The extension attribute's number (1..=15), `None` for a top-level attribute.
    pub fn extension_number(self) -> Option<u8> {
        (self.0 >= FIRST_EXTENSION).then(|| self.0 - FIRST_EXTENSION + 1)
    }

    /// The attribute at a position in [`UserAttribute::all`].
    pub(crate) fn from_index(index: u8) -> Option<UserAttribute> {
        (usize::from(index) < NAMES.len()).then_some(UserAttribute(index))
    }

    /// The attribute's position in [`UserAttribute::all`].
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The name as Graph and the rule language spell it (`department`, `extensionAttribute7`).
    pub fn name(self) -> &'static str {
        NAMES[self.0 as usize]
    }

    /// The attribute with this name, compared without case (as the rule language does).
    pub fn from_name(name: &str) -> Option<UserAttribute> {
        NAMES
            .iter()
            .position(|candidate| candidate.eq_ignore_ascii_case(name))
            .map(|index| UserAttribute(index as u8))
    }

    /// The longest value Graph accepts for the attribute, in characters.
    pub fn max_length(self) -> usize {
        match self {
            UserAttribute::EMPLOYEE_ID => 16,
            UserAttribute::DEPARTMENT | UserAttribute::COMPANY_NAME => 64,
            UserAttribute::MAIL => 256,
            attribute if attribute.extension_number().is_some() => 1024,
            _ => 128,
        }
    }

    /// Checks a value for the attribute: 1 to [`UserAttribute::max_length`] characters, no
    /// control character.
    pub fn check_value(self, value: &str) -> Result<(), CommandError> {
        let invalid = |reason: String| CommandError::InvalidValue {
            field: self.name(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid(
                "an empty value is not a value: send null to clear the attribute".to_string(),
            ));
        }
        if value.chars().count() > self.max_length() {
            return Err(invalid(format!("at most {} characters", self.max_length())));
        }
        if value.chars().any(char::is_control) {
            return Err(invalid("control characters are not allowed".to_string()));
        }
        Ok(())
    }
}

impl std::fmt::Display for UserAttribute {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// A user's attribute values, by attribute (only the attributes it has).
pub type UserAttributeValues = BTreeMap<UserAttribute, String>;

/// Changes of a user's attributes: `Some` sets, `None` clears; attributes not listed stay.
pub type UserAttributeChanges = BTreeMap<UserAttribute, Option<String>>;

/// An interned attribute value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ValueId(u32);

impl ValueId {
    /// The id's position in its pool.
    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }

    /// The id as stored in the directory's attribute columns.
    pub(crate) fn raw(self) -> u32 {
        self.0
    }

    /// An id read back from the directory's attribute columns.
    pub(crate) fn from_raw(raw: u32) -> ValueId {
        ValueId(raw)
    }
}

/// A user's attributes as interned values, sorted by attribute.
pub(crate) type AttributeList = Box<[(UserAttribute, ValueId)]>;

/// Every distinct attribute value of a tenant, once, with its lower-cased form (the rule
/// language compares without case). Values are never forgotten: a tenant has few distinct ones.
#[derive(Clone, Debug, Default)]
pub(crate) struct ValuePool {
    index: FxHashMap<Box<str>, ValueId>,
    values: Vec<(Box<str>, Box<str>)>,
}

impl ValuePool {
    pub(crate) fn intern(&mut self, value: &str) -> ValueId {
        if let Some(id) = self.index.get(value) {
            return *id;
        }
        let id = ValueId(self.values.len() as u32);
        self.values.push((value.into(), value.to_lowercase().into()));
        self.index.insert(value.into(), id);
        id
    }

    pub(crate) fn get(&self, id: ValueId) -> &str {
        &self.values[id.0 as usize].0
    }

    /// How many distinct values the pool holds (ids are `0..len`).
    pub(crate) fn value_count(&self) -> usize {
        self.values.len()
    }

    /// The value lower-cased.
    pub(crate) fn lowercase(&self, id: ValueId) -> &str {
        &self.values[id.0 as usize].1
    }

    /// Interns a user's values.
    pub(crate) fn intern_all(&mut self, values: &UserAttributeValues) -> AttributeList {
        values
            .iter()
            .map(|(attribute, value)| (*attribute, self.intern(value)))
            .collect()
    }

    /// The values of a list as text.
    pub(crate) fn values_of(&self, list: &[(UserAttribute, ValueId)]) -> UserAttributeValues {
        list.iter()
            .map(|(attribute, id)| (*attribute, self.get(*id).to_string()))
            .collect()
    }
}

/// The value of one attribute in a list.
pub(crate) fn find(list: &[(UserAttribute, ValueId)], attribute: UserAttribute) -> Option<ValueId> {
    list.binary_search_by_key(&attribute, |(candidate, _)| *candidate)
        .ok()
        .map(|index| list[index].1)
}

/// Checks every value of a new user or of changes.
pub(crate) fn check_values<'a>(
    values: impl IntoIterator<Item = (&'a UserAttribute, Option<&'a String>)>,
) -> Result<(), CommandError> {
    for (attribute, value) in values {
        if let Some(value) = value {
            attribute.check_value(value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NewUser, TenantSettings, Timestamp, UserChanges, Uuid};
    use crate::{Command, Engine};

    #[test]
    fn users_carry_attributes_set_on_creation_changed_cleared_and_checked() {
        let mut engine = Engine::new(TenantSettings::new(Uuid::from_u128(1), "Contoso"));
        let user_id = Uuid::from_u128(10);
        let mut new_user = NewUser::new(user_id, "a@contoso.com");
        new_user
            .attributes
            .insert(UserAttribute::DEPARTMENT, "Sales".to_string());
        new_user
            .attributes
            .insert(UserAttribute::COMPANY_NAME, "Contoso".to_string());
        engine
            .apply(Command::CreateUser(new_user), Timestamp(0))
            .expect("created");
        assert_eq!(
            engine.user_attribute(user_id, UserAttribute::DEPARTMENT),
            Ok(Some("Sales"))
        );
        let changes = |department: Option<&str>| Command::UpdateUser {
            user_id,
            changes: UserChanges {
                attributes: [(UserAttribute::DEPARTMENT, department.map(str::to_string))].into(),
                ..UserChanges::default()
            },
        };
        engine
            .apply(changes(Some("Marketing")), Timestamp(1))
            .expect("changed");
        assert_eq!(
            engine.user_attribute(user_id, UserAttribute::DEPARTMENT),
            Ok(Some("Marketing"))
        );
        assert!(engine.apply(changes(Some("")), Timestamp(2)).is_err());
        assert_eq!(
            engine.user_attribute(user_id, UserAttribute::DEPARTMENT),
            Ok(Some("Marketing")),
            "a refusal changes nothing"
        );
        engine.apply(changes(None), Timestamp(3)).expect("cleared");
        let view = engine.user_view(user_id).expect("view");
        assert_eq!(
            view.attributes,
            [(UserAttribute::COMPANY_NAME, "Contoso".to_string())].into()
        );
        let restored = Engine::from_image(engine.to_image()).expect("restored");
        assert_eq!(restored.user_view(user_id), Ok(view));
    }

    #[test]
    fn names_round_trip_without_case_and_extensions_are_numbered() {
        for attribute in UserAttribute::all() {
            assert_eq!(UserAttribute::from_name(attribute.name()), Some(attribute));
            assert_eq!(
                UserAttribute::from_name(&attribute.name().to_uppercase()),
                Some(attribute)
            );
        }
        assert_eq!(UserAttribute::all().count(), 26);
        assert_eq!(UserAttribute::top_level().count(), 11);
        assert_eq!(
            UserAttribute::extension(15).map(UserAttribute::name),
            Some("extensionAttribute15")
        );
        assert_eq!(UserAttribute::extension(0), None);
        assert_eq!(UserAttribute::extension(16), None);
        assert_eq!(UserAttribute::DEPARTMENT.extension_number(), None);
        assert_eq!(UserAttribute::from_name("manager"), None);
    }

    #[test]
    fn values_are_checked_and_interned_once() {
        assert!(UserAttribute::DEPARTMENT.check_value("Sales").is_ok());
        assert!(UserAttribute::DEPARTMENT.check_value("").is_err());
        assert!(UserAttribute::EMPLOYEE_ID.check_value(&"1".repeat(17)).is_err());
        assert!(UserAttribute::JOB_TITLE.check_value("a\u{7}b").is_err());
        let mut pool = ValuePool::default();
        let first = pool.intern("Sales");
        assert_eq!(pool.intern("Sales"), first);
        assert_ne!(pool.intern("sales"), first);
        assert_eq!(pool.lowercase(first), "sales");
        let list = pool.intern_all(&UserAttributeValues::from([
            (UserAttribute::CITY, "Paris".to_string()),
            (UserAttribute::DEPARTMENT, "Sales".to_string()),
        ]));
        assert_eq!(find(&list, UserAttribute::DEPARTMENT), Some(first));
        assert_eq!(find(&list, UserAttribute::MAIL), None);
    }
}
