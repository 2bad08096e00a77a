//! Reading what an instance needs to catch up incrementally: given the version its engine
//! reflects, [`read_catch_up`] returns the [`TenantPatch`] that brings the engine to the stored
//! version — the current rows of everything the change log (`tenant_changes`) says the writes
//! since touched — or says that only a full reload can ([`CatchUp::Reload`]). Everything is read
//! as of one snapshot, so the patch is exactly the store at the version it names.
//!
//! On PostgreSQL that takes two statements outside any transaction, one round trip each
//! (`two_statements.rs`): the tenant's version with the change records since the engine's, then
//! every row of the patch in one statement (a `UNION ALL` of a part per kind of row), which reads
//! the tenant's version again — a statement sees one snapshot of its own, so when that version is
//! still the one the records end at, its rows are the store at that version. When a write came
//! in between, the catch-up is read again in a snapshot, a statement per kind of row (as SQLite
//! always does: in process, its statements cost no round trips).
//!
//! A full reload is needed when
//! - the log does not reach back to the version after the engine's (a record is missing), or
//!   the engine is ahead of the store;
//! - a write touched too many entities to list them (`everything`);
//! - a write changed the service plans or their rules (`service_plans`: products are added with
//!   their plans this way too), which renumbers what the engine derives from the catalog;
//! - a group was deleted and created again with the same id.
//!
//! Nesting edges are read for every touched group (a write that nests or un-nests a group lists
//! both groups): the patch replaces every edge of those groups with the stored ones.
//!
//! (The engine refuses a patch for a product whose plans changed the same way,
//! `PatchError::NeedsReload`.) Directory attributes change only through writes whose records list
//! nothing (`SetDirectoryAttributes`) or with the deletion of their object (the engine drops
//! them): when a record in the range lists nothing at all, every object's attributes are read
//! again. With `also` (an instance's own refused write), the touched objects' attributes are read.
//!
//! On PostgreSQL a patch takes a fixed number of statements whatever it covers (lists travel as
//! one parameter: `uuid[]`, or text in the snapshot's statements); SQLite, in process, runs the
//! per-entity statements once per entity.
//!
//! Rows are decoded by the loader's [`ImageBuilder`], so a patch decodes exactly as a load does.

use licensd_engine::image::{GroupImage, ServicePlanImage, UserImage};
use licensd_engine::{
    AttributesPatch, GroupNestingImage, ServicePlanDefinition, SkuDefinition, TenantPatch, TenantSettings,
    Uuid,
};
use rustc_hash::FxHashSet;

use crate::batch::TenantChange;
use crate::codec;
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column, plan_number, ImageBuilder, Load, StateRow, UserChunk};
use crate::postgres::PostgresStore;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};
use crate::sqlite::SqliteStore;

mod two_statements;

/// What an instance must do to bring its engine from a version to the stored one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// The engine is at the stored version already (and nothing else was asked for).
    UpToDate { version: u64 },
    /// Apply the patch (`Engine::apply_patch`); the engine then reflects `version`.
    Patch { patch: Box<TenantPatch>, version: u64 },
    /// The change log cannot bring the engine there: load the whole tenant.
    Reload { reason: String },
}

/// How a backend matches a column against a list of values in one statement.
pub(crate) trait CatchUpReads: Load {
    /// PostgreSQL takes the list as one parameter (`= ANY(...)`); SQLite, in process, runs
    /// the statement once per value.
    const LISTS: bool;

    /// The snapshot a catch-up reads in.
    type Snapshot<'a>: Transaction
    where
        Self: 'a;

    /// Starts the catch-up's snapshot: on PostgreSQL with statements prepared once per
    /// connection (one round trip each instead of two); SQLite caches its statements anyway.
    fn begin_catch_up(&mut self) -> Result<Self::Snapshot<'_>, StoreError>;

    /// Reads the catch-up without a snapshot, in fewer round trips, where the backend can
    /// (PostgreSQL: two statements); `None` to read it in a snapshot instead.
    fn read_alone(
        &mut self,
        tenant_id: Uuid,
        after: u64,
        also: Option<&TenantChange>,
    ) -> Result<Option<CatchUp>, StoreError>;
}

impl CatchUpReads for PostgresStore {
    const LISTS: bool = true;

    type Snapshot<'a> = crate::postgres::PostgresSnapshot<'a>;

    fn begin_catch_up(&mut self) -> Result<Self::Snapshot<'_>, StoreError> {
        self.begin_cached_snapshot("starting to read a catch-up")
    }

    fn read_alone(
        &mut self,
        tenant_id: Uuid,
        after: u64,
        also: Option<&TenantChange>,
    ) -> Result<Option<CatchUp>, StoreError> {
        two_statements::read_alone_postgres(self, tenant_id, after, also)
    }
}

