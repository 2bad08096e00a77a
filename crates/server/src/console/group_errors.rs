//! The users in error of a group (`/groups/{id}/errors`), where the notice "N users have license
//! errors" leads: per user, the group's products that could not be assigned, their state, the
//! error and its plain-language reason; each user opens on the details and the ways to fix it.
//! Filter by error kind and product; reprocess the group; select users to reprocess them or to
//! apply one fix (the same fixes Diagnosis offers) to each of them at once.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{Engine, GroupView, LicenseAssignmentState, LicenseErrorKind, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, FormFields, IdKind, PathParameters, QueryFields};
use super::group::{existing_group, group_header, users_in_error_text, GroupTab};
use super::layout::{self, html_response, page_notices, pager, state_badge, Section};
use super::names::{error_title, ProductNames};
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct UserInError {
    user_id: Uuid,
    user_principal_name: String,
    display_name: String,
    /// The user's states from this group that are in error, with their explanations.
    errors: Vec<(LicenseAssignmentState, String)>,
}

/// The error kinds offered in the filter.
pub const KINDS: [LicenseErrorKind; 6] = [
    LicenseErrorKind::CountViolation,
    LicenseErrorKind::MutuallyExclusiveViolation,
    LicenseErrorKind::DependencyViolation,
    LicenseErrorKind::ProhibitedInUsageLocationViolation,
    LicenseErrorKind::UniquenessViolation,
    LicenseErrorKind::Other,
];

/// The filters of the list.
#[derive(Clone, Debug, Default)]
pub struct ErrorFilters {
    pub kind: Option<LicenseErrorKind>,
    pub product: Option<Uuid>,
}

impl ErrorFilters {
    pub fn of(query: &QueryFields) -> Result<ErrorFilters, ConsoleError> {
        let kind =
            match query.non_empty("kind") {
                None => None,
                Some(text) => Some(KINDS.into_iter().find(|kind| kind.as_str() == text).ok_or_else(
                    || ConsoleError::bad_request(format!("'{text}' is not a kind of license error.")),
                )?),
            };
        let product = query
            .non_empty("product")
            .map(|text| parse_id(text, IdKind::Product))
            .transpose()?;
        Ok(ErrorFilters { kind, product })
    }

    pub fn matches(&self, state: &LicenseAssignmentState) -> bool {
        state.error.is_some()
            && self.kind.map_or(true, |kind| state.error == Some(kind))
            && self.product.map_or(true, |product| state.sku_id == product)
    }
}

