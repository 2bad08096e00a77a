//! The engine's users as one dense byte buffer: the form of a persisted engine snapshot that a
//! start turns back into an engine without building a [`UserImage`](crate::image::UserImage)
//! per user, without a GUID look-up per group, product, plan or cause, and without a `String`
//! per field decoded and then copied.
//!
//! [`Engine::dense_users`] writes every live user, in the engine's order, into [`DenseUsers`]:
//! the bytes and the [`DenseUserTables`] they refer to by position — the distinct plan sets
//! (as plan ids), the distinct error causes (as [`CauseImage`]s), the distinct attribute values,
//! and the number of members of each group. Groups and products are named by their position in
//! the image's groups and products ([`Engine::image_without_users`]). Each table entry is
//! resolved once at restore ([`EngineRestorer::add_dense_users`]); a user then costs its few
//! boxed strings, its membership, license and state vectors, and its index inserts (id,
//! principal name, proxy addresses, group member sets, presized from the table).
//!
//! The buffer has two parts, so that a restore reads them on two threads at once: the users,
//! then their states ([`DenseUserTables::state_bytes`] long). A user, all integers
//! little-endian: the id (16 bytes); the user principal name (u32 length and UTF-8 bytes); a
//! flag byte, 1 when the principal-name key (the name lower-cased) differs from the name and
//! follows it; the display name; the usage location (2 letters, zeros for none); the proxy
//! addresses (u32 count, then each); the account-enabled byte; the attributes (u8 count, then
//! each attribute's index (u8) and value position (u32)); the direct licenses (u32 count, then
//! product (u16), disabled plan set (u32), since (u64)); the memberships (u32 count, then group
//! (u32), since (u64)). A user's states, in the second part, in the same order: a u32 count,
//! then each state's product (u16), source (u32: 0 direct, else group position + 1), status
//! (u8), cause (u32: 0 none, else position + 1), disabled plan set (u32), granted plan set (u32:
//! 0 none, else position + 1), since (u64), last updated (i64).
//!
//! The encoding is not versioned here: a store that persists it tags it with its own format
//! number and release, and reads nothing else.

use rustc_hash::FxHashMap;

use crate::directory::{DirectLicense, Membership, User};
use crate::image::{CauseImage, EngineRestorer, RestoreError, TenantImage};
use crate::model::{AssignmentStatus, CountryCode, ProxyAddress, Uuid};
use crate::plan_set::PlanSetId;
use crate::states::{sort_records, StateRecord};
use crate::user_attributes::{UserAttribute, ValueId};
use crate::CauseId;
use crate::{Engine, GroupRef, SkuRef, Source};

/// What the users of a [`DenseUsers`] buffer name by position.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DenseUserTables {
    /// The distinct plan sets of the users' licenses and states, as plan ids.
    pub plan_sets: Vec<Vec<Uuid>>,
    /// The distinct error causes of the users' states.
    pub causes: Vec<CauseImage>,
    /// The distinct values of the users' directory attributes.
    pub attribute_values: Vec<String>,
    /// Members of each group, by position among the image's groups.
    pub group_members: Vec<u32>,
    /// How many users the buffer holds.
    pub users: u64,
    /// The length of the buffer's second part, the users' states (the first is the users).
    pub state_bytes: u64,
}

/// Every live user of an engine, densely encoded (module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DenseUsers {
    pub tables: DenseUserTables,
    pub bytes: Vec<u8>,
}

const STATUSES: [AssignmentStatus; 4] = [
    AssignmentStatus::Active,
    AssignmentStatus::ActiveWithError,
    AssignmentStatus::Disabled,
    AssignmentStatus::Error,
];

fn status_byte(status: AssignmentStatus) -> u8 {
    match status {
        AssignmentStatus::Active => 0,
        AssignmentStatus::ActiveWithError => 1,
        AssignmentStatus::Disabled => 2,
        AssignmentStatus::Error => 3,
    }
}

