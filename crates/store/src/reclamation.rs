//! Reclamation policies and the notices they gave (issue 19). Both backends read and write them
//! with the same statements; each change is written with its audit records in one transaction.
//! What an action removed lives in its audit record, read back by [`audit_record`] to revert it.

use licensd_engine::Uuid;

use crate::error::StoreError;
use crate::reads::tenant_key;
use crate::security::{decode_properties, insert_audit, AuditRecord};
use crate::sql::{Database, Param, ReadRow, Session, Transaction};

/// A stored reclamation policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReclamationPolicyRecord {
    pub policy_id: Uuid,
    pub display_name: String,
    /// `inactive`, `disabled` or `left`.
    pub reason: String,
    pub inactive_days: i64,
    /// `None`: every product.
    pub sku_id: Option<Uuid>,
    pub notice_days: i64,
    /// Whether the background processor runs it.
    pub enabled: bool,
    pub excluded_users: Vec<Uuid>,
    pub excluded_groups: Vec<Uuid>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub last_run_at: Option<i64>,
}

/// A seat a policy will act on (`pending`) or that needs an administrator (`review`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReclamationNoticeRecord {
    pub policy_id: Uuid,
    pub user_id: Uuid,
    pub sku_id: Uuid,
    pub noticed_at: i64,
    pub act_at: i64,
    /// `true`: `review`; `false`: `pending`.
    pub review: bool,
}

fn ids_text(ids: &[Uuid]) -> String {
    ids.iter().map(Uuid::to_string).collect::<Vec<_>>().join(" ")
}

fn parse_ids(text: &str) -> Result<Vec<Uuid>, StoreError> {
    text.split_whitespace()
        .map(|id| {
            Uuid::parse_str(id)
                .map_err(|error| StoreError::corrupt(format!("reclamation exclusion {id}: {error}")))
        })
        .collect()
}

fn read_policy(row: &impl ReadRow) -> Result<ReclamationPolicyRecord, StoreError> {
    Ok(ReclamationPolicyRecord {
        policy_id: row.id(0)?,
        display_name: row.text(1)?.to_string(),
        reason: row.text(2)?.to_string(),
        inactive_days: row.integer(3)?,
        sku_id: row.optional_id(4)?,
        notice_days: row.integer(5)?,
        enabled: row.flag(6)?,
        excluded_users: parse_ids(row.text(7)?)?,
        excluded_groups: parse_ids(row.text(8)?)?,
        created_at: row.integer(9)?,
        last_run_at: row.optional_integer(10)?,
    })
}

pub(crate) fn reclamation_policies(
    session: &mut impl Session,
    tenant_id: Uuid,
) -> Result<Vec<ReclamationPolicyRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_all(
        "reading reclamation policies",
        "SELECT policy_id, display_name, reason, inactive_days, sku_id, notice_days, enabled,
             excluded_users, excluded_groups, created_at, last_run_at
         FROM reclamation_policies WHERE tenant_key = $1 ORDER BY created_at, policy_id",
        &[Param::Integer(tenant_key)],
        |row| read_policy(row),
    )
}

/// Creates or replaces a policy, with its audit records; the notices it gave users it now
/// exempts are withdrawn.
pub(crate) fn put_reclamation_policy(
    database: &mut impl Database,
    tenant_id: Uuid,
    policy: &ReclamationPolicyRecord,
    audit: &[AuditRecord],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to store a reclamation policy")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let (users, groups) = (
        ids_text(&policy.excluded_users),
        ids_text(&policy.excluded_groups),
    );
    transaction.execute(
        "storing a reclamation policy",
        "INSERT INTO reclamation_policies (tenant_key, policy_id, display_name, reason, inactive_days, sku_id,
             notice_days, enabled, excluded_users, excluded_groups, created_at, last_run_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (tenant_key, policy_id) DO UPDATE SET
             display_name = excluded.display_name, reason = excluded.reason,
             inactive_days = excluded.inactive_days, sku_id = excluded.sku_id,
             notice_days = excluded.notice_days, enabled = excluded.enabled,
             excluded_users = excluded.excluded_users, excluded_groups = excluded.excluded_groups",
        &[
            Param::Integer(tenant_key),
            Param::Id(policy.policy_id),
            Param::Text(&policy.display_name),
            Param::Text(&policy.reason),
            Param::Integer(policy.inactive_days),
            Param::OptionalId(policy.sku_id),
            Param::Integer(policy.notice_days),
            Param::Flag(policy.enabled),
            Param::Text(&users),
            Param::Text(&groups),
            Param::Integer(policy.created_at),
            Param::OptionalInteger(policy.last_run_at),
        ],
    )?;
    // An exempt user's notices of this policy go at once (not at its next run).
    for user_id in &policy.excluded_users {
        transaction.execute(
            "withdrawing an exempt user's reclamation notices",
            "DELETE FROM reclamation_notices WHERE tenant_key = $1 AND policy_id = $2 AND user_id = $3",
            &[
                Param::Integer(tenant_key),
                Param::Id(policy.policy_id),
                Param::Id(*user_id),
            ],
        )?;
    }
    insert_audit(&mut transaction, tenant_key, audit)?;
    transaction.commit("committing a reclamation policy")
}

