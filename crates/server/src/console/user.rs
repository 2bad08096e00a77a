//! A user's Licenses page (`/users/{id}`): every license assignment (direct, or inherited from
//! which group) with its state and error, and for each error the plain-language reason
//! (`Engine::explain`) and the ways to fix it the seed lists, as buttons and links; effective
//! plans; usage location and proxy addresses (editable); directory attributes (editable after a
//! preview of the dynamic groups the user would join or leave and the licenses gained or lost);
//! direct products (assign, edit, remove); reprocess.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{
    AssignedLicense, AssignmentSource, Command, CountryCode, Engine, LicenseAssignmentState,
    LicenseErrorDetail, ProxyAddress, UserAttribute, UserChanges, UserView, Uuid,
};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::format::{country, time};
use super::forms::{after_change, parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::group::{plan_form, plan_toggles, submitted_plans, suggested_plans, PlanToggles, SaveStep};
use super::layout::{self, html_response, state_badge, Done, Section};
use super::names::{error_title, group_name, ProductNames};
use super::processing::{activity_panel, change_result, poll_answer, tenant_activity};

/// A way to resolve an error, offered next to it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Fix {
    /// Remove the user's direct license of a product (POST).
    RemoveDirectLicense { sku_id: Uuid, product_name: String },
    /// Disable plans (the editor opens with `plans` unticked) of the user's direct license.
    EditDirectPlans {
        sku_id: Uuid,
        product_name: String,
        plans: Vec<Uuid>,
    },
    /// Disable plans (the editor opens with `plans` unticked) of a group's license.
    EditGroupPlans {
        group_id: Uuid,
        group_name: String,
        sku_id: Uuid,
        product_name: String,
        plans: Vec<Uuid>,
    },
    /// Buy more seats of a product.
    BuySeats { sku_id: Uuid, product_name: String },
    /// See who consumes a product, to free seats.
    FreeSeats { sku_id: Uuid, product_name: String },
    /// Correct the user's usage location.
    ChangeUsageLocation,
    /// Remove the user from a group (POST).
    RemoveFromGroup { group_id: Uuid, group_name: String },
    /// Fix the user's duplicate proxy address.
    EditProxyAddresses,
    /// Open another user involved (the other holder of a proxy address).
    OpenUser { user_id: Uuid, label: String },
    /// The error of another product of the same group comes first.
    ResolveSibling { product_name: String },
}

/// One row of the assignments table.
struct AssignmentRow {
    state: LicenseAssignmentState,
    product_name: String,
    /// The group's id and name for an inherited assignment.
    group: Option<(Uuid, String)>,
    /// For an assignment received through nested groups: "via Platform → Engineering → All Staff".
    path: Option<String>,
    reason: Option<String>,
    fixes: Vec<Fix>,
    /// The fixes Diagnosis offers for this error, applied with one button.
    engine_fixes: Vec<licensd_engine::diagnosis::Fix>,
}

struct UserPage {
    tenant_name: String,
    tenant_usage_location: Option<CountryCode>,
    user: UserView,
    names: ProductNames,
    assignments: Vec<AssignmentRow>,
    effective_plans: Vec<String>,
    groups: Vec<GroupMembership>,
    transitive_licensing: bool,
    /// Why self-healing queued the user, and its last automatic re-evaluation.
    pending_self_healing: Option<licensd_engine::RequeueReason>,
    last_self_healing: Option<licensd_engine::SelfHealing>,
}

/// Where a refused change is shown on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RefusalAt {
    Assignments,
    DirectLicenses,
    UsageLocation,
    ProxyAddresses,
    Attributes,
}

/// A user's view, or a not-found page.
fn existing_user(engine: &Engine, user_id: Uuid) -> Result<UserView, ConsoleError> {
    engine
        .user_view(user_id)
        .map_err(|_| ConsoleError::not_found(format!("The user {user_id}")))
}

