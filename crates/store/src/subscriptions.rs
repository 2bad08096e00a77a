//! The lifecycle of each product's subscription (Graph's `companySubscription`): start, end of
//! the term and trial flag, set by an administrator and read by the server to move a product
//! to `Warning` and `Suspended` after its end. Not part of the engine's image: the engine only
//! knows the resulting capability status. Both backends read and write them with the same
//! statements.

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::sql::{Param, ReadRow, Session};

/// One product's subscription lifecycle; times in milliseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubscriptionLifecycle {
    pub sku_id: Uuid,
    pub created_at: Option<i64>,
    /// The end of the current term; `None`: the subscription does not expire.
    pub ends_at: Option<i64>,
    pub is_trial: bool,
}

pub(crate) fn subscription_lifecycles(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<SubscriptionLifecycle>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading subscription lifecycles",
        "SELECT sku_id, created_at, ends_at, is_trial FROM subscription_lifecycles
         WHERE tenant_key = $1 ORDER BY sku_id",
        &[Param::Integer(tenant_key)],
        |row| {
            Ok(SubscriptionLifecycle {
                sku_id: row.id(0)?,
                created_at: row.optional_integer(1)?,
                ends_at: row.optional_integer(2)?,
                is_trial: row.flag(3)?,
            })
        },
    )
}

pub(crate) fn set_subscription_lifecycle(
    session: &mut impl Session,
    tenant_id: Uuid,
    lifecycle: &SubscriptionLifecycle,
) -> Result<(), StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.execute(
        "writing a subscription lifecycle",
        "INSERT INTO subscription_lifecycles (tenant_key, sku_id, created_at, ends_at, is_trial)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_key, sku_id) DO UPDATE SET
             created_at = excluded.created_at, ends_at = excluded.ends_at, is_trial = excluded.is_trial",
        &[
            Param::Integer(tenant_key),
            Param::Id(lifecycle.sku_id),
            Param::OptionalInteger(lifecycle.created_at),
            Param::OptionalInteger(lifecycle.ends_at),
            Param::Flag(lifecycle.is_trial),
        ],
    )?;
    Ok(())
}
