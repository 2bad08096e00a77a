//! The audit trail: turns each command (with who sent it, and the tenant before and after it)
//! into an [`AuditRecord`] named like Entra's audit events — "Change user license", "Set group
//! license", "Add member to group", ... — with the license-relevant properties before → after;
//! and each background run over a group into "Start applying group based license to users" /
//! "Finish applying group based license to users" with its counts; and the creation or
//! revocation of an access token. `TenantRuntime` puts the
//! records in the same write batch as the change they describe.

use licensd_engine::{AssignedLicense, Command, Engine, Uuid};
use licensd_store::{AccessTokenRecord, AuditRecord, ModifiedProperty};

use crate::access::Caller;

/// What a command acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditTarget {
    pub kind: &'static str,
    pub id: Option<Uuid>,
    pub name: String,
}

/// Entra's activity name, category and operation type of a command.
pub fn activity_of(command: &Command) -> (&'static str, &'static str, &'static str) {
    match command {
        Command::SetDefaultUsageLocation { .. }
        | Command::SetSelfHealing { .. }
        | Command::SetTransitiveLicensing { .. } => {
            ("Update company settings", "DirectoryManagement", "Update")
        }
        Command::AddSku(_) => ("Add subscription", "DirectoryManagement", "Add"),
        Command::AddServicePlanToSku { .. } => (
            "Add service plan to subscription",
            "DirectoryManagement",
            "Update",
        ),
        Command::SetPrepaidUnits { .. } => ("Update subscription seats", "DirectoryManagement", "Update"),
        Command::SetCapabilityStatus { .. } => {
            ("Update subscription status", "DirectoryManagement", "Update")
        }
        Command::SetServicePlanRules { .. } => ("Set service plan rules", "DirectoryManagement", "Update"),
        Command::CreateUser(_) => ("Add user", "UserManagement", "Add"),
        Command::UpdateUser { .. } => ("Update user", "UserManagement", "Update"),
        Command::DeleteUser { .. } => ("Delete user", "UserManagement", "Delete"),
        Command::CreateGroup { .. } => ("Add group", "GroupManagement", "Add"),
        Command::UpdateGroup { .. } | Command::SetMembershipRule { .. } => {
            ("Update group", "GroupManagement", "Update")
        }
        Command::DeleteGroup { .. } => ("Delete group", "GroupManagement", "Delete"),
        Command::AddGroupMember { .. } => ("Add member to group", "GroupManagement", "Add"),
        Command::RemoveGroupMember { .. } => ("Remove member from group", "GroupManagement", "Delete"),
        Command::AddGroupMemberGroup { .. } => ("Add member to group", "GroupManagement", "Add"),
        Command::RemoveGroupMemberGroup { .. } => ("Remove member from group", "GroupManagement", "Delete"),
        Command::AssignUserLicenses { .. } => ("Change user license", "UserManagement", "Assign"),
        Command::AssignGroupLicenses { .. } => ("Set group license", "GroupManagement", "Assign"),
        Command::ReprocessUser { .. } => ("Reprocess user license assignments", "UserManagement", "Update"),
        Command::ReprocessGroup { .. } => {
            ("Reprocess group license assignments", "GroupManagement", "Update")
        }
        Command::SetDirectoryAttributes { .. } => {
            ("Update directory attributes", "DirectoryManagement", "Update")
        }
    }
}

fn user_target(engine: &Engine, user_id: Uuid) -> AuditTarget {
    AuditTarget {
        kind: "User",
        id: Some(user_id),
        name: engine
            .user_view(user_id)
            .map(|user| user.user_principal_name)
            .unwrap_or_default(),
    }
}

fn group_target(engine: &Engine, group_id: Uuid) -> AuditTarget {
    AuditTarget {
        kind: "Group",
        id: Some(group_id),
        name: engine
            .group_view(group_id)
            .map(|group| group.display_name)
            .unwrap_or_default(),
    }
}

