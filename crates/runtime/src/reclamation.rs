//! Reclamation policies at work: a run of a policy finds the seats it applies to (the engine's
//! [`Engine::reclamation_candidates`](licensd_engine::Engine::reclamation_candidates)), gives
//! each a notice (`pending`, with the date it will be acted on) unless the notice period is 0,
//! acts on the seats whose notice date has come — removes the direct assignment and the user's
//! memberships of the static groups that give the product, each an ordinary audited change, plus
//! one "Reclaim license" audit record saying what was removed — and marks seats held through a
//! dynamic or nested group for review (they are not touched). A dry run reports the same and
//! changes nothing. Notices of seats the policy no longer applies to (the user signed in again)
//! are dropped. [`revert`] restores what a "Reclaim license" record says was removed.
//!
//! The background processor runs every enabled policy on the tenants this instance processes
//! ([`run_due`]); the admin API runs one on demand.

use licensd_engine::reclamation::{
    reclaim_command, restore_command, ReclaimStep, ReclamationCandidate, ReclamationRule,
};
use licensd_engine::spend::{IdleReason, UserActivity, DAY_MILLISECONDS};
use licensd_engine::{AssignedLicense, Timestamp, Uuid};
use licensd_store::{
    AuditQuery, AuditRecord, ModifiedProperty, ReclamationNoticeRecord, ReclamationPolicyRecord, StoreError,
};
use rustc_hash::FxHashMap;

use crate::access::Caller;
use crate::tenants::{lock_store, ExecuteError, SharedStore, TenantRuntime, Tenants};

/// The audit activity of a reclamation, and of its reversal.
pub const RECLAIM_ACTIVITY: &str = "Reclaim license";
pub const REVERT_ACTIVITY: &str = "Revert license reclamation";

/// The longest notice period and inactivity threshold a policy may have, in days.
pub const MAX_DAYS: i64 = 3650;

/// Parses a stored or requested reason.
pub fn parse_reason(text: &str) -> Option<IdleReason> {
    IdleReason::ALL.into_iter().find(|reason| reason.as_str() == text)
}

/// The engine's rule of a stored policy.
pub fn rule_of(policy: &ReclamationPolicyRecord) -> Result<ReclamationRule, ExecuteError> {
    let reason = parse_reason(&policy.reason).ok_or_else(|| {
        ExecuteError::Load(format!(
            "reclamation policy {} has the reason {:?}",
            policy.policy_id, policy.reason
        ))
    })?;
    Ok(ReclamationRule {
        reason,
        inactive_days: u32::try_from(policy.inactive_days.clamp(0, MAX_DAYS)).unwrap_or(0),
        sku_id: policy.sku_id,
        excluded_users: policy.excluded_users.clone(),
        excluded_groups: policy.excluded_groups.clone(),
    })
}

/// What a run did, or in a dry run would do, to one seat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeatOutcome {
    /// The seat gets a notice now: acted on at `act_at` (dry run: would get one).
    Noticed,
    /// The seat has had a notice since `noticed_at`; acted on at `act_at`.
    Pending,
    /// The steps were carried out; the "Reclaim license" audit record says what was removed.
    Reclaimed { audit_id: Uuid },
    /// Dry run: the steps would be carried out now.
    WouldReclaim,
    /// Held through a dynamic or nested group: an administrator must review it.
    Review,
    /// A step was refused (the first refusal); the steps done are in the audit record if any.
    Failed { message: String, audit_id: Option<Uuid> },
}

impl SeatOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SeatOutcome::Noticed => "noticed",
            SeatOutcome::Pending => "pending",
            SeatOutcome::Reclaimed { .. } => "reclaimed",
            SeatOutcome::WouldReclaim => "wouldReclaim",
            SeatOutcome::Review => "review",
            SeatOutcome::Failed { .. } => "failed",
        }
    }
}

/// One seat of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatRun {
    pub candidate: ReclamationCandidate,
    pub reason: IdleReason,
    pub outcome: SeatOutcome,
    pub noticed_at: Option<i64>,
    pub act_at: i64,
}

/// What a run of a policy did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunReport {
    pub policy_id: Uuid,
    pub dry_run: bool,
    pub ran_at: i64,
    pub seats: Vec<SeatRun>,
    /// Notices dropped because the policy no longer applies to their seat.
    pub withdrawn_notices: usize,
}

