//! Tenant runtimes: each tenant's engine lives in memory as a cache of what the store holds.
//! Every write applies a command to the engine and persists exactly what it changed in one store
//! transaction; processing steps do the same for evaluated users. If the store refuses a write
//! (an error, or another instance wrote first), the engine is rebuilt from the store, so memory
//! never runs ahead of what is durable.
//!
//! Concurrent commands of one tenant are written together (group commit): one caller at a time
//! applies every command waiting and persists them in one store transaction, so the writes of
//! many clients cost one commit and one lock instead of one each.
//!
//! A write that queues users wakes the processor through the tenants' [`ProcessingSignal`]
//! instead of leaving them until its next poll. Writes of other instances are caught up as soon
//! as the processor's watcher hears of them ([`TenantRuntime::catch_up_to`]), not only before
//! this instance's next write.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use licensd_engine::{
    Command, CommandError, CommandOutcome, Engine, LicenseProcessingState, ProcessReport, StateChange,
    TenantSettings, Timestamp, Uuid,
};
use licensd_store::{AuditRecord, Store, StoreError, TenantChange, WriteBatch};

use crate::access::{Caller, CommandKind, Role};
use crate::audit;
use crate::notifications::ChangeNotifier;
use crate::statistics::ProcessingStatistics;

/// The current time for the engine.
pub fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

/// Why a command could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// The engine refused the command: nothing changed.
    #[error(transparent)]
    Refused(#[from] CommandError),
    /// The store failed: nothing changed (the engine was rebuilt from the store).
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("the tenant's stored state cannot be loaded: {0}")]
    Load(String),
    #[error("tenant {0} does not exist")]
    UnknownTenant(Uuid),
    /// The caller's role may not run the command: nothing changed.
    #[error("the {} role may not {}", role.display_name(), kind.description())]
    Forbidden { role: Role, kind: CommandKind },
    #[error("a lock was poisoned by a panic in another thread")]
    Poisoned,
}

/// How many times a write is tried when other instances keep writing the same tenant.
const WRITE_ATTEMPTS: usize = 32;

/// The shared store. SQLite connections are not shared between threads, so access is serialized.
pub type SharedStore = Arc<Mutex<Store>>;

/// Locks the shared store (an error only if another thread panicked while holding it).
pub fn lock_store(store: &SharedStore) -> Result<MutexGuard<'_, Store>, ExecuteError> {
    store.lock().map_err(|_| ExecuteError::Poisoned)
}

/// Wakes the background processor: every write that queues users notifies it, so processing
/// starts at once instead of after the processor's idle interval.
#[derive(Debug, Default)]
pub struct ProcessingSignal {
    /// Counts notifications; a waiter returns as soon as it moved past what the waiter saw.
    generation: Mutex<u64>,
    changed: Condvar,
}

impl ProcessingSignal {
    /// Wakes every waiter (and makes the next wait after an earlier `generation` return at once).
    pub fn notify(&self) {
        let mut generation = match self.generation.lock() {
            Ok(generation) => generation,
            Err(poisoned) => poisoned.into_inner(),
        };
        *generation = generation.wrapping_add(1);
        self.changed.notify_all();
    }

    /// The number of notifications so far: pass it to [`ProcessingSignal::wait`].
    pub fn generation(&self) -> u64 {
        match self.generation.lock() {
            Ok(generation) => *generation,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Waits until a notification after `seen` (at once if one came already) or `timeout`.
    /// Returns whether a notification came.
    pub fn wait(&self, seen: u64, timeout: Duration) -> bool {
        let guard = match self.generation.lock() {
            Ok(generation) => generation,
            Err(poisoned) => poisoned.into_inner(),
        };
        let waited = self
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen);
        match waited {
            Ok((generation, _)) => *generation != seen,
            Err(poisoned) => *poisoned.into_inner().0 != seen,
        }
    }
}

/// How many times this process rebuilt a tenant's engine from the whole stored tenant (after
/// loading it at start): catching up on another instance's writes when the change log cannot
/// ([`licensd_store::CatchUp::Reload`]), or recovering from a failed write. Exposed for tests,
/// benchmarks and `/readyz`.
pub static FULL_RELOADS: AtomicU64 = AtomicU64::new(0);

/// How many times this process brought a tenant's engine up to the store incrementally, from
/// the change log (`Store::catch_up` + `Engine::apply_patch`) instead of a full reload.
pub static INCREMENTAL_CATCH_UPS: AtomicU64 = AtomicU64::new(0);

/// How many queries [`TenantRuntime::read_if_free`] gave back because a change held the
/// engine (the caller then waits on a blocking thread): exposed for the reads benchmark, which
/// prints the share of its reads that could not be answered at once.
pub static QUERIES_GIVEN_BACK: AtomicU64 = AtomicU64::new(0);

/// How many times [`TenantRuntime::catch_up_to`] reads a patch again because the engine moved
/// (this instance wrote) while it was read, before it falls back to a full reload.
const CATCH_UP_ATTEMPTS: usize = 4;

/// Whether a command creates users or groups (then a refused write is undone by a full reload:
/// see [`licensd_store::unwritten_change`]).
fn creates_entities(command: &Command) -> bool {
    matches!(command, Command::CreateUser(_) | Command::CreateGroup { .. })
}

struct TenantState {
    engine: Engine,
    /// The store version the engine reflects.
    version: u64,
    /// Groups whose background run was recorded as started and not yet as finished.
    started_group_runs: HashSet<Uuid>,
    /// Groups a written command of this instance asked to apply again (their licenses,
    /// members or rule changed, or a reprocess) whose run has not started yet. Only these get
    /// "Start/Finish applying group based license to users" records: a group is busy whenever
    /// one of its members is queued, but a product added to a 3-member group does not re-run
    /// the other groups those members are in.
    requested_group_runs: HashSet<Uuid>,
    /// Engines put in place of the cached one (full reloads): part of the advisor cache's key.
    replacements: u64,
}

/// An advisor report and the engine state it was computed from.
struct CachedAdvice {
    key: (u64, u64, u64),
    report: Arc<licensd_engine::AdvisorReport>,
}

/// What [`TenantRuntime::read_if_free`] did: answered the query, or gave it back because the
/// engine was held.
pub enum ReadIfFree<T, F> {
    Answered(T),
    Busy(F),
}

/// One tenant's in-memory engine and the version of the store it reflects.
pub struct TenantRuntime {
    pub id: Uuid,
    /// The engine and its version: read-locked by queries (any number at once, so concurrent
    /// reads of one tenant do not take turns), write-locked by whatever changes it (a command
    /// group, a processing slice, a catch-up). A write holds it until the engine and the
    /// version agree, so a read sees every write of this instance that returned before it.
    state: RwLock<TenantState>,
    /// The advisor's report of the engine as it was at (version, clock, replacements): computed
    /// under a read lock of the engine, kept here so that readers need not write the state.
    advice: Mutex<Option<CachedAdvice>>,
    /// Notified when a write of this instance queued users.
    signal: Arc<ProcessingSignal>,
    /// The tenants' change subscriptions: writes add their notifications to the outbox.
    notifier: Arc<ChangeNotifier>,
    /// Commands waiting to be written together (group commit, [`TenantRuntime::execute`]).
    writes: Mutex<WaitingWrites>,
    /// Notified when commands were written or the writer's turn is free.
    written: Condvar,
    /// Transactions that committed commands (each one or more: group commit).
    command_transactions: AtomicU64,
    /// Every tenant's alert rules (shared by the instance's tenants).
    alerts: Arc<crate::alerts::AlertBook>,
    /// Held while commands or a processing step are decided and written ([`Self::write_order`]).
    write_order: Mutex<()>,
    /// Called by a processing step just before and just after its store write (tests: what
    /// may happen then).
    #[cfg(test)]
    step_write_hook: Mutex<Option<StepWriteHook>>,
}

/// At most this many commands share one transaction (the rest wait for the next).
const MAX_GROUP: usize = 256;

/// A processing step evaluates this many users at a time under the engine's lock, releasing it
/// in between so that reads are not held for a whole step (its write is one transaction still).
pub const EVALUATION_SLICE: usize = 250;

/// A command waiting for the tenant's writer.
struct WaitingWrite {
    ticket: u64,
    command: Command,
    caller: Caller,
}

/// The commands of a tenant waiting to be written, and the results of those written.
#[derive(Default)]
struct WaitingWrites {
    next_ticket: u64,
    waiting: Vec<WaitingWrite>,
    /// Results by ticket, until their caller takes them.
    done: HashMap<u64, Result<CommandOutcome, ExecuteError>>,
    /// Whether a caller is writing waiting commands now (the others wait for their result).
    writing: bool,
}

/// What one processing step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    pub evaluated_users: usize,
    pub changed_states: usize,
    pub remaining_users: usize,
}

