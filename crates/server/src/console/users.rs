//! The users list (`/users`): searchable by name, principal name or id, paged on the server by
//! a stable key (creation order), each user with the products in effect and a badge counting the
//! assignments in error; `?filter=errors` keeps the users with errors.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{UserView, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::{IdKind, QueryFields};
use super::layout::{self, html_response, page_notices, pager, search_form, Section};
use super::names::ProductNames;
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct UserRow {
    view: UserView,
    products: Vec<String>,
    errors: usize,
}

struct UsersData {
    tenant_name: String,
    rows: Vec<UserRow>,
    page: Page,
    all_users: usize,
    users_with_errors: usize,
}

/// `GET /users`.
pub async fn list(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let request = ListRequest::from_query(&query, IdKind::User)?;
    let only_errors = match query.non_empty("filter") {
        None => false,
        Some("errors") => true,
        Some(other) => {
            return Err(ConsoleError::bad_request(format!(
                "Unknown filter '{other}': the users list knows only filter=errors."
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
            let users_with_errors = engine.users_with_errors();
            let candidates = if only_errors {
                users_with_errors.clone()
            } else {
                engine.user_ids()
            };
            let page = page_of(
                &candidates,
                scan_request.cursor,
                PAGE_SIZE,
                scan_request.scan_budget(),
                |user_id| {
                    search.is_empty()
                        || searched_id == Some(user_id)
                        || engine.user_view(user_id).is_ok_and(|user| {
                            search.matches_any(&[&user.user_principal_name, &user.display_name])
                        })
                },
            );
            let names = ProductNames::of(engine);
            let mut rows = Vec::with_capacity(page.ids.len());
            for user_id in &page.ids {
                let view = engine.user_view(*user_id)?;
                let products = engine
                    .user_assigned_licenses(*user_id)?
                    .iter()
                    .map(|license| names.product_name(license.sku_id))
                    .collect();
                // Counted on the compact records: resolving error details can be costly.
                let errors = engine
                    .user_state_records(*user_id)?
                    .iter()
                    .filter(|record| record.cause.is_some())
                    .count();
                rows.push(UserRow {
                    view,
                    products,
                    errors,
                });
            }
            Ok(UsersData {
                tenant_name: engine.settings().display_name.clone(),
                rows,
                page,
                all_users: engine.user_count(),
                users_with_errors: users_with_errors.len(),
            })
        })
        .await?;
    let filter_value = if only_errors { "errors" } else { "" };
    let keep = [
        ("search", request.search.as_deref().unwrap_or("")),
        ("filter", filter_value),
    ];
    let results = results(&data, &keep);
    if context.targets("list-results") {
        return Ok(html_response(StatusCode::OK, results));
    }
    let title = if only_errors {
        "Users with license errors"
    } else {
        "Users"
    };
    let extra: &[(&str, &str)] = if only_errors { &[("filter", "errors")] } else { &[] };
    let content = html! {
        h1 { (title) }
        nav.tabs aria-label="User lists" {
            a href="/users" aria-current=[(!only_errors).then_some("page")] { "All users (" (data.all_users) ")" }
            a href="/users?filter=errors" aria-current=[only_errors.then_some("page")] {
                "Users with errors (" (data.users_with_errors) ")"
            }
        }
        (search_form("/users", "Search users by name or user principal name", &request, extra))
        (results)
    };
    Ok(layout::page(title, Section::Users, &data.tenant_name, content))
}

fn results(data: &UsersData, keep: &[(&str, &str)]) -> Markup {
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted { "No user matches." }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "Display name" }
                            th scope="col" { "User principal name" }
                            th scope="col" { "Usage location" }
                            th scope="col" { "Products" }
                            th scope="col" { "License errors" }
                        }
                    }
                    tbody {
                        @for row in &data.rows {
                            tr {
                                th scope="row" { a href={ "/users/" (row.view.id) } { (row.view.display_name) } }
                                td { (row.view.user_principal_name) }
                                td {
                                    @match row.view.usage_location {
                                        Some(location) => (location),
                                        None => span.muted { "Not set" },
                                    }
                                }
                                td {
                                    @if row.products.is_empty() { span.muted { "None" } }
                                    @else { (row.products.join(", ")) }
                                }
                                td {
                                    @if row.errors > 0 { span.badge.error { (row.errors) " in error" } }
                                    @else { span.muted { "None" } }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/users", &data.page, keep))
        }
    }
}