/// The activity a policy needs: of users whose leave date passed or who have not signed in
/// since the policy's threshold.
fn activity_for(
    store: &SharedStore,
    tenant_id: Uuid,
    rule: &ReclamationRule,
    now: i64,
) -> Result<FxHashMap<Uuid, UserActivity>, ExecuteError> {
    if rule.reason == IdleReason::Disabled {
        return Ok(FxHashMap::default());
    }
    let signed_in_before = now - i64::from(rule.inactive_days) * DAY_MILLISECONDS;
    let records = lock_store(store)?.possibly_idle_activity(tenant_id, now, signed_in_before)?;
    Ok(records
        .into_iter()
        .map(|record| {
            (
                record.user_id,
                UserActivity {
                    last_sign_in: record.last_sign_in.map(Timestamp),
                    leave_date: record.leave_date.map(Timestamp),
                },
            )
        })
        .collect())
}

/// The text of a direct license in an audit record: `skuId` or `skuId:plan,plan`.
fn license_text(license: &AssignedLicense) -> String {
    if license.disabled_plans.is_empty() {
        return license.sku_id.to_string();
    }
    let plans: Vec<String> = license.disabled_plans.iter().map(Uuid::to_string).collect();
    format!("{}:{}", license.sku_id, plans.join(","))
}

fn parse_license(text: &str) -> Option<AssignedLicense> {
    let (sku, plans) = match text.split_once(':') {
        Some((sku, plans)) => (sku, plans),
        None => (text, ""),
    };
    Some(AssignedLicense {
        sku_id: Uuid::parse_str(sku.trim()).ok()?,
        disabled_plans: plans
            .split(',')
            .filter(|plan| !plan.trim().is_empty())
            .map(|plan| Uuid::parse_str(plan.trim()).ok())
            .collect::<Option<Vec<_>>>()?,
    })
}

fn property(name: &str, old_value: String, new_value: String) -> ModifiedProperty {
    ModifiedProperty {
        display_name: name.to_string(),
        old_value,
        new_value,
    }
}

/// The audit record of adding (`adding`) or deleting a reclamation policy, by `caller`: the
/// admin API and the console record the same.
pub fn policy_audit(caller: &Caller, policy: &ReclamationPolicyRecord, adding: bool) -> AuditRecord {
    let describe = format!(
        "{} ({}, {} days notice, {})",
        policy.display_name,
        policy.reason,
        policy.notice_days,
        policy
            .sku_id
            .map_or_else(|| "every product".to_string(), |sku| sku.to_string())
    );
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: crate::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: if adding {
            "Add reclamation policy"
        } else {
            "Delete reclamation policy"
        }
        .to_string(),
        operation_type: if adding { "Add" } else { "Delete" }.to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "ReclamationPolicy".to_string(),
        target_id: Some(policy.policy_id),
        target_name: policy.display_name.clone(),
        modified_properties: vec![ModifiedProperty {
            display_name: "ReclamationPolicy".to_string(),
            old_value: if adding { String::new() } else { describe.clone() },
            new_value: if adding { describe } else { String::new() },
        }],
        request_id: caller.request_id.clone(),
    }
}

/// The audit activity of changing a policy (enabling, disabling, its notice period, exempting
/// a user or undoing an exemption).
pub const UPDATE_POLICY_ACTIVITY: &str = "Update reclamation policy";

/// The audit record of a change to a policy by `caller`: one modified property per change
/// (`Enabled`, `NoticeDays`, `ExemptUser`), old and new values. The admin API and the console
/// record the same.
pub fn policy_update_audit(
    caller: &Caller,
    policy: &ReclamationPolicyRecord,
    changes: Vec<ModifiedProperty>,
) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: crate::tenants::now().0,
        category: "DirectoryManagement".to_string(),
        activity: UPDATE_POLICY_ACTIVITY.to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "ReclamationPolicy".to_string(),
        target_id: Some(policy.policy_id),
        target_name: policy.display_name.clone(),
        modified_properties: changes,
        request_id: caller.request_id.clone(),
    }
}

