//! Loading a tenant, once for both backends: [`load_tenant`] reads a snapshot of the tenant's
//! tables with shared statements, and `ImageBuilder` turns the rows, in the order of each table,
//! back into the engine's `TenantImage`, so both backends decode exactly alike.

use std::sync::mpsc;

use licensd_engine::image::{
    DirectLicenseImage, EngineRestorer, GroupImage, MembershipImage, PlanList, RestoreError,
    ServicePlanImage, StateImage, TenantImage, UserImage,
};
use licensd_engine::ServicePlanRules;
use licensd_engine::{
    AssignedLicense, Engine, ServicePlanDefinition, SkuDefinition, TenantSettings, Timestamp, Uuid,
};
use rustc_hash::FxHashMap;

use crate::batch::DIRECT_SOURCE_KEY;
use crate::codec::{self, decode_cause, parse_status, PlanDecoder};
use crate::error::StoreError;
use crate::reads::tenant_key_and_version;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// Positions by stored key (products, groups): their keys are handed out from 1 in creation
/// order, so a vector indexed by key finds them without hashing; a key too far beyond the
/// number of entries (not expected) goes to a map.
#[derive(Default)]
struct KeyIndex {
    dense: Vec<Option<usize>>,
    sparse: FxHashMap<i64, usize>,
}

impl KeyIndex {
    fn insert(&mut self, key: i64, position: usize) {
        let limit = 4 * (position + 1) + 1024;
        match usize::try_from(key) {
            Ok(slot) if slot < limit => {
                if self.dense.len() <= slot {
                    self.dense.resize(slot + 1, None);
                }
                self.dense[slot] = Some(position);
            }
            _ => {
                self.sparse.insert(key, position);
            }
        }
    }

    fn get(&self, key: i64) -> Option<usize> {
        match usize::try_from(key).ok().and_then(|slot| self.dense.get(slot)) {
            Some(Some(position)) => Some(*position),
            _ => self.sparse.get(&key).copied(),
        }
    }
}

/// One stored license assignment state as read from a row, before decoding.
pub(crate) struct StateRow<'a> {
    pub(crate) user_key: i64,
    pub(crate) sku_key: i64,
    pub(crate) source_key: i64,
    pub(crate) status: &'a str,
    pub(crate) cause: Option<&'a [u8]>,
    pub(crate) disabled_plans: &'a [u8],
    pub(crate) granted_plans: Option<&'a [u8]>,
    pub(crate) since: i64,
    pub(crate) last_updated: i64,
}

/// Collects a tenant's rows table by table: plans (by position), products (by key) and their
/// plans, groups (by key) and their licenses, users (by key), then their direct licenses and
/// memberships (by user, position), states and the queue (by position).
#[derive(Default)]
pub(crate) struct ImageBuilder {
    service_plans: Vec<ServicePlanImage>,
    plan_rows: Vec<(u32, u32, Uuid)>,
    plan_definitions: FxHashMap<Uuid, ServicePlanDefinition>,
    decoder: PlanDecoder,
    /// Each distinct stored plan bitset decoded once, its list shared by every state with it.
    plan_lists: FxHashMap<Vec<u8>, PlanList>,
    /// The bitset looked up last and its list: neighbouring states mostly share their sets.
    last_plan_list: Option<(Vec<u8>, PlanList)>,
    skus: Vec<SkuDefinition>,
    sku_index: KeyIndex,
    groups: Vec<GroupImage>,
    /// The id of each group of `groups`, kept when the groups move to the restorer.
    group_ids: Vec<Uuid>,
    group_index: KeyIndex,
    users: Vec<UserImage>,
    /// The key of each user of `users`, in key order once [`ImageBuilder::finish_users`] ran.
    user_keys: Vec<i64>,
    /// The id of each user of `user_keys`, kept when the users move out in chunks.
    user_ids: Vec<Uuid>,
    queue: Vec<Uuid>,
    directory_attributes: Vec<(Uuid, String)>,
}

impl ImageBuilder {
    /// Adds the directory attributes of a user or group (rows in object id order).
    pub(crate) fn add_directory_attributes(&mut self, object_id: Uuid, attributes: String) {
        self.directory_attributes.push((object_id, attributes));
    }

    pub(crate) fn add_service_plan(&mut self, number: u32, position: u32, plan: ServicePlanImage) {
        let id = plan.definition.service_plan_id;
        self.plan_rows.push((number, position, id));
        self.plan_definitions.insert(id, plan.definition.clone());
        self.service_plans.push(plan);
    }