fn product_target(engine: &Engine, sku_id: Uuid) -> AuditTarget {
    AuditTarget {
        kind: "Product",
        id: Some(sku_id),
        name: engine
            .sku_usage(sku_id)
            .map(|usage| usage.sku_part_number)
            .unwrap_or_default(),
    }
}

/// The command's target, named from the engine that knows it (before a deletion, after a
/// creation: callers try both).
pub fn target_of(command: &Command, engine: &Engine) -> AuditTarget {
    match command {
        Command::SetDefaultUsageLocation { .. }
        | Command::SetSelfHealing { .. }
        | Command::SetTransitiveLicensing { .. } => AuditTarget {
            kind: "Tenant",
            id: Some(engine.settings().tenant_id),
            name: engine.settings().display_name.clone(),
        },
        Command::AddSku(definition) => AuditTarget {
            kind: "Product",
            id: Some(definition.sku_id),
            name: definition.sku_part_number.clone(),
        },
        Command::AddServicePlanToSku { sku_id, .. }
        | Command::SetPrepaidUnits { sku_id, .. }
        | Command::SetCapabilityStatus { sku_id, .. } => product_target(engine, *sku_id),
        Command::SetServicePlanRules { service_plan_id, .. } => AuditTarget {
            kind: "ServicePlan",
            id: Some(*service_plan_id),
            name: plan_name(engine, *service_plan_id).unwrap_or_default(),
        },
        Command::CreateUser(user) => AuditTarget {
            kind: "User",
            id: Some(user.id),
            name: user.user_principal_name.clone(),
        },
        Command::UpdateUser { user_id, .. }
        | Command::DeleteUser { user_id }
        | Command::AssignUserLicenses { user_id, .. }
        | Command::ReprocessUser { user_id } => user_target(engine, *user_id),
        Command::CreateGroup {
            group_id,
            display_name,
        } => AuditTarget {
            kind: "Group",
            id: Some(*group_id),
            name: display_name.clone(),
        },
        Command::UpdateGroup { group_id, .. }
        | Command::DeleteGroup { group_id }
        | Command::AddGroupMember { group_id, .. }
        | Command::RemoveGroupMember { group_id, .. }
        | Command::AddGroupMemberGroup { group_id, .. }
        | Command::RemoveGroupMemberGroup { group_id, .. }
        | Command::AssignGroupLicenses { group_id, .. }
        | Command::SetMembershipRule { group_id, .. }
        | Command::ReprocessGroup { group_id } => group_target(engine, *group_id),
        Command::SetDirectoryAttributes { object_id, .. } => {
            if engine.user_view(*object_id).is_ok() {
                user_target(engine, *object_id)
            } else {
                group_target(engine, *object_id)
            }
        }
    }
}

/// A service plan's name (`EXCHANGE_S_ENTERPRISE`), from the products that contain it.
fn plan_name(engine: &Engine, service_plan_id: Uuid) -> Option<String> {
    engine.sku_usages().into_iter().find_map(|usage| {
        usage
            .service_plans
            .into_iter()
            .find(|(id, _, _)| *id == service_plan_id)
            .map(|(_, name, _)| name)
    })
}

fn licenses_text(engine: &Engine, licenses: &[AssignedLicense]) -> String {
    let mut names: Vec<String> = licenses
        .iter()
        .map(|license| {
            let Ok(usage) = engine.sku_usage(license.sku_id) else {
                return license.sku_id.to_string();
            };
            if license.disabled_plans.is_empty() {
                return usage.sku_part_number;
            }
            // A disabled plan is one of the product's own: name it from the product.
            let disabled: Vec<String> = license
                .disabled_plans
                .iter()
                .map(|plan| {
                    usage
                        .service_plans
                        .iter()
                        .find(|(id, _, _)| id == plan)
                        .map(|(_, name, _)| name.clone())
                        .unwrap_or_else(|| plan.to_string())
                })
                .collect();
            format!("{} (disabled: {})", usage.sku_part_number, disabled.join(", "))
        })
        .collect();
    names.sort();
    format!("[{}]", names.join(", "))
}

