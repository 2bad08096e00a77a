//! Processing leases, one protocol for both backends: a lease row per tenant names the instance
//! allowed to process the tenant's queue until `expires_at`, by the database's clock (never an
//! instance's, so instances with skewed clocks agree). Taking a lease is one conditional upsert:
//! it succeeds when the row is missing, expired or already this instance's.

use std::time::Duration;

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::sql::{Param, ReadRow, Session};

fn milliseconds(ttl: Duration) -> i64 {
    // Ten years at most, so adding it to the clock never overflows.
    ttl.as_millis().min(315_360_000_000) as i64
}

/// Takes the right to process the tenant's queue for `ttl`; `true` when `instance_id` holds it.
pub(crate) fn try_acquire(
    session: &mut impl Session,
    tenant_id: Uuid,
    instance_id: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let changed = session.execute(
        "acquiring a processing lease",
        "INSERT INTO processing_leases (tenant_key, instance_id, expires_at)
         VALUES ($1, $2, {now} + $3)
         ON CONFLICT (tenant_key) DO UPDATE
             SET instance_id = excluded.instance_id, expires_at = excluded.expires_at
             WHERE processing_leases.instance_id = excluded.instance_id
                OR processing_leases.expires_at <= {now}",
        &[
            Param::Integer(tenant_key),
            Param::Text(instance_id),
            Param::Integer(milliseconds(ttl)),
        ],
    )?;
    Ok(changed == 1)
}

/// Extends the lease by `ttl` from now; `false` when `instance_id` no longer holds it.
pub(crate) fn renew(
    session: &mut impl Session,
    tenant_id: Uuid,
    instance_id: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let changed = session.execute(
        "renewing a processing lease",
        "UPDATE processing_leases SET expires_at = {now} + $3
         WHERE tenant_key = $1 AND instance_id = $2",
        &[
            Param::Integer(tenant_key),
            Param::Text(instance_id),
            Param::Integer(milliseconds(ttl)),
        ],
    )?;
    Ok(changed == 1)
}

/// Gives the lease up, if `instance_id` holds it.
pub(crate) fn release(
    session: &mut impl Session,
    tenant_id: Uuid,
    instance_id: &str,
) -> Result<(), StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.execute(
        "releasing a processing lease",
        "DELETE FROM processing_leases WHERE tenant_key = $1 AND instance_id = $2",
        &[Param::Integer(tenant_key), Param::Text(instance_id)],
    )?;
    Ok(())
}

/// The instance holding an unexpired lease on the tenant, if any.
pub(crate) fn holder(session: &mut impl Session, tenant_id: Uuid) -> Result<Option<String>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_optional(
        "reading the processing lease",
        "SELECT instance_id FROM processing_leases WHERE tenant_key = $1 AND expires_at > {now}",
        &[Param::Integer(tenant_key)],
        |row| Ok(row.text(0)?.to_string()),
    )
}

/// Records that `instance_id` is processing, for `ttl` from now by the database's clock (a
/// processor renews it every round it checks; [`live_instances`] lists the unexpired ones).
pub(crate) fn announce_instance(
    session: &mut impl Session,
    instance_id: &str,
    ttl: Duration,
) -> Result<(), StoreError> {
    session.execute(
        "announcing a processing instance",
        "INSERT INTO processing_instances (instance_id, expires_at) VALUES ($1, {now} + $2)
         ON CONFLICT (instance_id) DO UPDATE SET expires_at = excluded.expires_at",
        &[Param::Text(instance_id), Param::Integer(milliseconds(ttl))],
    )?;
    Ok(())
}

/// Removes `instance_id` from the live instances (a processor stopping), and forgets instances
/// that expired long ago.
pub(crate) fn withdraw_instance(session: &mut impl Session, instance_id: &str) -> Result<(), StoreError> {
    session.execute(
        "withdrawing a processing instance",
        "DELETE FROM processing_instances WHERE instance_id = $1 OR expires_at <= {now} - 86400000",
        &[Param::Text(instance_id)],
    )?;
    Ok(())
}

/// The instances whose announcement has not expired, in id order.
pub(crate) fn live_instances(session: &mut impl Session) -> Result<Vec<String>, StoreError> {
    let mut instances = Vec::new();
    session.for_each_row(
        "listing the live processing instances",
        "SELECT instance_id FROM processing_instances WHERE expires_at > {now} ORDER BY instance_id",
        &[],
        |row| {
            instances.push(row.text(0)?.to_string());
            Ok(())
        },
    )?;
    Ok(instances)
}
