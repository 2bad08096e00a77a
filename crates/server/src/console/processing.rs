//! Processing activity: how many users wait in the tenant's queue and which groups are being
//! processed. While work is under way the panel asks again every second (htmx polling); when it
//! is done the page reloads (`HX-Refresh`) so errors and seat counts show their new values.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use licensd_engine::{Engine, LicenseProcessingState, Uuid};
use maud::{html, Markup};

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::layout::{html_response, message, processing_badge, Done, MessageKind};

/// Groups named in the activity panel at most (the count covers the rest).
const GROUPS_SHOWN: usize = 10;

/// What background processing is doing in a tenant.
#[derive(Clone, Debug, Default)]
pub struct TenantActivity {
    pub queued_users: usize,
    /// The first groups being processed: id, name, state.
    pub groups_in_progress: Vec<(Uuid, String, LicenseProcessingState)>,
    pub groups_in_progress_count: usize,
}

impl TenantActivity {
    pub fn is_busy(&self) -> bool {
        self.queued_users > 0 || self.groups_in_progress_count > 0
    }
}

/// Reads the activity. Cheap when idle: groups are looked at only while users are queued.
pub fn tenant_activity(engine: &Engine) -> TenantActivity {
    let queued_users = engine.queued_users();
    let mut activity = TenantActivity {
        queued_users,
        ..TenantActivity::default()
    };
    if queued_users == 0 {
        return activity;
    }
    for group_id in engine.group_ids() {
        let Ok(state) = engine.group_processing_state(group_id) else {
            continue;
        };
        if state == LicenseProcessingState::ProcessingComplete {
            continue;
        }
        activity.groups_in_progress_count += 1;
        if activity.groups_in_progress.len() < GROUPS_SHOWN {
            let name = super::names::group_name(engine, group_id);
            activity.groups_in_progress.push((group_id, name, state));
        }
    }
    activity
}

/// A panel that polls `poll_path` every second while `busy`, replacing itself.
pub fn polling_panel(element_id: &str, poll_path: &str, busy: bool, content: Markup) -> Markup {
    html! {
        @if busy {
            div.processing id=(element_id) hx-get=(poll_path) hx-trigger="every 1s" hx-swap="outerHTML"
                aria-busy="true" {
                progress aria-label="Processing" {}
                div { (content) }
            }
        } @else {
            div.processing id=(element_id) { div { (content) } }
        }
    }
}

/// The tenant's activity panel (overview, and after a user's reprocess).
pub fn activity_panel(activity: &TenantActivity) -> Markup {
    polling_panel(
        "tenant-processing",
        "/processing",
        activity.is_busy(),
        html! {
            @if activity.is_busy() {
                p {
                    strong { (super::format::count(activity.queued_users)) } " users queued for processing"
                    @if activity.groups_in_progress_count > 0 {
                        ", " strong { (super::format::count(activity.groups_in_progress_count)) } " groups in progress"
                    }
                    ". This page updates by itself when processing finishes."
                }
                @if !activity.groups_in_progress.is_empty() {
                    ul {
                        @for (group_id, name, state) in &activity.groups_in_progress {
                            li { a href={ "/groups/" (group_id) } { (name) } " " (processing_badge(*state)) }
                        }
                    }
                }
            } @else {
                p { "Processing is idle: no users are queued and no group is in progress." }
            }
        },
    )
}

/// An answer to a poll: the panel, and a page reload once the work is done.
pub fn poll_answer(context: &ConsoleContext, busy: bool, panel: Markup) -> Response {
    let mut response = html_response(StatusCode::OK, panel);
    if context.is_htmx && !busy {
        response
            .headers_mut()
            .insert("hx-refresh", HeaderValue::from_static("true"));
    }
    response
}

/// `GET /processing`: the tenant's activity panel.
pub async fn tenant_fragment(context: ConsoleContext) -> Result<Response, ConsoleError> {
    let activity = context.read(|engine| Ok(tenant_activity(engine))).await?;
    Ok(poll_answer(
        &context,
        activity.is_busy(),
        activity_panel(&activity),
    ))
}

/// What a page shows after a change (`?done=` in its address): what was changed and, while the
/// users it affects are being processed, the tenant's activity panel, which polls and reloads the
/// page once processing is over, so the page never shows the state from before the change as if
/// it were the result. Read **before** the page's own data: when it finds the queue empty, the
/// data read after it already holds the change's result.
pub async fn change_result(context: &ConsoleContext, done: Option<&str>) -> Result<Markup, ConsoleError> {
    let Some(done) = done.and_then(Done::from_code) else {
        return Ok(html! {});
    };
    let activity = context.read(|engine| Ok(tenant_activity(engine))).await?;
    Ok(html! {
        div.change-result data-testid="change-result" {
            (message(MessageKind::Success, html! {
                (done.text())
                @if !activity.is_busy() {
                    " " span data-testid="processing-finished" { "Processing finished: this page shows the result." }
                }
            }))
            @if activity.is_busy() { (activity_panel(&activity)) }
        }
    })
}
