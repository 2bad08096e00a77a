//! Access tokens and the audit log: the rows behind authentication and "who changed what".
//!
//! - An [`AccessTokenRecord`] belongs to one tenant and holds only the SHA-256 hash of the
//!   token's secret (the caller hashes; the store never sees a secret). Revocation and expiry
//!   are columns. Instances remember verified tokens for a few seconds (the runtime's token
//!   cache), so a revocation announces itself: on PostgreSQL a `NOTIFY` on the channel writes
//!   use (payload `token <id>`), sent inside the revoking transaction, so every listening
//!   instance hears of it when (and only if) it commits; and [`crate::Store::access_tokens_by_id`]
//!   lets an instance re-read the tokens it remembers, its fallback when a notice is lost.
//! - An [`AuditRecord`] is one change (accepted or refused) or one background run. Records of an
//!   accepted change travel in its [`crate::WriteBatch`] and are written in the same
//!   transaction; [`crate::Store::append_audit`] writes records that have no batch (refusals).
//!   [`crate::Store::audit_records`] reads them newest first, filtered and paged by sequence.

use licensd_engine::Uuid;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// One access token as stored: everything but the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessTokenRecord {
    pub token_id: Uuid,
    pub tenant_id: Uuid,
    pub display_name: String,
    /// The role's stable name (`GlobalAdministrator`, ...); the server parses it.
    pub role: String,
    /// SHA-256 of the secret part of the token.
    pub secret_hash: Vec<u8>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Who created it (a token's display name, or `bootstrap` / `cli`).
    pub created_by: String,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// One property an audited change modified, as Graph's `modifiedProperty`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifiedProperty {
    pub display_name: String,
    pub old_value: String,
    pub new_value: String,
}

/// One audited event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditRecord {
    pub audit_id: Uuid,
    /// Milliseconds since the Unix epoch.
    pub activity_date_time: i64,
    /// `UserManagement`, `GroupManagement`, `DirectoryManagement`, `Authorization`.
    pub category: String,
    /// Entra's activity name: `Change user license`, `Set group license`, ...
    pub activity: String,
    /// `Add`, `Update`, `Delete`, `Assign`.
    pub operation_type: String,
    /// `success` or `failure`.
    pub result: String,
    pub result_reason: String,
    /// The token that made the change; `None` for licensd's own background processing.
    pub actor_id: Option<Uuid>,
    pub actor_name: String,
    pub actor_role: String,
    /// `User`, `Group`, `Product`, `Tenant`, `Token`.
    pub target_type: String,
    pub target_id: Option<Uuid>,
    pub target_name: String,
    pub modified_properties: Vec<ModifiedProperty>,
    pub request_id: String,
}

/// An audit record with its position in the tenant's log (higher is newer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAuditRecord {
    pub sequence: u64,
    pub record: AuditRecord,
}

/// Which audit records to read: every condition given must hold. Records come newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub activity: Option<String>,
    pub category: Option<String>,
    pub result: Option<String>,
    pub target_id: Option<Uuid>,
    /// Inclusive lower bound on `activity_date_time`.
    pub since: Option<i64>,
    /// Inclusive upper bound on `activity_date_time`.
    pub until: Option<i64>,
    /// Only records older than this sequence (the paging cursor).
    pub before_sequence: Option<u64>,
    /// At most this many records.
    pub limit: usize,
}

pub(crate) fn encode_properties(properties: &[ModifiedProperty]) -> Result<String, StoreError> {
    serde_json::to_string(properties)
        .map_err(|error| StoreError::corrupt(format!("modified properties: {error}")))
}

pub(crate) fn decode_properties(text: &str) -> Result<Vec<ModifiedProperty>, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::corrupt(format!("modified properties: {error}")))
}

