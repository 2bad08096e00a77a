//! A group's Licenses pane (`/groups/{id}`), as in the seed: its products with enabled and
//! disabled plans, its `licenseProcessingState`, the notice "N users have license errors" that
//! opens the affected users, adding, editing (plan toggles) and removing products — the engine's
//! same-group prerequisite refusal shown inline — and a Reprocess button that shows progress
//! until processing is done.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{
    AssignedLicense, Command, Engine, GroupView, LicenseProcessingState, RuleProcessingState, Uuid,
};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::layout::{self, html_response, message, processing_badge, Done, MessageKind, Section};
use super::names::ProductNames;
use super::processing::{poll_answer, polling_panel};

/// The tabs of a group's pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupTab {
    Licenses,
    Members,
    Errors,
    /// The membership rule (dynamic membership).
    Rule,
    /// Nested groups and the groups it is nested in.
    Nesting,
}

/// A dynamic group's rule and processing state, for the header of its pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipSummary {
    pub rule: String,
    pub processing_state: RuleProcessingState,
}

/// A group's rule and processing state (`None` for assigned membership).
pub fn membership_summary(
    engine: &Engine,
    group_id: Uuid,
) -> Result<Option<MembershipSummary>, ConsoleError> {
    Ok(engine
        .dynamic_membership(group_id)
        .map_err(|_| ConsoleError::not_found(format!("The group {group_id}")))?
        .map(|dynamic| MembershipSummary {
            rule: dynamic.rule.text().to_string(),
            processing_state: dynamic.processing_state,
        }))
}

/// A group's view, or a not-found page.
pub fn existing_group(engine: &Engine, group_id: Uuid) -> Result<GroupView, ConsoleError> {
    engine
        .group_view(group_id)
        .map_err(|_| ConsoleError::not_found(format!("The group {group_id}")))
}

/// The heading and tabs shared by a group's pages (without the kind of membership).
pub fn group_header(group: &GroupView, tab: GroupTab) -> Markup {
    header(group, tab, None)
}

/// The heading and tabs, saying whether the group's members are assigned or dynamic (and
/// whether its rule is paused).
pub fn group_header_with(group: &GroupView, tab: GroupTab, dynamic: Option<&MembershipSummary>) -> Markup {
    header(group, tab, Some(dynamic))
}

fn header(group: &GroupView, tab: GroupTab, membership: Option<Option<&MembershipSummary>>) -> Markup {
    let current = |this: GroupTab| (tab == this).then_some("page");
    html! {
        h1 { (group.display_name) }
        p.subtitle {
            "Group · "
            @match membership {
                Some(Some(summary)) => {
                    a href={ "/groups/" (group.id) "/rule" } data-testid="membership-kind" { "Dynamic membership" }
                    @if summary.processing_state == RuleProcessingState::Paused { " (rule paused)" }
                    " · "
                },
                Some(None) => { span data-testid="membership-kind" { "Assigned membership" } " · " },
                None => {},
            }
            (super::format::count(group.member_count)) " members · " span.muted { (group.id) }
        }
        nav.tabs aria-label="Group" {
            a href={ "/groups/" (group.id) } aria-current=[current(GroupTab::Licenses)] { "Licenses" }
            a href={ "/groups/" (group.id) "/members" } aria-current=[current(GroupTab::Members)] {
                "Members (" (super::format::count(group.member_count)) ")"
            }
            a href={ "/groups/" (group.id) "/rule" } aria-current=[current(GroupTab::Rule)] { "Membership rule" }
            a href={ "/groups/" (group.id) "/nesting" } aria-current=[current(GroupTab::Nesting)] { "Nested groups" }
            a href={ "/groups/" (group.id) "/errors" } aria-current=[current(GroupTab::Errors)] {
                "Users with license errors (" (super::format::count(group.members_with_license_errors)) ")"
            }
        }
    }
}

/// "5 users have license errors" (or "1 user has ...").
pub fn users_in_error_text(count: usize) -> String {
    if count == 1 {
        "1 user has license errors".to_string()
    } else {
        format!("{} users have license errors", super::format::count(count))
    }
}

struct LicensesPane {
    tenant_name: String,
    group: GroupView,
    names: ProductNames,
    queued_users: usize,
    dynamic: Option<MembershipSummary>,
    transitive_licensing: bool,
    nested_groups: usize,
}

fn licenses_pane(engine: &Engine, group_id: Uuid) -> Result<LicensesPane, ConsoleError> {
    Ok(LicensesPane {
        tenant_name: engine.settings().display_name.clone(),
        group: existing_group(engine, group_id)?,
        names: ProductNames::of(engine),
        queued_users: engine.queued_users(),
        dynamic: membership_summary(engine, group_id)?,
        transitive_licensing: engine.settings().transitive_licensing,
        nested_groups: engine
            .transitive_member_groups(group_id)
            .map_or(0, |groups| groups.len()),
    })
}

