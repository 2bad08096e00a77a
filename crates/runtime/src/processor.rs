//! The background processor: a thread that drains every tenant's queue in batches through the
//! engine, persisting each batch's states and queue update in one transaction. On PostgreSQL a
//! lease per tenant makes sure one instance at a time processes it; another takes over when the
//! lease expires. Shutdown finishes the batch in flight, then stops.
//!
//! The processor does not poll for work on the hot path: a write that queues users wakes it
//! through the tenants' [`crate::tenants::ProcessingSignal`]; `processing_idle_interval` only
//! bounds how long it sleeps when nothing wakes it (leases of other instances expiring, queues
//! filled by another instance and missed by the watcher).
//!
//! Next to it runs the watcher: a thread with a connection of its own that hears of every write
//! other instances commit (PostgreSQL `LISTEN`; each write sends a `NOTIFY` in its transaction)
//! and brings the tenant's engine up to date at once, so reads through this instance reflect
//! them within milliseconds; it then wakes the processor if the write queued users. Every
//! [`VERSION_CHECK_INTERVAL`] (and after the listening connection broke) it also compares every
//! tenant's stored version with the engine's, which bounds how stale an engine can be if a
//! notice is lost, and is how SQLite (one instance, no notices) notices writes of other
//! processes such as the command-line tools. It does the same for the instance's
//! [`TokenCache`]: a revocation's notice makes it forget the token at once, and each check
//! re-reads the tokens it remembers first.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use licensd_store::Store;

use crate::access::TokenCache;
use crate::config::ServerConfig;
use crate::health::{RepeatedWarnings, WriteHealth};
use crate::tenants::{lock_store, ProcessingSignal, SharedStore, Tenants};

/// How often the watcher compares every tenant's stored version with its engine's, whatever
/// the notices said: the bound on staleness when a notice is lost.
pub const VERSION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How many times this process's processors wrote a processing lease (took or renewed it).
/// Exposed for tests: a busy processor renews its lease once a third of it has passed, not
/// before every step.
pub static LEASE_WRITES: AtomicU64 = AtomicU64::new(0);

/// How long the watcher waits for a notice before looking at the stop flag again.
const WATCH_TIMEOUT: Duration = Duration::from_millis(100);

/// A running processor and watcher; dropping it does not stop them, [`Processor::stop`] does.
pub struct Processor {
    stop: Arc<AtomicBool>,
    signal: Arc<ProcessingSignal>,
    thread: Option<JoinHandle<()>>,
    watcher: Option<JoinHandle<()>>,
}

impl Processor {
    pub fn start(
        config: ServerConfig,
        store: SharedStore,
        tenants: Arc<Tenants>,
    ) -> std::io::Result<Processor> {
        let health = Arc::new(WriteHealth::new(&config.database_url));
        Processor::start_watched(config, store, tenants, health, Arc::new(TokenCache::new()))
    }

    /// Starts the processor, recording the outcome of its writes in `health` (for `/readyz`);
    /// its watcher keeps `tokens` up to date (revocations announced, the periodic re-read).
    pub fn start_watched(
        config: ServerConfig,
        store: SharedStore,
        tenants: Arc<Tenants>,
        health: Arc<WriteHealth>,
        tokens: Arc<TokenCache>,
    ) -> std::io::Result<Processor> {
        let stop = Arc::new(AtomicBool::new(false));
        let signal = tenants.signal();
        let watcher = {
            let stop = Arc::clone(&stop);
            let config = config.clone();
            let store = Arc::clone(&store);
            let tenants = Arc::clone(&tenants);
            std::thread::Builder::new()
                .name("licensd-watcher".to_string())
                .spawn(move || watch(config, store, tenants, tokens, stop))?
        };
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("licensd-processor".to_string())
            .spawn(move || run(config, store, tenants, thread_stop, health))?;
        Ok(Processor {
            stop,
            signal,
            thread: Some(thread),
            watcher: Some(watcher),
        })
    }

    /// Asks the processor to stop after the batch in flight and waits for it and the watcher.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal.notify();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the processor thread panicked");
            }
        }
        if let Some(watcher) = self.watcher.take() {
            if watcher.join().is_err() {
                tracing::error!("the watcher thread panicked");
            }
        }
    }
}

