//! The users list (`/users`): searchable by name, principal name or id, paged on the server by
//! a stable key (creation order), each user with the products in effect and a badge counting the
//! assignments in error; `?filter=errors` keeps the users with errors, tenant-wide, filtered by
//! error kind (`kind`) and product (`product`), with their errors named and a bulk action on the
//! selected users (reprocess, or one of Diagnosis's fixes after a preview: [`super::bulk`]).

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{LicenseErrorKind, UserView, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{FormFields, IdKind, QueryFields};
use super::group_errors::{error_filter_fields, ErrorFilters};
use super::layout::{self, html_response, page_notices, pager, search_form, Section};
use super::names::error_title;
use super::names::ProductNames;
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct UserRow {
    view: UserView,
    products: Vec<String>,
    errors: usize,
    /// With `filter=errors`: the errors matching the filters, as (product name, kind).
    error_kinds: Vec<(String, LicenseErrorKind)>,
}

struct UsersData {
    tenant_name: String,
    rows: Vec<UserRow>,
    page: Page,
    all_users: usize,
    users_with_errors: usize,
    names: ProductNames,
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
    let filters = if only_errors {
        ErrorFilters::of(&query)?
    } else {
        ErrorFilters::default()
    };
    let result = super::processing::change_result(&context, query.first("done")).await?;
    let scan_request = request.clone();
    let scan_filters = filters.clone();
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
                    let searched = search.is_empty()
                        || searched_id == Some(user_id)
                        || engine.user_view(user_id).is_ok_and(|user| {
                            search.matches_any(&[&user.user_principal_name, &user.display_name])
                        });
                    let filtered = scan_filters.kind.is_none() && scan_filters.product.is_none()
                        || engine
                            .user_license_states(user_id)
                            .is_ok_and(|states| states.iter().any(|state| scan_filters.matches(state)));
                    searched && filtered
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
                let error_kinds = if only_errors {
                    engine
                        .user_license_states(*user_id)?
                        .iter()
                        .filter(|state| scan_filters.matches(state))
                        .filter_map(|state| state.error.map(|kind| (names.product_name(state.sku_id), kind)))
                        .collect()
                } else {
                    Vec::new()
                };
                rows.push(UserRow {
                    view,
                    products,
                    errors,
                    error_kinds,
                });
            }
            Ok(UsersData {
                tenant_name: engine.settings().display_name.clone(),
                rows,
                page,
                all_users: engine.user_count(),
                users_with_errors: users_with_errors.len(),
                names,
            })
        })
        .await?;
    let filter_value = if only_errors { "errors" } else { "" };
    let kind_value = filters.kind.map(|kind| kind.as_str()).unwrap_or("");
    let product_value = filters.product.map(|id| id.to_string()).unwrap_or_default();
    let keep = [
        ("search", request.search.as_deref().unwrap_or("")),
        ("filter", filter_value),
        ("kind", kind_value),
        ("product", product_value.as_str()),
    ];
    let may_act =
        only_errors && (context.may(ConsoleAction::ChangeLicenses) || context.may(ConsoleAction::Reprocess));
    let results = results(&data, &keep, only_errors, may_act);
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
            a href="/users" aria-current=[(!only_errors).then_some("page")] { "All users (" (super::format::count(data.all_users)) ")" }
            a href="/users?filter=errors" aria-current=[only_errors.then_some("page")] {
                "Users with errors (" (super::format::count(data.users_with_errors)) ")"
            }
        }
        (result)
        @if only_errors {
            p { "Every user with a license error, from any group or direct license (each user counted once). "
                "Filter by error and product, then select users to reprocess them or to apply one fix to each." }
            form.search.filters role="search" method="get" action="/users" {
                input type="hidden" name="filter" value="errors";
                (error_filter_fields(
                    request.search.as_deref(),
                    &filters,
                    data.names.products.iter().map(|product| (product.sku_id, product.display_name.clone())),
                ))
                button type="submit" { "Filter" }
            }
        } @else {
            (search_form("/users", "Search users by name or user principal name", &request, extra))
        }
        (results)
    };
    Ok(layout::page(title, Section::Users, &data.tenant_name, content))
}

fn results(data: &UsersData, keep: &[(&str, &str)], only_errors: bool, may_act: bool) -> Markup {
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted { "No user matches." }
            } @else {
                @if may_act { (super::bulk::controls("bulk-users", "/users/errors/fix")) }
                div.table-scroll {
                table.stack {
                    thead {
                        tr {
                            @if may_act { th scope="col" { span.visually-hidden { "Select" } } }
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
                                @if may_act {
                                    td {
                                        input type="checkbox" name="user_id" value=(row.view.id) form="bulk-users"
                                            id={ "select-" (row.view.id) } aria-label={ "Select " (row.view.user_principal_name) };
                                    }
                                }
                                th scope="row" { a href={ "/users/" (row.view.id) } { (row.view.display_name) } }
                                td data-label="User principal name" { (row.view.user_principal_name) }
                                td data-label="Usage location" {
                                    @match row.view.usage_location {
                                        Some(location) => (super::format::country(location.as_str())),
                                        None => span.muted { "Not set" },
                                    }
                                }
                                td data-label="Products" {
                                    @if row.products.is_empty() { span.muted { "None" } }
                                    @else { (row.products.join(", ")) }
                                }
                                td data-label="License errors" {
                                    @if row.errors > 0 { span.badge.error { (row.errors) " in error" } }
                                    @else { span.muted { "None" } }
                                    @if only_errors {
                                        ul.errors {
                                            @for (product, kind) in &row.error_kinds {
                                                li data-error=(kind.as_str()) { (error_title(*kind)) " · " (product) }
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
            (pager("/users", &data.page, keep))
        }
    }
}

/// `POST /users/errors/fix`: reprocess the selected users, or apply one fix to each of them
/// after a preview ([`super::bulk::act_on_selected`]); errors from any source.
pub async fn fix_selected(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    super::bulk::act_on_selected(
        &context,
        &form,
        None,
        "/users/errors/fix",
        "/users?filter=errors",
        Section::Users,
    )
    .await
}