    /// Call after the last plan, before any state.
    pub(crate) fn finish_service_plans(&mut self) {
        self.decoder = PlanDecoder::new(&self.plan_rows);
    }

    /// Adds a product whose `service_plans` are filled by [`ImageBuilder::add_sku_plan`].
    pub(crate) fn add_sku(&mut self, sku_key: i64, sku: SkuDefinition) {
        self.sku_index.insert(sku_key, self.skus.len());
        self.skus.push(sku);
    }

    fn sku_index(&self, sku_key: i64, what: &str) -> Result<usize, StoreError> {
        self.sku_index.get(sku_key).ok_or_else(|| {
            StoreError::corrupt(format!("{what} names product key {sku_key}, which is not stored"))
        })
    }

    fn sku_id(&self, sku_key: i64, what: &str) -> Result<Uuid, StoreError> {
        Ok(self.skus[self.sku_index(sku_key, what)?].sku_id)
    }

    pub(crate) fn add_sku_plan(&mut self, sku_key: i64, plan_id: Uuid) -> Result<(), StoreError> {
        let index = self.sku_index(sku_key, "a product's plan")?;
        let definition = self.plan_definitions.get(&plan_id).cloned().ok_or_else(|| {
            StoreError::corrupt(format!("a product lists plan {plan_id}, which is not stored"))
        })?;
        self.skus[index].service_plans.push(definition);
        Ok(())
    }

    /// Adds a group whose `licenses` are filled by [`ImageBuilder::add_group_license`].
    pub(crate) fn add_group(&mut self, group_key: i64, group: GroupImage) {
        self.group_index.insert(group_key, self.groups.len());
        self.group_ids.push(group.id);
        self.groups.push(group);
    }

    fn group_id(&self, group_key: i64, what: &str) -> Result<Uuid, StoreError> {
        let index = self.group_index.get(group_key).ok_or_else(|| {
            StoreError::corrupt(format!("{what} names group key {group_key}, which is not stored"))
        })?;
        Ok(self.group_ids[index])
    }

    pub(crate) fn add_group_license(
        &mut self,
        group_key: i64,
        sku_key: i64,
        disabled_plans: Vec<Uuid>,
    ) -> Result<(), StoreError> {
        let license = AssignedLicense {
            sku_id: self.sku_id(sku_key, "a group license")?,
            disabled_plans,
        };
        let index = self.group_index.get(group_key).ok_or_else(|| {
            StoreError::corrupt(format!(
                "a license of group key {group_key} is stored without the group"
            ))
        })?;
        self.groups[index].licenses.push(license);
        Ok(())
    }

    /// Adds a user without direct licenses, memberships or states, in any order.
    pub(crate) fn add_user(&mut self, user_key: i64, user: UserImage) {
        self.user_keys.push(user_key);
        self.users.push(user);
    }

    pub(crate) fn reserve_users(&mut self, count: usize) {
        self.users.reserve(count);
        self.user_keys.reserve(count);
    }

    /// Puts the users in key order (the engine's order); call after the last user, before
    /// anything that belongs to a user.
    pub(crate) fn finish_users(&mut self) {
        if !self.user_keys.windows(2).all(|pair| pair[0] < pair[1]) {
            let mut order: Vec<usize> = (0..self.users.len()).collect();
            order.sort_unstable_by_key(|index| self.user_keys[*index]);
            let mut users: Vec<Option<UserImage>> =
                std::mem::take(&mut self.users).into_iter().map(Some).collect();
            self.users = order.iter().filter_map(|index| users[*index].take()).collect();
            self.user_keys = order.iter().map(|index| self.user_keys[*index]).collect();
        }
        self.user_ids = self.users.iter().map(|user| user.id).collect();
    }

    /// Takes the users out, in key order, to be completed chunk by chunk ([`UserChunk`]).
    fn take_users(&mut self) -> Vec<UserImage> {
        std::mem::take(&mut self.users)
    }

    pub(crate) fn add_direct_license(
        &mut self,
        chunk: &mut UserChunk<'_>,
        user_key: i64,
        sku_key: i64,
        disabled_plans: Vec<Uuid>,
        since: u64,
    ) -> Result<(), StoreError> {
        let license = DirectLicenseImage {
            license: AssignedLicense {
                sku_id: self.sku_id(sku_key, "a direct license")?,
                disabled_plans,
            },
            since,
        };
        chunk
            .user(user_key, "a direct license")?
            .direct_licenses
            .push(license);
        Ok(())
    }

