//! licensd's storage layer: tenants, their catalog and directory, license assignment states and
//! the durable work queue, in SQLite (embedded, the default) or PostgreSQL (several instances on
//! one database). **Only this crate writes SQL.**
//!
//! - [`Store::open`] connects and applies the missing migrations; it refuses a database whose
//!   schema is newer than this binary ([`StoreError::SchemaTooNew`]).
//! - [`Store::write`] applies a [`WriteBatch`] — what one accepted command or one processing step
//!   changed, built with [`WriteBatch::from_command_outcome`] or
//!   [`WriteBatch::from_process_report`] — in one transaction that also stores the queue entries,
//!   the logical clock, the tenant's new version and a [`TenantChange`] record. On PostgreSQL the
//!   writers of one tenant are serialized by an advisory lock; `expected_version` makes a write
//!   fail with [`StoreError::Conflict`] if another instance wrote first.
//! - [`Store::load_tenant`] reads a consistent snapshot of a tenant back as the engine's
//!   [`TenantImage`], ready for `Engine::from_image`.
//! - Processing leases ([`Store::try_acquire_processing_lease`]) let one instance at a time
//!   process a tenant's queue, and another take over when the lease expires.
//!
//! The schema (`src/migrations/<backend>/*.sql`) gives every row a `tenant_key`. Products,
//! groups and users are GUIDs at the API and per-tenant integer keys in the tables, handed out
//! in creation order and never reused: the key order is the engine's order, state rows stay a
//! few dozen bytes, and a processing step writes neighbouring rows. Plan sets are bitsets over
//! per-tenant plan numbers and error causes a tagged binary encoding (`codec.rs`).
//!
//! Each routine is written once: the order of a write in `write.rs`, loading in `load.rs`,
//! leases, migrations, tokens and audit in their modules, all over the backend traits of
//! `sql.rs` (`Session`: shared statements in one dialect) and `write.rs` (`WriteTransaction`:
//! the bulk statements of a write). `sqlite.rs` and `postgres.rs` implement those traits and
//! nothing else of substance: dialect, bulk paths, locks, PostgreSQL's change notices.
//!
//! The API is synchronous: call it from blocking threads. A `Store` is one connection; open one
//! per thread that needs the database.

mod alert_digests;
mod alerts;
mod batch;
mod catch_up;
mod change_events;
mod change_subscriptions;
mod codec;
mod error;
mod lease;
mod load;
mod migration;
mod nesting;
mod outbox;
mod postgres;
mod reads;
mod reclamation;
mod security;
pub mod snapshot;
mod spend;
mod sql;
mod sqlite;
mod subscriptions;
mod write;

use std::time::Duration;

use licensd_engine::image::TenantImage;
use licensd_engine::{Engine, TenantSettings, Uuid};

pub use crate::alert_digests::{HeldDigest, PendingDigest};
pub use crate::alerts::{AlertFiring, AlertFormat, AlertRuleRecord};
pub use crate::batch::{ChangeNotice, StateKey, TenantChange, WriteBatch};
pub use crate::catch_up::{unwritten_change, CatchUp};
pub use crate::change_events::{
    ChangeEvent, ChangeEventEntry, DeliveryEvents, EventDelivery, ExpansionLimits, ExpansionStep, FanOut,
};
pub use crate::change_subscriptions::ChangeSubscription;
pub use crate::error::StoreError;
pub use crate::migration::SCHEMA_VERSION;
pub use crate::outbox::{
    AttemptResult, ClaimedDelivery, DeliveryRecord, DeliveryStatus, OutboxEntry, OWNER_GRAPH_LIFECYCLE,
    OWNER_GRAPH_SUBSCRIPTION,
};
pub use crate::postgres::PostgresStore;
pub use crate::reclamation::{ReclamationNoticeRecord, ReclamationPolicyRecord};
pub use crate::security::{AccessTokenRecord, AuditQuery, AuditRecord, ModifiedProperty, StoredAuditRecord};
pub use crate::snapshot::{StartSource, Started};
pub use crate::spend::{SeatSnapshot, SkuPrice, UserActivityRecord};
pub use crate::sqlite::SqliteStore;
pub use crate::subscriptions::SubscriptionLifecycle;

/// Which database a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection to licensd's database, SQLite or PostgreSQL, with one set of operations.
pub enum Store {
    Sqlite(SqliteStore),
    /// Boxed: a PostgreSQL client is several times larger than a SQLite connection.
    Postgres(Box<PostgresStore>),
}

/// Runs one of the store's routines, written once over the backend traits (`sql::Session`,
/// `sql::Database`, `write::WriteBackend`), on this store's backend.
macro_rules! dispatch {
    ($store:expr, $backend:ident => $call:expr) => {
        match $store {
            Store::Sqlite($backend) => $call,
            Store::Postgres(boxed) => {
                let $backend: &mut PostgresStore = boxed;
                $call
            }
        }
    };
}

/// Where `open` finds the database: a SQLite path or a PostgreSQL URL.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

