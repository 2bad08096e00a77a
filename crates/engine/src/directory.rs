//! The directory: users and groups with their properties, direct and group licenses (the
//! intent), memberships, the index of who owns which proxy address, and the opaque directory
//! attributes provisioning clients keep with them. Every change goes through [`Directory`]'s
//! methods, which keep the id, user principal name, membership and proxy address indexes in
//! step; what a change means for licensing (queueing, evaluation) is the engine's business.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::cow::ChunkedVec;
use crate::error::CommandError;
use crate::handles::{unreachable_deleted, GroupRef, SkuRef, UserRef};
use crate::model::{CountryCode, NewUser, ProxyAddress, UserChanges, Uuid};
use crate::plan_set::PlanSetId;
use crate::user_attributes::{
    self, AttributeList, UserAttribute, UserAttributeChanges, UserAttributeValues, ValuePool,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DirectLicense {
    pub(crate) sku: SkuRef,
    pub(crate) disabled_plans: PlanSetId,
    pub(crate) since: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) group: GroupRef,
    pub(crate) since: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) user_principal_name: Box<str>,
    pub(crate) display_name: Box<str>,
    pub(crate) usage_location: Option<CountryCode>,
    pub(crate) proxy_addresses: Box<[ProxyAddress]>,
    /// How many of the user's address hashes other users also have (kept by the proxy index),
    /// so the uniqueness check costs nothing for the many users who share no address.
    pub(crate) shared_addresses: u32,
    pub(crate) account_enabled: bool,
    /// Directory attributes, interned in [`Directory`]'s value pool.
    pub(crate) attributes: AttributeList,
    pub(crate) direct: Vec<DirectLicense>,
    pub(crate) memberships: Vec<Membership>,
}

impl User {
    /// The groups the user is a member of.
    pub(crate) fn groups(&self) -> impl Iterator<Item = GroupRef> + '_ {
        self.memberships.iter().map(|membership| membership.group)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GroupLicense {
    pub(crate) sku: SkuRef,
    pub(crate) disabled_plans: PlanSetId,
}

#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) id: Uuid,
    pub(crate) display_name: String,
    pub(crate) licenses: Vec<GroupLicense>,
    /// Sequence number at which the group last went from no products to some.
    pub(crate) licensed_since: u64,
    pub(crate) members: FxHashSet<UserRef>,
    /// How many times a member was added or removed: a copy of the engine whose count is the
    /// same has the same members (a what-if skips those groups).
    pub(crate) member_changes: u64,
}

impl Group {
    fn add_user(&mut self, user: UserRef) {
        self.members.insert(user);
        self.member_changes += 1;
    }

    fn remove_user(&mut self, user: UserRef) {
        self.members.remove(&user);
        self.member_changes += 1;
    }
}

/// Owners of one proxy address hash.
#[derive(Clone, Debug)]
enum ProxyOwners {
    One(UserRef),
    Many(Vec<UserRef>),
}

fn proxy_hash(normalized: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = rustc_hash::FxHasher::default();
    normalized.hash(&mut hasher);
    hasher.finish()
}

/// An attribute column's slot without a value.
const NO_VALUE: u32 = u32::MAX;

