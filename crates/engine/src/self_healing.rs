//! Self-healing history: why a user in error was re-queued by itself when the cause of its error
//! went away (seats bought or freed, a conflicting license removed, its usage location
//! corrected, a shared proxy address freed, a group's assignment changed), kept with the user
//! until it is evaluated and then remembered as its last automatic re-evaluation, so an admin can
//! see when and why an error cleared (or was looked at again) without a manual reprocess.
//!
//! Only recorded while self-healing is on ([`crate::TenantSettings::self_healing`]) and only for
//! users who have an assignment in error when they are queued: a manual reprocess, a user's own
//! first assignment and healthy users are not self-healing. Kept in memory with the engine (a
//! what-if copy records on its copy); not part of the persisted image.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::handles::UserRef;
use crate::model::{Timestamp, Uuid};

/// Why a user in error was re-queued by itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequeueReason {
    /// Seats of the product were bought or freed: waiting users get them, first come first
    /// served.
    SeatsAvailable {
        sku_id: Uuid,
        /// The product's display name (Office 365 E3).
        sku_display_name: String,
    },
    /// A direct license of the user was removed (a conflicting one, or one holding a plan
    /// others depend on).
    DirectLicenseRemoved { sku_id: Uuid, sku_display_name: String },
    /// The products or disabled plans of a group the user gets licenses from changed.
    GroupAssignmentChanged {
        group_id: Uuid,
        group_display_name: String,
    },
    /// The user's usage location changed.
    UsageLocationChanged,
    /// The user's own proxy addresses changed.
    ProxyAddressesChanged,
    /// Another user stopped using a proxy address this user shares (changed its addresses or
    /// was deleted).
    ProxyAddressFreed,
}

impl RequeueReason {
    /// A stable name (`SeatsAvailable`, ...) for APIs and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            RequeueReason::SeatsAvailable { .. } => "SeatsAvailable",
            RequeueReason::DirectLicenseRemoved { .. } => "DirectLicenseRemoved",
            RequeueReason::GroupAssignmentChanged { .. } => "GroupAssignmentChanged",
            RequeueReason::UsageLocationChanged => "UsageLocationChanged",
            RequeueReason::ProxyAddressesChanged => "ProxyAddressesChanged",
            RequeueReason::ProxyAddressFreed => "ProxyAddressFreed",
        }
    }

    /// The reason in plain language, completing "re-evaluated automatically because …".
    pub fn description(&self) -> String {
        match self {
            RequeueReason::SeatsAvailable { sku_display_name, .. } => {
                format!("seats of {sku_display_name} became available")
            }
            RequeueReason::DirectLicenseRemoved { sku_display_name, .. } => {
                format!("its direct {sku_display_name} license was removed")
            }
            RequeueReason::GroupAssignmentChanged {
                group_display_name, ..
            } => format!("the licenses of group {group_display_name} changed"),
            RequeueReason::UsageLocationChanged => "its usage location changed".to_string(),
            RequeueReason::ProxyAddressesChanged => "its proxy addresses changed".to_string(),
            RequeueReason::ProxyAddressFreed => {
                "another user stopped using a proxy address it shared".to_string()
            }
        }
    }
}

/// A user's last automatic re-evaluation: when it was evaluated and why it had been re-queued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfHealing {
    /// The time of the processing step that evaluated the user.
    pub at: Timestamp,
    pub reason: RequeueReason,
    /// Whether the user had no error left after that evaluation.
    pub errors_cleared: bool,
}

/// Self-healing bookkeeping of the users: the pending reason of each queued user re-queued by
/// self-healing, and each user's last automatic re-evaluation.
#[derive(Clone, Debug, Default)]
pub(crate) struct HealingLog {
    // Shared with the engine's copies (a what-if's) until written.
    pending: Arc<FxHashMap<UserRef, RequeueReason>>,
    last: Arc<FxHashMap<UserRef, SelfHealing>>,
}

impl HealingLog {
    /// Why a queued user will be re-evaluated by itself, if it was re-queued by self-healing.
    pub(crate) fn pending(&self, user: UserRef) -> Option<&RequeueReason> {
        self.pending.get(&user)
    }

    /// The last automatic re-evaluation of a user, if any.
    pub(crate) fn last(&self, user: UserRef) -> Option<&SelfHealing> {
        self.last.get(&user)
    }

    /// Keeps the reason a user was re-queued; the first one counts while the user stays queued.
    pub(crate) fn note_pending(&mut self, user: UserRef, reason: RequeueReason) {
        if !self.pending.contains_key(&user) {
            Arc::make_mut(&mut self.pending).insert(user, reason);
        }
    }

    /// After a user's evaluation: its pending reason, if any, becomes its last self-healing;
    /// `errors_cleared` is asked only then.
    pub(crate) fn record_evaluated(
        &mut self,
        user: UserRef,
        at: Timestamp,
        errors_cleared: impl FnOnce() -> bool,
    ) {
        if !self.pending.contains_key(&user) {
            return;
        }
        if let Some(reason) = Arc::make_mut(&mut self.pending).remove(&user) {
            Arc::make_mut(&mut self.last).insert(
                user,
                SelfHealing {
                    at,
                    reason,
                    errors_cleared: errors_cleared(),
                },
            );
        }
    }

    /// Forgets a deleted user's records.
    pub(crate) fn forget(&mut self, user: UserRef) {
        if self.pending.contains_key(&user) {
            Arc::make_mut(&mut self.pending).remove(&user);
        }
        if self.last.contains_key(&user) {
            Arc::make_mut(&mut self.last).remove(&user);
        }
    }
}
