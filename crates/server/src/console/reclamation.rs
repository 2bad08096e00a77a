//! The reclamation page (`/spend/reclamation`): the tenant's reclamation policies (add one,
//! remove one), a dry run of a policy — every seat it applies to and what it would do — shown
//! before **Run now** applies it, the pending notices with the date each seat will be acted on,
//! and the seats reclaimed, each with a **Revert** button. A policy is disabled or enabled with
//! one button; a user is exempted from a policy from a pending notice (**Exempt**) or by name,
//! and an exemption undone (**Undo**); each audited "Update reclamation policy". The work is the runtime's
//! (`licensd_runtime::reclamation`), as for the admin API; every change is audited.

use axum::response::Response;
use licensd_api_types::time::format_date_time;
use licensd_engine::reclamation::ReclaimStep;
use licensd_engine::Uuid;
use licensd_runtime::reclamation::{
    self as runtime_reclamation, RevertError, SeatOutcome, MAX_DAYS, RECLAIM_ACTIVITY, REVERT_ACTIVITY,
};
use licensd_runtime::tenants::now;
use licensd_store::{AuditQuery, AuditRecord, ReclamationPolicyRecord};
use maud::{html, Markup};

use super::context::{ConsoleAction, ConsoleContext};
use super::error::ConsoleError;
use super::forms::{parse_id, see_other, FormFields, PathParameters, QueryFields};
use super::layout::{self, Done, Section};
use super::names::ProductNames;

const PAGE: &str = "/spend/reclamation";
const MAX_POLICIES: usize = 100;
const MAX_NAME_LENGTH: usize = 256;
/// At most this many exempt users per policy (as the admin API).
const MAX_EXCLUSIONS: usize = 1000;
/// The reclaimed seats listed (newest first).
const RECLAIMED_SHOWN: usize = 100;

/// Reclaiming removes direct licenses and group memberships: both kinds of change.
fn require_changes(context: &ConsoleContext) -> Result<(), ConsoleError> {
    context.require(ConsoleAction::ChangeLicenses)?;
    context.require(ConsoleAction::ChangeMembers)
}

fn may_change(context: &ConsoleContext) -> bool {
    context.may(ConsoleAction::ChangeLicenses) && context.may(ConsoleAction::ChangeMembers)
}

fn reason_text(reason: &str, inactive_days: i64) -> String {
    match reason {
        "inactive" => format!("no sign-in for {inactive_days} days"),
        "disabled" => "account disabled".to_string(),
        "left" => "left the company".to_string(),
        other => other.to_string(),
    }
}

fn product_text(names: &ProductNames, sku_id: Option<Uuid>) -> String {
    sku_id.map_or_else(
        || "Every product".to_string(),
        |sku_id| names.product_name(sku_id),
    )
}

async fn find_policy(context: &ConsoleContext, id: &str) -> Result<ReclamationPolicyRecord, ConsoleError> {
    let policy_id = Uuid::try_parse(id.trim())
        .map_err(|_| ConsoleError::not_found(format!("The reclamation policy {id}")))?;
    context
        .with_store(move |store, tenant_id| store.reclamation_policies(tenant_id))
        .await?
        .into_iter()
        .find(|policy| policy.policy_id == policy_id)
        .ok_or_else(|| ConsoleError::not_found(format!("The reclamation policy {policy_id}")))
}

/// A reclaimed seat as its "Reclaim license" audit record tells it.
struct Reclaimed {
    audit_id: Uuid,
    at: i64,
    user_id: Option<Uuid>,
    user_name: String,
    /// The policy's name, as the record says.
    policy: String,
    sku_id: Option<Uuid>,
    /// What was removed, in words.
    removed: Vec<String>,
    reverted: bool,
}

