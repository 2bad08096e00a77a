//! The overview page (`/`), the portal's Licenses → Overview: seats per product at a glance, the
//! information box "N groups need your attention" leading to the groups with errors, errors by
//! kind, and what background processing is doing.

use axum::response::Response;
use licensd_engine::TenantOverview;
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::format::count;
use super::layout::{self, message, seat_bar, MessageKind, Section};
use super::names::error_title;
use super::processing::{activity_panel, tenant_activity, TenantActivity};

struct OverviewData {
    tenant_name: String,
    overview: TenantOverview,
    activity: TenantActivity,
}

/// "3 groups need your attention" (or "1 group needs ...").
pub fn attention_text(groups_with_errors: usize) -> String {
    if groups_with_errors == 1 {
        "1 group needs your attention".to_string()
    } else {
        format!("{groups_with_errors} groups need your attention")
    }
}

/// `GET /`.
pub async fn show(context: ConsoleContext) -> Result<Response, ConsoleError> {
    // A fresh tenant opens on the first-run page.
    if context
        .read(|engine| Ok(super::first_run::is_empty(engine)))
        .await?
    {
        return super::first_run::render(&context, None, None).await;
    }
    let data = context
        .read(|engine| {
            Ok(OverviewData {
                tenant_name: engine.settings().display_name.clone(),
                overview: engine.tenant_overview(),
                activity: tenant_activity(engine),
            })
        })
        .await?;
    let overview = &data.overview;
    let content = html! {
        h1 { "Licenses overview" }
        @if overview.groups_with_errors > 0 {
            (message(MessageKind::Warning, html! {
                a.attention href="/groups?filter=errors" data-testid="attention" {
                    strong { (attention_text(overview.groups_with_errors)) }
                    br;
                    (count(overview.users_with_errors)) " users have license errors in these groups. "
                    "Select to see the groups with errors."
                }
            }))
        } @else {
            (message(MessageKind::Success, html! { "No group has users in error." }))
        }
        section.panel aria-labelledby="tenant-figures" {
            h2 id="tenant-figures" { "Tenant" }
            dl.facts {
                dt { "Users" } dd { (count(overview.users)) }
                dt { "Groups" } dd { (count(overview.groups)) " (" (count(overview.licensed_groups)) " with licenses)" }
                dt { "Users with license errors" } dd data-field="users-with-errors" { (count(overview.users_with_errors)) " users (each counted once)" }
            }
            @if !overview.errors_by_kind.is_empty() {
                h3 { "License assignments in error, by error" }
                p.muted {
                    "Counted per assignment: a user with two products in error counts twice here and once above."
                }
                dl.facts {
                    @for (kind, assignments) in &overview.errors_by_kind {
                        dt { (error_title(*kind)) } dd data-error=(kind.as_str()) { (count(*assignments)) " assignments" }
                    }
                }
            }
        }
        section aria-labelledby="seats" {
            h2 id="seats" { "Seats per product" }
            table {
                thead {
                    tr {
                        th scope="col" { "Product" }
                        th scope="col" { "Status" }
                        th scope="col" class="number" { "Purchased" }
                        th scope="col" class="number" { "Assigned" }
                        th scope="col" class="number" { "Available" }
                        th scope="col" { "Usage" }
                    }
                }
                tbody {
                    @for product in &overview.products {
                        tr data-sku=(product.sku_part_number) {
                            th scope="row" {
                                a href={ "/products/" (product.sku_id) } { (product.display_name) }
                                br; span.muted { (product.sku_part_number) }
                            }
                            td.state { (product.capability_status.as_str()) }
                            td.number data-field="purchased" { (count(product.prepaid_units)) }
                            td.number data-field="assigned" { (count(product.consumed_units)) }
                            td.number data-field="available" { (count(product.available_units)) }
                            td { (seat_bar(product)) }
                        }
                    }
                }
            }
            @if overview.products.is_empty() {
                p.muted { "The tenant subscribes to no product yet." }
            }
        }
        section aria-labelledby="activity" {
            h2 id="activity" { "Processing activity" }
            (activity_panel(&data.activity))
        }
    };
    Ok(layout::page(
        "Overview",
        Section::Overview,
        &data.tenant_name,
        content,
    ))
}
