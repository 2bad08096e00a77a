//! The tenant advisor (`/advisor`): where licenses cost money for nothing and where errors are
//! about to happen — redundant direct assignments, disabled accounts holding seats, add-ons at
//! risk, products near exhaustion and the seats that acting on the findings would free — each
//! finding linking to its user, group and product. The findings that can be acted on (the first
//! two) carry an **Apply** button that runs exactly the advisor's commands for that finding,
//! through the same commands as every other change.

use axum::response::Response;
use licensd_engine::advisor::{AdvisorReport, Redundancy};
use licensd_engine::{Command, Engine, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, QueryFields};
use super::layout::{self, message, MessageKind, Section};

/// The kinds of finding that can be applied from the page (the `finding` form field).
const REDUNDANT: &str = "redundant-direct-assignment";
const DISABLED_ACCOUNT: &str = "disabled-account-seats";
/// `?done=` after a finding was applied.
const DONE_APPLIED: &str = "fix-applied";

fn user_link(user_id: Uuid, user_principal_name: &str) -> Markup {
    html! { a href=(format!("/users/{user_id}")) { (user_principal_name) } }
}

fn product_link(sku_id: Uuid, sku_part_number: &str) -> Markup {
    html! { a href=(format!("/products/{sku_id}")) { (sku_part_number) } }
}

fn group_link(group_id: Uuid, display_name: &str) -> Markup {
    html! { a href=(format!("/groups/{group_id}")) { (display_name) } }
}

/// The form applying one finding's commands.
fn apply_form(finding: &str, user_id: Uuid, sku_id: Option<Uuid>, label: &str) -> Markup {
    html! {
        form method="post" action="/advisor/apply" {
            input type="hidden" name="finding" value=(finding);
            input type="hidden" name="user_id" value=(user_id);
            @if let Some(sku_id) = sku_id { input type="hidden" name="sku_id" value=(sku_id); }
            button type="submit" { (label) }
        }
    }
}

