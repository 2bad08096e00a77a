//! The delivery worker: a thread that expands change events into deliveries (fan-out at
//! delivery time, [`ChangeNotifier::expand_step`]: compact rows without a body, one short
//! transaction per step — a range of events fixed with its first chunk, then its deliveries
//! for [`SUBSCRIPTIONS_PER_CHUNK`] subscriptions at a time on SQLite), claims due outbox rows
//! (of every tenant), renders the bodies of change notifications from their events
//! ([`ChangeNotifier::render`]; a delivery that cannot be rendered any more — its subscription
//! deleted — is given up), sends them concurrently, and settles each — delivered, retried after an exponential backoff (the
//! owner's other deliveries are held back as long: a failing endpoint is throttled), or
//! abandoned after the last attempt — then tells the [`DeliveryObserver`]. Woken at once by the
//! writes that add rows ([`ProcessingSignal`]); otherwise it sleeps until the next retry is due
//! (at most [`IDLE_CHECK`], which also picks up rows other instances wrote or left behind).
//!
//! A wide fan-out (1,000 subscribers notified of every write) must not starve the writers:
//! its writes are short (one chunk of an expansion, one claim, one claim's outcomes: each a
//! transaction of at most ~100 rows, so a writer that arrives meanwhile waits for that, not for
//! the whole fan-out), and while the outbox has a backlog or an expansion has chunks left and
//! this instance's writers are busy, the worker works at most [`BUSY_SHARE_PERCENT`] of the
//! time, lets change events gather (fewer, fuller deliveries) and records a claim's delivered
//! rows in one transaction.
//!
//! At least once: a row is settled only after its answer; a worker that dies holding rows
//! leaves them to the next claim after their lease (or at once when a worker of the same id
//! starts again).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use licensd_runtime::config::NotificationSettings;
use licensd_runtime::notifications::{
    ChangeNotifier, SUBSCRIPTIONS_PER_CHUNK, SUBSCRIPTIONS_PER_CHUNK_POSTGRES,
};
use licensd_runtime::tenants::{ProcessingSignal, SharedStore};
use licensd_store::{AttemptResult, Backend, ClaimedDelivery, ExpansionStep, Store};

use crate::counters::{GateUse, COUNTERS, GATE};
use crate::guard::{guarded_client, TargetPolicy};
use crate::send::{send, SendResult};

/// The longest the worker sleeps without looking at the outbox.
pub const IDLE_CHECK: Duration = Duration::from_secs(2);
/// Rows claimed (and sent concurrently) at once.
const CLAIM_BATCH: usize = 64;
/// How often settled deliveries older than the retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// While this instance's writers are busy, the worker works at most this share of the time
/// (percent): after a round of work it pauses for the rest, so a wide fan-out (1,000
/// subscribers notified of every write) does not take the write lock and the cores from the
/// writers; it catches up at full speed as soon as they are idle.
const BUSY_SHARE_PERCENT: u32 = 10;
/// Rounds shorter than this are not followed by a pause.
const HEAVY_ROUND: Duration = Duration::from_millis(2);
/// The longest pause after one round.
const MAX_PAUSE: Duration = Duration::from_millis(250);
/// Writers are busy when one wrote within this many milliseconds.
const WRITERS_BUSY_WITHIN_MS: i64 = 20;
/// While the outbox has more due rows than one claim takes, change events are left to gather
/// (their changes then share one delivery per subscription) for at most this long.
const EXPANSION_HOLD: Duration = Duration::from_millis(500);

/// How one claimed delivery was settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered {
        status: u16,
    },
    /// Failed; tried again after `retry_in`.
    Retrying {
        status: Option<u16>,
        error: String,
        retry_in: Duration,
    },
    /// Given up: the last attempt failed, or the target is refused.
    Abandoned {
        status: Option<u16>,
        error: String,
    },
}

/// Told of every settled delivery (after the outbox row is updated): how owners react to their
/// deliveries' fate (Graph subscriptions send lifecycle notifications; alerts may log).
pub trait DeliveryObserver: Send + Sync {
    fn settled(&self, store: &mut Store, delivery: &ClaimedDelivery, outcome: &DeliveryOutcome);
}

/// An observer that does nothing.
pub struct NoObserver;

impl DeliveryObserver for NoObserver {
    fn settled(&self, _store: &mut Store, _delivery: &ClaimedDelivery, _outcome: &DeliveryOutcome) {}
}

/// The running worker; [`DeliveryWorker::stop`] ends it.
pub struct DeliveryWorker {
    stop: Arc<AtomicBool>,
    signal: Arc<ProcessingSignal>,
    thread: Option<JoinHandle<()>>,
}

