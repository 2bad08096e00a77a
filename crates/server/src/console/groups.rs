//! The groups list (`/groups`): searchable by name or id, paged on the server, each group with
//! its products, processing state and a badge counting its users in error. `?filter=errors` is
//! the portal's list of groups with errors, where the overview's information box leads.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{AssignedLicense, Command, GroupView, RuleError, RuleProcessingState, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, QueryFields};
use super::layout::{
    self, error_count_badge, page_notices, pager, processing_badge, search_form, Done, Section,
};
use super::names::ProductNames;
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};
use super::rule_editor;

struct GroupRow {
    view: GroupView,
    product_names: Vec<String>,
    /// Whether the group is a dynamic membership group, and whether its rule is paused.
    dynamic: Option<RuleProcessingState>,
}

struct GroupsData {
    tenant_name: String,
    rows: Vec<GroupRow>,
    page: Page,
    groups_with_errors: usize,
    all_groups: usize,
}

/// `GET /groups`.
pub async fn list(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let request = ListRequest::from_query(&query, IdKind::Group)?;
    let only_errors = match query.non_empty("filter") {
        None => false,
        Some("errors") => true,
        Some(other) => {
            return Err(ConsoleError::bad_request(format!(
                "Unknown filter '{other}': the groups list knows only filter=errors."
            )))
        }
    };
    let scan_request = request.clone();
    let data = context
        .read(move |engine| {
            let search = scan_request.matcher();
            let searched_id = scan_request
                .search
                .as_deref()
                .and_then(|text| Uuid::try_parse(text).ok());
            let candidates = if only_errors {
                engine.groups_with_errors()
            } else {
                engine.group_ids()
            };
            let page = page_of(
                &candidates,
                scan_request.cursor,
                PAGE_SIZE,
                scan_request.scan_budget(),
                |group_id| {
                    if search.is_empty() {
                        return true;
                    }
                    if searched_id == Some(group_id) {
                        return true;
                    }
                    engine
                        .group_view(group_id)
                        .is_ok_and(|group| search.matches_any(&[&group.display_name]))
                },
            );
            let names = ProductNames::of(engine);
            let mut rows = Vec::with_capacity(page.ids.len());
            for group_id in &page.ids {
                let view = engine.group_view(*group_id)?;
                let product_names = view
                    .assigned_licenses
                    .iter()
                    .map(|license| names.product_name(license.sku_id))
                    .collect();
                let dynamic = engine
                    .dynamic_membership(*group_id)?
                    .map(|dynamic| dynamic.processing_state);
                rows.push(GroupRow {
                    view,
                    product_names,
                    dynamic,
                });
            }
            let groups_with_errors = if only_errors {
                candidates.len()
            } else {
                engine.groups_with_errors().len()
            };
            Ok(GroupsData {
                tenant_name: engine.settings().display_name.clone(),
                rows,
                page,
                groups_with_errors,
                all_groups: engine.group_count(),
            })
        })
        .await?;
    let filter_value = if only_errors { "errors" } else { "" };
    let keep = [
        ("search", request.search.as_deref().unwrap_or("")),
        ("filter", filter_value),
    ];
    let results = results(&data, &keep, only_errors);
    if context.targets("list-results") {
        return Ok(layout::html_response(axum::http::StatusCode::OK, results));
    }
    let title = if only_errors {
        "Groups with license errors"
    } else {
        "Groups"
    };
    let content = html! {
        h1 { (title) }
        nav.tabs aria-label="Group lists" {
            a href="/groups" aria-current=[(!only_errors).then_some("page")] { "All groups (" (super::format::count(data.all_groups)) ")" }
            a href="/groups?filter=errors" aria-current=[only_errors.then_some("page")] {
                "Groups with errors (" (super::format::count(data.groups_with_errors)) ")"
            }
        }
        @if context.may(ConsoleAction::ChangeMembers) {
            p { a.button href="/groups/new" { "New group" } }
        }
        (search_form("/groups", "Search groups by name", &request, if only_errors { &[("filter", "errors")] } else { &[] }))
        (results)
    };
    Ok(layout::page(title, Section::Groups, &data.tenant_name, content))
}