/// The tenant as stored, rebuilt while it is read ([`licensd_store::Store::load_engine`]).
fn load_engine(store: &SharedStore, tenant_id: Uuid) -> Result<(Engine, u64), ExecuteError> {
    match lock_store(store)?.load_engine(tenant_id) {
        Ok(loaded) => Ok(loaded),
        Err(licensd_store::StoreError::Restore(error)) => Err(ExecuteError::Load(error.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// The tenant's engine for a start: from its stored engine snapshot and the change log since,
/// or from its tables when the snapshot is missing or cannot be used (logged with the reason).
fn start_engine(store: &SharedStore, tenant_id: Uuid) -> Result<(Engine, u64), ExecuteError> {
    let started = std::time::Instant::now();
    let loaded = match lock_store(store)?.start_engine(tenant_id) {
        Ok(loaded) => loaded,
        Err(licensd_store::StoreError::Restore(error)) => return Err(ExecuteError::Load(error.to_string())),
        Err(error) => return Err(error.into()),
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match &loaded.source {
        licensd_store::StartSource::Snapshot {
            snapshot_version,
            caught_up,
        } => tracing::info!(
            tenant = %tenant_id,
            snapshot_version,
            version = loaded.version,
            caught_up,
            elapsed_ms,
            "tenant started from its engine snapshot"
        ),
        licensd_store::StartSource::FullLoad { fallback: None } => {
            tracing::info!(tenant = %tenant_id, version = loaded.version, elapsed_ms, "tenant loaded (no engine snapshot)")
        }
        licensd_store::StartSource::FullLoad {
            fallback: Some(reason),
        } => {
            tracing::warn!(
                tenant = %tenant_id,
                version = loaded.version,
                elapsed_ms,
                %reason,
                "the engine snapshot was not used; tenant loaded from its tables"
            );
            write_fresh_snapshot(store, tenant_id, loaded.engine.clone(), loaded.version);
        }
    }
    Ok((loaded.engine, loaded.version))
}

/// Replaces a snapshot a start could not use (damaged, of another release, too far behind) with
/// one of the engine just loaded, on a thread of its own so that the start does not wait for
/// it (`engine` is a copy: copy-on-write, it shares the loaded engine's storage). The store
/// never lets it replace a newer snapshot.
fn write_fresh_snapshot(store: &SharedStore, tenant_id: Uuid, engine: Engine, version: u64) {
    let store = Arc::clone(store);
    let spawned = std::thread::Builder::new()
        .name("licensd-snapshot".to_string())
        .spawn(move || {
            let written = licensd_store::snapshot::encode(&engine)
                .map_err(ExecuteError::from)
                .and_then(|blob| {
                    drop(engine);
                    Ok(lock_store(&store)?.write_engine_snapshot(tenant_id, version, &blob)?)
                });
            match written {
                Ok(_) => tracing::info!(tenant = %tenant_id, version, "wrote a fresh engine snapshot"),
                Err(error) => {
                    tracing::warn!(tenant = %tenant_id, %error, "writing a fresh engine snapshot failed")
                }
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(tenant = %tenant_id, %error, "no thread to write a fresh engine snapshot on");
    }
}

impl TenantRuntime {
    /// Every tenant's alert rules (the reclamation runs raise their alerts with it).
    pub fn alert_book(&self) -> Arc<crate::alerts::AlertBook> {
        Arc::clone(&self.alerts)
    }

    /// Wakes the delivery worker (after writing outbox rows outside a command).
    pub fn wake_deliveries(&self) {
        self.notifier.wake();
    }

    /// Writes the engine's snapshot ([`licensd_store::snapshot`]) tagged with the version it
    /// reflects, so that the next start reads it instead of the tenant's tables. Does nothing
    /// when the engine is still at `unless_at` (the version of the last snapshot this instance
    /// wrote). Only a copy of the engine is taken under the engine's lock (copy-on-write: a
    /// fraction of the image's cost, BENCHMARKS.md), then encoded and written without it,
    /// so writers and readers do not wait for the snapshot. Returns the version written, `None`
    /// when nothing was.
    pub fn write_snapshot(
        &self,
        store: &SharedStore,
        unless_at: Option<u64>,
    ) -> Result<Option<u64>, ExecuteError> {
        let (engine, version) = {
            let state = self.lock_shared()?;
            if Some(state.version) == unless_at {
                return Ok(None);
            }
            (state.engine.clone(), state.version)
        };
        let blob = licensd_store::snapshot::encode(&engine)?;
        drop(engine);
        let written = lock_store(store)?.write_engine_snapshot(self.id, version, &blob)?;
        Ok(written.then_some(version))
    }

    /// Loads a tenant from the store.
    pub fn load(store: &SharedStore, tenant_id: Uuid) -> Result<TenantRuntime, ExecuteError> {
        Self::load_signalling(store, tenant_id, Arc::new(ProcessingSignal::default()))
    }

    /// Loads a tenant whose writes notify `signal` when they queue users.
    pub fn load_signalling(
        store: &SharedStore,
        tenant_id: Uuid,
        signal: Arc<ProcessingSignal>,
    ) -> Result<TenantRuntime, ExecuteError> {
        Self::load_notifying(
            store,
            tenant_id,
            signal,
            Arc::new(ChangeNotifier::default()),
            Arc::default(),
        )
    }

    /// Loads a tenant whose writes notify `signal` when they queue users, add the change
    /// notifications `notifier`'s subscriptions want and raise the alerts of `alerts`' rules.
    pub fn load_notifying(
        store: &SharedStore,
        tenant_id: Uuid,
        signal: Arc<ProcessingSignal>,
        notifier: Arc<ChangeNotifier>,
        alerts: Arc<crate::alerts::AlertBook>,
    ) -> Result<TenantRuntime, ExecuteError> {
        let (engine, version) = start_engine(store, tenant_id)?;
        Ok(TenantRuntime {
            id: tenant_id,
            state: RwLock::new(TenantState {
                engine,
                version,
                started_group_runs: HashSet::new(),
                requested_group_runs: HashSet::new(),
                replacements: 0,
            }),
            advice: Mutex::new(None),
            signal,
            notifier,
            writes: Mutex::new(WaitingWrites::default()),
            written: Condvar::new(),
            command_transactions: AtomicU64::new(0),
            alerts,
            write_order: Mutex::new(()),
            #[cfg(test)]
            step_write_hook: Mutex::new(None),
        })
    }

    /// Brings the engine up to the stored tenant when it is behind `version` (a version another
    /// instance announced, or the stored version read by a periodic check). Returns whether the
    /// engine changed. The tenant is loaded without holding the engine's lock, so reads and
    /// writes go on meanwhile (on the state they had); the loaded engine replaces it only if it
    /// is newer than what the engine reflects by then (this instance may have written meanwhile).
    ///
    /// Catching up is incremental: the patch of what the writes since the engine's version
    /// touched is read (without the engine's lock, so reads go on, but holding the tenant's write
    /// order, so this instance's own writes wait: they would conflict anyway) and applied under
    /// the lock if the engine is still at that version; if it moved meanwhile the patch is read
    /// again from where it is now.
    /// Only when the store says the change log cannot bring the engine there (or the engine
    /// refuses the patch) is the whole tenant loaded, as before.
    pub fn catch_up_to(&self, store: &SharedStore, version: u64) -> Result<bool, ExecuteError> {
        // This instance's own writes are announced to its watcher too (PostgreSQL's `NOTIFY`):
        // when the engine already has the version and is free, nothing to wait for.
        if let Ok(state) = self.state.try_read() {
            if state.version >= version {
                return Ok(false);
            }
        }
        // The write order first: a write of this instance in flight (a processing step writes
        // without the engine's lock) announces its own version before it can record it; waiting
        // for it avoids reading back what it just wrote.
        let order = self.write_order();
        let mut from = self.lock_shared()?.version;
        if from >= version {
            return Ok(false);
        }
        for _ in 0..CATCH_UP_ATTEMPTS {
            let started = std::time::Instant::now();
            let read = lock_store(store)?.catch_up(self.id, from, None)?;
            match read {
                licensd_store::CatchUp::UpToDate { .. } => return Ok(false),
                licensd_store::CatchUp::Reload { reason } => {
                    tracing::info!(tenant = %self.id, from, %reason, "catching up needs a full reload");
                    break;
                }
                licensd_store::CatchUp::Patch { patch, version: to } => {
                    let mut state = self.lock()?;
                    if state.version != from {
                        if state.version >= to {
                            return Ok(false);
                        }
                        from = state.version;
                        continue;
                    }
                    return match self.apply_patch(&mut state, store, *patch, to, started) {
                        Ok(()) => Ok(true),
                        Err(error) => Err(error),
                    };
                }
            }
        }
        // A full reload takes seconds for a large tenant: writes go on meanwhile.
        drop(order);
        let (engine, loaded_version) = load_engine(store, self.id)?;
        let mut state = self.lock()?;
        if loaded_version <= state.version {
            return Ok(false);
        }
        self.replace_engine(&mut state, engine, loaded_version);
        Ok(true)
    }

    /// Whether users of this tenant wait for evaluation.
    pub fn has_queued_users(&self) -> Result<bool, ExecuteError> {
        Ok(self.lock_shared()?.engine.queued_users() > 0)
    }

    /// The engine's state for a change (exclusive).
    fn lock(&self) -> Result<RwLockWriteGuard<'_, TenantState>, ExecuteError> {
        self.state.write().map_err(|_| ExecuteError::Poisoned)
    }

    /// The engine's state for a query (shared with other queries).
    fn lock_shared(&self) -> Result<RwLockReadGuard<'_, TenantState>, ExecuteError> {
        self.state.read().map_err(|_| ExecuteError::Poisoned)
    }

    /// Brings the engine up to the store if another instance (or an earlier failure) left it
    /// behind the stored version: incrementally, or by a full reload when the store or the
    /// engine says only that can.
    fn catch_up(&self, state: &mut TenantState, store: &SharedStore) -> Result<(), ExecuteError> {
        let stored = lock_store(store)?.tenant_version(self.id)?;
        if stored != state.version {
            self.catch_up_locked(state, store, None)?;
        }
        Ok(())
    }

    /// Catches up under the engine's lock; `also` names what the engine changed itself in a
    /// write the store refused ([`licensd_store::unwritten_change`]), read again with the rest.
    fn catch_up_locked(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        also: Option<&licensd_store::TenantChange>,
    ) -> Result<(), ExecuteError> {
        let started = std::time::Instant::now();
        let read = lock_store(store)?.catch_up(self.id, state.version, also)?;
        match read {
            licensd_store::CatchUp::UpToDate { .. } => Ok(()),
            licensd_store::CatchUp::Patch { patch, version } => {
                self.apply_patch(state, store, *patch, version, started)
            }
            licensd_store::CatchUp::Reload { reason } => {
                tracing::info!(tenant = %self.id, from = state.version, %reason, "catching up needs a full reload");
                self.reload(state, store)
            }
        }
    }

    /// After a write the store refused because another instance wrote first: the engine holds
    /// the refused change, so it catches up with what it changed read again (or reloads when
    /// the change created or deleted users or groups).
    fn catch_up_after_refused(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        batch: &WriteBatch,
        created: bool,
    ) -> Result<(), ExecuteError> {
        match licensd_store::unwritten_change(batch, created) {
            Some(also) => self.catch_up_locked(state, store, Some(&also)),
            None => self.reload(state, store),
        }
    }

    /// Applies a patch read for the engine's version, counted; a patch the engine refuses is
    /// replaced by a full reload.
    fn apply_patch(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        patch: licensd_engine::TenantPatch,
        version: u64,
        started: std::time::Instant,
    ) -> Result<(), ExecuteError> {
        let from = state.version;
        let users = patch.users.len() + patch.deleted_users.len();
        match state.engine.apply_patch(patch) {
            Ok(()) => {
                state.version = version;
                INCREMENTAL_CATCH_UPS.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    tenant = %self.id,
                    from,
                    version,
                    users,
                    elapsed_us = started.elapsed().as_micros() as u64,
                    "caught up incrementally"
                );
                Ok(())
            }
            Err(error) => {
                tracing::info!(tenant = %self.id, from, version, %error, "catching up needs a full reload");
                self.reload(state, store)
            }
        }
    }

    fn reload(&self, state: &mut TenantState, store: &SharedStore) -> Result<(), ExecuteError> {
        let (engine, version) = load_engine(store, self.id)?;
        self.replace_engine(state, engine, version);
        Ok(())
    }

    /// Puts an engine loaded from the store in place of the cached one (a full reload, counted).
    fn replace_engine(&self, state: &mut TenantState, engine: Engine, version: u64) {
        FULL_RELOADS.fetch_add(1, Ordering::Relaxed);
        tracing::info!(tenant = %self.id, version, "tenant reloaded from the store");
        state.engine = engine;
        state.version = version;
        state.replacements += 1;
        if let Ok(mut advice) = self.advice.lock() {
            *advice = None;
        }
    }

    /// Runs `work` while holding the tenant's lock in the store, so that on PostgreSQL the
    /// instances take turns: the version check, the engine's decision and the write all see the
    /// latest committed state. The lock is released whatever `work` returns.
    fn with_tenant_lock<T>(
        &self,
        store: &SharedStore,
        work: impl FnOnce() -> Result<T, ExecuteError>,
    ) -> Result<T, ExecuteError> {
        lock_store(store)?.lock_tenant(self.id)?;
        // Released on every way out, a panic in `work` included (a session lock left behind
        // would stop every instance from writing this tenant).
        let guard = TenantLockGuard {
            store,
            tenant_id: self.id,
            released: false,
        };
        let result = work();
        let released = guard.release();
        let value = result?;
        released?;
        Ok(value)
    }

    /// Applies a command for a caller and persists what it changed together with its audit
    /// record. A role that may not run the command is refused before anything happens; a
    /// command the engine refuses is audited as a failure and changes nothing.
    ///
    /// Group commit: commands that arrive while another of this tenant's commands is being
    /// written wait, and the next writer applies all of them in arrival order and persists them
    /// in one store transaction (independent commands share one version, see
    /// [`WriteBatch::merge`]); each caller gets its own outcome once the transaction committed,
    /// and a refused command is refused alone. The engine's version is not read before the
    /// write: the store refuses a write whose expected version is stale (`Conflict`), and then
    /// the engine is rebuilt and the commands applied again under the tenant's store lock, a
    /// bounded number of times.
    pub fn execute(
        &self,
        store: &SharedStore,
        command: Command,
        caller: &Caller,
    ) -> Result<CommandOutcome, ExecuteError> {
        if caller.tenant_id != self.id {
            return Err(ExecuteError::UnknownTenant(self.id));
        }
        if !caller.role.may_execute(&command) {
            return Err(ExecuteError::Forbidden {
                role: caller.role,
                kind: CommandKind::of(&command),
            });
        }
        let mut writes = self.waiting_writes();
        let ticket = writes.next_ticket;
        writes.next_ticket += 1;
        writes.waiting.push(WaitingWrite {
            ticket,
            command,
            caller: caller.clone(),
        });
        loop {
            if let Some(result) = writes.done.remove(&ticket) {
                return result;
            }
            if !writes.writing {
                break;
            }
            writes = match self.written.wait(writes) {
                Ok(writes) => writes,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        // This caller writes the commands waiting now (its own among them), then hands the turn
        // on; it writes again while its own command is still waiting (more than MAX_GROUP).
        writes.writing = true;
        drop(writes);
        let turn = WriterTurn { runtime: self };
        loop {
            // The write order and the engine first: the commands that arrive while they are
            // busy (a processing step, another writer's transaction) join this group.
            let order = self.write_order();
            let state = self.lock();
            let mut writes = self.waiting_writes();
            let take = writes.waiting.len().min(MAX_GROUP);
            let group: Vec<WaitingWrite> = writes.waiting.drain(..take).collect();
            drop(writes);
            let tickets: Vec<u64> = group.iter().map(|write| write.ticket).collect();
            let results = match state {
                Ok(mut state) => self.execute_group(&mut state, store, group),
                Err(_) => group.iter().map(|_| Err(ExecuteError::Poisoned)).collect(),
            };
            drop(order);
            let queued = results.iter().any(|result| {
                result
                    .as_ref()
                    .is_ok_and(|outcome| !outcome.newly_queued.is_empty())
            });
            if queued {
                self.signal.notify();
            }
            let mut writes = self.waiting_writes();
            writes.done.extend(tickets.into_iter().zip(results));
            let own = writes.done.remove(&ticket);
            drop(writes);
            self.written.notify_all();
            if let Some(result) = own {
                drop(turn);
                return result;
            }
        }
    }

    /// Applies many commands of one caller, as [`TenantRuntime::execute`] would one by one
    /// (each validated alone, a refused one refused alone), but queued together so the group
    /// commit writes up to its group size of them per transaction. One result per command, in
    /// order.
    pub fn execute_batch(
        &self,
        store: &SharedStore,
        commands: Vec<Command>,
        caller: &Caller,
    ) -> Vec<Result<CommandOutcome, ExecuteError>> {
        let mut results: Vec<Option<Result<CommandOutcome, ExecuteError>>> =
            commands.iter().map(|_| None).collect();
        let mut pending: Vec<(usize, u64)> = Vec::with_capacity(commands.len());
        {
            let mut writes = self.waiting_writes();
            for (index, command) in commands.into_iter().enumerate() {
                if caller.tenant_id != self.id {
                    results[index] = Some(Err(ExecuteError::UnknownTenant(self.id)));
                    continue;
                }
                if !caller.role.may_execute(&command) {
                    results[index] = Some(Err(ExecuteError::Forbidden {
                        role: caller.role,
                        kind: CommandKind::of(&command),
                    }));
                    continue;
                }
                let ticket = writes.next_ticket;
                writes.next_ticket += 1;
                writes.waiting.push(WaitingWrite {
                    ticket,
                    command,
                    caller: caller.clone(),
                });
                pending.push((index, ticket));
            }
        }
        let mut writes = self.waiting_writes();
        loop {
            pending.retain(|(index, ticket)| match writes.done.remove(ticket) {
                Some(result) => {
                    results[*index] = Some(result);
                    false
                }
                None => true,
            });
            if pending.is_empty() {
                break;
            }
            if writes.writing {
                writes = match self.written.wait(writes) {
                    Ok(writes) => writes,
                    Err(poisoned) => poisoned.into_inner(),
                };
                continue;
            }
            // This caller's turn: one group of the waiting commands.
            writes.writing = true;
            drop(writes);
            let turn = WriterTurn { runtime: self };
            let state = self.lock();
            let mut waiting = self.waiting_writes();
            let take = waiting.waiting.len().min(MAX_GROUP);
            let group: Vec<WaitingWrite> = waiting.waiting.drain(..take).collect();
            drop(waiting);
            let tickets: Vec<u64> = group.iter().map(|write| write.ticket).collect();
            let group_results = match state {
                Ok(mut state) => self.execute_group(&mut state, store, group),
                Err(_) => group.iter().map(|_| Err(ExecuteError::Poisoned)).collect(),
            };
            if group_results.iter().any(|result| {
                result
                    .as_ref()
                    .is_ok_and(|outcome| !outcome.newly_queued.is_empty())
            }) {
                self.signal.notify();
            }
            self.waiting_writes()
                .done
                .extend(tickets.into_iter().zip(group_results));
            drop(turn);
            writes = self.waiting_writes();
        }
        results
            .into_iter()
            .map(|result| result.unwrap_or(Err(ExecuteError::Poisoned)))
            .collect()
    }

    /// The waiting commands (a poisoned lock still holds them intact: every change to them is
    /// one statement).
    fn waiting_writes(&self) -> MutexGuard<'_, WaitingWrites> {
        match self.writes.lock() {
            Ok(writes) => writes,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Applies a group of commands and persists them in one transaction; one result per
    /// command, in order.
    fn execute_group(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        group: Vec<WaitingWrite>,
    ) -> Vec<Result<CommandOutcome, ExecuteError>> {
        let count = group.len();
        let commands: Vec<(Command, Caller)> = group
            .into_iter()
            .map(|write| (write.command, write.caller))
            .collect();
        match self.execute_locked(state, store, &commands) {
            Ok(results) => results,
            // The store failed the transaction: each command alone, so that one command's
            // failure does not fail the others.
            Err(_) if count > 1 => commands
                .iter()
                .map(|command| {
                    self.execute_locked(state, store, std::slice::from_ref(command))
                        .and_then(|mut results| results.pop().ok_or(ExecuteError::Poisoned)?)
                })
                .collect(),
            Err(error) => vec![Err(error)],
        }
    }

    /// Applies `commands` in order and persists the accepted ones in one transaction, retrying
    /// when another instance wrote first. `Err` when the store failed (nothing was written, the
    /// engine was rebuilt from the store); otherwise one result per command.
    fn execute_locked(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        commands: &[(Command, Caller)],
    ) -> Result<Vec<Result<CommandOutcome, ExecuteError>>, ExecuteError> {
        // Optimistic first: no lock and no version read; after a conflict, under the tenant's
        // store lock, from the latest stored version.
        let mut locked = false;
        for attempt in 0..WRITE_ATTEMPTS {
            if attempt > 1 {
                // Let the other instance's writers through before trying again.
                std::thread::sleep(std::time::Duration::from_millis(1 + (attempt as u64 % 8) * 3));
            }
            let attempted = if locked {
                self.with_tenant_lock(store, || {
                    self.catch_up(state, store)?;
                    self.apply_and_write(state, store, commands)
                })
            } else {
                self.apply_and_write(state, store, commands)
            };
            match attempted {
                Ok(Attempt::Written(results)) => return Ok(results),
                Ok(Attempt::Stale) => {
                    // Only refusals, decided on a stale engine (which they did not change).
                    self.catch_up(state, store)?;
                    locked = true;
                }
                Ok(Attempt::Conflicted(unwritten)) if attempt + 1 < WRITE_ATTEMPTS => {
                    // Another instance wrote first: read again what this group changed in the
                    // engine with what was written in between (a full reload when the group
                    // created or deleted users or groups), then try again under the lock.
                    match unwritten {
                        Some(also) => self.catch_up_locked(state, store, Some(&also))?,
                        None => self.reload(state, store)?,
                    }
                    locked = true;
                }
                Ok(Attempt::Conflicted(_)) => {
                    self.reload(state, store)?;
                    break;
                }
                Err(error) => {
                    self.reload(state, store)?;
                    return Err(error);
                }
            }
        }
        Err(ExecuteError::Load(
            "the tenant kept changing under this instance".to_string(),
        ))
    }

    /// One attempt: applies the commands to the engine and writes the accepted ones (with the
    /// audit records of all) in one transaction that expects the engine's version. On `Err` the
    /// engine may hold commands that were not written: the caller rebuilds it.
    fn apply_and_write(
        &self,
        state: &mut TenantState,
        store: &SharedStore,
        commands: &[(Command, Caller)],
    ) -> Result<Attempt, ExecuteError> {
        let mut results = Vec::with_capacity(commands.len());
        let mut requested: Vec<Uuid> = Vec::new();
        let mut batches: Vec<WriteBatch> = Vec::new();
        let mut refusals = Vec::new();
        for (command, caller) in commands {
            let target_before = audit::target_of(command, &state.engine);
            let properties_before = audit::properties_of(command, &state.engine);
            let alerting = crate::alerts::BeforeChange::look(&self.alerts, self.id, &state.engine);
            let at = now();
            let outcome = match state.engine.apply(command.clone(), at) {
                Ok(outcome) => outcome,
                Err(refusal) => {
                    refusals.push(audit::record(
                        caller,
                        command,
                        target_before,
                        Vec::new(),
                        Err(refusal.to_string()),
                        at.0,
                    ));
                    results.push(Err(ExecuteError::Refused(refusal)));
                    continue;
                }
            };
            if outcome.queued_users > 0 {
                requested.extend(group_run_requested_by(command));
            }
            let mut target = audit::target_of(command, &state.engine);
            if target.name.is_empty() {
                target.name = target_before.name;
            }
            let properties_after = audit::properties_of(command, &state.engine);
            let mut batch = WriteBatch::from_command_outcome(&outcome);
            self.notifier
                .add_to_batch(self.id, &mut batch, Some(command), at.0);
            let alerts = alerting.alerts(
                &self.alerts,
                self.id,
                &state.engine,
                &outcome.changes,
                outcome.clock,
                at.0,
            );
            crate::alerts::enqueue(&mut batch, alerts);
            batch.audit.push(audit::record(
                caller,
                command,
                target,
                audit::modified(&properties_before, &properties_after),
                Ok(()),
                at.0,
            ));
            let unmerged = match batches.last_mut() {
                Some(last) => last.merge(batch).err().map(|batch| *batch),
                None => Some(batch),
            };
            batches.extend(unmerged);
            results.push(Ok(outcome));
        }
        let Some(last) = batches.last_mut() else {
            // Nothing to write: the refusals stand if the engine was up to date.
            if lock_store(store)?.tenant_version(self.id)? != state.version {
                return Ok(Attempt::Stale);
            }
            if let Err(error) = lock_store(store)?.append_audit(self.id, &refusals) {
                tracing::error!(tenant = %self.id, %error, "recording a refused change in the audit log failed");
            }
            return Ok(Attempt::Written(results));
        };
        // The refusals are recorded with the accepted commands (and retried with them).
        last.audit.extend(refusals);
        if let Some(first) = batches.first_mut() {
            first.expected_version = Some(state.version);
        }
        let written = lock_store(store)?.write_all(self.id, &batches);
        let version = match written {
            Ok(version) => version,
            Err(StoreError::Conflict { .. }) => {
                let created = commands
                    .iter()
                    .zip(&results)
                    .any(|((command, _), result)| result.is_ok() && creates_entities(command));
                return Ok(Attempt::Conflicted(unwritten_changes(&batches, created)));
            }
            Err(error) => return Err(error.into()),
        };
        self.command_transactions.fetch_add(1, Ordering::Relaxed);
        state.version = version;
        state.requested_group_runs.extend(requested);
        if batches
            .iter()
            .any(|batch| !batch.outbox.is_empty() || !batch.change_events.is_empty())
        {
            self.notifier.wake();
        }
        Ok(Attempt::Written(results))
    }

    /// Evaluates up to `max_users` queued users and persists the result with the queue update in
    /// one transaction.
    ///
    /// The engine's lock is held in short slices ([`EVALUATION_SLICE`] users at a time, then the
    /// images of what changed), never during the store write, so reads wait for at most one
    /// slice instead of the whole step. The tenant's write order (held throughout, as command
    /// writers hold it) keeps commands out until the step is written; reads on this instance may
    /// therefore see a step's states a few milliseconds before they are committed. If the write
    /// fails, the engine is brought back to the store (the evaluated users are still queued
    /// there and are evaluated again).
    pub fn process_step(&self, store: &SharedStore, max_users: usize) -> Result<StepReport, ExecuteError> {
        let _order = self.write_order();
        self.with_tenant_lock(store, || self.process_step_in_slices(store, max_users))
    }

    fn process_step_in_slices(
        &self,
        store: &SharedStore,
        max_users: usize,
    ) -> Result<StepReport, ExecuteError> {
        // The stored version is read before the engine is locked (on PostgreSQL a round trip,
        // 20 times a second while the processor is idle): under the write order held here only
        // this step moves the engine's version, so a tenant with nothing to do is looked at under
        // a shared lock, and queries go on meanwhile instead of waiting for the database.
        let stored = lock_store(store)?.tenant_version(self.id)?;
        {
            let state = self.lock_shared()?;
            if state.version == stored && state.engine.queued_users() == 0 {
                return Ok(StepReport::default());
            }
        }
        let (busy_before, alerting, at) = {
            let mut state = self.lock()?;
            if state.version != stored {
                self.catch_up_locked(&mut state, store, None)?;
            }
            if state.engine.queued_users() == 0 {
                return Ok(StepReport::default());
            }
            let alerting = crate::alerts::BeforeChange::look(&self.alerts, self.id, &state.engine);
            let busy: Vec<Uuid> = busy_licensed_groups(&state.engine)
                .into_iter()
                .filter(|group_id| state.requested_group_runs.contains(group_id))
                .collect();
            (busy, alerting, now())
        };
        let mut step = StepSlices::default();
        let state = loop {
            let mut state = self.lock()?;
            let slice = max_users
                .saturating_sub(step.evaluated_users)
                .min(EVALUATION_SLICE);
            let evaluated = step.add(state.engine.process_batch(slice, at));
            if evaluated == 0 || step.evaluated_users >= max_users || step.remaining_users == 0 {
                break state;
            }
            drop(state);
        };
        let report = step.finish(&state.engine);
        let alerts = alerting.alerts(
            &self.alerts,
            self.id,
            &state.engine,
            &report.changes,
            report.clock,
            at.0,
        );
        let evaluated = StepReport {
            evaluated_users: report.evaluated_users,
            changed_states: report.changes.len(),
            remaining_users: report.remaining_users,
        };
        let mut batch = WriteBatch::from_process_report(report);
        crate::alerts::enqueue(&mut batch, alerts);
        batch.expected_version = Some(state.version);
        self.notifier.add_to_batch(self.id, &mut batch, None, at.0);
        let (group_runs, started, finished) = group_run_records(self.id, &state, &busy_before, at.0);
        batch.audit = group_runs;
        // Users self-healing re-evaluated in this step (the evaluated users leave the queue):
        // their history, durably.
        for user_id in &batch.dequeue {
            if let Some(healing) = state
                .engine
                .last_self_healing(*user_id)
                .filter(|healing| healing.at == at)
            {
                let name = state
                    .engine
                    .user_view(*user_id)
                    .map(|user| user.user_principal_name)
                    .unwrap_or_default();
                batch
                    .audit
                    .push(audit::user_self_healed(self.id, *user_id, &name, healing, at.0));
            }
        }
        // Reads go on during the write; commands wait for the write order.
        drop(state);
        #[cfg(test)]
        self.step_write_reached(StepWritePhase::Before)?;
        let written = lock_store(store)?.write(self.id, &batch);
        #[cfg(test)]
        self.step_write_reached(StepWritePhase::After)?;
        let mut state = self.lock()?;
        match written {
            Ok(version) => {
                // The watcher may have caught up to this very write meanwhile.
                state.version = state.version.max(version);
                if !batch.outbox.is_empty() || !batch.change_events.is_empty() {
                    self.notifier.wake();
                }
                // Commands wait for the step (the write order): every requested group busy at
                // its start was started now, and one not busy has nothing left to run.
                state.requested_group_runs.clear();
                state.started_group_runs.extend(started);
                for group_id in finished {
                    state.started_group_runs.remove(&group_id);
                }
                Ok(evaluated)
            }
            Err(error) => {
                if matches!(error, StoreError::Conflict { .. }) {
                    self.catch_up_after_refused(&mut state, store, &batch, false)?;
                } else {
                    self.reload(&mut state, store)?;
                }
                Err(error.into())
            }
        }
    }

    #[cfg(test)]
    fn step_write_reached(&self, phase: StepWritePhase) -> Result<(), ExecuteError> {
        if let Some(hook) = self
            .step_write_hook
            .lock()
            .map_err(|_| ExecuteError::Poisoned)?
            .as_mut()
        {
            hook(phase);
        }
        Ok(())
    }

    /// The tenant's write order: held by the caller writing commands and by a processing step
    /// from its first evaluation to its write, so that what one writes is decided on what the
    /// other wrote.
    fn write_order(&self) -> MutexGuard<'_, ()> {
        match self.write_order.lock() {
            Ok(order) => order,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs a read-only query against the tenant's engine.
    pub fn read<T>(&self, query: impl FnOnce(&Engine) -> T) -> Result<T, ExecuteError> {
        let state = self.lock_shared()?;
        Ok(query(&state.engine))
    }

    /// Runs a read-only query at once when no change holds the engine, without waiting (other
    /// queries do not hold it back: they share it): when a write, a catch-up or a processing
    /// slice holds the engine or waits for it, the query is given back unrun
    /// ([`ReadIfFree::Busy`]) for the caller to wait with [`Self::read`] where it may block. Lets an
    /// async server answer a small query (one user) on its own thread, without handing it over to
    /// a blocking thread and back.
    pub fn read_if_free<T, F>(&self, query: F) -> Result<ReadIfFree<T, F>, ExecuteError>
    where
        F: FnOnce(&Engine) -> T,
    {
        match self.state.try_read() {
            Ok(state) => Ok(ReadIfFree::Answered(query(&state.engine))),
            Err(TryLockError::WouldBlock) => {
                QUERIES_GIVEN_BACK.fetch_add(1, Ordering::Relaxed);
                Ok(ReadIfFree::Busy(query))
            }
            Err(TryLockError::Poisoned(_)) => Err(ExecuteError::Poisoned),
        }
    }

    /// Runs a read with the advisor's report of the engine ([`Engine::advise`]). The report is
    /// computed once per engine state and kept until a write, a processing step or a catch-up
    /// changes the engine (its version or logical clock), so that repeated views of the Advisor
    /// cost a lookup instead of a scan of every user.
    pub fn read_advised<T>(
        &self,
        query: impl FnOnce(&Engine, &licensd_engine::AdvisorReport) -> T,
    ) -> Result<T, ExecuteError> {
        let state = self.lock_shared()?;
        let key = (state.version, state.engine.clock(), state.replacements);
        let report = {
            // Held while a report is computed: two readers of a changed engine compute it once.
            let mut advice = self.advice.lock().map_err(|_| ExecuteError::Poisoned)?;
            match advice.as_ref() {
                Some(cached) if cached.key == key => Arc::clone(&cached.report),
                _ => {
                    let report = Arc::new(state.engine.advise());
                    *advice = Some(CachedAdvice {
                        key,
                        report: Arc::clone(&report),
                    });
                    report
                }
            }
        };
        Ok(query(&state.engine, &report))
    }

    /// Whether the advisor's report of the engine as it is now is cached (tests).
    #[cfg(test)]
    fn advice_is_cached(&self) -> bool {
        self.lock_shared().is_ok_and(|state| {
            let key = (state.version, state.engine.clock(), state.replacements);
            self.advice
                .lock()
                .is_ok_and(|advice| advice.as_ref().is_some_and(|cached| cached.key == key))
        })
    }

    /// The store version the engine reflects.
    pub fn version(&self) -> Result<u64, ExecuteError> {
        Ok(self.lock_shared()?.version)
    }

    /// How many store transactions this instance committed for commands of this tenant (fewer
    /// than the commands when concurrent commands were written together).
    pub fn command_transactions(&self) -> u64 {
        self.command_transactions.load(Ordering::Relaxed)
    }
}

/// What a test runs at a processing step's write ([`StepWritePhase`]).
#[cfg(test)]
type StepWriteHook = Box<dyn FnMut(StepWritePhase) + Send>;

/// Where a processing step's write is (tests' hook).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StepWritePhase {
    Before,
    After,
}

/// The slices of one processing step, put together as one [`ProcessReport`].
#[derive(Default)]
struct StepSlices {
    evaluated_users: usize,
    changes: Vec<StateChange>,
    evaluated: Vec<Uuid>,
    requeued: Vec<Uuid>,
    remaining_users: usize,
    clock: u64,
}

impl StepSlices {
    /// Adds one slice's report; returns how many users it evaluated.
    fn add(&mut self, mut slice: ProcessReport) -> usize {
        self.evaluated_users += slice.evaluated_users;
        self.changes.append(&mut slice.changes);
        self.evaluated.append(&mut slice.evaluated);
        self.requeued.append(&mut slice.requeued);
        self.remaining_users = slice.remaining_users;
        self.clock = slice.clock;
        slice.evaluated_users
    }

    /// The step as one report: each changed state imaged once, as the step left it, and the
    /// users queued during the step that are still queued at its end.
    fn finish(self, engine: &Engine) -> ProcessReport {
        let states = engine.changed_states(&self.changes);
        let requeued = self
            .requeued
            .into_iter()
            .filter(|user_id| engine.is_user_queued(*user_id))
            .collect();
        ProcessReport {
            evaluated_users: self.evaluated_users,
            changes: self.changes,
            states,
            remaining_users: self.remaining_users,
            evaluated: self.evaluated,
            requeued,
            clock: self.clock,
        }
    }
}

/// How one attempt at writing a group of commands ended.
enum Attempt {
    /// Written (or, when every command was refused, recorded): one result per command.
    Written(Vec<Result<CommandOutcome, ExecuteError>>),
    /// Every command was refused, but the engine was behind the store: decide again.
    Stale,
    /// Another instance wrote first (nothing was written): what the engine holds that the store
    /// does not, as a change to read again (`None`: only a full reload restores the engine).
    Conflicted(Option<TenantChange>),
}

/// What the refused batches of one group changed in the engine, together (`None` if any of them
/// needs a full reload).
fn unwritten_changes(batches: &[WriteBatch], created: bool) -> Option<TenantChange> {
    let mut union = TenantChange::default();
    for batch in batches {
        let change = licensd_store::unwritten_change(batch, created)?;
        union.settings |= change.settings;
        union.service_plans |= change.service_plans;
        union.queue |= change.queue;
        union.skus.extend(change.skus);
        union.users.extend(change.users);
        union.groups.extend(change.groups);
    }
    for ids in [&mut union.skus, &mut union.users, &mut union.groups] {
        ids.sort_unstable();
        ids.dedup();
    }
    Some(union)
}

/// The turn of the caller writing a tenant's waiting commands: handed on when dropped, a panic
/// included (the next waiting caller becomes the writer).
struct WriterTurn<'a> {
    runtime: &'a TenantRuntime,
}

impl Drop for WriterTurn<'_> {
    fn drop(&mut self) {
        self.runtime.waiting_writes().writing = false;
        self.runtime.written.notify_all();
    }
}

/// Releases a tenant's store lock when dropped (unless released explicitly).
struct TenantLockGuard<'a> {
    store: &'a SharedStore,
    tenant_id: Uuid,
    released: bool,
}

impl TenantLockGuard<'_> {
    fn release(mut self) -> Result<(), ExecuteError> {
        self.released = true;
        self.unlock()
    }

    fn unlock(&self) -> Result<(), ExecuteError> {
        // A poisoned store mutex still holds a working connection: unlock through it.
        let mut store = match self.store.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        let released = store.unlock_tenant(self.tenant_id).map_err(ExecuteError::from);
        if let Err(error) = &released {
            tracing::error!(tenant = %self.tenant_id, %error, "releasing the tenant lock failed");
        }
        released
    }
}

impl Drop for TenantLockGuard<'_> {
    fn drop(&mut self) {
        if !self.released {
            let _ = self.unlock();
        }
    }
}

/// The group whose licenses a command asks to apply again to its members: its licenses,
/// members or membership rule changed, or it is reprocessed. `None` for other commands (a
/// user's own change re-evaluates the user, not the groups it is in).
fn group_run_requested_by(command: &Command) -> Option<Uuid> {
    match command {
        Command::AssignGroupLicenses { group_id, .. }
        | Command::AddGroupMember { group_id, .. }
        | Command::RemoveGroupMember { group_id, .. }
        | Command::AddGroupMemberGroup { group_id, .. }
        | Command::RemoveGroupMemberGroup { group_id, .. }
        | Command::SetMembershipRule { group_id, .. }
        | Command::ReprocessGroup { group_id } => Some(*group_id),
        _ => None,
    }
}

/// Groups with licenses whose members are queued or being processed.
fn busy_licensed_groups(engine: &Engine) -> Vec<Uuid> {
    engine
        .group_ids()
        .into_iter()
        .filter(|group_id| {
            engine
                .group_processing_state(*group_id)
                .is_ok_and(|processing| processing != LicenseProcessingState::ProcessingComplete)
        })
        .filter(|group_id| {
            engine
                .group_view(*group_id)
                .is_ok_and(|group| !group.assigned_licenses.is_empty())
        })
        .collect()
}

/// The "Start/Finish applying group based license to users" records of one processing step:
/// a start for every busy group not yet started, a finish for every started group now done.
/// Returns the records and the groups started and finished (applied once the write succeeds).
fn group_run_records(
    tenant_id: Uuid,
    state: &TenantState,
    busy_before: &[Uuid],
    at: i64,
) -> (Vec<AuditRecord>, Vec<Uuid>, Vec<Uuid>) {
    let engine = &state.engine;
    let mut records = Vec::new();
    let mut started = Vec::new();
    let mut finished = Vec::new();
    let mut candidates: Vec<Uuid> = busy_before.to_vec();
    candidates.extend(state.started_group_runs.iter().copied());
    candidates.sort();
    candidates.dedup();
    for group_id in candidates {
        let Ok(group) = engine.group_view(group_id) else {
            // Deleted meanwhile: nothing more will be recorded for it.
            finished.push(group_id);
            continue;
        };
        if !state.started_group_runs.contains(&group_id) {
            records.push(audit::group_run_started(
                tenant_id,
                group_id,
                &group.display_name,
                group.member_count,
                at,
            ));
            started.push(group_id);
        }
        if group.license_processing_state == LicenseProcessingState::ProcessingComplete {
            let failed = group.members_with_license_errors;
            records.push(audit::group_run_finished(
                tenant_id,
                group_id,
                &group.display_name,
                group.member_count.saturating_sub(failed),
                failed,
                at,
            ));
            finished.push(group_id);
        }
    }
    (records, started, finished)
}

/// Which tenants an instance holds in memory ([`Tenants`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Every tenant of the store, loaded at start and never evicted (one instance).
    Everything,
    /// Only the tenants it needs: those its processor owns (loaded by the processor) and those it
    /// was asked about (loaded at the first request), evicted once no request asked about them
    /// for `idle` and the processor does not own them. Several instances on one database each
    /// hold about 1/N of the tenants plus the ones requests bring.
    OnDemand { idle: Duration },
}

/// A tenant held in memory and when a request last asked about it.
struct Resident {
    runtime: Arc<TenantRuntime>,
    /// Milliseconds since the [`Tenants`] were opened.
    last_used: AtomicU64,
}

/// What an instance holds and did, for metrics and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResidencyReport {
    /// Tenants of the store this instance knows of.
    pub known: usize,
    /// Tenants whose engine it holds now.
    pub resident: usize,
    /// Users in the engines it holds now (what its memory grows with).
    pub resident_users: usize,
    /// Tenants loaded since start (at start, on demand, and again after an eviction).
    pub loads: u64,
    /// Tenants evicted for being idle.
    pub evictions: u64,
    /// Other instances' writes this instance caught up on (incrementally or by a reload).
    pub catch_ups: u64,
}