impl Reclaimed {
    fn of(record: AuditRecord, reverted: &[String]) -> Reclaimed {
        let value = |name: &str| {
            record
                .modified_properties
                .iter()
                .find(|property| property.display_name == name)
                .map(|property| property.new_value.clone())
        };
        let policy = value("ReclamationPolicy")
            .map(|text| match text.split_once(" (") {
                Some((_, name)) => name.trim_end_matches(')').to_string(),
                None => text,
            })
            .unwrap_or_default();
        let sku_id = value("SkuId").and_then(|text| Uuid::try_parse(&text).ok());
        let removed = record
            .modified_properties
            .iter()
            .filter_map(|property| match property.display_name.as_str() {
                "DirectLicense" => Some("the direct license".to_string()),
                "MemberOf" => Some(match property.old_value.split_once(" (") {
                    Some((_, name)) => format!("membership of {}", name.trim_end_matches(')')),
                    None => format!("membership of {}", property.old_value),
                }),
                _ => None,
            })
            .collect();
        Reclaimed {
            audit_id: record.audit_id,
            at: record.activity_date_time,
            user_id: record.target_id,
            user_name: record.target_name.clone(),
            policy,
            sku_id,
            removed,
            reverted: reverted.contains(&record.audit_id.to_string()),
        }
    }
}

fn step_text(step: &ReclaimStep) -> Markup {
    match step {
        ReclaimStep::RemoveDirectLicense(_) => html! { "remove the direct license" },
        ReclaimStep::RemoveFromGroup {
            group_id,
            display_name,
        } => html! {
            "remove from group " a href=(format!("/groups/{group_id}")) { (display_name) }
        },
        ReclaimStep::Review {
            group_id,
            display_name,
            why,
        } => html! {
            "review: held through " (if why.as_str() == "dynamicGroup" { "dynamic group " } else { "a group nested in " })
            a href=(format!("/groups/{group_id}")) { (display_name) }
        },
    }
}

fn outcome_text(outcome: &SeatOutcome) -> &'static str {
    match outcome {
        SeatOutcome::Noticed => "gets a notice",
        SeatOutcome::Pending => "notice given, waiting",
        SeatOutcome::Reclaimed { .. } => "reclaimed",
        SeatOutcome::WouldReclaim => "reclaimed now",
        SeatOutcome::Review => "review by hand",
        SeatOutcome::Failed { .. } => "failed",
    }
}

fn add_form(names: &ProductNames) -> Markup {
    html! {
        section id="add-policy" {
            h2 { "Add a policy" }
            form method="post" action="/spend/reclamation/policies" {
                div.field {
                    label for="policy-name" { "Name" }
                    input #policy-name type="text" name="display_name" required maxlength="256";
                }
                div.field {
                    label for="policy-reason" { "Reclaim the seats of users who" }
                    select #policy-reason name="reason" {
                        option value="inactive" { "have not signed in for the days below" }
                        option value="disabled" { "are disabled" }
                        option value="left" { "have left (leave date passed)" }
                    }
                }
                div.field {
                    label for="policy-inactive-days" { "Days without sign-in (inactive only)" }
                    input #policy-inactive-days type="number" name="inactive_days" min="1" max=(MAX_DAYS) value="90";
                }
                div.field {
                    label for="policy-product" { "Product" }
                    select #policy-product name="sku_id" {
                        option value="" { "Every product" }
                        @for product in &names.products {
                            option value=(product.sku_id) { (product.display_name) }
                        }
                    }
                }
                div.field {
                    label for="policy-notice-days" { "Days of notice before acting (0: at once)" }
                    input #policy-notice-days type="number" name="notice_days" min="0" max=(MAX_DAYS) value="14";
                }
                button type="submit" { "Add policy" }
            }
        }
    }
}

