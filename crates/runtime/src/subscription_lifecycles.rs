//! The lifecycle of a product's subscription, apart from any protocol: a subscription past the
//! end of its term moves its product to `Warning`, then `Suspended`, as Microsoft's subscriptions
//! do. The status change is an engine command (`SetCapabilityStatus`) run as licensd's background
//! processing; the processor calls [`apply_lifecycles`] periodically, and the Graph and admin
//! surfaces (`graph::directory_subscriptions`) show and set the lifecycle.
//!
//! Timeline (times after `nextLifecycleDateTime` as set by the administrator, the term's end):
//! before it, `Enabled`; from it for [`WARNING_PERIOD_DAYS`] days, `Warning` (Microsoft's
//! "expired" grace period: licenses keep working); after that `Suspended` (Microsoft's
//! "disabled": licenses no longer work) — licensd never deletes a product by itself. The
//! lifecycle only moves a product between these three statuses: a product set `LockedOut` or
//! `Deleted` by hand is left alone.

use licensd_engine::{CapabilityStatus, Command};

use crate::access::Caller;
use crate::tenants::{lock_store, SharedStore, Tenants};

/// Days a subscription stays in `Warning` after the end of its term before it is `Suspended`.
pub const WARNING_PERIOD_DAYS: i64 = 30;
/// Days a `Suspended` subscription would wait before Microsoft deletes it (shown as the next
/// lifecycle date; licensd does not delete).
pub const SUSPENDED_PERIOD_DAYS: i64 = 90;

const DAY_MILLISECONDS: i64 = 24 * 60 * 60 * 1000;

/// The status the lifecycle gives at `now`, and the date of the next step.
pub fn lifecycle_status(ends_at: i64, now: i64) -> (CapabilityStatus, i64) {
    let suspended_at = ends_at + WARNING_PERIOD_DAYS * DAY_MILLISECONDS;
    if now < ends_at {
        (CapabilityStatus::Enabled, ends_at)
    } else if now < suspended_at {
        (CapabilityStatus::Warning, suspended_at)
    } else {
        (
            CapabilityStatus::Suspended,
            suspended_at + SUSPENDED_PERIOD_DAYS * DAY_MILLISECONDS,
        )
    }
}

/// Whether the lifecycle manages a product in this status.
pub fn managed(status: CapabilityStatus) -> bool {
    matches!(
        status,
        CapabilityStatus::Enabled | CapabilityStatus::Warning | CapabilityStatus::Suspended
    )
}

fn severity(status: CapabilityStatus) -> u8 {
    match status {
        CapabilityStatus::Enabled => 0,
        CapabilityStatus::Warning => 1,
        _ => 2,
    }
}

/// Moves every product past a lifecycle step to its status (the background processor calls it
/// periodically). Only ever makes a status more severe: a renewal is applied by the
/// administrator's `PATCH`. Blocking: call it from a blocking thread.
pub fn apply_lifecycles(store: &SharedStore, tenants: &Tenants, now: i64) {
    let Ok(runtimes) = tenants.all() else {
        return;
    };
    for runtime in runtimes {
        let lifecycles = match lock_store(store)
            .and_then(|mut store| store.subscription_lifecycles(runtime.id).map_err(Into::into))
        {
            Ok(lifecycles) => lifecycles,
            Err(error) => {
                tracing::warn!(tenant = %runtime.id, %error, "reading subscription lifecycles failed");
                continue;
            }
        };
        for lifecycle in lifecycles {
            let Some(ends_at) = lifecycle.ends_at else {
                continue;
            };
            let (wanted, _) = lifecycle_status(ends_at, now);
            let current = runtime.read(|engine| {
                engine
                    .sku_usage(lifecycle.sku_id)
                    .map(|usage| usage.capability_status)
            });
            let Ok(Ok(current)) = current else {
                continue;
            };
            if !managed(current) || severity(wanted) <= severity(current) {
                continue;
            }
            let command = Command::SetCapabilityStatus {
                sku_id: lifecycle.sku_id,
                capability_status: wanted,
            };
            match runtime.execute(store, command, &Caller::background(runtime.id)) {
                Ok(_) => {
                    tracing::info!(tenant = %runtime.id, sku = %lifecycle.sku_id, status = wanted.as_str(), "subscription lifecycle applied")
                }
                Err(error) => {
                    tracing::warn!(tenant = %runtime.id, sku = %lifecycle.sku_id, %error, "applying a subscription lifecycle failed")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_goes_enabled_warning_suspended() {
        let end = 1_000 * DAY_MILLISECONDS;
        assert_eq!(lifecycle_status(end, end - 1), (CapabilityStatus::Enabled, end));
        let suspended_at = end + WARNING_PERIOD_DAYS * DAY_MILLISECONDS;
        assert_eq!(
            lifecycle_status(end, end),
            (CapabilityStatus::Warning, suspended_at)
        );
        assert_eq!(
            lifecycle_status(end, suspended_at - 1).0,
            CapabilityStatus::Warning
        );
        assert_eq!(lifecycle_status(end, suspended_at).0, CapabilityStatus::Suspended);
    }
}
