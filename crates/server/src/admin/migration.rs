//! `POST /licensd/v1/migrations/directToGroup`: move a product's direct assignments to a group
//! that assigns it. The report (the engine's coverage) says whose direct license the group
//! fully covers, who would lose plans and who is not a member; a dry run (the default) adds the
//! what-if of removing the covered ones; the real run removes them in batches (each queued
//! together for the group commit), stops at the first unexpected error, and proves afterwards
//! that no migrated user lost a plan.

use std::time::Instant;

use axum::Json;
use licensd_api_types::spend::{
    DirectToGroupReport, DirectToGroupRequest, MigrationBatch, MigrationUser, MigrationWhatIf,
};
use licensd_api_types::{ErrorCode, ErrorResponse};
use licensd_engine::diagnosis::InvolvedUser;
use licensd_engine::group_migration::{CoverageError, CoverageReport, NotCovered};
use licensd_engine::{PlanName, WhatIfOptions};

use super::diagnosis::what_if_error;
use crate::api::{ApiError, JsonBody, Tenant};

const DEFAULT_BATCH_SIZE: u32 = 500;
const MAX_BATCH_SIZE: u32 = 10_000;

fn user(user: &InvolvedUser, reason: Option<&str>, plans: &[PlanName]) -> MigrationUser {
    MigrationUser {
        user_id: user.user_id,
        user_principal_name: user.user_principal_name.clone(),
        reason: reason.map(str::to_string),
        plans: plans.iter().map(|plan| plan.service_plan_name.clone()).collect(),
    }
}

fn coverage_error(error: CoverageError) -> ApiError {
    match error {
        CoverageError::Unknown(error) => ApiError::from(error),
        CoverageError::GroupDoesNotAssign { .. } => ApiError::new(ErrorCode::InvalidValue, error.to_string()),
    }
}

fn report_of(
    request: &DirectToGroupRequest,
    dry_run: bool,
    coverage: &CoverageReport,
) -> DirectToGroupReport {
    DirectToGroupReport {
        group_id: request.group_id,
        sku_id: request.sku_id,
        dry_run,
        covered: coverage
            .covered
            .iter()
            .map(|covered| user(covered, None, &[]))
            .collect(),
        losing_plans: coverage
            .losing
            .iter()
            .map(|losing| match &losing.reason {
                NotCovered::FewerPlans(plans) => user(&losing.user, Some("fewerPlans"), plans),
                NotCovered::GroupAssignmentNotInEffect => {
                    user(&losing.user, Some("groupAssignmentNotInEffect"), &[])
                }
            })
            .collect(),
        not_in_group: coverage
            .not_in_group
            .iter()
            .map(|outside| user(outside, None, &[]))
            .collect(),
        what_if: None,
        batches: Vec::new(),
        removed: 0,
        stopped_by: None,
        users_who_lost_plans: Vec::new(),
    }
}

/// Move direct assignments to a group.
///
/// licensd extension: for a group and a product it assigns, which users' direct licenses the
/// group fully covers (same or more plans enabled, its assignment in effect), which would lose a
/// plan and which users are not members. `dryRun` (default true) adds the what-if of removing
/// the covered ones and changes nothing; `dryRun: false` removes them in batches of `batchSize`
/// (default 500), stopping at the first unexpected error, and lists any migrated user who lost a
/// plan (none, unless the tenant changed meanwhile). Each removal is an ordinary audited change.
#[utoipa::path(post, path = "/licensd/v1/migrations/directToGroup", tag = "licensd: spend",
    request_body = DirectToGroupRequest,
    responses(
        (status = 200, description = "The report, and what was done", body = DirectToGroupReport),
        (status = 400, description = "The group does not assign the product, or a bad batch size", body = ErrorResponse),
        (status = 404, description = "No such group or product", body = ErrorResponse),
    ))]
pub async fn direct_to_group(
    tenant: Tenant,
    JsonBody(request): JsonBody<DirectToGroupRequest>,
) -> Result<Json<DirectToGroupReport>, ApiError> {
    let dry_run = request.dry_run.unwrap_or(true);
    let batch_size = request.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
    if batch_size == 0 || batch_size > MAX_BATCH_SIZE {
        return Err(ApiError::new(
            ErrorCode::InvalidValue,
            format!("batchSize must be from 1 to {MAX_BATCH_SIZE}."),
        ));
    }
    let (group_id, sku_id) = (request.group_id, request.sku_id);
    let coverage = tenant
        .read(move |engine| {
            engine
                .direct_to_group_coverage(group_id, sku_id)
                .map_err(coverage_error)
        })
        .await?;
    let mut report = report_of(&request, dry_run, &coverage);
    let commands = coverage.removal_commands(sku_id);
    if dry_run {
        if !commands.is_empty() {
            let prediction = tenant
                .read(move |engine| {
                    engine
                        .what_if(
                            &commands,
                            licensd_runtime::tenants::now(),
                            WhatIfOptions { max_listed_users: 0 },
                        )
                        .map_err(what_if_error)
                })
                .await?;
            report.what_if = Some(MigrationWhatIf {
                changed_users: prediction.changed_users as u64,
                newly_broken_users: prediction.newly_broken_users as u64,
                users_with_errors_before: prediction.users_with_errors_before as u64,
                users_with_errors_after: prediction.users_with_errors_after as u64,
            });
        }
        return Ok(Json(report));
    }
    let users: Vec<InvolvedUser> = coverage.covered.clone();
    for (index, (chunk, batch_commands)) in users
        .chunks(batch_size as usize)
        .zip(commands.chunks(batch_size as usize))
        .enumerate()
    {
        let started = Instant::now();
        let ids: Vec<_> = chunk.iter().map(|user| user.user_id).collect();
        let before = tenant
            .read(move |engine| {
                ids.iter()
                    .map(|user_id| Ok((*user_id, engine.user_plans_in_effect(*user_id)?)))
                    .collect::<Result<Vec<_>, ApiError>>()
            })
            .await?;
        let results = tenant.execute_batch(batch_commands.to_vec()).await?;
        let mut removed = 0u32;
        let mut done = Vec::new();
        for (result, (user_id, plans)) in results.into_iter().zip(before) {
            match result {
                Ok(_) => {
                    removed += 1;
                    done.push((user_id, plans));
                }
                Err(error) if report.stopped_by.is_none() => {
                    report.stopped_by = Some(format!("{user_id}: {}", error.message));
                }
                Err(_) => {}
            }
        }
        let lost = tenant
            .read(move |engine| {
                done.iter()
                    .map(|(user_id, plans)| {
                        let lost = engine.plans_lost(*user_id, plans)?;
                        let name = engine.user_view(*user_id)?.user_principal_name;
                        Ok((*user_id, name, lost))
                    })
                    .collect::<Result<Vec<_>, ApiError>>()
            })
            .await?;
        for (user_id, user_principal_name, plans) in lost {
            if !plans.is_empty() {
                report.users_who_lost_plans.push(user(
                    &InvolvedUser {
                        user_id,
                        user_principal_name,
                    },
                    Some("lostPlans"),
                    &plans,
                ));
            }
        }
        report.removed += u64::from(removed);
        report.batches.push(MigrationBatch {
            index: index as u32,
            users: chunk.len() as u32,
            removed,
            duration_milliseconds: started.elapsed().as_millis() as u64,
        });
        tracing::info!(
            tenant = %tenant.id(), group = %group_id, sku = %sku_id, batch = index,
            removed = report.removed, of = users.len(), "direct-to-group migration progress"
        );
        if report.stopped_by.is_some() {
            break;
        }
    }
    Ok(Json(report))
}