/// The user's states from the group that are in error and match the filters.
fn matching_errors(
    engine: &Engine,
    user_id: Uuid,
    group_id: Uuid,
    filters: &ErrorFilters,
) -> Vec<LicenseAssignmentState> {
    engine
        .user_license_states(user_id)
        .map(|states| {
            states
                .into_iter()
                .filter(|state| state.assigned_by_group == Some(group_id) && filters.matches(state))
                .collect()
        })
        .unwrap_or_default()
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
    let filters = ErrorFilters::of(&query)?;
    let result = super::processing::change_result(&context, query.first("done")).await?;
    let scan_request = request.clone();
    let scan_filters = filters.clone();
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
                    !matching_errors(engine, user_id, group_id, &scan_filters).is_empty()
                        && (search.is_empty()
                            || engine.user_view(user_id).is_ok_and(|user| {
                                search.matches_any(&[&user.user_principal_name, &user.display_name])
                            }))
                },
            );
            let mut rows = Vec::with_capacity(page.ids.len());
            for user_id in &page.ids {
                let user = engine.user_view(*user_id)?;
                let names = ProductNames::of(engine);
                let errors = matching_errors(engine, *user_id, group_id, &scan_filters)
                    .into_iter()
                    .map(|state| {
                        let reason = names.humanize(&engine.explain(&state).unwrap_or_default());
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
    let kind_value = filters.kind.map(|kind| kind.as_str()).unwrap_or("");
    let product_value = filters.product.map(|id| id.to_string()).unwrap_or_default();
    let keep = [
        ("search", request.search.as_deref().unwrap_or("")),
        ("kind", kind_value),
        ("product", product_value.as_str()),
    ];
    let may_fix = context.may(ConsoleAction::ChangeLicenses) && context.may(ConsoleAction::Reprocess);
    let results = results(&data, &path, &keep, may_fix);
    if context.targets("list-results") {
        return Ok(html_response(StatusCode::OK, results));
    }
    let content = html! {
        (group_header(&data.group, GroupTab::Errors))
        (result)
        p { (users_in_error_text(data.group.members_with_license_errors)) " from this group (each user counted once). "
            "Select a user to see the details and the ways to fix each error, or select several users to fix them together." }
        @if context.may(ConsoleAction::Reprocess) {
            form.inline method="post" action={ "/groups/" (group_id) "/reprocess" } {
                input type="hidden" name="return_to" value="errors";
                button type="submit" { "Reprocess the group" }
            }
        }
        form.search.filters role="search" method="get" action=(path) {
            (error_filter_fields(
                request.search.as_deref(),
                &filters,
                data.group
                    .assigned_licenses
                    .iter()
                    .map(|license| (license.sku_id, data.names.product_name(license.sku_id))),
            ))
            button type="submit" { "Filter" }
        }
        (results)
    };
    let title = format!("Users with license errors · {}", data.group.display_name);
    Ok(layout::page(&title, Section::Groups, &data.tenant_name, content))
}

fn results(data: &ErrorsData, path: &str, keep: &[(&str, &str)], may_fix: bool) -> Markup {
    let bulk_path = format!("/groups/{}/errors/fix", data.group.id);
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted { "No user of this group is in error" @if keep.iter().any(|(name, value)| *name != "search" && !value.is_empty()) { " with these filters" } "." }
            } @else {
                @if may_fix { (super::bulk::controls("bulk-fix", &bulk_path)) }
                div.table-scroll {
                table.stack {
                    thead {
                        tr {
                            @if may_fix { th scope="col" { span.visually-hidden { "Select" } } }
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
                                    @if index == 0 && may_fix {
                                        td rowspan=(row.errors.len()) {
                                            input type="checkbox" name="user_id" value=(row.user_id) form="bulk-fix"
                                                id={ "select-" (row.user_id) } aria-label={ "Select " (row.user_principal_name) };
                                        }
                                    }
                                    @if index == 0 {
                                        th scope="rowgroup" rowspan=(row.errors.len()) {
                                            a href={ "/users/" (row.user_id) } { (row.display_name) }
                                            br; span.muted { (row.user_principal_name) }
                                        }
                                    }
                                    td data-label="Product" { (data.names.product_name(state.sku_id)) }
                                    td data-label="State" { (state_badge(state.state)) }
                                    td data-label="Error" {
                                        @if let Some(kind) = state.error {
                                            strong data-error=(kind.as_str()) { (error_title(kind)) }
                                        }
                                        p.reason { (reason) }
                                        p.reason { a href={ "/users/" (row.user_id) "/diagnosis" } { "Diagnosis and fixes" } }
                                    }
                                }
                            }
                            @if row.errors.is_empty() {
                                tr {
                                    @if may_fix { td {} }
                                    th scope="row" { a href={ "/users/" (row.user_id) } { (row.display_name) } }
                                    td colspan="3" { span.muted { "Being processed again." } }
                                }
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

/// `POST /groups/{id}/errors/fix`: for each selected user (`user_id`), reprocesses it
/// (`action=reprocess`) or applies the fix of the named kind to its error from this group (the
/// fix Diagnosis offers, looked up again for each user; users without that fix are skipped),
/// after a preview ([`super::bulk`]).
pub async fn fix_selected(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    context
        .read(move |engine| existing_group(engine, group_id).map(|_| ()))
        .await?;
    let back = format!("/groups/{group_id}/errors");
    let action_path = format!("/groups/{group_id}/errors/fix");
    super::bulk::act_on_selected(
        &context,
        &form,
        Some(group_id),
        &action_path,
        &back,
        Section::Groups,
    )
    .await
}

/// The fields of a users-in-error filter form (search, error kind, product among `products`),
/// shared by a group's list and the tenant-wide one.
pub fn error_filter_fields(
    search: Option<&str>,
    filters: &ErrorFilters,
    products: impl Iterator<Item = (Uuid, String)>,
) -> Markup {
    html! {
        div.field {
            label for="search" { "Search users in error" }
            input id="search" type="search" name="search" value=[search] autocomplete="off" maxlength="200";
        }
        div.field {
            label for="kind-filter" { "Error" }
            select #kind-filter name="kind" {
                option value="" selected[filters.kind.is_none()] { "Every error" }
                @for kind in KINDS {
                    option value=(kind.as_str()) selected[filters.kind == Some(kind)] { (error_title(kind)) }
                }
            }
        }
        div.field {
            label for="product-filter" { "Product" }
            select #product-filter name="product" {
                option value="" selected[filters.product.is_none()] { "Every product" }
                @for (sku_id, name) in products {
                    option value=(sku_id) selected[filters.product == Some(sku_id)] { (name) }
                }
            }
        }
    }
}
