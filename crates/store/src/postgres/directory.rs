//! Directory attributes on PostgreSQL: the opaque text a provisioning client keeps with a user or
//! group (`Command::SetDirectoryAttributes`), written with each batch (`load.rs` reads them back).

use licensd_engine::Uuid;
use postgres::GenericClient;

use crate::batch::WriteBatch;
use crate::error::StoreError;

/// Writes a batch's directory attributes and deletes those of deleted users and groups.
pub(crate) fn write(
    client: &mut impl GenericClient,
    tenant_key: i64,
    batch: &WriteBatch,
) -> Result<(), StoreError> {
    let removals: Vec<Uuid> = batch
        .deleted_users
        .iter()
        .chain(&batch.deleted_groups)
        .copied()
        .chain(
            batch
                .directory_attributes
                .iter()
                .filter(|(_, attributes)| attributes.is_none())
                .map(|(id, _)| *id),
        )
        .collect();
    if !removals.is_empty() {
        client
            .execute(
                "DELETE FROM directory_attributes WHERE tenant_key = $1 AND object_id = ANY($2)",
                &[&tenant_key, &removals],
            )
            .map_err(StoreError::postgres("deleting directory attributes"))?;
    }
    let (ids, texts): (Vec<Uuid>, Vec<&str>) = batch
        .directory_attributes
        .iter()
        .filter_map(|(id, attributes)| attributes.as_deref().map(|attributes| (*id, attributes)))
        .unzip();
    if !ids.is_empty() {
        client
            .execute(
                "INSERT INTO directory_attributes (tenant_key, object_id, attributes)
                 SELECT $1, object_id, attributes FROM unnest($2::uuid[], $3::text[]) AS t (object_id, attributes)
                 ON CONFLICT (tenant_key, object_id) DO UPDATE SET attributes = excluded.attributes",
                &[&tenant_key, &ids, &texts],
            )
            .map_err(StoreError::postgres("writing directory attributes"))?;
    }
    Ok(())
}
