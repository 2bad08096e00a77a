//! The page shell and the partial templates every page shares: the document with its navigation,
//! message boxes, the notice shown after a change, status badges, the seat bar, and the pager.
//! Everything interpolated is escaped by maud; no template here writes unescaped text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use licensd_engine::{AssignmentStatus, LicenseProcessingState, SkuUsage};
use maud::{html, Markup, DOCTYPE};

use super::format::count;
use super::paging::{ListRequest, Page};

/// The sections of the navigation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Overview,
    Groups,
    Users,
    Products,
    Activity,
    Advisor,
    Alerts,
    Notifications,
    Spend,
}

const NAVIGATION: [(Section, &str, &str); 9] = [
    (Section::Overview, "/", "Overview"),
    (Section::Groups, "/groups", "Groups"),
    (Section::Users, "/users", "Users"),
    (Section::Products, "/products", "All products"),
    (Section::Advisor, "/advisor", "Advisor"),
    (Section::Alerts, "/alerts", "Alerts"),
    (Section::Spend, "/spend", "Spend"),
    (Section::Activity, "/activity", "Activity"),
    (Section::Notifications, "/notifications", "Notifications"),
];

/// htmx settings: no inline styles or eval (the Content-Security-Policy forbids both), and error
/// answers are swapped in like others, so a refusal is always shown.
const HTMX_CONFIG: &str = r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"historyCacheSize":0,"responseHandling":[{"code":"204","swap":false},{"code":"[2345]..","swap":true,"error":false}]}"#;

/// A whole page: head, skip link, header with the navigation, the message area and `content`.
pub fn document(title: &str, section: Option<Section>, tenant_name: Option<&str>, content: Markup) -> Markup {
    shell(title, section, tenant_name, true, content)
}

/// A page for a visitor who is not signed in (the sign-in page): no navigation, since every
/// link would only lead back to sign-in.
pub fn signed_out_document(title: &str, content: Markup) -> Markup {
    shell(title, None, None, false, content)
}

