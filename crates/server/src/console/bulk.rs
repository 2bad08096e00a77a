//! Acting on many users in error at once, from a group's users in error
//! (`/groups/{id}/errors`) or the tenant's (`/users?filter=errors`): reprocess the selected
//! users, or apply one of Diagnosis's fixes to each of them. A fix is previewed first — the
//! change each user would get and the engine's prediction of all of them together (users fixed
//! or broken, seats) — and applied only from the preview's confirmation.

use axum::response::Response;
use licensd_engine::diagnosis::FixKind;
use licensd_engine::{Command, DiagnosisOptions, Engine, Uuid};
use licensd_runtime::tenants::now;
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::format::count;
use super::forms::{parse_id, see_other, FormFields, IdKind};
use super::layout::{self, Done, Section};
use super::names::ProductNames;

/// The fixes offered for many users at once (each is looked up again per user).
pub const BULK_FIXES: [(FixKind, &str); 8] = [
    (FixKind::Reprocess, "Reprocess (the cause is already gone)"),
    (
        FixKind::RemoveConflictingDirectLicense,
        "Remove the conflicting direct license",
    ),
    (
        FixKind::DisableConflictingPlansInOtherAssignment,
        "Disable the conflicting plans in the other assignment",
    ),
    (
        FixKind::KeepPrerequisiteDirectly,
        "Keep the prerequisite through a direct license",
    ),
    (FixKind::SetUsageLocation, "Correct the usage location"),
    (FixKind::RemoveFromGroup, "Remove the user from the group"),
    (
        FixKind::FreeSeatsOfDisabledAccounts,
        "Free the seats of disabled accounts",
    ),
    (
        FixKind::RemoveProxyAddressFromUser,
        "Remove the shared proxy address from the user",
    ),
];

/// Users listed by name in a bulk preview at most.
const LISTED: usize = 50;

/// The form (`form_id`, posting to `action`) and the controls above a list of users in error:
/// what to do with the selected users. The checkboxes of the rows name the form.
pub fn controls(form_id: &str, action: &str) -> Markup {
    let select_id = format!("{form_id}-action");
    html! {
        form id=(form_id) method="post" action=(action) {}
        div.actions.bulk {
            label for=(select_id) { "For the selected users" }
            select id=(select_id) name="action" form=(form_id) {
                option value="reprocess" { "Reprocess them" }
                @for (kind, label) in BULK_FIXES {
                    option value=(kind.as_str()) { "Apply the fix: " (label) }
                }
            }
            button type="submit" form=(form_id) { "Apply to selected" }
            span.muted { " A fix is previewed before it is applied." }
        }
    }
}

/// The fix of `kind` Diagnosis offers a user (for an error from group `scope` when given): its
/// description and commands; `None` when the user has no such fix.
fn fix_of(
    engine: &Engine,
    user_id: Uuid,
    kind: FixKind,
    scope: Option<Uuid>,
) -> Option<(String, Vec<Command>)> {
    let options = DiagnosisOptions {
        predict: false,
        ..DiagnosisOptions::default()
    };
    let diagnosis = engine.diagnose_user(user_id, now(), options).ok()?;
    diagnosis
        .problems
        .into_iter()
        .filter(|problem| {
            scope.map_or(true, |group_id| {
                problem.source.assigned_by_group() == Some(group_id)
            })
        })
        .flat_map(|problem| problem.fixes)
        .find(|fix| fix.kind == kind)
        .map(|fix| (fix.description, fix.commands))
}

/// One user of a bulk preview.
struct PreviewRow {
    user_id: Uuid,
    user_principal_name: String,
    /// The fix's description; `None` when the user has no such fix (skipped).
    fix: Option<String>,
}