/// The processing panel of a group: its state, polling while not complete.
fn group_processing_panel(group_id: Uuid, state: LicenseProcessingState, queued_users: usize) -> Markup {
    let busy = state != LicenseProcessingState::ProcessingComplete;
    polling_panel(
        "group-processing",
        &format!("/groups/{group_id}/processing"),
        busy,
        html! {
            (processing_badge(state))
            @if busy {
                " " span.muted { (super::format::count(queued_users)) " users queued in the tenant" }
            }
        },
    )
}

/// `GET /groups/{id}`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    render_licenses_pane(&context, group_id, None, query.first("done")).await
}

async fn render_licenses_pane(
    context: &ConsoleContext,
    group_id: Uuid,
    refusal: Option<ConsoleError>,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let pane = context
        .read(move |engine| licenses_pane(engine, group_id))
        .await?;
    let group = &pane.group;
    let may_change = context.may(ConsoleAction::ChangeLicenses);
    let assigned: BTreeSet<Uuid> = group
        .assigned_licenses
        .iter()
        .map(|license| license.sku_id)
        .collect();
    let addable: Vec<_> = pane
        .names
        .products
        .iter()
        .filter(|product| !assigned.contains(&product.sku_id))
        .collect();
    let content = html! {
        (group_header_with(group, GroupTab::Licenses, pane.dynamic.as_ref()))
        (result)
        @if let Some(refusal) = &refusal { (refusal.message_box()) }
        @if group.members_with_license_errors > 0 {
            (message(MessageKind::Warning, html! {
                a.attention href={ "/groups/" (group.id) "/errors" } data-testid="users-in-error" {
                    strong { (users_in_error_text(group.members_with_license_errors)) }
                    br;
                    "Select to see the affected users and why their licenses could not be assigned."
                }
            }))
        }
        div.actions {
            form.inline method="post" action={ "/groups/" (group.id) "/reprocess" }
                hx-post={ "/groups/" (group.id) "/reprocess" } hx-target="#group-processing" hx-swap="outerHTML" {
                button type="submit" disabled[!context.may(ConsoleAction::Reprocess)] { "Reprocess" }
            }
            (group_processing_panel(group.id, group.license_processing_state, pane.queued_users))
        }
        h2 { "Products" }
        @if group.assigned_licenses.is_empty() {
            p.muted { "This group assigns no product." }
        } @else {
            table {
                thead {
                    tr {
                        th scope="col" { "Product" }
                        th scope="col" { "Enabled plans" }
                        th scope="col" { "Disabled plans" }
                        th scope="col" { span.muted { "Actions" } }
                    }
                }
                tbody {
                    @for license in &group.assigned_licenses {
                        @let product = pane.names.product(license.sku_id);
                        tr {
                            th scope="row" {
                                a href={ "/products/" (license.sku_id) } { (pane.names.product_name(license.sku_id)) }
                                @if let Some(product) = product { br; span.muted { (product.sku_part_number) } }
                            }
                            td {
                                @if let Some(product) = product {
                                    @let total = product.service_plans.len();
                                    @let enabled = total.saturating_sub(license.disabled_plans.len());
                                    // A few plans kept out of many: shown at once.
                                    details open[enabled <= 3 && enabled < total] {
                                        summary {
                                            @if enabled == total { "All " (total) " plans enabled" }
                                            @else { (enabled) " of " (total) " plans enabled" }
                                        }
                                        ul.plans.columns {
                                            @for (plan_id, _, display_name) in &product.service_plans {
                                                @if !license.disabled_plans.contains(plan_id) { li { (display_name) } }
                                            }
                                        }
                                    }
                                }
                            }
                            td {
                                @if license.disabled_plans.len() > 5 {
                                    // Many disabled plans: folded, the enabled ones are what matters.
                                    details {
                                        summary { (license.disabled_plans.len()) " plans disabled" }
                                        ul.plans.columns {
                                            @for plan_id in &license.disabled_plans {
                                                li { (pane.names.plan_name(*plan_id)) }
                                            }
                                        }
                                    }
                                } @else {
                                    ul.plans {
                                        @for plan_id in &license.disabled_plans {
                                            li.plan-off { (pane.names.plan_name(*plan_id)) }
                                        }
                                    }
                                }
                                @if license.disabled_plans.is_empty() { span.muted { "None" } }
                            }
                            td {
                                @if may_change {
                                    div.actions {
                                        a.button.secondary href={ "/groups/" (group.id) "/licenses/edit?sku_id=" (license.sku_id) } {
                                            "Edit plans" span.visually-hidden { " of " (pane.names.product_name(license.sku_id)) }
                                        }
                                        form.inline method="post" action={ "/groups/" (group.id) "/licenses/" (license.sku_id) "/remove" }
                                            data-confirm={ "Remove " (pane.names.product_name(license.sku_id)) " from the group " (group.display_name) "? Every member who has it only through this group loses it." } {
                                            button.danger type="submit" {
                                                "Remove" span.visually-hidden { " " (pane.names.product_name(license.sku_id)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_change && !addable.is_empty() {
            h2 { "Add a product" }
            form.search method="get" action={ "/groups/" (group.id) "/licenses/edit" } {
                label for="add-product" { "Product" }
                select id="add-product" name="sku_id" {
                    @for product in &addable {
                        option value=(product.sku_id) {
                            (product.display_name) " (" (super::format::count(product.available_units)) " available)"
                        }
                    }
                }
                button type="submit" { "Choose plans" }
            }
            (super::add_products::form(&format!("/groups/{}/licenses/add", group.id), "add-several", &addable, "Preview adding them"))
        }
        p.muted data-testid="nesting-licensing" {
            @if pane.transitive_licensing {
                "Transitive licensing is on: members of the groups nested in this one"
                @if pane.nested_groups > 0 { " (" (super::format::count(pane.nested_groups)) " nested groups)" }
                " receive its products too. "
            } @else {
                "Only direct members receive a group's products: licenses are not inherited through nested groups"
                @if pane.nested_groups > 0 { " (this group has " (super::format::count(pane.nested_groups)) " nested)" }
                ". "
            }
            a href={ "/groups/" (group.id) "/nesting#transitive-licensing" } { "Nested groups and transitive licensing" }
        }
    };
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(html_response(
        status,
        layout::document(
            &group.display_name,
            Some(Section::Groups),
            Some(&pane.tenant_name),
            content,
        ),
    ))
}

/// The plan toggles of one product, for a group's or a user's assignment.
pub struct PlanToggles {
    pub sku_id: Uuid,
    pub product_name: String,
    pub sku_part_number: String,
    /// Plan id, display name, technical name, enabled, and what it requires (display names).
    pub plans: Vec<(Uuid, String, String, bool, Vec<String>)>,
    /// Plans a fix suggests disabling (`?change=` from an error's fix): shown unticked and
    /// marked, so the editor opens with the change to make already selected.
    pub suggested: BTreeSet<Uuid>,
}

/// The plans named in `?change=` (comma-separated service plan ids).
pub fn suggested_plans(query: &QueryFields) -> Result<BTreeSet<Uuid>, ConsoleError> {
    query
        .non_empty("change")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(|text| parse_id(text, IdKind::ServicePlan))
        .collect()
}

/// The toggles of `sku_id` with the given disabled plans.
pub fn plan_toggles(
    engine: &Engine,
    names: &ProductNames,
    sku_id: Uuid,
    disabled: &BTreeSet<Uuid>,
) -> Result<PlanToggles, ConsoleError> {
    let product = names
        .product(sku_id)
        .ok_or_else(|| ConsoleError::not_found(format!("The product {sku_id}")))?;
    let plans = product
        .service_plans
        .iter()
        .map(|(plan_id, name, display_name)| {
            let requires = engine
                .service_plan_rules(*plan_id)
                .map(|rules| {
                    rules
                        .requires_any_of
                        .iter()
                        .map(|required| names.plan_name(*required))
                        .collect()
                })
                .unwrap_or_default();
            (
                *plan_id,
                display_name.clone(),
                name.clone(),
                !disabled.contains(plan_id),
                requires,
            )
        })
        .collect();
    Ok(PlanToggles {
        sku_id,
        product_name: product.display_name.clone(),
        sku_part_number: product.sku_part_number.clone(),
        plans,
        suggested: BTreeSet::new(),
    })
}

/// The form of plan toggles posting to `action`.
/// How a plan form saves.
pub enum SaveStep {
    /// One **Save** (a user's direct license: checked at once, one user).
    Direct,
    /// **Preview the effect** first (a group's license: every member is affected).
    PreviewFirst,
    /// The preview is shown: **Save for all members** (`confirmed=yes`) or preview again.
    Confirm(Markup),
}

pub fn plan_form(toggles: &PlanToggles, action: &str, cancel: &str, step: SaveStep) -> Markup {
    html! {
        form.stacked method="post" action=(action) {
            input type="hidden" name="sku_id" value=(toggles.sku_id);
            @if !toggles.suggested.is_empty() {
                (message(MessageKind::Information, html! {
                    "The plans to disable for the fix are unticked and marked " strong { "suggested" } ". Review them, then save."
                }))
            }
            fieldset data-plan-picker {
                legend { "Service plans of " (toggles.product_name) }
                div.actions.picker {
                    button.secondary type="button" data-pick="all" { "All plans" }
                    button.secondary type="button" data-pick="none" { "No plans" }
                }
                @for (plan_id, display_name, name, enabled, requires) in &toggles.plans {
                    @let suggested = toggles.suggested.contains(plan_id);
                    div.plan-choice.suggested[suggested] data-plan=(plan_id) {
                        label {
                            input type="checkbox" name="enabled_plan" value=(plan_id) checked[*enabled];
                            " " (display_name) " " span.muted { "(" (name) ")" }
                            @if suggested { " " span.badge.warning { "suggested: disable" } }
                            @if !requires.is_empty() {
                                " " span.muted { "— requires " (requires.join(" or ")) }
                            }
                        }
                        " " button.link type="button" data-pick=(plan_id) { "Only this plan" span.visually-hidden { ": " (display_name) } }
                    }
                }
            }
            @match step {
                SaveStep::Direct => {
                    div.actions {
                        button type="submit" { "Save" }
                        a href=(cancel) { "Cancel" }
                    }
                }
                SaveStep::PreviewFirst => {
                    div.actions {
                        button type="submit" name="confirmed" value="no" { "Preview the effect" }
                        a href=(cancel) { "Cancel" }
                    }
                }
                SaveStep::Confirm(preview) => {
                    (preview)
                    div.actions {
                        button type="submit" name="confirmed" value="yes" { "Save for all members" }
                        button.secondary type="submit" name="confirmed" value="no" { "Preview again" }
                        a href=(cancel) { "Cancel" }
                    }
                }
            }
        }
    }
}

/// Reads the toggles of a submitted form: the product and its disabled plans (those not ticked).
pub fn submitted_plans(engine: &Engine, fields: &FormFields) -> Result<(Uuid, BTreeSet<Uuid>), ConsoleError> {
    let sku_id = parse_id(fields.required("sku_id", "product")?, IdKind::Product)?;
    let product = engine
        .sku_usage(sku_id)
        .map_err(|_| ConsoleError::not_found(format!("The product {sku_id}")))?;
    let mut enabled = BTreeSet::new();
    for text in fields.all("enabled_plan") {
        let plan_id = parse_id(text, IdKind::ServicePlan)?;
        if !product.service_plans.iter().any(|(id, _, _)| *id == plan_id) {
            return Err(ConsoleError::bad_request(format!(
                "The service plan {plan_id} is not part of {}.",
                product.display_name
            )));
        }
        enabled.insert(plan_id);
    }
    let disabled = product
        .service_plans
        .iter()
        .map(|(id, _, _)| *id)
        .filter(|id| !enabled.contains(id))
        .collect();
    Ok((sku_id, disabled))
}

struct EditData {
    tenant_name: String,
    group: GroupView,
    toggles: PlanToggles,
    is_new: bool,
}

/// `GET /groups/{id}/licenses/edit?sku_id=`: the plan toggles of a product for the group.
pub async fn edit_license(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let sku_id = parse_id(
        query
            .non_empty("sku_id")
            .ok_or_else(|| ConsoleError::bad_request("Choose a product (sku_id)."))?,
        IdKind::Product,
    )?;
    let suggested = suggested_plans(&query)?;
    render_edit(&context, group_id, sku_id, None, suggested, None, None).await
}

async fn render_edit(
    context: &ConsoleContext,
    group_id: Uuid,
    sku_id: Uuid,
    submitted_disabled: Option<BTreeSet<Uuid>>,
    suggested: BTreeSet<Uuid>,
    refusal: Option<ConsoleError>,
    preview: Option<Markup>,
) -> Result<Response, ConsoleError> {
    let data = context
        .read(move |engine| {
            let group = existing_group(engine, group_id)?;
            let names = ProductNames::of(engine);
            let current = group
                .assigned_licenses
                .iter()
                .find(|license| license.sku_id == sku_id);
            let is_new = current.is_none();
            let disabled = match submitted_disabled {
                Some(disabled) => disabled,
                None => current
                    .map(|license| license.disabled_plans.iter().copied().collect())
                    .unwrap_or_default(),
            };
            let disabled = disabled.union(&suggested).copied().collect();
            let mut toggles = plan_toggles(engine, &names, sku_id, &disabled)?;
            toggles.suggested = suggested;
            Ok(EditData {
                tenant_name: engine.settings().display_name.clone(),
                group,
                toggles,
                is_new,
            })
        })
        .await?;
    let group = &data.group;
    let verb = if data.is_new { "Add" } else { "Edit" };
    let content = html! {
        (group_header(group, GroupTab::Licenses))
        h2 { (verb) " " (data.toggles.product_name) " " span.muted { "(" (data.toggles.sku_part_number) ")" } }
        @if let Some(refusal) = &refusal { (refusal.message_box()) }
        p {
            "Every member receives the ticked plans. A plan that requires another needs it enabled in this "
            "group as well (add-ons come with their prerequisite)."
        }
        (plan_form(&data.toggles, &format!("/groups/{}/licenses", group.id), &format!("/groups/{}", group.id),
            match preview { Some(preview) => SaveStep::Confirm(preview), None => SaveStep::PreviewFirst }))
    };
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("{verb} {} · {}", data.toggles.product_name, group.display_name);
    Ok(html_response(
        status,
        layout::document(&title, Some(Section::Groups), Some(&data.tenant_name), content),
    ))
}

/// `POST /groups/{id}/licenses`: adds a product or changes its plans.
pub async fn save_license(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let confirmed = fields.first("confirmed") == Some("yes");
    let (sku_id, disabled) = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            submitted_plans(engine, &fields)
        })
        .await?;
    let command = Command::AssignGroupLicenses {
        group_id,
        add_licenses: vec![AssignedLicense::with_disabled_plans(
            sku_id,
            disabled.iter().copied(),
        )],
        remove_licenses: Vec::new(),
    };
    // Every member is affected: the prediction first, saved only once confirmed.
    let outcome = if confirmed {
        context.execute(command).await.map(|_| None)
    } else {
        let commands = vec![command];
        context
            .read(move |engine| {
                let report = super::preview::predict(engine, &commands)?;
                Ok(super::preview::panel(&ProductNames::of(engine), &report))
            })
            .await
            .map(Some)
    };
    match outcome {
        Ok(Some(preview)) => {
            render_edit(
                &context,
                group_id,
                sku_id,
                Some(disabled),
                BTreeSet::new(),
                None,
                Some(preview),
            )
            .await
        }
        Ok(None) => Ok(see_other(&Done::LicenseSaved.on(&format!("/groups/{group_id}")))),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            render_edit(
                &context,
                group_id,
                sku_id,
                Some(disabled),
                BTreeSet::new(),
                Some(ConsoleError::Refused(refusal)),
                None,
            )
            .await
        }
        Err(error) => Err(error),
    }
}

/// `POST /groups/{id}/licenses/{sku}/remove`.
pub async fn remove_license(
    context: ConsoleContext,
    PathParameters((group_id, sku_id)): PathParameters<(String, String)>,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let sku_id = parse_id(&sku_id, IdKind::Product)?;
    let command = Command::AssignGroupLicenses {
        group_id,
        add_licenses: Vec::new(),
        remove_licenses: vec![sku_id],
    };
    match context.execute(command).await {
        Ok(_) => Ok(see_other(
            &Done::LicenseRemoved.on(&format!("/groups/{group_id}")),
        )),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            render_licenses_pane(&context, group_id, Some(ConsoleError::Refused(refusal)), None).await
        }
        Err(error) => Err(error),
    }
}

/// `POST /groups/{id}/reprocess`: queues every member; htmx gets the progress panel.
pub async fn reprocess(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::Reprocess)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    context.execute(Command::ReprocessGroup { group_id }).await?;
    if context.is_htmx {
        processing_fragment_of(&context, group_id).await
    } else {
        // From the list of users in error, back to it.
        let back = match form.first("return_to") {
            Some("errors") => format!("/groups/{group_id}/errors"),
            _ => format!("/groups/{group_id}"),
        };
        Ok(see_other(&Done::ReprocessQueued.on(&back)))
    }
}

/// `GET /groups/{id}/processing`: the group's processing panel (polled while processing runs).
pub async fn processing_fragment(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    processing_fragment_of(&context, group_id).await
}

async fn processing_fragment_of(context: &ConsoleContext, group_id: Uuid) -> Result<Response, ConsoleError> {
    let (state, queued_users) = context
        .read(move |engine| {
            let group = existing_group(engine, group_id)?;
            Ok((group.license_processing_state, engine.queued_users()))
        })
        .await?;
    Ok(poll_answer(
        context,
        state != LicenseProcessingState::ProcessingComplete,
        group_processing_panel(group_id, state, queued_users),
    ))
}