fn redundant_section(report: &AdvisorReport) -> Markup {
    html! {
        section id="redundant-direct-assignments" {
            h2 { "Redundant direct assignments (" (report.redundant_direct_assignments.len()) ")" }
            @if report.redundant_direct_assignments.is_empty() {
                p.muted { "No direct assignment is made unnecessary by a group." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "User" } th scope="col" { "Direct product" }
                        th scope="col" { "Given by" } th scope="col" { "Seat freed" } th scope="col" { "Fix" }
                    } }
                    tbody {
                        @for finding in &report.redundant_direct_assignments {
                            tr {
                                th scope="row" { (user_link(finding.user.user_id, &finding.user.user_principal_name)) }
                                td { (product_link(finding.sku_id, &finding.sku_part_number)) }
                                td {
                                    @match &finding.redundancy {
                                        Redundancy::SameProductFromGroup { group_id, group_display_name } => {
                                            "the same product from group " (group_link(*group_id, group_display_name))
                                        }
                                        Redundancy::SupersededByGroupProduct { group_id, group_display_name, sku_id, sku_part_number } => {
                                            (product_link(*sku_id, sku_part_number)) " from group "
                                            (group_link(*group_id, group_display_name))
                                        }
                                    }
                                }
                                td { @if finding.frees_seat { "yes" } @else { "no" } }
                                td {
                                    (apply_form(REDUNDANT, finding.user.user_id, Some(finding.sku_id),
                                        &format!("Remove the direct {} license", finding.sku_part_number)))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn disabled_section(report: &AdvisorReport) -> Markup {
    html! {
        section id="disabled-accounts" {
            h2 { "Disabled accounts holding seats (" (report.disabled_accounts_holding_seats.len()) ")" }
            @if report.disabled_accounts_holding_seats.is_empty() {
                p.muted { "No disabled account holds a seat." }
            } @else {
                table {
                    thead { tr { th scope="col" { "User" } th scope="col" { "Seats held" } th scope="col" { "Fix" } } }
                    tbody {
                        @for finding in &report.disabled_accounts_holding_seats {
                            tr {
                                th scope="row" { (user_link(finding.user.user_id, &finding.user.user_principal_name)) }
                                td { @for (index, (sku_id, part)) in finding.products.iter().enumerate() {
                                    @if index > 0 { ", " } (product_link(*sku_id, part))
                                } }
                                td { (apply_form(DISABLED_ACCOUNT, finding.user.user_id, None,
                                    "Remove its licenses and licensed groups")) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn risk_sections(report: &AdvisorReport) -> Markup {
    html! {
        section id="add-on-risks" {
            h2 { "Add-ons at risk (" (report.add_on_risks.len()) ")" }
            @if report.add_on_risks.is_empty() {
                p.muted { "Every group's add-on plans have their prerequisites." }
            } @else {
                ul {
                    @for risk in &report.add_on_risks {
                        li {
                            "Group " (group_link(risk.group_id, &risk.display_name)) ": "
                            (risk.add_on_plan.display_name) " of " a href=(format!("/products/{}", risk.add_on_sku_id)) { "its product" }
                            " — " (risk.members_at_risk) " of " (risk.members_without_own_prerequisite)
                            " member(s) without their own prerequisite do not get it. " (risk.reason)
                        }
                    }
                }
            }
        }
        section id="products-near-exhaustion" {
            h2 { "Products near exhaustion (" (report.products_near_exhaustion.len()) ")" }
            @if report.products_near_exhaustion.is_empty() {
                p.muted { "Every product has seats for the demand already known." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Product" } th scope="col" class="number" { "Purchased" }
                        th scope="col" class="number" { "Available" } th scope="col" class="number" { "Waiting" }
                        th scope="col" class="number" { "Queued demand" } th scope="col" class="number" { "Short by" }
                    } }
                    tbody {
                        @for product in &report.products_near_exhaustion {
                            tr data-sku=(product.sku_part_number) {
                                th scope="row" { (product_link(product.sku_id, &product.sku_part_number)) }
                                td.number { (product.prepaid_units) }
                                td.number { (product.available_units) }
                                td.number { (product.waiting_users) }
                                td.number { (product.queued_demand) }
                                td.number data-field="shortfall" { (product.shortfall) }
                            }
                        }
                    }
                }
            }
        }
        section id="reclaimable-seats" {
            h2 { "Reclaimable seats" }
            @if report.reclaimable_seats.is_empty() {
                p.muted { "Acting on the findings would free no seat." }
            } @else {
                ul {
                    @for (sku_id, part, seats) in &report.reclaimable_seats {
                        li { (product_link(*sku_id, part)) ": " (seats) " seat(s)" }
                    }
                }
            }
            p { "What licenses cost, idle seats and why: " a href="/spend" { "Spend" } "." }
        }
    }
}

/// `GET /advisor`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let (tenant_name, report) = context
        .read(|engine| Ok((engine.settings().display_name.clone(), engine.advise())))
        .await?;
    let content = html! {
        h1 { "Advisor" }
        p { "Where licenses cost money for nothing and where errors are about to happen. "
            "Apply runs exactly the finding's changes; the users concerned are then processed again." }
        @if query.first("done") == Some(DONE_APPLIED) {
            (message(MessageKind::Success, html! { "The fix was applied. The users concerned are queued for processing." }))
        }
        (redundant_section(&report))
        (disabled_section(&report))
        (risk_sections(&report))
    };
    Ok(layout::page("Advisor", Section::Advisor, &tenant_name, content))
}

/// The commands of the finding a form names, from a fresh report.
fn finding_commands(
    engine: &Engine,
    finding: &str,
    user_id: Uuid,
    sku_id: Option<Uuid>,
) -> Result<Vec<Command>, ConsoleError> {
    let report = engine.advise();
    let commands = match (finding, sku_id) {
        (REDUNDANT, Some(sku_id)) => report
            .redundant_direct_assignments
            .into_iter()
            .find(|finding| finding.user.user_id == user_id && finding.sku_id == sku_id)
            .map(|finding| finding.commands),
        (DISABLED_ACCOUNT, _) => report
            .disabled_accounts_holding_seats
            .into_iter()
            .find(|finding| finding.user.user_id == user_id)
            .map(|finding| finding.commands),
        (REDUNDANT, None) => return Err(ConsoleError::bad_request("Choose the direct license to remove.")),
        (other, _) => {
            return Err(ConsoleError::bad_request(format!(
                "'{other}' is not a finding of the advisor."
            )))
        }
    };
    commands.ok_or_else(|| ConsoleError::bad_request("This finding is gone: nothing to apply."))
}

/// `POST /advisor/apply`: finds the named finding in a fresh report and runs its commands in
/// order (each checked and audited as any change).
pub async fn apply(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    let finding = form.required("finding", "finding")?.to_string();
    let user_id = parse_id(form.required("user_id", "user")?, IdKind::User)?;
    let sku_id = match form.first("sku_id").map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_id(text, IdKind::Product)?),
    };
    let commands = context
        .read(move |engine| finding_commands(engine, &finding, user_id, sku_id))
        .await?;
    for command in commands {
        context.execute(command).await?;
    }
    Ok(see_other(&format!("/advisor?done={DONE_APPLIED}")))
}