/// The license-relevant properties of a command's target, by name, as text.
pub fn properties_of(command: &Command, engine: &Engine) -> Vec<(&'static str, String)> {
    let user = |user_id: Uuid| -> Vec<(&'static str, String)> {
        let Ok(user) = engine.user_view(user_id) else {
            return Vec::new();
        };
        let mut addresses: Vec<String> = user
            .proxy_addresses
            .iter()
            .map(|address| address.to_string())
            .collect();
        addresses.sort();
        vec![
            ("UserPrincipalName", user.user_principal_name),
            ("DisplayName", user.display_name),
            (
                "UsageLocation",
                user.usage_location
                    .map(|code| code.as_str().to_string())
                    .unwrap_or_default(),
            ),
            ("AccountEnabled", user.account_enabled.to_string()),
            ("ProxyAddresses", format!("[{}]", addresses.join(", "))),
            ("AssignedLicense", licenses_text(engine, &user.direct_licenses)),
            ("MemberOfGroupCount", user.member_of.len().to_string()),
        ]
    };
    let group = |group_id: Uuid| -> Vec<(&'static str, String)> {
        let Ok(group) = engine.group_view(group_id) else {
            return Vec::new();
        };
        let dynamic = engine.dynamic_membership(group_id).ok().flatten();
        vec![
            ("DisplayName", group.display_name),
            (
                "GroupTypes",
                if dynamic.is_some() {
                    "[DynamicMembership]"
                } else {
                    "[]"
                }
                .to_string(),
            ),
            ("AssignedLicense", licenses_text(engine, &group.assigned_licenses)),
            ("MemberCount", group.member_count.to_string()),
            (
                "MembershipRule",
                dynamic
                    .map(|dynamic| dynamic.rule.text().to_string())
                    .unwrap_or_default(),
            ),
            (
                "MembershipRuleProcessingState",
                dynamic
                    .map(|dynamic| dynamic.processing_state.as_str().to_string())
                    .unwrap_or_default(),
            ),
        ]
    };
    let product = |sku_id: Uuid| -> Vec<(&'static str, String)> {
        let Ok(usage) = engine.sku_usage(sku_id) else {
            return Vec::new();
        };
        vec![
            ("PrepaidUnits", usage.prepaid_units.to_string()),
            ("CapabilityStatus", format!("{:?}", usage.capability_status)),
        ]
    };
    match command {
        Command::SetDefaultUsageLocation { .. }
        | Command::SetSelfHealing { .. }
        | Command::SetTransitiveLicensing { .. } => {
            let settings = engine.settings();
            vec![
                (
                    "DefaultUsageLocation",
                    settings
                        .default_usage_location
                        .as_ref()
                        .map(|code| code.as_str().to_string())
                        .unwrap_or_default(),
                ),
                ("SelfHealing", settings.self_healing.to_string()),
                ("TransitiveLicensing", settings.transitive_licensing.to_string()),
            ]
        }
        Command::AddSku(definition) => product(definition.sku_id),
        Command::AddServicePlanToSku { sku_id, .. }
        | Command::SetPrepaidUnits { sku_id, .. }
        | Command::SetCapabilityStatus { sku_id, .. } => product(*sku_id),
        Command::SetServicePlanRules { service_plan_id, .. } => engine
            .service_plan_rules(*service_plan_id)
            .map(|rules| vec![("Rules", format!("{rules:?}"))])
            .unwrap_or_default(),
        Command::CreateUser(new_user) => user(new_user.id),
        Command::UpdateUser { user_id, .. }
        | Command::DeleteUser { user_id }
        | Command::AssignUserLicenses { user_id, .. }
        | Command::ReprocessUser { user_id } => user(*user_id),
        Command::AddGroupMember { group_id, user_id } | Command::RemoveGroupMember { group_id, user_id } => {
            let mut properties = group(*group_id);
            properties.push((
                "Member",
                engine
                    .user_view(*user_id)
                    .map(|user| {
                        let member = user.member_of.contains(group_id);
                        format!(
                            "{} ({})",
                            user.user_principal_name,
                            if member { "member" } else { "not a member" }
                        )
                    })
                    .unwrap_or_default(),
            ));
            properties
        }
        Command::AddGroupMemberGroup {
            group_id,
            member_group_id,
        }
        | Command::RemoveGroupMemberGroup {
            group_id,
            member_group_id,
        } => {
            let mut properties = group(*group_id);
            let nested = engine
                .member_groups(*group_id)
                .is_ok_and(|members| members.contains(member_group_id));
            properties.push((
                "MemberGroup",
                engine
                    .group_view(*member_group_id)
                    .map(|member| {
                        format!(
                            "{} ({})",
                            member.display_name,
                            if nested { "member" } else { "not a member" }
                        )
                    })
                    .unwrap_or_default(),
            ));
            properties
        }
        Command::CreateGroup { group_id, .. }
        | Command::UpdateGroup { group_id, .. }
        | Command::DeleteGroup { group_id }
        | Command::AssignGroupLicenses { group_id, .. }
        | Command::SetMembershipRule { group_id, .. }
        | Command::ReprocessGroup { group_id } => group(*group_id),
        // Opaque to licensing: the record says they changed, not what they hold.
        Command::SetDirectoryAttributes { .. } => Vec::new(),
    }
}

