//! The reads both backends answer with the same statements: which tenants exist and at which
//! version, a tenant's work queue and its change records. (Loading a whole tenant streams
//! millions of rows and stays in each backend, `load_tenant`.)

use licensd_engine::Uuid;

use crate::batch::TenantChange;
use crate::codec;
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column};
use crate::sql::{Param, ReadRow, Session};

/// The tenant's key and version.
pub(crate) fn tenant_key_and_version(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<(i64, u64), StoreError> {
    let row = session.query_optional(
        "looking up the tenant",
        "SELECT tenant_key, version FROM tenants WHERE tenant_id = $1",
        &[Param::Id(tenant_id)],
        |row| Ok((row.integer(0)?, row.integer(1)?)),
    )?;
    let (key, version) = row.ok_or(StoreError::UnknownTenant { tenant_id })?;
    Ok((key, logical_time(version, "the tenant version")?))
}

/// The tenant's key; [`StoreError::UnknownTenant`] when it is not stored.
pub(crate) fn tenant_key(session: &mut impl Session, tenant_id: Uuid) -> Result<i64, StoreError> {
    Ok(tenant_key_and_version(session, tenant_id)?.0)
}

pub(crate) fn tenant_ids(session: &mut impl Session) -> Result<Vec<Uuid>, StoreError> {
    session.query_all(
        "listing tenants",
        "SELECT tenant_id FROM tenants ORDER BY tenant_key",
        &[],
        |row| row.id(0),
    )
}

pub(crate) fn tenant_version(session: &mut impl Session, tenant_id: Uuid) -> Result<u64, StoreError> {
    Ok(tenant_key_and_version(session, tenant_id)?.1)
}

pub(crate) fn tenant_versions(session: &mut impl Session) -> Result<Vec<(Uuid, u64)>, StoreError> {
    session.query_all(
        "reading tenant versions",
        "SELECT tenant_id, version FROM tenants ORDER BY tenant_key",
        &[],
        |row| Ok((row.id(0)?, logical_time(row.integer(1)?, "the tenant version")?)),
    )
}

pub(crate) fn queue(session: &mut impl Session, tenant_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading the work queue",
        "SELECT users.user_id FROM work_queue
         JOIN users ON users.tenant_key = work_queue.tenant_key
                   AND users.user_key = work_queue.user_key
         WHERE work_queue.tenant_key = $1 ORDER BY work_queue.position",
        &[Param::Integer(tenant_key)],
        |row| row.id(0),
    )
}

pub(crate) fn queue_len(session: &mut impl Session, tenant_id: Uuid) -> Result<u64, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let count = session.query_optional(
        "counting the work queue",
        "SELECT count(*) FROM work_queue WHERE tenant_key = $1",
        &[Param::Integer(tenant_key)],
        |row| row.integer(0),
    )?;
    logical_time(count.unwrap_or(0), "the queue length")
}

pub(crate) fn changes_since(
    session: &mut impl Session,
    tenant_id: Uuid,
    after_version: u64,
) -> Result<Vec<TenantChange>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let after = logical_time_column(after_version, "the version")?;
    session.query_all(
        "reading tenant changes",
        "SELECT version, settings, service_plans, queue, everything, skus, users, groups,
                deleted_users, deleted_groups
         FROM tenant_changes WHERE tenant_key = $1 AND version > $2 ORDER BY version",
        &[Param::Integer(tenant_key), Param::Integer(after)],
        |row| {
            Ok(TenantChange {
                version: logical_time(row.integer(0)?, "a change's version")?,
                settings: row.flag(1)?,
                service_plans: row.flag(2)?,
                queue: row.flag(3)?,
                everything: row.flag(4)?,
                skus: codec::split_concat_uuids(row.bytes(5)?)?,
                users: codec::split_concat_uuids(row.bytes(6)?)?,
                groups: codec::split_concat_uuids(row.bytes(7)?)?,
                deleted_users: codec::split_concat_uuids(row.bytes(8)?)?,
                deleted_groups: codec::split_concat_uuids(row.bytes(9)?)?,
            })
        },
    )
}
