//! `/licensd/v1/users/{id}/diagnosis` and `/licensd/v1/groups/{id}/diagnosis`: a user's errors
//! (or a group's members in error, grouped by cause) explained, each with the fixes that clear
//! it and their predicted effect; plus the conversions between the wire's [`Change`]s and the
//! engine's commands, and of the engine's what-if reports, shared by `whatif` and `advisor`.

use axum::Json;
use licensd_api_types::admin::ServicePlan;
use licensd_api_types::diagnosis::{
    CauseGroup, Change, Fix, GroupDiagnosis, GroupPrediction, InvolvedAssignment, InvolvedUser, Involvement,
    MembershipChangePrediction, PlanConflict, PredictedError, PredictedLicenseState, Problem, RequeueReason,
    SeatFigures, SelfHealing, SkuPrediction, UserDiagnosis, UserPrediction, WhatIfResponse,
};
use licensd_api_types::graph::AssignedLicense as WireLicense;
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::diagnosis as engine_diagnosis;
use licensd_engine::whatif as engine_whatif;
use licensd_engine::{
    AssignedLicense, Command, CountryCode, DiagnosisOptions, Engine, LicenseAssignmentState, PlanName,
    ProxyAddress, RuleProcessingState, UserChanges, Uuid, WhatIfError, WhatIfOptions,
};

use crate::api::{resolve_user, ApiError, PathParameters, Tenant};
use licensd_runtime::tenants::now;

// ----- changes --------------------------------------------------------------------------------

fn engine_license(license: &WireLicense) -> AssignedLicense {
    AssignedLicense {
        sku_id: license.sku_id,
        disabled_plans: license.disabled_plans.clone(),
    }
}

fn wire_license(license: &AssignedLicense) -> WireLicense {
    WireLicense {
        disabled_plans: license.disabled_plans.clone(),
        sku_id: license.sku_id,
        odata_type: None,
    }
}

/// The engine command of a wire change; bad values (a location that is not a country code, a
/// malformed proxy address) are refused with the engine's validation error.
pub fn command_of(change: &Change) -> Result<Command, ApiError> {
    Ok(match change {
        Change::AddGroupMember { group_id, user_id } => Command::AddGroupMember {
            group_id: *group_id,
            user_id: *user_id,
        },
        Change::RemoveGroupMember { group_id, user_id } => Command::RemoveGroupMember {
            group_id: *group_id,
            user_id: *user_id,
        },
        Change::AssignUserLicenses {
            user_id,
            add_licenses,
            remove_licenses,
        } => Command::AssignUserLicenses {
            user_id: *user_id,
            add_licenses: add_licenses.iter().map(engine_license).collect(),
            remove_licenses: remove_licenses.clone(),
        },
        Change::AssignGroupLicenses {
            group_id,
            add_licenses,
            remove_licenses,
        } => Command::AssignGroupLicenses {
            group_id: *group_id,
            add_licenses: add_licenses.iter().map(engine_license).collect(),
            remove_licenses: remove_licenses.clone(),
        },
        Change::SetPrepaidUnits {
            sku_id,
            prepaid_units,
        } => Command::SetPrepaidUnits {
            sku_id: *sku_id,
            prepaid_units: *prepaid_units,
        },
        Change::UpdateUser {
            user_id,
            usage_location,
            proxy_addresses,
            account_enabled,
        } => Command::UpdateUser {
            user_id: *user_id,
            changes: UserChanges {
                usage_location: match usage_location {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(text)) => Some(Some(CountryCode::parse(text)?)),
                },
                proxy_addresses: proxy_addresses
                    .as_ref()
                    .map(|addresses| {
                        addresses
                            .iter()
                            .map(|address| ProxyAddress::parse(address))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .transpose()?,
                account_enabled: *account_enabled,
                ..Default::default()
            },
        },
        Change::DeleteUser { user_id } => Command::DeleteUser { user_id: *user_id },
        Change::SetDefaultUsageLocation { usage_location } => Command::SetDefaultUsageLocation {
            usage_location: usage_location.as_deref().map(CountryCode::parse).transpose()?,
        },
        Change::ReprocessUser { user_id } => Command::ReprocessUser { user_id: *user_id },
        Change::ReprocessGroup { group_id } => Command::ReprocessGroup { group_id: *group_id },
        Change::AddGroupMemberGroup {
            group_id,
            member_group_id,
        } => Command::AddGroupMemberGroup {
            group_id: *group_id,
            member_group_id: *member_group_id,
        },
        Change::RemoveGroupMemberGroup {
            group_id,
            member_group_id,
        } => Command::RemoveGroupMemberGroup {
            group_id: *group_id,
            member_group_id: *member_group_id,
        },
        Change::SetTransitiveLicensing { enabled } => Command::SetTransitiveLicensing { enabled: *enabled },
        Change::SetMembershipRule {
            group_id,
            membership_rule,
            membership_rule_processing_state,
        } => Command::SetMembershipRule {
            group_id: *group_id,
            rule: membership_rule.clone(),
            processing_state: match membership_rule_processing_state.as_deref() {
                None => RuleProcessingState::On,
                Some(text) => RuleProcessingState::parse(text).ok_or_else(|| {
                    ApiError::from(licensd_engine::CommandError::InvalidValue {
                        field: "membershipRuleProcessingState",
                        reason: format!("'{text}' is neither On nor Paused"),
                    })
                })?,
            },
        },
    })
}

/// The commands of a list of changes; an empty list is refused.
pub fn commands_of(changes: &[Change]) -> Result<Vec<Command>, ApiError> {
    if changes.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingParameters,
            "At least one change is needed in 'changes'.",
        ));
    }
    changes
        .iter()
        .enumerate()
        .map(|(index, change)| {
            command_of(change).map_err(|error| ApiError {
                message: format!("Change {index}: {}", error.message),
                ..error
            })
        })
        .collect()
}