fn validate_user_principal_name(value: &str) -> Result<(), CommandError> {
    let invalid = |reason: &str| CommandError::InvalidUserPrincipalName {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let Some((local, domain)) = value.split_once('@') else {
        return Err(invalid("expected name@domain"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(invalid("the part before @ must have 1 to 64 characters"));
    }
    if domain.is_empty() || domain.contains('@') || !domain.contains('.') {
        return Err(invalid("the part after @ must be a domain such as contoso.com"));
    }
    if value.len() > 256 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("at most 256 characters, without spaces"));
    }
    Ok(())
}

fn check_proxy_addresses(addresses: &[ProxyAddress]) -> Result<(), CommandError> {
    let mut seen = FxHashSet::default();
    for address in addresses {
        if !seen.insert(address.normalized()) {
            return Err(CommandError::InvalidProxyAddress {
                value: address.to_string(),
                reason: "listed twice for the same user".to_string(),
            });
        }
    }
    Ok(())
}

fn check_group_display_name(display_name: &str) -> Result<(), CommandError> {
    if display_name.trim().is_empty() {
        return Err(CommandError::InvalidValue {
            field: "displayName",
            reason: "a group needs a display name".to_string(),
        });
    }
    Ok(())
}

/// Users, groups and their indexes. Handles are never reused: a deleted user or group leaves
/// an empty slot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Directory {
    // Copy-on-write ([`crate::cow`]): a copy of the directory (a what-if's) shares every part
    // below until it writes it; users and groups are shared one by one.
    users: ChunkedVec<Option<Arc<User>>>,
    /// The users' [`User::attributes`] again, one dense column per attribute (by
    /// [`UserAttribute::index`], `None` until a user has it): every user slot's value id, or
    /// [`NO_VALUE`] (no value, or a deleted user). The passes over every user (a rule's
    /// attribute columns) read these instead of each user's record.
    attribute_columns: Vec<Option<ChunkedVec<u32>>>,
    user_index: Arc<FxHashMap<Uuid, UserRef>>,
    /// Lower-cased user principal names.
    upn_index: Arc<FxHashMap<Box<str>, UserRef>>,
    groups: ChunkedVec<Option<Arc<Group>>>,
    group_index: Arc<FxHashMap<Uuid, GroupRef>>,
    proxy_owners: Arc<FxHashMap<u64, ProxyOwners>>,
    /// Opaque attributes of users and groups, by object id.
    attributes: Arc<FxHashMap<Uuid, Box<str>>>,
    /// Groups that are members of groups (`crate::nesting`).
    nesting: Arc<crate::nesting::Nesting>,
    /// Every distinct value of the users' directory attributes.
    attribute_values: Arc<ValuePool>,
}

/// Why [`Directory::insert_restored_user`] refused a user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RestoredUserConflict {
    Id,
    PrincipalName,
}

impl Directory {
    /// For [`crate::Engine::copy_cost_by_part`].
    pub(crate) fn copy_cost_by_part(&self) -> Vec<(&'static str, std::time::Duration)> {
        use crate::engine::copy_cost;
        vec![
            ("directory: users", copy_cost(&self.users)),
            ("directory: attribute columns", copy_cost(&self.attribute_columns)),
            ("directory: user index", copy_cost(&self.user_index)),
            ("directory: principal name index", copy_cost(&self.upn_index)),
            ("directory: groups", copy_cost(&self.groups)),
            ("directory: group index", copy_cost(&self.group_index)),
            ("directory: proxy address owners", copy_cost(&self.proxy_owners)),
            ("directory: opaque attributes", copy_cost(&self.attributes)),
            ("directory: nesting", copy_cost(&self.nesting)),
            ("directory: attribute values", copy_cost(&self.attribute_values)),
        ]
    }

    // ----- lookups -------------------------------------------------------------------------

    pub(crate) fn find_user(&self, user_id: Uuid) -> Option<UserRef> {
        self.user_index.get(&user_id).copied()
    }

    pub(crate) fn find_group(&self, group_id: Uuid) -> Option<GroupRef> {
        self.group_index.get(&group_id).copied()
    }

    pub(crate) fn user_ref(&self, user_id: Uuid) -> Result<UserRef, CommandError> {
        self.find_user(user_id)
            .ok_or(CommandError::UnknownUser { user_id })
    }

    pub(crate) fn group_ref(&self, group_id: Uuid) -> Result<GroupRef, CommandError> {
        self.find_group(group_id)
            .ok_or(CommandError::UnknownGroup { group_id })
    }

    /// Makes room for `users` more users in the indexes.
    pub(crate) fn reserve_users(&mut self, users: usize) {
        self.users.reserve(users);
        Arc::make_mut(&mut self.user_index).reserve(users);
        Arc::make_mut(&mut self.upn_index).reserve(users);
        Arc::make_mut(&mut self.proxy_owners).reserve(users);
    }

    /// The user with a user principal name, compared without case.
    pub(crate) fn find_user_by_principal_name(&self, user_principal_name: &str) -> Option<UserRef> {
        self.upn_index
            .get(user_principal_name.to_lowercase().as_str())
            .copied()
    }

    /// Whether a user or group has this id.
    pub(crate) fn contains_object(&self, object_id: Uuid) -> bool {
        self.user_index.contains_key(&object_id) || self.group_index.contains_key(&object_id)
    }

    pub(crate) fn user(&self, user: UserRef) -> &User {
        match &self.users[user.0 as usize] {
            Some(user) => user.as_ref(),
            None => unreachable_deleted(),
        }
    }