/// Appends the parts of a user to the buffer.
struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.0.push(value);
    }
    fn u16(&mut self, value: u16) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn i64(&mut self, value: i64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    fn count(&mut self, count: usize) {
        self.u32(count as u32);
    }
    fn str(&mut self, text: &str) {
        self.count(text.len());
        self.0.extend_from_slice(text.as_bytes());
    }
}

/// Positions given to the distinct values of one kind, in first-seen order.
struct Positions<K> {
    of: FxHashMap<K, u32>,
    order: Vec<K>,
}

impl<K: std::hash::Hash + Eq + Copy> Positions<K> {
    fn new() -> Self {
        Positions {
            of: FxHashMap::default(),
            order: Vec::new(),
        }
    }

    fn position(&mut self, key: K) -> u32 {
        let next = self.order.len() as u32;
        let position = *self.of.entry(key).or_insert(next);
        if position == next {
            self.order.push(key);
        }
        position
    }
}

impl Engine {
    /// The tenant's image without its users (settings, catalog, groups, queue, directory
    /// attributes, nesting edges): with [`Engine::dense_users`], a whole snapshot.
    pub fn image_without_users(&self) -> TenantImage {
        TenantImage {
            settings: self.settings.clone(),
            clock: self.clock,
            service_plans: self.service_plan_images(),
            skus: self
                .catalog
                .skus()
                .map(|(_, sku)| self.sku_definition_of(sku))
                .collect(),
            groups: self
                .directory
                .groups()
                .map(|(_, group)| self.group_image_of(group))
                .collect(),
            users: Vec::new(),
            queue: self.queued_user_ids(),
            directory_attributes: self.directory_attribute_images(),
            group_nestings: self.nesting_images(),
        }
    }

    /// Every live user, in the engine's order, densely encoded (module docs).
    pub fn dense_users(&self) -> DenseUsers {
        // Group handle → position among the live groups.
        let mut group_positions: Vec<u32> = Vec::new();
        let mut group_members: Vec<u32> = Vec::new();
        for (position, (group, _)) in self.directory.groups().enumerate() {
            let slot = group.0 as usize;
            if group_positions.len() <= slot {
                group_positions.resize(slot + 1, u32::MAX);
            }
            group_positions[slot] = position as u32;
            group_members.push(0);
        }
        let group_position = |group: GroupRef| group_positions[group.0 as usize];
        let mut plan_sets: Positions<PlanSetId> = Positions::new();
        let mut causes: Positions<CauseId> = Positions::new();
        let mut values: Positions<ValueId> = Positions::new();
        let mut bytes = Vec::with_capacity(self.directory.user_count() * 128);
        let mut state_bytes = Vec::with_capacity(self.directory.user_count() * 96);
        let mut users = 0u64;
        let mut out = Writer(&mut bytes);
        let mut state_out = Writer(&mut state_bytes);
        for (user_ref, user) in self.directory.users() {
            users += 1;
            out.0.extend_from_slice(user.id.as_bytes());
            out.str(&user.user_principal_name);
            let key = user.user_principal_name.to_lowercase();
            if key.as_str() == &*user.user_principal_name {
                out.u8(0);
            } else {
                out.u8(1);
                out.str(&key);
            }
            out.str(&user.display_name);
            out.0
                .extend_from_slice(&user.usage_location.map_or([0, 0], |location| location.bytes()));
            out.count(user.proxy_addresses.len());
            for address in user.proxy_addresses.iter() {
                out.str(address.as_str());
            }
            out.u8(u8::from(user.account_enabled));
            out.u8(user.attributes.len() as u8);
            for (attribute, value) in user.attributes.iter() {
                out.u8(attribute.index() as u8);
                out.u32(values.position(*value));
            }
            out.count(user.direct.len());
            for license in &user.direct {
                out.u16(license.sku.0);
                out.u32(plan_sets.position(license.disabled_plans));
                out.u64(license.since);
            }
            out.count(user.memberships.len());
            for membership in &user.memberships {
                let position = group_position(membership.group);
                group_members[position as usize] += 1;
                out.u32(position);
                out.u64(membership.since);
            }
            let states = self.states.of(user_ref);
            state_out.count(states.len());
            for state in states {
                state_out.u16(state.sku.0);
                state_out.u32(match state.source {
                    Source::Direct => 0,
                    Source::Group(group) => group_position(group) + 1,
                });
                state_out.u8(status_byte(state.status));
                state_out.u32(state.cause.map_or(0, |cause| causes.position(cause) + 1));
                state_out.u32(plan_sets.position(state.disabled_plans));
                state_out.u32(
                    state
                        .granted_plans
                        .map_or(0, |granted| plan_sets.position(granted) + 1),
                );
                state_out.u64(state.since);
                state_out.i64(state.last_updated.0);
            }
        }
        let state_length = state_bytes.len() as u64;
        bytes.extend_from_slice(&state_bytes);
        DenseUsers {
            tables: DenseUserTables {
                plan_sets: plan_sets
                    .order
                    .iter()
                    .map(|set| self.plan_id_list(self.plan_sets.get(*set)))
                    .collect(),
                causes: causes
                    .order
                    .iter()
                    .map(|cause| self.cause_image(self.causes.get(*cause)))
                    .collect(),
                attribute_values: values
                    .order
                    .iter()
                    .map(|value| self.directory.attribute_values().get(*value).to_string())
                    .collect(),
                group_members,
                users,
                state_bytes: state_length,
            },
            bytes,
        }
    }
}

