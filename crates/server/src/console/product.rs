//! One product (`/products/{id}`): its totals and purchased seats (editable), and, as in the seed,
//! **Licensed users** — everyone with an assignment of it, direct or inherited from which groups,
//! with its state — and **Licensed groups** (`?tab=groups`). Both lists are paged on the server;
//! licensed users are found by scanning users in creation order only until the page is full.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{AssignmentStatus, Command, Engine, LicenseErrorKind, SkuUsage, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::layout::{
    self, error_count_badge, html_response, page_notices, pager, search_form, seat_bar, state_badge, Done,
    Section,
};
use super::names::{error_title, group_name, ProductNames};
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

/// One assignment of the product to a user: the group it comes from (`None`: direct), its state
/// and error.
type AssignmentPath = (Option<(Uuid, String)>, AssignmentStatus, Option<LicenseErrorKind>);

struct LicensedUserRow {
    user_id: Uuid,
    display_name: String,
    user_principal_name: String,
    paths: Vec<AssignmentPath>,
}

struct LicensedGroupRow {
    group_id: Uuid,
    display_name: String,
    member_count: usize,
    members_with_license_errors: usize,
    disabled_plans: usize,
}

enum Tab {
    Users(Vec<LicensedUserRow>),
    Groups(Vec<LicensedGroupRow>),
}

struct ProductData {
    tenant_name: String,
    product: SkuUsage,
    tab: Tab,
    page: Page,
}

fn existing_product(engine: &Engine, sku_id: Uuid) -> Result<SkuUsage, ConsoleError> {
    engine
        .sku_usage(sku_id)
        .map_err(|_| ConsoleError::not_found(format!("The product {sku_id}")))
}

/// Whether a user has any assignment (in effect or not) of the product.
fn holds(engine: &Engine, user_id: Uuid, sku_id: Uuid) -> bool {
    engine.user_state_records(user_id).is_ok_and(|records| {
        records
            .iter()
            .any(|record| engine.sku_id_of(record.sku) == sku_id)
    })
}

