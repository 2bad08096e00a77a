//! The seat history of each product: the background processor takes a snapshot of every
//! product's purchased, consumed, waiting and in-error counts once a day, and whenever the
//! purchased seats differ from the last snapshot (checked with the subscription lifecycles,
//! every `lifecycle_check_interval`). Snapshots live in the store, so history survives restarts.

use licensd_engine::spend::DAY_MILLISECONDS;
use licensd_store::SeatSnapshot;

use crate::tenants::{lock_store, SharedStore, TenantRuntime, Tenants};

/// The snapshots due for one tenant at `now`: products without a snapshot today, or whose
/// purchased seats changed since the last one.
fn due_snapshots(runtime: &TenantRuntime, latest: &[SeatSnapshot], now: i64) -> Vec<SeatSnapshot> {
    let Ok(counts) = runtime.read(|engine| engine.seat_counts()) else {
        return Vec::new();
    };
    counts
        .into_iter()
        .filter(
            |counts| match latest.iter().find(|snapshot| snapshot.sku_id == counts.sku_id) {
                None => true,
                Some(last) => {
                    last.taken_at.div_euclid(DAY_MILLISECONDS) != now.div_euclid(DAY_MILLISECONDS)
                        || last.purchased != i64::from(counts.purchased)
                }
            },
        )
        .map(|counts| SeatSnapshot {
            sku_id: counts.sku_id,
            taken_at: now,
            purchased: i64::from(counts.purchased),
            consumed: i64::from(counts.consumed),
            waiting: i64::from(counts.waiting),
            in_error: i64::from(counts.in_error),
        })
        .collect()
}

/// Records the snapshots due in one tenant. Blocking.
pub fn record_tenant(
    store: &SharedStore,
    runtime: &TenantRuntime,
    now: i64,
) -> Result<usize, crate::tenants::ExecuteError> {
    let latest = lock_store(store)?.latest_seat_snapshots(runtime.id)?;
    let due = due_snapshots(runtime, &latest, now);
    if !due.is_empty() {
        lock_store(store)?.record_seat_snapshots(runtime.id, &due)?;
    }
    Ok(due.len())
}

/// Records the snapshots due in every tenant (the background processor calls it periodically).
/// Blocking: call it from a blocking thread.
pub fn record_seat_history(store: &SharedStore, tenants: &Tenants, now: i64) {
    let Ok(runtimes) = tenants.all() else {
        return;
    };
    for runtime in runtimes {
        if let Err(error) = record_tenant(store, &runtime, now) {
            tracing::warn!(tenant = %runtime.id, %error, "recording the seat history failed");
        }
    }
}
