//! [`Selection::select`]: the selected properties of an entity as a JSON object, serializing only
//! those. `serde_json::to_value` followed by [`Selection::apply`] gives the same object, but
//! builds every property first (a user has 22, and 15 extension attributes): on a read of one
//! user's license states that was most of the cost of rendering it.

use serde::ser::{Error as _, Impossible, Serialize, SerializeStruct, Serializer};
use serde_json::{Error, Map, Value};

use super::Selection;

impl Selection {
    /// The selected properties of `entity` (and its `@odata.` annotations), as
    /// `self.apply(serde_json::to_value(entity)?)` gives them. A struct's properties that are
    /// not selected are not serialized; any other shape is serialized whole, then trimmed.
    pub fn select<T: Serialize>(&self, entity: &T) -> Result<Value, Error> {
        match entity.serialize(SelectedFields { selection: self }) {
            Ok(value) => Ok(value),
            // Not a struct (or a property failed): the general path, with its own error.
            Err(_) => Ok(self.apply(serde_json::to_value(entity)?)),
        }
    }
}

/// Serializes a struct's selected fields; refuses every other shape (see [`Selection::select`]).
struct SelectedFields<'a> {
    selection: &'a Selection,
}

struct SelectedStruct<'a> {
    selection: &'a Selection,
    object: Map<String, Value>,
}

impl SerializeStruct for SelectedStruct<'_> {
    type Ok = Value;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if key.starts_with("@odata.") || self.selection.includes(key) {
            self.object.insert(key.to_string(), serde_json::to_value(value)?);
        }
        Ok(())
    }

    fn end(self) -> Result<Value, Error> {
        Ok(Value::Object(self.object))
    }
}

fn not_a_struct() -> Error {
    Error::custom("not a struct")
}

macro_rules! refuse {
    ($($method:ident($($argument:ty),*)),* $(,)?) => {
        $(
            fn $method(self, $(_: $argument),*) -> Result<Value, Error> {
                Err(not_a_struct())
            }
        )*
    };
}

impl<'a> Serializer for SelectedFields<'a> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Impossible<Value, Error>;
    type SerializeTuple = Impossible<Value, Error>;
    type SerializeTupleStruct = Impossible<Value, Error>;
    type SerializeTupleVariant = Impossible<Value, Error>;
    type SerializeMap = Impossible<Value, Error>;
    type SerializeStruct = SelectedStruct<'a>;
    type SerializeStructVariant = Impossible<Value, Error>;

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<SelectedStruct<'a>, Error> {
        Ok(SelectedStruct {
            selection: self.selection,
            object: Map::new(),
        })
    }

    refuse!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Value, Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, _: &T) -> Result<Value, Error> {
        Err(not_a_struct())
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Value, Error> {
        Err(not_a_struct())
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct, Error> {
        Err(not_a_struct())
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(not_a_struct())
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(not_a_struct())
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(not_a_struct())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use licensd_api_types::graph;

    use super::super::{parse_select, GROUP_SCHEMA, USER_SCHEMA};
    use super::*;

    fn user() -> graph::User {
        graph::User {
            odata_type: Some("#microsoft.graph.user".to_string()),
            id: uuid::Uuid::from_u128(7),
            display_name: "Adele Vance".to_string(),
            user_principal_name: "adele@contoso.com".to_string(),
            mail: Some("adele@contoso.com".to_string()),
            account_enabled: true,
            usage_location: Some("US".to_string()),
            proxy_addresses: vec!["SMTP:adele@contoso.com".to_string()],
            department: Some("Sales".to_string()),
            ..graph::User::default()
        }
    }

    #[test]
    fn the_selected_properties_are_what_apply_keeps() {
        let user = user();
        for select in [
            None,
            Some("licenseAssignmentStates"),
            Some("id,displayName,mail"),
            Some("onPremisesExtensionAttributes,department,assignedLicenses"),
            Some("assignedPlans,usageLocation,accountEnabled,proxyAddresses"),
        ] {
            let selection = match select {
                Some(text) => parse_select(text, &USER_SCHEMA).expect("a valid $select"),
                None => Selection::default_for(&USER_SCHEMA),
            };
            let whole = selection.apply(serde_json::to_value(&user).expect("serializes"));
            assert_eq!(selection.select(&user).expect("serializes"), whole, "{select:?}");
        }
    }

    #[test]
    fn other_shapes_are_trimmed_whole() {
        let selection = parse_select("id", &GROUP_SCHEMA).expect("a valid $select");
        let map: BTreeMap<&str, u32> = [("id", 1), ("displayName", 2), ("@odata.type", 3)].into();
        assert_eq!(
            selection.select(&map).expect("serializes"),
            serde_json::json!({"id": 1, "@odata.type": 3})
        );
        assert_eq!(selection.select(&5).expect("serializes"), serde_json::json!(5));
    }
}