    pub(crate) fn add_membership(
        &mut self,
        chunk: &mut UserChunk<'_>,
        user_key: i64,
        group_key: i64,
        since: u64,
    ) -> Result<(), StoreError> {
        let membership = MembershipImage {
            group_id: self.group_id(group_key, "a membership")?,
            since,
        };
        chunk.user(user_key, "a membership")?.memberships.push(membership);
        Ok(())
    }

    /// The shared list of a stored plan bitset.
    fn plan_list(&mut self, bitset: &[u8]) -> Result<PlanList, StoreError> {
        if let Some((last, list)) = &self.last_plan_list {
            if last.as_slice() == bitset {
                return Ok(list.clone());
            }
        }
        if let Some(list) = self.plan_lists.get(bitset) {
            let list = list.clone();
            self.last_plan_list = Some((bitset.to_vec(), list.clone()));
            return Ok(list);
        }
        let list: PlanList = self.decoder.decode(bitset)?.into();
        self.plan_lists.insert(bitset.to_vec(), list.clone());
        Ok(list)
    }

    pub(crate) fn add_state(
        &mut self,
        chunk: &mut UserChunk<'_>,
        row: StateRow<'_>,
    ) -> Result<(), StoreError> {
        let what = "a license assignment state";
        let state = StateImage {
            sku_id: self.sku_id(row.sku_key, what)?,
            assigned_by_group: if row.source_key == DIRECT_SOURCE_KEY {
                None
            } else {
                Some(self.group_id(row.source_key, what)?)
            },
            status: parse_status(row.status)?,
            cause: row.cause.map(decode_cause).transpose()?,
            disabled_plans: self.plan_list(row.disabled_plans)?,
            granted_plans: row
                .granted_plans
                .map(|granted| self.plan_list(granted))
                .transpose()?,
            since: logical_time(row.since, "the since of a license assignment state")?,
            last_updated: Timestamp(row.last_updated),
        };
        chunk.user(row.user_key, what)?.states.push(state);
        Ok(())
    }

    pub(crate) fn add_queued(&mut self, user_key: i64) -> Result<(), StoreError> {
        let index = self.user_keys.binary_search(&user_key).map_err(|_| {
            StoreError::corrupt(format!(
                "a queue entry of user key {user_key} is stored without the user"
            ))
        })?;
        self.queue.push(self.user_ids[index]);
        Ok(())
    }

    /// Every user added so far as one chunk, to complete with their rows (a catch-up reads few
    /// users, so one chunk holds them all); call after [`ImageBuilder::finish_users`].
    pub(crate) fn take_all_users(&mut self) -> (Vec<i64>, Vec<UserImage>) {
        (self.user_keys.clone(), self.take_users())
    }

    /// The image of what was read, with `users` completed from [`ImageBuilder::take_all_users`].
    pub(crate) fn finish(self, settings: TenantSettings, clock: u64, users: Vec<UserImage>) -> TenantImage {
        TenantImage {
            settings,
            clock,
            service_plans: self.service_plans,
            skus: self.skus,
            groups: self.groups,
            users,
            queue: self.queue,
            directory_attributes: self.directory_attributes,
            // A catch-up never carries nesting: a change of it reloads the tenant.
            group_nestings: Vec::new(),
        }
    }

    /// The catalog and the groups, for [`Part::Head`].
    fn head(&mut self, settings: TenantSettings, users: usize) -> Part {
        Part::Head {
            settings,
            users,
            service_plans: std::mem::take(&mut self.service_plans),
            skus: self.skus.clone(),
            groups: std::mem::take(&mut self.groups),
        }
    }
}

/// The users of one range of keys, completed with the rows of that range.
pub(crate) struct UserChunk<'a> {
    keys: &'a [i64],
    users: Vec<UserImage>,
    /// The user of the previous row: rows come grouped by user in key order, so most rows
    /// belong to it or to the next one.
    cursor: usize,
}