fn shell(
    title: &str,
    section: Option<Section>,
    tenant_name: Option<&str>,
    navigation: bool,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=(HTMX_CONFIG);
                title { (title) " · licensd" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href="/assets/console.css";
                script src="/assets/htmx.min.js" defer {}
                script src="/assets/console.js" defer {}
            }
            body {
                a.skip-link href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "licensd" }
                    @if let Some(tenant_name) = tenant_name {
                        span.tenant { (tenant_name) }
                    }
                    @if navigation {
                        nav aria-label="Console" {
                            ul {
                                @for (item, path, label) in NAVIGATION {
                                    li {
                                        a href=(path) aria-current=[(section == Some(item)).then_some("page")] { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if tenant_name.is_some() {
                        form.sign-out method="post" action="/logout" {
                            button.secondary type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    div id="console-messages" aria-live="polite" {}
                    (content)
                }
            }
        }
    }
}

/// An HTML answer.
pub fn html_response(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

/// A page answered 200.
pub fn page(title: &str, section: Section, tenant_name: &str, content: Markup) -> Response {
    html_response(
        StatusCode::OK,
        document(title, Some(section), Some(tenant_name), content),
    )
}

/// Headers of every console answer: a strict Content-Security-Policy (scripts and styles from
/// this server only), no framing, no sniffing, and pages never cached (they show live state).
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let defaults = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    response
}

/// The kind of a message box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    Information,
    Success,
    Warning,
    Error,
}

/// A message box; errors are announced at once (`role="alert"`), others politely.
pub fn message(kind: MessageKind, content: Markup) -> Markup {
    let (class, role) = match kind {
        MessageKind::Information => ("message information", "status"),
        MessageKind::Success => ("message success", "status"),
        MessageKind::Warning => ("message warning", "status"),
        MessageKind::Error => ("message error", "alert"),
    };
    html! { div class=(class) role=(role) { (content) } }
}

/// What a change did, carried in the address of the page it redirects to (`?done=`), so the
/// page can say so. Only these fixed texts are shown; nothing typed is reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Done {
    LicenseSaved,
    LicenseRemoved,
    MemberAdded,
    MemberRemoved,
    ReprocessQueued,
    SeatsSaved,
    UsageLocationSaved,
    ProxyAddressesSaved,
    FixApplied,
    FixAppliedToMany,
    ReprocessQueuedForMany,
    ProductsAdded,
    GroupCreated,
    RuleSaved,
    GroupNested,
    GroupUnnested,
    TransitiveLicensingSaved,
    AttributesSaved,
    DynamicGroupCreated,
    GroupMadeStatic,
    GroupMadeDynamic,
    ProductsAssigned,
    ReclamationPolicyAdded,
    ReclamationPolicyRemoved,
    ReclamationRun,
    ReclamationReverted,
    ReclamationPolicyEnabled,
    ReclamationPolicyDisabled,
    ReclamationUserExempted,
    ReclamationExemptionRemoved,
}

/// The fixed texts of [`Done`]. They say what was changed; the processing panel next to them
/// says whether the users affected are still being processed (never "queued" once it is over).
const DONE_CODES: [(Done, &str, &str); 30] = [
    (
        Done::LicenseSaved,
        "license-saved",
        "The license assignment was saved.",
    ),
    (
        Done::LicenseRemoved,
        "license-removed",
        "The license was removed.",
    ),
    (Done::MemberAdded, "member-added", "The member was added."),
    (Done::MemberRemoved, "member-removed", "The member was removed."),
    (
        Done::ReprocessQueued,
        "reprocess-queued",
        "Reprocessing was requested.",
    ),
    (
        Done::SeatsSaved,
        "seats-saved",
        "The purchased seats were changed. Waiting users are served first come, first served.",
    ),
    (
        Done::UsageLocationSaved,
        "usage-location-saved",
        "The usage location was saved.",
    ),
    (
        Done::ProxyAddressesSaved,
        "proxy-addresses-saved",
        "The proxy addresses were saved.",
    ),
    (Done::FixApplied, "fix-applied", "The fix was applied."),
    (
        Done::FixAppliedToMany,
        "fix-applied-to-many",
        "The fix was applied to the selected users.",
    ),
    (
        Done::ReprocessQueuedForMany,
        "reprocess-many",
        "Reprocessing was requested for the selected users.",
    ),
    (
        Done::ProductsAdded,
        "products-added",
        "The products were added with the catalog's rules.",
    ),
    (
        Done::GroupCreated,
        "group-created",
        "The group was created. Next: add a product below, then members.",
    ),
    (
        Done::RuleSaved,
        "rule-saved",
        "The membership rule was saved. Members and their licenses follow it.",
    ),
    (
        Done::GroupNested,
        "group-nested",
        "The group was added as a member.",
    ),
    (
        Done::GroupUnnested,
        "group-unnested",
        "The nested group was removed.",
    ),
    (
        Done::TransitiveLicensingSaved,
        "transitive-licensing-saved",
        "The transitive licensing setting was saved.",
    ),
    (
        Done::AttributesSaved,
        "attributes-saved",
        "The directory attributes were saved. Dynamic groups whose rules read them follow.",
    ),
    (
        Done::DynamicGroupCreated,
        "dynamic-group-created",
        "The dynamic group was created: its members are the users its rule selects.",
    ),
    (
        Done::GroupMadeStatic,
        "group-made-static",
        "The group is now an assigned (static) group: its members stayed and kept their licenses; add and remove members by hand.",
    ),
    (
        Done::GroupMadeDynamic,
        "group-made-dynamic",
        "The group is now a dynamic group: its members are the users its rule selects, and their licenses follow.",
    ),
    (
        Done::ProductsAssigned,
        "products-assigned",
        "The products were assigned, every plan enabled.",
    ),
    (
        Done::ReclamationPolicyAdded,
        "reclamation-policy-added",
        "The reclamation policy was added. It runs every minute; a dry run shows what it would do.",
    ),
    (
        Done::ReclamationPolicyRemoved,
        "reclamation-policy-removed",
        "The reclamation policy and its notices were removed. What it reclaimed stays reclaimed.",
    ),
    (
        Done::ReclamationRun,
        "reclamation-run",
        "The policy ran: notices were given and the seats whose notice date had come were reclaimed.",
    ),
    (
        Done::ReclamationReverted,
        "reclamation-reverted",
        "The reclamation was reverted: the license and group memberships were restored.",
    ),
    (
        Done::ReclamationPolicyEnabled,
        "reclamation-policy-enabled",
        "The reclamation policy was enabled: it runs every minute.",
    ),
    (
        Done::ReclamationPolicyDisabled,
        "reclamation-policy-disabled",
        "The reclamation policy was disabled: it no longer runs by itself; its notices stay.",
    ),
    (
        Done::ReclamationUserExempted,
        "reclamation-user-exempted",
        "The user is exempt from the policy: its notices to the user were withdrawn.",
    ),
    (
        Done::ReclamationExemptionRemoved,
        "reclamation-exemption-removed",
        "The exemption was removed: the policy applies to the user again from its next run.",
    ),
];

impl Done {
    pub fn code(self) -> &'static str {
        DONE_CODES
            .iter()
            .find(|(done, _, _)| *done == self)
            .map_or("", |(_, code, _)| code)
    }

    pub fn from_code(code: &str) -> Option<Done> {
        DONE_CODES
            .iter()
            .find(|(_, known, _)| *known == code)
            .map(|(done, _, _)| *done)
    }

    pub fn text(self) -> &'static str {
        DONE_CODES
            .iter()
            .find(|(done, _, _)| *done == self)
            .map_or("", |(_, _, text)| text)
    }

    /// `path` with `?done=` (or `&done=`) appended.
    pub fn on(self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{path}{separator}done={}", self.code())
    }
}