/// A policy with `user_id` exempt (`exempt`) or no longer exempt, and the audit record of the
/// change; `None` when the user already was (or was not) exempt. Storing it withdraws the user's
/// notices of the policy ([`licensd_store::Store::put_reclamation_policy`]).
pub fn exemption_change(
    caller: &Caller,
    policy: &ReclamationPolicyRecord,
    user_id: Uuid,
    user_name: &str,
    exempt: bool,
) -> Option<(ReclamationPolicyRecord, AuditRecord)> {
    if policy.excluded_users.contains(&user_id) == exempt {
        return None;
    }
    let mut changed = policy.clone();
    if exempt {
        changed.excluded_users.push(user_id);
    } else {
        changed.excluded_users.retain(|excluded| *excluded != user_id);
    }
    let value = format!("{user_id} ({user_name})");
    let (old_value, new_value) = if exempt {
        (String::new(), value)
    } else {
        (value, String::new())
    };
    let audit = policy_update_audit(caller, policy, vec![property("ExemptUser", old_value, new_value)]);
    Some((changed, audit))
}

/// A policy enabled or disabled, and the audit record of the change; `None` when it already was.
pub fn enabled_change(
    caller: &Caller,
    policy: &ReclamationPolicyRecord,
    enabled: bool,
) -> Option<(ReclamationPolicyRecord, AuditRecord)> {
    if policy.enabled == enabled {
        return None;
    }
    let mut changed = policy.clone();
    changed.enabled = enabled;
    let audit = policy_update_audit(
        caller,
        policy,
        vec![property(
            "Enabled",
            policy.enabled.to_string(),
            enabled.to_string(),
        )],
    );
    Some((changed, audit))
}

fn base_record(caller: &Caller, activity: &str, user_id: Uuid, user_name: &str, at: i64) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: "UserManagement".to_string(),
        activity: activity.to_string(),
        operation_type: "Update".to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "User".to_string(),
        target_id: Some(user_id),
        target_name: user_name.to_string(),
        modified_properties: Vec::new(),
        request_id: caller.request_id.clone(),
    }
}

/// The "Reclaim license" record of the steps carried out on a seat: the removed direct license
/// and group memberships as old values (what [`revert`] restores).
fn reclaim_record(
    caller: &Caller,
    policy: &ReclamationPolicyRecord,
    seat: &ReclamationCandidate,
    reason: IdleReason,
    done: &[&ReclaimStep],
    at: i64,
) -> AuditRecord {
    let mut record = base_record(
        caller,
        RECLAIM_ACTIVITY,
        seat.user.user_id,
        &seat.user.user_principal_name,
        at,
    );
    let mut properties = vec![
        property(
            "ReclamationPolicy",
            String::new(),
            format!("{} ({})", policy.policy_id, policy.display_name),
        ),
        property("Reason", String::new(), reason.as_str().to_string()),
        property("SkuId", String::new(), seat.sku_id.to_string()),
    ];
    for step in done {
        match step {
            ReclaimStep::RemoveDirectLicense(license) => {
                properties.push(property("DirectLicense", license_text(license), String::new()))
            }
            ReclaimStep::RemoveFromGroup {
                group_id,
                display_name,
            } => properties.push(property(
                "MemberOf",
                format!("{group_id} ({display_name})"),
                String::new(),
            )),
            ReclaimStep::Review { .. } => {}
        }
    }
    record.modified_properties = properties;
    record
}