/// The ways to fix a state's error, in the seed's order.
fn fixes_for(
    engine: &Engine,
    names: &ProductNames,
    user: &UserView,
    state: &LicenseAssignmentState,
) -> Vec<Fix> {
    let Some(detail) = &state.error_detail else {
        return Vec::new();
    };
    let product_name = names.product_name(state.sku_id);
    let own_plans = |fixes: &mut Vec<Fix>, plans: Vec<Uuid>| match state.assigned_by_group {
        Some(group_id) => fixes.push(Fix::EditGroupPlans {
            group_id,
            group_name: group_name(engine, group_id),
            sku_id: state.sku_id,
            product_name: product_name.clone(),
            plans,
        }),
        None => fixes.push(Fix::EditDirectPlans {
            sku_id: state.sku_id,
            product_name: product_name.clone(),
            plans,
        }),
    };
    let plans_of = |fixes: &mut Vec<Fix>,
                    source: &AssignmentSource,
                    sku_id: Uuid,
                    remove_direct: bool,
                    plans: Vec<Uuid>| {
        let other_product = names.product_name(sku_id);
        match source {
            AssignmentSource::Direct => {
                if remove_direct {
                    fixes.push(Fix::RemoveDirectLicense {
                        sku_id,
                        product_name: other_product.clone(),
                    });
                }
                fixes.push(Fix::EditDirectPlans {
                    sku_id,
                    product_name: other_product,
                    plans,
                });
            }
            AssignmentSource::Group(group_id) => fixes.push(Fix::EditGroupPlans {
                group_id: *group_id,
                group_name: group_name(engine, *group_id),
                sku_id,
                product_name: other_product,
                plans,
            }),
        }
    };
    let mut fixes = Vec::new();
    match detail {
        LicenseErrorDetail::CountViolation { sku_id, .. } => {
            let product_name = names.product_name(*sku_id);
            fixes.push(Fix::BuySeats {
                sku_id: *sku_id,
                product_name: product_name.clone(),
            });
            fixes.push(Fix::FreeSeats {
                sku_id: *sku_id,
                product_name,
            });
        }
        LicenseErrorDetail::MutuallyExclusiveViolation {
            service_plan,
            conflicting_service_plan,
            conflicting_sku_id,
            conflicting_assignment,
            conflicts,
        } => {
            // Every conflicting pair at once: one edit per other assignment names all its plans,
            // and this assignment's edit every plan of it in conflict.
            let mut others: Vec<(AssignmentSource, Uuid, Vec<Uuid>)> = vec![(
                *conflicting_assignment,
                *conflicting_sku_id,
                vec![conflicting_service_plan.service_plan_id],
            )];
            let mut own = vec![service_plan.service_plan_id];
            for conflict in conflicts {
                let id = conflict.service_plan.service_plan_id;
                if !own.contains(&id) {
                    own.push(id);
                }
                let other_id = conflict.conflicting_service_plan.service_plan_id;
                match others.iter_mut().find(|(source, sku, _)| {
                    *source == conflict.conflicting_assignment && *sku == conflict.conflicting_sku_id
                }) {
                    Some((_, _, plans)) => {
                        if !plans.contains(&other_id) {
                            plans.push(other_id);
                        }
                    }
                    None => others.push((
                        conflict.conflicting_assignment,
                        conflict.conflicting_sku_id,
                        vec![other_id],
                    )),
                }
            }
            for (source, sku_id, plans) in others {
                plans_of(&mut fixes, &source, sku_id, true, plans);
            }
            own_plans(&mut fixes, own);
        }
        LicenseErrorDetail::DependencyViolation {
            dependent_service_plan,
            dependent_sku_id,
            dependent_assignment,
            removal_blocked,
            ..
        } => {
            if *removal_blocked {
                if let Some(source) = dependent_assignment {
                    plans_of(
                        &mut fixes,
                        source,
                        *dependent_sku_id,
                        true,
                        vec![dependent_service_plan.service_plan_id],
                    );
                }
            } else {
                own_plans(&mut fixes, vec![dependent_service_plan.service_plan_id]);
            }
        }
        LicenseErrorDetail::ProhibitedInUsageLocationViolation { .. } => {
            fixes.push(Fix::ChangeUsageLocation);
            if let Some(group_id) = state.assigned_by_group {
                // A dynamic group's members follow its rule: no removal by hand.
                let dynamic = engine.dynamic_membership(group_id).ok().flatten().is_some();
                if user.member_of.contains(&group_id) && !dynamic {
                    fixes.push(Fix::RemoveFromGroup {
                        group_id,
                        group_name: group_name(engine, group_id),
                    });
                }
            }
        }
        LicenseErrorDetail::UniquenessViolation { other_user_ids, .. } => {
            fixes.push(Fix::EditProxyAddresses);
            for other in other_user_ids {
                let label = engine
                    .user_view(*other)
                    .map(|other| other.user_principal_name)
                    .unwrap_or_else(|_| other.to_string());
                fixes.push(Fix::OpenUser {
                    user_id: *other,
                    label,
                });
            }
        }
        LicenseErrorDetail::BlockedBySibling { sibling_sku_id, .. } => fixes.push(Fix::ResolveSibling {
            product_name: names.product_name(*sibling_sku_id),
        }),
    }
    fixes
}

/// Why a user is in a group.
#[derive(Clone, Debug, PartialEq, Eq)]
enum MembershipReason {
    /// Added by hand (or by provisioning).
    Direct,
    /// Selected by the group's rule; `paused` when the rule is paused, `matches` whether the
    /// user satisfies it now.
    Rule {
        rule: String,
        paused: bool,
        matches: bool,
    },
    /// A member of a group nested in it: "via Platform → All Staff".
    Nested { path: String },
}

/// One group the user is in, directly or through nesting, and why.
struct GroupMembership {
    group_id: Uuid,
    name: String,
    reason: MembershipReason,
    /// Whether the group assigns products.
    licensed: bool,
}

fn group_membership(engine: &Engine, user: &UserView, group_id: Uuid) -> GroupMembership {
    let direct = user.member_of.contains(&group_id);
    let dynamic = engine.dynamic_membership(group_id).ok().flatten();
    let reason = match (direct, dynamic) {
        (true, Some(dynamic)) => MembershipReason::Rule {
            rule: dynamic.rule.text().to_string(),
            paused: dynamic.processing_state == licensd_engine::RuleProcessingState::Paused,
            matches: engine.user_matches_rule(user.id, &dynamic.rule).unwrap_or(false),
        },
        (true, None) => MembershipReason::Direct,
        (false, _) => MembershipReason::Nested {
            path: engine
                .licensing_path_text(user.id, group_id)
                .unwrap_or_else(|| "through nested groups".to_string()),
        },
    };
    GroupMembership {
        name: group_name(engine, group_id),
        licensed: engine
            .group_view(group_id)
            .is_ok_and(|group| !group.assigned_licenses.is_empty()),
        reason,
        group_id,
    }
}

