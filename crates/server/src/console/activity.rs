//! The activity page (`/activity`): the tenant's audit log, newest first — who (token and role)
//! changed what, on which user, group or product, before → after, when, and whether it worked;
//! and licensd's background runs per group ("Finish applying group based license to users:
//! Users successfully assigned licenses: N, ..."), collapsed under the change that caused them.
//! Filter by activity, target, initiator and time range; page with "Older". Ids of products
//! and plans in the changes are shown by name.

use axum::response::Response;
use licensd_api_types::time::parse_date_time;
use licensd_store::{AuditQuery, StoredAuditRecord};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::format::time;
use super::forms::QueryFields;
use super::layout::{self, message, MessageKind, Section};
use super::names::ProductNames;

/// Records per page.
const PAGE_SIZE: usize = 50;
/// Records read per round while a target or initiator filter looks for matches.
const SCAN_BATCH: usize = 200;
/// Records examined at most for one page of a target or initiator filter.
const SCAN_BUDGET: usize = 5_000;
/// A day, for the end of a date range (inclusive).
const DAY_MILLISECONDS: i64 = 86_400_000;

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

/// Background runs: shown collapsed under the change that caused them.
fn is_background_run(activity: &str) -> bool {
    matches!(
        activity,
        "Start applying group based license to users" | "Finish applying group based license to users"
    )
}