/// Runs one policy at `now` as `caller` (see the module). A dry run changes nothing.
pub fn run_policy(
    store: &SharedStore,
    runtime: &TenantRuntime,
    policy: &ReclamationPolicyRecord,
    now: i64,
    dry_run: bool,
    caller: &Caller,
) -> Result<RunReport, ExecuteError> {
    let rule = rule_of(policy)?;
    let activity = activity_for(store, runtime.id, &rule, now)?;
    let candidates =
        runtime.read(|engine| engine.reclamation_candidates(&rule, &activity, Timestamp(now)))?;
    let notices = lock_store(store)?.reclamation_notices(runtime.id, Some(policy.policy_id))?;
    let mut previous: FxHashMap<(Uuid, Uuid), ReclamationNoticeRecord> = notices
        .into_iter()
        .map(|notice| ((notice.user_id, notice.sku_id), notice))
        .collect();
    let notice_period = policy.notice_days.clamp(0, MAX_DAYS) * DAY_MILLISECONDS;
    let mut seats = Vec::with_capacity(candidates.len());
    let mut kept = Vec::new();
    let mut acting: Vec<usize> = Vec::new();
    for candidate in candidates {
        let notice = previous.remove(&(candidate.user.user_id, candidate.sku_id));
        let noticed_at = notice.map(|notice| notice.noticed_at);
        let act_at = notice.map_or(now + notice_period, |notice| notice.act_at);
        let outcome = if candidate.needs_review() {
            SeatOutcome::Review
        } else if act_at <= now {
            if dry_run {
                SeatOutcome::WouldReclaim
            } else {
                acting.push(seats.len());
                SeatOutcome::WouldReclaim
            }
        } else if notice.is_some() {
            SeatOutcome::Pending
        } else {
            SeatOutcome::Noticed
        };
        if matches!(
            outcome,
            SeatOutcome::Review | SeatOutcome::Pending | SeatOutcome::Noticed
        ) {
            kept.push(ReclamationNoticeRecord {
                policy_id: policy.policy_id,
                user_id: candidate.user.user_id,
                sku_id: candidate.sku_id,
                noticed_at: noticed_at.unwrap_or(now),
                act_at,
                review: outcome == SeatOutcome::Review,
            });
        }
        seats.push(SeatRun {
            candidate,
            reason: rule.reason,
            outcome,
            noticed_at,
            act_at,
        });
    }
    let withdrawn_notices = previous.len();
    if dry_run {
        return Ok(RunReport {
            policy_id: policy.policy_id,
            dry_run,
            ran_at: now,
            seats,
            withdrawn_notices,
        });
    }
    // Every acting seat's commands, queued together for the group commit.
    let mut commands = Vec::new();
    let mut owners: Vec<(usize, usize)> = Vec::new();
    for &index in &acting {
        let seat = &seats[index].candidate;
        for (step_index, step) in seat.steps.iter().enumerate() {
            if let Some(command) = reclaim_command(seat.user.user_id, step) {
                commands.push(command);
                owners.push((index, step_index));
            }
        }
    }
    let results = if commands.is_empty() {
        Vec::new()
    } else {
        runtime.execute_batch(store, commands, caller)
    };
    let mut done: FxHashMap<usize, Vec<usize>> = FxHashMap::default();
    let mut failures: FxHashMap<usize, String> = FxHashMap::default();
    for ((index, step_index), result) in owners.into_iter().zip(results) {
        match result {
            Ok(_) => done.entry(index).or_default().push(step_index),
            Err(error) => {
                failures.entry(index).or_insert_with(|| error.to_string());
            }
        }
    }
    let mut audit = Vec::new();
    for &index in &acting {
        let seat = &seats[index];
        let steps: Vec<&ReclaimStep> = done
            .get(&index)
            .map(|steps| steps.iter().map(|step| &seat.candidate.steps[*step]).collect())
            .unwrap_or_default();
        let audit_id = if steps.is_empty() {
            None
        } else {
            let record = reclaim_record(caller, policy, &seat.candidate, seat.reason, &steps, now);
            let audit_id = record.audit_id;
            audit.push(record);
            Some(audit_id)
        };
        seats[index].outcome = match (failures.remove(&index), audit_id) {
            (Some(message), audit_id) => SeatOutcome::Failed { message, audit_id },
            (None, Some(audit_id)) => SeatOutcome::Reclaimed { audit_id },
            // Nothing to do (no step): the seat goes with the assignments already removed.
            (None, None) => SeatOutcome::Failed {
                message: "nothing to remove".to_string(),
                audit_id: None,
            },
        };
    }
    let alerts = run_alerts(runtime, policy, &seats, now)?;
    lock_store(store)?.record_reclamation_run_alerting(
        runtime.id,
        policy.policy_id,
        now,
        &kept,
        &audit,
        &alerts,
    )?;
    if !alerts.is_empty() {
        runtime.wake_deliveries();
    }
    Ok(RunReport {
        policy_id: policy.policy_id,
        dry_run,
        ran_at: now,
        seats,
        withdrawn_notices,
    })
}

