//! A group's dynamic membership (`/groups/{id}/rule`) and the membership rule editor the new
//! group page shares: the rule in Entra ID's language, checked as it is typed (the parser's
//! message shown next to the rule with the character it points at marked), the processing state
//! (`On` / `Paused`) with pause and resume, and for every change the what-if's prediction before
//! anything is saved — who would join and leave, the licenses they would gain and lose, seats per
//! product and new errors — then **Save**, which runs `SetMembershipRule` like the API (audited as
//! "Update group" with the old and new rule). The membership type changes here too, each previewed
//! first: **Convert to static group** (the members stay, as assigned members: nothing changes now)
//! and, for an assigned group, **Make dynamic** with the rule editor.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{Command, Engine, MembershipRule, RuleError, RuleProcessingState, Uuid, WhatIfReport};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::format::count;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::group::{existing_group, group_header_with, membership_summary, GroupTab};
use super::layout::{self, html_response, message, Done, MessageKind, Section};
use super::names::ProductNames;

/// The users listed by name in a membership preview at most (the counts cover everyone).
const LISTED_USERS: usize = 20;

/// The examples shown under the rule field.
const EXAMPLES: [&str; 3] = [
    "user.department -eq \"Sales\"",
    "user.department -in [\"Sales\", \"Marketing\"] -and user.country -eq \"FR\"",
    "user.jobTitle -startsWith \"Engineer\" -and -not (user.userType -eq \"Guest\")",
];

/// The rule field: a textarea checked as it is typed (htmx asks `/groups/rule-check`), the
/// examples, and the result of the check next to it.
pub fn rule_field(text: &str, error: Option<&RuleError>) -> Markup {
    html! {
        div.rule-field {
            label for="membership-rule" { "Membership rule" }
            textarea id="membership-rule" name="membership_rule" rows="3" spellcheck="false"
                autocomplete="off" aria-describedby="rule-check rule-help" aria-invalid=[error.map(|_| "true")]
                hx-get="/groups/rule-check" hx-trigger="input changed delay:400ms"
                hx-target="#rule-check" hx-swap="outerHTML" { (text) }
            (rule_check(text, error))
            details id="rule-help" {
                summary { "The rule language (Entra ID's, for users)" }
                p {
                    "Properties such as " code { "user.department" } ", " code { "user.jobTitle" } ", "
                    code { "user.companyName" } ", " code { "user.country" } ", " code { "user.usageLocation" } ", "
                    code { "user.extensionAttribute1" } "–" code { "15" } "; operators "
                    code { "-eq -ne -startsWith -contains -match -in -notIn" } " and their negations, "
                    code { "-and -or -not" } ", parentheses, " code { "null" } ". Comparisons ignore case. Examples:"
                }
                ul { @for example in EXAMPLES { li { code { (example) } } } }
            }
        }
    }
}

/// The result of checking a rule: valid (and what it reads), or the parser's message with the
/// character it points at marked.
fn rule_check(text: &str, error: Option<&RuleError>) -> Markup {
    html! {
        div id="rule-check" class="rule-check" aria-live="polite" {
            @if let Some(error) = error {
                (rule_error(text, error))
            } @else if !text.trim().is_empty() {
                p.muted data-testid="rule-valid" { "✓ The rule is valid." }
            }
        }
    }
}

/// The parser's message, with the rule shown and the character it names marked.
pub fn rule_error(text: &str, error: &RuleError) -> Markup {
    // The position counts characters from 1; past the end means "the rule ends here".
    let index = error.position.saturating_sub(1);
    let before: String = text.chars().take(index).collect();
    let at: String = text.chars().skip(index).take(1).collect();
    let after: String = text.chars().skip(index + 1).collect();
    html! {
        div.message.error role="alert" data-testid="rule-error" {
            strong { "Invalid rule at character " (error.position) ": " }
            (error.message)
            span.visually-hidden { "The rule, with the character the message points at marked:" }
            pre.rule-text {
                (before)
                mark.rule-position { @if at.is_empty() { "␣" } @else { (at) } }
                (after)
            }
        }
    }
}

