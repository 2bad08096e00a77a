//! Directory attributes on SQLite: the opaque text a provisioning client keeps with a user or
//! group (`Command::SetDirectoryAttributes`), loaded into the image and written with each batch.

use rusqlite::{params, Connection};

use super::blob_of;
use crate::batch::WriteBatch;
use crate::error::StoreError;
use crate::load::ImageBuilder;

/// Reads a tenant's directory attributes into the image, in object id order.
pub(crate) fn load(
    connection: &Connection,
    tenant_key: i64,
    builder: &mut ImageBuilder,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(
            "SELECT object_id, attributes FROM directory_attributes WHERE tenant_key = ?1 ORDER BY object_id",
        )
        .map_err(StoreError::sqlite("reading directory attributes"))?;
    let rows = statement
        .query_map([tenant_key], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, String>(1)?))
        })
        .map_err(StoreError::sqlite("reading directory attributes"))?;
    for row in rows {
        let (id, attributes) = row.map_err(StoreError::sqlite("reading directory attributes"))?;
        let id = licensd_engine::Uuid::from_slice(&id)
            .map_err(|_| StoreError::corrupt("a stored GUID is not 16 bytes"))?;
        builder.add_directory_attributes(id, attributes);
    }
    Ok(())
}

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