impl<'a> UserChunk<'a> {
    /// The users of `keys` (in key order, one user per key), to complete with their rows.
    pub(crate) fn new(keys: &'a [i64], users: Vec<UserImage>) -> UserChunk<'a> {
        UserChunk {
            keys,
            users,
            cursor: 0,
        }
    }

    /// The completed users.
    pub(crate) fn into_users(self) -> Vec<UserImage> {
        self.users
    }
}

impl UserChunk<'_> {
    /// The user of a row; `what` names the row for the error when there is none.
    fn user(&mut self, user_key: i64, what: &str) -> Result<&mut UserImage, StoreError> {
        let index = match self.keys.get(self.cursor) {
            Some(key) if *key == user_key => self.cursor,
            _ => match self.keys.get(self.cursor + 1) {
                Some(key) if *key == user_key => self.cursor + 1,
                _ => self.keys.binary_search(&user_key).map_err(|_| {
                    StoreError::corrupt(format!(
                        "{what} of user key {user_key} is stored without the user"
                    ))
                })?,
            },
        };
        self.cursor = index;
        self.users.get_mut(index).ok_or_else(|| {
            StoreError::corrupt(format!(
                "{what} of user key {user_key} is stored without the user"
            ))
        })
    }
}

/// A tenant as [`load_parts`] hands it over: the catalog and groups first, then the users in
/// key order, chunk by chunk.
pub(crate) enum Part {
    Head {
        settings: TenantSettings,
        /// How many users follow.
        users: usize,
        service_plans: Vec<ServicePlanImage>,
        skus: Vec<SkuDefinition>,
        groups: Vec<GroupImage>,
    },
    Users(Vec<UserImage>),
}

/// What follows the users: the clock, the queue and the directory attributes.
pub(crate) struct Tail {
    clock: u64,
    queue: Vec<Uuid>,
    directory_attributes: Vec<(Uuid, String)>,
    group_nestings: Vec<licensd_engine::GroupNestingImage>,
}

/// A stored logical time (`since`, `clock`, versions) back as the engine's unsigned value.
pub(crate) fn logical_time(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} is negative ({value})")))
}

/// An engine logical time as a signed 64-bit column value.
pub(crate) fn logical_time_column(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::corrupt(format!("{what} {value} does not fit in 63 bits")))
}

/// What loading a tenant needs of a backend beyond shared statements.
pub(crate) trait Load: Database {
    /// How the users query ends: SQLite reads users in their table's (GUID) order and the
    /// builder sorts them, PostgreSQL has them sorted by key.
    const USERS_ORDER: &'static str;
}