/// The WHERE conditions of an audit query after `tenant_key = <first parameter>`, with
/// placeholders numbered from 2 (`?N` for SQLite, `$N` for PostgreSQL), in the order
/// [`AuditQuery`]'s fields are bound by the backends.
pub(crate) fn audit_conditions(query: &AuditQuery, placeholder: char) -> String {
    let mut conditions = String::new();
    let mut next = 2;
    let mut add = |column: &str, operator: &str| {
        conditions.push_str(&format!(" AND {column} {operator} {placeholder}{next}"));
        next += 1;
    };
    if query.activity.is_some() {
        add("activity", "=");
    }
    if query.category.is_some() {
        add("category", "=");
    }
    if query.result.is_some() {
        add("result", "=");
    }
    if query.target_id.is_some() {
        add("target_id", "=");
    }
    if query.since.is_some() {
        add("activity_date_time", ">=");
    }
    if query.until.is_some() {
        add("activity_date_time", "<=");
    }
    if query.before_sequence.is_some() {
        add("sequence", "<");
    }
    conditions
}

// ----- the statements, shared by both backends ----------------------------------------------

const TOKEN_COLUMNS: &str = "t.token_id, n.tenant_id, t.display_name, t.role, t.secret_hash, t.created_at,
     t.created_by, t.expires_at, t.revoked_at";

fn token_of(row: &impl ReadRow) -> Result<AccessTokenRecord, StoreError> {
    Ok(AccessTokenRecord {
        token_id: row.id(0)?,
        tenant_id: row.id(1)?,
        display_name: row.text(2)?.to_string(),
        role: row.text(3)?.to_string(),
        secret_hash: row.bytes(4)?.to_vec(),
        created_at: row.integer(5)?,
        created_by: row.text(6)?.to_string(),
        expires_at: row.optional_integer(7)?,
        revoked_at: row.optional_integer(8)?,
    })
}

/// Audit records written by one statement of [`insert_audit`].
const AUDIT_ROWS_PER_STATEMENT: usize = 32;

/// Inserts audit records for a tenant (inside the caller's transaction when there is one), in
/// order, up to [`AUDIT_ROWS_PER_STATEMENT`] per statement (the records of a group of commands
/// cost one round trip, not one each).
pub(crate) fn insert_audit(
    session: &mut impl Session,
    tenant_key: i64,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    for chunk in records.chunks(AUDIT_ROWS_PER_STATEMENT) {
        let properties: Vec<String> = chunk
            .iter()
            .map(|record| encode_properties(&record.modified_properties))
            .collect::<Result<_, _>>()?;
        let mut sql = String::from(
            "INSERT INTO audit_log (tenant_key, audit_id, activity_date_time, category, activity,
                 operation_type, result, result_reason, actor_id, actor_name, actor_role, target_type,
                 target_id, target_name, modified_properties, request_id)
             VALUES ",
        );
        let mut params = Vec::with_capacity(1 + chunk.len() * 15);
        params.push(Param::Integer(tenant_key));
        for (row, (record, properties)) in chunk.iter().zip(&properties).enumerate() {
            if row > 0 {
                sql.push_str(", ");
            }
            sql.push_str("($1");
            for parameter in 2 + row * 15..2 + (row + 1) * 15 {
                sql.push_str(&format!(", ${parameter}"));
            }
            sql.push(')');
            params.extend([
                Param::Id(record.audit_id),
                Param::Integer(record.activity_date_time),
                Param::Text(&record.category),
                Param::Text(&record.activity),
                Param::Text(&record.operation_type),
                Param::Text(&record.result),
                Param::Text(&record.result_reason),
                Param::OptionalId(record.actor_id),
                Param::Text(&record.actor_name),
                Param::Text(&record.actor_role),
                Param::Text(&record.target_type),
                Param::OptionalId(record.target_id),
                Param::Text(&record.target_name),
                Param::Text(properties),
                Param::Text(&record.request_id),
            ]);
        }
        session.execute("writing audit records", &sql, &params)?;
    }
    Ok(())
}