fn results(data: &GroupsData, keep: &[(&str, &str)], only_errors: bool) -> Markup {
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted {
                    @if only_errors { "No group has users in error." } @else { "No group matches." }
                }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Products" }
                            th scope="col" { "Membership" }
                            th scope="col" class="number" { "Members" }
                            th scope="col" { "Processing" }
                            th scope="col" { "License errors" }
                        }
                    }
                    tbody {
                        @for row in &data.rows {
                            tr {
                                th scope="row" { a href={ "/groups/" (row.view.id) } { (row.view.display_name) } }
                                td {
                                    @if row.product_names.is_empty() { span.muted { "None" } }
                                    @else { (row.product_names.join(", ")) }
                                }
                                td {
                                    @match row.dynamic {
                                        Some(RuleProcessingState::On) => "Dynamic",
                                        Some(RuleProcessingState::Paused) => "Dynamic (paused)",
                                        None => "Assigned",
                                    }
                                }
                                td.number { (super::format::count(row.view.member_count)) }
                                td { (processing_badge(row.view.license_processing_state)) }
                                td {
                                    @if row.view.members_with_license_errors > 0 {
                                        a href={ "/groups/" (row.view.id) "/errors" } {
                                            (error_count_badge(row.view.members_with_license_errors))
                                        }
                                    } @else { span.muted { "None" } }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/groups", &data.page, keep))
        }
    }
}

/// What the new group form holds (typed values, kept when the page is shown again).
#[derive(Clone, Debug, Default)]
struct NewGroupForm {
    display_name: String,
    dynamic: bool,
    rule: String,
    processing_state: RuleProcessingState,
    /// Products to assign to the group once it exists (all their plans enabled).
    sku_ids: Vec<Uuid>,
}

impl NewGroupForm {
    fn read(fields: &FormFields) -> Result<NewGroupForm, ConsoleError> {
        let mut sku_ids = Vec::new();
        for text in fields.all("sku_id") {
            let sku_id = parse_id(text, IdKind::Product)?;
            if !sku_ids.contains(&sku_id) {
                sku_ids.push(sku_id);
            }
        }
        Ok(NewGroupForm {
            display_name: fields.first("display_name").unwrap_or("").trim().to_string(),
            dynamic: fields.first("membership") == Some("dynamic"),
            rule: fields.first("membership_rule").unwrap_or("").trim().to_string(),
            processing_state: rule_editor::processing_state(fields)?,
            sku_ids,
        })
    }

    /// The commands that create the group, in order.
    fn commands(&self, group_id: Uuid) -> Vec<Command> {
        let mut commands = vec![Command::CreateGroup {
            group_id,
            display_name: self.display_name.clone(),
        }];
        if self.dynamic {
            commands.push(Command::SetMembershipRule {
                group_id,
                rule: Some(self.rule.clone()),
                processing_state: self.processing_state,
            });
        }
        if !self.sku_ids.is_empty() {
            commands.push(Command::AssignGroupLicenses {
                group_id,
                add_licenses: self
                    .sku_ids
                    .iter()
                    .map(|sku_id| AssignedLicense::new(*sku_id))
                    .collect(),
                remove_licenses: Vec::new(),
            });
        }
        commands
    }
}

/// What the new group page shows besides the form.
#[derive(Default)]
struct NewGroupPage {
    form: NewGroupForm,
    name_missing: bool,
    rule_error: Option<RuleError>,
    refusal: Option<ConsoleError>,
    preview: Option<Markup>,
}

/// `GET /groups/new`.
pub async fn new_group(context: ConsoleContext) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    render_new(&context, NewGroupPage::default()).await
}