impl CatchUpReads for SqliteStore {
    const LISTS: bool = false;

    type Snapshot<'a> = rusqlite::Transaction<'a>;

    fn begin_catch_up(&mut self) -> Result<Self::Snapshot<'_>, StoreError> {
        self.begin_snapshot("starting to read a catch-up")
    }

    /// SQLite, in process, reads in its snapshot: its statements cost no round trips.
    fn read_alone(
        &mut self,
        _tenant_id: Uuid,
        _after: u64,
        _also: Option<&TenantChange>,
    ) -> Result<Option<CatchUp>, StoreError> {
        Ok(None)
    }
}

/// Values to match with `{in}` in a statement.
enum Values<'a> {
    Ids(&'a [Uuid]),
    Keys(&'a [i64]),
}

impl Values<'_> {
    fn is_empty(&self) -> bool {
        match self {
            Values::Ids(ids) => ids.is_empty(),
            Values::Keys(keys) => keys.is_empty(),
        }
    }
}

/// Runs `sql` (with `$1` the tenant key and `{in}` where the column is matched against
/// `values`) once for all values (PostgreSQL) or once per value (SQLite).
fn for_each_matching<S: Session>(
    session: &mut S,
    lists: bool,
    action: &str,
    sql: &str,
    tenant_key: i64,
    values: Values<'_>,
    mut on_row: impl FnMut(&S::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    if values.is_empty() {
        return Ok(());
    }
    if lists {
        let (list, cast) = match &values {
            Values::Ids(ids) => (
                ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(","),
                "uuid",
            ),
            Values::Keys(keys) => (
                keys.iter().map(i64::to_string).collect::<Vec<_>>().join(","),
                "bigint",
            ),
        };
        let sql = sql.replace("{in}", &format!("= ANY(string_to_array($2, ',')::{cast}[])"));
        return session.for_each_row(
            action,
            &sql,
            &[Param::Integer(tenant_key), Param::Text(&list)],
            on_row,
        );
    }
    let sql = sql.replace("{in}", "= $2");
    match values {
        Values::Ids(ids) => {
            for id in ids {
                session.for_each_row(
                    action,
                    &sql,
                    &[Param::Integer(tenant_key), Param::Id(*id)],
                    &mut on_row,
                )?;
            }
        }
        Values::Keys(keys) => {
            for key in keys {
                session.for_each_row(
                    action,
                    &sql,
                    &[Param::Integer(tenant_key), Param::Integer(*key)],
                    &mut on_row,
                )?;
            }
        }
    }
    Ok(())
}

/// The change records of the versions in `(after, up_to]`, oldest first.
fn changes_between(
    session: &mut impl Session,
    tenant_key: i64,
    after: u64,
    up_to: u64,
) -> Result<Vec<TenantChange>, StoreError> {
    session.query_all(
        "reading tenant changes",
        "SELECT version, settings, service_plans, queue, everything, skus, users, groups,
                deleted_users, deleted_groups
         FROM tenant_changes WHERE tenant_key = $1 AND version > $2 AND version <= $3
         ORDER BY version",
        &[
            Param::Integer(tenant_key),
            Param::Integer(logical_time_column(after, "the version")?),
            Param::Integer(logical_time_column(up_to, "the version")?),
        ],
        |row| change_row(row, 0),
    )
}

/// Whether a change record lists nothing (a write of directory attributes, or of nothing).
fn lists_nothing(change: &TenantChange) -> bool {
    !change.settings
        && !change.service_plans
        && !change.queue
        && !change.everything
        && change.skus.is_empty()
        && change.users.is_empty()
        && change.groups.is_empty()
        && change.deleted_users.is_empty()
        && change.deleted_groups.is_empty()
}

/// What the changes of a range touched, together.
#[derive(Default)]
struct Touched {
    settings: bool,
    queue: bool,
    /// Some write's record lists nothing: it may have set directory attributes (read them all).
    all_attributes: bool,
    /// Read the attributes of the touched objects: what an instance's own refused write changed
    /// is listed with the objects (`unwritten_change`). Writes of the log change attributes only
    /// through records that list nothing, or by deleting their object (the engine drops them).
    attributes_of_touched: bool,
    skus: Vec<Uuid>,
    users: Vec<Uuid>,
    groups: Vec<Uuid>,
    deleted_users: FxHashSet<Uuid>,
    deleted_groups: FxHashSet<Uuid>,
}

impl Touched {
    /// Adds a change; `Err` with the reason when it needs a full reload.
    fn add(&mut self, change: &TenantChange) -> Result<(), String> {
        if change.everything {
            return Err(format!(
                "the write of version {} touched too many entities to list",
                change.version
            ));
        }
        if change.service_plans {
            return Err(format!(
                "the write of version {} changed the service plans",
                change.version
            ));
        }
        self.settings |= change.settings;
        self.queue |= change.queue;
        self.all_attributes |= lists_nothing(change);
        self.skus.extend(&change.skus);
        self.users.extend(&change.users);
        self.users.extend(&change.deleted_users);
        self.groups.extend(&change.groups);
        self.groups.extend(&change.deleted_groups);
        self.deleted_users.extend(&change.deleted_users);
        self.deleted_groups.extend(&change.deleted_groups);
        Ok(())
    }

    fn dedup(&mut self) {
        for ids in [&mut self.skus, &mut self.users, &mut self.groups] {
            ids.sort_unstable();
            ids.dedup();
        }
    }
}

/// Reads what brings an engine at `after` to the stored version (see the module documentation).
/// `also` names entities to read again even if no write since touched them (what this
/// instance's engine changed in a write the store then refused); with it, the answer is a patch
/// even when no write came in between.
///
/// PostgreSQL first tries two statements outside a transaction ([`CatchUpReads::read_alone`]);
/// when a write came in between them, or on SQLite, everything is read in one snapshot.
pub(crate) fn read_catch_up<D: CatchUpReads>(
    database: &mut D,
    tenant_id: Uuid,
    after: u64,
    also: Option<&TenantChange>,
) -> Result<CatchUp, StoreError> {
    if let Some(answer) = database.read_alone(tenant_id, after, also)? {
        return Ok(answer);
    }
    read_catch_up_in_snapshot(database, tenant_id, after, also)
}

/// What the change records of `(after, version]` (and `also`) ask for: the entities to read, or
/// why only a full reload can bring the engine there.
fn touched_by(
    after: u64,
    version: u64,
    changes: &[TenantChange],
    also: Option<&TenantChange>,
) -> Result<Touched, String> {
    let complete = changes.len() as u64 == version - after
        && changes
            .iter()
            .enumerate()
            .all(|(index, change)| change.version == after + 1 + index as u64);
    if !complete {
        return Err(format!(
            "the change log no longer reaches back to version {}",
            after + 1
        ));
    }
    let mut touched = Touched {
        attributes_of_touched: also.is_some(),
        ..Touched::default()
    };
    for change in changes.iter().chain(also) {
        touched.add(change)?;
    }
    touched.dedup();
    Ok(touched)
}

/// The catch-up read in one snapshot, a statement per kind of row (both backends).
fn read_catch_up_in_snapshot<D: CatchUpReads>(
    database: &mut D,
    tenant_id: Uuid,
    after: u64,
    also: Option<&TenantChange>,
) -> Result<CatchUp, StoreError> {
    let mut snapshot = database.begin_catch_up()?;
    let head = snapshot.query_optional(
        "reading the tenant",
        "SELECT version, display_name, default_usage_location, self_healing, clock,
                transitive_licensing, tenant_key
         FROM tenants WHERE tenant_id = $1",
        &[Param::Id(tenant_id)],
        |row| Ok((row.integer(6)?, head_row(row, tenant_id)?)),
    )?;
    let (tenant_key, head) = head.ok_or(StoreError::UnknownTenant { tenant_id })?;
    let version = head.version;
    if version < after {
        return Ok(CatchUp::Reload {
            reason: format!("the store is at version {version}, behind the engine's {after}"),
        });
    }
    if version == after && also.is_none() {
        snapshot.commit("ending the catch-up read")?;
        return Ok(CatchUp::UpToDate { version });
    }
    let changes = changes_between(&mut snapshot, tenant_key, after, version)?;
    let touched = match touched_by(after, version, &changes, also) {
        Ok(touched) => touched,
        Err(reason) => return Ok(CatchUp::Reload { reason }),
    };
    let rows = read_patch_rows::<D>(&mut snapshot, tenant_key, &touched)?;
    snapshot.commit("ending the catch-up read")?;
    Ok(answer(assemble_patch(head, &touched, rows)?, version))
}

fn answer(patch: Result<TenantPatch, String>, version: u64) -> CatchUp {
    match patch {
        Ok(patch) => CatchUp::Patch {
            patch: Box::new(patch),
            version,
        },
        Err(reason) => CatchUp::Reload { reason },
    }
}

/// A membership: user key, group key, since.
type Membership = (i64, i64, u64);

/// A group with its key.
type KeyedGroup = (i64, GroupImage);

/// A user row with its key.
pub(crate) struct UserRow {
    pub(crate) key: i64,
    pub(crate) image: UserImage,
}

/// A state row, owned (its groups are registered with the builder before it is decoded).
struct OwnedStateRow {
    user_key: i64,
    sku_key: i64,
    source_key: i64,
    status: String,
    cause: Option<Vec<u8>>,
    disabled_plans: Vec<u8>,
    granted_plans: Option<Vec<u8>>,
    since: i64,
    last_updated: i64,
}

/// The tenant's row as a catch-up reads it.
struct Head {
    version: u64,
    settings: TenantSettings,
    clock: u64,
}

/// The rows a patch is made of, as read (by a statement per kind in a snapshot, or by
/// PostgreSQL's one statement), before the loader's builder decodes them.
#[derive(Default)]
struct PatchRows {
    /// The catalog: every plan (by position) and product (by key), which the states' plan
    /// bitsets and product keys are decoded with.
    plans: Vec<(u32, u32, ServicePlanImage)>,
    skus: Vec<(i64, SkuDefinition)>,
    /// Every product's plans, read when a write touched products.
    sku_plans: Vec<(i64, Uuid)>,
    /// The touched users that exist.
    users: Vec<UserRow>,
    /// Their memberships (user, group, since), by user and position.
    memberships: Vec<(i64, i64, u64)>,
    /// The groups their memberships and states name.
    named_groups: Vec<(i64, GroupImage)>,
    states: Vec<OwnedStateRow>,
    /// The touched groups that exist.
    groups: Vec<(i64, GroupImage)>,
    /// The touched groups' nesting edges, as the group or as the member.
    nesting_edges: Vec<GroupNestingImage>,
    /// The touched groups' licenses, by group and position.
    licenses: Vec<(i64, i64, Vec<Uuid>)>,
    /// The users' direct licenses, by user and position.
    direct: Vec<(i64, i64, Vec<Uuid>, u64)>,
    /// The whole queue, when a write changed it.
    queue: Option<Vec<Uuid>>,
    /// Every object's attributes, when a record listed nothing.
    all_attributes: Option<Vec<(Uuid, String)>>,
    /// The touched objects' attributes that exist, when asked for.
    touched_attributes: Vec<(Uuid, String)>,
}

/// The tenant row: version, display name, default usage location, self-healing, clock,
/// transitive licensing.
fn head_row(row: &impl ReadRow, tenant_id: Uuid) -> Result<Head, StoreError> {
    Ok(Head {
        version: logical_time(row.integer(0)?, "the tenant version")?,
        settings: TenantSettings {
            tenant_id,
            display_name: row.text(1)?.to_string(),
            default_usage_location: codec::parse_optional_country(row.optional_text(2)?)?,
            self_healing: row.flag(3)?,
            transitive_licensing: row.flag(5)?,
        },
        clock: logical_time(row.integer(4)?, "the tenant clock")?,
    })
}

/// A change record's columns from `first` on: version, settings, service plans, queue,
/// everything, products, users, groups, deleted users, deleted groups.
fn change_row(row: &impl ReadRow, first: usize) -> Result<TenantChange, StoreError> {
    Ok(TenantChange {
        version: logical_time(row.integer(first)?, "a change's version")?,
        settings: row.flag(first + 1)?,
        service_plans: row.flag(first + 2)?,
        queue: row.flag(first + 3)?,
        everything: row.flag(first + 4)?,
        skus: codec::split_concat_uuids(row.bytes(first + 5)?)?,
        users: codec::split_concat_uuids(row.bytes(first + 6)?)?,
        groups: codec::split_concat_uuids(row.bytes(first + 7)?)?,
        deleted_users: codec::split_concat_uuids(row.bytes(first + 8)?)?,
        deleted_groups: codec::split_concat_uuids(row.bytes(first + 9)?)?,
    })
}

/// A plan: number, position, id, name, display name.
fn plan_row(row: &impl ReadRow) -> Result<(u32, u32, ServicePlanImage), StoreError> {
    let plan = ServicePlanImage {
        definition: ServicePlanDefinition {
            service_plan_id: row.id(2)?,
            service_plan_name: row.text(3)?.to_string(),
            display_name: row.text(4)?.to_string(),
        },
        rules: licensd_engine::ServicePlanRules::default(),
    };
    Ok((plan_number(row.integer(0)?)?, plan_number(row.integer(1)?)?, plan))
}

/// A product: key, id, part number, display name, applies to, prepaid units, status.
fn sku_row(row: &impl ReadRow) -> Result<(i64, SkuDefinition), StoreError> {
    Ok((
        row.integer(0)?,
        SkuDefinition {
            sku_id: row.id(1)?,
            sku_part_number: row.text(2)?.to_string(),
            display_name: row.text(3)?.to_string(),
            applies_to: codec::parse_applies_to(row.text(4)?)?,
            service_plans: Vec::new(),
            prepaid_units: u32::try_from(row.integer(5)?)
                .map_err(|_| StoreError::corrupt("prepaid units out of range"))?,
            capability_status: codec::parse_capability_status(row.text(6)?)?,
        },
    ))
}

/// A user: key, id, principal name, display name, usage location, proxy addresses, enabled,
/// attributes.
pub(crate) fn user_row(row: &impl ReadRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        key: row.integer(0)?,
        image: UserImage {
            id: row.id(1)?,
            user_principal_name: row.text(2)?.to_string(),
            display_name: row.text(3)?.to_string(),
            usage_location: codec::parse_optional_country(row.optional_text(4)?)?,
            proxy_addresses: codec::split_proxy_addresses(row.text(5)?)?,
            account_enabled: row.flag(6)?,
            attributes: codec::split_user_attributes(row.text(7)?)?,
            direct_licenses: Vec::new(),
            memberships: Vec::new(),
            states: Vec::new(),
        },
    })
}

