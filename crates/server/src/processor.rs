//! The background processor: a thread that drains every tenant's queue in batches through the
//! engine, persisting each batch's states and queue update in one transaction. On PostgreSQL a
//! lease per tenant makes sure one instance at a time processes it; another takes over when the
//! lease expires. Shutdown finishes the batch in flight, then stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::ServerConfig;
use crate::tenants::{lock_store, SharedStore, Tenants};

/// A running processor; dropping it does not stop it, [`Processor::stop`] does.
pub struct Processor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Processor {
    pub fn start(
        config: ServerConfig,
        store: SharedStore,
        tenants: Arc<Tenants>,
    ) -> std::io::Result<Processor> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("licensd-processor".to_string())
            .spawn(move || run(config, store, tenants, thread_stop))?;
        Ok(Processor {
            stop,
            thread: Some(thread),
        })
    }

    /// Asks the processor to stop after the batch in flight and waits for it.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the processor thread panicked");
            }
        }
    }
}

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

fn run(config: ServerConfig, store: SharedStore, tenants: Arc<Tenants>, stop: Arc<AtomicBool>) {
    tracing::info!(instance = %config.instance_id, "processor started");
    let mut rounds: u64 = 0;
    let mut last_pruned: Option<std::time::Instant> = None;
    let mut last_lifecycle_check: Option<std::time::Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        rounds += 1;
        if last_lifecycle_check.map_or(true, |at| at.elapsed() >= config.lifecycle_check_interval) {
            last_lifecycle_check = Some(std::time::Instant::now());
            crate::graph::directory_subscriptions::apply_lifecycles(
                &store,
                &tenants,
                crate::tenants::now().0,
            );
        }
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
            if let Err(error) = tenants.discover(&store) {
                tracing::warn!(%error, "looking for new tenants failed");
            }
        }
        let mut evaluated = 0;
        let runtimes = match tenants.all() {
            Ok(runtimes) => runtimes,
            Err(error) => {
                tracing::error!(%error, "cannot list tenants");
                break;
            }
        };
        for runtime in runtimes {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let leased = lock_store(&store).and_then(|mut store| {
                store
                    .try_acquire_processing_lease(runtime.id, &config.instance_id, config.processing_lease)
                    .map_err(Into::into)
            });
            match leased {
                Ok(true) => {}
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(tenant = %runtime.id, %error, "processing lease failed");
                    continue;
                }
            }
            match runtime.process_step(&store, config.processing_batch_size) {
                Ok(step) => {
                    if step.evaluated_users > 0 {
                        tracing::debug!(
                            tenant = %runtime.id,
                            evaluated = step.evaluated_users,
                            changed = step.changed_states,
                            remaining = step.remaining_users,
                            "processed a batch"
                        );
                    }
                    evaluated += step.evaluated_users;
                }
                Err(error) => tracing::warn!(tenant = %runtime.id, %error, "processing step failed"),
            }
        }
        if evaluated == 0 {
            std::thread::sleep(config.processing_idle_interval);
        }
    }
    // Hand the tenants over at once instead of letting another instance wait for the leases to
    // expire.
    if let Ok(runtimes) = tenants.all() {
        for runtime in runtimes {
            let released = lock_store(&store).and_then(|mut store| {
                store
                    .release_processing_lease(runtime.id, &config.instance_id)
                    .map_err(Into::into)
            });
            if let Err(error) = released {
                tracing::warn!(tenant = %runtime.id, %error, "releasing the processing lease failed");
            }
        }
    }
    tracing::info!("processor stopped");
}