async fn render_new(context: &ConsoleContext, page: NewGroupPage) -> Result<Response, ConsoleError> {
    let (tenant_name, names) = context
        .read(|engine| Ok((engine.settings().display_name.clone(), ProductNames::of(engine))))
        .await?;
    let form = &page.form;
    let invalid = page.name_missing || page.rule_error.is_some() || page.refusal.is_some();
    let content = html! {
        h1 { "New group" }
        p { a href="/groups" { "Back to the groups" } }
        @if let Some(refusal) = &page.refusal { (refusal.message_box()) }
        form.stacked method="post" action="/groups/new" {
            label for="display-name" { "Group name" }
            input id="display-name" type="text" name="display_name" required maxlength="256" value=(form.display_name)
                aria-invalid=[page.name_missing.then_some("true")] aria-describedby=[page.name_missing.then_some("name-error")];
            @if page.name_missing { p.message.error id="name-error" { "Give the group a name." } }
            fieldset {
                legend { "Membership" }
                label {
                    input type="radio" name="membership" value="assigned" checked[!form.dynamic];
                    " Assigned: you add and remove the members"
                }
                label {
                    input type="radio" name="membership" value="dynamic" checked[form.dynamic];
                    " Dynamic: the members are the users a rule selects, and follow their properties"
                }
            }
            (rule_editor::rule_field(&form.rule, page.rule_error.as_ref()))
            p.muted { "The rule is used for a dynamic group only." }
            label for="processing-state" { "Rule processing" }
            select id="processing-state" name="processing_state" {
                option value="On" selected[form.processing_state == RuleProcessingState::On] { "On: members follow the rule" }
                option value="Paused" selected[form.processing_state == RuleProcessingState::Paused] { "Paused: no member until it is turned on" }
            }
            fieldset {
                legend { "Products the group assigns (optional; plans and products can be changed later)" }
                @for product in &names.products {
                    label {
                        input type="checkbox" name="sku_id" value=(product.sku_id) checked[form.sku_ids.contains(&product.sku_id)];
                        " " (product.display_name) " " span.muted { "(" (super::format::count(product.available_units)) " available)" }
                    }
                }
            }
            @match &page.preview {
                Some(preview) => {
                    (preview)
                    div.actions {
                        button type="submit" name="confirmed" value="yes" { "Create the group" }
                        button.secondary type="submit" name="confirmed" value="no" { "Preview again" }
                        a href="/groups" { "Cancel" }
                    }
                }
                None => {
                    div.actions {
                        button type="submit" name="confirmed" value="no" { "Preview the effect" }
                        a href="/groups" { "Cancel" }
                    }
                }
            }
        }
    };
    let status = if invalid {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(layout::html_response(
        status,
        layout::document("New group", Some(Section::Groups), Some(&tenant_name), content),
    ))
}

/// `POST /groups/new`: previews the new group (`confirmed=no`) — who would join, their licenses,
/// seats and errors — or creates it (`confirmed=yes`): the group, its rule, its product, as the
/// API would; a rule or product refused removes the group again, so nothing is left behind.
pub async fn create(context: ConsoleContext, fields: FormFields) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let form = NewGroupForm::read(&fields)?;
    let confirmed = fields.first("confirmed") == Some("yes");
    let mut page = NewGroupPage {
        form: form.clone(),
        ..NewGroupPage::default()
    };
    page.name_missing = form.display_name.is_empty();
    let rule = if form.dynamic {
        match rule_editor::parse_rule(&form.rule) {
            Ok(rule) => Some(rule),
            Err(error) => {
                page.rule_error = Some(error);
                None
            }
        }
    } else {
        None
    };
    if page.name_missing || page.rule_error.is_some() {
        return render_new(&context, page).await;
    }
    let group_id = Uuid::new_v4();
    let commands = form.commands(group_id);
    if !confirmed {
        let on = form.processing_state == RuleProcessingState::On;
        let preview = context
            .read(move |engine| {
                let report = super::preview::predict(engine, &commands)?;
                // The what-if compares groups that exist before and after: the members of a
                // group it creates are the users its rule selects now.
                let matching: Vec<Uuid> = match (&rule, on) {
                    (Some(rule), true) => engine
                        .user_ids()
                        .into_iter()
                        .filter(|user_id| engine.user_matches_rule(*user_id, rule).unwrap_or(false))
                        .collect(),
                    _ => Vec::new(),
                };
                let preview = rule_editor::membership_preview(engine, &report, group_id, Some(&matching));
                Ok(rule_editor::membership_panel(&preview))
            })
            .await;
        match preview {
            Ok(preview) => page.preview = Some(preview),
            Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
                page.refusal = Some(ConsoleError::Refused(refusal))
            }
            Err(error) => return Err(error),
        }
        return render_new(&context, page).await;
    }
    let mut commands = commands.into_iter();
    if let Some(create) = commands.next() {
        context.execute(create).await?;
    }
    for command in commands {
        if let Err(error) = context.execute(command).await {
            // The rule or the product was refused: the group goes again.
            context.execute(Command::DeleteGroup { group_id }).await?;
            return match error {
                ConsoleError::Refused(refusal) if !refusal.is_not_found() => {
                    page.refusal = Some(ConsoleError::Refused(refusal));
                    render_new(&context, page).await
                }
                other => Err(other),
            };
        }
    }
    let done = if form.dynamic {
        Done::DynamicGroupCreated
    } else {
        Done::GroupCreated
    };
    Ok(see_other(&done.on(&format!("/groups/{group_id}"))))
}