/// The properties whose value changed, as Graph's `modifiedProperties`.
pub fn modified(
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> Vec<ModifiedProperty> {
    let mut changes = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (name, _) in before.iter().chain(after) {
        if seen.contains(name) {
            continue;
        }
        seen.push(name);
        let value = |list: &[(&'static str, String)]| {
            list.iter()
                .find(|(candidate, _)| candidate == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        let (old_value, new_value) = (value(before), value(after));
        if old_value != new_value {
            changes.push(ModifiedProperty {
                display_name: name.to_string(),
                old_value,
                new_value,
            });
        }
    }
    changes
}

/// One audit record for a command by a caller.
pub fn record(
    caller: &Caller,
    command: &Command,
    target: AuditTarget,
    modified_properties: Vec<ModifiedProperty>,
    result: Result<(), String>,
    at: i64,
) -> AuditRecord {
    let (activity, category, operation_type) = activity_of(command);
    let (result, result_reason) = match result {
        Ok(()) => ("success", String::new()),
        Err(reason) => ("failure", reason),
    };
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: category.to_string(),
        activity: activity.to_string(),
        operation_type: operation_type.to_string(),
        result: result.to_string(),
        result_reason,
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: target.kind.to_string(),
        target_id: target.id,
        target_name: target.name,
        modified_properties,
        request_id: caller.request_id.clone(),
    }
}

/// "Create access token" or "Revoke access token": who created or revoked a tenant's token, and
/// the one property that changed (its role, or its status).
pub fn token_changed(
    caller: &Caller,
    activity: &str,
    token: &AccessTokenRecord,
    change: ModifiedProperty,
    at: i64,
) -> AuditRecord {
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: "Authorization".to_string(),
        activity: activity.to_string(),
        operation_type: if activity.starts_with("Create") {
            "Add"
        } else {
            "Delete"
        }
        .to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "Token".to_string(),
        target_id: Some(token.token_id),
        target_name: token.display_name.clone(),
        modified_properties: vec![change],
        request_id: caller.request_id.clone(),
    }
}

/// "Add alert rule" or "Delete alert rule": who changed the tenant's license alert rules.
pub fn alert_rule_changed(
    caller: &Caller,
    activity: &str,
    rule_id: Uuid,
    rule_name: &str,
    at: i64,
) -> AuditRecord {
    let adding = activity.starts_with("Add");
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: "AlertManagement".to_string(),
        activity: activity.to_string(),
        operation_type: if adding { "Add" } else { "Delete" }.to_string(),
        result: "success".to_string(),
        result_reason: String::new(),
        actor_id: caller.token_id,
        actor_name: caller.display_name.clone(),
        actor_role: caller.role.as_str().to_string(),
        target_type: "AlertRule".to_string(),
        target_id: Some(rule_id),
        target_name: rule_name.to_string(),
        modified_properties: vec![ModifiedProperty {
            display_name: "AlertRule".to_string(),
            old_value: if adding {
                String::new()
            } else {
                rule_name.to_string()
            },
            new_value: if adding {
                rule_name.to_string()
            } else {
                String::new()
            },
        }],
        request_id: caller.request_id.clone(),
    }
}

/// "Start applying group based license to users" for a group whose members background
/// processing began to evaluate.
pub fn group_run_started(
    tenant_id: Uuid,
    group_id: Uuid,
    group_name: &str,
    queued: usize,
    at: i64,
) -> AuditRecord {
    background_record(
        tenant_id,
        "Start applying group based license to users",
        group_id,
        group_name,
        format!("Users queued for processing: {queued}."),
        at,
    )
}

/// "Finish applying group based license to users", with Entra's result text.
pub fn group_run_finished(
    tenant_id: Uuid,
    group_id: Uuid,
    group_name: &str,
    succeeded: usize,
    failed: usize,
    at: i64,
) -> AuditRecord {
    background_record(
        tenant_id,
        "Finish applying group based license to users",
        group_id,
        group_name,
        format!(
            "Users successfully assigned licenses: {succeeded}, Users for whom license assignment failed: {failed}."
        ),
        at,
    )
}

/// "Self-heal user license assignments": background processing re-evaluated a user in error
/// because a cause went away (seats bought or freed, a conflicting license removed, ...).
pub fn user_self_healed(
    tenant_id: Uuid,
    user_id: Uuid,
    user_principal_name: &str,
    healing: &licensd_engine::SelfHealing,
    at: i64,
) -> AuditRecord {
    let outcome = if healing.errors_cleared {
        "its license errors cleared"
    } else {
        "it still has license errors"
    };
    AuditRecord {
        category: "UserManagement".to_string(),
        operation_type: "Update".to_string(),
        target_type: "User".to_string(),
        modified_properties: vec![ModifiedProperty {
            display_name: "SelfHealingReason".to_string(),
            old_value: String::new(),
            new_value: healing.reason.as_str().to_string(),
        }],
        ..background_record(
            tenant_id,
            "Self-heal user license assignments",
            user_id,
            user_principal_name,
            format!(
                "Re-evaluated because {}; {outcome}.",
                healing.reason.description()
            ),
            at,
        )
    }
}

fn background_record(
    tenant_id: Uuid,
    activity: &str,
    group_id: Uuid,
    group_name: &str,
    reason: String,
    at: i64,
) -> AuditRecord {
    let caller = Caller::background(tenant_id);
    AuditRecord {
        audit_id: Uuid::new_v4(),
        activity_date_time: at,
        category: "GroupManagement".to_string(),
        activity: activity.to_string(),
        operation_type: "Assign".to_string(),
        result: "success".to_string(),
        result_reason: reason,
        actor_id: None,
        actor_name: caller.display_name,
        actor_role: String::new(),
        target_type: "Group".to_string(),
        target_id: Some(group_id),
        target_name: group_name.to_string(),
        modified_properties: Vec::new(),
        request_id: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changed_properties_are_reported() {
        let before = vec![
            ("UsageLocation", "US".to_string()),
            ("AccountEnabled", "true".to_string()),
        ];
        let after = vec![
            ("UsageLocation", "FR".to_string()),
            ("AccountEnabled", "true".to_string()),
        ];
        assert_eq!(
            modified(&before, &after),
            vec![ModifiedProperty {
                display_name: "UsageLocation".into(),
                old_value: "US".into(),
                new_value: "FR".into(),
            }]
        );
        // A creation: everything is new.
        assert_eq!(modified(&[], &after).len(), 2);
    }
}