/// Reads the parts of users from a buffer; every read is checked against its end.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

fn cut_short() -> RestoreError {
    RestoreError::Invalid("the dense user image ends inside a user".to_string())
}

fn invalid(what: impl std::fmt::Display) -> RestoreError {
    RestoreError::Invalid(format!("the dense user image is damaged: {what}"))
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], RestoreError> {
        let end = self.at.checked_add(count).ok_or_else(cut_short)?;
        let taken = self.bytes.get(self.at..end).ok_or_else(cut_short)?;
        self.at = end;
        Ok(taken)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], RestoreError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }
    fn u8(&mut self) -> Result<u8, RestoreError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, RestoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, RestoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, RestoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn i64(&mut self) -> Result<i64, RestoreError> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    /// A count of following items, each at least `item_bytes` long (so that a damaged count
    /// cannot reserve more than the buffer holds).
    fn count(&mut self, item_bytes: usize) -> Result<usize, RestoreError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(item_bytes) > self.bytes.len() - self.at {
            return Err(cut_short());
        }
        Ok(count)
    }
    fn str(&mut self) -> Result<&'a str, RestoreError> {
        let length = self.u32()? as usize;
        std::str::from_utf8(self.take(length)?).map_err(|_| invalid("a text is not UTF-8"))
    }
}

/// The tables of a [`DenseUserTables`] resolved in the engine being restored.
struct Resolved {
    plan_sets: Vec<PlanSetId>,
    /// Each cause, and whether it named an assignment of a group that no longer exists (then
    /// it is restored again for each state, from the state's own source).
    causes: Vec<(CauseId, bool)>,
    values: Vec<ValueId>,
    groups: Vec<GroupRef>,
    skus: usize,
}

fn at<T: Copy>(table: &[T], position: u32, what: &str) -> Result<T, RestoreError> {
    table
        .get(position as usize)
        .copied()
        .ok_or_else(|| invalid(format_args!("{what} {position} is not in its table")))
}

/// Names the dense image in a [`RestoreError`] raised by a table entry.
struct TableReferrer(&'static str);

impl std::fmt::Display for TableReferrer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "the {} of the dense user image", self.0)
    }
}