fn user_page(engine: &Engine, user_id: Uuid) -> Result<UserPage, ConsoleError> {
    let user = existing_user(engine, user_id)?;
    let names = ProductNames::of(engine);
    let has_error = engine
        .user_license_states(user_id)?
        .iter()
        .any(|state| state.error.is_some());
    let mut engine_fixes = if has_error {
        super::diagnosis::user_fixes(engine, user_id)
    } else {
        Vec::new()
    };
    let assignments = engine
        .user_license_states(user_id)?
        .into_iter()
        .map(|state| {
            let reason = engine.explain(&state).map(|reason| names.humanize(&reason));
            let fixes = fixes_for(engine, &names, &user, &state);
            let engine_fixes = engine_fixes
                .iter_mut()
                .find(|(sku_id, group_id, _)| *sku_id == state.sku_id && *group_id == state.assigned_by_group)
                .map(|(_, _, fixes)| std::mem::take(fixes))
                .unwrap_or_default();
            AssignmentRow {
                engine_fixes,
                product_name: names.product_name(state.sku_id),
                group: state
                    .assigned_by_group
                    .map(|group_id| (group_id, group_name(engine, group_id))),
                path: state
                    .assigned_by_group
                    .and_then(|group_id| engine.licensing_path_text(user_id, group_id)),
                reason,
                fixes,
                state,
            }
        })
        .collect();
    let effective_plans = engine
        .user_effective_plans(user_id)?
        .into_iter()
        .map(|plan_id| names.plan_name(plan_id))
        .collect();
    let groups = engine
        .user_transitive_member_of(user_id)?
        .into_iter()
        .map(|group_id| group_membership(engine, &user, group_id))
        .collect();
    Ok(UserPage {
        tenant_name: engine.settings().display_name.clone(),
        tenant_usage_location: engine.settings().default_usage_location,
        user,
        names,
        assignments,
        effective_plans,
        groups,
        transitive_licensing: engine.settings().transitive_licensing,
        pending_self_healing: engine.pending_self_healing(user_id).cloned(),
        last_self_healing: engine.last_self_healing(user_id).cloned(),
    })
}

/// `GET /users/{id}`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let user_id = parse_id(&user_id, IdKind::User)?;
    render(&context, user_id, None, query.first("done")).await
}

/// Plan ids for `?change=`.
fn plan_list(plans: &[Uuid]) -> String {
    plans.iter().map(Uuid::to_string).collect::<Vec<_>>().join(",")
}

fn fix_item(context: &ConsoleContext, user: &UserView, fix: &Fix) -> Markup {
    let may_licenses = context.may(ConsoleAction::ChangeLicenses);
    html! {
        li {
            @match fix {
                Fix::RemoveDirectLicense { sku_id, product_name } => {
                    form.inline method="post" action={ "/users/" (user.id) "/licenses/" (sku_id) "/remove" }
                        data-confirm={ "Remove the direct " (product_name) " license from " (user.user_principal_name) "?" } {
                        button.secondary type="submit" disabled[!may_licenses] { "Remove the direct " (product_name) " license" }
                    }
                    " if it is redundant."
                }
                Fix::EditDirectPlans { sku_id, product_name, plans } => {
                    a href={ "/users/" (user.id) "/licenses/edit?sku_id=" (sku_id) "&change=" (plan_list(plans)) } { "Disable plans in the direct " (product_name) " license" }
                }
                Fix::EditGroupPlans { group_id, group_name, sku_id, product_name, plans } => {
                    a href={ "/groups/" (group_id) "/licenses/edit?sku_id=" (sku_id) "&change=" (plan_list(plans)) } {
                        "Disable plans in " (product_name) " of the group " (group_name)
                    }
                    " (changes it for every member)."
                }
                Fix::BuySeats { sku_id, product_name } => {
                    a href={ "/products/" (sku_id) "#seats" } { "Buy more " (product_name) " licenses" }
                }
                Fix::FreeSeats { sku_id, product_name } => {
                    a href={ "/products/" (sku_id) } { "Free " (product_name) " licenses" }
                    " from users or groups that no longer need them."
                }
                Fix::ChangeUsageLocation => {
                    a href="#usage-location" { "Correct the usage location" } " if it does not reflect where the user is."
                }
                Fix::RemoveFromGroup { group_id, group_name } => {
                    form.inline method="post" action={ "/groups/" (group_id) "/members/" (user.id) "/remove" }
                        data-confirm={ "Remove " (user.user_principal_name) " from " (group_name) "? The user loses the licenses the group gives." } {
                        input type="hidden" name="return_to" value={ "/users/" (user.id) };
                        button.secondary type="submit" disabled[!context.may(ConsoleAction::ChangeMembers)] {
                            "Remove the user from " (group_name)
                        }
                    }
                }
                Fix::EditProxyAddresses => {
                    a href="#proxy-addresses" { "Fix the duplicate proxy address" }
                }
                Fix::OpenUser { user_id, label } => {
                    "Or fix it on the other user: " a href={ "/users/" (user_id) } { (label) }
                }
                Fix::ResolveSibling { product_name } => {
                    "Resolve the error of " (product_name) " from the same group first (a group's products are assigned together)."
                }
            }
        }
    }
}

