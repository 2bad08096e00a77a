//! The lifecycle of each product's subscription (Graph's `companySubscription`): start, end of
//! the term and trial flag, set by an administrator and read by the server to move a product
//! to `Warning` and `Suspended` after its end. Not part of the engine's image: the engine only
//! knows the resulting capability status.

use licensd_engine::Uuid;

/// One product's subscription lifecycle; times in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionLifecycle {
    pub sku_id: Uuid,
    pub created_at: Option<i64>,
    /// The end of the current term; `None`: the subscription does not expire.
    pub ends_at: Option<i64>,
    pub is_trial: bool,
}