/// A group row from column `first` on: key, id, display name, licensed since, membership rule,
/// its state.
fn group_row(row: &impl ReadRow, first: usize) -> Result<(i64, GroupImage), StoreError> {
    Ok((
        row.integer(first)?,
        GroupImage {
            id: row.id(first + 1)?,
            display_name: row.text(first + 2)?.to_string(),
            licenses: Vec::new(),
            licensed_since: logical_time(row.integer(first + 3)?, "a group's licensed_since")?,
            dynamic_membership: codec::dynamic_membership(
                row.optional_text(first + 4)?,
                row.text(first + 5)?,
            )?,
        },
    ))
}

/// A membership (user key, group key, since) with its group's row from column 3 on.
fn membership_row(row: &impl ReadRow) -> Result<(Membership, KeyedGroup), StoreError> {
    Ok((
        (
            row.integer(0)?,
            row.integer(1)?,
            logical_time(row.integer(2)?, "a membership's since")?,
        ),
        group_row(row, 3)?,
    ))
}

/// A state (user key, product key, source key, status, cause, disabled plans, granted plans,
/// since, last updated) with its group's row from column 9 on, if a group assigned it.
fn state_row(row: &impl ReadRow) -> Result<(OwnedStateRow, Option<(i64, GroupImage)>), StoreError> {
    let group = match row.optional_integer(9)? {
        Some(_) => Some(group_row(row, 9)?),
        None => None,
    };
    Ok((
        OwnedStateRow {
            user_key: row.integer(0)?,
            sku_key: row.integer(1)?,
            source_key: row.integer(2)?,
            status: row.text(3)?.to_string(),
            cause: row.optional_bytes(4)?.map(<[u8]>::to_vec),
            disabled_plans: row.bytes(5)?.to_vec(),
            granted_plans: row.optional_bytes(6)?.map(<[u8]>::to_vec),
            since: row.integer(7)?,
            last_updated: row.integer(8)?,
        },
        group,
    ))
}