fn assignments_table(context: &ConsoleContext, page: &UserPage) -> Markup {
    let user = &page.user;
    html! {
        @if page.assignments.is_empty() {
            p.muted { "The user has no license assignment." }
        } @else {
            // On a phone each assignment is a card (`table.stack`): the errors and their fixes stay
            // on screen instead of in a fourth column out of sight.
            table.stack.assignments {
                thead {
                    tr {
                        th scope="col" { "Product" }
                        th scope="col" { "Assignment path" }
                        th scope="col" { "State" }
                        th scope="col" { "Error, reason and fixes" }
                    }
                }
                tbody {
                    @for row in &page.assignments {
                        tr data-error=[row.state.error.map(|kind| kind.as_str())] {
                            th scope="row" { a href={ "/products/" (row.state.sku_id) } { (row.product_name) } }
                            td data-label="Assignment path" {
                                @match &row.group {
                                    Some((group_id, name)) => {
                                        "Inherited from " a href={ "/groups/" (group_id) } { (name) }
                                        @if let Some(path) = &row.path { br; span.path data-testid="licensed-through" { (path) } }
                                    },
                                    None => "Direct",
                                }
                            }
                            td data-label="State" { (state_badge(row.state.state)) }
                            td data-label="Error" {
                                @if let Some(kind) = row.state.error {
                                    strong { (error_title(kind)) }
                                    @if let Some(reason) = &row.reason { p.reason { (reason) } }
                                    p.reason { a href={ "/users/" (user.id) "/diagnosis" } { "Diagnosis: what it involves, fixes and their predicted effect" } }
                                    @if !row.engine_fixes.is_empty() {
                                        p.reason { "Fixes (the same as on Diagnosis), applied at once:" }
                                        ul.fixes.engine-fixes {
                                            @for fix in &row.engine_fixes {
                                                li data-fix=(fix.kind.as_str()) {
                                                    (page.names.humanize(&fix.description)) " "
                                                    @if context.may(ConsoleAction::ChangeLicenses) {
                                                        (super::diagnosis::apply_form(user.id, row.state.sku_id,
                                                            row.state.assigned_by_group.map_or(AssignmentSource::Direct, AssignmentSource::Group),
                                                            fix, &page.names, true))
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    @if !row.fixes.is_empty() {
                                        p.reason { "Or make the change yourself:" }
                                        ul.fixes {
                                            @for fix in &row.fixes { (fix_item(context, user, fix)) }
                                        }
                                    }
                                } @else {
                                    span.muted { "None" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render(
    context: &ConsoleContext,
    user_id: Uuid,
    refusal: Option<(RefusalAt, ConsoleError)>,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    render_page(context, user_id, refusal, done, None).await
}

/// The page; with `attributes`, the typed directory attributes and the preview of saving them.
async fn render_page(
    context: &ConsoleContext,
    user_id: Uuid,
    refusal: Option<(RefusalAt, ConsoleError)>,
    done: Option<&str>,
    attributes: Option<AttributesForm>,
) -> Result<Response, ConsoleError> {
    let result = change_result(context, done).await?;
    let page = context.read(move |engine| user_page(engine, user_id)).await?;
    // The user's recent audit records: license changes, membership, self-healing runs.
    let history = if context
        .role
        .may_read(licensd_runtime::access::ReadScope::AuditLog)
    {
        let query = licensd_store::AuditQuery {
            target_id: Some(user_id),
            limit: 10,
            ..Default::default()
        };
        Some(context.audit_records(query).await?)
    } else {
        None
    };
    let user = &page.user;
    let refusal_at = |place: RefusalAt| {
        html! {
            @if let Some((at, refusal)) = &refusal {
                @if *at == place { (refusal.message_box()) }
            }
        }
    };
    let may_licenses = context.may(ConsoleAction::ChangeLicenses);
    let may_users = context.may(ConsoleAction::ChangeUsers);
    let errors = page
        .assignments
        .iter()
        .filter(|row| row.state.error.is_some())
        .count();
    let direct_ids: BTreeSet<Uuid> = user
        .direct_licenses
        .iter()
        .map(|license| license.sku_id)
        .collect();
    let content = html! {
        h1 { (user.display_name) }
        p.subtitle {
            (user.user_principal_name) " · "
            @if user.account_enabled { "Account enabled" } @else { "Account disabled" }
            " · " span.muted { (user.id) }
        }
        (result)
        div.actions {
            form.inline method="post" action={ "/users/" (user.id) "/reprocess" }
                hx-post={ "/users/" (user.id) "/reprocess" } hx-target="#user-processing" hx-swap="outerHTML" {
                button type="submit" disabled[!context.may(ConsoleAction::Reprocess)] { "Reprocess" }
            }
            div id="user-processing" {}
        }
        h2 id="licenses" { "License assignments" }
        @if errors > 0 {
            p { strong { (errors) " of " (page.assignments.len()) " assignments are in error." } }
        }
        (super::diagnosis::self_healing_notice(page.pending_self_healing.as_ref(), page.last_self_healing.as_ref(), errors > 0))
        (refusal_at(RefusalAt::Assignments))
        (assignments_table(context, &page))
        h2 { "Effective service plans" }
        @if page.effective_plans.is_empty() {
            p.muted { "No plan is in effect." }
        } @else {
            ul.plans.columns { @for plan in &page.effective_plans { li { (plan) } } }
        }
        h2 id="direct" { "Direct licenses" }
        (refusal_at(RefusalAt::DirectLicenses))
        @if user.direct_licenses.is_empty() {
            p.muted { "No product is assigned directly." }
        } @else {
            table {
                thead { tr { th scope="col" { "Product" } th scope="col" { "Disabled plans" } th scope="col" { span.muted { "Actions" } } } }
                tbody {
                    @for license in &user.direct_licenses {
                        @let product_name = page.names.product_name(license.sku_id);
                        tr {
                            th scope="row" { (product_name) }
                            td {
                                @if license.disabled_plans.is_empty() { span.muted { "None" } }
                                ul.plans { @for plan_id in &license.disabled_plans { li.plan-off { (page.names.plan_name(*plan_id)) } } }
                            }
                            td {
                                @if may_licenses {
                                    div.actions {
                                        a.button.secondary href={ "/users/" (user.id) "/licenses/edit?sku_id=" (license.sku_id) } {
                                            "Edit plans" span.visually-hidden { " of " (product_name) }
                                        }
                                        form.inline method="post" action={ "/users/" (user.id) "/licenses/" (license.sku_id) "/remove" }
                                            data-confirm={ "Remove the direct " (product_name) " license from " (user.user_principal_name) "?" } {
                                            button.danger type="submit" { "Remove" span.visually-hidden { " " (product_name) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if may_licenses {
            form.search method="get" action={ "/users/" (user.id) "/licenses/edit" } {
                label for="assign-product" { "Assign a product directly" }
                select id="assign-product" name="sku_id" {
                    @for product in page.names.products.iter().filter(|product| !direct_ids.contains(&product.sku_id)) {
                        option value=(product.sku_id) { (product.display_name) " (" (super::format::count(product.available_units)) " available)" }
                    }
                }
                button type="submit" { "Choose plans" }
            }
            @let addable: Vec<_> = page.names.products.iter().filter(|product| !direct_ids.contains(&product.sku_id)).collect();
            (super::add_products::form(&format!("/users/{}/licenses/add", user.id), "assign-several", &addable, "Assign them"))
        }
        h2 id="usage-location" { "Usage location" }
        (refusal_at(RefusalAt::UsageLocation))
        p {
            @match user.usage_location {
                Some(location) => { "The user's usage location is " strong { (country(location.as_str())) } "." },
                None => {
                    "The user has no usage location"
                    @match page.tenant_usage_location {
                        Some(location) => { " and inherits the tenant's, " strong { (country(location.as_str())) } "." },
                        None => { ", and the tenant has no default: group licenses cannot be assigned." },
                    }
                },
            }
        }
        @if may_users {
            // With htmx a refusal replaces the page in place and keeps this form in view (the
            // address stays the user's page); without it the form posts as usual.
            form.search method="post" action={ "/users/" (user.id) "/usage-location" }
                hx-post={ "/users/" (user.id) "/usage-location" } hx-target="#main" hx-select="#main"
                hx-swap="outerHTML show:#usage-location:top" {
                label for="usage-location-input" { "Usage location (two letters, such as US; empty for the tenant's default)" }
                input id="usage-location-input" type="text" name="usage_location" maxlength="2" size="3"
                    autocomplete="off" value=[user.usage_location.map(|location| location.to_string())];
                button type="submit" { "Save usage location" }
            }
        }
        h2 id="proxy-addresses" { "Proxy addresses" }
        (refusal_at(RefusalAt::ProxyAddresses))
        @if user.proxy_addresses.is_empty() {
            p.muted { "None." }
        } @else {
            ul.plans { @for address in &user.proxy_addresses { li { code { (address) } } } }
        }
        @if may_users {
            form.stacked method="post" action={ "/users/" (user.id) "/proxy-addresses" }
                hx-post={ "/users/" (user.id) "/proxy-addresses" } hx-target="#main" hx-select="#main"
                hx-swap="outerHTML show:#proxy-addresses:top" {
                label for="proxy-addresses-input" { "Proxy addresses, one per line (SMTP: primary, smtp: secondary)" }
                textarea id="proxy-addresses-input" name="proxy_addresses" rows="3" {
                    @for address in &user.proxy_addresses { (address) "\n" }
                }
                div.actions { button type="submit" { "Save proxy addresses" } }
            }
        }
        h2 id="attributes" { "Directory attributes" }
        (refusal_at(RefusalAt::Attributes))
        (attributes_section(user, may_users, attributes.as_ref()))
        h2 id="groups" { "Groups, and why the user is in each" }
        @if page.groups.is_empty() {
            p.muted { "The user is a member of no group." }
        } @else {
            table data-testid="user-groups" {
                thead { tr {
                    th scope="col" { "Group" }
                    th scope="col" { "Why the user is in it" }
                    th scope="col" { "Its products" }
                } }
                tbody {
                    @for membership in &page.groups {
                        tr data-group=(membership.name) {
                            th scope="row" { a href={ "/groups/" (membership.group_id) } { (membership.name) } }
                            td {
                                @match &membership.reason {
                                    MembershipReason::Direct => "Direct member",
                                    MembershipReason::Rule { rule, paused, matches } => {
                                        "Matched the group's rule " code { (rule) }
                                        @if *paused && !*matches { " — no longer matches; kept while the rule is paused" }
                                        @else if *paused { " (the rule is paused)" }
                                    },
                                    MembershipReason::Nested { path } => {
                                        "Through nesting, " (path)
                                    },
                                }
                            }
                            td {
                                @if !membership.licensed { span.muted { "None" } }
                                @else if matches!(membership.reason, MembershipReason::Nested { .. }) && !page.transitive_licensing {
                                    "Not received: transitive licensing is off, only direct members are licensed"
                                } @else { "Received" }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(history) = &history {
            h2 { "History" }
            @if history.is_empty() {
                p.muted { "No recorded change of this user yet." }
            } @else {
                ul.history {
                    @for stored in history {
                        li data-activity=(stored.record.activity) {
                            (time(stored.record.activity_date_time)) " · "
                            strong { (stored.record.activity) } " by " (stored.record.actor_name)
                            @if stored.record.result != "success" { " · " strong { "failed" } }
                            @if !stored.record.result_reason.is_empty() { " — " (stored.record.result_reason) }
                        }
                    }
                }
                p { a href={ "/activity" } { "All activity" } }
            }
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
            &user.display_name,
            Some(Section::Users),
            Some(&page.tenant_name),
            content,
        ),
    ))
}

/// A directory attribute's label.
fn attribute_label(attribute: UserAttribute) -> String {
    if let Some(number) = attribute.extension_number() {
        return format!("Extension attribute {number}");
    }
    match attribute {
        UserAttribute::DEPARTMENT => "Department",
        UserAttribute::JOB_TITLE => "Job title",
        UserAttribute::COMPANY_NAME => "Company name",
        UserAttribute::OFFICE_LOCATION => "Office location",
        UserAttribute::CITY => "City",
        UserAttribute::STATE => "State or province",
        UserAttribute::COUNTRY => "Country or region",
        UserAttribute::EMPLOYEE_ID => "Employee ID",
        UserAttribute::EMPLOYEE_TYPE => "Employee type",
        UserAttribute::MAIL => "Mail",
        UserAttribute::USER_TYPE => "User type",
        _ => attribute.name(),
    }
    .to_string()
}

fn attribute_input(
    user: &UserView,
    attribute: UserAttribute,
    editable: bool,
    form: Option<&AttributesForm>,
) -> Markup {
    let id = format!("attribute-{}", attribute.name());
    let typed = form.and_then(|form| {
        form.typed
            .iter()
            .find(|(typed, _)| *typed == attribute)
            .map(|(_, value)| value.as_str())
    });
    let value = match typed {
        Some("") => None,
        Some(typed) => Some(typed),
        None => user.attributes.get(&attribute).map(String::as_str),
    };
    html! {
        div.field data-attribute=(attribute.name()) {
            label for=(id) { (attribute_label(attribute)) " " span.muted { "(" code { "user." (attribute.name()) } ")" } }
            @if editable {
                input id=(id) type="text" name={ "attr_" (attribute.name()) } value=[value]
                    maxlength=(attribute.max_length()) autocomplete="off";
            } @else {
                output id=(id) { @match value { Some(value) => (value), None => span.muted { "Not set" } } }
            }
        }
    }
}

/// The user's directory attributes (what dynamic group rules read), editable when the role may
/// change users.
fn attributes_section(user: &UserView, editable: bool, form: Option<&AttributesForm>) -> Markup {
    let extensions_set = UserAttribute::all()
        .filter(|attribute| attribute.extension_number().is_some())
        .filter(|attribute| user.attributes.contains_key(attribute))
        .count();
    let fields = html! {
        div.attribute-fields {
            @for attribute in UserAttribute::top_level() { (attribute_input(user, attribute, editable, form)) }
        }
        details open[extensions_set > 0] {
            summary { "On-premises extension attributes (" (extensions_set) " set)" }
            div.attribute-fields {
                @for attribute in UserAttribute::all().filter(|attribute| attribute.extension_number().is_some()) {
                    (attribute_input(user, attribute, editable, form))
                }
            }
        }
    };
    html! {
        p.muted { "Dynamic groups' rules read these (" code { "user.department -eq \"Sales\"" } "): a change moves the user in or out of those groups, and their licenses follow. Empty means not set." }
        @if editable {
            form.stacked method="post" action={ "/users/" (user.id) "/attributes" } {
                (fields)
                @match form {
                    Some(form) => {
                        (form.preview)
                        div.actions {
                            button type="submit" name="confirmed" value="yes" { "Save attributes" }
                            button.secondary type="submit" name="confirmed" value="no" { "Preview again" }
                            a href={ "/users/" (user.id) "#attributes" } { "Cancel" }
                        }
                    }
                    None => {
                        div.actions { button type="submit" name="confirmed" value="no" { "Preview the change" } }
                    }
                }
            }
        } @else {
            (fields)
        }
    }
}

/// The typed directory attributes and the preview of saving them.
struct AttributesForm {
    /// Every attribute the form sent, as typed (trimmed; empty clears).
    typed: Vec<(UserAttribute, String)>,
    preview: Markup,
}

/// What saving a user's attributes would do: the dynamic groups the user would join and leave,
/// the licenses gained and lost, then the what-if's seats and errors.
fn attributes_preview(engine: &Engine, report: &licensd_engine::WhatIfReport, user_id: Uuid) -> Markup {
    let names = ProductNames::of(engine);
    let mut joins = Vec::new();
    let mut leaves = Vec::new();
    for membership in &report.memberships {
        let group = (membership.group_id, membership.display_name.clone());
        if membership.joined_users.contains(&user_id) {
            joins.push(group);
        } else if membership.left_users.contains(&user_id) {
            leaves.push(group);
        }
    }
    joins.sort_by(|a, b| a.1.cmp(&b.1));
    leaves.sort_by(|a, b| a.1.cmp(&b.1));
    let (gained, lost): (Vec<String>, Vec<String>) = match report.user(user_id) {
        Some(prediction) => (
            prediction
                .seats_consumed
                .iter()
                .map(|id| names.product_name(*id))
                .collect(),
            prediction
                .seats_freed
                .iter()
                .map(|id| names.product_name(*id))
                .collect(),
        ),
        None => (Vec::new(), Vec::new()),
    };
    let group_links = |groups: &[(Uuid, String)]| {
        html! {
            @for (index, (id, name)) in groups.iter().enumerate() {
                @if index > 0 { ", " }
                a href={ "/groups/" (id) } { (name) }
            }
        }
    };
    html! {
        section.preview data-testid="attributes-preview" aria-labelledby="attributes-preview-title" {
            h3 id="attributes-preview-title" { "Preview: the dynamic groups and licenses this change moves" }
            (layout::message(layout::MessageKind::Information, html! {
                @if joins.is_empty() && leaves.is_empty() {
                    p data-testid="group-changes" { "The user would join and leave no dynamic group." }
                } @else {
                    ul data-testid="group-changes" {
                        @if !joins.is_empty() { li data-field="joins" { "Joins " (group_links(&joins)) } }
                        @if !leaves.is_empty() { li data-field="leaves" { "Leaves " (group_links(&leaves)) } }
                    }
                }
                @if gained.is_empty() && lost.is_empty() {
                    p data-testid="license-changes" { "No license would be gained or lost." }
                } @else {
                    p data-testid="license-changes" {
                        @if !gained.is_empty() { "Gains " (gained.join(", ")) }
                        @if !gained.is_empty() && !lost.is_empty() { "; " }
                        @if !lost.is_empty() {
                            @if gained.is_empty() { "Loses " } @else { "loses " }
                            (lost.join(", "))
                        }
                        "."
                    }
                }
            }))
            (super::preview::panel(&names, report))
        }
    }
}

/// `POST /users/{id}/attributes`: previews (`confirmed` other than `yes`) or sets the typed
/// directory attributes; an emptied one is cleared, the ones not in the form stay.
pub async fn save_attributes(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeUsers)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let user = context.read(move |engine| existing_user(engine, user_id)).await?;
    let mut changes = licensd_engine::UserAttributeChanges::new();
    let mut typed_values = Vec::new();
    for attribute in UserAttribute::all() {
        let Some(typed) = fields.first(&format!("attr_{}", attribute.name())) else {
            continue;
        };
        let typed = typed.trim();
        typed_values.push((attribute, typed.to_string()));
        let current = user.attributes.get(&attribute).map(String::as_str);
        if typed.is_empty() {
            if current.is_some() {
                changes.insert(attribute, None);
            }
        } else if current != Some(typed) {
            changes.insert(attribute, Some(typed.to_string()));
        }
    }
    if changes.is_empty() {
        return Ok(see_other(&Done::AttributesSaved.on(&format!("/users/{user_id}"))));
    }
    let command = Command::UpdateUser {
        user_id,
        changes: UserChanges {
            attributes: changes,
            ..UserChanges::default()
        },
    };
    if fields.first("confirmed") == Some("yes") {
        return match context.execute(command).await {
            Ok(_) => Ok(see_other(&Done::AttributesSaved.on(&format!("/users/{user_id}")))),
            Err(error) => refused_or(&context, user_id, RefusalAt::Attributes, error).await,
        };
    }
    let commands = vec![command];
    let preview = context
        .read(move |engine| {
            let report = super::preview::predict(engine, &commands)?;
            Ok(attributes_preview(engine, &report, user_id))
        })
        .await;
    match preview {
        Ok(preview) => {
            let form = AttributesForm {
                typed: typed_values,
                preview,
            };
            render_page(&context, user_id, None, None, Some(form)).await
        }
        Err(error) => refused_or(&context, user_id, RefusalAt::Attributes, error).await,
    }
}

/// Renders a refusal on the user's page, or passes other errors on.
async fn refused_or(
    context: &ConsoleContext,
    user_id: Uuid,
    at: RefusalAt,
    error: ConsoleError,
) -> Result<Response, ConsoleError> {
    match error {
        ConsoleError::Refused(refusal) if !refusal.is_not_found() => {
            render(context, user_id, Some((at, ConsoleError::Refused(refusal))), None).await
        }
        other => Err(other),
    }
}

struct EditData {
    tenant_name: String,
    user: UserView,
    toggles: PlanToggles,
    is_new: bool,
}

/// `GET /users/{id}/licenses/edit?sku_id=`: the plan toggles of a direct license.
pub async fn edit_license(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let sku_id = parse_id(
        query
            .non_empty("sku_id")
            .ok_or_else(|| ConsoleError::bad_request("Choose a product (sku_id)."))?,
        IdKind::Product,
    )?;
    let suggested = suggested_plans(&query)?;
    render_edit(&context, user_id, sku_id, None, suggested, None).await
}

async fn render_edit(
    context: &ConsoleContext,
    user_id: Uuid,
    sku_id: Uuid,
    submitted_disabled: Option<BTreeSet<Uuid>>,
    suggested: BTreeSet<Uuid>,
    refusal: Option<ConsoleError>,
) -> Result<Response, ConsoleError> {
    let data = context
        .read(move |engine| {
            let user = existing_user(engine, user_id)?;
            let names = ProductNames::of(engine);
            let current = user
                .direct_licenses
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
                user,
                toggles,
                is_new,
            })
        })
        .await?;
    let user = &data.user;
    let verb = if data.is_new { "Assign" } else { "Edit" };
    let content = html! {
        h1 { (user.display_name) }
        p.subtitle { (user.user_principal_name) }
        h2 { (verb) " " (data.toggles.product_name) " directly " span.muted { "(" (data.toggles.sku_part_number) ")" } }
        @if let Some(refusal) = &refusal { (refusal.message_box()) }
        p { "A direct assignment is checked at once: seats, conflicts, prerequisites and the usage location." }
        (plan_form(&data.toggles, &format!("/users/{}/licenses", user.id), &format!("/users/{}", user.id), SaveStep::Direct))
    };
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("{verb} {} · {}", data.toggles.product_name, user.display_name);
    Ok(html_response(
        status,
        layout::document(&title, Some(Section::Users), Some(&data.tenant_name), content),
    ))
}

/// `POST /users/{id}/licenses`: assigns a product directly or changes its plans.
pub async fn save_license(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let (sku_id, disabled) = context
        .read(move |engine| {
            existing_user(engine, user_id)?;
            submitted_plans(engine, &fields)
        })
        .await?;
    let command = Command::AssignUserLicenses {
        user_id,
        add_licenses: vec![AssignedLicense::with_disabled_plans(
            sku_id,
            disabled.iter().copied(),
        )],
        remove_licenses: Vec::new(),
    };
    match context.execute(command).await {
        Ok(_) => Ok(see_other(&Done::LicenseSaved.on(&format!("/users/{user_id}")))),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            render_edit(
                &context,
                user_id,
                sku_id,
                Some(disabled),
                BTreeSet::new(),
                Some(ConsoleError::Refused(refusal)),
            )
            .await
        }
        Err(error) => Err(error),
    }
}

/// `POST /users/{id}/licenses/{sku}/remove`: removes a direct license.
pub async fn remove_license(
    context: ConsoleContext,
    PathParameters((user_id, sku_id)): PathParameters<(String, String)>,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let sku_id = parse_id(&sku_id, IdKind::Product)?;
    let command = Command::AssignUserLicenses {
        user_id,
        add_licenses: Vec::new(),
        remove_licenses: vec![sku_id],
    };
    match context.execute(command).await {
        Ok(_) => Ok(see_other(&Done::LicenseRemoved.on(&format!("/users/{user_id}")))),
        Err(error) => refused_or(&context, user_id, RefusalAt::Assignments, error).await,
    }
}

/// `POST /users/{id}/usage-location`: sets (or clears, when empty) the usage location.
pub async fn save_usage_location(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeUsageLocation)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let typed = fields
        .first("usage_location")
        .unwrap_or("")
        .trim()
        .to_ascii_uppercase();
    let usage_location = if typed.is_empty() {
        None
    } else {
        match CountryCode::parse(&typed) {
            Ok(location) => Some(location),
            Err(refusal) => {
                return refused_or(&context, user_id, RefusalAt::UsageLocation, refusal.into()).await
            }
        }
    };
    let command = Command::UpdateUser {
        user_id,
        changes: UserChanges {
            usage_location: Some(usage_location),
            ..UserChanges::default()
        },
    };
    match context.execute(command).await {
        Ok(_) => Ok(after_change(
            &context,
            &Done::UsageLocationSaved.on(&format!("/users/{user_id}")),
        )),
        Err(error) => refused_or(&context, user_id, RefusalAt::UsageLocation, error).await,
    }
}

/// `POST /users/{id}/proxy-addresses`: replaces the proxy addresses (one per line).
pub async fn save_proxy_addresses(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeUsers)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    let mut addresses = Vec::new();
    for line in fields.first("proxy_addresses").unwrap_or("").lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match ProxyAddress::parse(line) {
            Ok(address) => addresses.push(address),
            Err(refusal) => {
                return refused_or(&context, user_id, RefusalAt::ProxyAddresses, refusal.into()).await
            }
        }
    }
    let command = Command::UpdateUser {
        user_id,
        changes: UserChanges {
            proxy_addresses: Some(addresses),
            ..UserChanges::default()
        },
    };
    match context.execute(command).await {
        Ok(_) => Ok(after_change(
            &context,
            &Done::ProxyAddressesSaved.on(&format!("/users/{user_id}")),
        )),
        Err(error) => refused_or(&context, user_id, RefusalAt::ProxyAddresses, error).await,
    }
}

/// `POST /users/{id}/reprocess`: queues the user; htmx gets the tenant's processing panel.
pub async fn reprocess(
    context: ConsoleContext,
    PathParameters(user_id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::Reprocess)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    context.execute(Command::ReprocessUser { user_id }).await?;
    if context.is_htmx {
        let activity = context.read(|engine| Ok(tenant_activity(engine))).await?;
        Ok(poll_answer(
            &context,
            activity.is_busy(),
            activity_panel(&activity),
        ))
    } else {
        Ok(see_other(&Done::ReprocessQueued.on(&format!("/users/{user_id}"))))
    }
}