/// Brings `runtime`'s engine up to `version` and wakes the processor when users wait.
fn catch_up(
    store: &SharedStore,
    tenants: &Tenants,
    runtime: &crate::tenants::TenantRuntime,
    version: u64,
    signal: &ProcessingSignal,
) {
    match runtime.catch_up_to(store, version) {
        Ok(true) => {
            tenants.caught_up();
            if runtime.has_queued_users().unwrap_or(false) {
                signal.notify();
            }
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(tenant = %runtime.id, %error, "catching up with another instance failed")
        }
    }
}

/// The watcher: hears of other instances' writes and catches up at once, and of revoked
/// tokens, which `tokens` forgets at once (see the module and [`TokenCache`]).
fn watch(
    config: ServerConfig,
    store: SharedStore,
    tenants: Arc<Tenants>,
    tokens: Arc<TokenCache>,
    stop: Arc<AtomicBool>,
) {
    let signal = tenants.signal();
    let mut listener: Option<Store> = None;
    let mut last_check: Option<Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        if listener.is_none() {
            match Store::open(&config.database_url).and_then(|mut connection| {
                connection.listen_for_changes()?;
                Ok(connection)
            }) {
                Ok(connection) => {
                    listener = Some(connection);
                    // Writes may have been missed while not listening.
                    last_check = None;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for other instances' writes; retrying");
                    std::thread::sleep(VERSION_CHECK_INTERVAL);
                    continue;
                }
            }
        }
        let Some(connection) = listener.as_mut() else {
            continue;
        };
        match connection.wait_for_changes(WATCH_TIMEOUT) {
            Ok(notices) => {
                for token_id in connection.take_token_notices() {
                    tokens.forget(token_id);
                }
                for tenant_id in connection.take_subscription_notices() {
                    if let Err(error) = tenants.notifier().reload(connection, tenant_id) {
                        tracing::warn!(tenant = %tenant_id, %error, "re-reading change subscriptions failed");
                    }
                }
                for tenant_id in connection.take_alert_rules_notices() {
                    if let Err(error) = tenants.alerts().reload(connection, tenant_id) {
                        tracing::warn!(tenant = %tenant_id, %error, "re-reading alert rules failed");
                    }
                }
                for notice in notices {
                    match tenants.resident(notice.tenant_id) {
                        Some(runtime) => catch_up(&store, &tenants, &runtime, notice.version, &signal),
                        // Not held by this instance: nothing to catch up (it is read whole when
                        // a request or the processor loads it).
                        None if tenants.is_known(notice.tenant_id) => {}
                        // A tenant created by another instance, or one of another schema.
                        None => {
                            if let Err(error) = tenants.discover() {
                                tracing::warn!(%error, "looking for new tenants failed");
                            }
                        }
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "listening for other instances' writes failed; reconnecting");
                listener = None;
                continue;
            }
        }
        let check_due = match last_check {
            None => true,
            Some(at) => at.elapsed() >= VERSION_CHECK_INTERVAL,
        };
        if check_due {
            last_check = Some(Instant::now());
            // Tokens first: a long catch-up below must not delay a revocation whose notice was
            // lost (the cache stops answering when this check is overdue).
            if let Err(error) = tokens.revalidate(|ids| connection.access_tokens_by_id(ids)) {
                tracing::warn!(%error, "re-reading remembered tokens failed; reconnecting");
                listener = None;
                continue;
            }
            // Alert rules too (a lost notice; SQLite written by another process).
            if let Err(error) = tenants.alerts().reload_all(connection) {
                tracing::warn!(%error, "re-reading alert rules failed");
            }
            match connection.tenant_versions() {
                Ok(versions) => {
                    for (tenant_id, version) in versions {
                        if let Some(runtime) = tenants.resident(tenant_id) {
                            catch_up(&store, &tenants, &runtime, version, &signal);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "checking tenant versions failed; reconnecting");
                    listener = None;
                }
            }
        }
    }
}

/// This instance's view of which tenants it processes: the live processing instances, re-read
/// (and this instance's announcement renewed) every third of the lease time, and the tenants whose
/// lease it holds.
struct TenantSharing {
    instance_id: String,
    lease: Duration,
    live: Vec<String>,
    refreshed: Option<Instant>,
    held: std::collections::HashSet<licensd_engine::Uuid>,
    /// When this instance last took or renewed each held lease (by its own clock, read before
    /// the write, so never later than the database's `expires_at - lease`).
    leased_at: std::collections::HashMap<licensd_engine::Uuid, Instant>,
}

impl TenantSharing {
    fn new(config: &ServerConfig) -> TenantSharing {
        TenantSharing {
            instance_id: config.instance_id.clone(),
            lease: config.processing_lease,
            live: Vec::new(),
            refreshed: None,
            held: std::collections::HashSet::new(),
            leased_at: std::collections::HashMap::new(),
        }
    }

    /// Whether this instance's lease on the tenant was taken less than a third of the lease time
    /// ago: then at least two thirds of it are left and a step need not renew it first (one
    /// write per step saved while clients write and the processor steps after every group).
    /// A step's write is still refused if the tenant moved on meanwhile (its expected version),
    /// and a crashed instance's lease still expires at most one lease time after its last
    /// renewal, so another instance takes over as soon as before.
    fn lease_is_fresh(&self, tenant_id: licensd_engine::Uuid) -> bool {
        self.held.contains(&tenant_id)
            && self
                .leased_at
                .get(&tenant_id)
                .is_some_and(|at| at.elapsed() < self.refresh_interval())
    }

    /// The lease was taken (`Some(asked)`, the moment it was asked for) or not.
    fn leased(&mut self, tenant_id: licensd_engine::Uuid, asked: Option<Instant>) {
        match asked {
            Some(at) => {
                self.held.insert(tenant_id);
                self.leased_at.insert(tenant_id, at);
            }
            None => {
                self.leased_at.remove(&tenant_id);
            }
        }
    }

    fn refresh_interval(&self) -> Duration {
        self.lease / 3
    }

    /// How long until the next refresh is due.
    fn until_refresh(&self) -> Duration {
        match self.refreshed {
            None => Duration::ZERO,
            Some(at) => self.refresh_interval().saturating_sub(at.elapsed()),
        }
    }

    /// Renews the announcement and re-reads the live instances when due. On a failure the last
    /// view stays (the leases keep processing exclusive whatever the view).
    fn refresh(&mut self, store: &SharedStore) {
        if self.until_refresh() > Duration::ZERO {
            return;
        }
        self.refreshed = Some(Instant::now());
        let live = lock_store(store).and_then(|mut store| {
            store.announce_processing_instance(&self.instance_id, self.lease)?;
            Ok(store.live_processing_instances()?)
        });
        match live {
            Ok(live) => {
                if live != self.live {
                    tracing::info!(instance = %self.instance_id, live = ?live, "processing instances changed");
                }
                self.live = live;
            }
            Err(error) => tracing::warn!(%error, "announcing this processing instance failed"),
        }
    }

    fn owns(&self, tenant_id: licensd_engine::Uuid) -> bool {
        crate::ownership::owns(&self.live, &self.instance_id, tenant_id)
    }

    /// Releases the lease of a tenant another instance now processes, if this one held it.
    fn hand_over(&mut self, store: &SharedStore, tenant_id: licensd_engine::Uuid) {
        self.leased_at.remove(&tenant_id);
        if !self.held.remove(&tenant_id) {
            return;
        }
        let released = lock_store(store).and_then(|mut store| {
            store
                .release_processing_lease(tenant_id, &self.instance_id)
                .map_err(Into::into)
        });
        match released {
            Ok(()) => {
                tracing::info!(tenant = %tenant_id, "handed the tenant's processing over to another instance")
            }
            Err(error) => {
                tracing::warn!(tenant = %tenant_id, %error, "releasing the processing lease failed")
            }
        }
    }

    /// Withdraws this instance's announcement so the others take its tenants at once.
    fn withdraw(&self, store: &SharedStore) {
        let withdrawn = lock_store(store).and_then(|mut store| {
            store
                .withdraw_processing_instance(&self.instance_id)
                .map_err(Into::into)
        });
        if let Err(error) = withdrawn {
            tracing::warn!(%error, "withdrawing this processing instance failed");
        }
    }
}

/// When the processor writes engine snapshots ([`crate::tenants::TenantRuntime::write_snapshot`]):
/// at a clean shutdown, for each tenant it processes whose version moved since its last snapshot;
/// and, when an `interval` is configured, also every `interval` while the tenant's queue is empty
/// (off by default; only a copy-on-write copy of the engine is taken under its lock, the encoding
/// and the write run on this thread without it, a few seconds per million users).
struct Snapshots {
    interval: Option<Duration>,
    started: Instant,
    /// Per tenant: the version of the last snapshot this instance wrote and when.
    last: std::collections::HashMap<licensd_engine::Uuid, (Option<u64>, Instant)>,
}

impl Snapshots {
    fn new(interval: Option<Duration>) -> Snapshots {
        Snapshots {
            interval,
            started: Instant::now(),
            last: std::collections::HashMap::new(),
        }
    }

    fn write_due(
        &mut self,
        store: &SharedStore,
        tenants: &Tenants,
        held: &std::collections::HashSet<licensd_engine::Uuid>,
        shutting_down: bool,
    ) {
        if self.interval.is_none() && !shutting_down {
            return;
        }
        let Ok(runtimes) = tenants.all() else {
            return;
        };
        for runtime in runtimes {
            if !held.contains(&runtime.id) {
                continue;
            }
            let (version, at) = self
                .last
                .get(&runtime.id)
                .copied()
                .unwrap_or((None, self.started));
            if !shutting_down {
                let due = self.interval.is_some_and(|interval| at.elapsed() >= interval);
                if !due || runtime.has_queued_users().unwrap_or(true) {
                    continue;
                }
            }
            let started = Instant::now();
            match runtime.write_snapshot(store, version) {
                Ok(Some(written)) => {
                    tracing::info!(
                        tenant = %runtime.id,
                        version = written,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "wrote the engine snapshot"
                    );
                    self.last.insert(runtime.id, (Some(written), Instant::now()));
                }
                Ok(None) => {
                    self.last.insert(runtime.id, (version, Instant::now()));
                }
                Err(error) => {
                    tracing::warn!(tenant = %runtime.id, %error, "writing the engine snapshot failed");
                    self.last.insert(runtime.id, (version, Instant::now()));
                }
            }
        }
    }
}

/// How often held alert digests are looked at (a digest is sent at most this long after its
/// window closes).
const DIGEST_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the audit log is pruned of records older than the retention.
const AUDIT_PRUNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Deletes audit records older than `retention` (every tenant's).
fn prune_audit_log(store: &SharedStore, retention: std::time::Duration) {
    let cutoff = crate::tenants::now().0 - retention.as_millis() as i64;
    match lock_store(store).and_then(|mut store| store.prune_audit(cutoff).map_err(Into::into)) {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "pruned audit records past their retention"),
        Err(error) => tracing::warn!(%error, "pruning the audit log failed"),
    }
}

fn run(
    config: ServerConfig,
    store: SharedStore,
    tenants: Arc<Tenants>,
    stop: Arc<AtomicBool>,
    health: Arc<WriteHealth>,
) {
    tracing::info!(instance = %config.instance_id, "processor started");
    // A failure retried every idle interval (a full disk) is logged once a minute, not 20 times
    // a second.
    let warnings = RepeatedWarnings::default();
    let signal = tenants.signal();
    let statistics = tenants.statistics();
    let mut rounds: u64 = 0;
    let mut last_pruned: Option<std::time::Instant> = None;
    let mut last_lifecycle_check: Option<std::time::Instant> = None;
    let mut last_digest_check: Option<std::time::Instant> = None;
    let mut sharing = TenantSharing::new(&config);
    let mut snapshots = Snapshots::new(config.engine_snapshot_interval);
    while !stop.load(Ordering::SeqCst) {
        rounds += 1;
        sharing.refresh(&store);
        if last_lifecycle_check.map_or(true, |at| at.elapsed() >= config.lifecycle_check_interval) {
            last_lifecycle_check = Some(std::time::Instant::now());
            crate::subscription_lifecycles::apply_lifecycles(&store, &tenants, crate::tenants::now().0);
            crate::alerts::check_periodic(&store, &tenants, &statistics, crate::tenants::now().0);
            crate::seat_history::record_seat_history(&store, &tenants, crate::tenants::now().0);
            // Reclamation policies act on the tenants this instance processes only.
            crate::reclamation::run_due(
                &store,
                &tenants,
                |tenant_id| sharing.owns(tenant_id),
                crate::tenants::now().0,
            );
        }
        if last_digest_check.map_or(true, |at| at.elapsed() >= DIGEST_CHECK_INTERVAL) {
            last_digest_check = Some(std::time::Instant::now());
            match crate::alert_digests::deliver_due(&store, &tenants, crate::tenants::now().0) {
                Ok(0) => {}
                Ok(sent) => tracing::info!(sent, "alert digest windows closed"),
                Err(error) => tracing::warn!(%error, "sending alert digests failed"),
            }
        }
        // Read before looking at the queues: a write that queues users after this returns at
        // once from the wait below.
        let seen = signal.generation();
        if let Some(retention) = config.audit_retention {
            let due = match last_pruned {
                None => true,
                Some(at) => at.elapsed() >= AUDIT_PRUNING_INTERVAL,
            };
            if due {
                last_pruned = Some(std::time::Instant::now());
                prune_audit_log(&store, retention);
            }
        }
        if rounds % 100 == 0 {
            if let Err(error) = tenants.discover() {
                tracing::warn!(%error, "looking for new tenants failed");
            }
        }
        // Tenants no request asked about lately and this instance does not process leave memory.
        if let Err(error) = tenants.evict_idle(|tenant_id| sharing.owns(tenant_id)) {
            tracing::warn!(%error, "evicting idle tenants failed");
        }
        let mut evaluated = 0;
        let tenant_ids = match tenants.known_ids() {
            Ok(ids) => ids,
            Err(error) => {
                tracing::error!(%error, "cannot list tenants");
                break;
            }
        };
        for tenant_id in tenant_ids {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            if !sharing.owns(tenant_id) {
                // Another live instance processes this tenant: hand it over if this one held it.
                sharing.hand_over(&store, tenant_id);
                statistics.processed_elsewhere(tenant_id);
                continue;
            }
            // The lease is renewed once a third of it has passed, not before every step; and
            // every round while writes fail (its success tells the database is back).
            let leased = if sharing.lease_is_fresh(tenant_id) && !health.failing() {
                Ok(true)
            } else {
                let asked = Instant::now();
                LEASE_WRITES.fetch_add(1, Ordering::Relaxed);
                let leased = lock_store(&store).and_then(|mut store| {
                    store
                        .try_acquire_processing_lease(tenant_id, &config.instance_id, config.processing_lease)
                        .map_err(Into::into)
                });
                sharing.leased(tenant_id, matches!(leased, Ok(true)).then_some(asked));
                if matches!(leased, Ok(true)) {
                    // The lease is a write: the database takes writes again.
                    health.write_succeeded();
                }
                leased
            };
            match leased {
                Ok(true) => {}
                Ok(false) => {
                    statistics.processed_elsewhere(tenant_id);
                    continue;
                }
                Err(error) => {
                    health.write_failed(&error.to_string());
                    let text = format!("processing lease of {tenant_id} failed: {error}");
                    if let Some(repeats) = warnings.admit(&text) {
                        tracing::warn!(tenant = %tenant_id, %error, repeats, "processing lease failed");
                    }
                    continue;
                }
            }
            // The tenants this instance processes are resident (loaded now if they were not).
            let runtime = match tenants.resident(tenant_id) {
                Some(runtime) => runtime,
                None => match tenants.load(tenant_id) {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let text = format!("loading tenant {tenant_id} failed: {error}");
                        if let Some(repeats) = warnings.admit(&text) {
                            tracing::warn!(tenant = %tenant_id, %error, repeats, "loading the tenant to process it failed");
                        }
                        continue;
                    }
                },
            };
            let queued_before = runtime.read(|engine| engine.queued_users()).unwrap_or(0);
            let step_started = Instant::now();
            statistics.looked(runtime.id, queued_before, step_started);
            match runtime.process_step(&store, config.processing_batch_size) {
                Ok(step) => {
                    if step.evaluated_users > 0 {
                        statistics.stepped(
                            runtime.id,
                            queued_before,
                            &step,
                            step_started.elapsed(),
                            Instant::now(),
                        );
                    }
                    if step.evaluated_users > 0 {
                        tracing::debug!(
                            tenant = %runtime.id,
                            evaluated = step.evaluated_users,
                            changed = step.changed_states,
                            remaining = step.remaining_users,
                            "processed a batch"
                        );
                    }
                    if step.evaluated_users > 0 {
                        health.write_succeeded();
                    }
                    evaluated += step.evaluated_users;
                }
                Err(error) => {
                    statistics.step_failed(runtime.id);
                    health.write_failed(&error.to_string());
                    let text = format!("processing step of {} failed: {error}", runtime.id);
                    if let Some(repeats) = warnings.admit(&text) {
                        tracing::warn!(tenant = %runtime.id, %error, repeats, "processing step failed");
                    }
                }
            }
        }
        if evaluated == 0 {
            // Idle: the snapshots that are due, of the tenants this instance processes.
            snapshots.write_due(&store, &tenants, &sharing.held, false);
            // Wake up in time to renew this instance's announcement and see who joined or left.
            let idle = config.processing_idle_interval.min(sharing.until_refresh());
            if config.processing_wake_on_write {
                signal.wait(seen, idle);
            } else {
                std::thread::sleep(idle);
            }
        }
    }
    // A clean shutdown leaves a snapshot of every tenant this instance processed that changed
    // since its last one, so the next start reads little of the change log.
    snapshots.write_due(&store, &tenants, &sharing.held, true);
    sharing.withdraw(&store);
    // Hand the tenants over at once instead of letting another instance wait for the leases to
    // expire.
    for tenant_id in tenants.known_ids().unwrap_or_default() {
        let released = lock_store(&store).and_then(|mut store| {
            store
                .release_processing_lease(tenant_id, &config.instance_id)
                .map_err(Into::into)
        });
        if let Err(error) = released {
            tracing::warn!(tenant = %tenant_id, %error, "releasing the processing lease failed");
        }
    }
    tracing::info!("processor stopped");
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use licensd_engine::{Command, Engine, NewUser, TenantSettings, Timestamp, Uuid};
    use licensd_store::WriteBatch;

    use super::*;

    const TENANT: Uuid = Uuid::from_u128(0x5a);

    /// A stored tenant of a few users, the processor started on it and stopped once it holds
    /// the tenant's lease; returns the stored snapshot's version and the tenant's.
    fn run_and_stop(interval: Option<Duration>) -> (Option<u64>, u64) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("processor.db").display());
        let (store, version) = stored_tenant_of_five(&url);
        let tenants = Arc::new(Tenants::load_all(&store).expect("tenants"));
        let mut config = ServerConfig::defaults(directory.path());
        config.database_url = url;
        config.engine_snapshot_interval = interval;
        let instance = config.instance_id.clone();
        let processor = Processor::start(config, Arc::clone(&store), tenants).expect("start");
        wait_for_lease(&store, &instance);
        processor.stop();
        let snapshot = lock_store(&store)
            .expect("store")
            .engine_snapshot_version(TENANT)
            .expect("snapshot version");
        (snapshot, version)
    }

    /// The stored expiry of the tenant's processing lease (SQLite, by the database's clock).
    fn lease_expiry(store: &SharedStore) -> i64 {
        match &mut *lock_store(store).expect("store") {
            Store::Sqlite(sqlite) => sqlite
                .connection()
                .query_row("SELECT expires_at FROM processing_leases", [], |row| row.get(0))
                .expect("the lease row"),
            Store::Postgres(_) => panic!("a SQLite store"),
        }
    }

    /// A processor on a stored tenant of five users with a lease of `lease`; waits until it
    /// holds the lease and has nothing queued. Returns the store, the tenant and the processor.
    fn processing(
        directory: &std::path::Path,
        lease: Duration,
    ) -> (SharedStore, Arc<crate::tenants::TenantRuntime>, Processor) {
        let url = format!("sqlite://{}", directory.join("lease.db").display());
        let (store, _) = stored_tenant_of_five(&url);
        let tenants = Arc::new(Tenants::load_all(&store).expect("tenants"));
        let mut config = ServerConfig::defaults(directory);
        config.database_url = url;
        config.processing_lease = lease;
        config.processing_idle_interval = Duration::from_millis(5);
        let instance = config.instance_id.clone();
        let runtime = tenants.get(TENANT).expect("tenant runtime");
        let processor = Processor::start(config, Arc::clone(&store), tenants).expect("start");
        wait_for_lease(&store, &instance);
        (store, runtime, processor)
    }

    /// A tenant of five users stored at `url`; returns the store and the tenant's version.
    fn stored_tenant_of_five(url: &str) -> (SharedStore, u64) {
        let mut engine = Engine::new(TenantSettings::new(TENANT, "Contoso"));
        for number in 0..5u128 {
            let id = Uuid::from_u128(0x100 + number);
            engine
                .apply(
                    Command::CreateUser(NewUser::new(id, &format!("user{number}@contoso.com"))),
                    Timestamp(0),
                )
                .expect("accepted");
        }
        let image = engine.to_image();
        let mut store = Store::open(url).expect("open");
        store.create_tenant(&image.settings).expect("tenant");
        let version = store
            .write(TENANT, &WriteBatch::from_image(image))
            .expect("stored");
        (Arc::new(Mutex::new(store)), version)
    }

    /// Waits (at most 30 s) until `instance` holds the tenant's processing lease.
    fn wait_for_lease(store: &SharedStore, instance: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while lock_store(store)
            .expect("store")
            .processing_lease_holder(TENANT)
            .expect("lease")
            .as_deref()
            != Some(instance)
        {
            assert!(
                Instant::now() < deadline,
                "the processor never took the tenant's lease"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Queues a user by a command and waits until the processor evaluated it.
    fn queue_and_wait(store: &SharedStore, runtime: &crate::tenants::TenantRuntime, number: u128) {
        let caller = crate::access::Caller {
            tenant_id: TENANT,
            token_id: None,
            display_name: "tests".to_string(),
            role: crate::access::Role::GlobalAdministrator,
            request_id: String::new(),
        };
        runtime
            .execute(
                store,
                Command::ReprocessUser {
                    user_id: Uuid::from_u128(0x100 + number % 5),
                },
                &caller,
            )
            .expect("reprocess");
        let deadline = Instant::now() + Duration::from_secs(30);
        while runtime.has_queued_users().expect("queue") {
            assert!(
                Instant::now() < deadline,
                "the processor did not evaluate the user"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_busy_processor_does_not_renew_its_lease_before_every_step() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (store, runtime, processor) = processing(directory.path(), Duration::from_secs(60));
        // Right after taking the lease (its first rounds may still be renewing it).
        std::thread::sleep(Duration::from_millis(50));
        let before = lease_expiry(&store);
        for number in 0..20 {
            queue_and_wait(&store, &runtime, number);
            // Every step on its own clock millisecond: a renewal would move the expiry.
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(
            lease_expiry(&store),
            before,
            "20 steps within a third of the lease wrote the lease again"
        );
        processor.stop();
    }

    #[test]
    fn a_busy_processor_renews_its_lease_once_a_third_of_it_passed() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let lease = Duration::from_millis(600);
        let (store, runtime, processor) = processing(directory.path(), lease);
        let before = lease_expiry(&store);
        let started = Instant::now();
        let mut number = 0;
        // Steps for longer than a third of the lease (and the idle rounds in between).
        while started.elapsed() < lease / 2 {
            queue_and_wait(&store, &runtime, number);
            number += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
        let after = lease_expiry(&store);
        assert!(
            after > before,
            "the lease was not renewed after half its time: {before} then {after}"
        );
        // Never left to run out: the instance still holds it.
        assert!(lock_store(&store)
            .expect("store")
            .processing_lease_holder(TENANT)
            .expect("holder")
            .is_some());
        processor.stop();
    }

    #[test]
    fn a_clean_shutdown_leaves_a_snapshot_of_each_tenant_it_processed() {
        let (snapshot, version) = run_and_stop(Some(Duration::from_secs(600)));
        assert_eq!(snapshot, Some(version));
    }

    #[test]
    fn without_periodic_snapshots_a_clean_shutdown_still_leaves_one() {
        let (snapshot, version) = run_and_stop(None);
        assert_eq!(snapshot, Some(version));
    }
}
