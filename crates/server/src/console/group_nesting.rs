//! A group's nesting (`/groups/{id}/nesting`): the groups nested in it and the groups it is a
//! member of (directly and through other groups), adding a group as a member — previewed with
//! the what-if first, a cycle refused with the path that would close it — and removing one; and
//! the tenant's **transitive licensing** setting, explained, with a preview before it is switched.

use std::collections::{BTreeMap, VecDeque};

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{Command, CommandError, Engine, GroupView, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::format::count;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::group::{existing_group, group_header_with, membership_summary, GroupTab, MembershipSummary};
use super::layout::{self, html_response, message, Done, MessageKind, Section};
use super::names::{group_name, ProductNames};

/// Group names offered as suggestions in the "add a group" field at most.
const SUGGESTED_GROUPS: usize = 500;

/// One group in a list: id, name, whether it is dynamic, direct members.
struct GroupRow {
    id: Uuid,
    name: String,
    dynamic: bool,
    members: usize,
}

struct NestingData {
    tenant_name: String,
    group: GroupView,
    dynamic: Option<MembershipSummary>,
    member_groups: Vec<GroupRow>,
    member_of: Vec<GroupRow>,
    /// Groups above it through other groups (not direct).
    indirect_member_of: Vec<GroupRow>,
    /// Users who are in it only through nested groups.
    users_through_nesting: usize,
    transitive_licensing: bool,
    suggestions: Vec<String>,
}

fn row(engine: &Engine, group_id: Uuid) -> GroupRow {
    let view = engine.group_view(group_id).ok();
    GroupRow {
        id: group_id,
        name: group_name(engine, group_id),
        dynamic: engine
            .dynamic_membership(group_id)
            .is_ok_and(|dynamic| dynamic.is_some()),
        members: view.map_or(0, |view| view.member_count),
    }
}

fn nesting_data(engine: &Engine, group_id: Uuid) -> Result<NestingData, ConsoleError> {
    let group = existing_group(engine, group_id)?;
    let member_groups = engine.member_groups(group_id)?;
    let member_of = engine.group_member_of(group_id)?;
    let indirect: Vec<Uuid> = engine
        .group_transitive_member_of(group_id)?
        .into_iter()
        .filter(|id| !member_of.contains(id))
        .collect();
    let direct_users = engine.group_members(group_id)?.len();
    let all_users = engine.transitive_member_users(group_id)?.len();
    let suggestions = engine
        .group_ids()
        .into_iter()
        .filter(|id| *id != group_id && !member_groups.contains(id))
        .take(SUGGESTED_GROUPS)
        .map(|id| group_name(engine, id))
        .collect();
    Ok(NestingData {
        tenant_name: engine.settings().display_name.clone(),
        dynamic: membership_summary(engine, group_id)?,
        member_groups: member_groups.iter().map(|id| row(engine, *id)).collect(),
        member_of: member_of.iter().map(|id| row(engine, *id)).collect(),
        indirect_member_of: indirect.iter().map(|id| row(engine, *id)).collect(),
        users_through_nesting: all_users.saturating_sub(direct_users),
        transitive_licensing: engine.settings().transitive_licensing,
        suggestions,
        group,
    })
}

/// What the page shows besides the data: a refusal, or a preview waiting for confirmation.
#[derive(Default)]
struct Pending {
    refusal: Option<Markup>,
    /// What was typed in the "add a group" field.
    typed: Option<String>,
    /// A nesting preview: the group to add and the prediction.
    add_preview: Option<(Uuid, String, Markup)>,
    /// A transitive licensing preview: the new value and the prediction.
    setting_preview: Option<(bool, Markup)>,
}

/// `GET /groups/{id}/nesting`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    render(&context, group_id, Pending::default(), query.first("done")).await
}

fn kind_badge(dynamic: bool) -> Markup {
    html! { @if dynamic { span.badge.muted { "Dynamic" } } @else { span.badge.muted { "Assigned" } } }
}

