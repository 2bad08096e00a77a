//! The notifications page (`/notifications`): the tenant's change subscriptions (Graph's
//! `/v1.0/subscriptions`) with where each stands — active, expired, or removed because its
//! endpoint kept failing — and the recent webhook deliveries of every owner (change and
//! lifecycle notifications, alerts): status, attempts, the endpoint's last answer, next attempt.

use axum::extract::State;
use axum::response::Response;
use licensd_api_types::time::format_date_time;
use licensd_store::{ChangeSubscription, DeliveryRecord, DeliveryStatus};
use maud::html;

use super::context::ConsoleContext;
use super::error::ConsoleError;
use super::layout::{self, message, MessageKind, Section};
use crate::AppState;

/// Deliveries shown.
const RECENT_DELIVERIES: usize = 100;

fn subscription_status(subscription: &ChangeSubscription, now: i64) -> &'static str {
    if subscription.removed_at.is_some() {
        "removed"
    } else if subscription.expires_at <= now {
        "expired"
    } else {
        "active"
    }
}

/// `GET /notifications`.
pub async fn show(State(state): State<AppState>, context: ConsoleContext) -> Result<Response, ConsoleError> {
    let tenant_name = context
        .read(|engine| Ok(engine.settings().display_name.clone()))
        .await?;
    let tenant_id = context.tenant_id;
    let store = state.store.clone();
    let (subscriptions, deliveries) = tokio::task::spawn_blocking(move || {
        let mut store = licensd_runtime::tenants::lock_store(&store).map_err(ConsoleError::from)?;
        let storage = |error: licensd_store::StoreError| ConsoleError::Storage {
            detail: error.to_string(),
        };
        let subscriptions = store.change_subscriptions(tenant_id).map_err(storage)?;
        let deliveries = store
            .deliveries(tenant_id, None, RECENT_DELIVERIES)
            .map_err(storage)?;
        Ok::<_, ConsoleError>((subscriptions, deliveries))
    })
    .await
    .map_err(|error| ConsoleError::Internal {
        detail: format!("a console query task failed: {error}"),
    })??;
    let now = licensd_runtime::tenants::now().0;
    let content = html! {
        h1 { "Notifications" }
        p {
            "Change subscriptions (Graph's " code { "/v1.0/subscriptions" } ") and the webhooks licensd delivered "
            "for them and for alerts. A delivery is retried with growing delays until its endpoint answers 2xx; "
            "a subscription whose endpoint keeps failing is removed and told so on its lifecycle URL."
        }
        h2 { "Subscriptions" }
        @if subscriptions.is_empty() {
            (message(MessageKind::Information, html! { p { "No change subscription yet." } }))
        } @else {
            table.subscriptions {
                thead { tr {
                    th scope="col" { "Resource" }
                    th scope="col" { "Change types" }
                    th scope="col" { "Notification URL" }
                    th scope="col" { "Expires (UTC)" }
                    th scope="col" { "Status" }
                } }
                tbody {
                    @for subscription in &subscriptions {
                        tr data-subscription=(subscription.subscription_id) {
                            td { (subscription.resource) }
                            td { (subscription.change_types) }
                            td { code { (subscription.notification_url) } }
                            td { (format_date_time(subscription.expires_at)) }
                            td { (subscription_status(subscription, now)) }
                        }
                    }
                }
            }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() {
            (message(MessageKind::Information, html! { p { "Nothing delivered yet." } }))
        } @else {
            table.deliveries {
                thead { tr {
                    th scope="col" { "Created (UTC)" }
                    th scope="col" { "Kind" }
                    th scope="col" { "URL" }
                    th scope="col" { "Notifications" }
                    th scope="col" { "Status" }
                    th scope="col" { "Attempts" }
                    th scope="col" { "Last answer" }
                    th scope="col" { "Next attempt (UTC)" }
                } }
                tbody {
                    @for delivery in &deliveries {
                        (delivery_row(delivery))
                    }
                }
            }
        }
    };
    Ok(layout::page(
        "Notifications",
        Section::Notifications,
        &tenant_name,
        content,
    ))
}

fn delivery_row(delivery: &DeliveryRecord) -> maud::Markup {
    let answer = match (&delivery.last_status, &delivery.last_error) {
        (_, Some(error)) => error.clone(),
        (Some(status), None) => status.to_string(),
        (None, None) => String::new(),
    };
    html! {
        tr data-status=(delivery.status.as_str()) {
            td { (format_date_time(delivery.created_at)) }
            td { (delivery.owner_kind) }
            td { code { (delivery.url) } }
            td { (delivery.items) }
            td { (delivery.status.as_str()) }
            td { (delivery.attempts) }
            td { (answer) }
            td {
                @if delivery.status == DeliveryStatus::Pending {
                    (format_date_time(delivery.next_attempt_at))
                }
            }
        }
    }
}