/// A badge for an assignment's state.
pub fn state_badge(state: AssignmentStatus) -> Markup {
    let class = match state {
        AssignmentStatus::Active => "badge ok",
        AssignmentStatus::ActiveWithError => "badge warning",
        AssignmentStatus::Disabled => "badge muted",
        AssignmentStatus::Error => "badge error",
    };
    html! { span class=(class) data-state=(state.as_str()) { (super::format::state_name(state)) } }
}

/// A badge for a group's `licenseProcessingState`.
pub fn processing_badge(state: LicenseProcessingState) -> Markup {
    let (class, text) = match state {
        LicenseProcessingState::ProcessingComplete => ("badge ok", "Processing complete"),
        LicenseProcessingState::ProcessingInProgress => ("badge busy", "Processing in progress"),
        LicenseProcessingState::QueuedForProcessing => ("badge busy", "Queued for processing"),
    };
    html! { span class=(class) data-state=(state.as_str()) { (text) } }
}

/// A count of users in error, as a badge (nothing when zero).
pub fn error_count_badge(users_in_error: usize) -> Markup {
    html! {
        @if users_in_error > 0 {
            span.badge.error { (users_in_error) " in error" }
        }
    }
}

/// Purchased, assigned and available seats of a product, with a bar.
pub fn seat_bar(product: &SkuUsage) -> Markup {
    let maximum = product.prepaid_units.max(product.consumed_units).max(1);
    html! {
        div.seats {
            progress value=(product.consumed_units) max=(maximum)
                aria-label={ "Seats of " (product.display_name) " assigned" } {
                (count(product.consumed_units)) " of " (count(product.prepaid_units))
            }
            span.seat-figures {
                (count(product.prepaid_units)) " purchased · "
                (count(product.consumed_units)) " assigned · "
                strong { (count(product.available_units)) " available" }
                @if product.over_allocated_units > 0 {
                    " · " span.over { (count(product.over_allocated_units)) " over-allocated" }
                }
                @if product.waiting_users > 0 {
                    " · " span.over { (count(product.waiting_users)) " users waiting" }
                }
            }
        }
    }
}

/// A search box for a list; htmx replaces the list's results as one types, and without
/// JavaScript the form is a plain GET.
pub fn search_form(path: &str, label: &str, request: &ListRequest, extra: &[(&str, &str)]) -> Markup {
    html! {
        form.search role="search" method="get" action=(path) {
            @for (name, value) in extra {
                input type="hidden" name=(name) value=(value);
            }
            label for="search" { (label) }
            input id="search" type="search" name="search" value=[request.search.as_deref()]
                autocomplete="off" maxlength="200"
                hx-get=(path) hx-trigger="input changed delay:300ms, search" hx-include="closest form"
                hx-target="#list-results" hx-select="#list-results" hx-swap="outerHTML" hx-push-url="true";
            button type="submit" { "Search" }
        }
    }
}

/// Links to the previous and next pages of a list, keeping its other query fields.
pub fn pager(path: &str, page: &Page, keep: &[(&str, &str)]) -> Markup {
    let link = |cursor_name: &str, key: String| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in keep {
            if !value.is_empty() {
                query.append_pair(name, value);
            }
        }
        query.append_pair(cursor_name, &key);
        format!("{path}?{}", query.finish())
    };
    html! {
        nav.pager aria-label="Pages" {
            @if page.previous.is_some() || page.restarted {
                a href=(link_without_cursor(path, keep)) { "First page" }
            }
            @if let Some(previous) = page.previous {
                a rel="prev" href=(link("before", previous.to_string())) { "Previous page" }
            }
            @if let Some(next) = page.next {
                a rel="next" href=(link("after", next.to_string())) { "Next page" }
            }
        }
    }
}

fn link_without_cursor(path: &str, keep: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in keep {
        if !value.is_empty() {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    }
}

/// The notices of a page: its starting row has gone, or a search examined only part of the list.
pub fn page_notices(page: &Page) -> Markup {
    html! {
        @if page.restarted {
            (message(MessageKind::Information, html! { "The list changed since the last page; showing it from the start." }))
        }
        @if page.scan_stopped {
            (message(MessageKind::Information, html! {
                "This search examined part of the list to answer quickly"
                @if page.ids.is_empty() { " and found nothing there" }
                ". The page links search on from where it stopped."
            }))
        }
    }
}