impl EngineRestorer {
    /// Restores the users of a dense buffer ([`Engine::dense_users`] of an engine whose
    /// products and groups are those this restorer started from, in the same order), after
    /// those of earlier calls. The users (directory, indexes, member sets) are restored on this
    /// thread while a second one restores their states from the buffer's second part (on this
    /// thread too when no second can be had).
    pub fn add_dense_users(&mut self, tables: &DenseUserTables, bytes: &[u8]) -> Result<(), RestoreError> {
        let engine = &mut self.engine;
        let groups: Vec<GroupRef> = engine.directory.groups().map(|(group, _)| group).collect();
        if groups.len() != tables.group_members.len() {
            return Err(invalid(format_args!(
                "{} groups counted, the engine has {}",
                tables.group_members.len(),
                groups.len()
            )));
        }
        for (group, members) in groups.iter().zip(&tables.group_members) {
            engine.directory.reserve_group_members(*group, *members as usize);
        }
        let mut plan_sets = Vec::with_capacity(tables.plan_sets.len());
        for plans in &tables.plan_sets {
            let set = engine.resolve_plans(plans, &TableReferrer("plan sets"))?;
            plan_sets.push(engine.plan_sets.intern(set));
        }
        let mut causes = Vec::with_capacity(tables.causes.len());
        for cause in &tables.causes {
            let mut named_missing_group = false;
            let restored = engine.restore_cause(
                cause,
                Source::Direct,
                &TableReferrer("causes"),
                &mut named_missing_group,
            )?;
            causes.push((engine.causes.intern(restored), named_missing_group));
        }
        let values = tables
            .attribute_values
            .iter()
            .map(|value| engine.directory.intern_attribute_value(value))
            .collect();
        let resolved = Resolved {
            plan_sets,
            causes,
            values,
            groups,
            skus: engine.catalog.sku_count(),
        };
        let state_length = usize::try_from(tables.state_bytes)
            .ok()
            .filter(|length| *length <= bytes.len())
            .ok_or_else(cut_short)?;
        let (user_bytes, state_bytes) = bytes.split_at(bytes.len() - state_length);
        let users = usize::try_from(tables.users).unwrap_or(usize::MAX);
        engine.reserve_users(users.min(user_bytes.len() / 16));
        let first = engine.directory.user_slots();
        // Disjoint parts of the engine: the directory and the queue on this thread, the states
        // on a second one.
        let directory = &mut engine.directory;
        let queue = &mut engine.queue;
        let states = &mut engine.states;
        let interned_causes = &engine.causes;
        let split = std::thread::scope(|scope| {
            let states_thread = std::thread::Builder::new()
                .name("licensd-restore-states".to_string())
                .spawn_scoped(scope, || {
                    restore_dense_states(
                        states,
                        interned_causes,
                        state_bytes,
                        &resolved,
                        first,
                        tables.users,
                    )
                });
            match states_thread {
                Ok(thread) => {
                    let users_restored =
                        restore_dense_users(directory, queue, user_bytes, &resolved, tables.users);
                    let stale = thread
                        .join()
                        .unwrap_or_else(|_| Err(invalid("the thread restoring the states failed")));
                    Some((users_restored, stale))
                }
                Err(_) => None,
            }
        });
        let (users_restored, stale) = match split {
            Some(results) => results,
            // No second thread: one after the other.
            None => (
                restore_dense_users(
                    &mut engine.directory,
                    &mut engine.queue,
                    user_bytes,
                    &resolved,
                    tables.users,
                ),
                restore_dense_states(
                    &mut engine.states,
                    &engine.causes,
                    state_bytes,
                    &resolved,
                    first,
                    tables.users,
                ),
            ),
        };
        users_restored?;
        let stale = stale?;
        // Causes that named a group that no longer exists: restored from each state's own
        // source, and the user queued (as `restore_cause` does for an image).
        for StaleCause { user, record, cause } in stale {
            let mut records = engine.states.of(user).to_vec();
            let Some(slot) = records.get_mut(record) else {
                return Err(invalid("a stale cause's state"));
            };
            let mut named_missing_group = false;
            let restored = engine.restore_cause(
                &tables.causes[cause],
                slot.source,
                &TableReferrer("causes"),
                &mut named_missing_group,
            )?;
            slot.cause = Some(engine.causes.intern(restored));
            engine.states.replace(user, records, &engine.causes);
            if !self.scratch.stale_causes.contains(&user) {
                self.scratch.stale_causes.push(user);
            }
        }
        Ok(())
    }
}