/// Deletes a policy and its notices, with its audit records; `false` when there was none.
pub(crate) fn delete_reclamation_policy(
    database: &mut impl Database,
    tenant_id: Uuid,
    policy_id: Uuid,
    audit: &[AuditRecord],
) -> Result<bool, StoreError> {
    let mut transaction = database.begin("starting to delete a reclamation policy")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    let deleted = transaction.execute(
        "deleting a reclamation policy",
        "DELETE FROM reclamation_policies WHERE tenant_key = $1 AND policy_id = $2",
        &[Param::Integer(tenant_key), Param::Id(policy_id)],
    )?;
    transaction.execute(
        "deleting a reclamation policy's notices",
        "DELETE FROM reclamation_notices WHERE tenant_key = $1 AND policy_id = $2",
        &[Param::Integer(tenant_key), Param::Id(policy_id)],
    )?;
    if deleted > 0 {
        insert_audit(&mut transaction, tenant_key, audit)?;
    }
    transaction.commit("committing the deletion of a reclamation policy")?;
    Ok(deleted > 0)
}

/// The notices of a tenant (of one policy when given), by policy, act date, user.
pub(crate) fn reclamation_notices(
    session: &mut impl Session,
    tenant_id: Uuid,
    policy_id: Option<Uuid>,
) -> Result<Vec<ReclamationNoticeRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    let columns = "SELECT policy_id, user_id, sku_id, noticed_at, act_at, state FROM reclamation_notices
         WHERE tenant_key = $1";
    match policy_id {
        Some(policy_id) => session.query_all(
            "reading reclamation notices",
            &format!("{columns} AND policy_id = $2 ORDER BY act_at, user_id, sku_id"),
            &[Param::Integer(tenant_key), Param::Id(policy_id)],
            |row| read_notice(row),
        ),
        None => session.query_all(
            "reading reclamation notices",
            &format!("{columns} ORDER BY act_at, policy_id, user_id, sku_id"),
            &[Param::Integer(tenant_key)],
            |row| read_notice(row),
        ),
    }
}

fn read_notice(row: &impl ReadRow) -> Result<ReclamationNoticeRecord, StoreError> {
    Ok(ReclamationNoticeRecord {
        policy_id: row.id(0)?,
        user_id: row.id(1)?,
        sku_id: row.id(2)?,
        noticed_at: row.integer(3)?,
        act_at: row.integer(4)?,
        review: row.text(5)? == "review",
    })
}

/// After a run of a policy: its notices become `notices`, its last run `ran_at`, and the run's
/// audit records and alerts (outbox rows) are written, in one transaction.
pub(crate) fn record_reclamation_run(
    database: &mut impl Database,
    tenant_id: Uuid,
    policy_id: Uuid,
    ran_at: i64,
    notices: &[ReclamationNoticeRecord],
    audit: &[AuditRecord],
    outbox: &[crate::OutboxEntry],
) -> Result<(), StoreError> {
    let mut transaction = database.begin("starting to record a reclamation run")?;
    let tenant_key = tenant_key(&mut transaction, tenant_id)?;
    transaction.execute(
        "replacing a reclamation policy's notices",
        "DELETE FROM reclamation_notices WHERE tenant_key = $1 AND policy_id = $2",
        &[Param::Integer(tenant_key), Param::Id(policy_id)],
    )?;
    for notice in notices {
        transaction.execute(
            "storing a reclamation notice",
            "INSERT INTO reclamation_notices (tenant_key, policy_id, user_id, sku_id, noticed_at, act_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Param::Integer(tenant_key),
                Param::Id(policy_id),
                Param::Id(notice.user_id),
                Param::Id(notice.sku_id),
                Param::Integer(notice.noticed_at),
                Param::Integer(notice.act_at),
                Param::Text(if notice.review { "review" } else { "pending" }),
            ],
        )?;
    }
    transaction.execute(
        "recording when a reclamation policy ran",
        "UPDATE reclamation_policies SET last_run_at = $3 WHERE tenant_key = $1 AND policy_id = $2",
        &[
            Param::Integer(tenant_key),
            Param::Id(policy_id),
            Param::Integer(ran_at),
        ],
    )?;
    insert_audit(&mut transaction, tenant_key, audit)?;
    // The run's alerts (notices given, seats reclaimed), delivered once the run is recorded.
    crate::outbox::insert_entries(&mut transaction, tenant_key, outbox)?;
    transaction.commit("committing a reclamation run")
}

/// One audit record of a tenant by its id.
pub(crate) fn audit_record(
    session: &mut impl Session,
    tenant_id: Uuid,
    audit_id: Uuid,
) -> Result<Option<AuditRecord>, StoreError> {
    let tenant_key = tenant_key(session, tenant_id)?;
    session.query_optional(
        "reading an audit record",
        "SELECT audit_id, activity_date_time, category, activity, operation_type, result,
                result_reason, actor_id, actor_name, actor_role, target_type, target_id, target_name,
                modified_properties, request_id
         FROM audit_log WHERE tenant_key = $1 AND audit_id = $2",
        &[Param::Integer(tenant_key), Param::Id(audit_id)],
        |row| {
            Ok(AuditRecord {
                audit_id: row.id(0)?,
                activity_date_time: row.integer(1)?,
                category: row.text(2)?.to_string(),
                activity: row.text(3)?.to_string(),
                operation_type: row.text(4)?.to_string(),
                result: row.text(5)?.to_string(),
                result_reason: row.text(6)?.to_string(),
                actor_id: row.optional_id(7)?,
                actor_name: row.text(8)?.to_string(),
                actor_role: row.text(9)?.to_string(),
                target_type: row.text(10)?.to_string(),
                target_id: row.optional_id(11)?,
                target_name: row.text(12)?.to_string(),
                modified_properties: decode_properties(row.text(13)?)?,
                request_id: row.text(14)?.to_string(),
            })
        },
    )
}