/// The alerts of a real run (`reclamationNoticed`, `reclamationActed` rules): the seats given
/// a notice now — a seat whose notice stands from an earlier run is `Pending`, so it is named
/// once — and the seats reclaimed; outbox rows written with the run.
fn run_alerts(
    runtime: &TenantRuntime,
    policy: &ReclamationPolicyRecord,
    seats: &[SeatRun],
    now: i64,
) -> Result<Vec<licensd_store::OutboxEntry>, ExecuteError> {
    use licensd_engine::alerts::ReclamationSample;
    let sample = |seat: &SeatRun| ReclamationSample {
        user_id: seat.candidate.user.user_id,
        user_principal_name: seat.candidate.user.user_principal_name.clone(),
        sku_id: seat.candidate.sku_id,
        sku_part_number: seat.candidate.sku_part_number.clone(),
        reason: seat.reason,
        act_at: seat.act_at,
    };
    let noticed: Vec<ReclamationSample> = seats
        .iter()
        .filter(|seat| seat.outcome == SeatOutcome::Noticed)
        .map(sample)
        .collect();
    let acted: Vec<ReclamationSample> = seats
        .iter()
        .filter(|seat| matches!(seat.outcome, SeatOutcome::Reclaimed { .. }))
        .map(sample)
        .collect();
    if noticed.is_empty() && acted.is_empty() {
        return Ok(Vec::new());
    }
    let tenant_name = runtime.read(|engine| engine.settings().display_name.clone())?;
    let deliveries = crate::alerts::reclamation_alerts(
        &runtime.alert_book(),
        &crate::alerts::ReclamationRunAlerts {
            tenant_id: runtime.id,
            tenant_name: &tenant_name,
            policy_id: policy.policy_id,
            policy_name: &policy.display_name,
            noticed: &noticed,
            acted: &acted,
            at: now,
        },
    );
    Ok(deliveries
        .iter()
        .map(crate::alerts::AlertDelivery::outbox_entry)
        .collect())
}

/// Runs every enabled policy of the tenants `owned` says this instance processes (the background
/// processor calls it periodically). Blocking.
pub fn run_due(store: &SharedStore, tenants: &Tenants, owned: impl Fn(Uuid) -> bool, now: i64) {
    let Ok(runtimes) = tenants.all() else {
        return;
    };
    for runtime in runtimes {
        if !owned(runtime.id) {
            continue;
        }
        let policies =
            match lock_store(store).and_then(|mut store| Ok(store.reclamation_policies(runtime.id)?)) {
                Ok(policies) => policies,
                Err(error) => {
                    tracing::warn!(tenant = %runtime.id, %error, "reading reclamation policies failed");
                    continue;
                }
            };
        for policy in policies.iter().filter(|policy| policy.enabled) {
            match run_policy(
                store,
                &runtime,
                policy,
                now,
                false,
                &Caller::background(runtime.id),
            ) {
                Ok(report) => {
                    let reclaimed = report
                        .seats
                        .iter()
                        .filter(|seat| matches!(seat.outcome, SeatOutcome::Reclaimed { .. }))
                        .count();
                    if reclaimed > 0 {
                        tracing::info!(tenant = %runtime.id, policy = %policy.policy_id, reclaimed, "reclamation policy acted");
                    }
                }
                Err(error) => {
                    tracing::warn!(tenant = %runtime.id, policy = %policy.policy_id, %error, "running a reclamation policy failed")
                }
            }
        }
    }
}

/// Why a reclamation cannot be reverted.
#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error("no audit record {0}")]
    NotFound(Uuid),
    #[error("the audit record {0} is not a \"Reclaim license\" record")]
    NotAReclamation(Uuid),
    #[error("the reclamation {0} was already reverted (audit record {1})")]
    AlreadyReverted(Uuid, Uuid),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
}

impl From<StoreError> for RevertError {
    fn from(error: StoreError) -> Self {
        RevertError::Execute(ExecuteError::Store(error))
    }
}

/// What a revert restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevertReport {
    pub reclamation_audit_id: Uuid,
    pub audit_id: Uuid,
    pub user_id: Uuid,
    pub restored_licenses: Vec<AssignedLicense>,
    pub restored_groups: Vec<Uuid>,
    /// Steps refused (the user was deleted meanwhile, a group is gone...), with the reason.
    pub failures: Vec<String>,
}