/// The wire change of an engine command, for the commands fixes and the advisor produce.
pub fn change_of(command: &Command) -> Result<Change, ApiError> {
    Ok(match command {
        Command::AddGroupMember { group_id, user_id } => Change::AddGroupMember {
            group_id: *group_id,
            user_id: *user_id,
        },
        Command::RemoveGroupMember { group_id, user_id } => Change::RemoveGroupMember {
            group_id: *group_id,
            user_id: *user_id,
        },
        Command::AssignUserLicenses {
            user_id,
            add_licenses,
            remove_licenses,
        } => Change::AssignUserLicenses {
            user_id: *user_id,
            add_licenses: add_licenses.iter().map(wire_license).collect(),
            remove_licenses: remove_licenses.clone(),
        },
        Command::AssignGroupLicenses {
            group_id,
            add_licenses,
            remove_licenses,
        } => Change::AssignGroupLicenses {
            group_id: *group_id,
            add_licenses: add_licenses.iter().map(wire_license).collect(),
            remove_licenses: remove_licenses.clone(),
        },
        Command::SetPrepaidUnits {
            sku_id,
            prepaid_units,
        } => Change::SetPrepaidUnits {
            sku_id: *sku_id,
            prepaid_units: *prepaid_units,
        },
        Command::UpdateUser { user_id, changes } => Change::UpdateUser {
            user_id: *user_id,
            usage_location: changes
                .usage_location
                .map(|location| location.map(|location| location.as_str().to_string())),
            proxy_addresses: changes.proxy_addresses.as_ref().map(|addresses| {
                addresses
                    .iter()
                    .map(|address| address.as_str().to_string())
                    .collect()
            }),
            account_enabled: changes.account_enabled,
        },
        Command::DeleteUser { user_id } => Change::DeleteUser { user_id: *user_id },
        Command::SetDefaultUsageLocation { usage_location } => Change::SetDefaultUsageLocation {
            usage_location: usage_location.map(|location| location.as_str().to_string()),
        },
        Command::ReprocessUser { user_id } => Change::ReprocessUser { user_id: *user_id },
        Command::ReprocessGroup { group_id } => Change::ReprocessGroup { group_id: *group_id },
        Command::AddGroupMemberGroup {
            group_id,
            member_group_id,
        } => Change::AddGroupMemberGroup {
            group_id: *group_id,
            member_group_id: *member_group_id,
        },
        Command::RemoveGroupMemberGroup {
            group_id,
            member_group_id,
        } => Change::RemoveGroupMemberGroup {
            group_id: *group_id,
            member_group_id: *member_group_id,
        },
        Command::SetTransitiveLicensing { enabled } => Change::SetTransitiveLicensing { enabled: *enabled },
        Command::SetMembershipRule {
            group_id,
            rule,
            processing_state,
        } => Change::SetMembershipRule {
            group_id: *group_id,
            membership_rule: rule.clone(),
            membership_rule_processing_state: Some(processing_state.as_str().to_string()),
        },
        other => {
            return Err(ApiError::internal(format!(
                "a proposed change uses the command {}, which has no wire form",
                other.name()
            )))
        }
    })
}

pub fn changes_of(commands: &[Command]) -> Result<Vec<Change>, ApiError> {
    commands.iter().map(change_of).collect()
}

