//! The groups list (`/groups`): searchable by name or id, paged on the server, each group with
//! its products, processing state and a badge counting its users in error. `?filter=errors` is
//! the portal's list of groups with errors, where the overview's information box leads.

use axum::response::Response;
use licensd_engine::{GroupView, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::{IdKind, QueryFields};
use super::layout::{self, error_count_badge, page_notices, pager, processing_badge, search_form, Section};
use super::names::ProductNames;
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct GroupRow {
    view: GroupView,
    product_names: Vec<String>,
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
                rows.push(GroupRow { view, product_names });
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
            a href="/groups" aria-current=[(!only_errors).then_some("page")] { "All groups (" (data.all_groups) ")" }
            a href="/groups?filter=errors" aria-current=[only_errors.then_some("page")] {
                "Groups with errors (" (data.groups_with_errors) ")"
            }
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
                                td.number { (row.view.member_count) }
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