/// The tenants of the store and the engines this instance holds ([`Residency`]).
pub struct Tenants {
    store: SharedStore,
    residency: Residency,
    opened: std::time::Instant,
    /// Every tenant of the store this instance knows of (resident or not).
    known: RwLock<HashSet<Uuid>>,
    runtimes: RwLock<HashMap<Uuid, Resident>>,
    /// Held while a tenant is loaded, so that two requests for a tenant not resident load it once.
    loading: Mutex<()>,
    loads: AtomicU64,
    evictions: AtomicU64,
    catch_ups: AtomicU64,
    default_tenant: Uuid,
    /// Shared by every tenant: wakes the processor when a write queued users.
    signal: Arc<ProcessingSignal>,
    /// What this instance's processor did, per tenant (for metrics).
    statistics: Arc<ProcessingStatistics>,
    /// Every tenant's change subscriptions (writes add their notifications to the outbox).
    notifier: Arc<ChangeNotifier>,
    /// Every tenant's alert rules and how alerts are rendered.
    alerts: Arc<crate::alerts::AlertBook>,
}

/// The tenant created on first start when the store has none.
pub const DEFAULT_TENANT_NAME: &str = "Default tenant";

impl Tenants {
    /// Loads every tenant, creating a default one in an empty store ([`Residency::Everything`]).
    pub fn load_all(store: &SharedStore) -> Result<Tenants, ExecuteError> {
        Self::open(store, Residency::Everything)
    }

