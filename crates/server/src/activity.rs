//! Users' activity — the last sign-in and the leave date — as the identity provider reports it,
//! stored the same way whichever surface it comes through (the admin API's
//! `/licensd/v1/users/{id}/activity` and `/licensd/v1/activity`, SCIM's activity extension): the
//! user's stored record is replaced and each user whose activity changed gets an "Update user
//! activity" audit record, all in one store transaction. Reclamation policies and the spend
//! report read it.

use licensd_api_types::time::format_date_time;
use licensd_engine::Uuid;
use licensd_runtime::access::Caller;
use licensd_store::{AuditRecord, Store, StoreError, UserActivityRecord};

/// One user's change: for each date, `None` keeps it, `Some(None)` clears it, `Some(Some(t))`
/// sets it (milliseconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActivityChange {
    pub user_id: Uuid,
    pub user_principal_name: String,
    pub last_sign_in: Option<Option<i64>>,
    pub leave_date: Option<Option<i64>>,
}

fn describe(record: &UserActivityRecord) -> Vec<(&'static str, String)> {
    vec![
        (
            "signInActivity.lastSignInDateTime",
            record.last_sign_in.map(format_date_time).unwrap_or_default(),
        ),
        (
            "employeeLeaveDateTime",
            record.leave_date.map(format_date_time).unwrap_or_default(),
        ),
    ]
}

fn audit_record(
    caller: &Caller,
    change: &ActivityChange,
    before: &UserActivityRecord,
    after: &UserActivityRecord,
) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: licensd_runtime::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: "Update user activity".to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "User".to_string(),
        target_id: Some(change.user_id),
        target_name: change.user_principal_name.clone(),
        modified_properties: licensd_runtime::audit::modified(&describe(before), &describe(after)),
        request_id: caller.request_id.clone(),
    }
}

/// Stores the changes of several users, all or nothing, with an "Update user activity" audit
/// record per user whose activity changed; answers each user's activity after.
pub fn store_activity(
    store: &mut Store,
    tenant_id: Uuid,
    caller: &Caller,
    changes: &[ActivityChange],
) -> Result<Vec<UserActivityRecord>, StoreError> {
    let mut records = Vec::with_capacity(changes.len());
    let mut audit = Vec::new();
    for change in changes {
        let before = store
            .user_activity(tenant_id, change.user_id)?
            .unwrap_or(UserActivityRecord {
                user_id: change.user_id,
                last_sign_in: None,
                leave_date: None,
            });
        let mut after = before;
        if let Some(last_sign_in) = change.last_sign_in {
            after.last_sign_in = last_sign_in;
        }
        if let Some(leave_date) = change.leave_date {
            after.leave_date = leave_date;
        }
        if after != before {
            audit.push(audit_record(caller, change, &before, &after));
        }
        records.push(after);
    }
    store.set_user_activity(tenant_id, &records, &audit)?;
    Ok(records)
}
