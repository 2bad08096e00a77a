//! Access tokens and audit records on SQLite (see `crate::security` for what they mean).

use licensd_engine::Uuid;
use rusqlite::types::Value;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::{blob_of, SqliteStore};
use crate::error::StoreError;
use crate::security::{
    audit_conditions, decode_properties, encode_properties, AccessTokenRecord, AuditQuery, AuditRecord,
    StoredAuditRecord,
};

fn uuid_of(bytes: Vec<u8>) -> Result<Uuid, StoreError> {
    Uuid::from_slice(&bytes).map_err(|_| StoreError::corrupt("a stored GUID is not 16 bytes"))
}

fn optional_uuid(bytes: Option<Vec<u8>>) -> Result<Option<Uuid>, StoreError> {
    bytes.map(uuid_of).transpose()
}

const TOKEN_COLUMNS: &str = "t.token_id, n.tenant_id, t.display_name, t.role, t.secret_hash, t.created_at,
     t.created_by, t.expires_at, t.revoked_at";

fn token_of(row: &Row) -> rusqlite::Result<(Vec<u8>, Vec<u8>, AccessTokenRecord)> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        AccessTokenRecord {
            token_id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            display_name: row.get(2)?,
            role: row.get(3)?,
            secret_hash: row.get(4)?,
            created_at: row.get(5)?,
            created_by: row.get(6)?,
            expires_at: row.get(7)?,
            revoked_at: row.get(8)?,
        },
    ))
}

fn finish_token(
    (token_id, tenant_id, mut record): (Vec<u8>, Vec<u8>, AccessTokenRecord),
) -> Result<AccessTokenRecord, StoreError> {
    record.token_id = uuid_of(token_id)?;
    record.tenant_id = uuid_of(tenant_id)?;
    Ok(record)
}

