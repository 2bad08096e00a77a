//! A group's members (`/groups/{id}/members`): paged (oldest membership first) and searchable,
//! with adding a member by user principal name or id and removing one. Each change queues the
//! user for processing, as through the API.

use axum::http::StatusCode;
use axum::response::Response;
use licensd_engine::{Command, GroupView, UserView, Uuid};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{local_path, parse_id, see_other, FormFields, IdKind, PathParameters, QueryFields};
use super::group::{existing_group, group_header_with, membership_summary, GroupTab, MembershipSummary};
use super::layout::{self, html_response, page_notices, pager, search_form, Done, Section};
use super::paging::{page_of, ListRequest, Page, PAGE_SIZE};

struct MembersData {
    tenant_name: String,
    group: GroupView,
    rows: Vec<UserView>,
    page: Page,
    /// The rule of a dynamic group: its members cannot be changed by hand.
    dynamic: Option<MembershipSummary>,
}

/// `GET /groups/{id}/members`.
pub async fn show(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    query: QueryFields,
) -> Result<Response, ConsoleError> {
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let request = ListRequest::from_query(&query, IdKind::User)?;
    render(&context, group_id, request, None, query.first("done")).await
}

async fn render(
    context: &ConsoleContext,
    group_id: Uuid,
    request: ListRequest,
    refusal: Option<(ConsoleError, String)>,
    done: Option<&str>,
) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(context, done).await?;
    let scan_request = request.clone();
    let data = context
        .read(move |engine| {
            let group = existing_group(engine, group_id)?;
            let members = engine.group_members(group_id)?;
            let search = scan_request.matcher();
            let page = page_of(
                &members,
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
            let rows = page
                .ids
                .iter()
                .map(|user_id| engine.user_view(*user_id))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(MembersData {
                tenant_name: engine.settings().display_name.clone(),
                group,
                rows,
                page,
                dynamic: membership_summary(engine, group_id)?,
            })
        })
        .await?;
    let path = format!("/groups/{group_id}/members");
    let keep = [("search", request.search.as_deref().unwrap_or(""))];
    let results = results(context, &data, &path, &keep);
    if context.targets("list-results") {
        return Ok(html_response(StatusCode::OK, results));
    }
    let content = html! {
        (group_header_with(&data.group, GroupTab::Members, data.dynamic.as_ref()))
        (result)
        @if let Some((refusal, _)) = &refusal { (refusal.message_box()) }
        @if let Some(dynamic) = &data.dynamic {
            p data-testid="dynamic-members" {
                "The members are the users the group's " a href={ "/groups/" (data.group.id) "/rule" } { "membership rule" }
                " selects (" code { (dynamic.rule) } "): they cannot be added or removed by hand."
            }
        } @else if context.may(ConsoleAction::ChangeMembers) {
            form.search method="post" action=(path) {
                label for="add-member" { "Add a member (user principal name or id)" }
                input id="add-member" type="text" name="user" required
                    value=[refusal.as_ref().map(|(_, typed)| typed.as_str())];
                button type="submit" { "Add member" }
            }
        }
        (search_form(&path, "Search members", &request, &[]))
        (results)
    };
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("Members · {}", data.group.display_name);
    Ok(html_response(
        status,
        layout::document(&title, Some(Section::Groups), Some(&data.tenant_name), content),
    ))
}

fn results(context: &ConsoleContext, data: &MembersData, path: &str, keep: &[(&str, &str)]) -> Markup {
    // A dynamic group's members follow its rule: no removal by hand.
    let may_change = context.may(ConsoleAction::ChangeMembers) && data.dynamic.is_none();
    html! {
        div id="list-results" {
            (page_notices(&data.page))
            @if data.rows.is_empty() {
                p.muted { "No member matches." }
            } @else {
                table {
                    thead {
                        tr {
                            th scope="col" { "Display name" }
                            th scope="col" { "User principal name" }
                            th scope="col" { "Usage location" }
                            @if data.dynamic.is_none() { th scope="col" { span.muted { "Actions" } } }
                        }
                    }
                    tbody {
                        @for user in &data.rows {
                            tr {
                                th scope="row" { a href={ "/users/" (user.id) } { (user.display_name) } }
                                td { (user.user_principal_name) }
                                td { @match user.usage_location { Some(location) => (super::format::country(location.as_str())), None => span.muted { "Not set" } } }
                                @if data.dynamic.is_none() { td {
                                    @if may_change {
                                        form.inline method="post" action={ "/groups/" (data.group.id) "/members/" (user.id) "/remove" }
                                            data-confirm={ "Remove " (user.user_principal_name) " from " (data.group.display_name) "? The user loses the licenses the group gives." } {
                                            button.danger type="submit" {
                                                "Remove" span.visually-hidden { " " (user.user_principal_name) " from the group" }
                                            }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
            (pager(path, &data.page, keep))
        }
    }
}

/// `POST /groups/{id}/members`: adds the user named by `user` (principal name or id).
pub async fn add(
    context: ConsoleContext,
    PathParameters(group_id): PathParameters<String>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let typed = fields.required("user", "user")?.to_string();
    let lookup = typed.clone();
    let user_id = context
        .read(move |engine| {
            existing_group(engine, group_id)?;
            let by_id = Uuid::try_parse(&lookup)
                .ok()
                .filter(|id| engine.user_view(*id).is_ok());
            Ok(by_id.or_else(|| engine.user_by_principal_name(&lookup)))
        })
        .await?;
    let empty_list = ListRequest {
        cursor: super::paging::Cursor::First,
        search: None,
    };
    let Some(user_id) = user_id else {
        let refusal = ConsoleError::not_found(format!("A user named '{typed}'"));
        return render(&context, group_id, empty_list, Some((refusal, typed)), None).await;
    };
    match context
        .execute(Command::AddGroupMember { group_id, user_id })
        .await
    {
        Ok(_) => Ok(see_other(
            &Done::MemberAdded.on(&format!("/groups/{group_id}/members")),
        )),
        Err(ConsoleError::Refused(refusal)) if !refusal.is_not_found() => {
            render(
                &context,
                group_id,
                empty_list,
                Some((ConsoleError::Refused(refusal), typed)),
                None,
            )
            .await
        }
        Err(error) => Err(error),
    }
}

/// `POST /groups/{id}/members/{user}/remove`; `return_to` may name the page to go back to.
pub async fn remove(
    context: ConsoleContext,
    PathParameters((group_id, user_id)): PathParameters<(String, String)>,
    fields: FormFields,
) -> Result<Response, ConsoleError> {
    context.require(ConsoleAction::ChangeMembers)?;
    let group_id = parse_id(&group_id, IdKind::Group)?;
    let user_id = parse_id(&user_id, IdKind::User)?;
    context
        .execute(Command::RemoveGroupMember { group_id, user_id })
        .await?;
    let back = fields
        .first("return_to")
        .and_then(local_path)
        .unwrap_or_else(|| format!("/groups/{group_id}/members"));
    Ok(see_other(&Done::MemberRemoved.on(&back)))
}
