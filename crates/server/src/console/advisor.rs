//! The tenant advisor (`/advisor`): where licenses cost money for nothing and where errors are
//! about to happen — redundant direct assignments, disabled accounts holding seats, add-ons at
//! risk, products near exhaustion and the seats that acting on the findings would free — each
//! finding linking to its user, group and product. The findings that can be acted on (the first
//! two) carry an **Apply** button that runs exactly the advisor's commands for that finding,
//! through the same commands as every other change.
//!
//! At 100,000 users the lists hold a thousand findings and more: each list is paged on its own
//! (`?redundant_page=`, `?disabled_page=`, `?risks_page=`; 25 rows, `per_page` up to 5,000) and
//! the page can be narrowed to one product or to users whose name contains some text.

use axum::response::Response;
use licensd_engine::advisor::{AdvisorReport, Redundancy};
use licensd_engine::{Command, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::format::count;
use super::forms::{parse_id, see_other, FormFields, IdKind, QueryFields};
use super::layout::{self, Done, Section};
use super::names::ProductNames;

/// The kinds of finding that can be applied from the page (the `finding` form field).
const REDUNDANT: &str = "redundant-direct-assignment";
const DISABLED_ACCOUNT: &str = "disabled-account-seats";
/// Rows per list and page, unless `per_page` says otherwise.
const PER_PAGE: usize = 25;
/// The largest `per_page` accepted.
const MAX_PER_PAGE: usize = 5_000;

/// What the page shows: filters and the page of each list.
#[derive(Clone, Debug)]
struct View {
    product: Option<Uuid>,
    user: Option<String>,
    per_page: usize,
    redundant_page: usize,
    disabled_page: usize,
    risks_page: usize,
}

impl View {
    fn of(query: &QueryFields) -> Result<View, ConsoleError> {
        let number = |name: &str, default: usize, maximum: usize| -> Result<usize, ConsoleError> {
            match query.non_empty(name) {
                None => Ok(default),
                Some(text) => text
                    .parse::<usize>()
                    .ok()
                    .filter(|value| (1..=maximum).contains(value))
                    .ok_or_else(|| {
                        ConsoleError::bad_request(format!(
                            "'{text}' is not a valid {name} (a whole number from 1 to {maximum})."
                        ))
                    }),
            }
        };
        Ok(View {
            product: query
                .non_empty("product")
                .map(|text| parse_id(text, IdKind::Product))
                .transpose()?,
            user: query
                .non_empty("user")
                .map(|text| text.trim().to_lowercase())
                .filter(|text| !text.is_empty()),
            per_page: number("per_page", PER_PAGE, MAX_PER_PAGE)?,
            redundant_page: number("redundant_page", 1, usize::MAX)?,
            disabled_page: number("disabled_page", 1, usize::MAX)?,
            risks_page: number("risks_page", 1, usize::MAX)?,
        })
    }

    fn user_matches(&self, user_principal_name: &str) -> bool {
        self.user
            .as_ref()
            .map_or(true, |text| user_principal_name.to_lowercase().contains(text))
    }

    fn product_matches(&self, sku_id: Uuid) -> bool {
        self.product.map_or(true, |product| product == sku_id)
    }

    /// This page's address with one list moved to `page`.
    fn link(&self, list: &str, page: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(product) = self.product {
            query.append_pair("product", &product.to_string());
        }
        if let Some(user) = &self.user {
            query.append_pair("user", user);
        }
        if self.per_page != PER_PAGE {
            query.append_pair("per_page", &self.per_page.to_string());
        }
        for (name, current) in [
            ("redundant_page", self.redundant_page),
            ("disabled_page", self.disabled_page),
            ("risks_page", self.risks_page),
        ] {
            let value = if name == list { page } else { current };
            if value > 1 {
                query.append_pair(name, &value.to_string());
            }
        }
        format!("/advisor?{}#{}", query.finish(), list.trim_end_matches("_page"))
    }
}

/// The rows of `items` on `page` (1-based) and the number of pages.
fn page_of<T>(items: &[T], page: usize, per_page: usize) -> (&[T], usize) {
    let pages = items.len().div_ceil(per_page).max(1);
    let start = page.saturating_sub(1).saturating_mul(per_page).min(items.len());
    let end = start.saturating_add(per_page).min(items.len());
    (items.get(start..end).unwrap_or(&[]), pages)
}

fn list_pager(view: &View, list: &str, page: usize, pages: usize, total: usize) -> Markup {
    html! {
        @if pages > 1 {
            nav.pager aria-label={ "Pages of " (list.trim_end_matches("_page")) } {
                span.muted { "Page " (count(page.min(pages))) " of " (count(pages)) " · " (count(total)) " findings" }
                @if page > 1 { a rel="prev" href=(view.link(list, page - 1)) { "Previous page" } }
                @if page < pages { a rel="next" href=(view.link(list, page + 1)) { "Next page" } }
            }
        }
    }
}

fn user_link(user_id: Uuid, user_principal_name: &str) -> Markup {
    html! { a href=(format!("/users/{user_id}")) { (user_principal_name) } }
}

/// A product by its display name, the part number secondary.
fn product_link(names: &ProductNames, sku_id: Uuid, sku_part_number: &str) -> Markup {
    html! {
        a href=(format!("/products/{sku_id}")) { (names.product_name(sku_id)) }
        " " span.muted { "(" (sku_part_number) ")" }
    }
}

fn group_link(group_id: Uuid, display_name: &str) -> Markup {
    html! { a href=(format!("/groups/{group_id}")) { (display_name) } }
}

/// The form applying one finding's commands.
fn apply_form(finding: &str, user_id: Uuid, sku_id: Option<Uuid>, label: &str) -> Markup {
    html! {
        form method="post" action="/advisor/apply" data-confirm={ (label) "?" } {
            input type="hidden" name="finding" value=(finding);
            input type="hidden" name="user_id" value=(user_id);
            @if let Some(sku_id) = sku_id { input type="hidden" name="sku_id" value=(sku_id); }
            button type="submit" { (label) }
        }
    }
}

fn redundant_section(names: &ProductNames, view: &View, report: &AdvisorReport) -> Markup {
    let findings: Vec<_> = report
        .redundant_direct_assignments
        .iter()
        .filter(|finding| {
            view.product_matches(finding.sku_id) && view.user_matches(&finding.user.user_principal_name)
        })
        .collect();
    let (rows, pages) = page_of(&findings, view.redundant_page, view.per_page);
    html! {
        section id="redundant" {
            h2 { "Redundant direct assignments (" (count(findings.len())) ")" }
            @if findings.is_empty() {
                p.muted { "No direct assignment is made unnecessary by a group." }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th scope="col" { "User" } th scope="col" { "Direct product" }
                        th scope="col" { "Given by" } th scope="col" { "Seat freed" } th scope="col" { "Fix" }
                    } }
                    tbody {
                        @for finding in rows {
                            tr {
                                th scope="row" { (user_link(finding.user.user_id, &finding.user.user_principal_name)) }
                                td { (product_link(names, finding.sku_id, &finding.sku_part_number)) }
                                td {
                                    @match &finding.redundancy {
                                        Redundancy::SameProductFromGroup { group_id, group_display_name } => {
                                            "the same product from group " (group_link(*group_id, group_display_name))
                                        }
                                        Redundancy::SupersededByGroupProduct { group_id, group_display_name, sku_id, sku_part_number } => {
                                            (product_link(names, *sku_id, sku_part_number)) " from group "
                                            (group_link(*group_id, group_display_name))
                                        }
                                    }
                                }
                                td { @if finding.frees_seat { "yes" } @else { "no" } }
                                td {
                                    (apply_form(REDUNDANT, finding.user.user_id, Some(finding.sku_id),
                                        &format!("Remove the direct {} license from {}", names.product_name(finding.sku_id), finding.user.user_principal_name)))
                                }
                            }
                        }
                    }
                } }
                (list_pager(view, "redundant_page", view.redundant_page, pages, findings.len()))
            }
        }
    }
}