/// `GET /groups/rule-check?membership_rule=`: the check of a rule being typed (an htmx fragment;
/// no tenant data is read, only the parser).
pub async fn check(_context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let text = query.first("membership_rule").unwrap_or("").to_string();
    let error = parse_rule(&text).err();
    Ok(html_response(StatusCode::OK, rule_check(&text, error.as_ref())))
}

/// Parses a typed rule; an empty one is refused at character 1.
pub fn parse_rule(text: &str) -> Result<MembershipRule, RuleError> {
    if text.trim().is_empty() {
        return Err(RuleError {
            position: 1,
            message: "a dynamic group needs a rule, such as user.department -eq \"Sales\"".to_string(),
        });
    }
    MembershipRule::parse(text)
}

/// A processing state from a form (`On` when absent).
pub fn processing_state(fields: &FormFields) -> Result<RuleProcessingState, ConsoleError> {
    match fields.first("processing_state") {
        None | Some("") => Ok(RuleProcessingState::On),
        Some(text) => RuleProcessingState::parse(text).ok_or_else(|| {
            ConsoleError::bad_request(format!(
                "'{text}' is not a processing state: choose On or Paused."
            ))
        }),
    }
}

/// A user listed in a preview: id and user principal name.
type Listed = (Uuid, String);

/// What a membership change would do, in the console's words.
pub struct MembershipPreview {
    pub joined: usize,
    pub left: usize,
    pub joined_users: Vec<Listed>,
    pub left_users: Vec<Listed>,
    /// Listed users whose licenses change: products gained and lost (names).
    pub licenses: Vec<(Listed, Vec<String>, Vec<String>)>,
    pub licenses_truncated: bool,
    /// Seats per product and new errors: the what-if's panel.
    pub seats_and_errors: Markup,
}

fn listed(engine: &Engine, ids: &[Uuid]) -> Vec<Listed> {
    ids.iter()
        .take(LISTED_USERS)
        .map(|id| {
            let name = engine
                .user_view(*id)
                .map(|user| user.user_principal_name)
                .unwrap_or_else(|_| id.to_string());
            (*id, name)
        })
        .collect()
}

/// Builds the preview of `report` for `group_id`. `matching` gives the members of a group the
/// changes create (the what-if compares groups that exist before and after).
pub fn membership_preview(
    engine: &Engine,
    report: &WhatIfReport,
    group_id: Uuid,
    matching: Option<&[Uuid]>,
) -> MembershipPreview {
    let names = ProductNames::of(engine);
    let (joined, left, joined_ids, left_ids) = match report
        .memberships
        .iter()
        .find(|prediction| prediction.group_id == group_id)
    {
        Some(prediction) => (
            prediction.joined,
            prediction.left,
            prediction.joined_users.clone(),
            prediction.left_users.clone(),
        ),
        None => match matching {
            Some(users) => (users.len(), 0, users.to_vec(), Vec::new()),
            None => (0, 0, Vec::new(), Vec::new()),
        },
    };
    let licenses = report
        .users
        .iter()
        .filter(|user| !user.seats_consumed.is_empty() || !user.seats_freed.is_empty())
        .map(|user| {
            let product_names = |ids: &[Uuid]| ids.iter().map(|id| names.product_name(*id)).collect();
            (
                (user.user_id, user.user_principal_name.clone()),
                product_names(&user.seats_consumed),
                product_names(&user.seats_freed),
            )
        })
        .collect();
    MembershipPreview {
        joined,
        left,
        joined_users: listed(engine, &joined_ids),
        left_users: listed(engine, &left_ids),
        licenses,
        licenses_truncated: report.users_truncated,
        seats_and_errors: super::preview::panel(&names, report),
    }
}