/// A refused what-if as an API error naming the refused change.
pub fn what_if_error(error: WhatIfError) -> ApiError {
    match error {
        WhatIfError::NoChanges => ApiError::new(ErrorCode::MissingParameters, error.to_string()),
        WhatIfError::CommandRefused { index, error, .. } => {
            let refused = ApiError::from(*error);
            ApiError {
                message: format!("Change {index} would be refused: {}", refused.message),
                ..refused
            }
        }
    }
}

// ----- reports --------------------------------------------------------------------------------

fn wire_plan(plan: &PlanName) -> ServicePlan {
    ServicePlan {
        service_plan_id: plan.service_plan_id,
        service_plan_name: plan.service_plan_name.clone(),
        display_name: plan.display_name.clone(),
    }
}

fn wire_predicted_state(state: &LicenseAssignmentState) -> PredictedLicenseState {
    PredictedLicenseState {
        sku_id: state.sku_id,
        assigned_by_group: state.assigned_by_group,
        state: state.state.as_str().to_string(),
        error: state.error.map_or("None", |kind| kind.as_str()).to_string(),
        disabled_plans: state.disabled_plans.clone(),
        granted_plans: state.granted_plans.clone(),
    }
}

fn wire_errors(errors: &[engine_whatif::AssignmentError]) -> Vec<PredictedError> {
    errors
        .iter()
        .map(|error| PredictedError {
            sku_id: error.sku_id,
            assigned_by_group: error.source.assigned_by_group(),
            error: error.error.as_str().to_string(),
        })
        .collect()
}

pub fn wire_what_if(report: &engine_whatif::WhatIfReport) -> WhatIfResponse {
    WhatIfResponse {
        changes: report.commands as u64,
        evaluated_users: report.evaluated_users as u64,
        changed_users: report.changed_users as u64,
        fixed_users: report.fixed_users as u64,
        newly_broken_users: report.newly_broken_users as u64,
        new_error_users: report.new_error_users as u64,
        users_with_errors_before: report.users_with_errors_before as u64,
        users_with_errors_after: report.users_with_errors_after as u64,
        users: report
            .users
            .iter()
            .map(|user| UserPrediction {
                user_id: user.user_id,
                user_principal_name: user.user_principal_name.clone(),
                effect: user.effect.as_str().to_string(),
                errors_before: wire_errors(&user.errors_before),
                errors_after: wire_errors(&user.errors_after),
                seats_consumed: user.seats_consumed.clone(),
                seats_freed: user.seats_freed.clone(),
                states_before: user.states_before.iter().map(wire_predicted_state).collect(),
                states_after: user.states_after.iter().map(wire_predicted_state).collect(),
                deleted: user.deleted,
            })
            .collect(),
        users_truncated: report.users_truncated,
        skus: report
            .skus
            .iter()
            .map(|sku| SkuPrediction {
                sku_id: sku.sku_id,
                sku_part_number: sku.sku_part_number.clone(),
                prepaid_units_before: sku.prepaid_units_before,
                prepaid_units_after: sku.prepaid_units_after,
                consumed_units_before: sku.consumed_units_before,
                consumed_units_after: sku.consumed_units_after,
                waiting_users_before: sku.waiting_users_before as u64,
                waiting_users_after: sku.waiting_users_after as u64,
                users_consuming: sku.users_consuming as u64,
                users_freeing: sku.users_freeing as u64,
                fixed_users: sku.fixed_users as u64,
                newly_broken_users: sku.newly_broken_users as u64,
            })
            .collect(),
        groups: report
            .groups
            .iter()
            .map(|group| GroupPrediction {
                group_id: group.group_id,
                display_name: group.display_name.clone(),
                users_in_error_before: group.users_in_error_before as u64,
                users_in_error_after: group.users_in_error_after as u64,
                fixed_users: group.fixed_users as u64,
                newly_broken_users: group.newly_broken_users as u64,
            })
            .collect(),
        membership_changes: report
            .memberships
            .iter()
            .map(|change| MembershipChangePrediction {
                group_id: change.group_id,
                display_name: change.display_name.clone(),
                joined: change.joined as u64,
                left: change.left as u64,
                joined_users: change.joined_users.clone(),
                left_users: change.left_users.clone(),
            })
            .collect(),
    }
}

pub fn wire_user(user: &engine_diagnosis::InvolvedUser) -> InvolvedUser {
    InvolvedUser {
        id: user.user_id,
        user_principal_name: user.user_principal_name.clone(),
    }
}