async fn render(
    context: &ConsoleContext,
    group_id: Uuid,
    pending: Pending,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let data = context.read(move |engine| nesting_data(engine, group_id)).await?;
    let group = &data.group;
    let may_change = context.may(ConsoleAction::ChangeMembers);
    let may_settings = context.may(ConsoleAction::ChangeTenantSettings);
    let path = format!("/groups/{group_id}/nesting");
    let content = html! {
        (group_header_with(group, GroupTab::Nesting, data.dynamic.as_ref()))
        (result)
        @if let Some(refusal) = &pending.refusal { (refusal) }
        h2 { "Groups in this group" }
        @if data.member_groups.is_empty() {
            p.muted data-testid="member-groups" { "No group is nested in this one." }
        } @else {
            table data-testid="member-groups" {
                thead { tr {
                    th scope="col" { "Group" }
                    th scope="col" { "Membership" }
                    th scope="col" class="number" { "Direct members" }
                    th scope="col" { span.muted { "Actions" } }
                } }
                tbody {
                    @for member in &data.member_groups {
                        tr {
                            th scope="row" { a href={ "/groups/" (member.id) } { (member.name) } }
                            td { (kind_badge(member.dynamic)) }
                            td.number { (count(member.members)) }
                            td {
                                @if may_change {
                                    form.inline method="post" action={ (path) "/" (member.id) "/remove" }
                                        data-confirm={ "Take " (member.name) " out of " (group.display_name) "?"
                                            @if data.transitive_licensing { " Its users lose the licenses they receive through " (group.display_name) "." } } {
                                        button.danger type="submit" { "Remove" span.visually-hidden { " " (member.name) " from this group" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if data.users_through_nesting > 0 {
            p data-testid="users-through-nesting" {
                strong { (count(data.users_through_nesting)) } " users are members only through nested groups: "
                @if data.transitive_licensing { "they receive this group's products (transitive licensing is on)." }
                @else { "they do not receive this group's products (transitive licensing is off)." }
            }
        }
        @if may_change {
            @match &pending.add_preview {
                Some((member_id, member_name, preview)) => {
                    h3 { "Add " (member_name) " to " (group.display_name) }
                    (preview)
                    form.inline method="post" action=(path) {
                        input type="hidden" name="group" value=(member_id);
                        div.actions {
                            button type="submit" name="confirmed" value="yes" { "Add the group" }
                            a href=(path) { "Cancel" }
                        }
                    }
                }
                None => {
                    form.search method="post" action=(path) {
                        label for="add-group" { "Add a group as a member (name or id)" }
                        input id="add-group" type="text" name="group" required list="group-choices" autocomplete="off"
                            value=[pending.typed.as_deref()];
                        datalist id="group-choices" { @for name in &data.suggestions { option value=(name) {} } }
                        button type="submit" name="confirmed" value="no" { "Preview adding it" }
                    }
                }
            }
        }
        h2 { "Groups this group is a member of" }
        @if data.member_of.is_empty() && data.indirect_member_of.is_empty() {
            p.muted data-testid="member-of" { "This group is not a member of any group." }
        } @else {
            ul data-testid="member-of" {
                @for parent in &data.member_of {
                    li { a href={ "/groups/" (parent.id) } { (parent.name) } " " (kind_badge(parent.dynamic)) " — directly" }
                }
                @for parent in &data.indirect_member_of {
                    li { a href={ "/groups/" (parent.id) } { (parent.name) } " " (kind_badge(parent.dynamic)) " — through other groups" }
                }
            }
        }
        h2 id="transitive-licensing" { "Transitive licensing (tenant setting)" }
        p data-testid="transitive-licensing" {
            "Transitive licensing is "
            @if data.transitive_licensing { span.badge.ok { "On" } } @else { span.badge.muted { "Off" } }
            " for the whole tenant."
        }
        p {
            "Off (the default, as in Entra ID): only a group's " strong { "direct" } " members receive its products. "
            "On: members of every group nested in a licensed group, at any depth, receive its products too; "
            "each of their assignments names the path it came through (such as “via Engineering → All Staff”), "
            "and a user reached through several paths still holds one seat per product."
        }
        @if may_settings {
            @match &pending.setting_preview {
                Some((enabled, preview)) => {
                    (preview)
                    form.inline method="post" action={ (path) "/transitive-licensing" } {
                        input type="hidden" name="enabled" value=(if *enabled { "on" } else { "off" });
                        div.actions {
                            button type="submit" name="confirmed" value="yes" {
                                @if *enabled { "Turn transitive licensing on" } @else { "Turn transitive licensing off" }
                            }
                            a href=(path) { "Cancel" }
                        }
                    }
                }
                None => {
                    form.inline method="post" action={ (path) "/transitive-licensing" } {
                        input type="hidden" name="enabled" value=(if data.transitive_licensing { "off" } else { "on" });
                        button.secondary type="submit" name="confirmed" value="no" {
                            @if data.transitive_licensing { "Preview turning it off" } @else { "Preview turning it on" }
                        }
                    }
                }
            }
        }
    };
    let status = if pending.refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("Nested groups · {}", group.display_name);
    Ok(html_response(
        status,
        layout::document(&title, Some(Section::Groups), Some(&data.tenant_name), content),
    ))
}

/// The group a typed name or id names: by id, else by display name (ignoring case) when one
/// group has it.
fn find_group(engine: &Engine, typed: &str) -> Result<Uuid, ConsoleError> {
    if let Ok(id) = Uuid::try_parse(typed) {
        if engine.group_view(id).is_ok() {
            return Ok(id);
        }
    }
    let matches: Vec<Uuid> = engine
        .group_ids()
        .into_iter()
        .filter(|id| {
            engine
                .group_view(*id)
                .is_ok_and(|group| group.display_name.eq_ignore_ascii_case(typed))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(ConsoleError::not_found(format!("A group named '{typed}'"))),
        _ => Err(ConsoleError::bad_request(format!(
            "{} groups are named '{typed}': give the id of the one to add.",
            matches.len()
        ))),
    }
}

/// The chain of groups from `from` down to `to` through nesting (`from` first), if any.
fn nesting_chain(engine: &Engine, from: Uuid, to: Uuid) -> Option<Vec<Uuid>> {
    let mut came_from: BTreeMap<Uuid, Uuid> = BTreeMap::new();
    let mut queue = VecDeque::from([from]);
    while let Some(group) = queue.pop_front() {
        if group == to {
            let mut chain = vec![to];
            let mut at = to;
            while let Some(previous) = came_from.get(&at) {
                chain.push(*previous);
                at = *previous;
            }
            chain.reverse();
            return Some(chain);
        }
        for child in engine.member_groups(group).unwrap_or_default() {
            if child != from && !came_from.contains_key(&child) {
                came_from.insert(child, group);
                queue.push_back(child);
            }
        }
    }
    None
}

/// A cycle refusal in words: which groups, and the nesting that would close the cycle.
fn cycle_message(engine: &Engine, group_id: Uuid, member_group_id: Uuid) -> Markup {
    let parent = group_name(engine, group_id);
    let child = group_name(engine, member_group_id);
    let chain = nesting_chain(engine, member_group_id, group_id).map(|chain| {
        chain
            .iter()
            .map(|id| group_name(engine, *id))
            .collect::<Vec<_>>()
            .join(" ⊃ ")
    });
    message(
        MessageKind::Error,
        html! {
            p data-testid="nesting-cycle" {
                strong { "The change was refused: it would form a cycle. " }
                @if group_id == member_group_id {
                    "A group cannot be a member of itself."
                } @else {
                    (child) " cannot become a member of " (parent) ": " (parent) " is already inside " (child)
                    @if let Some(chain) = &chain { " (" (chain) ")" }
                    ", and a group cannot contain itself, directly or through other groups. Nothing was changed."
                }
            }
        },
    )
}

/// A refusal of a nesting change, as a message box.
fn refusal_box(engine: &Engine, error: &ConsoleError) -> Markup {
    match error {
        ConsoleError::Refused(CommandError::NestingCycle {
            group_id,
            member_group_id,
        }) => cycle_message(engine, *group_id, *member_group_id),
        ConsoleError::Refused(CommandError::AlreadyNested {
            group_id,
            member_group_id,
        }) => message(
            MessageKind::Error,
            html! {
                strong { "The change was refused. " }
                (group_name(engine, *member_group_id)) " is already a member of " (group_name(engine, *group_id)) "."
            },
        ),
        other => other.message_box(),
    }
}

/// `POST /groups/{id}/nesting`: previews (`confirmed=no`) or adds (`confirmed=yes`) the group
/// named by `group` as a member.
pub async fn add(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let typed = fields.required("group", "group")?.to_string();
    let confirmed = fields.first("confirmed") == Some("yes");
    let lookup = typed.clone();
    let found = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            Ok(find_group(engine, &lookup))
        })
        .await?;
    let member_group_id = match found {
        Ok(id) => id,
        Err(refusal) => {
            let pending = Pending {
                refusal: Some(refusal.message_box()),
                typed: Some(typed),
                ..Pending::default()
            };
            return render(&context, group_id, pending, None).await;
        }
    };
    let command = Command::AddGroupMemberGroup {
        group_id,
        member_group_id,
    };
    let outcome = if confirmed {
        context.execute(command).await.map(|_| None)
    } else {
        let commands = vec![command];
        context
            .read(move |engine| {
                let report = super::preview::predict(engine, &commands)?;
                Ok((
                    group_name(engine, member_group_id),
                    super::preview::panel(&ProductNames::of(engine), &report),
                ))
            })
            .await
            .map(Some)
    };
    match outcome {
        Ok(None) => Ok(see_other(
            &Done::GroupNested.on(&format!("/groups/{group_id}/nesting")),
        )),
        Ok(Some((name, preview))) => {
            let pending = Pending {
                add_preview: Some((member_group_id, name, preview)),
                ..Pending::default()
            };
            render(&context, group_id, pending, None).await
        }
        Err(error @ ConsoleError::Refused(_)) => {
            let refusal = context
                .read(move |engine| Ok(refusal_box(engine, &error)))
                .await?;
            let pending = Pending {
                refusal: Some(refusal),
                typed: Some(typed),
                ..Pending::default()
            };
            render(&context, group_id, pending, None).await
        }
        Err(error) => Err(error),
    }
}

/// `POST /groups/{id}/nesting/{member}/remove`.
pub async fn remove(
    context: ConsoleContext,
    PathParameters((group_id, member_group_id)): PathParameters<(String, String)>,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let member_group_id = parse_id(&member_group_id, IdKind::Group)?;
    context
        .execute(Command::RemoveGroupMemberGroup {
            group_id,
            member_group_id,
        })
        .await?;
    Ok(see_other(
        &Done::GroupUnnested.on(&format!("/groups/{group_id}/nesting")),
    ))
}

/// `POST /groups/{id}/nesting/transitive-licensing`: previews (`confirmed=no`) or saves
/// (`confirmed=yes`) the tenant's transitive licensing setting (`enabled=on|off`).
pub async fn transitive_licensing(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeTenantSettings)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let enabled = match fields.first("enabled") {
        Some("on") => true,
        Some("off") => false,
        _ => return Err(ConsoleError::bad_request("Choose on or off (enabled).")),
    };
    let command = Command::SetTransitiveLicensing { enabled };
    if fields.first("confirmed") == Some("yes") {
        context.execute(command).await?;
        return Ok(see_other(
            &Done::TransitiveLicensingSaved.on(&format!("/groups/{group_id}/nesting")),
        ));
    }
    let commands = vec![command];
    let preview = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            let report = super::preview::predict(engine, &commands)?;
            Ok(super::preview::panel(&ProductNames::of(engine), &report))
        })
        .await?;
    let pending = Pending {
        setting_preview: Some((enabled, preview)),
        ..Pending::default()
    };
    render(&context, group_id, pending, None).await
}