    /// Opens the store's tenants, creating a default one in an empty store; with
    /// [`Residency::Everything`] every tenant is loaded now, with [`Residency::OnDemand`] none
    /// (the processor loads those it owns, requests the others).
    pub fn open(store: &SharedStore, residency: Residency) -> Result<Tenants, ExecuteError> {
        let mut ids = lock_store(store)?.tenant_ids()?;
        if ids.is_empty() {
            let settings = TenantSettings::new(Uuid::new_v4(), DEFAULT_TENANT_NAME);
            lock_store(store)?.create_tenant(&settings)?;
            tracing::info!(tenant = %settings.tenant_id, "created the default tenant");
            ids.push(settings.tenant_id);
        }
        let default_tenant = ids[0];
        let alerts = Arc::new(crate::alerts::AlertBook::default());
        alerts.reload_all(&mut *lock_store(store)?)?;
        let tenants = Tenants {
            store: Arc::clone(store),
            residency,
            opened: std::time::Instant::now(),
            known: RwLock::new(ids.iter().copied().collect()),
            runtimes: RwLock::new(HashMap::new()),
            loading: Mutex::new(()),
            loads: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            catch_ups: AtomicU64::new(0),
            default_tenant,
            signal: Arc::new(ProcessingSignal::default()),
            statistics: Arc::new(ProcessingStatistics::default()),
            notifier: Arc::new(ChangeNotifier::default()),
            alerts,
        };
        if residency == Residency::Everything {
            for id in ids {
                tenants.load(id)?;
            }
        }
        Ok(tenants)
    }