fn user_links(users: &[Listed], total: usize) -> Markup {
    html! {
        @for (index, (id, name)) in users.iter().enumerate() {
            @if index > 0 { ", " }
            a href={ "/users/" (id) } { (name) }
        }
        @if total > users.len() { " and " (count(total - users.len())) " more" }
    }
}

/// The membership part of a preview, followed by the what-if's seats and errors.
pub fn membership_panel(preview: &MembershipPreview) -> Markup {
    html! {
        section.preview data-testid="membership-preview" aria-labelledby="membership-preview-title" {
            h3 id="membership-preview-title" { "Preview: who joins and leaves, and their licenses" }
            (message(MessageKind::Information, html! {
                p {
                    strong data-field="joined" { (count(preview.joined)) } " users would join, "
                    strong data-field="left" { (count(preview.left)) } " would leave."
                }
                @if !preview.joined_users.is_empty() { p data-testid="joined-users" { "Join: " (user_links(&preview.joined_users, preview.joined)) } }
                @if !preview.left_users.is_empty() { p data-testid="left-users" { "Leave: " (user_links(&preview.left_users, preview.left)) } }
                @if preview.licenses.is_empty() {
                    p data-testid="license-changes" { "No one would gain or lose a license." }
                } @else {
                    ul data-testid="license-changes" {
                        @for ((id, name), gained, lost) in &preview.licenses {
                            li {
                                a href={ "/users/" (id) } { (name) } ": "
                                @if !gained.is_empty() { "gains " (gained.join(", ")) }
                                @if !gained.is_empty() && !lost.is_empty() { "; " }
                                @if !lost.is_empty() { "loses " (lost.join(", ")) }
                            }
                        }
                        @if preview.licenses_truncated { li { "… and more users (the counts below cover everyone)." } }
                    }
                }
            }))
            (preview.seats_and_errors)
        }
    }
}

/// What the rule page shows besides the group.
#[derive(Default)]
struct RuleForm {
    /// The rule in the editor (typed, or the current one).
    text: Option<String>,
    state: Option<RuleProcessingState>,
    error: Option<RuleError>,
    refusal: Option<ConsoleError>,
    /// The preview of the typed change, with the button that saves it.
    preview: Option<Markup>,
    /// The preview of converting the group to an assigned (static) one, with the button that
    /// converts it.
    convert_preview: Option<Markup>,
}

/// `GET /groups/{id}/rule`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    render(&context, group_id, RuleForm::default(), query.first("done")).await
}