    fn user_mut(&mut self, user: UserRef) -> &mut User {
        match &mut self.users[user.0 as usize] {
            Some(user) => Arc::make_mut(user),
            None => unreachable_deleted(),
        }
    }

    pub(crate) fn group(&self, group: GroupRef) -> &Group {
        match &self.groups[group.0 as usize] {
            Some(group) => group.as_ref(),
            None => unreachable_deleted(),
        }
    }

    fn group_mut(&mut self, group: GroupRef) -> &mut Group {
        match &mut self.groups[group.0 as usize] {
            Some(group) => Arc::make_mut(group),
            None => unreachable_deleted(),
        }
    }

    /// A user, `None` once deleted.
    pub(crate) fn user_if_live(&self, user: UserRef) -> Option<&User> {
        self.users.get(user.0 as usize).and_then(Option::as_deref)
    }

    /// A group, `None` once deleted.
    pub(crate) fn group_if_live(&self, group: GroupRef) -> Option<&Group> {
        self.groups.get(group.0 as usize).and_then(Option::as_deref)
    }

    /// Every live user with its handle, in creation order.
    pub(crate) fn users(&self) -> impl Iterator<Item = (UserRef, &User)> + '_ {
        self.users
            .iter()
            .enumerate()
            .filter_map(|(index, user)| Some((UserRef(index as u32), user.as_deref()?)))
    }

    /// Every live group with its handle, in creation order.
    pub(crate) fn groups(&self) -> impl Iterator<Item = (GroupRef, &Group)> + '_ {
        self.groups
            .iter()
            .enumerate()
            .filter_map(|(index, group)| Some((GroupRef(index as u32), group.as_deref()?)))
    }

    /// Every live user with a value of `attribute`, with the value, in creation order (a
    /// dense pass over the attribute's column: the users' records are not read).
    pub(crate) fn users_with_attribute(
        &self,
        attribute: UserAttribute,
    ) -> impl Iterator<Item = (UserRef, user_attributes::ValueId)> + '_ {
        let column = self
            .attribute_columns
            .get(attribute.index())
            .and_then(Option::as_ref);
        column.into_iter().flat_map(|column| {
            column.chunks().enumerate().flat_map(|(chunk, values)| {
                let first = chunk * crate::cow::CHUNK;
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, value)| **value != NO_VALUE)
                    .map(move |(offset, value)| {
                        (
                            UserRef((first + offset) as u32),
                            user_attributes::ValueId::from_raw(*value),
                        )
                    })
            })
        })
    }

    /// Puts a user slot's attributes in the attribute columns (after the slot exists in
    /// `users`): every column covers every slot, the slot's old values are cleared.
    fn set_attribute_columns(
        &mut self,
        user: UserRef,
        attributes: &[(UserAttribute, user_attributes::ValueId)],
    ) {
        let slots = self.users.len();
        let slot = user.0 as usize;
        for column in self.attribute_columns.iter_mut().flatten() {
            while column.len() < slots {
                column.push(NO_VALUE);
            }
            if column[slot] != NO_VALUE {
                column[slot] = NO_VALUE;
            }
        }
        for (attribute, id) in attributes {
            self.set_attribute_column(user, *attribute, Some(*id));
        }
    }

    /// Sets one attribute of a user slot in its column (creating the column, covering every
    /// slot, when it is the first value of the attribute).
    fn set_attribute_column(
        &mut self,
        user: UserRef,
        attribute: UserAttribute,
        id: Option<user_attributes::ValueId>,
    ) {
        let (slots, slot) = (self.users.len(), user.0 as usize);
        let index = attribute.index();
        if self.attribute_columns.len() <= index {
            self.attribute_columns.resize_with(index + 1, || None);
        }
        let raw = id.map_or(NO_VALUE, user_attributes::ValueId::raw);
        let column = match &mut self.attribute_columns[index] {
            Some(column) => column,
            None if raw == NO_VALUE => return,
            empty => empty.insert({
                let mut column = ChunkedVec::default();
                for _ in 0..slots {
                    column.push(NO_VALUE);
                }
                column
            }),
        };
        if column[slot] != raw {
            column[slot] = raw;
        }
    }

    /// How many user slots there are (live users and the empty slots of deleted ones): every
    /// [`UserRef`] is below it.
    pub(crate) fn user_slots(&self) -> usize {
        self.users.len()
    }

    pub(crate) fn user_count(&self) -> usize {
        self.user_index.len()
    }

    pub(crate) fn group_count(&self) -> usize {
        self.group_index.len()
    }

    /// The groups that assign a product.
    pub(crate) fn groups_with_sku(&self, sku: SkuRef) -> Vec<GroupRef> {
        self.groups()
            .filter(|(_, group)| group.licenses.iter().any(|license| license.sku == sku))
            .map(|(group, _)| group)
            .collect()
    }

    /// When a user joined a group (0 when it is not a member).
    pub(crate) fn member_since(&self, user: UserRef, group: GroupRef) -> u64 {
        self.user(user)
            .memberships
            .iter()
            .find(|membership| membership.group == group)
            .map(|membership| membership.since)
            .unwrap_or(0)
    }

    // ----- users ---------------------------------------------------------------------------

    /// Validates a new user: a new id, a valid and unused user principal name, no address twice.
    pub(crate) fn check_new_user(&self, new_user: &NewUser) -> Result<(), CommandError> {
        if self.user_index.contains_key(&new_user.id) {
            return Err(CommandError::DuplicateUserId { user_id: new_user.id });
        }
        validate_user_principal_name(&new_user.user_principal_name)?;
        if self
            .find_user_by_principal_name(&new_user.user_principal_name)
            .is_some()
        {
            return Err(CommandError::DuplicateUserPrincipalName {
                user_principal_name: new_user.user_principal_name.clone(),
            });
        }
        check_proxy_addresses(&new_user.proxy_addresses)?;
        user_attributes::check_values(
            new_user
                .attributes
                .iter()
                .map(|(attribute, value)| (attribute, Some(value))),
        )
    }

    /// Validates changes of a user's properties.
    pub(crate) fn check_user_changes(
        &self,
        user: UserRef,
        changes: &UserChanges,
    ) -> Result<(), CommandError> {
        if let Some(upn) = &changes.user_principal_name {
            validate_user_principal_name(upn)?;
            if let Some(owner) = self.find_user_by_principal_name(upn) {
                if owner != user {
                    return Err(CommandError::DuplicateUserPrincipalName {
                        user_principal_name: upn.clone(),
                    });
                }
            }
        }
        if let Some(addresses) = &changes.proxy_addresses {
            check_proxy_addresses(addresses)?;
        }
        user_attributes::check_values(
            changes
                .attributes
                .iter()
                .map(|(attribute, value)| (attribute, value.as_ref())),
        )
    }

    /// Adds a user checked with [`Directory::check_new_user`] (or restored from an image, its
    /// id and user principal name unused): indexes it and adds it to the groups of its
    /// memberships.
    pub(crate) fn insert_user(&mut self, record: User) -> UserRef {
        let principal_key = record.user_principal_name.to_lowercase().into();
        self.insert_user_with_principal_key(record, principal_key)
    }

    /// [`Directory::insert_user`] with the lower-cased user principal name.
    pub(crate) fn insert_user_with_principal_key(
        &mut self,
        record: User,
        principal_key: Box<str>,
    ) -> UserRef {
        let user = UserRef(self.users.len() as u32);
        for membership in &record.memberships {
            self.group_mut(membership.group).add_user(user);
        }
        Arc::make_mut(&mut self.user_index).insert(record.id, user);
        Arc::make_mut(&mut self.upn_index).insert(principal_key, user);
        let attributes = record.attributes.clone();
        self.users.push(Some(Arc::new(record)));
        self.set_attribute_columns(user, &attributes);
        self.index_proxy_addresses(user);
        user
    }

    /// Inserts a restored user as [`Directory::insert_user_with_principal_key`] does, but
    /// refuses — changing nothing and handing the record back — a user whose id or principal
    /// key is taken, with one probe of each index.
    pub(crate) fn insert_restored_user(
        &mut self,
        record: User,
        principal_key: Box<str>,
    ) -> Result<UserRef, (RestoredUserConflict, User)> {
        use std::collections::hash_map::Entry;
        let user = UserRef(self.users.len() as u32);
        match Arc::make_mut(&mut self.user_index).entry(record.id) {
            Entry::Occupied(_) => return Err((RestoredUserConflict::Id, record)),
            Entry::Vacant(slot) => {
                slot.insert(user);
            }
        }
        match Arc::make_mut(&mut self.upn_index).entry(principal_key) {
            Entry::Occupied(_) => {
                Arc::make_mut(&mut self.user_index).remove(&record.id);
                return Err((RestoredUserConflict::PrincipalName, record));
            }
            Entry::Vacant(slot) => {
                slot.insert(user);
            }
        }
        for membership in &record.memberships {
            self.group_mut(membership.group).members.insert(user);
        }
        let attributes = record.attributes.clone();
        self.users.push(Some(Arc::new(record)));
        self.set_attribute_columns(user, &attributes);
        self.index_proxy_addresses(user);
        Ok(user)
    }

    pub(crate) fn set_user_principal_name(&mut self, user: UserRef, user_principal_name: String) {
        let old_key = self.user(user).user_principal_name.to_lowercase();
        let upn_index = Arc::make_mut(&mut self.upn_index);
        upn_index.remove(old_key.as_str());
        upn_index.insert(user_principal_name.to_lowercase().into(), user);
        self.user_mut(user).user_principal_name = user_principal_name.into();
    }

    pub(crate) fn set_display_name(&mut self, user: UserRef, display_name: String) {
        self.user_mut(user).display_name = display_name.into();
    }

    pub(crate) fn set_account_enabled(&mut self, user: UserRef, enabled: bool) {
        self.user_mut(user).account_enabled = enabled;
    }

    /// Sets a user's usage location; returns whether it changed.
    pub(crate) fn set_usage_location(&mut self, user: UserRef, location: Option<CountryCode>) -> bool {
        if self.user(user).usage_location == location {
            return false;
        }
        self.user_mut(user).usage_location = location;
        true
    }

    pub(crate) fn set_proxy_addresses(&mut self, user: UserRef, addresses: Vec<ProxyAddress>) {
        self.unindex_proxy_addresses(user);
        self.user_mut(user).proxy_addresses = addresses.into();
        self.index_proxy_addresses(user);
    }

    /// A user's direct licenses, to change (nothing is derived from them here).
    pub(crate) fn direct_licenses_mut(&mut self, user: UserRef) -> &mut Vec<DirectLicense> {
        &mut self.user_mut(user).direct
    }

    /// Deletes a user with its memberships, addresses and directory attributes.
    pub(crate) fn delete_user(&mut self, user: UserRef) {
        let memberships = std::mem::take(&mut self.user_mut(user).memberships);
        for membership in memberships {
            self.group_mut(membership.group).remove_user(user);
        }
        self.unindex_proxy_addresses(user);
        if let Some(removed) = self.users[user.0 as usize].take() {
            self.set_attribute_columns(user, &[]);
            Arc::make_mut(&mut self.upn_index).remove(removed.user_principal_name.to_lowercase().as_str());
            Arc::make_mut(&mut self.user_index).remove(&removed.id);
            if self.attributes.contains_key(&removed.id) {
                Arc::make_mut(&mut self.attributes).remove(&removed.id);
            }
        }
    }

    /// Takes a user out of every index (group member lists, user principal names, proxy
    /// addresses) while keeping its slot and id, so that [`Directory::attach_user`] can put a
    /// new version of it in the same place (catching up on another instance's writes).
    pub(crate) fn detach_user(&mut self, user: UserRef) {
        let memberships = self.user(user).memberships.clone();
        for membership in memberships {
            self.group_mut(membership.group).remove_user(user);
        }
        self.unindex_proxy_addresses(user);
        let key = self.user(user).user_principal_name.to_lowercase();
        if self.upn_index.get(key.as_str()) == Some(&user) {
            Arc::make_mut(&mut self.upn_index).remove(key.as_str());
        }
    }

    /// Puts a new version of a user detached with [`Directory::detach_user`] in its slot and
    /// indexes it again (its id stays the same).
    pub(crate) fn attach_user(&mut self, user: UserRef, mut record: User) {
        record.shared_addresses = 0;
        for membership in &record.memberships {
            self.group_mut(membership.group).add_user(user);
        }
        Arc::make_mut(&mut self.upn_index).insert(record.user_principal_name.to_lowercase().into(), user);
        let attributes = record.attributes.clone();
        self.users[user.0 as usize] = Some(Arc::new(record));
        self.set_attribute_columns(user, &attributes);
        self.index_proxy_addresses(user);
    }

    // ----- proxy addresses -----------------------------------------------------------------

    fn address_hashes(&self, user: UserRef) -> Vec<u64> {
        self.user(user)
            .proxy_addresses
            .iter()
            .map(|address| proxy_hash(&address.normalized()))
            .collect()
    }

    fn index_proxy_addresses(&mut self, user: UserRef) {
        for hash in self.address_hashes(user) {
            match Arc::make_mut(&mut self.proxy_owners).get_mut(&hash) {
                None => {
                    Arc::make_mut(&mut self.proxy_owners).insert(hash, ProxyOwners::One(user));
                }
                Some(ProxyOwners::One(other)) => {
                    let other = *other;
                    // Owners in handle order, as a load indexes them, so that an engine answers
                    // the same however it came to its users (loaded, changed, caught up).
                    let owners = if other < user {
                        vec![other, user]
                    } else {
                        vec![user, other]
                    };
                    Arc::make_mut(&mut self.proxy_owners).insert(hash, ProxyOwners::Many(owners));
                    self.user_mut(other).shared_addresses += 1;
                    self.user_mut(user).shared_addresses += 1;
                }
                Some(ProxyOwners::Many(owners)) => {
                    let place = owners.partition_point(|owner| *owner < user);
                    owners.insert(place, user);
                    self.user_mut(user).shared_addresses += 1;
                }
            }
        }
    }

    fn unindex_proxy_addresses(&mut self, user: UserRef) {
        for hash in self.address_hashes(user) {
            let mut no_longer_shared = None;
            let mut removed_from_many = false;
            let remove_entry = match Arc::make_mut(&mut self.proxy_owners).get_mut(&hash) {
                Some(ProxyOwners::One(owner)) => *owner == user,
                Some(ProxyOwners::Many(owners)) => {
                    if let Some(position) = owners.iter().position(|owner| *owner == user) {
                        owners.remove(position);
                        removed_from_many = true;
                    }
                    if owners.len() == 1 {
                        no_longer_shared = Some(owners[0]);
                    }
                    false
                }
                None => false,
            };
            if removed_from_many {
                self.user_mut(user).shared_addresses -= 1;
            }
            if let Some(last) = no_longer_shared {
                Arc::make_mut(&mut self.proxy_owners).insert(hash, ProxyOwners::One(last));
                self.user_mut(last).shared_addresses -= 1;
            }
            if remove_entry {
                Arc::make_mut(&mut self.proxy_owners).remove(&hash);
            }
        }
    }

    /// Users who have a (normalized) proxy address, from the proxy index (hash, then an exact
    /// check), never from a scan of every user.
    pub(crate) fn users_with_address(&self, normalized: &str) -> Vec<UserRef> {
        let owners: Vec<UserRef> = match self.proxy_owners.get(&proxy_hash(normalized)) {
            Some(ProxyOwners::Many(owners)) => owners.clone(),
            Some(ProxyOwners::One(owner)) => vec![*owner],
            None => Vec::new(),
        };
        owners
            .into_iter()
            .filter(|owner| {
                self.user(*owner)
                    .proxy_addresses
                    .iter()
                    .any(|address| address.normalized() == normalized)
            })
            .collect()
    }

    /// The first of the user's proxy addresses that another user also has (compared exactly,
    /// not only by hash), with those other users.
    pub(crate) fn shared_proxy_address(&self, user: UserRef) -> Option<(String, Vec<UserRef>)> {
        if self.user(user).shared_addresses == 0 {
            return None;
        }
        for address in self.user(user).proxy_addresses.iter() {
            let normalized = address.normalized();
            if let Some(ProxyOwners::Many(owners)) = self.proxy_owners.get(&proxy_hash(&normalized)) {
                let others: Vec<UserRef> = owners
                    .iter()
                    .copied()
                    .filter(|other| *other != user)
                    .filter(|other| {
                        self.user(*other)
                            .proxy_addresses
                            .iter()
                            .any(|candidate| candidate.normalized() == normalized)
                    })
                    .collect();
                if !others.is_empty() {
                    return Some((normalized, others));
                }
            }
        }
        None
    }

    /// Users with an address hash in common with the user, sorted.
    pub(crate) fn users_sharing_addresses(&self, user: UserRef) -> Vec<UserRef> {
        let mut others = Vec::new();
        for address in self.user(user).proxy_addresses.iter() {
            if let Some(ProxyOwners::Many(owners)) = self.proxy_owners.get(&proxy_hash(&address.normalized()))
            {
                others.extend(owners.iter().copied().filter(|other| *other != user));
            }
        }
        others.sort();
        others.dedup();
        others
    }

    // ----- groups --------------------------------------------------------------------------

    /// Validates a new group: a new id and a display name.
    pub(crate) fn check_new_group(&self, group_id: Uuid, display_name: &str) -> Result<(), CommandError> {
        if self.group_index.contains_key(&group_id) {
            return Err(CommandError::DuplicateGroupId { group_id });
        }
        check_group_display_name(display_name)
    }

    /// Validates a group's new display name.
    pub(crate) fn check_group_rename(&self, display_name: &str) -> Result<(), CommandError> {
        check_group_display_name(display_name)
    }

    /// Adds a group checked with [`Directory::check_new_group`] (or restored from an image, its
    /// id unused), without members.
    pub(crate) fn insert_group(
        &mut self,
        group_id: Uuid,
        display_name: String,
        licenses: Vec<GroupLicense>,
        licensed_since: u64,
    ) -> GroupRef {
        let group = GroupRef(self.groups.len() as u32);
        self.groups.push(Some(Arc::new(Group {
            id: group_id,
            display_name,
            licenses,
            licensed_since,
            members: FxHashSet::default(),
            member_changes: 0,
        })));
        Arc::make_mut(&mut self.group_index).insert(group_id, group);
        group
    }

    pub(crate) fn rename_group(&mut self, group: GroupRef, display_name: String) {
        self.group_mut(group).display_name = display_name;
    }

    /// Replaces a group's licenses; `now` becomes its `licensed_since` when it goes from no
    /// products to some.
    pub(crate) fn set_group_licenses(&mut self, group: GroupRef, licenses: Vec<GroupLicense>, now: u64) {
        let record = self.group_mut(group);
        if record.licenses.is_empty() && !licenses.is_empty() {
            record.licensed_since = now;
        }
        record.licenses = licenses;
    }

    /// Replaces a group's properties and licenses as stored (catching up on another instance's
    /// writes; its members stay as they are).
    pub(crate) fn restore_group_fields(
        &mut self,
        group: GroupRef,
        display_name: String,
        licenses: Vec<GroupLicense>,
        licensed_since: u64,
    ) {
        let record = self.group_mut(group);
        record.display_name = display_name;
        record.licenses = licenses;
        record.licensed_since = licensed_since;
    }

    /// Deletes a group with its memberships and directory attributes.
    pub(crate) fn delete_group(&mut self, group: GroupRef) {
        let members: Vec<UserRef> = self.group(group).members.iter().copied().collect();
        for member in members {
            self.user_mut(member).memberships.retain(|m| m.group != group);
        }
        Arc::make_mut(&mut self.nesting).remove_group(group);
        if let Some(removed) = self.groups[group.0 as usize].take() {
            Arc::make_mut(&mut self.group_index).remove(&removed.id);
            if self.attributes.contains_key(&removed.id) {
                Arc::make_mut(&mut self.attributes).remove(&removed.id);
            }
        }
    }

    pub(crate) fn is_member(&self, group: GroupRef, user: UserRef) -> bool {
        self.group(group).members.contains(&user)
    }

    pub(crate) fn add_member(&mut self, group: GroupRef, user: UserRef, since: u64) {
        self.group_mut(group).add_user(user);
        self.user_mut(user).memberships.push(Membership { group, since });
    }

    pub(crate) fn remove_member(&mut self, group: GroupRef, user: UserRef) {
        self.group_mut(group).remove_user(user);
        self.user_mut(user).memberships.retain(|m| m.group != group);
    }

    /// The nesting edges between groups.
    pub(crate) fn nesting(&self) -> &crate::nesting::Nesting {
        &self.nesting
    }

    pub(crate) fn nesting_mut(&mut self) -> &mut crate::nesting::Nesting {
        Arc::make_mut(&mut self.nesting)
    }

    // ----- directory attributes ------------------------------------------------------------

    /// Validates attributes for a user or group.
    pub(crate) fn check_attributes(
        &self,
        object_id: Uuid,
        attributes: Option<&str>,
    ) -> Result<(), CommandError> {
        if !self.contains_object(object_id) {
            return Err(CommandError::UnknownUser { user_id: object_id });
        }
        if let Some(text) = attributes {
            if text.len() > crate::command::MAX_DIRECTORY_ATTRIBUTES_BYTES {
                return Err(CommandError::InvalidValue {
                    field: "directory attributes",
                    reason: format!(
                        "{} bytes, more than the {} a user or group can keep",
                        text.len(),
                        crate::command::MAX_DIRECTORY_ATTRIBUTES_BYTES
                    ),
                });
            }
        }
        Ok(())
    }

    /// Sets or clears the attributes of a user or group; returns whether it had some.
    pub(crate) fn set_attributes(&mut self, object_id: Uuid, attributes: Option<String>) -> bool {
        match attributes {
            Some(text) => Arc::make_mut(&mut self.attributes)
                .insert(object_id, text.into())
                .is_some(),
            None => {
                self.attributes.contains_key(&object_id)
                    && Arc::make_mut(&mut self.attributes).remove(&object_id).is_some()
            }
        }
    }

    /// Forgets every object's attributes.
    pub(crate) fn clear_attributes(&mut self) {
        self.attributes = Arc::default();
    }

    /// The attributes a provisioning client keeps with a user or group, if any.
    pub(crate) fn attributes(&self, object_id: Uuid) -> Option<&str> {
        self.attributes.get(&object_id).map(|text| &**text)
    }

    /// Every object's attributes, in no particular order.
    pub(crate) fn all_attributes(&self) -> impl Iterator<Item = (Uuid, &str)> + '_ {
        self.attributes.iter().map(|(id, text)| (*id, &**text))
    }

    // ----- users' directory attributes ------------------------------------------------------

    /// Interns attribute values for a user about to be inserted.
    /// Interns one attribute value (a restore's table of values).
    pub(crate) fn intern_attribute_value(&mut self, value: &str) -> user_attributes::ValueId {
        Arc::make_mut(&mut self.attribute_values).intern(value)
    }

    /// Makes room for `members` more members in a group's member set (a restore that knows
    /// how many are coming).
    pub(crate) fn reserve_group_members(&mut self, group: GroupRef, members: usize) {
        self.group_mut(group).members.reserve(members);
    }

    pub(crate) fn intern_user_attributes(&mut self, values: &UserAttributeValues) -> AttributeList {
        Arc::make_mut(&mut self.attribute_values).intern_all(values)
    }

    /// One attribute of a user.
    pub(crate) fn user_attribute(&self, user: UserRef, attribute: UserAttribute) -> Option<&str> {
        user_attributes::find(&self.user(user).attributes, attribute).map(|id| self.attribute_values.get(id))
    }

    /// Every attribute of a user, as text.
    pub(crate) fn user_attribute_values(&self, user: &User) -> UserAttributeValues {
        self.attribute_values.values_of(&user.attributes)
    }

    /// The value pool (for the rule evaluator: lower-cased values).
    pub(crate) fn attribute_values(&self) -> &ValuePool {
        &self.attribute_values
    }

    /// Applies checked attribute changes; returns the attributes whose value changed.
    pub(crate) fn change_user_attributes(
        &mut self,
        user: UserRef,
        changes: &UserAttributeChanges,
    ) -> Vec<UserAttribute> {
        let mut values: Vec<(UserAttribute, user_attributes::ValueId)> = self.user(user).attributes.to_vec();
        let mut changed = Vec::new();
        for (attribute, value) in changes {
            let position = values.binary_search_by_key(attribute, |(candidate, _)| *candidate);
            let new = value
                .as_deref()
                .map(|text| Arc::make_mut(&mut self.attribute_values).intern(text));
            match (position, new) {
                (Ok(index), Some(id)) => {
                    if values[index].1 != id {
                        values[index].1 = id;
                        changed.push(*attribute);
                    }
                }
                (Ok(index), None) => {
                    values.remove(index);
                    changed.push(*attribute);
                }
                (Err(index), Some(id)) => {
                    values.insert(index, (*attribute, id));
                    changed.push(*attribute);
                }
                (Err(_), None) => {}
            }
        }
        if !changed.is_empty() {
            for attribute in &changed {
                let id = user_attributes::find(&values, *attribute);
                self.set_attribute_column(user, *attribute, id);
            }
            self.user_mut(user).attributes = values.into();
        }
        changed
    }
}