/// What the worker needs.
pub struct WorkerSettings {
    /// The database (the worker opens its own connection).
    pub database_url: String,
    /// The worker's lease owner name: the instance id (a restart with the same id takes its
    /// rows back at once).
    pub worker_id: String,
    pub notifications: NotificationSettings,
    /// Where change events are expanded into deliveries (fan-out at delivery time): the
    /// runtime's change notifier, with its renderer set. `None`: the worker only sends what is
    /// in the outbox.
    pub changes: Option<Arc<ChangeNotifier>>,
    /// On SQLite, the process's shared store connection, whose lock the worker holds while it
    /// writes with its own connection: this process's writers then queue on that lock and are
    /// woken the moment the worker is done, instead of polling SQLite's one write lock (SQLite's
    /// busy handler sleeps 1 ms, then 2, 5, ... — far longer than a write). `None`: the worker
    /// and the writers meet at SQLite's lock only. Ignored on PostgreSQL (row locks).
    pub write_gate: Option<SharedStore>,
}

/// Runs `write` on the worker's connection while holding the write gate
/// ([`WorkerSettings::write_gate`]) on SQLite; how long it held the gate is counted under
/// `kind` ([`crate::counters::GATE`]).
fn gated<T>(
    settings: &WorkerSettings,
    store: &mut Store,
    kind: &GateUse,
    write: impl FnOnce(&mut Store) -> T,
) -> T {
    let gate = match (&settings.write_gate, store.backend()) {
        (Some(gate), Backend::Sqlite) => gate.lock().ok(),
        _ => None,
    };
    let held = Instant::now();
    let result = write(store);
    if gate.is_some() {
        kind.record(held.elapsed());
    }
    drop(gate);
    result
}

/// The delay before attempt `attempts + 1`, after `attempts` failed ones.
pub fn backoff(settings: &NotificationSettings, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(30);
    settings
        .retry_base
        .saturating_mul(1u32 << doublings)
        .min(settings.retry_max)
}

impl DeliveryWorker {
    /// Starts the worker thread; `signal` is what writes that add outbox rows notify.
    pub fn start(
        settings: WorkerSettings,
        signal: Arc<ProcessingSignal>,
        observer: Arc<dyn DeliveryObserver>,
    ) -> std::io::Result<DeliveryWorker> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("licensd-delivery".into())
            .spawn({
                let stop = stop.clone();
                let signal = signal.clone();
                move || run(settings, signal, observer, stop)
            })?;
        Ok(DeliveryWorker {
            stop,
            signal,
            thread: Some(thread),
        })
    }

    /// Stops the worker after the deliveries in flight.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal.notify();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the delivery worker panicked");
            }
        }
    }
}

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        self.stop_now();
    }
}