/// `GET /spend/reclamation`.
pub async fn show(context: ConsoleContext, query: QueryFields) -> Result<Response, ConsoleError> {
    let result = super::processing::change_result(&context, query.first("done")).await?;
    let (policies, notices) = context
        .with_store(|store, tenant_id| {
            Ok((
                store.reclamation_policies(tenant_id)?,
                store.reclamation_notices(tenant_id, None)?,
            ))
        })
        .await?;
    let reclaim_records = context
        .audit_records(AuditQuery {
            activity: Some(RECLAIM_ACTIVITY.to_string()),
            limit: RECLAIMED_SHOWN,
            ..AuditQuery::default()
        })
        .await?;
    let revert_records = context
        .audit_records(AuditQuery {
            activity: Some(REVERT_ACTIVITY.to_string()),
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await?;
    let reverted: Vec<String> = revert_records
        .iter()
        .flat_map(|stored| stored.record.modified_properties.iter())
        .filter(|property| property.display_name == "ReclamationAuditId")
        .map(|property| property.new_value.clone())
        .collect();
    let reclaimed: Vec<Reclaimed> = reclaim_records
        .into_iter()
        .map(|stored| Reclaimed::of(stored.record, &reverted))
        .collect();
    type NoticeRow = (String, Uuid, String, Uuid, String, bool, i64, Uuid);
    let notice_rows: Vec<NoticeRow> = {
        let policy_names: Vec<(Uuid, String)> = policies
            .iter()
            .map(|policy| (policy.policy_id, policy.display_name.clone()))
            .collect();
        context
            .read(move |engine| {
                Ok(notices
                    .iter()
                    .map(|notice| {
                        (
                            policy_names
                                .iter()
                                .find(|(id, _)| *id == notice.policy_id)
                                .map(|(_, name)| name.clone())
                                .unwrap_or_default(),
                            notice.user_id,
                            engine
                                .user_view(notice.user_id)
                                .map(|user| user.user_principal_name)
                                .unwrap_or_else(|_| notice.user_id.to_string()),
                            notice.sku_id,
                            engine
                                .sku_usage(notice.sku_id)
                                .map(|usage| usage.display_name)
                                .unwrap_or_else(|_| notice.sku_id.to_string()),
                            notice.review,
                            notice.act_at,
                            notice.policy_id,
                        )
                    })
                    .collect())
            })
            .await?
    };
    let exempt_ids: Vec<Uuid> = policies
        .iter()
        .flat_map(|policy| policy.excluded_users.iter().copied())
        .collect();
    let (tenant_name, names, user_names) = context
        .read(move |engine| {
            let user_names: Vec<(Uuid, String)> = exempt_ids
                .iter()
                .map(|user_id| {
                    (
                        *user_id,
                        engine
                            .user_view(*user_id)
                            .map(|user| user.user_principal_name)
                            .unwrap_or_else(|_| user_id.to_string()),
                    )
                })
                .collect();
            Ok((
                engine.settings().display_name.clone(),
                ProductNames::of(engine),
                user_names,
            ))
        })
        .await?;
    let user_name = |user_id: &Uuid| {
        user_names
            .iter()
            .find(|(id, _)| id == user_id)
            .map_or_else(|| user_id.to_string(), |(_, name)| name.clone())
    };
    let may = may_change(&context);
    let content = html! {
        h1 { "Reclaiming idle seats" }
        (result)
        p { "A policy finds the seats of users who are inactive, disabled or have left, gives each a notice, and after the notice period removes the direct license and the memberships of the static groups that give the product. Seats held through a dynamic or nested group are marked for review. Enabled policies run every minute. "
            a href="/spend" { "Back to spend" } }
        section id="policies" {
            h2 { "Policies (" (super::format::count(policies.len())) ")" }
            @if policies.is_empty() {
                p.muted { "No reclamation policy yet." }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th scope="col" { "Policy" } th scope="col" { "Reclaims when" } th scope="col" { "Product" }
                        th scope="col" { "Notice" } th scope="col" { "Last run" } th scope="col" { "Exempt users" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for policy in &policies {
                            tr data-policy=(policy.policy_id) {
                                th scope="row" { (policy.display_name) @if !policy.enabled { " " span.muted data-field="disabled" { "(disabled)" } } }
                                td { (reason_text(&policy.reason, policy.inactive_days)) }
                                td { (product_text(&names, policy.sku_id)) }
                                td { (policy.notice_days) " days" }
                                td { (policy.last_run_at.map_or_else(|| "never".to_string(), format_date_time)) }
                                td data-field="exempt-users" {
                                    @if policy.excluded_users.is_empty() { span.muted { "none" } }
                                    ul {
                                        @for user_id in &policy.excluded_users {
                                            li data-exempt=(user_id) {
                                                a href=(format!("/users/{user_id}")) { (user_name(user_id)) }
                                                @if may {
                                                    " "
                                                    form.inline method="post" action=(format!("/spend/reclamation/policies/{}/exemptions/{user_id}/delete", policy.policy_id))
                                                        data-confirm={ "Apply " (policy.display_name) " to " (user_name(user_id)) " again?" } {
                                                        button type="submit" { "Undo" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                    @if may {
                                        form method="post" action=(format!("/spend/reclamation/policies/{}/exemptions", policy.policy_id)) {
                                            label for=(format!("exempt-{}", policy.policy_id)) { "Exempt a user (UPN or id)" }
                                            input id=(format!("exempt-{}", policy.policy_id)) type="text" name="user" required maxlength="1024";
                                            button type="submit" { "Exempt" }
                                        }
                                    }
                                }
                                td {
                                    a href=(format!("/spend/reclamation/policies/{}/dry-run", policy.policy_id)) { "Dry run" }
                                    @if may {
                                        form method="post" action=(format!("/spend/reclamation/policies/{}/enabled", policy.policy_id)) {
                                            input type="hidden" name="enabled" value=(if policy.enabled { "false" } else { "true" });
                                            button type="submit" data-action="toggle" { (if policy.enabled { "Disable" } else { "Enable" }) }
                                        }
                                        form method="post" action=(format!("/spend/reclamation/policies/{}/delete", policy.policy_id))
                                            data-confirm={ "Remove the policy " (policy.display_name) " and its notices?" } {
                                            button type="submit" { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        @if may { (add_form(&names)) }
        section id="notices" {
            h2 { "Pending notices (" (super::format::count(notice_rows.len())) ")" }
            @if notice_rows.is_empty() {
                p.muted { "No seat is waiting to be reclaimed." }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th scope="col" { "User" } th scope="col" { "Product" } th scope="col" { "Policy" }
                        th scope="col" { "State" } th scope="col" { "Action date" }
                        @if may { th scope="col" { "Exempt" } }
                    } }
                    tbody {
                        @for (policy_name, user_id, user_name, sku_id, product_name, review, act_at, policy_id) in &notice_rows {
                            tr data-notice=(user_id) {
                                th scope="row" { a href=(format!("/users/{user_id}")) { (user_name) } }
                                td { a href=(format!("/products/{sku_id}")) { (product_name) } }
                                td { (policy_name) }
                                td { @if *review { "review by hand" } @else { "pending" } }
                                td data-field="action-date" { (format_date_time(*act_at)) }
                                @if may {
                                    td {
                                        form method="post" action=(format!("/spend/reclamation/policies/{policy_id}/exemptions"))
                                            data-confirm={ "Exempt " (user_name) " from " (policy_name) "? The policy will never act on this user." } {
                                            input type="hidden" name="user" value=(user_id);
                                            button type="submit" { "Exempt" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
        section id="reclaimed" {
            h2 { "Reclaimed seats" }
            @if reclaimed.is_empty() {
                p.muted { "No seat has been reclaimed." }
            } @else {
                div.table-scroll { table {
                    thead { tr {
                        th scope="col" { "User" } th scope="col" { "Product" } th scope="col" { "Policy" } th scope="col" { "Reclaimed" }
                        th scope="col" { "What was removed" } th scope="col" { "Revert" }
                    } }
                    tbody {
                        @for seat in &reclaimed {
                            tr {
                                th scope="row" {
                                    @if let Some(user_id) = seat.user_id { a href=(format!("/users/{user_id}")) { (seat.user_name) } }
                                    @else { (seat.user_name) }
                                }
                                td { @if let Some(sku_id) = seat.sku_id { (names.product_name(sku_id)) } }
                                td { (seat.policy) }
                                td { (format_date_time(seat.at)) }
                                td { (seat.removed.join(", ")) }
                                td data-field="revert" {
                                    @if seat.reverted { "reverted" }
                                    @else if may {
                                        form method="post" action="/spend/reclamation/reverts"
                                            data-confirm={ "Restore what was reclaimed from " (seat.user_name) "?" } {
                                            input type="hidden" name="audit_id" value=(seat.audit_id);
                                            button type="submit" { "Revert" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                } }
            }
        }
    };
    Ok(layout::page(
        "Reclaiming idle seats",
        Section::Spend,
        &tenant_name,
        content,
    ))
}

fn day_count(
    form: &FormFields,
    name: &str,
    label: &str,
    minimum: i64,
    default: i64,
) -> Result<i64, ConsoleError> {
    match form.first(name).map(str::trim) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|days| (minimum..=MAX_DAYS).contains(days))
            .ok_or_else(|| {
                ConsoleError::bad_request(format!(
                    "'{text}' is not a valid {label}: give a whole number of days from {minimum} to {MAX_DAYS}."
                ))
            }),
    }
}

/// `POST /spend/reclamation/policies`: adds a policy (audited "Add reclamation policy").
pub async fn create(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let display_name = form.required("display_name", "name")?.trim().to_string();
    if display_name.is_empty() || display_name.chars().count() > MAX_NAME_LENGTH {
        return Err(ConsoleError::bad_request(format!(
            "Give the policy a name of 1 to {MAX_NAME_LENGTH} characters."
        )));
    }
    let reason = form.required("reason", "reason")?.trim().to_string();
    if runtime_reclamation::parse_reason(&reason).is_none() {
        return Err(ConsoleError::bad_request(format!(
            "'{reason}' is not a reason: use inactive, disabled or left."
        )));
    }
    let inactive_days = day_count(&form, "inactive_days", "number of days without sign-in", 1, 90)?;
    let notice_days = day_count(&form, "notice_days", "notice period", 0, 14)?;
    let sku_id = match form.first("sku_id").map(str::trim) {
        None | Some("") => None,
        Some(text) => Some(parse_id(text, super::forms::IdKind::Product)?),
    };
    if let Some(sku_id) = sku_id {
        context
            .read(move |engine| {
                engine.sku_usage(sku_id).map(|_| ()).map_err(|_| {
                    ConsoleError::bad_request(format!("There is no product {sku_id} in this tenant."))
                })
            })
            .await?;
    }
    let policy = ReclamationPolicyRecord {
        policy_id: Uuid::new_v4(),
        display_name,
        inactive_days: if reason == "inactive" { inactive_days } else { 0 },
        reason,
        sku_id,
        notice_days,
        enabled: true,
        excluded_users: Vec::new(),
        excluded_groups: Vec::new(),
        created_at: now().0,
        last_run_at: None,
    };
    let audit = licensd_runtime::reclamation::policy_audit(&context.caller, &policy, true);
    let too_many = context
        .with_store(move |store, tenant_id| {
            if store.reclamation_policies(tenant_id)?.len() >= MAX_POLICIES {
                return Ok(true);
            }
            store.put_reclamation_policy(tenant_id, &policy, &[audit])?;
            Ok(false)
        })
        .await?;
    if too_many {
        return Err(ConsoleError::bad_request(format!(
            "A tenant has at most {MAX_POLICIES} reclamation policies: remove one first."
        )));
    }
    Ok(see_other(&Done::ReclamationPolicyAdded.on(PAGE)))
}

/// `POST /spend/reclamation/policies/{id}/delete`: removes a policy and its notices.
pub async fn delete(
    context: ConsoleContext,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let policy = find_policy(&context, &id).await?;
    let audit = licensd_runtime::reclamation::policy_audit(&context.caller, &policy, false);
    let policy_id = policy.policy_id;
    let deleted = context
        .with_store(move |store, tenant_id| store.delete_reclamation_policy(tenant_id, policy_id, &[audit]))
        .await?;
    if !deleted {
        return Err(ConsoleError::not_found(format!(
            "The reclamation policy {policy_id}"
        )));
    }
    Ok(see_other(&Done::ReclamationPolicyRemoved.on(PAGE)))
}

/// `POST /spend/reclamation/policies/{id}/enabled`: enables (`enabled=true`) or disables a
/// policy (audited "Update reclamation policy").
pub async fn set_enabled(
    context: ConsoleContext,
    PathParameters(id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let enabled = match form.required("enabled", "enabled")?.trim() {
        "true" => true,
        "false" => false,
        other => {
            return Err(ConsoleError::bad_request(format!(
                "'{other}' is not a choice: use true or false."
            )))
        }
    };
    let policy = find_policy(&context, &id).await?;
    if let Some((changed, audit)) = runtime_reclamation::enabled_change(&context.caller, &policy, enabled) {
        context
            .with_store(move |store, tenant_id| store.put_reclamation_policy(tenant_id, &changed, &[audit]))
            .await?;
    }
    let done = if enabled {
        Done::ReclamationPolicyEnabled
    } else {
        Done::ReclamationPolicyDisabled
    };
    Ok(see_other(&done.on(PAGE)))
}

/// `POST /spend/reclamation/policies/{id}/exemptions`: exempts the user `user` (a user principal
/// name or an id) from the policy; its notices to the user are withdrawn.
pub async fn exempt(
    context: ConsoleContext,
    PathParameters(id): PathParameters<String>,
    form: FormFields,
) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let text = form.required("user", "user")?.trim().to_string();
    let policy = find_policy(&context, &id).await?;
    let (user_id, user_name) = context
        .read(move |engine| {
            let user_id = Uuid::try_parse(&text)
                .ok()
                .or_else(|| engine.user_by_principal_name(&text))
                .ok_or_else(|| {
                    ConsoleError::bad_request(format!("There is no user '{text}' in this tenant."))
                })?;
            let user = engine.user_view(user_id).map_err(|_| {
                ConsoleError::bad_request(format!("There is no user '{text}' in this tenant."))
            })?;
            Ok((user_id, user.user_principal_name))
        })
        .await?;
    if let Some((changed, audit)) =
        runtime_reclamation::exemption_change(&context.caller, &policy, user_id, &user_name, true)
    {
        if changed.excluded_users.len() > MAX_EXCLUSIONS {
            return Err(ConsoleError::bad_request(format!(
                "A policy exempts at most {MAX_EXCLUSIONS} users."
            )));
        }
        context
            .with_store(move |store, tenant_id| store.put_reclamation_policy(tenant_id, &changed, &[audit]))
            .await?;
    }
    Ok(see_other(&Done::ReclamationUserExempted.on(PAGE)))
}

/// `POST /spend/reclamation/policies/{id}/exemptions/{user_id}/delete`: the policy applies to
/// the user again.
pub async fn unexempt(
    context: ConsoleContext,
    PathParameters((id, user_id)): PathParameters<(String, String)>,
) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let policy = find_policy(&context, &id).await?;
    let user_id = Uuid::try_parse(user_id.trim())
        .map_err(|_| ConsoleError::not_found(format!("The exemption of {user_id}")))?;
    let user_name = context
        .read(move |engine| {
            Ok(engine
                .user_view(user_id)
                .map(|user| user.user_principal_name)
                .unwrap_or_default())
        })
        .await?;
    let (changed, audit) =
        runtime_reclamation::exemption_change(&context.caller, &policy, user_id, &user_name, false)
            .ok_or_else(|| ConsoleError::not_found(format!("The exemption of {user_id}")))?;
    context
        .with_store(move |store, tenant_id| store.put_reclamation_policy(tenant_id, &changed, &[audit]))
        .await?;
    Ok(see_other(&Done::ReclamationExemptionRemoved.on(PAGE)))
}

/// `GET /spend/reclamation/policies/{id}/dry-run`: what a run would do now, changing nothing,
/// with the **Run now** button.
pub async fn dry_run(
    context: ConsoleContext,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    let policy = find_policy(&context, &id).await?;
    let run_policy = policy.clone();
    let report = context
        .with_runtime(move |store, runtime, caller| {
            runtime_reclamation::run_policy(store, runtime, &run_policy, now().0, true, caller)
                .map_err(ConsoleError::from)
        })
        .await?;
    let (tenant_name, names) = context
        .read(|engine| Ok((engine.settings().display_name.clone(), ProductNames::of(engine))))
        .await?;
    let count = |wanted: &[&str]| {
        report
            .seats
            .iter()
            .filter(|seat| wanted.contains(&seat.outcome.as_str()))
            .count()
    };
    let (now_count, notice_count, review_count) = (
        count(&["wouldReclaim"]),
        count(&["noticed", "pending"]),
        count(&["review"]),
    );
    let content = html! {
        h1 { "Dry run: " (policy.display_name) }
        p { a href=(PAGE) { "Back to reclamation" } }
        p { "Nothing was changed. Reclaims when: " (reason_text(&policy.reason, policy.inactive_days))
            "; product: " (product_text(&names, policy.sku_id)) "; notice: " (policy.notice_days) " days." }
        p data-field="summary" { "Running now would reclaim " (super::format::count(now_count)) " seat(s), give or keep a notice for "
            (super::format::count(notice_count)) " and ask a review for " (super::format::count(review_count)) "." }
        @if report.seats.is_empty() {
            p.muted { "The policy applies to no seat now." }
        } @else {
            div.table-scroll { table {
                thead { tr {
                    th scope="col" { "User" } th scope="col" { "Product" } th scope="col" { "Outcome" }
                    th scope="col" { "Action date" } th scope="col" { "Steps" }
                } }
                tbody {
                    @for seat in &report.seats {
                        tr {
                            th scope="row" { a href=(format!("/users/{}", seat.candidate.user.user_id)) { (seat.candidate.user.user_principal_name) } }
                            td { (names.product_name(seat.candidate.sku_id)) }
                            td data-field="outcome" { (outcome_text(&seat.outcome)) }
                            td { (format_date_time(seat.act_at)) }
                            td { ul { @for step in &seat.candidate.steps { li { (step_text(step)) } } } }
                        }
                    }
                }
            } }
        }
        @if may_change(&context) {
            form method="post" action=(format!("/spend/reclamation/policies/{}/run", policy.policy_id))
                data-confirm={ "Run " (policy.display_name) " now: reclaim " (super::format::count(now_count)) " seat(s) and give the notices?" } {
                button type="submit" { "Run now" }
            }
        }
    };
    Ok(layout::page("Dry run", Section::Spend, &tenant_name, content))
}

/// `POST /spend/reclamation/policies/{id}/run`: runs the policy for real.
pub async fn run(
    context: ConsoleContext,
    PathParameters(id): PathParameters<String>,
) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let policy = find_policy(&context, &id).await?;
    context
        .with_runtime(move |store, runtime, caller| {
            runtime_reclamation::run_policy(store, runtime, &policy, now().0, false, caller)
                .map_err(ConsoleError::from)
        })
        .await?;
    Ok(see_other(&Done::ReclamationRun.on(PAGE)))
}

/// `POST /spend/reclamation/reverts`: restores what a "Reclaim license" record says was removed.
pub async fn revert(context: ConsoleContext, form: FormFields) -> Result<Response, ConsoleError> {
    require_changes(&context)?;
    let text = form.required("audit_id", "reclamation")?;
    let audit_id = Uuid::try_parse(text.trim())
        .map_err(|_| ConsoleError::bad_request(format!("'{text}' is not a valid audit record id.")))?;
    let report = context
        .with_runtime(move |store, runtime, caller| {
            runtime_reclamation::revert(store, runtime, audit_id, caller, now().0).map_err(
                |error| match error {
                    RevertError::NotFound(id) => ConsoleError::not_found(format!("The audit record {id}")),
                    RevertError::NotAReclamation(_) | RevertError::AlreadyReverted(..) => {
                        ConsoleError::bad_request(format!("{error}."))
                    }
                    RevertError::Execute(error) => ConsoleError::from(error),
                },
            )
        })
        .await?;
    if report.failures.is_empty() {
        return Ok(see_other(&Done::ReclamationReverted.on(PAGE)));
    }
    // Some step could not be restored: say which, and what was.
    let tenant_name = context
        .read(|engine| Ok(engine.settings().display_name.clone()))
        .await?;
    let content = html! {
        h1 { "Reverted in part" }
        div.message.error role="alert" {
            p { "Not everything that was reclaimed could be restored:" }
            ul { @for failure in &report.failures { li { (failure) } } }
        }
        p { "Restored: " (super::format::count(report.restored_licenses.len())) " direct license(s) and "
            (report.restored_groups.len()) " group membership(s). The revert is recorded in the activity log and cannot be repeated." }
        p { a href=(PAGE) { "Back to reclamation" } }
    };
    Ok(layout::page(
        "Reverted in part",
        Section::Spend,
        &tenant_name,
        content,
    ))
}
