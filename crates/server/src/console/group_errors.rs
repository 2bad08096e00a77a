//! The users in error of a group (`/groups/{id}/errors`), where the notice "N users have license
//! errors" leads: per user, the group's products that could not be assigned, their state, the
//! error and its plain-language reason; each user opens on the details and the ways to fix it.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{GroupView, LicenseAssignmentState, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::{parse_id, IdKind, PathParameters, QueryFields};
use super::group::{existing_group, group_header, users_in_error_text, GroupTab};
use super::layout::{self, html_response, page_notices, pager, search_form, state_badge, Section};
use super::names::{error_title, ProductNames};
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct UserInError {
    user_id: Uuid,
    user_principal_name: String,
    display_name: String,
    /// The user's states from this group that are in error, with their explanations.
    errors: Vec<(LicenseAssignmentState, String)>,
}

struct ErrorsData {
    tenant_name: String,
    group: GroupView,
    names: ProductNames,
    rows: Vec<UserInError>,
    page: Page,
}

/// `GET /groups/{id}/errors`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let request = ListRequest::from_query(&query, IdKind::User)?;
    let scan_request = request.clone();
    let data = context
        .read(move |engine| {
            let group = existing_group(engine, group_id)?;
            let in_error = engine.members_with_license_errors(group_id)?;
            let search = scan_request.matcher();
            let page = page_of(
                &in_error,
                scan_request.cursor,
                PAGE_SIZE,
                scan_request.scan_budget(),
                |user_id| {
                    search.is_empty()
                        || engine.user_view(user_id).is_ok_and(|user| {
                            search.matches_any(&[&user.user_principal_name, &user.display_name])
                        })
                },
            );
            let mut rows = Vec::with_capacity(page.ids.len());
            for user_id in &page.ids {
                let user = engine.user_view(*user_id)?;
                let errors = engine
                    .user_license_states(*user_id)?
                    .into_iter()
                    .filter(|state| state.assigned_by_group == Some(group_id) && state.error.is_some())
                    .map(|state| {
                        let reason = engine.explain(&state).unwrap_or_default();
                        (state, reason)
                    })
                    .collect();
                rows.push(UserInError {
                    user_id: user.id,
                    user_principal_name: user.user_principal_name,
                    display_name: user.display_name,
                    errors,
                });
            }
            Ok(ErrorsData {
                tenant_name: engine.settings().display_name.clone(),
                group,
                names: ProductNames::of(engine),
                rows,
                page,
            })
        })
        .await?;
    let path = format!("/groups/{group_id}/errors");
    let keep = [("search", request.search.as_deref().unwrap_or(""))];
    let results = results(&data, &path, &keep);
    if context.targets("list-results") {
        return Ok(html_response(StatusCode::OK, results));
    }
    let content = html! {
        (group_header(&data.group, GroupTab::Errors))
        p { (users_in_error_text(data.group.members_with_license_errors)) " from this group. "
            "Select a user to see the details and the ways to fix each error, then reprocess the group." }
        (search_form(&path, "Search users in error", &request, &[]))
        (results)
    };
    let title = format!("Users with license errors · {}", data.group.display_name);
    Ok(layout::page(&title, Section::Groups, &data.tenant_name, content))
}

fn results(data: &ErrorsData, path: &str, keep: &[(&str, &str)]) -> Markup {
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted { "No user of this group is in error." }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "User" }
                            th scope="col" { "Product" }
                            th scope="col" { "State" }
                            th scope="col" { "Error" }
                        }
                    }
                    tbody {
                        @for row in &data.rows {
                            @for (index, (state, reason)) in row.errors.iter().enumerate() {
                                tr {
                                    @if index == 0 {
                                        th scope="rowgroup" rowspan=(row.errors.len()) {
                                            a href={ "/users/" (row.user_id) } { (row.display_name) }
                                            br; span.muted { (row.user_principal_name) }
                                        }
                                    }
                                    td { (data.names.product_name(state.sku_id)) }
                                    td { (state_badge(state.state)) }
                                    td {
                                        @if let Some(kind) = state.error {
                                            strong { (error_title(kind)) } " " span.muted { "(" (kind.as_str()) ")" }
                                        }
                                        p.reason { (reason) }
                                        p.reason { a href={ "/users/" (row.user_id) "/diagnosis" } { "Diagnosis and fixes" } }
                                    }
                                }
                            }
                            @if row.errors.is_empty() {
                                tr {
                                    th scope="row" { a href={ "/users/" (row.user_id) } { (row.display_name) } }
                                    td colspan="3" { span.muted { "Being processed again." } }
                                }
                            }
                        }
                    }
                }
            }
            (pager(path, &data.page, keep))
        }
    }
}