/// Inserts audit records for a tenant (inside the caller's transaction when there is one).
pub(crate) fn insert_audit(
    connection: &Connection,
    tenant_key: i64,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut statement = connection
        .prepare_cached(
            "INSERT INTO audit_log (tenant_key, audit_id, activity_date_time, category, activity,
                 operation_type, result, result_reason, actor_id, actor_name, actor_role, target_type,
                 target_id, target_name, modified_properties, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .map_err(StoreError::sqlite("preparing the audit insert"))?;
    for record in records {
        statement
            .execute(params![
                tenant_key,
                blob_of(&record.audit_id),
                record.activity_date_time,
                record.category,
                record.activity,
                record.operation_type,
                record.result,
                record.result_reason,
                record.actor_id.as_ref().map(blob_of),
                record.actor_name,
                record.actor_role,
                record.target_type,
                record.target_id.as_ref().map(blob_of),
                record.target_name,
                encode_properties(&record.modified_properties)?,
                record.request_id,
            ])
            .map_err(StoreError::sqlite("writing an audit record"))?;
    }
    Ok(())
}

impl SqliteStore {
    pub(crate) fn create_access_token(
        &mut self,
        token: &AccessTokenRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, token.tenant_id)?;
        let transaction = self
            .connection
            .transaction()
            .map_err(StoreError::sqlite("starting to store an access token"))?;
        transaction
            .execute(
                "INSERT INTO access_tokens (token_id, tenant_key, display_name, role, secret_hash,
                     created_at, created_by, expires_at, revoked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    blob_of(&token.token_id),
                    tenant_key,
                    token.display_name,
                    token.role,
                    token.secret_hash,
                    token.created_at,
                    token.created_by,
                    token.expires_at,
                    token.revoked_at,
                ],
            )
            .map_err(StoreError::sqlite("storing an access token"))?;
        insert_audit(&transaction, tenant_key, audit)?;
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing an access token"))
    }

    pub(crate) fn access_token(&mut self, token_id: Uuid) -> Result<Option<AccessTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
             WHERE t.token_id = ?1"
        );
        let row = self
            .connection
            .prepare_cached(&sql)
            .and_then(|mut statement| statement.query_row([blob_of(&token_id)], token_of).optional())
            .map_err(StoreError::sqlite("reading an access token"))?;
        row.map(finish_token).transpose()
    }

    pub(crate) fn access_tokens(&mut self, tenant_id: Uuid) -> Result<Vec<AccessTokenRecord>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
             WHERE t.tenant_key = ?1 ORDER BY t.created_at, t.token_id"
        );
        let rows = self
            .connection
            .prepare_cached(&sql)
            .and_then(|mut statement| {
                statement
                    .query_map([tenant_key], token_of)?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(StoreError::sqlite("listing access tokens"))?;
        rows.into_iter().map(finish_token).collect()
    }

    pub(crate) fn revoke_access_token(
        &mut self,
        tenant_id: Uuid,
        token_id: Uuid,
        at: i64,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let transaction = self
            .connection
            .transaction()
            .map_err(StoreError::sqlite("starting to revoke an access token"))?;
        let changed = transaction
            .execute(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?3)
                 WHERE tenant_key = ?1 AND token_id = ?2",
                params![tenant_key, blob_of(&token_id), at],
            )
            .map_err(StoreError::sqlite("revoking an access token"))?;
        if changed > 0 {
            insert_audit(&transaction, tenant_key, audit)?;
        }
        transaction
            .commit()
            .map_err(StoreError::sqlite("committing a revocation"))?;
        Ok(changed > 0)
    }

    pub(crate) fn append_audit(
        &mut self,
        tenant_id: Uuid,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        insert_audit(&self.connection, tenant_key, records)
    }

    pub(crate) fn audit_records(
        &mut self,
        tenant_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&self.connection, tenant_id)?;
        let mut values: Vec<Value> = vec![Value::Integer(tenant_key)];
        let text = |value: &Option<String>| value.clone().map(Value::Text);
        values.extend(text(&query.activity));
        values.extend(text(&query.category));
        values.extend(text(&query.result));
        values.extend(query.target_id.map(|id| Value::Blob(id.as_bytes().to_vec())));
        values.extend(query.since.map(Value::Integer));
        values.extend(query.until.map(Value::Integer));
        values.extend(
            query
                .before_sequence
                .map(|sequence| Value::Integer(sequence as i64)),
        );
        let sql = format!(
            "SELECT sequence, audit_id, activity_date_time, category, activity, operation_type, result,
                    result_reason, actor_id, actor_name, actor_role, target_type, target_id, target_name,
                    modified_properties, request_id
             FROM audit_log WHERE tenant_key = ?1{} ORDER BY sequence DESC LIMIT {}",
            audit_conditions(query, '?'),
            query.limit
        );
        type RawRow = (
            i64,
            Vec<u8>,
            AuditRecord,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            String,
        );
        let rows: Vec<RawRow> = self
            .connection
            .prepare(&sql)
            .and_then(|mut statement| {
                statement
                    .query_map(params_from_iter(values), |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            AuditRecord {
                                audit_id: Uuid::nil(),
                                activity_date_time: row.get(2)?,
                                category: row.get(3)?,
                                activity: row.get(4)?,
                                operation_type: row.get(5)?,
                                result: row.get(6)?,
                                result_reason: row.get(7)?,
                                actor_id: None,
                                actor_name: row.get(9)?,
                                actor_role: row.get(10)?,
                                target_type: row.get(11)?,
                                target_id: None,
                                target_name: row.get(13)?,
                                modified_properties: Vec::new(),
                                request_id: row.get(15)?,
                            },
                            row.get(8)?,
                            row.get(12)?,
                            row.get(14)?,
                        ))
                    })?
                    .collect()
            })
            .map_err(StoreError::sqlite("reading the audit log"))?;
        rows.into_iter()
            .map(
                |(sequence, audit_id, mut record, actor_id, target_id, properties)| {
                    record.audit_id = uuid_of(audit_id)?;
                    record.actor_id = optional_uuid(actor_id)?;
                    record.target_id = optional_uuid(target_id)?;
                    record.modified_properties = decode_properties(&properties)?;
                    Ok(StoredAuditRecord {
                        sequence: sequence as u64,
                        record,
                    })
                },
            )
            .collect()
    }

    pub(crate) fn prune_audit(&mut self, older_than: i64) -> Result<u64, StoreError> {
        let deleted = self
            .connection
            .execute(
                "DELETE FROM audit_log WHERE activity_date_time < ?1",
                [older_than],
            )
            .map_err(StoreError::sqlite("pruning the audit log"))?;
        Ok(deleted as u64)
    }
}