/// A nesting edge: group, member group, since.
fn nesting_row(row: &impl ReadRow) -> Result<GroupNestingImage, StoreError> {
    Ok(GroupNestingImage {
        group_id: row.id(0)?,
        member_group_id: row.id(1)?,
        since: logical_time(row.integer(2)?, "a nesting edge's time")?,
    })
}

/// A group license: group key, product key, disabled plans.
fn license_row(row: &impl ReadRow) -> Result<(i64, i64, Vec<Uuid>), StoreError> {
    Ok((
        row.integer(0)?,
        row.integer(1)?,
        codec::split_uuids(row.text(2)?)?,
    ))
}

/// A direct license: user key, product key, disabled plans, since.
fn direct_row(row: &impl ReadRow) -> Result<(i64, i64, Vec<Uuid>, u64), StoreError> {
    Ok((
        row.integer(0)?,
        row.integer(1)?,
        codec::split_uuids(row.text(2)?)?,
        logical_time(row.integer(3)?, "a direct license's since")?,
    ))
}

/// Directory attributes: object id, attributes.
fn attributes_row(row: &impl ReadRow) -> Result<(Uuid, String), StoreError> {
    Ok((row.id(0)?, row.text(1)?.to_string()))
}

/// Reads the rows of the patch, a statement per kind (in the caller's snapshot).
fn read_patch_rows<D: CatchUpReads>(
    session: &mut impl Session,
    tenant_key: i64,
    touched: &Touched,
) -> Result<PatchRows, StoreError> {
    let key = [Param::Integer(tenant_key)];
    let mut rows = PatchRows::default();
    session.for_each_row(
        "reading service plans",
        "SELECT plan_number, position, plan_id, name, display_name FROM service_plans
         WHERE tenant_key = $1 ORDER BY position",
        &key,
        |row| {
            rows.plans.push(plan_row(row)?);
            Ok(())
        },
    )?;
    session.for_each_row(
        "reading products",
        "SELECT sku_key, sku_id, sku_part_number, display_name, applies_to, prepaid_units,
                capability_status
         FROM skus WHERE tenant_key = $1 ORDER BY sku_key",
        &key,
        |row| {
            rows.skus.push(sku_row(row)?);
            Ok(())
        },
    )?;
    if !touched.skus.is_empty() {
        session.for_each_row(
            "reading the plans of products",
            "SELECT sku_key, plan_id FROM sku_plans WHERE tenant_key = $1 ORDER BY sku_key, position",
            &key,
            |row| {
                rows.sku_plans.push((row.integer(0)?, row.id(1)?));
                Ok(())
            },
        )?;
    }
    for_each_matching(
        session,
        D::LISTS,
        "reading users",
        "SELECT user_key, user_id, user_principal_name, display_name, usage_location,
                proxy_addresses, account_enabled, attributes
         FROM users WHERE tenant_key = $1 AND user_id {in}",
        tenant_key,
        Values::Ids(&touched.users),
        |row| {
            rows.users.push(user_row(row)?);
            Ok(())
        },
    )?;
    rows.users.sort_unstable_by_key(|user| user.key);
    let user_keys: Vec<i64> = rows.users.iter().map(|user| user.key).collect();
    // Their memberships and states, each with the group it names, so that no further read is
    // needed for them.
    for_each_matching(
        session,
        D::LISTS,
        "reading memberships",
        // The users' memberships first (materialized), then their groups: as a plain join, a
        // planner with stale statistics probed the memberships of every group of the tenant
        // (PostgreSQL, 1,000,000 users, 5,000 groups: 156-357 ms for one user, 0.85 ms so).
        "WITH m AS MATERIALIZED (
             SELECT tenant_key, user_key, group_key, since, position FROM memberships
             WHERE tenant_key = $1 AND user_key {in})
         SELECT m.user_key, m.group_key, m.since, g.group_key, g.group_id, g.display_name,
                g.licensed_since, g.membership_rule, g.membership_rule_state
         FROM m
         JOIN groups g ON g.tenant_key = m.tenant_key AND g.group_key = m.group_key
         ORDER BY m.user_key, m.position",
        tenant_key,
        Values::Keys(&user_keys),
        |row| {
            let (membership, group) = membership_row(row)?;
            rows.memberships.push(membership);
            rows.named_groups.push(group);
            Ok(())
        },
    )?;
    for_each_matching(
        session,
        D::LISTS,
        "reading license assignment states",
        "SELECT s.user_key, s.sku_key, s.source_key, s.status, s.cause, s.disabled_plans,
                s.granted_plans, s.since, s.last_updated, g.group_key, g.group_id, g.display_name,
                g.licensed_since, g.membership_rule, g.membership_rule_state
         FROM license_states s
         LEFT JOIN groups g ON g.tenant_key = s.tenant_key AND g.group_key = s.source_key
         WHERE s.tenant_key = $1 AND s.user_key {in}",
        tenant_key,
        Values::Keys(&user_keys),
        |row| {
            let (state, group) = state_row(row)?;
            rows.states.push(state);
            rows.named_groups.extend(group);
            Ok(())
        },
    )?;
    for_each_matching(
        session,
        D::LISTS,
        "reading groups",
        "SELECT group_key, group_id, display_name, licensed_since, membership_rule,
                membership_rule_state FROM groups
         WHERE tenant_key = $1 AND group_id {in}",
        tenant_key,
        Values::Ids(&touched.groups),
        |row| {
            rows.groups.push(group_row(row, 0)?);
            Ok(())
        },
    )?;
    for_each_matching(
        session,
        D::LISTS,
        "reading nested groups",
        "SELECT group_id, member_group_id, since FROM group_nestings
         WHERE tenant_key = $1 AND (group_id {in} OR member_group_id {in})",
        tenant_key,
        Values::Ids(&touched.groups),
        |row| {
            rows.nesting_edges.push(nesting_row(row)?);
            Ok(())
        },
    )?;
    let mut touched_keys: Vec<i64> = rows.groups.iter().map(|(key, _)| *key).collect();
    touched_keys.sort_unstable();
    touched_keys.dedup();
    for_each_matching(
        session,
        D::LISTS,
        "reading group licenses",
        "SELECT group_key, sku_key, disabled_plans, position FROM group_licenses
         WHERE tenant_key = $1 AND group_key {in} ORDER BY group_key, position",
        tenant_key,
        Values::Keys(&touched_keys),
        |row| {
            rows.licenses.push(license_row(row)?);
            Ok(())
        },
    )?;
    for_each_matching(
        session,
        D::LISTS,
        "reading direct licenses",
        "SELECT user_key, sku_key, disabled_plans, since, position FROM direct_licenses
         WHERE tenant_key = $1 AND user_key {in} ORDER BY user_key, position",
        tenant_key,
        Values::Keys(&user_keys),
        |row| {
            rows.direct.push(direct_row(row)?);
            Ok(())
        },
    )?;
    if touched.queue {
        rows.queue = Some(session.query_all(
            "reading the work queue",
            // A lookup per queued user (not a join, which a planner may answer by scanning
            // every user of the tenant, however short the queue).
            "SELECT (SELECT u.user_id FROM users u
                     WHERE u.tenant_key = q.tenant_key AND u.user_key = q.user_key)
             FROM work_queue q WHERE q.tenant_key = $1 ORDER BY q.position",
            &key,
            |row| row.id(0),
        )?);
    }
    if touched.all_attributes {
        rows.all_attributes = Some(session.query_all(
            "reading directory attributes",
            "SELECT object_id, attributes FROM directory_attributes WHERE tenant_key = $1
             ORDER BY object_id",
            &key,
            |row| attributes_row(row),
        )?);
    } else if touched.attributes_of_touched {
        let objects: Vec<Uuid> = touched.users.iter().chain(&touched.groups).copied().collect();
        for_each_matching(
            session,
            D::LISTS,
            "reading directory attributes",
            "SELECT object_id, attributes FROM directory_attributes WHERE tenant_key = $1 AND object_id {in}",
            tenant_key,
            Values::Ids(&objects),
            |row| {
                rows.touched_attributes.push(attributes_row(row)?);
                Ok(())
            },
        )?;
    }
    Ok(rows)
}