fn wire_involvement(
    involvement: &engine_diagnosis::Involvement,
    detail: &licensd_engine::LicenseErrorDetail,
) -> Involvement {
    let conflicts = match detail {
        licensd_engine::LicenseErrorDetail::MutuallyExclusiveViolation { conflicts, .. } => conflicts
            .iter()
            .map(|conflict| PlanConflict {
                service_plan: wire_plan(&conflict.service_plan),
                conflicting_service_plan: wire_plan(&conflict.conflicting_service_plan),
                conflicting_sku_id: conflict.conflicting_sku_id,
                conflicting_assigned_by_group: conflict.conflicting_assignment.assigned_by_group(),
            })
            .collect(),
        _ => Vec::new(),
    };
    Involvement {
        conflicts,
        rule: involvement.rule.as_str().to_string(),
        plans: involvement.plans.iter().map(wire_plan).collect(),
        other_plans: involvement.other_plans.iter().map(wire_plan).collect(),
        other_assignment: involvement
            .other_assignment
            .as_ref()
            .map(|other| InvolvedAssignment {
                sku_id: other.sku_id,
                sku_part_number: other.sku_part_number.clone(),
                assigned_by_group: other.source.assigned_by_group(),
                group_display_name: other.group_display_name.clone(),
            }),
        other_users: involvement.other_users.iter().map(wire_user).collect(),
        proxy_address: involvement.proxy_address.clone(),
        usage_location: involvement
            .usage_location
            .map(|location| location.as_str().to_string()),
        usage_location_inherited_from_tenant: involvement.usage_location_inherited_from_tenant,
        seats: involvement.seats.map(|seats| SeatFigures {
            prepaid_units: seats.prepaid_units,
            consumed_units: seats.consumed_units,
            waiting_users: seats.waiting_users as u64,
        }),
    }
}

fn wire_fix(fix: &engine_diagnosis::Fix) -> Result<Fix, ApiError> {
    Ok(Fix {
        kind: fix.kind.as_str().to_string(),
        description: fix.description.clone(),
        redundant_license: fix.redundant_license,
        changes: changes_of(&fix.commands)?,
        covered_users: fix.covered_users as u64,
        cleared_users: fix.cleared_users.map(|count| count as u64),
        prediction: fix.prediction.as_ref().map(wire_what_if),
    })
}

fn wire_requeue_reason(reason: &licensd_engine::RequeueReason) -> RequeueReason {
    let (sku_id, group_id) = match reason {
        licensd_engine::RequeueReason::SeatsAvailable { sku_id, .. }
        | licensd_engine::RequeueReason::DirectLicenseRemoved { sku_id, .. } => (Some(*sku_id), None),
        licensd_engine::RequeueReason::GroupAssignmentChanged { group_id, .. } => (None, Some(*group_id)),
        licensd_engine::RequeueReason::UsageLocationChanged
        | licensd_engine::RequeueReason::ProxyAddressesChanged
        | licensd_engine::RequeueReason::ProxyAddressFreed => (None, None),
    };
    RequeueReason {
        reason: reason.as_str().to_string(),
        description: reason.description(),
        sku_id,
        group_id,
    }
}