fn run(
    settings: WorkerSettings,
    signal: Arc<ProcessingSignal>,
    observer: Arc<dyn DeliveryObserver>,
    stop: Arc<AtomicBool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "the delivery worker cannot start its runtime");
            return;
        }
    };
    let policy = TargetPolicy {
        allow_link_local: settings.notifications.allow_link_local_targets,
    };
    let client = match guarded_client(policy) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "the delivery worker cannot build its HTTP client");
            return;
        }
    };
    let mut store: Option<Store> = None;
    let mut last_prune: Option<Instant> = None;
    // Whether the last claim was full (more rows due than one claim takes), and when events
    // were last expanded.
    let mut backlog = false;
    let mut last_expansion = Instant::now();
    // Whether a range of change events has chunks left to expand.
    let mut expanding = false;
    while !stop.load(Ordering::SeqCst) {
        let seen = signal.generation();
        let round = Instant::now();
        let connection = match store.as_mut() {
            Some(connection) => connection,
            None => match Store::open(&settings.database_url) {
                Ok(mut connection) => {
                    let released = gated(&settings, &mut connection, &GATE.other, |connection| {
                        connection.release_delivery_leases(&settings.worker_id)
                    });
                    if let Err(error) = released {
                        tracing::warn!(%error, "releasing this instance's delivery leases failed");
                    }
                    store.insert(connection)
                }
                Err(error) => {
                    tracing::warn!(%error, "the delivery worker cannot open the database; retrying");
                    signal.wait(seen, IDLE_CHECK);
                    continue;
                }
            },
        };
        if last_prune.map_or(true, |at| at.elapsed() >= PRUNE_INTERVAL) {
            last_prune = Some(Instant::now());
            let cutoff = now_milliseconds()
                - settings
                    .notifications
                    .delivery_retention
                    .as_millis()
                    .min(i64::MAX as u128) as i64;
            if let Err(error) = gated(&settings, connection, &GATE.other, |connection| {
                connection.prune_deliveries(cutoff)
            }) {
                tracing::warn!(%error, "pruning settled deliveries failed");
            }
            if let Err(error) = gated(&settings, connection, &GATE.other, |connection| {
                connection.prune_change_events()
            }) {
                tracing::warn!(%error, "pruning delivered change events failed");
            }
        }
        // Change events first, one step of their expansion per round (one short transaction:
        // the deliveries of a range's next chunk of subscriptions, the range fixed first), so
        // SQLite's write lock is never held for a whole fan-out. While the outbox has a backlog,
        // events gather a while (fewer, fuller deliveries).
        let hold = backlog && last_expansion.elapsed() < EXPANSION_HOLD;
        let step = match &settings.changes {
            Some(_) if hold => ExpansionStep::Idle,
            Some(changes) => match gated(&settings, connection, &GATE.expansion, |connection| {
                // SQLite: ~100 rows per hold of its one write lock. PostgreSQL's writers do not
                // wait for the worker's transactions: fewer, larger ones (fewer commits).
                let chunk = match connection.backend() {
                    Backend::Sqlite => SUBSCRIPTIONS_PER_CHUNK,
                    Backend::Postgres => SUBSCRIPTIONS_PER_CHUNK_POSTGRES,
                };
                changes.expand_step(connection, chunk)
            }) {
                Ok(step) => step,
                Err(error) => {
                    tracing::warn!(%error, "expanding change events failed; reconnecting");
                    store = None;
                    signal.wait(seen, IDLE_CHECK);
                    continue;
                }
            },
            None => ExpansionStep::Idle,
        };
        if !hold {
            last_expansion = Instant::now();
            // A range with chunks left (a wide fan-out) until its last chunk is written.
            expanding = step.more_pending();
        }
        let lease = settings.notifications.request_timeout * 2 + Duration::from_secs(5);
        let claim = gated(&settings, connection, &GATE.claim, |connection| {
            connection.claim_deliveries(&settings.worker_id, CLAIM_BATCH, lease)
        });
        let mut claimed = match claim {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, "claiming deliveries failed; reconnecting");
                store = None;
                signal.wait(seen, IDLE_CHECK);
                continue;
            }
        };
        backlog = claimed.len() >= CLAIM_BATCH;
        if claimed.is_empty() {
            if step.did_work() {
                // More events or chunks may wait.
                if expanding {
                    yield_to_writers(settings.changes.as_deref(), round.elapsed(), &stop);
                }
                continue;
            }
            let wait = match connection.next_delivery_due() {
                Ok(Some(due)) => due.min(IDLE_CHECK),
                Ok(None) => IDLE_CHECK,
                Err(error) => {
                    tracing::warn!(%error, "reading the next due delivery failed; reconnecting");
                    store = None;
                    IDLE_CHECK
                }
            };
            if !wait.is_zero() {
                signal.wait(seen, wait);
            }
            continue;
        }
        // Change notifications are rendered from their events now (no body is stored).
        let unrenderable = match &settings.changes {
            Some(changes) => match changes.render(connection, &mut claimed) {
                Ok(unrenderable) => unrenderable,
                Err(error) => {
                    // Left to their lease: claimed again once it ends.
                    tracing::warn!(%error, "rendering change notifications failed; reconnecting");
                    store = None;
                    signal.wait(seen, IDLE_CHECK);
                    continue;
                }
            },
            None => claimed
                .iter()
                .enumerate()
                .filter(|(_, delivery)| delivery.events.is_some())
                .map(|(index, _)| (index, "this worker renders no change notifications".to_string()))
                .collect(),
        };
        let timeout = settings.notifications.request_timeout;
        let results: Vec<SendResult> = runtime.block_on(async {
            let sends = claimed.iter().enumerate().map(|(index, delivery)| {
                let not_sent = unrenderable
                    .iter()
                    .find(|(failed, _)| *failed == index)
                    .map(|(_, error)| error.clone());
                let body = delivery.body.clone();
                let client = &client;
                let policy = &policy;
                async move {
                    match not_sent {
                        // Never sendable: given up at once.
                        Some(error) => SendResult::Refused { error },
                        None => send(client, policy, &delivery.url, &delivery.headers, body, timeout).await,
                    }
                }
            });
            join_all(sends).await
        });
        let mut delivered = Vec::new();
        for (delivery, result) in claimed.iter().zip(results) {
            match result {
                SendResult::Delivered { status } => delivered.push((delivery, status)),
                failed => settle(connection, &settings, observer.as_ref(), delivery, failed),
            }
        }
        settle_delivered(connection, &settings, observer.as_ref(), &delivered);
        // Only a backlog (a full claim, or chunks of a range left: a wide fan-out) yields; a few
        // deliveries go at once.
        if backlog || expanding {
            yield_to_writers(settings.changes.as_deref(), round.elapsed(), &stop);
        }
    }
}