    /// Every tenant's alert rules as this instance knows them, and the renderer.
    pub fn alerts(&self) -> Arc<crate::alerts::AlertBook> {
        Arc::clone(&self.alerts)
    }

    /// Every tenant's change subscriptions, and the signal the delivery worker waits on
    /// ([`ChangeNotifier::delivery_signal`]).
    pub fn notifier(&self) -> Arc<ChangeNotifier> {
        Arc::clone(&self.notifier)
    }

    /// What this instance's processor did, per tenant.
    pub fn statistics(&self) -> Arc<ProcessingStatistics> {
        Arc::clone(&self.statistics)
    }

    /// The signal every tenant's writes notify when they queue users (the processor waits on it).
    pub fn signal(&self) -> Arc<ProcessingSignal> {
        Arc::clone(&self.signal)
    }

    /// Which tenants this instance holds.
    pub fn residency(&self) -> Residency {
        self.residency
    }

    fn elapsed_milliseconds(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    /// A resident tenant's runtime, marked as asked about now; `UnknownTenant` when it is not
    /// resident (never blocks: [`Tenants::load`] loads one that is not).
    pub fn get(&self, tenant_id: Uuid) -> Result<Arc<TenantRuntime>, ExecuteError> {
        let runtimes = self.runtimes.read().map_err(|_| ExecuteError::Poisoned)?;
        let resident = runtimes
            .get(&tenant_id)
            .ok_or(ExecuteError::UnknownTenant(tenant_id))?;
        resident
            .last_used
            .store(self.elapsed_milliseconds(), Ordering::Relaxed);
        Ok(Arc::clone(&resident.runtime))
    }

    /// A resident tenant's runtime, without marking it as asked about (the watcher's catch-ups
    /// and the processor's work do not keep a tenant resident).
    pub fn resident(&self, tenant_id: Uuid) -> Option<Arc<TenantRuntime>> {
        self.runtimes
            .read()
            .ok()?
            .get(&tenant_id)
            .map(|resident| Arc::clone(&resident.runtime))
    }

    /// The tenant's runtime, loaded from the store first when it is not resident (a tenant
    /// another instance created is found too); `UnknownTenant` when the store has no such
    /// tenant. Loading takes as long as a start of the tenant (seconds for a million users).
    pub fn load(&self, tenant_id: Uuid) -> Result<Arc<TenantRuntime>, ExecuteError> {
        if let Ok(runtime) = self.get(tenant_id) {
            return Ok(runtime);
        }
        let _loading = self.loading.lock().map_err(|_| ExecuteError::Poisoned)?;
        // Another request may have loaded it while this one waited.
        if let Ok(runtime) = self.get(tenant_id) {
            return Ok(runtime);
        }
        let known = self
            .known
            .read()
            .map_err(|_| ExecuteError::Poisoned)?
            .contains(&tenant_id);
        if !known {
            self.discover_ids()?;
            let found = self
                .known
                .read()
                .map_err(|_| ExecuteError::Poisoned)?
                .contains(&tenant_id);
            if !found {
                return Err(ExecuteError::UnknownTenant(tenant_id));
            }
        }
        let started = std::time::Instant::now();
        self.notifier.reload(&mut *lock_store(&self.store)?, tenant_id)?;
        self.alerts.reload(&mut *lock_store(&self.store)?, tenant_id)?;
        let runtime = Arc::new(TenantRuntime::load_notifying(
            &self.store,
            tenant_id,
            Arc::clone(&self.signal),
            Arc::clone(&self.notifier),
            Arc::clone(&self.alerts),
        )?);
        self.runtimes.write().map_err(|_| ExecuteError::Poisoned)?.insert(
            tenant_id,
            Resident {
                runtime: Arc::clone(&runtime),
                last_used: AtomicU64::new(self.elapsed_milliseconds()),
            },
        );
        self.loads.fetch_add(1, Ordering::Relaxed);
        // A write another instance committed after the load read the store and before the
        // tenant was resident was announced to a watcher that skipped it: read the stored
        // version now that later notices reach the runtime.
        let stored = lock_store(&self.store)?.tenant_version(tenant_id)?;
        if runtime.catch_up_to(&self.store, stored)? {
            self.caught_up();
        }
        let (users, queued) = runtime.read(|engine| (engine.user_count(), engine.queued_users()))?;
        tracing::info!(tenant = %tenant_id, users, queued, elapsed_ms = started.elapsed().as_millis() as u64, "tenant loaded");
        if queued > 0 {
            self.signal.notify();
        }
        Ok(runtime)
    }

    /// Evicts the tenants no request asked about for the idle period of
    /// [`Residency::OnDemand`] that `keep` does not keep (the tenants this instance's processor
    /// owns); returns how many. Requests still holding an evicted runtime finish on it.
    pub fn evict_idle(&self, keep: impl Fn(Uuid) -> bool) -> Result<usize, ExecuteError> {
        let Residency::OnDemand { idle } = self.residency else {
            return Ok(0);
        };
        let now = self.elapsed_milliseconds();
        let idle = idle.as_millis() as u64;
        let mut runtimes = self.runtimes.write().map_err(|_| ExecuteError::Poisoned)?;
        let before = runtimes.len();
        runtimes.retain(|tenant_id, resident| {
            let last_used = resident.last_used.load(Ordering::Relaxed);
            keep(*tenant_id) || now.saturating_sub(last_used) < idle
        });
        let evicted = before - runtimes.len();
        drop(runtimes);
        if evicted > 0 {
            self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
            tracing::info!(evicted, "evicted idle tenants");
        }
        Ok(evicted)
    }

    /// Counts one catch-up on another instance's writes ([`ResidencyReport::catch_ups`]).
    pub fn caught_up(&self) {
        self.catch_ups.fetch_add(1, Ordering::Relaxed);
    }

    /// What this instance holds and did.
    pub fn residency_report(&self) -> Result<ResidencyReport, ExecuteError> {
        let resident: Vec<Arc<TenantRuntime>> = self.all()?;
        let mut resident_users = 0;
        for runtime in &resident {
            resident_users += runtime.read(|engine| engine.user_count())?;
        }
        Ok(ResidencyReport {
            known: self.known.read().map_err(|_| ExecuteError::Poisoned)?.len(),
            resident: resident.len(),
            resident_users,
            loads: self.loads.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            catch_ups: self.catch_ups.load(Ordering::Relaxed),
        })
    }

    pub fn default_tenant(&self) -> Uuid {
        self.default_tenant
    }

    /// The resident tenants.
    pub fn all(&self) -> Result<Vec<Arc<TenantRuntime>>, ExecuteError> {
        let mut all: Vec<Arc<TenantRuntime>> = self
            .runtimes
            .read()
            .map_err(|_| ExecuteError::Poisoned)?
            .values()
            .map(|resident| Arc::clone(&resident.runtime))
            .collect();
        all.sort_by_key(|runtime| runtime.id);
        Ok(all)
    }

    /// Every tenant of the store this instance knows of, resident or not.
    pub fn known_ids(&self) -> Result<Vec<Uuid>, ExecuteError> {
        let mut ids: Vec<Uuid> = self
            .known
            .read()
            .map_err(|_| ExecuteError::Poisoned)?
            .iter()
            .copied()
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Whether this instance knows of the tenant (resident or not).
    pub fn is_known(&self, tenant_id: Uuid) -> bool {
        self.known.read().is_ok_and(|known| known.contains(&tenant_id))
    }

    /// Reads the store's tenant ids; returns those new to this instance.
    fn discover_ids(&self) -> Result<Vec<Uuid>, ExecuteError> {
        let ids = lock_store(&self.store)?.tenant_ids()?;
        let mut known = self.known.write().map_err(|_| ExecuteError::Poisoned)?;
        Ok(ids.into_iter().filter(|id| known.insert(*id)).collect())
    }

    /// Learns of tenants created by other instances since start; with
    /// [`Residency::Everything`] loads them.
    pub fn discover(&self) -> Result<(), ExecuteError> {
        let mut new = self.discover_ids()?;
        if self.residency == Residency::Everything {
            // Known but not loaded: a load failed before.
            new.extend(
                self.known_ids()?
                    .into_iter()
                    .filter(|id| self.resident(*id).is_none()),
            );
            new.sort_unstable();
            new.dedup();
            for id in new {
                self.load(id)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use licensd_engine::{NewUser, UserChanges};
    use licensd_store::AuditQuery;

    use super::*;

    const TENANT: Uuid = Uuid::from_u128(1);
    const SALES: Uuid = Uuid::from_u128(2);
    const MARKETING: Uuid = Uuid::from_u128(3);

    fn user(number: u128) -> Uuid {
        Uuid::from_u128(100 + number)
    }

    /// A SQLite store holding `users` users and the groups Sales and Marketing, loaded as a
    /// runtime.
    fn tenant(users: u128) -> (tempfile::TempDir, SharedStore, TenantRuntime) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("tenants.db").display());
        let mut engine = Engine::new(TenantSettings::new(TENANT, "Contoso"));
        let mut commands = vec![
            Command::CreateGroup {
                group_id: SALES,
                display_name: "Sales".to_string(),
            },
            Command::CreateGroup {
                group_id: MARKETING,
                display_name: "Marketing".to_string(),
            },
        ];
        commands.extend((0..users).map(|number| {
            Command::CreateUser(NewUser::new(user(number), &format!("user{number}@contoso.com")))
        }));
        for command in commands {
            engine.apply(command, Timestamp(0)).expect("accepted");
        }
        let image = engine.to_image();
        let mut store = Store::open(&url).expect("open");
        store.create_tenant(&image.settings).expect("tenant");
        store
            .write(TENANT, &WriteBatch::from_image(image))
            .expect("stored");
        let store: SharedStore = Arc::new(Mutex::new(store));
        let runtime = TenantRuntime::load(&store, TENANT).expect("loaded");
        (directory, store, runtime)
    }

    #[test]
    fn a_start_reads_the_written_snapshot_and_the_writes_since() {
        let (_directory, store, runtime) = tenant(20);
        let version = runtime.version().expect("version");
        assert_eq!(
            runtime.write_snapshot(&store, None).expect("write the snapshot"),
            Some(version)
        );
        assert_eq!(
            runtime
                .write_snapshot(&store, Some(version))
                .expect("nothing to write"),
            None,
            "an unchanged engine is not written again"
        );
        for number in 0..5 {
            runtime
                .execute(
                    &store,
                    Command::AddGroupMember {
                        group_id: SALES,
                        user_id: user(number),
                    },
                    &caller(),
                )
                .expect("accepted");
        }
        let started = lock_store(&store)
            .expect("store")
            .start_engine(TENANT)
            .expect("start");
        assert_eq!(
            started.source,
            licensd_store::StartSource::Snapshot {
                snapshot_version: version,
                caught_up: true
            }
        );
        let restarted = TenantRuntime::load(&store, TENANT).expect("restart");
        let current = runtime.read(Engine::to_image).expect("read");
        assert_eq!(restarted.read(Engine::to_image).expect("read"), current);
        assert_eq!(
            restarted.version().expect("version"),
            runtime.version().expect("version")
        );
        // The next snapshot is of the engine with the memberships.
        let newer = runtime.write_snapshot(&store, Some(version)).expect("write");
        assert_eq!(newer, Some(runtime.version().expect("version")));
    }

    /// A start that cannot use the stored snapshot (here a damaged one) loads the tables and
    /// replaces it in the background: the next start reads the fresh snapshot.
    #[test]
    fn a_start_that_could_not_use_the_snapshot_writes_a_fresh_one() {
        let (_directory, store, runtime) = tenant(20);
        let version = runtime.version().expect("version");
        assert!(lock_store(&store)
            .expect("store")
            .write_engine_snapshot(TENANT, version, b"not a snapshot")
            .expect("write the damaged snapshot"));
        let restarted = TenantRuntime::load(&store, TENANT).expect("restart");
        assert_eq!(
            restarted.read(Engine::to_image).expect("read"),
            runtime.read(Engine::to_image).expect("read")
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let started = lock_store(&store)
                .expect("store")
                .start_engine(TENANT)
                .expect("start");
            if let licensd_store::StartSource::Snapshot { snapshot_version, .. } = started.source {
                assert_eq!(snapshot_version, version);
                assert_eq!(
                    started.engine.to_image(),
                    runtime.read(Engine::to_image).expect("read")
                );
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no fresh snapshot was written: {:?}",
                started.source
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn an_instance_holding_tenants_on_demand_loads_one_when_asked_evicts_it_when_idle_and_reloads_it() {
        let (directory, writer_store, writer) = tenant(5);
        let url = format!("sqlite://{}", directory.path().join("tenants.db").display());
        let store: SharedStore = Arc::new(Mutex::new(Store::open(&url).expect("open")));
        let tenants = Tenants::open(&store, Residency::OnDemand { idle: Duration::ZERO }).expect("open");
        let report = tenants.residency_report().expect("report");
        assert_eq!(
            (report.known, report.resident, report.loads),
            (1, 0, 0),
            "nothing loaded at start"
        );
        assert!(matches!(tenants.get(TENANT), Err(ExecuteError::UnknownTenant(_))));
        let add = |number| Command::AddGroupMember {
            group_id: SALES,
            user_id: user(number),
        };
        writer
            .execute(&writer_store, add(0), &caller())
            .expect("accepted");

        // The first request loads it: the same engine as the instance that wrote.
        let loaded = tenants.load(TENANT).expect("loaded");
        assert_eq!(
            loaded.read(Engine::to_image).expect("read"),
            writer.read(Engine::to_image).expect("read")
        );
        assert_eq!(
            loaded.version().expect("version"),
            writer.version().expect("version")
        );
        let report = tenants.residency_report().expect("report");
        assert_eq!((report.resident, report.resident_users, report.loads), (1, 5, 1));
        assert!(
            Arc::ptr_eq(&tenants.load(TENANT).expect("resident"), &loaded),
            "loaded once"
        );

        // A tenant the processor owns stays; an idle one it does not own leaves.
        assert_eq!(tenants.evict_idle(|_| true).expect("evict"), 0);
        assert_eq!(tenants.evict_idle(|_| false).expect("evict"), 1);
        assert!(tenants.get(TENANT).is_err());
        assert!(tenants.all().expect("all").is_empty());

        // Evicted, it is loaded again with the writes made meanwhile.
        writer
            .execute(&writer_store, add(1), &caller())
            .expect("accepted");
        let reloaded = tenants.load(TENANT).expect("reloaded");
        assert_eq!(
            reloaded.read(Engine::to_image).expect("read"),
            writer.read(Engine::to_image).expect("read")
        );
        let report = tenants.residency_report().expect("report");
        assert_eq!((report.resident, report.loads, report.evictions), (1, 2, 1));

        // A tenant asked about within the idle period stays.
        let patient = Tenants::open(
            &store,
            Residency::OnDemand {
                idle: Duration::from_secs(600),
            },
        )
        .expect("open");
        patient.load(TENANT).expect("loaded");
        assert_eq!(patient.evict_idle(|_| false).expect("evict"), 0);

        // No such tenant in the store.
        assert!(matches!(
            tenants.load(Uuid::from_u128(0xdead)),
            Err(ExecuteError::UnknownTenant(_))
        ));
        // Holding everything: loaded at start, never evicted.
        let everything = Tenants::load_all(&store).expect("open");
        assert_eq!(everything.residency_report().expect("report").resident, 1);
        assert_eq!(everything.evict_idle(|_| false).expect("evict"), 0);
    }

    fn caller() -> Caller {
        Caller {
            tenant_id: TENANT,
            token_id: None,
            display_name: "tests".to_string(),
            role: Role::GlobalAdministrator,
            request_id: String::new(),
        }
    }

    /// Runs `commands` concurrently, each on a thread of its own, while the engine is held until
    /// every one of them waits; returns their results in order.
    fn execute_concurrently(
        store: &SharedStore,
        runtime: &TenantRuntime,
        commands: Vec<Command>,
    ) -> Vec<Result<CommandOutcome, ExecuteError>> {
        let count = commands.len();
        let caller = caller();
        std::thread::scope(|scope| {
            let (holding, held) = std::sync::mpsc::channel();
            let holder = scope.spawn(move || {
                runtime
                    .read(|_| {
                        holding.send(()).expect("announce");
                        // Every command waits for the writer's turn or the engine.
                        while runtime.waiting_writes().waiting.len() < count {
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    })
                    .expect("held the engine");
            });
            held.recv().expect("the engine is held");
            let writers: Vec<_> = commands
                .into_iter()
                .map(|command| {
                    let caller = &caller;
                    scope.spawn(move || runtime.execute(store, command, caller))
                })
                .collect();
            holder.join().expect("holder");
            writers
                .into_iter()
                .map(|writer| writer.join().expect("writer"))
                .collect()
        })
    }

    /// [`tenant`] with a product of `seats` seats assigned to Sales, and every user joining
    /// Sales (so every user is queued, and those past the seats will be in `CountViolation`).
    fn licensed_tenant(users: u128, seats: u32) -> (tempfile::TempDir, SharedStore, TenantRuntime) {
        let (directory, store, runtime) = tenant(users);
        let sku_id = Uuid::from_u128(9);
        let commands = [
            Command::SetDefaultUsageLocation {
                usage_location: Some(licensd_engine::CountryCode::parse("US").expect("country")),
            },
            Command::AddSku(licensd_engine::SkuDefinition {
                sku_id,
                sku_part_number: "SEATS".to_string(),
                display_name: "Seats".to_string(),
                applies_to: licensd_engine::AppliesTo::User,
                service_plans: vec![licensd_engine::ServicePlanDefinition {
                    service_plan_id: Uuid::from_u128(10),
                    service_plan_name: "PLAN".to_string(),
                    display_name: "Plan".to_string(),
                }],
                prepaid_units: seats,
                capability_status: licensd_engine::CapabilityStatus::Enabled,
            }),
            Command::AssignGroupLicenses {
                group_id: SALES,
                add_licenses: vec![licensd_engine::AssignedLicense::new(sku_id)],
                remove_licenses: Vec::new(),
            },
        ];
        for command in commands
            .into_iter()
            .chain((0..users).map(|number| Command::AddGroupMember {
                group_id: SALES,
                user_id: user(number),
            }))
        {
            runtime.execute(&store, command, &caller()).expect("accepted");
        }
        (directory, store, runtime)
    }

    #[test]
    fn the_advisor_report_is_cached_until_the_engine_changes() {
        let (_directory, store, runtime) = licensed_tenant(5, 100);
        let fresh = |runtime: &TenantRuntime| runtime.read(|engine| engine.advise()).expect("read");
        assert!(!runtime.advice_is_cached());
        let first = runtime.read_advised(|_, report| report.clone()).expect("read");
        assert_eq!(first, fresh(&runtime));
        assert!(runtime.advice_is_cached());
        // A processing step changes the engine: the cache no longer applies.
        while runtime.process_step(&store, 1_000).expect("step").remaining_users > 0 {}
        assert!(!runtime.advice_is_cached());
        let processed = runtime.read_advised(|_, report| report.clone()).expect("read");
        assert_eq!(processed, fresh(&runtime));
        // A direct assignment of the product Sales gives: redundant, and the cached report
        // computed before it would not say so.
        let sku_id = Uuid::from_u128(9);
        runtime
            .execute(
                &store,
                Command::UpdateUser {
                    user_id: user(0),
                    changes: UserChanges {
                        usage_location: Some(Some(
                            licensd_engine::CountryCode::parse("US").expect("country"),
                        )),
                        ..UserChanges::default()
                    },
                },
                &caller(),
            )
            .expect("accepted");
        while runtime.process_step(&store, 1_000).expect("step").remaining_users > 0 {}
        let processed = runtime.read_advised(|_, report| report.clone()).expect("read");
        runtime
            .execute(
                &store,
                Command::AssignUserLicenses {
                    user_id: user(0),
                    add_licenses: vec![licensd_engine::AssignedLicense::new(sku_id)],
                    remove_licenses: Vec::new(),
                },
                &caller(),
            )
            .expect("accepted");
        assert!(!runtime.advice_is_cached());
        let after = runtime.read_advised(|_, report| report.clone()).expect("read");
        assert_eq!(after, fresh(&runtime));
        assert_eq!(after.redundant_direct_assignments.len(), 1);
        assert!(processed.redundant_direct_assignments.is_empty());
        assert!(runtime.advice_is_cached());
    }

    /// The group names of the "Start/Finish applying group based license to users" records.
    fn group_runs(store: &SharedStore) -> Vec<(String, String)> {
        let records = lock_store(store)
            .expect("store")
            .audit_records(
                TENANT,
                &AuditQuery {
                    limit: 1_000,
                    ..AuditQuery::default()
                },
            )
            .expect("audit");
        let mut runs: Vec<(String, String)> = records
            .into_iter()
            .filter(|stored| stored.record.activity.contains("applying group based license"))
            .map(|stored| (stored.record.activity, stored.record.target_name))
            .collect();
        runs.sort();
        runs
    }

    #[test]
    fn only_the_group_whose_licenses_changed_gets_background_run_records() {
        // Sales (10 users, licensed) and Marketing (3 of them): a product added to Marketing
        // queues its 3 members, who are in Sales too, but Sales's licenses did not change.
        let (_directory, store, runtime) = licensed_tenant(10, 100);
        while runtime.process_step(&store, 1_000).expect("step").remaining_users > 0 {}
        let sales_runs = group_runs(&store);
        assert_eq!(
            sales_runs,
            vec![
                (
                    "Finish applying group based license to users".to_string(),
                    "Sales".to_string()
                ),
                (
                    "Start applying group based license to users".to_string(),
                    "Sales".to_string()
                ),
            ]
        );
        let marketing_sku = Uuid::from_u128(11);
        let commands = [
            Command::AddSku(licensd_engine::SkuDefinition {
                sku_id: marketing_sku,
                sku_part_number: "OTHER".to_string(),
                display_name: "Other".to_string(),
                applies_to: licensd_engine::AppliesTo::User,
                service_plans: vec![licensd_engine::ServicePlanDefinition {
                    service_plan_id: Uuid::from_u128(12),
                    service_plan_name: "OTHER_PLAN".to_string(),
                    display_name: "Other plan".to_string(),
                }],
                prepaid_units: 10,
                capability_status: licensd_engine::CapabilityStatus::Enabled,
            }),
            Command::AddGroupMember {
                group_id: MARKETING,
                user_id: user(0),
            },
            Command::AddGroupMember {
                group_id: MARKETING,
                user_id: user(1),
            },
            Command::AddGroupMember {
                group_id: MARKETING,
                user_id: user(2),
            },
            Command::AssignGroupLicenses {
                group_id: MARKETING,
                add_licenses: vec![licensd_engine::AssignedLicense::new(marketing_sku)],
                remove_licenses: Vec::new(),
            },
        ];
        for command in commands {
            runtime.execute(&store, command, &caller()).expect("accepted");
        }
        // Sales is busy while its members wait (Graph's processing state says so) ...
        let sales_state = runtime
            .read(|engine| engine.group_processing_state(SALES))
            .expect("read")
            .expect("group");
        assert_ne!(sales_state, LicenseProcessingState::ProcessingComplete);
        while runtime.process_step(&store, 1_000).expect("step").remaining_users > 0 {}
        // ... but only Marketing's run is recorded.
        let mut expected = sales_runs.clone();
        expected.extend([
            (
                "Finish applying group based license to users".to_string(),
                "Marketing".to_string(),
            ),
            (
                "Start applying group based license to users".to_string(),
                "Marketing".to_string(),
            ),
        ]);
        expected.sort();
        assert_eq!(group_runs(&store), expected);
        // A reprocess of Sales is a run of Sales.
        runtime
            .execute(&store, Command::ReprocessGroup { group_id: SALES }, &caller())
            .expect("accepted");
        while runtime.process_step(&store, 1_000).expect("step").remaining_users > 0 {}
        assert_eq!(group_runs(&store).len(), expected.len() + 2);
    }

    #[test]
    fn reads_and_evaluation_go_on_while_a_processing_step_is_written() {
        let (_directory, store, runtime) = licensed_tenant(600, 500);
        assert_eq!(runtime.read(|engine| engine.queued_users()).expect("read"), 600);
        let (reached, reached_write) = std::sync::mpsc::channel();
        let (resume, resumed) = std::sync::mpsc::channel::<()>();
        let resumed = Mutex::new(resumed);
        *runtime.step_write_hook.lock().expect("hook") = Some(Box::new(move |phase| {
            if phase == StepWritePhase::Before {
                reached.send(()).expect("announce the write");
                let _ = resumed.lock().expect("resume").recv();
            }
        }));
        std::thread::scope(|scope| {
            let step = scope.spawn(|| runtime.process_step(&store, 2_000));
            reached_write
                .recv_timeout(Duration::from_secs(60))
                .expect("the step reached its write");
            // The step holds the write order, not the engine: a read answers at once, and sees
            // the evaluated users out of the queue.
            let (answer, answered) = std::sync::mpsc::channel();
            let runtime = &runtime;
            let reader = scope.spawn(move || {
                let queued = runtime.read(|engine| engine.queued_users());
                let _ = answer.send(queued);
            });
            let queued = answered.recv_timeout(Duration::from_secs(30));
            resume.send(()).expect("resume the write");
            assert_eq!(
                queued
                    .expect("a read answered while the step was being written")
                    .expect("read"),
                0
            );
            reader.join().expect("reader");
            let report = step.join().expect("step").expect("written");
            assert_eq!(report.evaluated_users, 600);
        });
        // Written as one step: the store's queue is empty and the version moved once.
        let mut locked = lock_store(&store).expect("store");
        assert_eq!(locked.queue_len(TENANT).expect("queue"), 0);
        assert_eq!(
            locked.tenant_version(TENANT).expect("version"),
            runtime.version().expect("version")
        );
    }

    #[test]
    fn a_read_if_free_answers_at_once_and_gives_the_query_back_while_the_engine_is_held() {
        let (_directory, _store, runtime) = licensed_tenant(3, 3);
        let answered = runtime
            .read_if_free(|engine| engine.user_view(user(0)).is_ok())
            .expect("read");
        assert!(matches!(answered, ReadIfFree::Answered(true)));
        let held = runtime.lock().expect("engine");
        let given_back = QUERIES_GIVEN_BACK.load(Ordering::Relaxed);
        let busy = runtime
            .read_if_free(|engine| engine.user_view(user(0)).is_ok())
            .expect("read");
        let ReadIfFree::Busy(query) = busy else {
            panic!("the engine is held: the query must come back unrun");
        };
        // Counted (other tests may count theirs meanwhile: at least this one).
        assert!(QUERIES_GIVEN_BACK.load(Ordering::Relaxed) > given_back);
        drop(held);
        assert!(runtime.read(query).expect("read"));
    }

    #[test]
    fn queries_share_the_engine_and_a_change_waits_for_them() {
        let (_directory, store, runtime) = licensed_tenant(3, 3);
        // A query in progress (another request's) does not send the next one away: queries of
        // one tenant run side by side, neither waits nor takes the blocking path.
        let inner = runtime
            .read(|_| runtime.read_if_free(|engine| engine.user_view(user(0)).is_ok()))
            .expect("read")
            .expect("read");
        assert!(matches!(inner, ReadIfFree::Answered(true)));
        // A change waits until the queries holding the engine are done, and a query after it
        // returned sees it.
        let (reading, release) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        std::thread::scope(|scope| {
            let reader = scope.spawn(|| {
                runtime
                    .read(|engine| {
                        reading.wait();
                        release.wait();
                        engine.user_view(user(0)).map(|view| view.display_name)
                    })
                    .expect("read")
            });
            reading.wait();
            let writer = scope.spawn(|| {
                runtime.execute(
                    &store,
                    Command::UpdateUser {
                        user_id: user(0),
                        changes: UserChanges {
                            display_name: Some("Renamed".to_string()),
                            ..UserChanges::default()
                        },
                    },
                    &caller(),
                )
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(
                !writer.is_finished(),
                "the change waits for the query holding the engine"
            );
            release.wait();
            let before = reader.join().expect("reader").expect("the user");
            assert_ne!(before, "Renamed", "the query saw the engine as it was");
            writer.join().expect("writer").expect("accepted");
        });
        let after = runtime
            .read_if_free(|engine| engine.user_view(user(0)).map(|view| view.display_name))
            .expect("read");
        let ReadIfFree::Answered(Ok(name)) = after else {
            panic!("no change holds the engine: the query is answered");
        };
        assert_eq!(name, "Renamed");
    }

    #[test]
    fn a_catch_up_to_a_step_being_recorded_waits_for_it_instead_of_reading_it_back() {
        // The watcher hears of a processing step's commit (its NOTIFY) before the step records
        // its new version in the engine: catching up then must not read the step's users back.
        let (_directory, store, runtime) = licensed_tenant(300, 200);
        let (committed, heard) = std::sync::mpsc::channel();
        let (resume, resumed) = std::sync::mpsc::channel::<()>();
        let resumed = Mutex::new(resumed);
        *runtime.step_write_hook.lock().expect("hook") = Some(Box::new(move |phase| {
            if phase == StepWritePhase::After {
                committed.send(()).expect("announce the commit");
                let _ = resumed.lock().expect("resume").recv();
            }
        }));
        std::thread::scope(|scope| {
            let step = scope.spawn(|| runtime.process_step(&store, 2_000));
            heard
                .recv_timeout(Duration::from_secs(60))
                .expect("the step committed");
            let stored = lock_store(&store)
                .expect("store")
                .tenant_version(TENANT)
                .expect("version");
            assert!(stored > runtime.version().expect("version"));
            let (answer, answered) = std::sync::mpsc::channel();
            let runtime = &runtime;
            let store = &store;
            let catcher = scope.spawn(move || {
                let _ = answer.send(runtime.catch_up_to(store, stored));
            });
            // It waits for the step (no answer while the step is held), then has nothing to do.
            let early = answered.recv_timeout(Duration::from_millis(500));
            resume.send(()).expect("resume the step");
            let caught_up = match early {
                Ok(answer) => answer,
                Err(_) => answered.recv_timeout(Duration::from_secs(60)).expect("answered"),
            };
            assert!(!caught_up.expect("caught up"), "the catch-up read the step back");
            catcher.join().expect("catcher");
            step.join().expect("step").expect("written");
            assert_eq!(runtime.version().expect("version"), stored);
        });
    }

    #[test]
    fn a_step_evaluated_in_slices_writes_what_one_batch_would() {
        // The same queue processed in one slice-sized step after another and in one step of many
        // slices ends in the same stored states and queue.
        let stored = |max_users: usize| {
            let (_directory, store, runtime) = licensed_tenant(700, 500);
            while runtime
                .process_step(&store, max_users)
                .expect("step")
                .remaining_users
                > 0
            {}
            let fresh = TenantRuntime::load(&store, TENANT).expect("reloaded");
            let users = fresh.read(|engine| engine.to_image().users).expect("image");
            let queue = lock_store(&store).expect("store").queue(TENANT).expect("queue");
            // What a state decides (its times differ from run to run).
            let states: Vec<String> = users
                .iter()
                .flat_map(|user| {
                    user.states.iter().map(move |state| {
                        format!(
                            "{} {:?} {:?} {:?}",
                            user.id, state.status, state.cause, state.granted_plans
                        )
                    })
                })
                .collect();
            (states, queue)
        };
        let (sliced, sliced_queue) = stored(EVALUATION_SLICE);
        let (whole, whole_queue) = stored(700);
        assert_eq!(sliced.len(), 700);
        assert_eq!(sliced.iter().filter(|state| state.contains("Count")).count(), 200);
        assert!(sliced == whole, "the states differ");
        assert!(sliced_queue.is_empty() && whole_queue.is_empty());
    }

    #[test]
    fn concurrent_commands_share_one_transaction_and_each_gets_its_own_result() {
        let (_directory, store, runtime) = tenant(12);
        runtime
            .execute(
                &store,
                Command::AddGroupMember {
                    group_id: SALES,
                    user_id: user(11),
                },
                &caller(),
            )
            .expect("accepted");
        let transactions_before = runtime.command_transactions();
        let version_before = runtime.version().expect("version");
        // Ten users join Sales; user 0 joins Marketing too and is renamed (each of its commands
        // depends on the one before: they get versions of their own, in the same transaction);
        // adding user 11 to Sales again is refused alone.
        let mut commands: Vec<Command> = (0..10)
            .map(|number| Command::AddGroupMember {
                group_id: SALES,
                user_id: user(number),
            })
            .collect();
        commands.push(Command::AddGroupMember {
            group_id: MARKETING,
            user_id: user(0),
        });
        commands.push(Command::UpdateUser {
            user_id: user(0),
            changes: UserChanges {
                display_name: Some("Renamed".to_string()),
                ..UserChanges::default()
            },
        });
        commands.push(Command::AddGroupMember {
            group_id: SALES,
            user_id: user(11),
        });
        let count = commands.len();
        let results = execute_concurrently(&store, &runtime, commands);

        assert_eq!(results.len(), count);
        for result in &results[..count - 1] {
            assert!(result.is_ok(), "accepted: {result:?}");
        }
        assert!(
            matches!(
                results[count - 1],
                Err(ExecuteError::Refused(CommandError::AlreadyMember { .. }))
            ),
            "{:?}",
            results[count - 1]
        );
        assert_eq!(
            runtime.command_transactions() - transactions_before,
            1,
            "{count} concurrent commands in one transaction"
        );
        // Independent commands share a version; each of user 0's commands depends on the one
        // before it: three versions at least, one per command at most.
        let version = runtime.version().expect("version");
        assert!(
            (version_before + 3..=version_before + 12).contains(&version),
            "{version_before} -> {version}"
        );

        // The store holds what the engine holds.
        let (image, stored_version) = lock_store(&store)
            .expect("store")
            .load_tenant(TENANT)
            .expect("load");
        assert_eq!(stored_version, version);
        let expected = runtime.read(Engine::to_image).expect("image");
        assert_eq!(image.users, expected.users);
        let renamed = image
            .users
            .iter()
            .find(|stored| stored.id == user(0))
            .expect("user 0");
        assert_eq!(renamed.display_name, "Renamed");
        assert_eq!(renamed.memberships.len(), 2);

        // The change log lists every user each version touched.
        let changes = lock_store(&store)
            .expect("store")
            .changes_since(TENANT, version_before)
            .expect("changes");
        let mut changed: Vec<Uuid> = changes.iter().flat_map(|change| change.users.clone()).collect();
        changed.sort();
        let mut touched: Vec<Uuid> = (0..10).map(user).chain([user(0), user(0)]).collect();
        touched.sort();
        assert_eq!(changed, touched);

        // One audit record per command: the refusal too.
        let records = lock_store(&store)
            .expect("store")
            .audit_records(
                TENANT,
                &AuditQuery {
                    limit: 100,
                    ..AuditQuery::default()
                },
            )
            .expect("audit");
        let results: Vec<(&str, &str)> = records
            .iter()
            .map(|stored| (stored.record.activity.as_str(), stored.record.result.as_str()))
            .collect();
        let count_of = |activity: &str, result: &str| {
            results
                .iter()
                .filter(|record| **record == (activity, result))
                .count()
        };
        assert_eq!(count_of("Add member to group", "success"), 12);
        assert_eq!(count_of("Add member to group", "failure"), 1);
        assert_eq!(count_of("Update user", "success"), 1);
        assert_eq!(records.len(), 14);
    }

    #[test]
    fn a_group_of_refusals_writes_nothing_but_their_audit_records() {
        let (_directory, store, runtime) = tenant(2);
        runtime
            .execute(
                &store,
                Command::AddGroupMember {
                    group_id: SALES,
                    user_id: user(0),
                },
                &caller(),
            )
            .expect("accepted");
        let version = runtime.version().expect("version");
        let results = execute_concurrently(
            &store,
            &runtime,
            (0..3)
                .map(|_| Command::AddGroupMember {
                    group_id: SALES,
                    user_id: user(0),
                })
                .collect(),
        );
        assert!(results
            .iter()
            .all(|result| matches!(result, Err(ExecuteError::Refused(_)))));
        assert_eq!(runtime.version().expect("version"), version);
        assert_eq!(runtime.command_transactions(), 1);
        let failures = lock_store(&store)
            .expect("store")
            .audit_records(
                TENANT,
                &AuditQuery {
                    result: Some("failure".to_string()),
                    limit: 100,
                    ..AuditQuery::default()
                },
            )
            .expect("audit");
        assert_eq!(failures.len(), 3);
    }
}