/// Decodes the rows read into the patch (as a load decodes them), or says why only a full
/// reload can bring the engine there.
fn assemble_patch(
    head: Head,
    touched: &Touched,
    rows: PatchRows,
) -> Result<Result<TenantPatch, String>, StoreError> {
    let Head { settings, clock, .. } = head;
    let PatchRows {
        plans,
        skus,
        sku_plans,
        users,
        memberships,
        named_groups,
        states,
        groups: mut group_rows,
        mut nesting_edges,
        licenses,
        direct,
        queue,
        all_attributes,
        touched_attributes,
    } = rows;
    let mut builder = ImageBuilder::default();
    for (number, position, plan) in plans {
        builder.add_service_plan(number, position, plan);
    }
    builder.finish_service_plans();
    for (sku_key, sku) in skus {
        builder.add_sku(sku_key, sku);
    }
    for (sku_key, plan_id) in sku_plans {
        builder.add_sku_plan(sku_key, plan_id)?;
    }
    nesting_edges.sort_unstable_by_key(|edge| (edge.group_id, edge.since, edge.member_group_id));
    nesting_edges.dedup();
    // Groups: the touched ones that exist, and those the users' rows name.
    let touched_group_keys: FxHashSet<i64> = group_rows.iter().map(|(key, _)| *key).collect();
    let mut seen = touched_group_keys.clone();
    group_rows.extend(
        named_groups
            .into_iter()
            .filter(|(group_key, _)| seen.insert(*group_key)),
    );
    group_rows.sort_unstable_by_key(|(key, _)| *key);
    let group_order: Vec<(i64, Uuid)> = group_rows.iter().map(|(key, group)| (*key, group.id)).collect();
    for (group_key, group) in group_rows {
        builder.add_group(group_key, group);
    }
    for (group_key, sku_key, disabled) in licenses {
        builder.add_group_license(group_key, sku_key, disabled)?;
    }
    // The users with their direct licenses, memberships and states.
    let present_users: FxHashSet<Uuid> = users.iter().map(|user| user.image.id).collect();
    for user in users {
        builder.add_user(user.key, user.image);
    }
    builder.finish_users();
    let (user_keys, users) = builder.take_all_users();
    let mut chunk = UserChunk::new(&user_keys, users);
    for (user_key, sku_key, disabled, since) in direct {
        builder.add_direct_license(&mut chunk, user_key, sku_key, disabled, since)?;
    }
    for (user_key, group_key, since) in memberships {
        builder.add_membership(&mut chunk, user_key, group_key, since)?;
    }
    for state in &states {
        builder.add_state(
            &mut chunk,
            StateRow {
                user_key: state.user_key,
                sku_key: state.sku_key,
                source_key: state.source_key,
                status: &state.status,
                cause: state.cause.as_deref(),
                disabled_plans: &state.disabled_plans,
                granted_plans: state.granted_plans.as_deref(),
                since: state.since,
                last_updated: state.last_updated,
            },
        )?;
    }
    // Directory attributes: of the touched objects, or all of them.
    let directory_attributes = if let Some(all) = all_attributes {
        AttributesPatch::All(all)
    } else if !touched.attributes_of_touched {
        AttributesPatch::Objects(Vec::new())
    } else {
        let objects: Vec<Uuid> = touched.users.iter().chain(&touched.groups).copied().collect();
        let mut found: Vec<(Uuid, Option<String>)> = touched_attributes
            .into_iter()
            .map(|(id, attributes)| (id, Some(attributes)))
            .collect();
        let with: FxHashSet<Uuid> = found.iter().map(|(id, _)| *id).collect();
        found.extend(
            objects
                .iter()
                .filter(|id| !with.contains(id))
                .map(|id| (*id, None)),
        );
        AttributesPatch::Objects(found)
    };
    let users = chunk.into_users();
    let image = builder.finish(settings, clock, users);
    let present_groups: FxHashSet<Uuid> = group_order
        .iter()
        .filter(|(key, _)| touched_group_keys.contains(key))
        .map(|(_, id)| *id)
        .collect();
    if let Some(group_id) = touched
        .deleted_groups
        .iter()
        .find(|id| present_groups.contains(id))
    {
        return Ok(Err(format!("group {group_id} was deleted and created again")));
    }
    let touched_skus: FxHashSet<Uuid> = touched.skus.iter().copied().collect();
    let mut recreated_users: Vec<Uuid> = touched
        .deleted_users
        .iter()
        .filter(|id| present_users.contains(id))
        .copied()
        .collect();
    recreated_users.sort_unstable();
    let mut deleted_users: Vec<Uuid> = touched
        .users
        .iter()
        .filter(|id| !present_users.contains(id))
        .copied()
        .collect();
    deleted_users.sort_unstable();
    let deleted_groups: Vec<Uuid> = touched
        .groups
        .iter()
        .filter(|id| !present_groups.contains(id))
        .copied()
        .collect();
    Ok(Ok(TenantPatch {
        settings: touched.settings.then_some(image.settings),
        clock,
        skus: image
            .skus
            .into_iter()
            .filter(|sku| touched_skus.contains(&sku.sku_id))
            .collect(),
        groups: image
            .groups
            .into_iter()
            .filter(|group| present_groups.contains(&group.id))
            .collect(),
        deleted_groups,
        users: image.users,
        recreated_users,
        deleted_users,
        queue,
        directory_attributes,
        nesting_of_groups: touched.groups.clone(),
        nesting_edges,
    }))
}

