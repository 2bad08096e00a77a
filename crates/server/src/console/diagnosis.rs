//! The diagnosis of a user (`/users/{id}/diagnosis`): each error with the rule, plans, other
//! assignment or users, location and seats involved, and the fixes that clear it, each with its
//! predicted effect (who is fixed, who would break, seats) and an **Apply** button that runs
//! exactly that fix's commands, through the same commands as every other change.

use axum::response::Response;
use licensd_api_types::time::format_date_time;
use licensd_engine::diagnosis::{DiagnosisError, Fix, Involvement, UserDiagnosis};
use licensd_engine::{AssignmentSource, DiagnosisOptions, RequeueReason, SelfHealing, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters};
use super::layout::{self, state_badge, Section};
use licensd_runtime::tenants::now;

fn diagnose(engine: &licensd_engine::Engine, user_id: Uuid) -> Result<UserDiagnosis, ConsoleError> {
    engine
        .diagnose_user(user_id, now(), DiagnosisOptions::default())
        .map_err(|DiagnosisError::Unknown(_)| ConsoleError::not_found("user"))
}

fn involvement_list(involvement: &Involvement) -> Markup {
    let names = |plans: &[licensd_engine::PlanName]| {
        plans
            .iter()
            .map(|plan| plan.display_name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    html! {
        dl {
            dt { "Rule" } dd { code { (involvement.rule.as_str()) } }
            @if !involvement.plans.is_empty() { dt { "Plans" } dd { (names(&involvement.plans)) } }
            @if !involvement.other_plans.is_empty() { dt { "Other plans" } dd { (names(&involvement.other_plans)) } }
            @if let Some(other) = &involvement.other_assignment {
                dt { "Other assignment" }
                dd {
                    (other.sku_part_number) " — "
                    @match (&other.group_display_name, other.source) {
                        (Some(name), AssignmentSource::Group(group_id)) => { "group " a href=(format!("/groups/{group_id}")) { (name) } }
                        _ => { "direct" }
                    }
                }
            }
            @if !involvement.other_users.is_empty() {
                dt { "Other users" }
                dd { @for user in &involvement.other_users { a href=(format!("/users/{}", user.user_id)) { (user.user_principal_name) } " " } }
            }
            @if let Some(address) = &involvement.proxy_address { dt { "Proxy address" } dd { (address) } }
            @if let Some(location) = &involvement.usage_location {
                dt { "Usage location" }
                dd { (location.as_str()) @if involvement.usage_location_inherited_from_tenant { " (the tenant's default)" } }
            }
            @if let Some(seats) = &involvement.seats {
                dt { "Seats" }
                dd { (seats.prepaid_units) " purchased, " (seats.consumed_units) " assigned, " (seats.waiting_users) " waiting" }
            }
        }
    }
}

fn fix_block(user_id: Uuid, sku_id: Uuid, source: AssignmentSource, fix: &Fix) -> Markup {
    html! {
        div class="fix" {
            p {
                strong { (fix.description) }
                @if fix.redundant_license { " " span class="badge" { "redundant" } }
            }
            @if let Some(prediction) = &fix.prediction {
                p {
                    "Predicted: " (prediction.changed_users) " user(s) change — "
                    (prediction.fixed_users) " fixed, " (prediction.newly_broken_users) " newly broken, "
                    (prediction.new_error_users) " with a new error."
                }
                @if prediction.breaks_users() {
                    p class="message warning" { "This fix would give other users an error: see the users below." }
                }
                ul {
                    @for sku in &prediction.skus {
                        li { (sku.sku_part_number) ": assigned " (sku.consumed_units_before) " → " (sku.consumed_units_after)
                             ", waiting " (sku.waiting_users_before) " → " (sku.waiting_users_after) }
                    }
                    @for user in &prediction.users {
                        li { (user.effect.as_str()) ": " a href=(format!("/users/{}", user.user_id)) { (user.user_principal_name) } }
                    }
                    @if prediction.users_truncated { li { "…" } }
                }
            }
            form method="post" action=(format!("/users/{user_id}/diagnosis/apply")) {
                input type="hidden" name="sku_id" value=(sku_id);
                input type="hidden" name="group_id" value=(source.assigned_by_group().map(|id| id.to_string()).unwrap_or_default());
                input type="hidden" name="kind" value=(fix.kind.as_str());
                button type="submit" { "Apply" }
            }
        }
    }
}

/// The user's self-healing history: why it is queued by itself, and its last automatic
/// re-evaluation ("Re-evaluated automatically on … because seats of Office 365 E3 became
/// available").
pub fn self_healing_notice(pending: Option<&RequeueReason>, last: Option<&SelfHealing>) -> Markup {
    html! {
        @if let Some(reason) = pending {
            p class="self-healing" data-reason=(reason.as_str()) {
                "Queued to be re-evaluated automatically because " (reason.description()) "."
            }
        }
        @if let Some(healing) = last {
            p class="self-healing" data-reason=(healing.reason.as_str()) {
                "Re-evaluated automatically on " (format_date_time(healing.at.0)) " because "
                (healing.reason.description())
                @if healing.errors_cleared { "; its errors cleared." } @else { "; it is still in error." }
            }
        }
    }
}

/// The diagnosis panel of a user (also shown on the user page).
pub fn diagnosis_panel(diagnosis: &UserDiagnosis) -> Markup {
    html! {
        (self_healing_notice(diagnosis.pending_self_healing.as_ref(), diagnosis.last_self_healing.as_ref()))
        @if diagnosis.queued { p { "The user is queued for processing: the states may still change by themselves." } }
        @if diagnosis.problems.is_empty() { p { "No license errors." } }
        @for problem in &diagnosis.problems {
            section class="problem" {
                h3 {
                    (problem.sku_part_number) " from "
                    @match &problem.group_display_name { Some(name) => { "group " (name) }, None => { "a direct assignment" } }
                    " " (state_badge(problem.state)) " " code { (problem.error.as_str()) }
                }
                p { (problem.explanation) }
                (involvement_list(&problem.involvement))
                @if problem.fixes.is_empty() { p { "No fix found that clears this error." } }
                @for fix in &problem.fixes { (fix_block(diagnosis.user_id, problem.sku_id, problem.source, fix)) }
            }
        }
    }
}

/// `GET /users/{id}/diagnosis`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    let user_id = parse_id(&user_id, IdKind::User)?;
    let (tenant_name, diagnosis) = context
        .read(move |engine| Ok((engine.settings().display_name.clone(), diagnose(engine, user_id)?)))
        .await?;
    let content = html! {
        h1 { "Diagnosis · " a href=(format!("/users/{user_id}")) { (diagnosis.user_principal_name) } }
        p { "Each error with what it involves and the fixes that clear it, with their predicted effect. "
            "Apply runs exactly the fix's changes, then the user's licenses are processed again." }
        (diagnosis_panel(&diagnosis))
    };
    Ok(layout::page(
        &format!("Diagnosis · {}", diagnosis.user_principal_name),
        Section::Users,
        &tenant_name,
        content,
    ))
}

/// `POST /users/{id}/diagnosis/apply`: diagnoses again, finds the fix of the named kind for the
/// named error, and applies its commands in order (each checked and audited as any change).
pub async fn apply(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    let user_id = parse_id(&user_id, IdKind::User)?;
    let sku_id = parse_id(form.required("sku_id", "product")?, IdKind::Product)?;
    let group_id = match form.first("group_id").map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_id(text, IdKind::Group)?),
    };
    let kind = form.required("kind", "fix")?.to_string();
    let commands = context
        .read(move |engine| {
            let diagnosis = diagnose(engine, user_id)?;
            let problem = diagnosis
                .problems
                .iter()
                .find(|problem| problem.sku_id == sku_id && problem.source.assigned_by_group() == group_id)
                .ok_or_else(|| ConsoleError::bad_request("This error is gone: nothing to fix."))?;
            problem
                .fixes
                .iter()
                .find(|fix| fix.kind.as_str() == kind)
                .map(|fix| fix.commands.clone())
                .ok_or_else(|| {
                    ConsoleError::bad_request(format!(
                        "The fix {kind} no longer applies to this error: look at the diagnosis again."
                    ))
                })
        })
        .await?;
    for command in commands {
        context.execute(command).await?;
    }
    Ok(see_other(&format!("/users/{user_id}/diagnosis")))
}
