//! The activity page (`/activity`): the recent changes (who, what, when) belong here once the
//! audit log exists (issue 5). Until then it says so plainly and shows no invented entries.

use axum::response::Response;
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::layout::{self, message, MessageKind, Section};

/// `GET /activity`.
pub async fn show(context: ConsoleContext) -> Result<Response, ConsoleError> {
    let tenant_name = context
        .read(|engine| Ok(engine.settings().display_name.clone()))
        .await?;
    let content = html! {
        h1 { "Activity" }
        (message(MessageKind::Information, html! {
            p { strong { "The audit log is not available yet." } }
            p {
                "licensd does not record who changed what yet, so there is no activity to show. "
                "Once the audit log exists, this page lists the recent changes: who made them, what changed and when."
            }
        }))
        p {
            "Meanwhile the " a href="/" { "overview" } " shows what background processing is doing, and every "
            "user's page shows when each license assignment last changed."
        }
    };
    Ok(layout::page("Activity", Section::Activity, &tenant_name, content))
}