fn disabled_section(names: &ProductNames, view: &View, report: &AdvisorReport) -> Markup {
    let findings: Vec<_> = report
        .disabled_accounts_holding_seats
        .iter()
        .filter(|finding| {
            view.user_matches(&finding.user.user_principal_name)
                && finding
                    .products
                    .iter()
                    .any(|(sku_id, _)| view.product_matches(*sku_id))
        })
        .collect();
    let (rows, pages) = page_of(&findings, view.disabled_page, view.per_page);
    html! {
        section id="disabled" {
            h2 { "Disabled accounts holding seats (" (count(findings.len())) ")" }
            p { "To reclaim idle seats (disabled, inactive or departed users) with a notice period and a revert: "
                a href="/spend/reclamation" { "Reclamation policies" } "." }
            @if findings.is_empty() {
                p.muted { "No disabled account holds a seat." }
            } @else {
                div.table-scroll { table {
                    thead { tr { th scope="col" { "User" } th scope="col" { "Seats held" } th scope="col" { "Fix" } } }
                    tbody {
                        @for finding in rows {
                            tr {
                                th scope="row" { (user_link(finding.user.user_id, &finding.user.user_principal_name)) }
                                td { @for (index, (sku_id, part)) in finding.products.iter().enumerate() {
                                    @if index > 0 { ", " } (product_link(names, *sku_id, part))
                                } }
                                td { (apply_form(DISABLED_ACCOUNT, finding.user.user_id, None,
                                    &format!("Remove the licenses and licensed groups of {}", finding.user.user_principal_name))) }
                            }
                        }
                    }
                } }
                (list_pager(view, "disabled_page", view.disabled_page, pages, findings.len()))
            }
        }
    }
}