/// After a round of work that took `worked` with more rows due than one claim takes, pauses
/// while this instance's writers are busy, so that the worker's share of the time stays at
/// most [`BUSY_SHARE_PERCENT`] (rounds shorter than [`HEAVY_ROUND`] excepted); returns as soon
/// as the writers are idle.
fn yield_to_writers(changes: Option<&ChangeNotifier>, worked: Duration, stop: &AtomicBool) {
    let Some(changes) = changes else {
        return;
    };
    if worked < HEAVY_ROUND {
        return;
    }
    let pause = (worked * (100 - BUSY_SHARE_PERCENT) / BUSY_SHARE_PERCENT).min(MAX_PAUSE);
    let until = Instant::now() + pause;
    while Instant::now() < until
        && !stop.load(Ordering::SeqCst)
        && changes.writers_busy(now_milliseconds(), WRITERS_BUSY_WITHIN_MS)
    {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Records the delivered ones of a claim in one transaction, then counts them and tells the
/// observer of each still held.
fn settle_delivered(
    store: &mut Store,
    settings: &WorkerSettings,
    observer: &dyn DeliveryObserver,
    delivered: &[(&ClaimedDelivery, u16)],
) {
    if delivered.is_empty() {
        return;
    }
    let ids: Vec<(i64, u16)> = delivered
        .iter()
        .map(|(delivery, status)| (delivery.delivery_id, *status))
        .collect();
    let recorded = gated(settings, store, &GATE.settle, |store| {
        store.complete_deliveries(&settings.worker_id, &ids)
    });
    if let Err(error) = &recorded {
        tracing::warn!(%error, "recording delivered deliveries failed");
    }
    for (index, (delivery, status)) in delivered.iter().enumerate() {
        let outcome = DeliveryOutcome::Delivered { status: *status };
        COUNTERS.count(delivery, &outcome);
        // `false`: the lease ended and another worker claimed the row; it settles it.
        if recorded
            .as_ref()
            .is_ok_and(|settled| settled.get(index).copied().unwrap_or(false))
        {
            observer.settled(store, delivery, &outcome);
        }
    }
}

/// Runs the futures concurrently on the current runtime and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn settle(
    store: &mut Store,
    settings: &WorkerSettings,
    observer: &dyn DeliveryObserver,
    delivery: &ClaimedDelivery,
    result: SendResult,
) {
    let worker_id = settings.worker_id.as_str();
    let (outcome, recorded) = match result {
        SendResult::Delivered { status } => {
            let attempt = AttemptResult {
                status_code: Some(status),
                error: None,
            };
            (
                DeliveryOutcome::Delivered { status },
                gated(settings, store, &GATE.settle, |store| {
                    store.complete_delivery(delivery.delivery_id, worker_id, &attempt)
                }),
            )
        }
        SendResult::Failed { status, error } if delivery.attempts < settings.notifications.max_attempts => {
            let retry_in = backoff(&settings.notifications, delivery.attempts);
            let attempt = AttemptResult {
                status_code: status,
                error: Some(&error),
            };
            let recorded = gated(settings, store, &GATE.settle, |store| {
                store.retry_delivery(delivery, worker_id, retry_in, &attempt)
            });
            (
                DeliveryOutcome::Retrying {
                    status,
                    error,
                    retry_in,
                },
                recorded,
            )
        }
        SendResult::Failed { status, error } => {
            let attempt = AttemptResult {
                status_code: status,
                error: Some(&error),
            };
            let recorded = gated(settings, store, &GATE.settle, |store| {
                store.abandon_delivery(delivery.delivery_id, worker_id, &attempt)
            });
            (DeliveryOutcome::Abandoned { status, error }, recorded)
        }
        SendResult::Refused { error } => {
            let attempt = AttemptResult {
                status_code: None,
                error: Some(&error),
            };
            let recorded = gated(settings, store, &GATE.settle, |store| {
                store.abandon_delivery(delivery.delivery_id, worker_id, &attempt)
            });
            (DeliveryOutcome::Abandoned { status: None, error }, recorded)
        }
    };
    COUNTERS.count(delivery, &outcome);
    match recorded {
        Ok(true) => observer.settled(store, delivery, &outcome),
        // The lease ended and another worker claimed the row: it settles it.
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(delivery = delivery.delivery_id, %error, "recording a delivery's outcome failed")
        }
    }
    if let DeliveryOutcome::Retrying { error, .. } | DeliveryOutcome::Abandoned { error, .. } = &outcome {
        tracing::info!(delivery = delivery.delivery_id, url = %delivery.url, attempts = delivery.attempts, %error, "a delivery failed");
    }
}

fn now_milliseconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_maximum() {
        let settings = NotificationSettings {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1_000),
            ..NotificationSettings::default()
        };
        let delays: Vec<u128> = (1..=6)
            .map(|attempts| backoff(&settings, attempts).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }
}
