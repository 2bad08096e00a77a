//! Observers of settled deliveries the server installs: Graph subscriptions' lifecycle (an
//! abandoned change notification sends `missed`; several in a row remove the subscription with
//! `subscriptionRemoved`, through `licensd_runtime::notifications::ChangeNotifier`), and a chain
//! that tells several observers (other owners of deliveries add theirs).

use std::sync::Arc;

use licensd_runtime::notifications::{ChangeNotifier, SettledDelivery};
use licensd_store::{ClaimedDelivery, Store};

use crate::worker::{DeliveryObserver, DeliveryOutcome};

/// Graph subscriptions' lifecycle.
pub struct GraphLifecycle {
    pub notifier: Arc<ChangeNotifier>,
    /// Abandoned deliveries in a row after which a subscription is removed.
    pub removal_after: u32,
}

impl DeliveryObserver for GraphLifecycle {
    fn settled(&self, store: &mut Store, delivery: &ClaimedDelivery, outcome: &DeliveryOutcome) {
        let abandoned = match outcome {
            DeliveryOutcome::Delivered { .. } => false,
            DeliveryOutcome::Abandoned { .. } => true,
            DeliveryOutcome::Retrying { .. } => return,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis() as i64)
            .unwrap_or(0);
        let settled = SettledDelivery {
            tenant_id: delivery.tenant_id,
            owner_kind: &delivery.owner_kind,
            owner_id: delivery.owner_id,
            abandoned,
            removal_after: self.removal_after,
            now,
        };
        if let Err(error) = self.notifier.delivery_settled(store, &settled) {
            tracing::warn!(subscription = %delivery.owner_id, %error, "recording a subscription's failing deliveries failed");
        }
    }
}

/// Tells each observer in turn.
pub struct ObserverChain(pub Vec<Arc<dyn DeliveryObserver>>);

impl DeliveryObserver for ObserverChain {
    fn settled(&self, store: &mut Store, delivery: &ClaimedDelivery, outcome: &DeliveryOutcome) {
        for observer in &self.0 {
            observer.settled(store, delivery, outcome);
        }
    }
}