pub(crate) fn create_access_token(
    database: &mut impl Database,
    token: &AccessTokenRecord,
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to store an access token")?;
    let tenant_key = tenant_key(&mut transaction, token.tenant_id)?;
    transaction.execute(
        "storing an access token",
        "INSERT INTO access_tokens (token_id, tenant_key, display_name, role, secret_hash,
             created_at, created_by, expires_at, revoked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            Param::Id(token.token_id),
            Param::Integer(tenant_key),
            Param::Text(&token.display_name),
            Param::Text(&token.role),
            Param::Bytes(&token.secret_hash),
            Param::Integer(token.created_at),
            Param::Text(&token.created_by),
            Param::OptionalInteger(token.expires_at),
            Param::OptionalInteger(token.revoked_at),
        ],
    )?;
    insert_audit(&mut transaction, tenant_key, audit)?;
    transaction.commit("committing an access token")
}

pub(crate) fn access_token(
    session: &mut impl Session,
    token_id: Uuid,
) -> Result<Option<AccessTokenRecord>, StoreError> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
         WHERE t.token_id = $1"
    );
    session.query_optional("reading an access token", &sql, &[Param::Id(token_id)], |row| {
        token_of(row)
    })
}

/// The notice payload announcing that a token was revoked: `token <id>`. Change notices
/// (`<tenant id> <version>`) never start with `token`.
pub(crate) fn token_notice(token_id: Uuid) -> String {
    format!("token {token_id}")
}

/// The token a revocation notice names; `None` for any other payload.
pub(crate) fn parse_token_notice(payload: &str) -> Option<Uuid> {
    payload.strip_prefix("token ")?.parse().ok()
}

/// At most this many ids per statement of [`access_tokens_by_id`].
const IDS_PER_STATEMENT: usize = 500;

/// The stored tokens among `token_ids`, in no particular order (ids not stored are left out).
pub(crate) fn access_tokens_by_id(
    session: &mut impl Session,
    token_ids: &[Uuid],
) -> Result<Vec<AccessTokenRecord>, StoreError> {
    let mut records = Vec::with_capacity(token_ids.len());
    for chunk in token_ids.chunks(IDS_PER_STATEMENT) {
        let placeholders: Vec<String> = (1..=chunk.len()).map(|index| format!("${index}")).collect();
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
             WHERE t.token_id IN ({})",
            placeholders.join(", ")
        );
        let params: Vec<Param<'_>> = chunk.iter().map(|id| Param::Id(*id)).collect();
        records.extend(session.query_all("re-reading access tokens", &sql, &params, |row| token_of(row))?);
    }
    Ok(records)
}

pub(crate) fn access_tokens(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<AccessTokenRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM access_tokens t JOIN tenants n ON n.tenant_key = t.tenant_key
         WHERE t.tenant_key = $1 ORDER BY t.created_at, t.token_id"
    );
    session.query_all(
        "listing access tokens",
        &sql,
        &[Param::Integer(tenant_key)],
        |row| token_of(row),
    )
}

pub(crate) fn revoke_access_token(
    database: &mut impl Database,
    tenant_id: Uuid,
    token_id: Uuid,
    at: i64,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    let channel = database.notice_channel();
    let mut transaction = database.begin("starting to revoke an access token")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let changed = transaction.execute(
        "revoking an access token",
        "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, $3)
         WHERE tenant_key = $1 AND token_id = $2",
        &[
            Param::Integer(tenant_key),
            Param::Id(token_id),
            Param::Integer(at),
        ],
    )?;
    if changed > 0 {
        insert_audit(&mut transaction, tenant_key, audit)?;
        // Delivered to every listening instance when (and only if) the revocation commits:
        // they forget the token at once (see the module documentation).
        if let Some(channel) = &channel {
            transaction.execute(
                "announcing a revocation",
                "SELECT pg_notify($1, $2)",
                &[Param::Text(channel), Param::Text(&token_notice(token_id))],
            )?;
        }
    }
    transaction.commit("committing a revocation")?;
    Ok(changed > 0)
}

