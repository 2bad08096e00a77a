//! Directory attributes on SQLite: the opaque text a provisioning client keeps with a user or
//! group (`Command::SetDirectoryAttributes`), written with each batch (`load.rs` reads them back).

use rusqlite::{params, Connection};

use super::blob_of;
use crate::batch::WriteBatch;
use crate::error::StoreError;

/// Writes a batch's directory attributes and deletes those of deleted users and groups.
pub(crate) fn write(connection: &Connection, tenant_key: i64, batch: &WriteBatch) -> Result<(), StoreError> {
    let deleted = batch.deleted_users.iter().chain(&batch.deleted_groups);
    let cleared = batch
        .directory_attributes
        .iter()
        .filter(|(_, attributes)| attributes.is_none())
        .map(|(id, _)| id);
    let mut removals = deleted.chain(cleared).peekable();
    if removals.peek().is_some() {
        let mut statement = connection
            .prepare_cached("DELETE FROM directory_attributes WHERE tenant_key = ?1 AND object_id = ?2")
            .map_err(StoreError::sqlite("deleting directory attributes"))?;
        for id in removals {
            statement
                .execute(params![tenant_key, blob_of(id)])
                .map_err(StoreError::sqlite("deleting directory attributes"))?;
        }
    }
    let mut upserts = batch
        .directory_attributes
        .iter()
        .filter_map(|(id, attributes)| attributes.as_ref().map(|attributes| (id, attributes)))
        .peekable();
    if upserts.peek().is_some() {
        let mut statement = connection
            .prepare_cached(
                "INSERT INTO directory_attributes (tenant_key, object_id, attributes) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant_key, object_id) DO UPDATE SET attributes = excluded.attributes",
            )
            .map_err(StoreError::sqlite("writing directory attributes"))?;
        for (id, attributes) in upserts {
            statement
                .execute(params![tenant_key, blob_of(id), attributes])
                .map_err(StoreError::sqlite("writing directory attributes"))?;
        }
    }
    Ok(())
}
