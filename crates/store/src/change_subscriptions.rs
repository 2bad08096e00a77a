//! Graph change-notification subscriptions (`POST /v1.0/subscriptions`) of a tenant: what to
//! watch, where to deliver, until when. The runtime keeps each tenant's subscriptions in memory
//! to turn writes into outbox rows; on PostgreSQL every change here is announced
//! (`subscriptions <tenant id>`) so other instances re-read them at once.

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::security::AuditRecord;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// One subscription as stored; times in milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSubscription {
    pub subscription_id: Uuid,
    /// Graph's resource path: `users`, `groups`, `users/{id}`, `groups/{id}/members`.
    pub resource: String,
    /// Graph's comma-separated change types (`created,updated,deleted`).
    pub change_types: String,
    pub notification_url: String,
    pub lifecycle_notification_url: Option<String>,
    pub client_state: Option<String>,
    pub expires_at: i64,
    pub created_at: i64,
    /// When licensd removed it because its endpoint kept failing.
    pub removed_at: Option<i64>,
}

/// The notice payload announcing that a tenant's subscriptions changed.
pub(crate) fn subscriptions_notice(tenant_id: Uuid) -> String {
    format!("subscriptions {tenant_id}")
}

/// The tenant a subscriptions notice names; `None` for any other payload.
pub(crate) fn parse_subscriptions_notice(payload: &str) -> Option<Uuid> {
    payload.strip_prefix("subscriptions ")?.parse().ok()
}

const COLUMNS: &str = "subscription_id, resource, change_types, notification_url,
    lifecycle_notification_url, client_state, expires_at, created_at, removed_at";

pub(crate) fn subscription_of(row: &impl ReadRow) -> Result<ChangeSubscription, StoreError> {
    Ok(ChangeSubscription {
        subscription_id: row.id(0)?,
        resource: row.text(1)?.to_string(),
        change_types: row.text(2)?.to_string(),
        notification_url: row.text(3)?.to_string(),
        lifecycle_notification_url: row.optional_text(4)?.map(str::to_string),
        client_state: row.optional_text(5)?.map(str::to_string),
        expires_at: row.integer(6)?,
        created_at: row.integer(7)?,
        removed_at: row.optional_integer(8)?,
    })
}

/// Every subscription of the tenant (expired and removed ones too), oldest first.
pub(crate) fn subscriptions(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<ChangeSubscription>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading change subscriptions",
        &format!(
            "SELECT {COLUMNS} FROM change_subscriptions WHERE tenant_key = $1
             ORDER BY created_at, subscription_id"
        ),
        &[Param::Integer(tenant_key)],
        |row| subscription_of(row),
    )
}

/// Runs `change` in a transaction that, when it changed a row, writes `audit` and announces the
/// tenant's subscriptions changed; returns whether it did.
fn announced(
    database: &mut impl Database,
    tenant_id: Uuid,
    action: &str,
    audit: &[AuditRecord],
    change: impl FnOnce(
        &mut dyn FnMut(&str, &[Param<'_>]) -> Result<u64, StoreError>,
        i64,
    ) -> Result<u64, StoreError>,
) -> Result<bool, StoreError> {
    let channel = database.notice_channel();
    let mut transaction = database.begin(action)?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let mut run =
        |statement_sql: &str, params: &[Param<'_>]| transaction.execute(action, statement_sql, params);
    let changed = change(&mut run, tenant_key)?;
    if changed > 0 {
        crate::security::insert_audit(&mut transaction, tenant_key, audit)?;
        if let Some(channel) = &channel {
            transaction.execute(
                "announcing changed subscriptions",
                "SELECT pg_notify($1, $2)",
                &[
                    Param::Text(channel),
                    Param::Text(&subscriptions_notice(tenant_id)),
                ],
            )?;
        }
    }
    transaction.commit(action)?;
    Ok(changed > 0)
}

pub(crate) fn create(
    database: &mut impl Database,
    tenant_id: Uuid,
    subscription: &ChangeSubscription,
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    announced(
        database,
        tenant_id,
        "creating a change subscription",
        audit,
        |run, tenant_key| {
            run(
                "INSERT INTO change_subscriptions (tenant_key, subscription_id, resource, change_types,
                     notification_url, lifecycle_notification_url, client_state, expires_at, created_at,
                     removed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    Param::Integer(tenant_key),
                    Param::Id(subscription.subscription_id),
                    Param::Text(&subscription.resource),
                    Param::Text(&subscription.change_types),
                    Param::Text(&subscription.notification_url),
                    Param::OptionalText(subscription.lifecycle_notification_url.as_deref()),
                    Param::OptionalText(subscription.client_state.as_deref()),
                    Param::Integer(subscription.expires_at),
                    Param::Integer(subscription.created_at),
                    Param::OptionalInteger(subscription.removed_at),
                ],
            )
        },
    )?;
    Ok(())
}

/// Sets a subscription's expiry (renewal); `false` when the tenant has no such subscription.
pub(crate) fn renew(
    database: &mut impl Database,
    tenant_id: Uuid,
    subscription_id: Uuid,
    expires_at: i64,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    announced(
        database,
        tenant_id,
        "renewing a change subscription",
        audit,
        |run, tenant_key| {
            run(
                "UPDATE change_subscriptions SET expires_at = $3
                 WHERE tenant_key = $1 AND subscription_id = $2 AND removed_at IS NULL",
                &[
                    Param::Integer(tenant_key),
                    Param::Id(subscription_id),
                    Param::Integer(expires_at),
                ],
            )
        },
    )
}

/// Deletes a subscription (its deliveries stay until pruned); `false` when there is none.
pub(crate) fn delete(
    database: &mut impl Database,
    tenant_id: Uuid,
    subscription_id: Uuid,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    announced(
        database,
        tenant_id,
        "deleting a change subscription",
        audit,
        |run, tenant_key| {
            run(
                "DELETE FROM change_subscriptions WHERE tenant_key = $1 AND subscription_id = $2",
                &[Param::Integer(tenant_key), Param::Id(subscription_id)],
            )
        },
    )
}

/// Marks a subscription removed by licensd (its endpoint kept failing): no more notifications;
/// `false` when there is none or it was removed already.
pub(crate) fn mark_removed(
    database: &mut impl Database,
    tenant_id: Uuid,
    subscription_id: Uuid,
    at: i64,
) -> Result<bool, StoreError> {
    announced(
        database,
        tenant_id,
        "removing a failing change subscription",
        &[],
        |run, tenant_key| {
            run(
                "UPDATE change_subscriptions SET removed_at = $3
                 WHERE tenant_key = $1 AND subscription_id = $2 AND removed_at IS NULL",
                &[
                    Param::Integer(tenant_key),
                    Param::Id(subscription_id),
                    Param::Integer(at),
                ],
            )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_notices_round_trip() {
        let id = Uuid::from_u128(7);
        assert_eq!(parse_subscriptions_notice(&subscriptions_notice(id)), Some(id));
        assert_eq!(parse_subscriptions_notice("token x"), None);
    }
}
