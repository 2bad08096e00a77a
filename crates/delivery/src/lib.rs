//! licensd's outbound HTTP. **Invariant: the only crate that makes outbound HTTP requests**
//! (checked by the tidy test): the delivery worker that empties the store's outbox
//! (`worker.rs`), the SSRF guard every request passes (`guard.rs`: http(s) only, no link-local
//! or metadata addresses unless the operator allows them, checked again when names resolve),
//! one request's send and Graph's validation handshake (`send.rs`), and the counters `/metrics`
//! shows (`counters.rs`).
//!
//! Enqueueing is not here: a component that wants a webhook delivered adds a
//! `licensd_store::OutboxEntry` to the `WriteBatch` of the change that causes it (or calls
//! `Store::enqueue_deliveries`), then notifies the worker's signal.

pub mod counters;
pub mod guard;
pub mod observers;
pub mod send;
pub mod worker;

pub use counters::{DeliveryCounters, GateCounters, GateUse, KindCounters, COUNTERS, GATE};
pub use guard::{guarded_client, TargetError, TargetPolicy};
pub use observers::{GraphLifecycle, ObserverChain};
pub use send::{send, validate_endpoint, EndpointValidator, HandshakeError, SendResult, HANDSHAKE_TIMEOUT};
pub use worker::{backoff, DeliveryObserver, DeliveryOutcome, DeliveryWorker, NoObserver, WorkerSettings};
