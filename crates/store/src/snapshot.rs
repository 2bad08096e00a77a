//! Persisted engine snapshots: a tenant's whole image ([`TenantImage`], what
//! `Engine::to_image` returns) in one compact binary blob, tagged with the tenant version the
//! engine reflected, so that a start reads one row in one sequential pass instead of the
//! tenant's millions of rows, then catches up through the change log from the snapshot's
//! version ([`start_engine`]).
//!
//! The blob: [`MAGIC`], the format ([`SNAPSHOT_FORMAT`], 4 bytes little-endian), the length of
//! the writing store's package version and the version itself, a CRC-32 of everything after it
//! (4 bytes), then in postcard (serde's compact binary format): the [`Head`] (settings, catalog,
//! groups, queue, directory attributes, nesting edges, the distinct plan lists and error causes
//! of the states, the number of users), then each [`SnapshotUser`] in the engine's order.
//! Users name their groups, products, plan lists and causes by position in the head's tables,
//! so a user costs a few dozen bytes and the plan lists and causes are decoded once.
//!
//! A snapshot is a cache: it is ignored — and the tenant loaded from its tables — when it is
//! missing, of another format or store version, damaged (checksum, decoding, restore), or older
//! than the change log reaches back ([`StartSource::FullLoad`] says why).

use std::sync::mpsc;

use licensd_engine::image::{
    CauseImage, DirectLicenseImage, EngineRestorer, GroupImage, MembershipImage, PlanList, ServicePlanImage,
    StateImage, TenantImage, UserImage,
};
use licensd_engine::{
    AssignmentStatus, CountryCode, Engine, GroupNestingImage, ProxyAddress, SkuDefinition, TenantSettings,
    Timestamp, UserAttributeValues, Uuid,
};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::catch_up::{read_catch_up, CatchUpReads};
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column};
use crate::reads::tenant_key_and_version;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};
use crate::CatchUp;

/// The first bytes of every snapshot.
pub const MAGIC: &[u8; 8] = b"LCSDSNAP";

/// The snapshot format this binary writes and reads. Bump it whenever the encoding of any type
/// in a snapshot changes (the engine's image types included): the test
/// `the_snapshot_encoding_is_pinned` fails until then.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The writing store's version, also part of the tag: another release never reads it.
const STORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Users handed to the restorer at a time.
const CHUNK_USERS: usize = 16_384;

/// Everything of a tenant but its users.
#[derive(Serialize, Deserialize)]
struct Head {
    settings: TenantSettings,
    clock: u64,
    service_plans: Vec<ServicePlanImage>,
    skus: Vec<SkuDefinition>,
    groups: Vec<GroupImage>,
    queue: Vec<Uuid>,
    directory_attributes: Vec<(Uuid, String)>,
    group_nestings: Vec<GroupNestingImage>,
    /// The distinct plan lists of the users' states.
    plan_lists: Vec<Vec<Uuid>>,
    /// The distinct error causes of the users' states.
    causes: Vec<CauseImage>,
    users: u64,
}

/// A user with its groups, products, plan lists and causes by position in the [`Head`].
#[derive(Serialize, Deserialize)]
struct SnapshotUser {
    id: Uuid,
    user_principal_name: String,
    display_name: String,
    usage_location: Option<CountryCode>,
    proxy_addresses: Vec<ProxyAddress>,
    account_enabled: bool,
    attributes: UserAttributeValues,
    direct_licenses: Vec<DirectLicenseImage>,
    /// (group position, since).
    memberships: Vec<(u32, u64)>,
    states: Vec<SnapshotState>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotState {
    sku: u32,
    group: Option<u32>,
    status: AssignmentStatus,
    cause: Option<u32>,
    disabled_plans: u32,
    granted_plans: Option<u32>,
    since: u64,
    last_updated: Timestamp,
}

fn encoding_failed(error: postcard::Error) -> StoreError {
    StoreError::corrupt(format!("encoding the engine snapshot failed: {error}"))
}

/// Positions of the distinct plan lists and causes, as the users are encoded.
#[derive(Default)]
struct Tables {
    /// By the address of the shared list (each kept alive by `image`), then by content.
    plan_list_addresses: FxHashMap<usize, u32>,
    plan_list_contents: FxHashMap<Vec<Uuid>, u32>,
    plan_lists: Vec<Vec<Uuid>>,
    causes: FxHashMap<CauseImage, u32>,
    cause_list: Vec<CauseImage>,
}

impl Tables {
    fn plan_list(&mut self, list: &PlanList) -> u32 {
        let address = list.as_ptr() as usize;
        if let Some(position) = self.plan_list_addresses.get(&address) {
            return *position;
        }
        let next = self.plan_lists.len() as u32;
        let position = *self.plan_list_contents.entry(list.to_vec()).or_insert(next);
        if position == next {
            self.plan_lists.push(list.to_vec());
        }
        self.plan_list_addresses.insert(address, position);
        position
    }

