//! Persisted engine snapshots: a tenant's engine in one compact binary blob, tagged with the
//! tenant version the engine reflected, so that a start reads one row in one sequential pass
//! instead of the tenant's millions of rows, then catches up through the change log from the
//! snapshot's version ([`start_engine`]).
//!
//! The blob: [`MAGIC`], the format ([`SNAPSHOT_FORMAT`], 4 bytes little-endian), the length of
//! the writing store's package version and the version itself, a CRC-32 of everything after it
//! (4 bytes), then the [`Head`] in postcard (serde's compact binary format: settings, catalog,
//! groups, queue, directory attributes, nesting edges — the engine's image without its users —
//! and the tables of the dense users), then the engine's dense users
//! ([`licensd_engine::dense_image`]: every user, its memberships, licenses and states by
//! position in those tables, strings length-prefixed in the one buffer). A start restores the
//! users straight from the buffer ([`Engine::from_dense_image`]): no image per user, no GUID
//! look-up per reference, no `String` per field.
//!
//! A snapshot is a cache: it is ignored — and the tenant loaded from its tables — when it is
//! missing, of another format or store version, damaged (checksum, decoding, restore), older
//! than the change log reaches back, or more than [`MAX_VERSIONS_BEHIND`] versions behind the
//! tenant ([`StartSource::FullLoad`] says why).

use licensd_engine::dense_image::DenseUserTables;
use licensd_engine::image::{GroupImage, ServicePlanImage, TenantImage};
use licensd_engine::{Engine, GroupNestingImage, SkuDefinition, TenantSettings, Uuid};
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
/// in a snapshot changes (the engine's image types and dense users included): the test
/// `the_snapshot_encoding_is_pinned` fails until then. Format 1 held one image per user, 2 the
/// dense users with their states inline.
pub const SNAPSHOT_FORMAT: u32 = 3;

/// A snapshot further behind the tenant than this many versions is not used: the tenant is
/// loaded from its tables instead (catching up costs about a millisecond a version on a large
/// tenant, a full load of 1,000,000 users several seconds), and the runtime writes a fresh one.
pub const MAX_VERSIONS_BEHIND: u64 = 5_000;

/// The writing store's version, also part of the tag: another release never reads it.
const STORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything of a tenant but its users, and the tables its dense users refer to.
#[derive(Serialize, Deserialize)]
struct Head {
    // The engine's image with no users ([`Engine::image_without_users`]).
    settings: TenantSettings,
    clock: u64,
    service_plans: Vec<ServicePlanImage>,
    skus: Vec<SkuDefinition>,
    groups: Vec<GroupImage>,
    queue: Vec<Uuid>,
    directory_attributes: Vec<(Uuid, String)>,
    group_nestings: Vec<GroupNestingImage>,
    /// What the dense users refer to by position.
    tables: DenseUserTables,
}

fn encoding_failed(error: postcard::Error) -> StoreError {
    StoreError::corrupt(format!("encoding the engine snapshot failed: {error}"))
}

/// Encodes a tenant's engine as a snapshot blob. Reads the engine only: call it on a copy
/// (`Engine::clone` shares the engine's storage, copy-on-write) to keep the tenant's lock
/// for no longer than the copy.
pub fn encode(engine: &Engine) -> Result<Vec<u8>, StoreError> {
    let dense = engine.dense_users();
    let TenantImage {
        settings,
        clock,
        service_plans,
        skus,
        groups,
        users: _,
        queue,
        directory_attributes,
        group_nestings,
    } = engine.image_without_users();
    let head = Head {
        settings,
        clock,
        service_plans,
        skus,
        groups,
        queue,
        directory_attributes,
        group_nestings,
        tables: dense.tables,
    };
    let mut blob = Vec::with_capacity(dense.bytes.len() + 64 * 1024);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(&SNAPSHOT_FORMAT.to_le_bytes());
    blob.push(STORE_VERSION.len() as u8);
    blob.extend_from_slice(STORE_VERSION.as_bytes());
    let checksum_at = blob.len();
    blob.extend_from_slice(&[0; 4]);
    let body_at = blob.len();
    blob = postcard::to_extend(&head, blob).map_err(encoding_failed)?;
    blob.extend_from_slice(&dense.bytes);
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

/// Why a snapshot was not used (or failed): a store error or the engine's refusal.
fn restore_failed(error: licensd_engine::image::RestoreError) -> StoreError {
    StoreError::Restore(error)
}

/// Rebuilds an engine from a snapshot blob (after checking its tag and checksum): the head
/// decoded, the users restored straight from the blob's dense part.
pub fn restore(blob: &[u8]) -> Result<Engine, StoreError> {
    let (head, users): (Head, &[u8]) = postcard::take_from_bytes(body(blob)?).map_err(decoding_failed)?;
    let image = TenantImage {
        settings: head.settings,
        clock: head.clock,
        service_plans: head.service_plans,
        skus: head.skus,
        groups: head.groups,
        users: Vec::new(),
        queue: head.queue,
        directory_attributes: head.directory_attributes,
        group_nestings: head.group_nestings,
    };
    Engine::from_dense_image(image, &head.tables, users).map_err(restore_failed)
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

/// The tenant's stored snapshot's version and format, and the tenant's version.
fn read_tag<D: Database>(database: &mut D, tenant_id: Uuid) -> Result<Option<(u64, i64, u64)>, StoreError> {
    let row = database.query_optional(
        "reading the engine snapshot's tag",
        "SELECT s.version, s.format, t.version FROM engine_snapshots s
         JOIN tenants t ON t.tenant_key = s.tenant_key WHERE t.tenant_id = $1",
        &[Param::Id(tenant_id)],
        |row| Ok((row.integer(0)?, row.integer(1)?, row.integer(2)?)),
    )?;
    row.map(|(version, format, tenant_version)| {
        Ok((
            logical_time(version, "the snapshot version")?,
            format,
            logical_time(tenant_version, "the tenant version")?,
        ))
    })
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
    max_versions_behind: u64,
) -> Result<Result<Started, String>, StoreError> {
    // The tag first: a snapshot too far behind is not read at all.
    let Some((tagged_version, _, tenant_version)) = read_tag(database, tenant_id)? else {
        return Ok(Err(String::new()));
    };
    let behind = tenant_version.saturating_sub(tagged_version);
    if behind > max_versions_behind {
        return Ok(Err(format!(
            "the snapshot's version {tagged_version} is {behind} versions behind the tenant's \
             {tenant_version}, more than the {max_versions_behind} a start catches up"
        )));
    }
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
    max_versions_behind: u64,
    full_load: impl FnOnce(&mut D) -> Result<(Engine, u64), StoreError>,
) -> Result<Started, StoreError> {
    let fallback = match from_snapshot(database, tenant_id, max_versions_behind)? {
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
