//! What the delivery worker did since the process started, for `/metrics`: attempts, deliveries
//! and failures, and the notifications (items) delivered, per owner kind.

use std::sync::atomic::{AtomicU64, Ordering};

use licensd_store::{ClaimedDelivery, OWNER_GRAPH_LIFECYCLE, OWNER_GRAPH_SUBSCRIPTION};

use crate::worker::DeliveryOutcome;

/// Counters of one owner kind.
#[derive(Debug, Default)]
pub struct KindCounters {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub abandoned: AtomicU64,
    pub items_delivered: AtomicU64,
}

/// The process's delivery counters: Graph change notifications, Graph lifecycle notifications,
/// and every other owner kind together.
#[derive(Debug, Default)]
pub struct DeliveryCounters {
    pub graph_changes: KindCounters,
    pub graph_lifecycle: KindCounters,
    pub other: KindCounters,
}

/// The counters of this process.
pub static COUNTERS: DeliveryCounters = DeliveryCounters {
    graph_changes: KindCounters::new(),
    graph_lifecycle: KindCounters::new(),
    other: KindCounters::new(),
};

impl KindCounters {
    const fn new() -> KindCounters {
        KindCounters {
            delivered: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            items_delivered: AtomicU64::new(0),
        }
    }
}

impl DeliveryCounters {
    /// The counters of an owner kind.
    pub fn of(&self, owner_kind: &str) -> &KindCounters {
        match owner_kind {
            OWNER_GRAPH_SUBSCRIPTION => &self.graph_changes,
            OWNER_GRAPH_LIFECYCLE => &self.graph_lifecycle,
            _ => &self.other,
        }
    }

    /// Every kind with its metric label.
    pub fn kinds(&self) -> [(&'static str, &KindCounters); 3] {
        [
            ("graph_change", &self.graph_changes),
            ("graph_lifecycle", &self.graph_lifecycle),
            ("other", &self.other),
        ]
    }

    pub(crate) fn count(&self, delivery: &ClaimedDelivery, outcome: &DeliveryOutcome) {
        let counters = self.of(&delivery.owner_kind);
        match outcome {
            DeliveryOutcome::Delivered { .. } => {
                counters.delivered.fetch_add(1, Ordering::Relaxed);
                counters
                    .items_delivered
                    .fetch_add(u64::from(delivery.items), Ordering::Relaxed);
            }
            DeliveryOutcome::Retrying { .. } => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
            }
            DeliveryOutcome::Abandoned { .. } => {
                counters.failed_attempts.fetch_add(1, Ordering::Relaxed);
                counters.abandoned.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How long the delivery worker held SQLite's write gate ([`crate::WorkerSettings::write_gate`]),
/// per kind of write: what this process's writers may have waited for. Read by the
/// notifications bench (where the writers' time goes with 1,000 subscribers).
#[derive(Debug)]
pub struct GateUse {
    pub holds: AtomicU64,
    pub total_micros: AtomicU64,
    pub longest_micros: AtomicU64,
}

impl GateUse {
    const fn new() -> GateUse {
        GateUse {
            holds: AtomicU64::new(0),
            total_micros: AtomicU64::new(0),
            longest_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, held: std::time::Duration) {
        let micros = u64::try_from(held.as_micros()).unwrap_or(u64::MAX);
        self.holds.fetch_add(1, Ordering::Relaxed);
        self.total_micros.fetch_add(micros, Ordering::Relaxed);
        self.longest_micros.fetch_max(micros, Ordering::Relaxed);
    }

    fn reset(&self) {
        self.holds.store(0, Ordering::Relaxed);
        self.total_micros.store(0, Ordering::Relaxed);
        self.longest_micros.store(0, Ordering::Relaxed);
    }
}

/// The worker's holds of the write gate, per kind of write.
#[derive(Debug)]
pub struct GateCounters {
    /// Expanding change events into deliveries.
    pub expansion: GateUse,
    /// Claiming due deliveries.
    pub claim: GateUse,
    /// Recording outcomes (delivered, retried, abandoned).
    pub settle: GateUse,
    /// Pruning, releasing leases.
    pub other: GateUse,
}

/// The gate counters of this process.
pub static GATE: GateCounters = GateCounters {
    expansion: GateUse::new(),
    claim: GateUse::new(),
    settle: GateUse::new(),
    other: GateUse::new(),
};

impl GateCounters {
    /// Every kind with its name.
    pub fn kinds(&self) -> [(&'static str, &GateUse); 4] {
        [
            ("expansion", &self.expansion),
            ("claim", &self.claim),
            ("settle", &self.settle),
            ("other", &self.other),
        ]
    }

    /// Starts counting again (a bench phase).
    pub fn reset(&self) {
        for (_, counters) in self.kinds() {
            counters.reset();
        }
    }
}
