//! Access tokens and audit records on PostgreSQL (see `crate::security` for what they mean).

use licensd_engine::Uuid;
use postgres::types::ToSql;
use postgres::{GenericClient, Row};

use super::{get, PostgresStore};
use crate::error::StoreError;
use crate::security::{
    audit_conditions, decode_properties, encode_properties, AccessTokenRecord, AuditQuery, AuditRecord,
    StoredAuditRecord,
};

const TOKEN_COLUMNS: &str = "t.token_id, n.tenant_id, t.display_name, t.role, t.secret_hash, t.created_at,
     t.created_by, t.expires_at, t.revoked_at";

fn token_of(row: &Row) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        token_id: get(row, 0)?,
        tenant_id: get(row, 1)?,
        display_name: get(row, 2)?,
        role: get(row, 3)?,
        secret_hash: get(row, 4)?,
        created_at: get(row, 5)?,
        created_by: get(row, 6)?,
        expires_at: get(row, 7)?,
        revoked_at: get(row, 8)?,
    })
}

/// Inserts audit records for a tenant (inside the caller's transaction when there is one).
pub(crate) fn insert_audit(
    client: &mut impl GenericClient,
    tenant_key: i64,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let statement = client
        .prepare(
            "INSERT INTO audit_log (tenant_key, audit_id, activity_date_time, category, activity,
                 operation_type, result, result_reason, actor_id, actor_name, actor_role, target_type,
                 target_id, target_name, modified_properties, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
        )
        .map_err(StoreError::postgres("preparing the audit insert"))?;
    for record in records {
        let properties = encode_properties(&record.modified_properties)?;
        client
            .execute(
                &statement,
                &[
                    &tenant_key,
                    &record.audit_id,
                    &record.activity_date_time,
                    &record.category,
                    &record.activity,
                    &record.operation_type,
                    &record.result,
                    &record.result_reason,
                    &record.actor_id,
                    &record.actor_name,
                    &record.actor_role,
                    &record.target_type,
                    &record.target_id,
                    &record.target_name,
                    &properties,
                    &record.request_id,
                ],
            )
            .map_err(StoreError::postgres("writing an audit record"))?;
    }
    Ok(())
}

impl PostgresStore {
    pub(crate) fn create_access_token(
        &mut self,
        token: &AccessTokenRecord,
        audit: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let mut transaction = self
            .client
            .transaction()
            .map_err(StoreError::postgres("starting to store an access token"))?;
        let (tenant_key, _) = Self::tenant_key(&mut transaction, token.tenant_id)?;
        transaction
            .execute(
                "INSERT INTO access_tokens (token_id, tenant_key, display_name, role, secret_hash,
                     created_at, created_by, expires_at, revoked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &token.token_id,
                    &tenant_key,
                    &token.display_name,
                    &token.role,
                    &token.secret_hash,
                    &token.created_at,
                    &token.created_by,
                    &token.expires_at,
                    &token.revoked_at,
                ],
            )
            .map_err(StoreError::postgres("storing an access token"))?;
        insert_audit(&mut transaction, tenant_key, audit)?;
        transaction
            .commit()
            .map_err(StoreError::postgres("committing an access token"))
    }

    pub(crate) fn access_token(&mut self, token_id: Uuid) -> Result<Option<AccessTokenRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
             WHERE t.token_id = $1"
        );
        let row = self
            .client
            .query_opt(&sql, &[&token_id])
            .map_err(StoreError::postgres("reading an access token"))?;
        row.as_ref().map(token_of).transpose()
    }

    pub(crate) fn access_tokens(&mut self, tenant_id: Uuid) -> Result<Vec<AccessTokenRecord>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
             WHERE t.tenant_key = $1 ORDER BY t.created_at, t.token_id"
        );
        let rows = self
            .client
            .query(&sql, &[&tenant_key])
            .map_err(StoreError::postgres("listing access tokens"))?;
        rows.iter().map(token_of).collect()
    }

    pub(crate) fn revoke_access_token(
        &mut self,
        tenant_id: Uuid,
        token_id: Uuid,
        at: i64,
        audit: &[AuditRecord],
    ) -> Result<bool, StoreError> {
        let mut transaction = self
            .client
            .transaction()
            .map_err(StoreError::postgres("starting to revoke an access token"))?;
        let (tenant_key, _) = Self::tenant_key(&mut transaction, tenant_id)?;
        let changed = transaction
            .execute(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, $3)
                 WHERE tenant_key = $1 AND token_id = $2",
                &[&tenant_key, &token_id, &at],
            )
            .map_err(StoreError::postgres("revoking an access token"))?;
        if changed > 0 {
            insert_audit(&mut transaction, tenant_key, audit)?;
        }
        transaction
            .commit()
            .map_err(StoreError::postgres("committing a revocation"))?;
        Ok(changed > 0)
    }

    pub(crate) fn append_audit(
        &mut self,
        tenant_id: Uuid,
        records: &[AuditRecord],
    ) -> Result<(), StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        insert_audit(&mut self.client, tenant_key, records)
    }

    pub(crate) fn audit_records(
        &mut self,
        tenant_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<StoredAuditRecord>, StoreError> {
        let (tenant_key, _) = Self::tenant_key(&mut self.client, tenant_id)?;
        let before = query.before_sequence.map(|sequence| sequence as i64);
        let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&tenant_key];
        if let Some(activity) = &query.activity {
            parameters.push(activity);
        }
        if let Some(category) = &query.category {
            parameters.push(category);
        }
        if let Some(result) = &query.result {
            parameters.push(result);
        }
        if let Some(target_id) = &query.target_id {
            parameters.push(target_id);
        }
        if let Some(since) = &query.since {
            parameters.push(since);
        }
        if let Some(until) = &query.until {
            parameters.push(until);
        }
        if let Some(before) = &before {
            parameters.push(before);
        }
        let sql = format!(
            "SELECT sequence, audit_id, activity_date_time, category, activity, operation_type, result,
                    result_reason, actor_id, actor_name, actor_role, target_type, target_id, target_name,
                    modified_properties, request_id
             FROM audit_log WHERE tenant_key = $1{} ORDER BY sequence DESC LIMIT {}",
            audit_conditions(query, '$'),
            query.limit
        );
        let rows = self
            .client
            .query(&sql, &parameters)
            .map_err(StoreError::postgres("reading the audit log"))?;
        rows.iter()
            .map(|row| {
                let sequence: i64 = get(row, 0)?;
                let properties: String = get(row, 14)?;
                Ok(StoredAuditRecord {
                    sequence: sequence as u64,
                    record: AuditRecord {
                        audit_id: get(row, 1)?,
                        activity_date_time: get(row, 2)?,
                        category: get(row, 3)?,
                        activity: get(row, 4)?,
                        operation_type: get(row, 5)?,
                        result: get(row, 6)?,
                        result_reason: get(row, 7)?,
                        actor_id: get(row, 8)?,
                        actor_name: get(row, 9)?,
                        actor_role: get(row, 10)?,
                        target_type: get(row, 11)?,
                        target_id: get(row, 12)?,
                        target_name: get(row, 13)?,
                        modified_properties: decode_properties(&properties)?,
                        request_id: get(row, 15)?,
                    },
                })
            })
            .collect()
    }

    pub(crate) fn prune_audit(&mut self, older_than: i64) -> Result<u64, StoreError> {
        self.client
            .execute(
                "DELETE FROM audit_log WHERE activity_date_time < $1",
                &[&older_than],
            )
            .map_err(StoreError::postgres("pruning the audit log"))
    }
}