/// `GET /products/{id}` (`?tab=groups` for the licensed groups).
pub async fn show(
    context: ConsoleContext,
    PathParameters(sku_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let sku_id = parse_id(&sku_id, IdKind::Product)?;
    let groups_tab = match query.non_empty("tab") {
        None | Some("users") => false,
        Some("groups") => true,
        Some(other) => {
            return Err(ConsoleError::bad_request(format!(
                "Unknown tab '{other}': a product has the tabs users and groups."
            )))
        }
    };
    let request = ListRequest::from_query(&query, if groups_tab { IdKind::Group } else { IdKind::User })?;
    render(
        &context,
        sku_id,
        groups_tab,
        request,
        None,
        query.first("done"),
        None,
    )
    .await
}

async fn render(
    context: &ConsoleContext,
    sku_id: Uuid,
    groups_tab: bool,
    request: ListRequest,
    refusal: Option<ConsoleError>,
    done: Option<&str>,
    // A seat reduction's preview, with the seats it would set.
    preview: Option<(u32, Markup)>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let scan_request = request.clone();
    let data = context
        .read(move |engine| {
            let product = existing_product(engine, sku_id)?;
            let search = scan_request.matcher();
            let (tab, page) = if groups_tab {
                let groups = engine.licensed_groups(sku_id)?;
                let page = page_of(
                    &groups,
                    scan_request.cursor,
                    PAGE_SIZE,
                    scan_request.scan_budget(),
                    |group_id| {
                        search.is_empty()
                            || engine
                                .group_view(group_id)
                                .is_ok_and(|group| search.matches_any(&[&group.display_name]))
                    },
                );
                let mut rows = Vec::with_capacity(page.ids.len());
                for group_id in &page.ids {
                    let group = engine.group_view(*group_id)?;
                    let disabled_plans = group
                        .assigned_licenses
                        .iter()
                        .find(|license| license.sku_id == sku_id)
                        .map_or(0, |license| license.disabled_plans.len());
                    rows.push(LicensedGroupRow {
                        group_id: group.id,
                        display_name: group.display_name,
                        member_count: group.member_count,
                        members_with_license_errors: group.members_with_license_errors,
                        disabled_plans,
                    });
                }
                (Tab::Groups(rows), page)
            } else {
                let users = engine.user_ids();
                let page = page_of(
                    &users,
                    scan_request.cursor,
                    PAGE_SIZE,
                    scan_request.scan_budget(),
                    |user_id| {
                        holds(engine, user_id, sku_id)
                            && (search.is_empty()
                                || engine.user_view(user_id).is_ok_and(|user| {
                                    search.matches_any(&[&user.user_principal_name, &user.display_name])
                                }))
                    },
                );
                let mut rows = Vec::with_capacity(page.ids.len());
                for user_id in &page.ids {
                    let user = engine.user_view(*user_id)?;
                    let paths = engine
                        .user_license_states(*user_id)?
                        .into_iter()
                        .filter(|state| state.sku_id == sku_id)
                        .map(|state| {
                            let group = state
                                .assigned_by_group
                                .map(|group_id| (group_id, group_name(engine, group_id)));
                            (group, state.state, state.error)
                        })
                        .collect();
                    rows.push(LicensedUserRow {
                        user_id: user.id,
                        display_name: user.display_name,
                        user_principal_name: user.user_principal_name,
                        paths,
                    });
                }
                (Tab::Users(rows), page)
            };
            Ok(ProductData {
                tenant_name: engine.settings().display_name.clone(),
                product,
                tab,
                page,
            })
        })
        .await?;
    let path = format!("/products/{sku_id}");
    let tab_value = if groups_tab { "groups" } else { "" };
    let keep = [
        ("search", request.search.as_deref().unwrap_or("")),
        ("tab", tab_value),
    ];
    let results = results(&data, &path, &keep);
    if context.targets("list-results") {
        return Ok(html_response(StatusCode::OK, results));
    }
    let product = &data.product;
    let current = |groups: bool| (groups == groups_tab).then_some("page");
    let content = html! {
        h1 { (product.display_name) }
        p.subtitle { (product.sku_part_number) " · " (product.capability_status.as_str()) " · " span.muted { (product.sku_id) } }
        (result)
        section.panel aria-labelledby="totals" {
            h2 id="totals" { "Licenses" }
            (seat_bar(product))
            dl.facts {
                dt { "Purchased" } dd data-field="purchased" { (super::format::count(product.prepaid_units)) }
                dt { "Assigned" } dd data-field="assigned" { (super::format::count(product.consumed_units)) }
                dt { "Available" } dd data-field="available" { (super::format::count(product.available_units)) }
                dt { "Users waiting for a license" } dd data-field="waiting" { (super::format::count(product.waiting_users)) }
                dt { "Service plans" } dd { (super::format::count(product.service_plans.len())) }
            }
            h3 id="seats" { "Purchased seats" }
            @if let Some(refusal) = &refusal { (refusal.message_box()) }
            @if let Some((seats, preview)) = &preview {
                (preview)
                form.search method="post" action={ (path) "/seats" } {
                    input type="hidden" name="prepaid_units" value=(seats);
                    button type="submit" name="confirmed" value="yes" { "Reduce to " (super::format::count(*seats)) " seats" }
                    a href=(path) { "Cancel" }
                }
            } @else if context.may(ConsoleAction::ChangeSeats) {
                form.search method="post" action={ (path) "/seats" } {
                    label for="prepaid-units" { "Purchased seats" }
                    input id="prepaid-units" type="number" name="prepaid_units" min="0" max="4294967295" required
                        value=(product.prepaid_units);
                    button type="submit" { "Change purchased seats" }
                }
                p.muted {
                    "Lowering the seats below those assigned takes nothing away; the product shows as over-allocated. "
                    "New seats go to waiting users first come, first served."
                }
            }
        }
        nav.tabs aria-label="Who uses the product" {
            a href=(path) aria-current=[current(false)] { "Licensed users" }
            a href={ (path) "?tab=groups" } aria-current=[current(true)] { "Licensed groups" }
        }
        (search_form(&path, if groups_tab { "Search licensed groups" } else { "Search licensed users" }, &request,
            if groups_tab { &[("tab", "groups")] } else { &[] }))
        (results)
    };
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok(html_response(
        status,
        layout::document(
            &product.display_name,
            Some(Section::Products),
            Some(&data.tenant_name),
            content,
        ),
    ))
}

fn results(data: &ProductData, path: &str, keep: &[(&str, &str)]) -> Markup {
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @match &data.tab {
                Tab::Users(rows) => {
                    @if rows.is_empty() {
                        p.muted { "No user has this product." }
                    } @else {
                        table {
                            caption { "Users with an assignment of this product, directly or through groups" }
                            thead {
                                tr {
                                    th scope="col" { "User" }
                                    th scope="col" { "Assignment paths" }
                                }
                            }
                            tbody {
                                @for row in rows {
                                    tr {
                                        th scope="row" {
                                            a href={ "/users/" (row.user_id) } { (row.display_name) }
                                            br; span.muted { (row.user_principal_name) }
                                        }
                                        td {
                                            ul.plans {
                                                @for (group, state, error) in &row.paths {
                                                    li {
                                                        @match group {
                                                            Some((group_id, name)) => { "Inherited from " a href={ "/groups/" (group_id) } { (name) } },
                                                            None => "Direct",
                                                        }
                                                        " " (state_badge(*state))
                                                        @if let Some(kind) = error { " " (error_title(*kind)) }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
                Tab::Groups(rows) => {
                    @if rows.is_empty() {
                        p.muted { "No group assigns this product." }
                    } @else {
                        table {
                            caption { "Groups that assign this product" }
                            thead {
                                tr {
                                    th scope="col" { "Group" }
                                    th scope="col" class="number" { "Members" }
                                    th scope="col" class="number" { "Disabled plans" }
                                    th scope="col" { "License errors" }
                                }
                            }
                            tbody {
                                @for row in rows {
                                    tr {
                                        th scope="row" { a href={ "/groups/" (row.group_id) } { (row.display_name) } }
                                        td.number { (super::format::count(row.member_count)) }
                                        td.number { (super::format::count(row.disabled_plans)) }
                                        td {
                                            @if row.members_with_license_errors > 0 {
                                                a href={ "/groups/" (row.group_id) "/errors" } { (error_count_badge(row.members_with_license_errors)) }
                                            } @else { span.muted { "None" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            }
            (pager(path, &data.page, keep))
        }
    }
}

/// `POST /products/{id}/seats`: changes the purchased seats.
pub async fn save_seats(
    context: ConsoleContext,
    PathParameters(sku_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeSeats)?;
    let sku_id = parse_id(&sku_id, IdKind::Product)?;
    let typed = fields.required("prepaid_units", "purchased seats")?;
    let first_page = ListRequest {
        cursor: super::paging::Cursor::First,
        search: None,
    };
    let Ok(prepaid_units) = typed.parse::<u32>() else {
        let refusal = ConsoleError::bad_request(format!(
            "'{typed}' is not a number of seats (a whole number from 0 to 4294967295)."
        ));
        return render(&context, sku_id, false, first_page, Some(refusal), None, None).await;
    };
    // A reduction may leave users without a seat: its prediction first, saved once confirmed.
    if fields.first("confirmed") != Some("yes") {
        let commands = vec![Command::SetPrepaidUnits {
            sku_id,
            prepaid_units,
        }];
        let preview = context
            .read(move |engine| {
                let product = existing_product(engine, sku_id)?;
                if prepaid_units >= product.prepaid_units {
                    return Ok(None);
                }
                let report = super::preview::predict(engine, &commands)?;
                Ok(Some(super::preview::panel(&ProductNames::of(engine), &report)))
            })
            .await?;
        if let Some(preview) = preview {
            let first_page = ListRequest {
                cursor: super::paging::Cursor::First,
                search: None,
            };
            return render(
                &context,
                sku_id,
                false,
                first_page,
                None,
                None,
                Some((prepaid_units, preview)),
            )
            .await;
        }
    }
    match context
        .execute(Command::SetPrepaidUnits {
            sku_id,
            prepaid_units,
        })
        .await
    {
        Ok(_) => Ok(see_other(&Done::SeatsSaved.on(&format!("/products/{sku_id}")))),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            render(
                &context,
                sku_id,
                false,
                first_page,
                Some(ConsoleError::Refused(refusal)),
                None,
                None,
            )
            .await
        }
        Err(error) => Err(error),
    }
}
