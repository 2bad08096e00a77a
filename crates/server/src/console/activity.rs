//! The activity page (`/activity`): the tenant's audit log, newest first — who (token and role)
//! changed what, on which user, group or product, before → after, when, and whether it worked;
//! and licensd's background runs per group ("Finish applying group based license to users:
//! Users successfully assigned licenses: N, ..."). Filter by activity; page with "Older".

use axum::response::Response;
use licensd_api_types::time::format_date_time;
use licensd_store::{AuditQuery, StoredAuditRecord};
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::forms::QueryFields;
use super::layout::{self, message, MessageKind, Section};

/// Records per page.
const PAGE_SIZE: usize = 50;

/// The activities offered in the filter (Entra's names).
const ACTIVITIES: [&str; 10] = [
    "Change user license",
    "Set group license",
    "Add member to group",
    "Remove member from group",
    "Update user",
    "Update subscription seats",
    "Start applying group based license to users",
    "Finish applying group based license to users",
    "Reprocess user license assignments",
    "Reprocess group license assignments",
];

/// `GET /activity[?activity=…&before=…]`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let activity = query.non_empty("activity").map(str::to_string);
    let before = match query.non_empty("before") {
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ConsoleError::bad_request(format!("'{text}' is not a position in the activity list."))
        })?),
        None => None,
    };
    let tenant_name = context
        .read(|engine| Ok(engine.settings().display_name.clone()))
        .await?;
    let audit_query = AuditQuery {
        activity: activity.clone(),
        before_sequence: before,
        limit: PAGE_SIZE,
        ..Default::default()
    };
    let records = context.audit_records(audit_query).await?;
    let older = (records.len() == PAGE_SIZE)
        .then(|| records.last().map(|last| last.sequence))
        .flatten();
    let older_link = older.map(|sequence| match &activity {
        Some(activity) => {
            let encoded: String = form_urlencoded::byte_serialize(activity.as_bytes()).collect();
            format!("/activity?before={sequence}&activity={encoded}")
        }
        None => format!("/activity?before={sequence}"),
    });
    let content = html! {
        h1 { "Activity" }
        p {
            "Every change made through the API, the console, the CLI or SCIM, with who made it, and every background "
            "run that applied a group's licenses to its members. Newest first."
        }
        form.search method="get" action="/activity" {
            label for="activity-filter" { "Activity" }
            select #activity-filter name="activity" {
                option value="" selected[activity.is_none()] { "All activities" }
                @for name in ACTIVITIES {
                    option value=(name) selected[activity.as_deref() == Some(name)] { (name) }
                }
            }
            button type="submit" { "Filter" }
        }
        @if records.is_empty() {
            (message(MessageKind::Information, html! { p { "No activity recorded yet." } }))
        } @else {
            table.activity {
                thead {
                    tr {
                        th scope="col" { "Date (UTC)" }
                        th scope="col" { "Activity" }
                        th scope="col" { "Target" }
                        th scope="col" { "Initiated by" }
                        th scope="col" { "Result" }
                        th scope="col" { "Changes" }
                    }
                }
                tbody {
                    @for stored in &records {
                        (row(stored))
                    }
                }
            }
        }
        @if let Some(link) = &older_link {
            nav.pager aria-label="Pages" {
                a href=(link) { "Older" }
            }
        }
    };
    Ok(layout::page("Activity", Section::Activity, &tenant_name, content))
}

fn row(stored: &StoredAuditRecord) -> maud::Markup {
    let record = &stored.record;
    let target_link = match (record.target_type.as_str(), record.target_id) {
        ("User", Some(id)) => Some(format!("/users/{id}")),
        ("Group", Some(id)) => Some(format!("/groups/{id}")),
        ("Product", Some(id)) => Some(format!("/products/{id}")),
        _ => None,
    };
    html! {
        tr data-activity=(record.activity) {
            td { (format_date_time(record.activity_date_time)) }
            td { (record.activity) }
            td {
                (record.target_type) ": "
                @if let Some(link) = &target_link {
                    a href=(link) { (record.target_name) }
                } @else {
                    (record.target_name)
                }
            }
            td {
                (record.actor_name)
                @if !record.actor_role.is_empty() {
                    " (" (record.actor_role) ")"
                }
            }
            td {
                @if record.result == "success" { "Success" } @else { strong { "Failure" } }
                @if !record.result_reason.is_empty() {
                    div.reason { (record.result_reason) }
                }
            }
            td {
                @if !record.modified_properties.is_empty() {
                    ul.changes {
                        @for property in &record.modified_properties {
                            li {
                                (property.display_name) ": "
                                span.old { (if property.old_value.is_empty() { "(none)" } else { &property.old_value }) }
                                " → "
                                span.new { (if property.new_value.is_empty() { "(none)" } else { &property.new_value }) }
                            }
                        }
                    }
                }
            }
        }
    }
}