pub(crate) fn append_audit(
    session: &mut impl Session,
    tenant_id: Uuid,
    records: &[AuditRecord],
) -> Result<(), StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    insert_audit(session, tenant_key, records)
}

pub(crate) fn audit_records(
    session: &mut impl Session,
    tenant_id: Uuid,
    query: &AuditQuery,
) -> Result<Vec<StoredAuditRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    // Bound in the order `audit_conditions` numbers them.
    let mut params = vec![Param::Integer(tenant_key)];
    params.extend(query.activity.as_deref().map(Param::Text));
    params.extend(query.category.as_deref().map(Param::Text));
    params.extend(query.result.as_deref().map(Param::Text));
    params.extend(query.target_id.map(Param::Id));
    params.extend(query.since.map(Param::Integer));
    params.extend(query.until.map(Param::Integer));
    params.extend(
        query
            .before_sequence
            .map(|sequence| Param::Integer(sequence as i64)),
    );
    let sql = format!(
        "SELECT sequence, audit_id, activity_date_time, category, activity, operation_type, result,
                result_reason, actor_id, actor_name, actor_role, target_type, target_id, target_name,
                modified_properties, request_id
         FROM audit_log WHERE tenant_key = $1{} ORDER BY sequence DESC LIMIT {}",
        audit_conditions(query, '$'),
        query.limit
    );
    session.query_all("reading the audit log", &sql, &params, |row| {
        Ok(StoredAuditRecord {
            sequence: row.integer(0)? as u64,
            record: AuditRecord {
                audit_id: row.id(1)?,
                activity_date_time: row.integer(2)?,
                category: row.text(3)?.to_string(),
                activity: row.text(4)?.to_string(),
                operation_type: row.text(5)?.to_string(),
                result: row.text(6)?.to_string(),
                result_reason: row.text(7)?.to_string(),
                actor_id: row.optional_id(8)?,
                actor_name: row.text(9)?.to_string(),
                actor_role: row.text(10)?.to_string(),
                target_type: row.text(11)?.to_string(),
                target_id: row.optional_id(12)?,
                target_name: row.text(13)?.to_string(),
                modified_properties: decode_properties(row.text(14)?)?,
                request_id: row.text(15)?.to_string(),
            },
        })
    })
}

pub(crate) fn prune_audit(session: &mut impl Session, older_than: i64) -> Result<u64, StoreError> {
    session.execute(
        "pruning the audit log",
        "DELETE FROM audit_log WHERE activity_date_time < $1",
        &[Param::Integer(older_than)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_number_their_placeholders_in_field_order() {
        let query = AuditQuery {
            activity: Some("Set group license".into()),
            since: Some(1),
            before_sequence: Some(9),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            audit_conditions(&query, '$'),
            " AND activity = $2 AND activity_date_time >= $3 AND sequence < $4"
        );
        assert_eq!(audit_conditions(&AuditQuery::default(), '?'), "");
    }

    #[test]
    fn token_notices_round_trip_and_are_no_change_notices() {
        let id = Uuid::from_u128(42);
        let payload = token_notice(id);
        assert_eq!(parse_token_notice(&payload), Some(id));
        assert_eq!(crate::batch::ChangeNotice::parse(&payload), None);
        let change = crate::batch::ChangeNotice {
            tenant_id: id,
            version: 7,
        };
        assert_eq!(parse_token_notice(&change.payload()), None);
        assert_eq!(parse_token_notice("token not-an-id"), None);
    }

    #[test]
    fn modified_properties_round_trip() {
        let properties = vec![ModifiedProperty {
            display_name: "AssignedLicense".into(),
            old_value: "[]".into(),
            new_value: "[\"E3\"]".into(),
        }];
        let text = encode_properties(&properties).expect("encodes");
        assert_eq!(decode_properties(&text).expect("decodes"), properties);
    }
}