/// The filters of the page, as typed.
#[derive(Clone, Debug, Default)]
struct Filters {
    activity: Option<String>,
    target: Option<String>,
    initiator: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl Filters {
    fn of(query: &QueryFields) -> Filters {
        let text = |name: &str| query.non_empty(name).map(|value| value.trim().to_string());
        Filters {
            activity: text("activity"),
            target: text("target"),
            initiator: text("initiator"),
            from: text("from"),
            to: text("to"),
        }
    }

    fn pairs(&self) -> Vec<(&'static str, &str)> {
        [
            ("activity", &self.activity),
            ("target", &self.target),
            ("initiator", &self.initiator),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.as_deref().map(|value| (name, value)))
        .collect()
    }

    /// A date field (`2026-12-05`) in milliseconds, or a clear refusal.
    fn date(value: Option<&String>, label: &str) -> Result<Option<i64>, ConsoleError> {
        value
            .map(|text| {
                parse_date_time(text).ok_or_else(|| {
                    ConsoleError::bad_request(format!(
                        "'{text}' is not a date for {label} (such as 2026-12-05)."
                    ))
                })
            })
            .transpose()
    }

    /// Whether a record matches the target and initiator filters (case-insensitive parts).
    fn matches(&self, record: &StoredAuditRecord) -> bool {
        let contains = |haystack: &str, needle: &Option<String>| {
            needle.as_ref().map_or(true, |needle| {
                haystack.to_lowercase().contains(&needle.to_lowercase())
            })
        };
        let record = &record.record;
        contains(&record.target_name, &self.target)
            && contains(
                &format!("{} {}", record.actor_name, record.actor_role),
                &self.initiator,
            )
    }
}

/// `GET /activity[?activity=…&target=…&initiator=…&from=…&to=…&before=…]`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let filters = Filters::of(&query);
    let before = match query.non_empty("before") {
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            ConsoleError::bad_request(format!("'{text}' is not a position in the activity list."))
        })?),
        None => None,
    };
    let since = Filters::date(filters.from.as_ref(), "From")?;
    let until = Filters::date(filters.to.as_ref(), "To")?.map(|day| day + DAY_MILLISECONDS - 1);
    let (tenant_name, names) = context
        .read(|engine| Ok((engine.settings().display_name.clone(), ProductNames::of(engine))))
        .await?;
    // Read in batches until a page of matches is found, the log ends, or the budget is spent.
    let mut records = Vec::new();
    let mut cursor = before;
    let mut examined = 0;
    let mut exhausted = false;
    while records.len() < PAGE_SIZE && examined < SCAN_BUDGET {
        let audit_query = AuditQuery {
            activity: filters.activity.clone(),
            since,
            until,
            before_sequence: cursor,
            limit: SCAN_BATCH,
            ..Default::default()
        };
        let batch = context.audit_records(audit_query).await?;
        let batch_length = batch.len();
        for stored in batch {
            examined += 1;
            cursor = Some(stored.sequence);
            if filters.matches(&stored) {
                records.push(stored);
                if records.len() == PAGE_SIZE {
                    break;
                }
            }
        }
        if batch_length < SCAN_BATCH {
            exhausted = records.len() < PAGE_SIZE;
            break;
        }
    }
    let older_link = (!exhausted).then_some(cursor).flatten().map(|sequence| {
        let mut link = form_urlencoded::Serializer::new(String::new());
        for (name, value) in filters.pairs() {
            link.append_pair(name, value);
        }
        link.append_pair("before", &sequence.to_string());
        format!("/activity?{}", link.finish())
    });
    let content = html! {
        h1 { "Activity" }
        p {
            "Every change made through the API, the console, the CLI or SCIM, with who made it. The background runs "
            "that applied a group's licenses to its members are folded under the change that caused them. Newest first."
        }
        (filter_form(&filters))
        @if records.is_empty() {
            @if filters.pairs().is_empty() && before.is_none() {
                (message(MessageKind::Information, html! { p { "No activity recorded yet." } }))
            } @else {
                (message(MessageKind::Information, html! { p { "No activity matches these filters." } }))
            }
        } @else {
            div.table-scroll {
                table.activity {
                    thead {
                        tr {
                            th scope="col" { "Date" }
                            th scope="col" { "Activity" }
                            th scope="col" { "Target" }
                            th scope="col" { "Initiated by" }
                            th scope="col" { "Result" }
                            th scope="col" { "Changes" }
                        }
                    }
                    tbody { (rows(&names, &records)) }
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

fn filter_form(filters: &Filters) -> Markup {
    html! {
        form.search.filters method="get" action="/activity" {
            div.field {
                label for="activity-filter" { "Activity" }
                select #activity-filter name="activity" {
                    option value="" selected[filters.activity.is_none()] { "All activities" }
                    @for name in ACTIVITIES {
                        option value=(name) selected[filters.activity.as_deref() == Some(name)] { (name) }
                    }
                }
            }
            div.field {
                label for="target-filter" { "Target" }
                input #target-filter type="search" name="target" maxlength="200" value=[filters.target.as_deref()];
            }
            div.field {
                label for="initiator-filter" { "Initiated by" }
                input #initiator-filter type="search" name="initiator" maxlength="200" value=[filters.initiator.as_deref()];
            }
            div.field {
                label for="from-filter" { "From" }
                input #from-filter type="date" name="from" value=[filters.from.as_deref()];
            }
            div.field {
                label for="to-filter" { "To" }
                input #to-filter type="date" name="to" value=[filters.to.as_deref()];
            }
            button type="submit" { "Filter" }
        }
    }
}

/// The rows, with each run of background records folded under the older change that follows it
/// (the change that caused them); background records with no change after them stand alone.
fn rows(names: &ProductNames, records: &[StoredAuditRecord]) -> Markup {
    let mut pending: Vec<&StoredAuditRecord> = Vec::new();
    let mut markup = String::new();
    for stored in records {
        if is_background_run(&stored.record.activity) {
            pending.push(stored);
            continue;
        }
        markup.push_str(&row(names, stored, &pending).into_string());
        pending.clear();
    }
    if !pending.is_empty() {
        markup.push_str(
            &html! {
                tr.background-runs {
                    td colspan="6" { (background_details(names, &pending)) }
                }
            }
            .into_string(),
        );
    }
    maud::PreEscaped(markup)
}

fn background_details(names: &ProductNames, runs: &[&StoredAuditRecord]) -> Markup {
    html! {
        details.background {
            summary { (super::format::count(runs.len())) " background run(s) applying group licenses" }
            ul {
                @for run in runs {
                    li data-activity=(run.record.activity) {
                        (time(run.record.activity_date_time)) " · " (run.record.activity) " · " (run.record.target_name)
                        @if !run.record.result_reason.is_empty() { " — " (names.humanize(&run.record.result_reason)) }
                    }
                }
            }
        }
    }
}

fn row(names: &ProductNames, stored: &StoredAuditRecord, background: &[&StoredAuditRecord]) -> Markup {
    let record = &stored.record;
    let target_link = match (record.target_type.as_str(), record.target_id) {
        ("User", Some(id)) => Some(format!("/users/{id}")),
        ("Group", Some(id)) => Some(format!("/groups/{id}")),
        ("Product", Some(id)) => Some(format!("/products/{id}")),
        _ => None,
    };
    let value = |text: &str| {
        if text.is_empty() {
            "(none)".to_string()
        } else {
            names.humanize(text)
        }
    };
    html! {
        tr data-activity=(record.activity) {
            td { (time(record.activity_date_time)) }
            td {
                (record.activity)
                @if !background.is_empty() { (background_details(names, background)) }
            }
            td {
                (record.target_type) ": "
                @if let Some(link) = &target_link {
                    a href=(link) { (names.humanize(&record.target_name)) }
                } @else {
                    (names.humanize(&record.target_name))
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
                    div.reason { (names.humanize(&record.result_reason)) }
                }
            }
            td {
                @if !record.modified_properties.is_empty() {
                    ul.changes {
                        @for property in &record.modified_properties {
                            li {
                                (property.display_name) ": "
                                span.old { (value(&property.old_value)) }
                                " → "
                                span.new { (value(&property.new_value)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
