//! What-if previews shown before a change that affects many users is saved (a group's plans, a
//! reduction of purchased seats): the engine's prediction of the change, processed to the end
//! without touching the tenant — users fixed, newly in error or with another error, and seats
//! per product before and after — next to the button that saves it.

use licensd_engine::whatif::UserEffect;
use licensd_engine::{Command, Engine, WhatIfError, WhatIfOptions, WhatIfReport};
use licensd_runtime::tenants::now;
use maud::{html, Markup};

use super::error::ConsoleError;
use super::format::count;
use super::layout::{message, MessageKind};
use super::names::ProductNames;

/// Users listed by name in a preview at most (the counts cover everyone).
const LISTED_USERS: usize = 20;

/// Predicts `commands`; a change the engine would refuse is refused the same way here.
pub fn predict(engine: &Engine, commands: &[Command]) -> Result<WhatIfReport, ConsoleError> {
    engine
        .what_if(
            commands,
            now(),
            WhatIfOptions {
                max_listed_users: LISTED_USERS,
            },
        )
        .map_err(|error| match error {
            WhatIfError::CommandRefused { error, .. } => ConsoleError::Refused(*error),
            other => ConsoleError::bad_request(other.to_string()),
        })
}

/// The prediction, in words.
pub fn panel(names: &ProductNames, report: &WhatIfReport) -> Markup {
    let kind = if report.newly_broken_users > 0 || report.new_error_users > 0 {
        MessageKind::Warning
    } else {
        MessageKind::Information
    };
    let listed = |effect: UserEffect| report.users.iter().filter(move |user| user.effect == effect);
    html! {
        section.preview data-testid="preview" aria-labelledby="preview-title" {
            h3 id="preview-title" { "Preview: what saving would do" }
            (message(kind, html! {
                p {
                    strong data-field="changed" { (count(report.changed_users)) } " users' licenses change: "
                    strong data-field="fixed" { (count(report.fixed_users)) } " fixed, "
                    strong data-field="broken" { (count(report.newly_broken_users)) } " newly in error, "
                    strong data-field="new-error" { (count(report.new_error_users)) } " with another error. "
                    "Users in error: " (count(report.users_with_errors_before)) " → " (count(report.users_with_errors_after)) "."
                }
                @if !report.skus.is_empty() {
                    ul {
                        @for sku in &report.skus {
                            li data-sku=(sku.sku_part_number) {
                                (names.product_name(sku.sku_id)) ": purchased " (count(sku.prepaid_units_before)) " → " (count(sku.prepaid_units_after))
                                ", assigned " (count(sku.consumed_units_before)) " → " (count(sku.consumed_units_after))
                                ", users waiting " (count(sku.waiting_users_before)) " → " (count(sku.waiting_users_after))
                            }
                        }
                    }
                }
                @for (effect, label) in [(UserEffect::NewlyBroken, "Newly in error"), (UserEffect::NewError, "Another error"), (UserEffect::Fixed, "Fixed")] {
                    @let users: Vec<_> = listed(effect).collect();
                    @if !users.is_empty() {
                        p {
                            (label) ": "
                            @for (index, user) in users.iter().enumerate() {
                                @if index > 0 { ", " }
                                a href={ "/users/" (user.user_id) } { (user.user_principal_name) }
                            }
                            @if report.users_truncated { " …" }
                        }
                    }
                }
            }))
        }
    }
}