fn risk_sections(names: &ProductNames, view: &View, report: &AdvisorReport) -> Markup {
    let risks: Vec<_> = report
        .add_on_risks
        .iter()
        .filter(|risk| view.product_matches(risk.add_on_sku_id))
        .collect();
    let (risk_rows, risk_pages) = page_of(&risks, view.risks_page, view.per_page);
    html! {
        section id="risks" {
            h2 { "Add-ons at risk (" (count(risks.len())) ")" }
            @if risks.is_empty() {
                p.muted { "Every group's add-on plans have their prerequisites." }
            } @else {
                ul {
                    @for risk in risk_rows {
                        li {
                            "Group " (group_link(risk.group_id, &risk.display_name)) ": "
                            (risk.add_on_plan.display_name) " of " a href=(format!("/products/{}", risk.add_on_sku_id)) { (names.product_name(risk.add_on_sku_id)) }
                            " — " (count(risk.members_at_risk)) " of " (count(risk.members_without_own_prerequisite))
                            " member(s) without their own prerequisite do not get it. " (names.humanize(&risk.reason))
                        }
                    }
                }
                (list_pager(view, "risks_page", view.risks_page, risk_pages, risks.len()))
            }
        }
        section id="exhaustion" {
            h2 { "Products near exhaustion (" (count(report.products_near_exhaustion.len())) ")" }
            @if report.products_near_exhaustion.is_empty() {
                p.muted { "Every product has seats for the demand already known." }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th scope="col" { "Product" } th scope="col" class="number" { "Purchased" }
                        th scope="col" class="number" { "Available" } th scope="col" class="number" { "Waiting" }
                        th scope="col" class="number" { "Queued demand" } th scope="col" class="number" { "Short by" }
                    } }
                    tbody {
                        @for product in report.products_near_exhaustion.iter().filter(|product| view.product_matches(product.sku_id)) {
                            tr data-sku=(product.sku_part_number) {
                                th scope="row" { (product_link(names, product.sku_id, &product.sku_part_number)) }
                                td.number { (count(product.prepaid_units)) }
                                td.number { (count(product.available_units)) }
                                td.number { (count(product.waiting_users)) }
                                td.number { (count(product.queued_demand)) }
                                td.number data-field="shortfall" { (count(product.shortfall)) }
                            }
                        }
                    }
                } }
            }
        }
        section id="reclaimable" {
            h2 { "Reclaimable seats" }
            @if report.reclaimable_seats.is_empty() {
                p.muted { "Acting on the findings would free no seat." }
            } @else {
                ul {
                    @for (sku_id, part, seats) in report.reclaimable_seats.iter().filter(|(sku_id, _, _)| view.product_matches(*sku_id)) {
                        li { (product_link(names, *sku_id, part)) ": " (count(*seats)) " seat(s)" }
                    }
                }
            }
            p { "What licenses cost, idle seats and why: " a href="/spend" { "Spend" } ". Reclaim idle seats: "
                a href="/spend/reclamation" { "Reclamation policies" } "." }
        }
    }
}

/// `GET /advisor`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let view = View::of(&query)?;
    let result = super::processing::change_result(&context, query.first("done")).await?;
    let (tenant_name, names, report) = context
        .read_advised(|engine, report| {
            Ok((
                engine.settings().display_name.clone(),
                ProductNames::of(engine),
                report.clone(),
            ))
        })
        .await?;
    let content = html! {
        h1 { "Advisor" }
        (result)
        p { "Where licenses cost money for nothing and where errors are about to happen. "
            "Apply runs exactly the finding's changes; the users concerned are then processed again." }
        form.search.filters role="search" method="get" action="/advisor" {
            div.field {
                label for="advisor-product" { "Product" }
                select #advisor-product name="product" {
                    option value="" selected[view.product.is_none()] { "Every product" }
                    @for product in &names.products {
                        option value=(product.sku_id) selected[view.product == Some(product.sku_id)] { (product.display_name) }
                    }
                }
            }
            div.field {
                label for="advisor-user" { "User name contains" }
                input #advisor-user type="search" name="user" maxlength="200" value=[view.user.as_deref()];
            }
            button type="submit" { "Filter" }
        }
        (redundant_section(&names, &view, &report))
        (disabled_section(&names, &view, &report))
        (risk_sections(&names, &view, &report))
    };
    Ok(layout::page("Advisor", Section::Advisor, &tenant_name, content))
}

/// The commands of the finding a form names, from the report of the engine as it is.
fn finding_commands(
    report: &licensd_engine::AdvisorReport,
    finding: &str,
    user_id: Uuid,
    sku_id: Option<Uuid>,
) -> Result<Vec<Command>, ConsoleError> {
    let report = report.clone();
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
        .read_advised(move |_engine, report| finding_commands(report, &finding, user_id, sku_id))
        .await?;
    for command in commands {
        context.execute(command).await?;
    }
    Ok(see_other(&Done::FixApplied.on("/advisor")))
}