fn locate(url: &str) -> Result<Location<'_>, StoreError> {
    let invalid = |reason: &str| StoreError::InvalidUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url));
    }
    let path = if let Some(path) = url.strip_prefix("sqlite://") {
        path
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        path
    } else if url.contains("://") {
        return Err(invalid(
            "expected a SQLite path, sqlite://path or postgres://user@host/database",
        ));
    } else {
        url
    };
    if path.is_empty() {
        return Err(invalid("the SQLite path is empty"));
    }
    Ok(Location::Sqlite(path))
}

impl Store {
    /// Opens the database at `url` — a SQLite path (`licensd.db`, `sqlite://data/licensd.db`,
    /// `sqlite:///var/lib/licensd.db`; created if missing) or a PostgreSQL URL
    /// (`postgres://user@host:5432/database`, parameters such as `options=-csearch_path%3Dx`
    /// allowed) — and applies the missing migrations.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        match locate(url)? {
            Location::Sqlite(path) => Ok(Store::Sqlite(SqliteStore::open(path)?)),
            Location::Postgres(url) => Ok(Store::Postgres(Box::new(PostgresStore::open(url)?))),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// The schema version the database is at (after `open`, [`SCHEMA_VERSION`]).
    pub fn schema_version(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => migration::applied_version(store))
    }

    /// Stores an access token (its secret's hash only) for its tenant.
    pub fn create_access_token(&mut self, token: &AccessTokenRecord) -> Result<(), StoreError> {
        dispatch!(self, store => security::create_access_token(store, token, &[]))
    }

    /// Stores an access token and its audit records in one transaction.
    pub fn create_access_token_audited(
        &mut self,
        token: &AccessTokenRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => security::create_access_token(store, token, audit))
    }

    /// The token with this id, in whichever tenant it belongs to.
    pub fn access_token(&mut self, token_id: Uuid) -> Result<Option<AccessTokenRecord>, StoreError> {
        dispatch!(self, store => security::access_token(store, token_id))
    }

    /// The stored tokens among `token_ids` (any tenant's, in no particular order; ids not
    /// stored are left out): how an instance re-reads the tokens it remembers.
    pub fn access_tokens_by_id(&mut self, token_ids: &[Uuid]) -> Result<Vec<AccessTokenRecord>, StoreError> {
        dispatch!(self, store => security::access_tokens_by_id(store, token_ids))
    }

    /// A tenant's tokens, oldest first (revoked and expired ones included).
    pub fn access_tokens(&mut self, tenant_id: Uuid) -> Result<Vec<AccessTokenRecord>, StoreError> {
        dispatch!(self, store => security::access_tokens(store, tenant_id))
    }

    /// Revokes a tenant's token (a token of another tenant is not found: `Ok(false)`). Revoking
    /// twice keeps the first time. On PostgreSQL the revoking transaction also announces the
    /// revocation to every listening instance ([`Store::take_token_notices`]).
    pub fn revoke_access_token(
        &mut self,
        tenant_id: Uuid,
        token_id: Uuid,
        at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => security::revoke_access_token(store, tenant_id, token_id, at, &[]))
    }

    /// Revokes a tenant's token and, when it was found, writes its audit records in the same
    /// transaction.
    pub fn revoke_access_token_audited(
        &mut self,
        tenant_id: Uuid,
        token_id: Uuid,
        at: i64,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => security::revoke_access_token(store, tenant_id, token_id, at, audit))
    }

    /// Writes deliveries to the outbox on their own (not caused by a write batch: an alert, a
    /// lifecycle notification), due now. Prefer [`WriteBatch::outbox`] for deliveries a change
    /// causes, so they commit with it.
    pub fn enqueue_deliveries(&mut self, tenant_id: Uuid, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        dispatch!(self, store => outbox::enqueue(store, tenant_id, entries))
    }

    /// Claims up to `limit` due deliveries of every tenant for `worker_id`, each for `lease`
    /// (counted as an attempt); another worker claims a row again only after its lease ends.
    pub fn claim_deliveries(
        &mut self,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        let lease = lease.as_millis().min(i64::MAX as u128) as i64;
        match self {
            Store::Sqlite(store) => outbox::claim(store, outbox::CLAIM_SQLITE, worker_id, limit, lease),
            Store::Postgres(store) => {
                outbox::claim(store.as_mut(), outbox::CLAIM_POSTGRES, worker_id, limit, lease)
            }
        }
    }

    /// Records a claimed delivery as delivered; `false` when `worker_id` no longer held it.
    pub fn complete_delivery(
        &mut self,
        delivery_id: i64,
        worker_id: &str,
        result: &AttemptResult<'_>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => outbox::complete(store, delivery_id, worker_id, result))
    }

    /// Records several claimed deliveries as delivered (`(delivery id, HTTP status)`) in one
    /// transaction; for each, whether `worker_id` still held it.
    pub fn complete_deliveries(
        &mut self,
        worker_id: &str,
        delivered: &[(i64, u16)],
    ) -> Result<Vec<bool>, StoreError> {
        dispatch!(self, store => outbox::complete_all(store, worker_id, delivered))
    }

    /// Schedules a claimed delivery's next attempt `retry_in` from now, and delays the owner's
    /// other pending deliveries as long (a failing endpoint is throttled); `false` when
    /// `worker_id` no longer held it.
    pub fn retry_delivery(
        &mut self,
        delivery: &ClaimedDelivery,
        worker_id: &str,
        retry_in: Duration,
        result: &AttemptResult<'_>,
    ) -> Result<bool, StoreError> {
        let retry_in = retry_in.as_millis().min(i64::MAX as u128) as i64;
        dispatch!(self, store => outbox::retry(store, delivery, worker_id, retry_in, result))
    }

    /// Gives a claimed delivery up; `false` when `worker_id` no longer held it.
    pub fn abandon_delivery(
        &mut self,
        delivery_id: i64,
        worker_id: &str,
        result: &AttemptResult<'_>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => outbox::abandon(store, delivery_id, worker_id, result))
    }

    /// Ends every lease `worker_id` holds (a worker of the same id starting again after its
    /// process died): its rows are claimed again at once instead of after their lease.
    pub fn release_delivery_leases(&mut self, worker_id: &str) -> Result<u64, StoreError> {
        dispatch!(self, store => outbox::release_leases(store, worker_id))
    }

    /// How long until the next pending delivery is due (`Duration::ZERO`: now); `None` when
    /// none is pending.
    pub fn next_delivery_due(&mut self) -> Result<Option<Duration>, StoreError> {
        let due = dispatch!(self, store => outbox::next_due_in(store))?;
        Ok(due.map(|milliseconds| Duration::from_millis(milliseconds.max(0) as u64)))
    }

    /// A tenant's deliveries, newest first (of one owner, or all), at most `limit`.
    pub fn deliveries(
        &mut self,
        tenant_id: Uuid,
        owner_id: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        dispatch!(self, store => outbox::deliveries(store, tenant_id, owner_id, limit))
    }

    /// Deletes deliveries settled before `older_than` (ms since the epoch); returns how many.
    pub fn prune_deliveries(&mut self, older_than: i64) -> Result<u64, StoreError> {
        dispatch!(self, store => outbox::prune(store, older_than))
    }

    /// How many deliveries of every tenant are pending.
    pub fn pending_deliveries(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => outbox::pending_count(store))
    }

    /// One step of the expansion of change events into deliveries, in one short transaction
    /// ([`ExpansionStep`]): when a range of events is pending, the deliveries of its next
    /// `limits.subscriptions` subscriptions — `fan_out(tenant, those subscriptions, the range's events)`, written
    /// to the outbox due now, without a body (each names the range, rendered when sent) — with
    /// the range's cursor moved past them (the range deleted after its last chunk, and the
    /// expanded events nothing reaches any more with it); otherwise waiting events (oldest
    /// first, of every tenant; at most `limits.events` and `limits.change_bytes` of encoded
    /// changes) fixed as one range per tenant. A restart between steps
    /// goes on where the last committed one ended. On PostgreSQL, events and ranges another
    /// instance is working on are skipped.
    pub fn expand_change_events_step(
        &mut self,
        limits: &ExpansionLimits,
        fan_out: &mut FanOut<'_>,
    ) -> Result<ExpansionStep, StoreError> {
        match self {
            Store::Sqlite(store) => {
                change_events::expand_step(store, &change_events::STATEMENTS_SQLITE, limits, fan_out)
            }
            Store::Postgres(store) => change_events::expand_step(
                store.as_mut(),
                &change_events::STATEMENTS_POSTGRES,
                limits,
                fan_out,
            ),
        }
    }

    /// Expands every waiting change event (and finishes every pending range) into deliveries,
    /// step after step ([`Store::expand_change_events_step`] with `limits`) until nothing is
    /// left; returns how many events this call
    /// fixed into ranges (0: none was waiting).
    pub fn expand_change_events(
        &mut self,
        limits: &ExpansionLimits,
        fan_out: &mut FanOut<'_>,
    ) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(store) => {
                change_events::expand(store, &change_events::STATEMENTS_SQLITE, limits, fan_out)
            }
            Store::Postgres(store) => change_events::expand(
                store.as_mut(),
                &change_events::STATEMENTS_POSTGRES,
                limits,
                fan_out,
            ),
        }
    }

    /// How many ranges of change events are being expanded (fixed, not every chunk written).
    pub fn pending_change_expansions(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => change_events::pending_expansions(store))
    }

    /// How many change events wait for their expansion into deliveries, of every tenant.
    pub fn pending_change_events(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => change_events::pending_count(store))
    }

    /// How many change events are stored, expanded or not, of every tenant (expanded ones stay
    /// while a pending delivery covers them).
    pub fn stored_change_events(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => change_events::stored_count(store))
    }

    /// Deletes the expanded change events no pending delivery covers; returns how many.
    pub fn prune_change_events(&mut self) -> Result<u64, StoreError> {
        dispatch!(self, store => change_events::prune(store))
    }

    /// A tenant's change events `first_event..=last_event` still stored, oldest first: what a
    /// claimed delivery's body is rendered from ([`ClaimedDelivery::events`]).
    pub fn change_events_between(
        &mut self,
        tenant_id: Uuid,
        first_event: i64,
        last_event: i64,
    ) -> Result<Vec<ChangeEvent>, StoreError> {
        dispatch!(self, store => change_events::between(store, tenant_id, first_event, last_event))
    }

    /// Every change subscription of the tenant (expired and removed ones too), oldest first.
    pub fn change_subscriptions(&mut self, tenant_id: Uuid) -> Result<Vec<ChangeSubscription>, StoreError> {
        dispatch!(self, store => change_subscriptions::subscriptions(store, tenant_id))
    }

    /// Stores a new change subscription with its `audit` records, in one transaction (announced
    /// to other instances on PostgreSQL).
    pub fn create_change_subscription(
        &mut self,
        tenant_id: Uuid,
        subscription: &ChangeSubscription,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => change_subscriptions::create(store, tenant_id, subscription, audit))
    }

    /// Sets a subscription's expiry, with its `audit` records in the same transaction; `false`
    /// (and nothing written) when the tenant has no such (unremoved) one.
    pub fn renew_change_subscription(
        &mut self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        expires_at: i64,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => change_subscriptions::renew(store, tenant_id, subscription_id, expires_at, audit))
    }

    /// Deletes a subscription, with its `audit` records in the same transaction; `false` (and
    /// nothing written) when the tenant has none of this id.
    pub fn delete_change_subscription(
        &mut self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => change_subscriptions::delete(store, tenant_id, subscription_id, audit))
    }

    /// Marks a subscription removed (its endpoint kept failing); `false` if it already was.
    pub fn remove_change_subscription(
        &mut self,
        tenant_id: Uuid,
        subscription_id: Uuid,
        at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => change_subscriptions::mark_removed(store, tenant_id, subscription_id, at))
    }

    /// The tenants whose subscriptions other instances changed, among the notices
    /// [`Store::wait_for_changes`] received since the last call. SQLite has no notices: none.
    pub fn take_subscription_notices(&mut self) -> Vec<Uuid> {
        match self {
            Store::Sqlite(_) => Vec::new(),
            Store::Postgres(store) => store.take_subscription_notices(),
        }
    }

    /// Writes audit records that belong to no write batch (refused changes, token changes).
    pub fn append_audit(&mut self, tenant_id: Uuid, records: &[AuditRecord]) -> Result<(), StoreError> {
        dispatch!(self, store => security::append_audit(store, tenant_id, records))
    }

    /// A tenant's audit records matching `query`, newest first.
    pub fn audit_records(
        &mut self,
        tenant_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        dispatch!(self, store => security::audit_records(store, tenant_id, query))
    }

    /// Deletes the audit records of every tenant older than `older_than` (ms since the epoch);
    /// returns how many.
    pub fn prune_audit(&mut self, older_than: i64) -> Result<u64, StoreError> {
        dispatch!(self, store => security::prune_audit(store, older_than))
    }

    /// Stores a new, empty tenant at version 0 with logical clock 0.
    pub fn create_tenant(&mut self, settings: &TenantSettings) -> Result<(), StoreError> {
        dispatch!(self, store => store.create_tenant(settings))
    }

    /// Creates a new tenant and writes `batch` to it in one transaction (an import, a generated
    /// tenant): when anything fails — the tenant exists, the batch is invalid, the database
    /// refuses a row — neither the tenant nor anything of the batch is stored. Returns the
    /// tenant's version after the write (1).
    pub fn create_tenant_with(
        &mut self,
        settings: &TenantSettings,
        batch: &WriteBatch,
    ) -> Result<u64, StoreError> {
        dispatch!(self, store => write::write(store, settings.tenant_id, std::slice::from_ref(batch), Some(settings)))
    }

    /// Every stored tenant, oldest first.
    pub fn tenant_ids(&mut self) -> Result<Vec<Uuid>, StoreError> {
        dispatch!(self, store => reads::tenant_ids(store))
    }

    /// The tenant's version: the number of writes applied to it.
    pub fn tenant_version(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        dispatch!(self, store => reads::tenant_version(store, tenant_id))
    }

    /// Every tenant's version, in one query (the periodic check of instances that missed a
    /// notice).
    pub fn tenant_versions(&mut self) -> Result<Vec<(Uuid, u64)>, StoreError> {
        dispatch!(self, store => reads::tenant_versions(store))
    }

    /// Subscribes this connection to the notices committed writes send (PostgreSQL `LISTEN`;
    /// every write sends one inside its transaction). SQLite serves one instance: nothing to do.
    pub fn listen_for_changes(&mut self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.listen_for_changes(),
        }
    }

    /// Waits up to `timeout` for notices of committed writes (after
    /// [`Store::listen_for_changes`]) and returns those received. SQLite has no notices: it
    /// waits `timeout` and returns none (compare [`Store::tenant_versions`] instead).
    pub fn wait_for_changes(&mut self, timeout: Duration) -> Result<Vec<ChangeNotice>, StoreError> {
        match self {
            Store::Sqlite(_) => {
                std::thread::sleep(timeout);
                Ok(Vec::new())
            }
            Store::Postgres(store) => store.wait_for_changes(timeout),
        }
    }

    /// The tokens whose revocation was announced (PostgreSQL `NOTIFY` inside the revoking
    /// transaction) among the notices [`Store::wait_for_changes`] received since the last call.
    /// SQLite has no notices: none.
    pub fn take_token_notices(&mut self) -> Vec<Uuid> {
        match self {
            Store::Sqlite(_) => Vec::new(),
            Store::Postgres(store) => store.take_token_notices(),
        }
    }

    /// A consistent snapshot of the whole tenant and the version it reflects. Users, groups,
    /// products and plans come in the engine's order, with every logical time as written.
    pub fn load_tenant(&mut self, tenant_id: Uuid) -> Result<(TenantImage, u64), StoreError> {
        dispatch!(self, store => load::load_tenant(store, tenant_id, &mut |_| {}))
    }

    /// A consistent snapshot of the whole tenant as an engine, and the version it reflects:
    /// exactly `Engine::from_image` of [`Store::load_tenant`]'s image (the start-up path). On
    /// PostgreSQL the engine is rebuilt on a second thread while the rows are read (waiting for
    /// the server leaves a core free: 8.86 s instead of 10.88 s for 1M users on an idle 2-core
    /// machine); SQLite reads as fast as one core decodes, so there the image is read first and
    /// rebuilt after (5.95 s instead of 6.54 s pipelined; BENCHMARKS.md, "Issue 14 on a quiet
    /// machine").
    pub fn load_engine(&mut self, tenant_id: Uuid) -> Result<(Engine, u64), StoreError> {
        match self {
            Store::Sqlite(store) => {
                let (image, version) = load::load_tenant(store, tenant_id, &mut |_| {})?;
                let engine = Engine::from_image(image).map_err(StoreError::Restore)?;
                Ok((engine, version))
            }
            Store::Postgres(store) => {
                load::load_engine(store.as_mut(), tenant_id, load::CHUNK_USERS, &mut |_| {})
            }
        }
    }

    /// The tenant's engine for a start: its stored engine snapshot ([`snapshot`]) brought up to
    /// the stored version through the change log, or — when there is none, or it is of another
    /// format, damaged, older than the log reaches, or more than
    /// [`snapshot::MAX_VERSIONS_BEHIND`] versions behind — [`Store::load_engine`]. The result
    /// says which, and why a snapshot was not used.
    pub fn start_engine(&mut self, tenant_id: Uuid) -> Result<Started, StoreError> {
        self.start_engine_within(tenant_id, snapshot::MAX_VERSIONS_BEHIND)
    }

    /// [`Store::start_engine`] using the snapshot only when it is at most `max_versions_behind`
    /// versions behind the tenant.
    pub fn start_engine_within(
        &mut self,
        tenant_id: Uuid,
        max_versions_behind: u64,
    ) -> Result<Started, StoreError> {
        match self {
            Store::Sqlite(store) => snapshot::start_engine(store, tenant_id, max_versions_behind, |store| {
                let (image, version) = load::load_tenant(store, tenant_id, &mut |_| {})?;
                let engine = Engine::from_image(image).map_err(StoreError::Restore)?;
                Ok((engine, version))
            }),
            Store::Postgres(store) => {
                snapshot::start_engine(store.as_mut(), tenant_id, max_versions_behind, |store| {
                    load::load_engine(store, tenant_id, load::CHUNK_USERS, &mut |_| {})
                })
            }
        }
    }

    /// Stores `blob` ([`snapshot::encode`] of the engine at `version`) as the tenant's
    /// engine snapshot, unless a newer one is stored. Returns whether it was stored.
    pub fn write_engine_snapshot(
        &mut self,
        tenant_id: Uuid,
        version: u64,
        blob: &[u8],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => snapshot::write(store, tenant_id, version, blob))
    }

    /// The version of the tenant's stored engine snapshot, if it has one.
    pub fn engine_snapshot_version(&mut self, tenant_id: Uuid) -> Result<Option<u64>, StoreError> {
        dispatch!(self, store => snapshot::stored_version(store, tenant_id))
    }

    /// [`Store::load_engine`] handing the users over `chunk_users` at a time (at least one),
    /// calling `phase` with the name of each step as it ends (for benchmarks and tests).
    pub fn load_engine_with_phases(
        &mut self,
        tenant_id: Uuid,
        chunk_users: usize,
        phase: &mut dyn FnMut(&'static str),
    ) -> Result<(Engine, u64), StoreError> {
        dispatch!(self, store => load::load_engine(store, tenant_id, chunk_users, phase))
    }

    /// [`Store::load_tenant`], calling `phase` with the name of each step of the load as it
    /// ends (for benchmarks).
    pub fn load_tenant_with_phases(
        &mut self,
        tenant_id: Uuid,
        phase: &mut dyn FnMut(&'static str),
    ) -> Result<(TenantImage, u64), StoreError> {
        dispatch!(self, store => load::load_tenant(store, tenant_id, phase))
    }

    /// What brings an engine that reflects the tenant at `after_version` to the stored version,
    /// read in one snapshot: a patch of the entities the writes since touched (plus those `also`
    /// names), or that only a full reload can (see [`CatchUp`] and `catch_up.rs`).
    pub fn catch_up(
        &mut self,
        tenant_id: Uuid,
        after_version: u64,
        also: Option<&TenantChange>,
    ) -> Result<CatchUp, StoreError> {
        dispatch!(self, store => catch_up::read_catch_up(store, tenant_id, after_version, also))
    }

    /// Applies `batch` to the tenant in one transaction and returns the tenant's new version.
    /// Nothing is written when it fails.
    pub fn write(&mut self, tenant_id: Uuid, batch: &WriteBatch) -> Result<u64, StoreError> {
        dispatch!(self, store => write::write(store, tenant_id, std::slice::from_ref(batch), None))
    }

    /// Writes `batches` in order in one transaction (one lock, one commit), each batch with its
    /// own version and change record, as if each were written by [`Store::write`] in turn — except
    /// that all or none are written. A batch's `expected_version` is checked against the version
    /// the batches before it left. Returns the version of the last batch.
    pub fn write_all(&mut self, tenant_id: Uuid, batches: &[WriteBatch]) -> Result<u64, StoreError> {
        dispatch!(self, store => write::write(store, tenant_id, batches, None))
    }

    /// The work queue, first in first out.
    pub fn queue(&mut self, tenant_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        dispatch!(self, store => reads::queue(store, tenant_id))
    }

    /// The number of queued users.
    pub fn queue_len(&mut self, tenant_id: Uuid) -> Result<u64, StoreError> {
        dispatch!(self, store => reads::queue_len(store, tenant_id))
    }

    /// The change records of the writes after `after_version`, oldest first, so an instance
    /// holding the tenant at `after_version` can catch up.
    pub fn changes_since(
        &mut self,
        tenant_id: Uuid,
        after_version: u64,
    ) -> Result<Vec<TenantChange>, StoreError> {
        dispatch!(self, store => reads::changes_since(store, tenant_id, after_version))
    }

    /// The tenant's license alert rules, oldest first.
    pub fn alert_rules(&mut self, tenant_id: Uuid) -> Result<Vec<AlertRuleRecord>, StoreError> {
        dispatch!(self, store => alerts::alert_rules(store, tenant_id))
    }

    /// Every tenant's alert rules, by tenant id (one statement).
    pub fn all_alert_rules(&mut self) -> Result<Vec<(Uuid, AlertRuleRecord)>, StoreError> {
        dispatch!(self, store => alerts::all_alert_rules(store))
    }

    /// Adds an alert rule with its audit records in one transaction that, on PostgreSQL,
    /// announces it to every listening instance ([`Store::take_alert_rules_notices`]).
    pub fn insert_alert_rule(
        &mut self,
        tenant_id: Uuid,
        rule: &AlertRuleRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => alerts::insert_alert_rule(store, tenant_id, rule, audit))
    }

    /// Removes an alert rule with its audit records (`Ok(false)`: no such rule, nothing written).
    pub fn delete_alert_rule(
        &mut self,
        tenant_id: Uuid,
        rule_id: Uuid,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => alerts::delete_alert_rule(store, tenant_id, rule_id, audit))
    }

    /// The (rule, subject) pairs a tenant's periodic alert rules are firing for.
    pub fn alert_firings(&mut self, tenant_id: Uuid) -> Result<Vec<(Uuid, String)>, StoreError> {
        dispatch!(self, store => alerts::alert_firings(store, tenant_id))
    }

    /// Records a periodic alert check's findings with the alerts of the subjects that start
    /// firing, in one transaction; returns how many alerts were written.
    pub fn record_alert_firings(
        &mut self,
        tenant_id: Uuid,
        findings: &[AlertFiring],
        at: i64,
    ) -> Result<usize, StoreError> {
        dispatch!(self, store => alerts::record_alert_firings(store, tenant_id, findings, at))
    }

    /// The held alert digests (of every tenant) whose window closed at or before `now`, at
    /// most `limit`, the earliest closed first.
    pub fn due_alert_digests(&mut self, now: i64, limit: usize) -> Result<Vec<PendingDigest>, StoreError> {
        dispatch!(self, store => alert_digests::due_digests(store, now, limit))
    }

    /// Releases a held alert digest: deleted, and its message (if any) written to the outbox, in
    /// one transaction; `Ok(false)` when it is no longer as read (released elsewhere, or grown).
    pub fn release_alert_digest(
        &mut self,
        digest: &PendingDigest,
        message: Option<&OutboxEntry>,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => alert_digests::release_digest(store, digest, message))
    }

    /// The tenants whose alert rules another instance changed, announced since the last call
    /// (PostgreSQL; always empty on SQLite).
    pub fn take_alert_rules_notices(&mut self) -> Vec<Uuid> {
        match self {
            Store::Sqlite(_) => Vec::new(),
            Store::Postgres(store) => store.take_alert_rules_notices(),
        }
    }

    /// The subscription lifecycles of the tenant's products (those that have one), by `skuId`.
    pub fn subscription_lifecycles(
        &mut self,
        tenant_id: Uuid,
    ) -> Result<Vec<SubscriptionLifecycle>, StoreError> {
        dispatch!(self, store => subscriptions::subscription_lifecycles(store, tenant_id))
    }

    /// Creates or replaces one product's subscription lifecycle.
    pub fn set_subscription_lifecycle(
        &mut self,
        tenant_id: Uuid,
        lifecycle: &SubscriptionLifecycle,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => subscriptions::set_subscription_lifecycle(store, tenant_id, lifecycle))
    }

    /// The prices of the tenant's products (those that have one), by `skuId`.
    pub fn sku_prices(&mut self, tenant_id: Uuid) -> Result<Vec<SkuPrice>, StoreError> {
        dispatch!(self, store => spend::sku_prices(store, tenant_id))
    }

    /// Sets (`Some`) or removes (`None`) a product's price, with its audit records, in one
    /// transaction.
    pub fn set_sku_price(
        &mut self,
        tenant_id: Uuid,
        sku_id: Uuid,
        price: Option<&SkuPrice>,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => spend::set_sku_price(store, tenant_id, sku_id, price, audit))
    }

    /// One user's activity, if any is known.
    pub fn user_activity(
        &mut self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<UserActivityRecord>, StoreError> {
        dispatch!(self, store => spend::user_activity(store, tenant_id, user_id))
    }

    /// Every user's stored activity.
    pub fn all_user_activity(&mut self, tenant_id: Uuid) -> Result<Vec<UserActivityRecord>, StoreError> {
        dispatch!(self, store => spend::all_user_activity(store, tenant_id))
    }

    /// The activity of the users who may be idle: leave date at or before `now`, or last
    /// sign-in at or before `signed_in_before`.
    pub fn possibly_idle_activity(
        &mut self,
        tenant_id: Uuid,
        now: i64,
        signed_in_before: i64,
    ) -> Result<Vec<UserActivityRecord>, StoreError> {
        dispatch!(self, store => spend::possibly_idle_activity(store, tenant_id, now, signed_in_before))
    }

    /// Replaces the activity of each given user (neither date: removed), with audit records,
    /// in one transaction.
    pub fn set_user_activity(
        &mut self,
        tenant_id: Uuid,
        records: &[UserActivityRecord],
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => spend::set_user_activity(store, tenant_id, records, audit))
    }

    /// Stores seat snapshots.
    pub fn record_seat_snapshots(
        &mut self,
        tenant_id: Uuid,
        snapshots: &[SeatSnapshot],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => spend::record_seat_snapshots(store, tenant_id, snapshots))
    }

    /// A product's seat snapshots taken in `[from, to]` (milliseconds), oldest first.
    pub fn seat_history(
        &mut self,
        tenant_id: Uuid,
        sku_id: Uuid,
        from: i64,
        to: i64,
    ) -> Result<Vec<SeatSnapshot>, StoreError> {
        dispatch!(self, store => spend::seat_history(store, tenant_id, sku_id, from, to))
    }

    /// The latest seat snapshot of each product that has one.
    pub fn latest_seat_snapshots(&mut self, tenant_id: Uuid) -> Result<Vec<SeatSnapshot>, StoreError> {
        dispatch!(self, store => spend::latest_seat_snapshots(store, tenant_id))
    }

    /// The tenant's reclamation policies, oldest first.
    pub fn reclamation_policies(
        &mut self,
        tenant_id: Uuid,
    ) -> Result<Vec<ReclamationPolicyRecord>, StoreError> {
        dispatch!(self, store => reclamation::reclamation_policies(store, tenant_id))
    }

    /// Creates or replaces a reclamation policy, with its audit records, in one transaction.
    pub fn put_reclamation_policy(
        &mut self,
        tenant_id: Uuid,
        policy: &ReclamationPolicyRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => reclamation::put_reclamation_policy(store, tenant_id, policy, audit))
    }

    /// Deletes a reclamation policy and its notices; `false` when there was none.
    pub fn delete_reclamation_policy(
        &mut self,
        tenant_id: Uuid,
        policy_id: Uuid,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => reclamation::delete_reclamation_policy(store, tenant_id, policy_id, audit))
    }

    /// The reclamation notices of a tenant, or of one of its policies.
    pub fn reclamation_notices(
        &mut self,
        tenant_id: Uuid,
        policy_id: Option<Uuid>,
    ) -> Result<Vec<ReclamationNoticeRecord>, StoreError> {
        dispatch!(self, store => reclamation::reclamation_notices(store, tenant_id, policy_id))
    }

    /// Records a run of a policy: its notices replaced, its last run, the run's audit records.
    pub fn record_reclamation_run(
        &mut self,
        tenant_id: Uuid,
        policy_id: Uuid,
        ran_at: i64,
        notices: &[ReclamationNoticeRecord],
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => reclamation::record_reclamation_run(store, tenant_id, policy_id, ran_at, notices, audit, &[]))
    }

    /// [`Store::record_reclamation_run`] with the run's alerts: outbox rows written in the same
    /// transaction.
    pub fn record_reclamation_run_alerting(
        &mut self,
        tenant_id: Uuid,
        policy_id: Uuid,
        ran_at: i64,
        notices: &[ReclamationNoticeRecord],
        audit: &[AuditRecord],
        outbox: &[OutboxEntry],
    ) -> Result<(), StoreError> {
        dispatch!(self, store => reclamation::record_reclamation_run(store, tenant_id, policy_id, ran_at, notices, audit, outbox))
    }

    /// One audit record by its id.
    pub fn audit_record(
        &mut self,
        tenant_id: Uuid,
        audit_id: Uuid,
    ) -> Result<Option<AuditRecord>, StoreError> {
        dispatch!(self, store => reclamation::audit_record(store, tenant_id, audit_id))
    }

    /// Takes the right to process the tenant's queue for `ttl`, by the database's clock. Returns
    /// `true` when `instance_id` holds the lease now: it was free, expired, or already this
    /// instance's (then it is extended).
    pub fn try_acquire_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => lease::try_acquire(store, tenant_id, instance_id, ttl))
    }

    /// Extends the lease by `ttl` from now. Returns `false` when `instance_id` no longer holds it
    /// (another instance took it over after it expired): stop processing then.
    pub fn renew_processing_lease(
        &mut self,
        tenant_id: Uuid,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        dispatch!(self, store => lease::renew(store, tenant_id, instance_id, ttl))
    }

    /// Holds the tenant's write lock across several calls (read the version, let the engine
    /// decide, write), so instances sharing a PostgreSQL database take turns instead of racing;
    /// release it with [`Store::unlock_tenant`]. SQLite serves one instance: nothing to do.
    pub fn lock_tenant(&mut self, tenant_id: Uuid) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.lock_tenant(tenant_id),
        }
    }

    /// Releases the lock [`Store::lock_tenant`] took.
    pub fn unlock_tenant(&mut self, tenant_id: Uuid) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.unlock_tenant(tenant_id),
        }
    }

    /// Gives the lease up, if `instance_id` holds it.
    pub fn release_processing_lease(&mut self, tenant_id: Uuid, instance_id: &str) -> Result<(), StoreError> {
        dispatch!(self, store => lease::release(store, tenant_id, instance_id))
    }

    /// The instance holding an unexpired lease on the tenant, if any.
    pub fn processing_lease_holder(&mut self, tenant_id: Uuid) -> Result<Option<String>, StoreError> {
        dispatch!(self, store => lease::holder(store, tenant_id))
    }

    /// Announces that `instance_id` processes queues, for `ttl` from now by the database's clock.
    /// The processors of all instances share the tenants out among the announced ones.
    pub fn announce_processing_instance(
        &mut self,
        instance_id: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        dispatch!(self, store => lease::announce_instance(store, instance_id, ttl))
    }

    /// Withdraws `instance_id`'s announcement (its processor stops).
    pub fn withdraw_processing_instance(&mut self, instance_id: &str) -> Result<(), StoreError> {
        dispatch!(self, store => lease::withdraw_instance(store, instance_id))
    }

    /// The processing instances whose announcement has not expired, in id order.
    pub fn live_processing_instances(&mut self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, store => lease::live_instances(store))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_the_backend() {
        assert_eq!(
            locate("licensd.db").expect("path"),
            Location::Sqlite("licensd.db")
        );
        assert_eq!(
            locate("sqlite://data/licensd.db").expect("sqlite url"),
            Location::Sqlite("data/licensd.db")
        );
        assert_eq!(
            locate("sqlite:///var/lib/licensd.db").expect("absolute sqlite url"),
            Location::Sqlite("/var/lib/licensd.db")
        );
        assert_eq!(
            locate("postgres://postgres@127.0.0.1/test").expect("postgres"),
            Location::Postgres("postgres://postgres@127.0.0.1/test")
        );
        assert!(matches!(locate("mysql://x"), Err(StoreError::InvalidUrl { .. })));
        assert!(matches!(locate("sqlite://"), Err(StoreError::InvalidUrl { .. })));
    }
}