async fn render(
    context: &ConsoleContext,
    group_id: Uuid,
    form: RuleForm,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let (tenant_name, group, summary) = context
        .read(move |engine| {
            Ok((
                engine.settings().display_name.clone(),
                existing_group(engine, group_id)?,
                membership_summary(engine, group_id)?,
            ))
        })
        .await?;
    let may_change = context.may(ConsoleAction::ChangeMembers);
    let action = format!("/groups/{group_id}/rule");
    let text = form
        .text
        .clone()
        .or_else(|| summary.as_ref().map(|summary| summary.rule.clone()))
        .unwrap_or_default();
    let state = form
        .state
        .or(summary.as_ref().map(|summary| summary.processing_state))
        .unwrap_or_default();
    let content = html! {
        (group_header_with(&group, GroupTab::Rule, summary.as_ref()))
        (result)
        @if let Some(refusal) = &form.refusal { (refusal.message_box()) }
        @match &summary {
            Some(summary) => {
                h2 { "Membership rule" }
                pre.rule-text data-testid="current-rule" { (summary.rule) }
                p data-testid="processing-state" {
                    "Processing: "
                    @match summary.processing_state {
                        RuleProcessingState::On => { span.badge.ok { "On" } " — members follow the rule as users' properties change." },
                        RuleProcessingState::Paused => { span.badge.warning { "Paused" } " — the members stay as they are until the rule is turned on again." },
                    }
                }
                p.muted { "Members of a dynamic group are chosen by its rule: they cannot be added or removed by hand." }
                @if may_change {
                    @let (label, next) = match summary.processing_state {
                        RuleProcessingState::On => ("Preview pausing the rule", RuleProcessingState::Paused),
                        RuleProcessingState::Paused => ("Preview resuming the rule", RuleProcessingState::On),
                    };
                    form.inline method="post" action=(action) {
                        input type="hidden" name="membership_rule" value=(summary.rule);
                        input type="hidden" name="processing_state" value=(next.as_str());
                        button.secondary type="submit" name="confirmed" value="no" { (label) }
                    }
                    h2 id="membership-type" { "Membership type" }
                    @match &form.convert_preview {
                        Some(preview) => {
                            section data-testid="convert-to-static" aria-labelledby="convert-title" {
                                h3 id="convert-title" { "Convert " (group.display_name) " to a static group?" }
                                (preview)
                                form.inline method="post" action=(action) {
                                    input type="hidden" name="membership" value="assigned";
                                    div.actions {
                                        button type="submit" name="confirmed" value="yes" { "Convert to static group" }
                                        a href=(action) { "Cancel" }
                                    }
                                }
                            }
                        }
                        None => {
                            p { "Converting to a static (assigned) group keeps the current members, and their licenses, as assigned members; "
                                "from then on members are added and removed by hand and attribute changes no longer move anyone. "
                                "The rule is not kept." }
                            form.inline method="post" action=(action) {
                                input type="hidden" name="membership" value="assigned";
                                button.secondary type="submit" name="confirmed" value="no" { "Preview converting to a static group" }
                            }
                        }
                    }
                }
            },
            None => {
                h2 { "Membership: assigned" }
                p { "Members of this group are added and removed by hand. Give it a rule to make it a dynamic group: "
                    "its members become the users the rule selects (the preview shows who would join and leave)." }
            },
        }
        @if may_change {
            h2 id="edit-rule" { @if summary.is_some() { "Edit the rule" } @else { "Make it a dynamic group" } }
            form.stacked method="post" action=(action) {
                (rule_field(&text, form.error.as_ref()))
                label for="processing-state" { "Processing" }
                select id="processing-state" name="processing_state" {
                    option value="On" selected[state == RuleProcessingState::On] { "On: members follow the rule" }
                    option value="Paused" selected[state == RuleProcessingState::Paused] { "Paused: members stay as they are" }
                }
                @match &form.preview {
                    Some(preview) => {
                        (preview)
                        div.actions {
                            button type="submit" name="confirmed" value="yes" {
                                @if summary.is_some() { "Save the rule" } @else { "Make dynamic" }
                            }
                            button.secondary type="submit" name="confirmed" value="no" { "Preview again" }
                            a href=(action) { "Cancel" }
                        }
                    }
                    None => {
                        div.actions { button type="submit" name="confirmed" value="no" { "Preview the change" } }
                    }
                }
            }
        }
    };
    let status = if form.error.is_some() || form.refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("Membership rule · {}", group.display_name);
    Ok(html_response(
        status,
        layout::document(&title, Some(Section::Groups), Some(&tenant_name), content),
    ))
}