pub fn wire_user_diagnosis(diagnosis: &engine_diagnosis::UserDiagnosis) -> Result<UserDiagnosis, ApiError> {
    Ok(UserDiagnosis {
        id: diagnosis.user_id,
        user_principal_name: diagnosis.user_principal_name.clone(),
        display_name: diagnosis.display_name.clone(),
        account_enabled: diagnosis.account_enabled,
        usage_location: diagnosis
            .usage_location
            .map(|location| location.as_str().to_string()),
        effective_usage_location: diagnosis
            .effective_usage_location
            .map(|location| location.as_str().to_string()),
        queued: diagnosis.queued,
        pending_self_healing: diagnosis.pending_self_healing.as_ref().map(wire_requeue_reason),
        last_self_healing: diagnosis.last_self_healing.as_ref().map(|healing| SelfHealing {
            evaluated_date_time: licensd_api_types::time::format_date_time(healing.at.0),
            reason: wire_requeue_reason(&healing.reason),
            errors_cleared: healing.errors_cleared,
        }),
        problems: diagnosis
            .problems
            .iter()
            .map(|problem| {
                Ok(Problem {
                    sku_id: problem.sku_id,
                    sku_part_number: problem.sku_part_number.clone(),
                    assigned_by_group: problem.source.assigned_by_group(),
                    group_display_name: problem.group_display_name.clone(),
                    licensed_through: problem.licensed_through.clone(),
                    state: problem.state.as_str().to_string(),
                    error: problem.error.as_str().to_string(),
                    explanation: problem.explanation.clone(),
                    involvement: wire_involvement(&problem.involvement, &problem.detail),
                    fixes: problem.fixes.iter().map(wire_fix).collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ApiError>>()?,
    })
}

pub fn wire_group_diagnosis(
    diagnosis: &engine_diagnosis::GroupDiagnosis,
) -> Result<GroupDiagnosis, ApiError> {
    Ok(GroupDiagnosis {
        id: diagnosis.group_id,
        display_name: diagnosis.display_name.clone(),
        users_in_error: diagnosis.users_in_error as u64,
        causes: diagnosis
            .causes
            .iter()
            .map(|cause| {
                Ok(CauseGroup {
                    sku_id: cause.sku_id,
                    sku_part_number: cause.sku_part_number.clone(),
                    error: cause.error.as_str().to_string(),
                    explanation: cause.explanation.clone(),
                    involvement: wire_involvement(&cause.involvement, &cause.detail),
                    user_count: cause.user_count as u64,
                    users: cause.users.iter().map(wire_user).collect(),
                    fixes: cause.fixes.iter().map(wire_fix).collect::<Result<_, _>>()?,
                })
            })
            .collect::<Result<_, ApiError>>()?,
    })
}

/// A group by id, else by exact display name (ignoring case) when exactly one group has it.
pub fn resolve_group(engine: &Engine, id_or_name: &str) -> Result<Uuid, ApiError> {
    if let Ok(group_id) = Uuid::try_parse(id_or_name) {
        engine.group_view(group_id)?;
        return Ok(group_id);
    }
    let matches: Vec<Uuid> = engine
        .group_ids()
        .into_iter()
        .filter(|group_id| {
            engine
                .group_view(*group_id)
                .is_ok_and(|view| view.display_name.eq_ignore_ascii_case(id_or_name))
        })
        .collect();
    match matches.as_slice() {
        [group_id] => Ok(*group_id),
        [] => Err(ApiError::not_found(id_or_name)),
        _ => Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!(
                "{} groups are named '{id_or_name}': use the group's id.",
                matches.len()
            ),
        )),
    }
}

/// Predictions list this many users per fix in diagnoses.
const USERS_LISTED_PER_FIX: usize = 20;

fn diagnosis_options() -> DiagnosisOptions {
    DiagnosisOptions {
        what_if: WhatIfOptions {
            max_listed_users: USERS_LISTED_PER_FIX,
        },
        ..DiagnosisOptions::default()
    }
}

/// Diagnose a user's license errors.
///
/// licensd extension: each error of the user with the rule, plans, other assignment or users,
/// location and seats involved, and the fixes that clear it — each a list of changes with its
/// predicted effect. Apply a fix with `POST /licensd/v1/changes`.
#[utoipa::path(get, path = "/licensd/v1/users/{id}/diagnosis", tag = "licensd: diagnosis",
    params(("id" = String, Path, description = "The user's id or userPrincipalName")),
    responses(
        (status = 200, description = "The diagnosis", body = UserDiagnosis),
        (status = 404, description = "No such user", body = ErrorResponse),
    ))]
pub async fn diagnose_user(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<UserDiagnosis>, ApiError> {
    let diagnosis = tenant
        .read(move |engine| {
            let user_id = resolve_user(engine, &id)?;
            let diagnosis = engine
                .diagnose_user(user_id, now(), diagnosis_options())
                .map_err(|engine_diagnosis::DiagnosisError::Unknown(error)| ApiError::from(error))?;
            wire_user_diagnosis(&diagnosis)
        })
        .await?;
    Ok(Json(diagnosis))
}

/// Diagnose a group's members in error.
///
/// licensd extension: the members in error grouped by cause (the most users first), each cause
/// explained with the fixes that clear it for its users and their predicted effect.
#[utoipa::path(get, path = "/licensd/v1/groups/{id}/diagnosis", tag = "licensd: diagnosis",
    params(("id" = String, Path, description = "The group's id, or its display name when unique")),
    responses(
        (status = 200, description = "The diagnosis", body = GroupDiagnosis),
        (status = 400, description = "Several groups have this name", body = ErrorResponse),
        (status = 404, description = "No such group", body = ErrorResponse),
    ))]
pub async fn diagnose_group(
    tenant: Tenant,
    PathParameters(id): PathParameters<String>,
) -> Result<Json<GroupDiagnosis>, ApiError> {
    let diagnosis = tenant
        .read(move |engine| {
            let group_id = resolve_group(engine, &id)?;
            let diagnosis = engine
                .diagnose_group(group_id, now(), diagnosis_options())
                .map_err(|engine_diagnosis::DiagnosisError::Unknown(error)| ApiError::from(error))?;
            wire_group_diagnosis(&diagnosis)
        })
        .await?;
    Ok(Json(diagnosis))
}