/// Restores what the "Reclaim license" audit record `audit_id` says was removed: the direct
/// license (with its disabled plans) and the group memberships; audited as "Revert license
/// reclamation". A reclamation is reverted at most once.
pub fn revert(
    store: &SharedStore,
    runtime: &TenantRuntime,
    audit_id: Uuid,
    caller: &Caller,
    now: i64,
) -> Result<RevertReport, RevertError> {
    let record = lock_store(store)?
        .audit_record(runtime.id, audit_id)?
        .ok_or(RevertError::NotFound(audit_id))?;
    let user_id = match (record.activity.as_str(), record.target_id) {
        (RECLAIM_ACTIVITY, Some(user_id)) => user_id,
        _ => return Err(RevertError::NotAReclamation(audit_id)),
    };
    let earlier = lock_store(store)?.audit_records(
        runtime.id,
        &AuditQuery {
            activity: Some(REVERT_ACTIVITY.to_string()),
            category: None,
            result: None,
            target_id: Some(user_id),
            since: Some(record.activity_date_time),
            until: None,
            before_sequence: None,
            limit: 10_000,
        },
    )?;
    let reverted_by = earlier.iter().find(|earlier| {
        earlier.record.modified_properties.iter().any(|property| {
            property.display_name == "ReclamationAuditId" && property.new_value == audit_id.to_string()
        })
    });
    if let Some(earlier) = reverted_by {
        return Err(RevertError::AlreadyReverted(audit_id, earlier.record.audit_id));
    }
    let mut steps = Vec::new();
    for property in &record.modified_properties {
        match property.display_name.as_str() {
            "DirectLicense" => {
                if let Some(license) = parse_license(&property.old_value) {
                    steps.push(ReclaimStep::RemoveDirectLicense(license));
                }
            }
            "MemberOf" => {
                let id = property.old_value.split_whitespace().next().unwrap_or_default();
                if let Ok(group_id) = Uuid::parse_str(id) {
                    steps.push(ReclaimStep::RemoveFromGroup {
                        group_id,
                        display_name: String::new(),
                    });
                }
            }
            _ => {}
        }
    }
    let commands: Vec<_> = steps
        .iter()
        .filter_map(|step| restore_command(user_id, step))
        .collect();
    let results = runtime.execute_batch(store, commands, caller);
    let mut report = RevertReport {
        reclamation_audit_id: audit_id,
        audit_id: Uuid::new_v4(),
        user_id,
        restored_licenses: Vec::new(),
        restored_groups: Vec::new(),
        failures: Vec::new(),
    };
    let mut properties = vec![property(
        "ReclamationAuditId",
        String::new(),
        audit_id.to_string(),
    )];
    for (step, result) in steps.iter().zip(results) {
        match (step, result) {
            (ReclaimStep::RemoveDirectLicense(license), Ok(_)) => {
                properties.push(property("DirectLicense", String::new(), license_text(license)));
                report.restored_licenses.push(license.clone());
            }
            (ReclaimStep::RemoveFromGroup { group_id, .. }, Ok(_)) => {
                properties.push(property("MemberOf", String::new(), group_id.to_string()));
                report.restored_groups.push(*group_id);
            }
            (_, Err(error)) => report.failures.push(error.to_string()),
            (ReclaimStep::Review { .. }, Ok(_)) => {}
        }
    }
    let mut revert_record = base_record(caller, REVERT_ACTIVITY, user_id, &record.target_name, now);
    revert_record.audit_id = report.audit_id;
    revert_record.modified_properties = properties;
    if !report.failures.is_empty() {
        revert_record.result_reason = report.failures.join("; ");
    }
    lock_store(store)?.append_audit(runtime.id, &[revert_record])?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_direct_license_reads_back_from_its_audit_text() {
        let license = AssignedLicense {
            sku_id: Uuid::from_u128(7),
            disabled_plans: vec![Uuid::from_u128(1), Uuid::from_u128(2)],
        };
        assert_eq!(parse_license(&license_text(&license)), Some(license));
        let plain = AssignedLicense::new(Uuid::from_u128(9));
        assert_eq!(parse_license(&license_text(&plain)), Some(plain));
        assert_eq!(parse_license("not an id"), None);
    }
}
