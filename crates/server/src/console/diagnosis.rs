//! The diagnosis of a user (`/users/{id}/diagnosis`): each error with the rule, plans, other
//! assignment or users, location and seats involved, and the fixes that clear it, each with its
//! predicted effect (who is fixed, who would break, seats) and an **Apply** button that runs
//! exactly that fix's commands, through the same commands as every other change.

use axum::response::Response;
use licensd_engine::diagnosis::{DiagnosisError, Fix, Involvement, UserDiagnosis};
use licensd_engine::{AssignmentSource, DiagnosisOptions, RequeueReason, SelfHealing, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::format::{count, country, rule_name, time};
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::layout::{self, state_badge, Done, Section};
use super::names::ProductNames;
use super::processing::change_result;
use licensd_runtime::tenants::now;

/// The fixes the engine offers for each error of a user (no predictions: quick), by product and
/// group — the same fixes Diagnosis lists, for the user page.
pub fn user_fixes(engine: &licensd_engine::Engine, user_id: Uuid) -> Vec<(Uuid, Option<Uuid>, Vec<Fix>)> {
    let options = DiagnosisOptions {
        predict: false,
        ..DiagnosisOptions::default()
    };
    engine
        .diagnose_user(user_id, now(), options)
        .map(|diagnosis| {
            diagnosis
                .problems
                .into_iter()
                .map(|problem| (problem.sku_id, problem.source.assigned_by_group(), problem.fixes))
                .collect()
        })
        .unwrap_or_default()
}

fn diagnose(engine: &licensd_engine::Engine, user_id: Uuid) -> Result<UserDiagnosis, ConsoleError> {
    engine
        .diagnose_user(user_id, now(), DiagnosisOptions::default())
        .map_err(|DiagnosisError::Unknown(_)| ConsoleError::not_found("user"))
}

fn involvement_list(products: &ProductNames, involvement: &Involvement) -> Markup {
    let names = |plans: &[licensd_engine::PlanName]| {
        plans
            .iter()
            .map(|plan| plan.display_name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    html! {
        dl {
            dt { "Rule" } dd { (rule_name(&involvement.rule)) }
            @if !involvement.plans.is_empty() { dt { "Plans" } dd { (names(&involvement.plans)) } }
            @if !involvement.other_plans.is_empty() { dt { "Other plans" } dd { (names(&involvement.other_plans)) } }
            @if let Some(other) = &involvement.other_assignment {
                dt { "Other assignment" }
                dd {
                    (products.product_name(other.sku_id)) " " span.muted { "(" (other.sku_part_number) ")" } " — "
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
                dd { (country(location.as_str())) @if involvement.usage_location_inherited_from_tenant { " (the tenant's default)" } }
            }
            @if let Some(seats) = &involvement.seats {
                dt { "Seats" }
                dd { (count(seats.prepaid_units)) " purchased, " (count(seats.consumed_units)) " assigned, " (count(seats.waiting_users)) " users waiting" }
            }
        }
    }
}

/// The form that applies one fix of one error (Diagnosis, the user page), after a confirmation.
/// `back_to_user`: return to the user page afterwards rather than to Diagnosis.
pub fn apply_form(
    user_id: Uuid,
    sku_id: Uuid,
    source: AssignmentSource,
    fix: &Fix,
    names: &ProductNames,
    back_to_user: bool,
) -> Markup {
    html! {
        form.inline method="post" action=(format!("/users/{user_id}/diagnosis/apply"))
            data-confirm={ "Apply this fix? " (names.humanize(&fix.description)) } {
            input type="hidden" name="sku_id" value=(sku_id);
            input type="hidden" name="group_id" value=(source.assigned_by_group().map(|id| id.to_string()).unwrap_or_default());
            input type="hidden" name="kind" value=(fix.kind.as_str());
            @if back_to_user { input type="hidden" name="return_to" value="user"; }
            button type="submit" data-fix=(fix.kind.as_str()) { "Apply" span.visually-hidden { ": " (names.humanize(&fix.description)) } }
        }
    }
}

fn fix_block(
    names: &ProductNames,
    user_id: Uuid,
    sku_id: Uuid,
    source: AssignmentSource,
    fix: &Fix,
) -> Markup {
    // Reprocessing changes nothing by itself: a prediction of it says nothing useful.
    let prediction = fix
        .prediction
        .as_ref()
        .filter(|_| fix.kind != licensd_engine::diagnosis::FixKind::Reprocess);
    html! {
        div class="fix" {
            p {
                strong { (names.humanize(&fix.description)) }
                @if fix.redundant_license { " " span class="badge" { "redundant" } }
            }
            @if let Some(prediction) = prediction {
                p {
                    "Predicted: " (count(prediction.changed_users)) " user(s) change — "
                    (count(prediction.fixed_users)) " fixed, " (count(prediction.newly_broken_users)) " newly broken, "
                    (count(prediction.new_error_users)) " with a new error."
                }
                @if prediction.breaks_users() {
                    p class="message warning" { "This fix would give other users an error: see the users below." }
                }
                ul {
                    @for sku in &prediction.skus {
                        li { (names.product_name(sku.sku_id)) ": assigned " (count(sku.consumed_units_before)) " → " (count(sku.consumed_units_after))
                             ", users waiting " (count(sku.waiting_users_before)) " → " (count(sku.waiting_users_after)) }
                    }
                    @for user in &prediction.users {
                        li { (effect_name(user.effect)) ": " a href=(format!("/users/{}", user.user_id)) { (user.user_principal_name) } }
                    }
                    @if prediction.users_truncated { li { "…" } }
                }
            }
            (apply_form(user_id, sku_id, source, fix, names, false))
        }
    }
}

/// The user's self-healing history: why it is queued by itself, and its last automatic
/// re-evaluation ("Re-evaluated automatically on … because seats of Office 365 E3 became
/// available").
///
/// `in_error_now` is whether the user has a license error now: a re-evaluation that left the
/// user in error is reported as past when the error has since been fixed.
pub fn self_healing_notice(
    pending: Option<&RequeueReason>,
    last: Option<&SelfHealing>,
    in_error_now: bool,
) -> Markup {
    html! {
        @if let Some(reason) = pending {
            p class="self-healing" data-reason=(reason.as_str()) {
                "Queued to be re-evaluated automatically because " (reason.description()) "."
            }
        }
        @if let Some(healing) = last {
            p class="self-healing" data-reason=(healing.reason.as_str()) {
                "Re-evaluated automatically on " (time(healing.at.0)) " because "
                (healing.reason.description())
                @if healing.errors_cleared { "; its errors cleared." }
                @else if in_error_now { "; it is still in error." }
                @else { "; it was still in error then, and has no license error now." }
            }
        }
    }
}

/// The diagnosis panel of a user (also shown on the user page).
pub fn diagnosis_panel(names: &ProductNames, diagnosis: &UserDiagnosis) -> Markup {
    html! {
        (self_healing_notice(diagnosis.pending_self_healing.as_ref(), diagnosis.last_self_healing.as_ref(), !diagnosis.problems.is_empty()))
        @if diagnosis.queued { p { "The user is queued for processing: the states may still change by themselves." } }
        @if diagnosis.problems.is_empty() { p data-testid="no-errors" { "No license errors." } }
        @for problem in &diagnosis.problems {
            section class="problem" data-error=(problem.error.as_str()) {
                h2 {
                    (names.product_name(problem.sku_id)) " " span.muted { "(" (problem.sku_part_number) ")" } " from "
                    @match &problem.group_display_name { Some(name) => { "group " (name) }, None => { "a direct assignment" } }
                    " " (state_badge(problem.state)) " " span.badge { (super::names::error_title(problem.error)) }
                }
                p { (names.humanize(&problem.explanation)) }
                (involvement_list(names, &problem.involvement))
                @if problem.fixes.is_empty() { p { "No fix found that clears this error." } }
                @for fix in &problem.fixes { (fix_block(names, diagnosis.user_id, problem.sku_id, problem.source, fix)) }
            }
        }
    }
}

/// What a fix would do to a user, in words.
fn effect_name(effect: licensd_engine::whatif::UserEffect) -> &'static str {
    use licensd_engine::whatif::UserEffect;
    match effect {
        UserEffect::Fixed => "Fixed",
        UserEffect::NewlyBroken => "Newly in error",
        UserEffect::NewError => "A different error",
        UserEffect::StillInError => "Still in error",
        UserEffect::Changed => "Licenses change",
    }
}

/// `GET /users/{id}/diagnosis`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let user_id = parse_id(&user_id, IdKind::User)?;
    let result = change_result(&context, query.first("done")).await?;
    let (tenant_name, names, diagnosis) = context
        .read(move |engine| {
            Ok((
                engine.settings().display_name.clone(),
                ProductNames::of(engine),
                diagnose(engine, user_id)?,
            ))
        })
        .await?;
    let content = html! {
        h1 { "Diagnosis · " a href=(format!("/users/{user_id}")) { (diagnosis.user_principal_name) } }
        (result)
        p { "Each error with what it involves and the fixes that clear it, with their predicted effect. "
            "Apply runs exactly the fix's changes, then the user's licenses are processed again." }
        (diagnosis_panel(&names, &diagnosis))
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
    let back = match form.first("return_to") {
        Some("user") => format!("/users/{user_id}"),
        _ => format!("/users/{user_id}/diagnosis"),
    };
    Ok(see_other(&Done::FixApplied.on(&back)))
}