/// Loads a consistent snapshot of the tenant and the version it reflects, reading each table in
/// the order [`ImageBuilder`] expects.
///
/// `phase` is called with the name of each step as it ends (`"tenant"`, `"catalog"`, `"groups"`,
/// `"users"`, `"direct licenses"`, `"memberships"`, `"states"`, `"queue"`, `"directory
/// attributes"`), so a benchmark can time them.
fn load_parts<D: Load>(
    database: &mut D,
    tenant_id: Uuid,
    chunk_users: usize,
    phase: &mut dyn FnMut(&'static str),
    on_part: &mut dyn FnMut(Part) -> Result<(), StoreError>,
) -> Result<(Tail, u64), StoreError> {
    // One read transaction: the image is a snapshot even while other connections write.
    let mut snapshot = database.begin_snapshot("starting to load a tenant")?;
    let (tenant_key, version) = tenant_key_and_version(&mut snapshot, tenant_id)?;
    let key = [Param::Integer(tenant_key)];
    let settings = snapshot.query_optional(
        "reading the tenant",
        "SELECT display_name, default_usage_location, self_healing, clock, transitive_licensing
         FROM tenants WHERE tenant_key = $1",
        &key,
        |row| {
            Ok((
                TenantSettings {
                    tenant_id,
                    display_name: row.text(0)?.to_string(),
                    default_usage_location: codec::parse_optional_country(row.optional_text(1)?)?,
                    self_healing: row.flag(2)?,
                    transitive_licensing: row.flag(4)?,
                },
                logical_time(row.integer(3)?, "the tenant clock")?,
            ))
        },
    )?;
    let (settings, clock) = settings.ok_or(StoreError::UnknownTenant { tenant_id })?;
    phase("tenant");
    let mut builder = ImageBuilder::default();
    snapshot.for_each_row(
        "reading service plans",
        "SELECT plan_number, position, plan_id, name, display_name, mutually_exclusive_with,
                requires_any_of, unavailable_in, needs_unique_proxy_address
         FROM service_plans WHERE tenant_key = $1 ORDER BY position",
        &key,
        |row| {
            let plan = ServicePlanImage {
                definition: ServicePlanDefinition {
                    service_plan_id: row.id(2)?,
                    service_plan_name: row.text(3)?.to_string(),
                    display_name: row.text(4)?.to_string(),
                },
                rules: ServicePlanRules {
                    mutually_exclusive_with: codec::split_uuids(row.text(5)?)?,
                    requires_any_of: codec::split_uuids(row.text(6)?)?,
                    unavailable_in: codec::split_countries(row.text(7)?)?,
                    needs_unique_proxy_address: row.flag(8)?,
                },
            };
            builder.add_service_plan(plan_number(row.integer(0)?)?, plan_number(row.integer(1)?)?, plan);
            Ok(())
        },
    )?;
    builder.finish_service_plans();
    snapshot.for_each_row(
        "reading products",
        "SELECT sku_key, sku_id, sku_part_number, display_name, applies_to, prepaid_units,
                capability_status
         FROM skus WHERE tenant_key = $1 ORDER BY sku_key",
        &key,
        |row| {
            let sku = SkuDefinition {
                sku_id: row.id(1)?,
                sku_part_number: row.text(2)?.to_string(),
                display_name: row.text(3)?.to_string(),
                applies_to: codec::parse_applies_to(row.text(4)?)?,
                service_plans: Vec::new(),
                prepaid_units: u32::try_from(row.integer(5)?)
                    .map_err(|_| StoreError::corrupt("prepaid units out of range"))?,
                capability_status: codec::parse_capability_status(row.text(6)?)?,
            };
            builder.add_sku(row.integer(0)?, sku);
            Ok(())
        },
    )?;
    snapshot.for_each_row(
        "reading the plans of products",
        "SELECT sku_key, plan_id FROM sku_plans WHERE tenant_key = $1 ORDER BY sku_key, position",
        &key,
        |row| builder.add_sku_plan(row.integer(0)?, row.id(1)?),
    )?;
    phase("catalog");
    snapshot.for_each_row(
        "reading groups",
        "SELECT group_key, group_id, display_name, licensed_since, membership_rule,
                membership_rule_state FROM groups
         WHERE tenant_key = $1 ORDER BY group_key",
        &key,
        |row| {
            let group = GroupImage {
                id: row.id(1)?,
                display_name: row.text(2)?.to_string(),
                licenses: Vec::new(),
                licensed_since: logical_time(row.integer(3)?, "a group's licensed_since")?,
                dynamic_membership: codec::dynamic_membership(row.optional_text(4)?, row.text(5)?)?,
            };
            builder.add_group(row.integer(0)?, group);
            Ok(())
        },
    )?;
    snapshot.for_each_row(
        "reading group licenses",
        "SELECT group_key, sku_key, disabled_plans FROM group_licenses
         WHERE tenant_key = $1 ORDER BY group_key, position",
        &key,
        |row| {
            builder.add_group_license(
                row.integer(0)?,
                row.integer(1)?,
                codec::split_uuids(row.text(2)?)?,
            )
        },
    )?;
    phase("groups");
    let user_count = snapshot.query_optional(
        "counting users",
        "SELECT count(*) FROM users WHERE tenant_key = $1",
        &key,
        |row| row.integer(0),
    )?;
    let user_count = usize::try_from(user_count.unwrap_or(0)).unwrap_or(0);
    builder.reserve_users(user_count);
    on_part(builder.head(settings, user_count))?;
    let users = format!(
        "SELECT user_key, user_id, user_principal_name, display_name, usage_location,
                proxy_addresses, account_enabled, attributes
         FROM users WHERE tenant_key = $1{}",
        D::USERS_ORDER
    );
    snapshot.for_each_row("reading users", &users, &key, |row| {
        let user = crate::catch_up::user_row(row)?;
        builder.add_user(user.key, user.image);
        Ok(())
    })?;
    // The engine's order of users is the order of their keys.
    builder.finish_users();
    phase("users");
    // The users' rows, a range of user keys at a time, each chunk handed over complete.
    let keys = std::mem::take(&mut builder.user_keys);
    let mut users = builder.take_users().into_iter();
    let mut start: usize = 0;
    loop {
        let end = keys.len().min(start.saturating_add(chunk_users.max(1)));
        // The first range starts below every key and the last ends above: a row of a user
        // that is not stored falls in some range and is refused there.
        let low = if start == 0 { i64::MIN } else { keys[start] };
        let high = if end == keys.len() {
            i64::MAX
        } else {
            keys[end] - 1
        };
        let mut chunk = UserChunk {
            keys: &keys[start..end],
            users: users.by_ref().take(end - start).collect(),
            cursor: 0,
        };
        let range = [
            Param::Integer(tenant_key),
            Param::Integer(low),
            Param::Integer(high),
        ];
        snapshot.for_each_row(
            "reading direct licenses",
            "SELECT user_key, sku_key, disabled_plans, since FROM direct_licenses
             WHERE tenant_key = $1 AND user_key BETWEEN $2 AND $3 ORDER BY user_key, position",
            &range,
            |row| {
                builder.add_direct_license(
                    &mut chunk,
                    row.integer(0)?,
                    row.integer(1)?,
                    codec::split_uuids(row.text(2)?)?,
                    logical_time(row.integer(3)?, "a direct license's since")?,
                )
            },
        )?;
        snapshot.for_each_row(
            "reading memberships",
            "SELECT user_key, group_key, since FROM memberships
             WHERE tenant_key = $1 AND user_key BETWEEN $2 AND $3 ORDER BY user_key, position",
            &range,
            |row| {
                builder.add_membership(
                    &mut chunk,
                    row.integer(0)?,
                    row.integer(1)?,
                    logical_time(row.integer(2)?, "a membership's since")?,
                )
            },
        )?;
        snapshot.for_each_row(
            "reading license assignment states",
            "SELECT user_key, sku_key, source_key, status, cause, disabled_plans, granted_plans, since,
                    last_updated
             FROM license_states WHERE tenant_key = $1 AND user_key BETWEEN $2 AND $3
             ORDER BY user_key",
            &range,
            |row| {
                builder.add_state(
                    &mut chunk,
                    StateRow {
                        user_key: row.integer(0)?,
                        sku_key: row.integer(1)?,
                        source_key: row.integer(2)?,
                        status: row.text(3)?,
                        cause: row.optional_bytes(4)?,
                        disabled_plans: row.bytes(5)?,
                        granted_plans: row.optional_bytes(6)?,
                        since: row.integer(7)?,
                        last_updated: row.integer(8)?,
                    },
                )
            },
        )?;
        on_part(Part::Users(chunk.users))?;
        if end == keys.len() {
            break;
        }
        start = end;
    }
    builder.user_keys = keys;
    phase("direct licenses, memberships and states");
    snapshot.for_each_row(
        "reading the work queue",
        "SELECT user_key FROM work_queue WHERE tenant_key = $1 ORDER BY position",
        &key,
        |row| builder.add_queued(row.integer(0)?),
    )?;
    phase("queue");
    snapshot.for_each_row(
        "reading directory attributes",
        "SELECT object_id, attributes FROM directory_attributes WHERE tenant_key = $1 ORDER BY object_id",
        &key,
        |row| {
            builder.add_directory_attributes(row.id(0)?, row.text(1)?.to_string());
            Ok(())
        },
    )?;
    phase("directory attributes");
    let group_nestings = crate::nesting::load(&mut snapshot, tenant_key)?;
    snapshot.commit("ending the load transaction")?;
    let tail = Tail {
        clock,
        queue: std::mem::take(&mut builder.queue),
        directory_attributes: std::mem::take(&mut builder.directory_attributes),
        group_nestings,
    };
    Ok((tail, version))
}

/// Users per chunk of [`load_parts`] unless told otherwise: big enough that the three range queries of a chunk cost
/// little, small enough that the restorer starts early and the chunks in flight stay small.
pub(crate) const CHUNK_USERS: usize = 16_384;

/// Loads a consistent snapshot of the tenant as an image, and the version it reflects.
///
/// `phase` is called with the name of each step as it ends (`"tenant"`, `"catalog"`, `"groups"`,
/// `"users"`, `"direct licenses, memberships and states"`, `"queue"`, `"directory
/// attributes"`), so a benchmark can time them.
pub(crate) fn load_tenant<D: Load>(
    database: &mut D,
    tenant_id: Uuid,
    phase: &mut dyn FnMut(&'static str),
) -> Result<(TenantImage, u64), StoreError> {
    let mut head = None;
    let mut users = Vec::new();
    let (tail, version) = load_parts(database, tenant_id, CHUNK_USERS, phase, &mut |part| {
        match part {
            Part::Head { .. } => head = Some(part),
            Part::Users(chunk) => users.extend(chunk),
        }
        Ok(())
    })?;
    let Some(Part::Head {
        settings,
        users: _,
        service_plans,
        skus,
        groups,
    }) = head
    else {
        return Err(StoreError::corrupt("the load handed over no catalog"));
    };
    let image = TenantImage {
        settings,
        clock: tail.clock,
        service_plans,
        skus,
        groups,
        users,
        queue: tail.queue,
        directory_attributes: tail.directory_attributes,
        group_nestings: tail.group_nestings,
    };
    Ok((image, version))
}

/// Loads a consistent snapshot of the tenant straight into an engine, and the version it
/// reflects: the same rows and decoding as [`load_tenant`] followed by `Engine::from_image`
/// (an [`EngineRestorer`] fed the same parts in the same order), but the engine is rebuilt on
/// a second thread from each chunk of users while the next chunk is read, and no whole image
/// is ever held.
///
/// `phase` is called as for [`load_tenant`], then with `"engine"` when the restorer is done.
pub(crate) fn load_engine<D: Load>(
    database: &mut D,
    tenant_id: Uuid,
    chunk_users: usize,
    phase: &mut dyn FnMut(&'static str),
) -> Result<(Engine, u64), StoreError> {
    std::thread::scope(|scope| {
        // Two chunks in flight at most: the reader runs ahead of the restorer by one chunk.
        let (sender, receiver) = mpsc::sync_channel::<Message>(1);
        let spawned = std::thread::Builder::new()
            .name("licensd-restore".to_string())
            .spawn_scoped(scope, move || restore(receiver));
        let Ok(restorer) = spawned else {
            // No thread to be had: the same parts, restored on this thread after the read.
            let (image, version) = load_tenant(database, tenant_id, phase)?;
            let engine = Engine::from_image(image).map_err(StoreError::Restore)?;
            phase("engine");
            return Ok((engine, version));
        };
        let loaded = load_parts(database, tenant_id, chunk_users, phase, &mut |part| {
            sender
                .send(Message::Part(part))
                .map_err(|_| StoreError::corrupt("the engine restorer stopped"))
        });
        let sent = match loaded {
            Ok((tail, version)) => sender
                .send(Message::Tail(tail))
                .map(|()| version)
                .map_err(|_| StoreError::corrupt("the engine restorer stopped")),
            Err(error) => Err(error),
        };
        drop(sender);
        let restored = restorer
            .join()
            .map_err(|_| StoreError::corrupt("the engine restorer panicked"))?;
        phase("engine");
        // The restorer's own error explains a refused send better than the send's.
        match (restored, sent) {
            (Err(error), _) => Err(StoreError::Restore(error)),
            (Ok(_), Err(error)) => Err(error),
            (Ok(Some(engine)), Ok(version)) => Ok((engine, version)),
            (Ok(None), Ok(_)) => Err(StoreError::corrupt("the engine restorer received no tenant")),
        }
    })
}

/// What the reader sends the restorer thread.
enum Message {
    Part(Part),
    Tail(Tail),
}

/// The restorer thread: an engine from the parts received; `None` when the reader stopped.
fn restore(receiver: mpsc::Receiver<Message>) -> Result<Option<Engine>, RestoreError> {
    let mut restorer = None;
    for message in receiver {
        match message {
            Message::Part(Part::Head {
                settings,
                users,
                service_plans,
                skus,
                groups,
            }) => {
                let mut started = EngineRestorer::new(settings, &service_plans, skus, &groups)?;
                started.reserve_users(users);
                restorer = Some(started);
            }
            Message::Part(Part::Users(users)) => match restorer.as_mut() {
                Some(restorer) => restorer.add_users(users)?,
                None => return Ok(None),
            },
            Message::Tail(tail) => {
                return match restorer {
                    Some(mut restorer) => {
                        restorer.add_group_nestings(&tail.group_nestings)?;
                        restorer
                            .finish(tail.clock, tail.queue, tail.directory_attributes)
                            .map(Some)
                    }
                    None => Ok(None),
                }
            }
        }
    }
    Ok(None)
}

/// A plan number or position as stored.
pub(crate) fn plan_number(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value)
        .map_err(|_| StoreError::corrupt(format!("plan number or position {value} out of range")))
}