/// Restores `users` users from the first part of a dense buffer into the directory.
fn restore_dense_users(
    directory: &mut crate::directory::Directory,
    queue: &mut crate::queue::WorkQueue,
    bytes: &[u8],
    resolved: &Resolved,
    users: u64,
) -> Result<(), RestoreError> {
    let mut reader = Reader { bytes, at: 0 };
    for _ in 0..users {
        restore_dense_user(directory, &mut reader, resolved)?;
        queue.add_user();
    }
    if reader.at != bytes.len() {
        return Err(invalid("bytes after the last user"));
    }
    Ok(())
}

/// Restores the states of `users` users, the first of them at slot `first`, from the second
/// part of a dense buffer; returns the states whose cause must be restored again.
fn restore_dense_states(
    states: &mut crate::states::States,
    causes: &crate::states::CauseInterner,
    bytes: &[u8],
    resolved: &Resolved,
    first: usize,
    users: u64,
) -> Result<Vec<StaleCause>, RestoreError> {
    let mut reader = Reader { bytes, at: 0 };
    let mut stale = Vec::new();
    for index in 0..users {
        let user = crate::UserRef((first as u64 + index) as u32);
        let records = read_states(&mut reader, resolved, user, &mut stale)?;
        states.add_user();
        let replaced = states.replace(user, records, causes);
        debug_assert!(replaced.is_empty());
    }
    if reader.at != bytes.len() {
        return Err(invalid("bytes after the last user's states"));
    }
    Ok(stale)
}

/// A state whose cause named an assignment of a group that no longer exists: restored again,
/// from the state's own source, once every user is in.
struct StaleCause {
    user: crate::UserRef,
    /// The state's position among the user's (sorted) states.
    record: usize,
    /// The cause's position in the table.
    cause: usize,
}

/// Reads one user's states, sorted as the engine keeps them.
fn read_states(
    reader: &mut Reader<'_>,
    resolved: &Resolved,
    user: crate::UserRef,
    stale: &mut Vec<StaleCause>,
) -> Result<Vec<StateRecord>, RestoreError> {
    let sku = |raw: u16| -> Result<SkuRef, RestoreError> {
        if usize::from(raw) < resolved.skus {
            Ok(SkuRef(raw))
        } else {
            Err(invalid(format_args!("product {raw}")))
        }
    };
    let state_count = reader.count(35)?;
    let mut states = Vec::with_capacity(state_count);
    let mut stale_causes: Vec<(SkuRef, Source, usize)> = Vec::new();
    for _ in 0..state_count {
        let sku = sku(reader.u16()?)?;
        let source = match reader.u32()? {
            0 => Source::Direct,
            position => Source::Group(at(&resolved.groups, position - 1, "group")?),
        };
        let status = *STATUSES
            .get(usize::from(reader.u8()?))
            .ok_or_else(|| invalid("a state's status"))?;
        let cause = match reader.u32()? {
            0 => None,
            position => {
                let (cause, names_missing_group) = at(&resolved.causes, position - 1, "cause")?;
                if names_missing_group {
                    stale_causes.push((sku, source, position as usize - 1));
                }
                Some(cause)
            }
        };
        let disabled_plans = at(&resolved.plan_sets, reader.u32()?, "plan set")?;
        let granted_plans = match reader.u32()? {
            0 => None,
            position => Some(at(&resolved.plan_sets, position - 1, "plan set")?),
        };
        states.push(StateRecord {
            sku,
            source,
            status,
            cause,
            disabled_plans,
            granted_plans,
            since: reader.u64()?,
            last_updated: crate::model::Timestamp(reader.i64()?),
        });
    }
    sort_records(&mut states);
    for (sku, source, cause) in stale_causes {
        let record = states
            .iter()
            .position(|state| state.sku == sku && state.source == source)
            .ok_or_else(|| invalid("a stale cause's state"))?;
        stale.push(StaleCause { user, record, cause });
    }
    Ok(states)
}

