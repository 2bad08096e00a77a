//! Access tokens and the audit log: the rows behind authentication and "who changed what".
//!
//! - An [`AccessTokenRecord`] belongs to one tenant and holds only the SHA-256 hash of the
//!   token's secret (the caller hashes; the store never sees a secret). Revocation and expiry
//!   are columns every instance reads on every request, so a revoked token is refused at once
//!   everywhere.
//! - An [`AuditRecord`] is one change (accepted or refused) or one background run. Records of an
//!   accepted change travel in its [`crate::WriteBatch`] and are written in the same
//!   transaction; [`crate::Store::append_audit`] writes records that have no batch (refusals).
//!   [`crate::Store::audit_records`] reads them newest first, filtered and paged by sequence.

use licensd_engine::Uuid;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

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