/// `POST` of the bulk form: `action` (`reprocess` or a fix kind), `user_id` repeated, and
/// `confirmed=yes` once the fix's preview was shown. `scope` limits fixes to errors from one
/// group; `back` is the list to return to.
pub async fn act_on_selected(
    context: &ConsoleContext,
    form: &FormFields,
    scope: Option<Uuid>,
    action_path: &str,
    back: &str,
    section: Section,
) -> Result<Response, ConsoleError> {
    let action = form.required("action", "action")?.to_string();
    let mut user_ids = Vec::new();
    for text in form.all("user_id") {
        let user_id = parse_id(text, IdKind::User)?;
        if !user_ids.contains(&user_id) {
            user_ids.push(user_id);
        }
    }
    if user_ids.is_empty() {
        return Err(ConsoleError::bad_request("Select at least one user."));
    }
    if action == "reprocess" {
        context.require(ConsoleAction::Reprocess)?;
        let known = user_ids.clone();
        context
            .read(move |engine| {
                for user_id in known {
                    engine
                        .user_view(user_id)
                        .map_err(|_| ConsoleError::not_found(format!("The user {user_id}")))?;
                }
                Ok(())
            })
            .await?;
        for user_id in user_ids {
            context.execute(Command::ReprocessUser { user_id }).await?;
        }
        return Ok(see_other(&Done::ReprocessQueuedForMany.on(back)));
    }
    context.require(ConsoleAction::ChangeLicenses)?;
    let kind = BULK_FIXES
        .iter()
        .map(|(kind, _)| *kind)
        .find(|kind| kind.as_str() == action)
        .ok_or_else(|| {
            ConsoleError::bad_request(format!(
                "'{action}' is not a fix that can be applied to many users."
            ))
        })?;
    if form.first("confirmed") == Some("yes") {
        for user_id in user_ids {
            // Looked up again after each user: an earlier fix may have changed what this one needs.
            let commands = context
                .read(move |engine| Ok(fix_of(engine, user_id, kind, scope).map(|(_, commands)| commands)))
                .await?
                .unwrap_or_default();
            for command in commands {
                context.execute(command).await?;
            }
        }
        return Ok(see_other(&Done::FixAppliedToMany.on(back)));
    }
    // The preview: each user's fix as Diagnosis offers it now, and all of them predicted together.
    let selected = user_ids.clone();
    let (tenant_name, rows, prediction) = context
        .read(move |engine| {
            let mut rows = Vec::with_capacity(selected.len());
            let mut commands: Vec<Command> = Vec::new();
            for user_id in selected {
                let user = engine
                    .user_view(user_id)
                    .map_err(|_| ConsoleError::not_found(format!("The user {user_id}")))?;
                let fix = fix_of(engine, user_id, kind, scope);
                if let Some((_, fix_commands)) = &fix {
                    for command in fix_commands {
                        // A shared change (a group's plans) is made once.
                        if !commands.contains(command) {
                            commands.push(command.clone());
                        }
                    }
                }
                rows.push(PreviewRow {
                    user_id,
                    user_principal_name: user.user_principal_name,
                    fix: fix.map(|(description, _)| description),
                });
            }
            let names = ProductNames::of(engine);
            // Product names instead of part numbers in the fixes' descriptions.
            for row in &mut rows {
                if let Some(description) = &mut row.fix {
                    *description = names.humanize(description);
                }
            }
            let prediction = if commands.is_empty() {
                None
            } else {
                let report = super::preview::predict(engine, &commands)?;
                Some(super::preview::panel(&names, &report))
            };
            Ok((engine.settings().display_name.clone(), rows, prediction))
        })
        .await?;
    let label = BULK_FIXES
        .iter()
        .find(|(candidate, _)| *candidate == kind)
        .map(|(_, label)| *label)
        .unwrap_or("");
    let with_fix = rows.iter().filter(|row| row.fix.is_some()).count();
    let content = html! {
        h1 { "Apply a fix to " (count(rows.len())) " users" }
        p { "The fix: " strong { (label) } ". "
            strong data-field="with-fix" { (count(with_fix)) } " of the selected users have it; "
            "the others are left as they are. Nothing is changed until you apply it." }
        h2 { "What it would do" }
        @if let Some(prediction) = &prediction { (prediction) }
        @else { (layout::message(layout::MessageKind::Warning, html! { p { "None of the selected users has this fix: there is nothing to apply." } })) }
        h2 { "The change for each user" }
        div.table-scroll {
            table data-testid="bulk-preview" {
                thead { tr { th scope="col" { "User" } th scope="col" { "What the fix does" } } }
                tbody {
                    @for row in rows.iter().take(LISTED) {
                        tr {
                            th scope="row" { a href={ "/users/" (row.user_id) } { (row.user_principal_name) } }
                            td {
                                @match &row.fix {
                                    Some(description) => (description),
                                    None => span.muted { "No such fix for this user: skipped." },
                                }
                            }
                        }
                    }
                }
            }
        }
        @if rows.len() > LISTED { p.muted { "And " (count(rows.len() - LISTED)) " more." } }
        form method="post" action=(action_path) data-confirm={ "Apply the fix to " (with_fix) " users?" } {
            input type="hidden" name="action" value=(kind.as_str());
            input type="hidden" name="confirmed" value="yes";
            @for row in &rows {
                input type="hidden" name="user_id" value=(row.user_id);
            }
            div.actions {
                @if with_fix > 0 {
                    button type="submit" { "Apply to " (count(with_fix)) " users" }
                }
                a.button.secondary href=(back) { "Cancel" }
            }
        }
    };
    Ok(layout::page(
        "Apply a fix to many users",
        section,
        &tenant_name,
        content,
    ))
}