    fn cause(&mut self, cause: &CauseImage) -> u32 {
        let next = self.cause_list.len() as u32;
        let position = *self.causes.entry(cause.clone()).or_insert(next);
        if position == next {
            self.cause_list.push(cause.clone());
        }
        position
    }
}

fn position_of(map: &FxHashMap<Uuid, u32>, id: Uuid, what: &str, user: Uuid) -> Result<u32, StoreError> {
    map.get(&id).copied().ok_or_else(|| {
        StoreError::corrupt(format!(
            "{what} {id} of user {user} is not in the image being snapshotted"
        ))
    })
}

/// Encodes a tenant's image as a snapshot blob.
pub fn encode(image: &TenantImage) -> Result<Vec<u8>, StoreError> {
    let sku_positions: FxHashMap<Uuid, u32> = image
        .skus
        .iter()
        .enumerate()
        .map(|(position, sku)| (sku.sku_id, position as u32))
        .collect();
    let group_positions: FxHashMap<Uuid, u32> = image
        .groups
        .iter()
        .enumerate()
        .map(|(position, group)| (group.id, position as u32))
        .collect();
    let mut tables = Tables::default();
    let mut users = Vec::with_capacity(image.users.len() * 64);
    for user in &image.users {
        let memberships = user
            .memberships
            .iter()
            .map(|membership| {
                Ok((
                    position_of(&group_positions, membership.group_id, "group", user.id)?,
                    membership.since,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut states = Vec::with_capacity(user.states.len());
        for state in &user.states {
            states.push(SnapshotState {
                sku: position_of(&sku_positions, state.sku_id, "product", user.id)?,
                group: match state.assigned_by_group {
                    Some(group) => Some(position_of(&group_positions, group, "group", user.id)?),
                    None => None,
                },
                status: state.status,
                cause: state.cause.as_ref().map(|cause| tables.cause(cause)),
                disabled_plans: tables.plan_list(&state.disabled_plans),
                granted_plans: state.granted_plans.as_ref().map(|list| tables.plan_list(list)),
                since: state.since,
                last_updated: state.last_updated,
            });
        }
        let encoded = SnapshotUser {
            id: user.id,
            user_principal_name: user.user_principal_name.clone(),
            display_name: user.display_name.clone(),
            usage_location: user.usage_location,
            proxy_addresses: user.proxy_addresses.clone(),
            account_enabled: user.account_enabled,
            attributes: user.attributes.clone(),
            direct_licenses: user.direct_licenses.clone(),
            memberships,
            states,
        };
        users = postcard::to_extend(&encoded, users).map_err(encoding_failed)?;
    }
    let head = Head {
        settings: image.settings.clone(),
        clock: image.clock,
        service_plans: image.service_plans.clone(),
        skus: image.skus.clone(),
        groups: image.groups.clone(),
        queue: image.queue.clone(),
        directory_attributes: image.directory_attributes.clone(),
        group_nestings: image.group_nestings.clone(),
        plan_lists: tables.plan_lists,
        causes: tables.cause_list,
        users: image.users.len() as u64,
    };
    let mut blob = Vec::with_capacity(users.len() + 4096);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    blob.push(STORE_VERSION.len() as u8);
    blob.extend_from_slice(STORE_VERSION.as_bytes());
    let checksum_at = blob.len();
    blob.extend_from_slice(&[0; 4]);
    let body_at = blob.len();
    blob = postcard::to_extend(&head, blob).map_err(encoding_failed)?;
    blob.extend_from_slice(&users);
    let checksum = crc32fast::hash(&blob[body_at..]);
    blob[checksum_at..body_at].copy_from_slice(&checksum.to_le_bytes());
    Ok(blob)
}

/// Why a blob cannot be read as a snapshot of this binary.
fn unreadable(why: impl Into<String>) -> StoreError {
    StoreError::corrupt(why)
}

/// The body of a blob after its tag and checksum are checked.
fn body(blob: &[u8]) -> Result<&[u8], StoreError> {
    let rest = blob
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| unreadable("not an engine snapshot (no magic number)"))?;
    let (format, rest) = rest
        .split_first_chunk::<4>()
        .ok_or_else(|| unreadable("the snapshot ends in its header"))?;
    let format = u32::from_le_bytes(*format);
    if format != SNAPSHOT_FORMAT {
        return Err(unreadable(format!(
            "snapshot format {format}, this binary reads {SNAPSHOT_FORMAT}"
        )));
    }
    let (length, rest) = rest
        .split_first()
        .ok_or_else(|| unreadable("the snapshot ends in its header"))?;
    let length = usize::from(*length);
    if rest.len() < length + 4 {
        return Err(unreadable("the snapshot ends in its header"));
    }
    let (version, rest) = rest.split_at(length);
    if version != STORE_VERSION.as_bytes() {
        return Err(unreadable(format!(
            "snapshot written by licensd-store {}, this is {STORE_VERSION}",
            String::from_utf8_lossy(version)
        )));
    }
    let (checksum, body) = rest.split_at(4);
    let mut expected = [0; 4];
    expected.copy_from_slice(checksum);
    if crc32fast::hash(body) != u32::from_le_bytes(expected) {
        return Err(unreadable("the snapshot's checksum does not match its contents"));
    }
    Ok(body)
}

fn decoding_failed(error: postcard::Error) -> StoreError {
    StoreError::corrupt(format!("decoding the engine snapshot failed: {error}"))
}

/// Reads the users of a snapshot one after another, as images.
struct UserDecoder<'a> {
    rest: &'a [u8],
    left: u64,
    skus: Vec<Uuid>,
    groups: Vec<Uuid>,
    plan_lists: Vec<PlanList>,
    causes: Vec<CauseImage>,
}

fn at<T: Clone>(table: &[T], position: u32, what: &str) -> Result<T, StoreError> {
    table
        .get(position as usize)
        .cloned()
        .ok_or_else(|| StoreError::corrupt(format!("{what} {position} of the snapshot does not exist")))
}

impl UserDecoder<'_> {
    fn next(&mut self) -> Result<Option<UserImage>, StoreError> {
        if self.left == 0 {
            if !self.rest.is_empty() {
                return Err(StoreError::corrupt("bytes after the snapshot's last user"));
            }
            return Ok(None);
        }
        self.left -= 1;
        let (user, rest): (SnapshotUser, &[u8]) =
            postcard::take_from_bytes(self.rest).map_err(decoding_failed)?;
        self.rest = rest;
        let memberships = user
            .memberships
            .iter()
            .map(|(group, since)| {
                Ok(MembershipImage {
                    group_id: at(&self.groups, *group, "group")?,
                    since: *since,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut states = Vec::with_capacity(user.states.len());
        for state in &user.states {
            states.push(StateImage {
                sku_id: at(&self.skus, state.sku, "product")?,
                assigned_by_group: match state.group {
                    Some(group) => Some(at(&self.groups, group, "group")?),
                    None => None,
                },
                status: state.status,
                cause: match state.cause {
                    Some(cause) => Some(at(&self.causes, cause, "cause")?),
                    None => None,
                },
                disabled_plans: at(&self.plan_lists, state.disabled_plans, "plan list")?,
                granted_plans: match state.granted_plans {
                    Some(list) => Some(at(&self.plan_lists, list, "plan list")?),
                    None => None,
                },
                since: state.since,
                last_updated: state.last_updated,
            });
        }
        Ok(Some(UserImage {
            id: user.id,
            user_principal_name: user.user_principal_name,
            display_name: user.display_name,
            usage_location: user.usage_location,
            proxy_addresses: user.proxy_addresses,
            account_enabled: user.account_enabled,
            attributes: user.attributes,
            direct_licenses: user.direct_licenses,
            memberships,
            states,
        }))
    }
}

/// The head of a snapshot and a decoder of its users.
fn open(blob: &[u8]) -> Result<(Head, UserDecoder<'_>), StoreError> {
    let (mut head, rest): (Head, &[u8]) = postcard::take_from_bytes(body(blob)?).map_err(decoding_failed)?;
    let decoder = UserDecoder {
        rest,
        left: head.users,
        skus: head.skus.iter().map(|sku| sku.sku_id).collect(),
        groups: head.groups.iter().map(|group| group.id).collect(),
        plan_lists: std::mem::take(&mut head.plan_lists)
            .into_iter()
            .map(PlanList::from)
            .collect(),
        causes: std::mem::take(&mut head.causes),
    };
    Ok((head, decoder))
}

/// Decodes a snapshot blob back into the image it was encoded from.
pub fn decode(blob: &[u8]) -> Result<TenantImage, StoreError> {
    let (head, mut decoder) = open(blob)?;
    let mut users = Vec::with_capacity(usize::try_from(head.users).unwrap_or(0).min(1 << 24));
    while let Some(user) = decoder.next()? {
        users.push(user);
    }
    Ok(TenantImage {
        settings: head.settings,
        clock: head.clock,
        service_plans: head.service_plans,
        skus: head.skus,
        groups: head.groups,
        users,
        queue: head.queue,
        directory_attributes: head.directory_attributes,
        group_nestings: head.group_nestings,
    })
}

/// Why a snapshot was not used (or failed): a store error or the engine's refusal.
fn restore_failed(error: licensd_engine::image::RestoreError) -> StoreError {
    StoreError::Restore(error)
}

/// Rebuilds an engine from a snapshot blob: the users are decoded on this thread and restored
/// on a second one, a chunk at a time (on one thread when no second can be had).
pub fn restore(blob: &[u8]) -> Result<Engine, StoreError> {
    let (head, mut decoder) = open(blob)?;
    let Head {
        settings,
        clock,
        service_plans,
        skus,
        groups,
        queue,
        directory_attributes,
        group_nestings,
        users,
        ..
    } = head;
    let mut restorer =
        EngineRestorer::new(settings, &service_plans, skus, &groups).map_err(restore_failed)?;
    restorer
        .add_group_nestings(&group_nestings)
        .map_err(restore_failed)?;
    restorer.reserve_users(usize::try_from(users).unwrap_or(0).min(1 << 24));
    let restorer = std::thread::scope(|scope| -> Result<EngineRestorer, StoreError> {
        let (sender, receiver) = mpsc::sync_channel::<Vec<UserImage>>(1);
        let thread = std::thread::Builder::new()
            .name("licensd-restore".to_string())
            .spawn_scoped(scope, move || {
                let mut restorer = restorer;
                for chunk in receiver {
                    restorer.add_users(chunk)?;
                }
                Ok::<_, licensd_engine::image::RestoreError>(restorer)
            })
            .map_err(|error| StoreError::corrupt(format!("no thread to restore the snapshot on: {error}")))?;
        let mut chunk = Vec::with_capacity(CHUNK_USERS);
        let mut decoded = Ok(());
        loop {
            match decoder.next() {
                Ok(Some(user)) => {
                    chunk.push(user);
                    if chunk.len() == CHUNK_USERS {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_USERS));
                        if sender.send(full).is_err() {
                            break;
                        }
                    }
                }
                Ok(None) => {
                    if !chunk.is_empty() {
                        let _ = sender.send(std::mem::take(&mut chunk));
                    }
                    break;
                }
                Err(error) => {
                    decoded = Err(error);
                    break;
                }
            }
        }
        drop(sender);
        let restored = thread
            .join()
            .map_err(|_| StoreError::corrupt("the snapshot restorer panicked"))?;
        let restored = restored.map_err(restore_failed)?;
        decoded?;
        Ok(restored)
    })?;
    restorer
        .finish(clock, queue, directory_attributes)
        .map_err(restore_failed)
}

/// Stores `blob` (from [`encode`]) as the tenant's snapshot at `version`, unless the stored one
/// is newer. Returns whether it was stored.
pub(crate) fn write<D: Database>(
    database: &mut D,
    tenant_id: Uuid,
    version: u64,
    blob: &[u8],
) -> Result<bool, StoreError> {
    let mut transaction = database.begin("writing an engine snapshot")?;
    let (tenant_key, _) = tenant_key_and_version(&mut transaction, tenant_id)?;
    let written = transaction.execute(
        "writing an engine snapshot",
        "INSERT INTO engine_snapshots (tenant_key, version, format, written_at, data)
         VALUES ($1, $2, $3, {now}, $4)
         ON CONFLICT (tenant_key) DO UPDATE SET version = excluded.version, format = excluded.format,
             written_at = excluded.written_at, data = excluded.data
         WHERE engine_snapshots.version <= excluded.version",
        &[
            Param::Integer(tenant_key),
            Param::Integer(logical_time_column(version, "the snapshot version")?),
            Param::Integer(i64::from(SNAPSHOT_FORMAT)),
            Param::Bytes(blob),
        ],
    )?;
    transaction.commit("writing an engine snapshot")?;
    Ok(written > 0)
}

/// The version of the tenant's stored snapshot, if it has one.
pub(crate) fn stored_version<D: Database>(
    database: &mut D,
    tenant_id: Uuid,
) -> Result<Option<u64>, StoreError> {
    let version = database.query_optional(
        "reading the engine snapshot's version",
        "SELECT s.version FROM engine_snapshots s JOIN tenants t ON t.tenant_key = s.tenant_key
         WHERE t.tenant_id = $1",
        &[Param::Id(tenant_id)],
        |row| row.integer(0),
    )?;
    version
        .map(|version| logical_time(version, "the snapshot version"))
        .transpose()
}

/// The tenant's stored snapshot: (version, format, blob).
fn read<D: Database>(database: &mut D, tenant_id: Uuid) -> Result<Option<(u64, i64, Vec<u8>)>, StoreError> {
    let row = database.query_optional(
        "reading the engine snapshot",
        "SELECT s.version, s.format, s.data FROM engine_snapshots s
         JOIN tenants t ON t.tenant_key = s.tenant_key WHERE t.tenant_id = $1",
        &[Param::Id(tenant_id)],
        |row| Ok((row.integer(0)?, row.integer(1)?, row.bytes(2)?.to_vec())),
    )?;
    row.map(|(version, format, blob)| Ok((logical_time(version, "the snapshot version")?, format, blob)))
        .transpose()
}

/// Where a started engine came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartSource {
    /// The stored snapshot of `snapshot_version`, brought to the stored version through the
    /// change log (`caught_up`: whether there was anything to apply).
    Snapshot { snapshot_version: u64, caught_up: bool },
    /// The tenant's tables; `fallback` says why a stored snapshot was not used (`None`: there
    /// was none).
    FullLoad { fallback: Option<String> },
}

/// An engine for a start, the version it reflects and where it came from.
pub struct Started {
    pub engine: Engine,
    pub version: u64,
    pub source: StartSource,
}

/// The engine from the stored snapshot brought up to date through the change log, or why not.
fn from_snapshot<D: CatchUpReads>(
    database: &mut D,
    tenant_id: Uuid,
) -> Result<Result<Started, String>, StoreError> {
    let Some((snapshot_version, format, blob)) = read(database, tenant_id)? else {
        return Ok(Err(String::new()));
    };
    if format != i64::from(SNAPSHOT_FORMAT) {
        return Ok(Err(format!(
            "the snapshot is of format {format}, this binary reads {SNAPSHOT_FORMAT}"
        )));
    }
    let mut engine = match restore(&blob) {
        Ok(engine) => engine,
        Err(error) => return Ok(Err(error.to_string())),
    };
    drop(blob);
    match read_catch_up(database, tenant_id, snapshot_version, None)? {
        CatchUp::UpToDate { version } => Ok(Ok(Started {
            engine,
            version,
            source: StartSource::Snapshot {
                snapshot_version,
                caught_up: false,
            },
        })),
        CatchUp::Patch { patch, version } => match engine.apply_patch(*patch) {
            Ok(()) => Ok(Ok(Started {
                engine,
                version,
                source: StartSource::Snapshot {
                    snapshot_version,
                    caught_up: true,
                },
            })),
            Err(error) => Ok(Err(format!(
                "catching up from the snapshot's version {snapshot_version}: {error}"
            ))),
        },
        CatchUp::Reload { reason } => Ok(Err(format!(
            "catching up from the snapshot's version {snapshot_version}: {reason}"
        ))),
    }
}

/// Starts a tenant's engine: from its stored snapshot plus the change log since, or, when there
/// is none or it cannot be used, with `full_load` (the tenant's tables).
pub(crate) fn start_engine<D: CatchUpReads>(
    database: &mut D,
    tenant_id: Uuid,
    full_load: impl FnOnce(&mut D) -> Result<(Engine, u64), StoreError>,
) -> Result<Started, StoreError> {
    let fallback = match from_snapshot(database, tenant_id)? {
        Ok(started) => return Ok(started),
        Err(reason) if reason.is_empty() => None,
        Err(reason) => Some(reason),
    };
    let (engine, version) = full_load(database)?;
    Ok(Started {
        engine,
        version,
        source: StartSource::FullLoad { fallback },
    })
}