/// What an engine changed in a write the store then refused (another instance wrote first), as
/// a change record to pass as `also` to [`crate::Store::catch_up`]: reading those entities again
/// along with the writes that came in between brings the engine back to the store (a nesting
/// edge is listed as its two groups, whose edges are read again). `None` when
/// the write deleted users or groups, or `created` them (say so: a batch does not tell): their
/// places in the engine's order are lost or may precede those of users and groups other
/// instances created first, so only a full reload restores them.
pub fn unwritten_change(batch: &crate::WriteBatch, created: bool) -> Option<TenantChange> {
    if created || !batch.deleted_users.is_empty() || !batch.deleted_groups.is_empty() {
        return None;
    }
    let mut users: Vec<Uuid> = batch
        .users
        .iter()
        .map(|user| user.id)
        .chain(batch.state_inserts.iter().map(|(user_id, _)| *user_id))
        .chain(batch.state_upserts.iter().map(|(user_id, _)| *user_id))
        .chain(batch.state_deletes.iter().map(|key| key.user_id))
        // Row-level edits of users (group commit writes memberships, direct licenses and
        // properties as rows): those users are read again whole.
        .chain(batch.user_properties.iter().map(|user| user.id))
        .chain(batch.memberships_added.iter().map(|(user_id, _)| *user_id))
        .chain(batch.memberships_removed.iter().map(|(user_id, _)| *user_id))
        .chain(batch.direct_licenses_set.iter().map(|(user_id, _)| *user_id))
        .chain(batch.direct_licenses_removed.iter().map(|(user_id, _)| *user_id))
        .chain(batch.enqueue.iter().copied())
        .chain(batch.dequeue.iter().copied())
        // Objects whose directory attributes changed: read again with the users (an id that is
        // not a user's is read as no user, which changes nothing), their attributes with them.
        .chain(batch.directory_attributes.iter().map(|(object_id, _)| *object_id))
        .collect();
    users.sort_unstable();
    users.dedup();
    Some(TenantChange {
        version: 0,
        settings: batch.settings.is_some(),
        service_plans: batch.service_plans.is_some(),
        skus: batch.skus.iter().map(|sku| sku.sku_id).collect(),
        users,
        groups: batch
            .groups
            .iter()
            .map(|group| group.id)
            .chain(
                batch
                    .group_nestings
                    .iter()
                    .flat_map(|((group_id, member_group_id), _)| [*group_id, *member_group_id]),
            )
            .collect(),
        deleted_users: Vec::new(),
        deleted_groups: Vec::new(),
        // The engine queued or dequeued users: the queue is read whole.
        queue: true,
        everything: false,
    })
}
