//! Nested groups in the store (issue 17): the edges between groups (`group_nestings`) and the
//! tenant's transitive licensing setting, written with each batch and read back by a load, in
//! shared statements for both backends. A change of nesting is recorded with the two groups of
//! each edge, so other instances catch up by reading those groups' edges again
//! (`catch_up.rs`), as for any other change.

use licensd_engine::GroupNestingImage;

use crate::batch::WriteBatch;
use crate::error::StoreError;
use crate::load::{logical_time, logical_time_column};
use crate::sql::{Param, ReadRow, Session};

/// Writes a batch's nesting edges and setting; deletes the edges of deleted groups.
pub(crate) fn write(
    session: &mut impl Session,
    tenant_key: i64,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    if let Some(settings) = &batch.settings {
        session.execute(
            "writing the transitive licensing setting",
            "UPDATE tenants SET transitive_licensing = $2 WHERE tenant_key = $1",
            &[
                Param::Integer(tenant_key),
                Param::Flag(settings.transitive_licensing),
            ],
        )?;
    }
    for group_id in &batch.deleted_groups {
        session.execute(
            "deleting a deleted group's nesting",
            "DELETE FROM group_nestings WHERE tenant_key = $1 AND (group_id = $2 OR member_group_id = $2)",
            &[Param::Integer(tenant_key), Param::Id(*group_id)],
        )?;
    }
    for ((group_id, member_group_id), edge) in &batch.group_nestings {
        match edge {
            Some(edge) => session.execute(
                "writing a nesting edge",
                "INSERT INTO group_nestings (tenant_key, group_id, member_group_id, since)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant_key, group_id, member_group_id) DO UPDATE SET since = excluded.since",
                &[
                    Param::Integer(tenant_key),
                    Param::Id(edge.group_id),
                    Param::Id(edge.member_group_id),
                    Param::Integer(logical_time_column(edge.since, "a nesting edge's time")?),
                ],
            )?,
            None => session.execute(
                "deleting a nesting edge",
                "DELETE FROM group_nestings WHERE tenant_key = $1 AND group_id = $2 AND member_group_id = $3",
                &[
                    Param::Integer(tenant_key),
                    Param::Id(*group_id),
                    Param::Id(*member_group_id),
                ],
            )?,
        };
    }
    Ok(())
}

/// Every nesting edge of a tenant, in the engine's image order (group id, then oldest first).
pub(crate) fn load(
    session: &mut impl Session,
    tenant_key: i64,
) -> Result<Vec<GroupNestingImage>, StoreError> {
    let mut edges = session.query_all(
        "reading nested groups",
        "SELECT group_id, member_group_id, since FROM group_nestings WHERE tenant_key = $1",
        &[Param::Integer(tenant_key)],
        |row| {
            Ok(GroupNestingImage {
                group_id: row.id(0)?,
                member_group_id: row.id(1)?,
                since: logical_time(row.integer(2)?, "a nesting edge's time")?,
            })
        },
    )?;
    edges.sort_unstable_by_key(|edge| (edge.group_id, edge.since, edge.member_group_id));
    Ok(edges)
}