/// `POST /groups/{id}/rule`: previews a new rule or processing state (`confirmed=no`), or saves it
/// (`confirmed=yes`).
pub async fn save(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    match fields.first("membership") {
        None | Some("" | "dynamic") => {}
        Some("assigned") => return convert_to_static(context, group_id, &fields).await,
        Some(other) => {
            return Err(ConsoleError::bad_request(format!(
                "'{other}' is not a membership type: choose assigned or dynamic."
            )))
        }
    }
    let text = fields.first("membership_rule").unwrap_or("").trim().to_string();
    let state = processing_state(&fields)?;
    let confirmed = fields.first("confirmed") == Some("yes");
    let mut form = RuleForm {
        text: Some(text.clone()),
        state: Some(state),
        ..RuleForm::default()
    };
    if let Err(error) = parse_rule(&text) {
        form.error = Some(error);
        return render(&context, group_id, form, None).await;
    }
    let command = Command::SetMembershipRule {
        group_id,
        rule: Some(text),
        processing_state: state,
    };
    if confirmed {
        let was_dynamic = context
            .read(move |engine| Ok(membership_summary(engine, group_id)?.is_some()))
            .await?;
        let done = if was_dynamic {
            Done::RuleSaved
        } else {
            Done::GroupMadeDynamic
        };
        return match context.execute(command).await {
            Ok(_) => Ok(see_other(&done.on(&format!("/groups/{group_id}/rule")))),
            Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
                form.refusal = Some(ConsoleError::Refused(refusal));
                render(&context, group_id, form, None).await
            }
            Err(error) => Err(error),
        };
    }
    let commands = vec![command];
    let preview = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            let report = super::preview::predict(engine, &commands)?;
            Ok(membership_panel(&membership_preview(
                engine, &report, group_id, None,
            )))
        })
        .await;
    match preview {
        Ok(preview) => form.preview = Some(preview),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            form.refusal = Some(ConsoleError::Refused(refusal))
        }
        Err(error) => return Err(error),
    }
    render(&context, group_id, form, None).await
}

/// `POST /groups/{id}/rule` with `membership=assigned`: previews converting a dynamic group to
/// an assigned (static) one (`confirmed=no`: the members stay, so nothing changes now), or
/// converts it (`confirmed=yes`), as Graph's `PATCH` with `groupTypes: []` does.
async fn convert_to_static(
    context: ConsoleContext,
    group_id: Uuid,
    fields: &FormFields,
) -> Result<Response, ConsoleError> {
    let command = Command::SetMembershipRule {
        group_id,
        rule: None,
        processing_state: RuleProcessingState::On,
    };
    let dynamic = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            Ok(membership_summary(engine, group_id)?.is_some())
        })
        .await?;
    if !dynamic {
        return Err(ConsoleError::bad_request(
            "The group's members are already assigned: it is not a dynamic group.",
        ));
    }
    if fields.first("confirmed") == Some("yes") {
        return match context.execute(command).await {
            Ok(_) => Ok(see_other(
                &Done::GroupMadeStatic.on(&format!("/groups/{group_id}")),
            )),
            Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
                let form = RuleForm {
                    refusal: Some(ConsoleError::Refused(refusal)),
                    ..RuleForm::default()
                };
                render(&context, group_id, form, None).await
            }
            Err(error) => Err(error),
        };
    }
    let commands = vec![command];
    let preview = context
        .read(move |engine| {
            let report = super::preview::predict(engine, &commands)?;
            let members = existing_group(engine, group_id)?.member_count;
            let preview = membership_preview(engine, &report, group_id, None);
            let unchanged = preview.joined == 0 && preview.left == 0 && report.changed_users == 0;
            Ok(html! {
                (message(MessageKind::Information, html! {
                    p data-testid="convert-effect" {
                        @if unchanged {
                            strong { "Nothing changes now." } " "
                        }
                        "The " (count(members)) " current members stay, as assigned members, with their licenses. "
                        "Afterwards, members are added and removed by hand; attribute changes no longer move anyone in or out, "
                        "and the rule is not kept (making the group dynamic again needs a rule)."
                    }
                }))
                (membership_panel(&preview))
            })
        })
        .await?;
    let form = RuleForm {
        convert_preview: Some(preview),
        ..RuleForm::default()
    };
    render(&context, group_id, form, None).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_marks_the_character_it_names() {
        let text = "user.department -eq";
        let error = parse_rule(text).expect_err("incomplete");
        let markup = rule_error(text, &error).into_string();
        assert!(
            markup.contains(&format!("character {}", error.position)),
            "{markup}"
        );
        assert!(markup.contains("<mark class=\"rule-position\">"), "{markup}");
        let empty = parse_rule("  ").expect_err("empty");
        assert_eq!(empty.position, 1);
    }
}