/// Restores one user into the directory (its states are restored apart, [`read_states`]).
fn restore_dense_user(
    directory: &mut crate::directory::Directory,
    reader: &mut Reader<'_>,
    resolved: &Resolved,
) -> Result<(), RestoreError> {
    let id = Uuid::from_bytes(reader.array()?);
    let user_principal_name = reader.str()?;
    let principal_key: Box<str> = match reader.u8()? {
        0 => user_principal_name.into(),
        _ => reader.str()?.into(),
    };
    let display_name = reader.str()?;
    let usage_location = match reader.array::<2>()? {
        [0, 0] => None,
        letters => Some(CountryCode::from_stored(letters).ok_or_else(|| invalid("a usage location"))?),
    };
    let addresses = reader.count(4)?;
    let mut proxy_addresses = Vec::with_capacity(addresses);
    for _ in 0..addresses {
        proxy_addresses.push(ProxyAddress::from_stored(reader.str()?));
    }
    let account_enabled = reader.u8()? != 0;
    let attribute_count = usize::from(reader.u8()?);
    let mut attributes = Vec::with_capacity(attribute_count);
    for _ in 0..attribute_count {
        let attribute = UserAttribute::from_index(reader.u8()?).ok_or_else(|| invalid("an attribute"))?;
        attributes.push((attribute, at(&resolved.values, reader.u32()?, "attribute value")?));
    }
    if !attributes.windows(2).all(|pair| pair[0].0 < pair[1].0) {
        return Err(invalid("a user's attributes are not in order"));
    }
    let licenses = reader.count(14)?;
    let mut direct = Vec::with_capacity(licenses);
    for _ in 0..licenses {
        let raw = reader.u16()?;
        if usize::from(raw) >= resolved.skus {
            return Err(invalid(format_args!("product {raw}")));
        }
        direct.push(DirectLicense {
            sku: SkuRef(raw),
            disabled_plans: at(&resolved.plan_sets, reader.u32()?, "plan set")?,
            since: reader.u64()?,
        });
    }
    let membership_count = reader.count(12)?;
    let mut memberships = Vec::with_capacity(membership_count);
    for _ in 0..membership_count {
        memberships.push(Membership {
            group: at(&resolved.groups, reader.u32()?, "group")?,
            since: reader.u64()?,
        });
    }
    let restored = directory.insert_restored_user(
        User {
            id,
            user_principal_name: user_principal_name.into(),
            display_name: display_name.into(),
            usage_location,
            proxy_addresses: proxy_addresses.into(),
            shared_addresses: 0,
            account_enabled,
            attributes: attributes.into(),
            direct,
            memberships,
        },
        principal_key,
    );
    match restored {
        Ok(_) => Ok(()),
        Err((crate::directory::RestoredUserConflict::Id, record)) => Err(RestoreError::Duplicate {
            what: "user",
            id: record.id,
        }),
        Err((crate::directory::RestoredUserConflict::PrincipalName, record)) => {
            Err(RestoreError::Invalid(format!(
                "userPrincipalName {} is used by two users",
                record.user_principal_name
            )))
        }
    }
}

impl Engine {
    /// Rebuilds an engine from its image without users ([`Engine::image_without_users`]) and
    /// its dense users ([`Engine::dense_users`]): the engine [`Engine::from_image`] builds from
    /// the whole image.
    pub fn from_dense_image(
        head: TenantImage,
        tables: &DenseUserTables,
        bytes: &[u8],
    ) -> Result<Engine, RestoreError> {
        let TenantImage {
            settings,
            clock,
            service_plans,
            skus,
            groups,
            users,
            queue,
            directory_attributes,
            group_nestings,
        } = head;
        if !users.is_empty() {
            return Err(RestoreError::Invalid(
                "an image with users given with dense users".to_string(),
            ));
        }
        let mut restorer = EngineRestorer::new(settings, &service_plans, skus, &groups)?;
        restorer.add_group_nestings(&group_nestings)?;
        restorer.add_dense_users(tables, bytes)?;
        restorer.finish(clock, queue, directory_attributes)
    }
}
