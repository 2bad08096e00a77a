//! `licensd explain user|group`, `licensd whatif`, `licensd apply` and `licensd advisor`: a
//! user's or group's errors explained with their fixes and predicted effects, the predicted
//! effect of a file of changes, applying such a file, and the tenant advisor — over the HTTP
//! API, printed for people or as JSON with `--json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use licensd_api_types::diagnosis::{
    AdvisorReport, ApplyChangesRequest, Change, Fix, GroupDiagnosis, Involvement, UserDiagnosis,
    WhatIfRequest, WhatIfResponse,
};

use crate::admin::{run_action, to_json, ConnectionOptions, Rendered};

#[derive(clap::Args)]
pub struct ExplainArguments {
    #[command(subcommand)]
    target: ExplainTarget,
}

#[derive(clap::Subcommand)]
enum ExplainTarget {
    /// A user's errors: the rule, plans, other assignment or users, location and seats involved,
    /// and the fixes that clear each error with their predicted effect.
    User(ExplainUserArguments),
    /// A group's members in error, grouped by cause, with the fixes that clear each cause.
    Group(ExplainGroupArguments),
}

#[derive(clap::Args)]
struct ExplainUserArguments {
    /// The user's id or userPrincipalName.
    user: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct ExplainGroupArguments {
    /// The group's id, or its display name when unique.
    group: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct ChangesFileArguments {
    /// A JSON file of changes: `{"changes": [...]}` or just the array, each change as in
    /// `POST /licensd/v1/whatif` (for example `{"type": "addGroupMember", "groupId": "…",
    /// "userId": "…"}`); the `changes` of a fix from `licensd explain --json` can be used as is.
    file: PathBuf,
    /// Users listed with their states (whatif only; the counts cover everyone).
    #[arg(long, default_value_t = 20)]
    max_users: u32,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct AdvisorArguments {
    #[command(flatten)]
    options: ConnectionOptions,
}

pub fn run_explain(arguments: ExplainArguments) -> anyhow::Result<()> {
    match arguments.target {
        ExplainTarget::User(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let diagnosis = client
                    .user_diagnosis(&arguments.user)
                    .with_context(|| format!("explaining user {}", arguments.user))?;
                Ok(Rendered {
                    text: render_user(&diagnosis),
                    json: to_json(&diagnosis)?,
                })
            }),
        ),
        ExplainTarget::Group(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let diagnosis = client
                    .group_diagnosis(&arguments.group)
                    .with_context(|| format!("explaining group {}", arguments.group))?;
                Ok(Rendered {
                    text: render_group(&diagnosis),
                    json: to_json(&diagnosis)?,
                })
            }),
        ),
    }
}

/// Reads a file of changes: an object with `changes`, or the array itself.
fn read_changes(path: &Path) -> anyhow::Result<Vec<Change>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let changes = match value {
        serde_json::Value::Object(mut object) => object
            .remove("changes")
            .with_context(|| format!("{} has no \"changes\"", path.display()))?,
        array @ serde_json::Value::Array(_) => array,
        _ => anyhow::bail!(
            "{} must hold an array of changes or an object with \"changes\"",
            path.display()
        ),
    };
    serde_json::from_value(changes)
        .with_context(|| format!("the changes in {} are not valid", path.display()))
}

pub fn run_what_if(arguments: ChangesFileArguments) -> anyhow::Result<()> {
    let changes = match read_changes(&arguments.file) {
        Ok(changes) => changes,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(crate::admin::EXIT_USAGE)
        }
    };
    let request = WhatIfRequest {
        changes,
        max_listed_users: Some(arguments.max_users),
    };
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let report = client.what_if(&request).context("simulating the changes")?;
            let mut text = String::new();
            render_what_if(&mut text, &report, "");
            Ok(Rendered {
                text,
                json: to_json(&report)?,
            })
        }),
    )
}

pub fn run_apply(arguments: ChangesFileArguments) -> anyhow::Result<()> {
    let changes = match read_changes(&arguments.file) {
        Ok(changes) => changes,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(crate::admin::EXIT_USAGE)
        }
    };
    let request = ApplyChangesRequest { changes };
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let response = client.apply_changes(&request).context("applying the changes")?;
            Ok(Rendered {
                text: format!(
                    "Applied {} change(s); {} user(s) queued for processing.\n",
                    response.applied_changes, response.queued_users
                ),
                json: to_json(&response)?,
            })
        }),
    )
}

pub fn run_advisor(arguments: AdvisorArguments) -> anyhow::Result<()> {
    run_action(
        &arguments.options,
        Box::new(|client| {
            let report = client.advisor().context("asking the advisor")?;
            Ok(Rendered {
                text: render_advisor(&report),
                json: to_json(&report)?,
            })
        }),
    )
}

// ----- rendering -------------------------------------------------------------------------------

fn plan_list(plans: &[licensd_api_types::admin::ServicePlan]) -> String {
    plans
        .iter()
        .map(|plan| plan.display_name.clone())
        .collect::<Vec<_>>()
        .join(", ")
}

fn render_involvement(text: &mut String, involvement: &Involvement, indent: &str) {
    let _ = writeln!(text, "{indent}Rule: {}", involvement.rule);
    if !involvement.plans.is_empty() {
        let _ = writeln!(text, "{indent}Plans: {}", plan_list(&involvement.plans));
    }
    if !involvement.other_plans.is_empty() {
        let _ = writeln!(
            text,
            "{indent}Other plans: {}",
            plan_list(&involvement.other_plans)
        );
    }
    if let Some(other) = &involvement.other_assignment {
        let source = match (&other.group_display_name, other.assigned_by_group) {
            (Some(name), _) => format!("group \"{name}\""),
            (None, Some(group_id)) => format!("group {group_id}"),
            (None, None) => "direct".to_string(),
        };
        let _ = writeln!(
            text,
            "{indent}Other assignment: {} ({source})",
            other.sku_part_number
        );
    }
    if !involvement.other_users.is_empty() {
        let users = involvement
            .other_users
            .iter()
            .map(|user| user.user_principal_name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(text, "{indent}Other users: {users}");
    }
    if let Some(address) = &involvement.proxy_address {
        let _ = writeln!(text, "{indent}Proxy address: {address}");
    }
    if let Some(location) = &involvement.usage_location {
        let inherited = if involvement.usage_location_inherited_from_tenant {
            " (the tenant's default)"
        } else {
            ""
        };
        let _ = writeln!(text, "{indent}Usage location: {location}{inherited}");
    }
    if let Some(seats) = &involvement.seats {
        let _ = writeln!(
            text,
            "{indent}Seats: {} purchased, {} assigned, {} user(s) waiting",
            seats.prepaid_units, seats.consumed_units, seats.waiting_users
        );
    }
}

fn render_what_if(text: &mut String, report: &WhatIfResponse, indent: &str) {
    let _ = writeln!(
        text,
        "{indent}{} user(s) change: {} fixed, {} newly broken, {} with a new error; users in error {} -> {}",
        report.changed_users,
        report.fixed_users,
        report.newly_broken_users,
        report.new_error_users,
        report.users_with_errors_before,
        report.users_with_errors_after
    );
    for sku in &report.skus {
        let _ = writeln!(
            text,
            "{indent}  {}: purchased {} -> {}, assigned {} -> {}, waiting {} -> {}",
            sku.sku_part_number,
            sku.prepaid_units_before,
            sku.prepaid_units_after,
            sku.consumed_units_before,
            sku.consumed_units_after,
            sku.waiting_users_before,
            sku.waiting_users_after
        );
    }
    for group in &report.groups {
        let _ = writeln!(
            text,
            "{indent}  group \"{}\": users in error {} -> {}",
            group.display_name, group.users_in_error_before, group.users_in_error_after
        );
    }
    for user in &report.users {
        let _ = writeln!(text, "{indent}  {} {}", user.effect, user.user_principal_name);
    }
    if report.users_truncated {
        let _ = writeln!(text, "{indent}  … more users (see the counts above)");
    }
}

fn render_fixes(text: &mut String, fixes: &[Fix], indent: &str) {
    if fixes.is_empty() {
        let _ = writeln!(text, "{indent}No fix found that clears this error.");
    }
    for (index, fix) in fixes.iter().enumerate() {
        let redundant = if fix.redundant_license {
            " [redundant license]"
        } else {
            ""
        };
        let _ = writeln!(text, "{indent}Fix {}: {}{redundant}", index + 1, fix.description);
        let _ = writeln!(
            text,
            "{indent}  {} change(s); clears {} of {} user(s)",
            fix.changes.len(),
            fix.cleared_users
                .map_or_else(|| "?".to_string(), |count| count.to_string()),
            fix.covered_users
        );
        match &fix.prediction {
            Some(prediction) => render_what_if(text, prediction, &format!("{indent}  ")),
            None => {
                let _ = writeln!(
                    text,
                    "{indent}  not predicted (run `licensd whatif` on its changes)"
                );
            }
        }
    }
}

fn render_user(diagnosis: &UserDiagnosis) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} ({}), usage location {}{}",
        diagnosis.user_principal_name,
        diagnosis.id,
        diagnosis.effective_usage_location.as_deref().unwrap_or("none"),
        if diagnosis.account_enabled {
            ""
        } else {
            ", account disabled"
        }
    );
    if let Some(pending) = &diagnosis.pending_self_healing {
        let _ = writeln!(
            text,
            "Queued to be re-evaluated automatically because {}.",
            pending.description
        );
    }
    if let Some(healing) = &diagnosis.last_self_healing {
        let _ = writeln!(
            text,
            "Re-evaluated automatically on {} because {}; {}.",
            healing.evaluated_date_time,
            healing.reason.description,
            if healing.errors_cleared {
                "its errors cleared"
            } else {
                "it is still in error"
            }
        );
    }
    if diagnosis.queued {
        let _ = writeln!(
            text,
            "Queued for processing: its states may still change by themselves."
        );
    }
    if diagnosis.problems.is_empty() {
        let _ = writeln!(text, "No license errors.");
    }
    for problem in &diagnosis.problems {
        let source = problem
            .group_display_name
            .as_ref()
            .map_or_else(|| "direct".to_string(), |name| format!("group \"{name}\""));
        let _ = writeln!(
            text,
            "\n{} from {source}: {} ({})",
            problem.sku_part_number, problem.error, problem.state
        );
        let _ = writeln!(text, "  {}", problem.explanation);
        render_involvement(&mut text, &problem.involvement, "  ");
        render_fixes(&mut text, &problem.fixes, "  ");
    }
    text
}

fn render_group(diagnosis: &GroupDiagnosis) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} ({}): {} member(s) in error",
        diagnosis.display_name, diagnosis.id, diagnosis.users_in_error
    );
    for cause in &diagnosis.causes {
        let _ = writeln!(
            text,
            "\n{} on {}: {} user(s)",
            cause.error, cause.sku_part_number, cause.user_count
        );
        let _ = writeln!(text, "  {}", cause.explanation);
        render_involvement(&mut text, &cause.involvement, "  ");
        let users = cause
            .users
            .iter()
            .take(10)
            .map(|user| user.user_principal_name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let more = if cause.user_count > 10 { ", …" } else { "" };
        let _ = writeln!(text, "  Users: {users}{more}");
        render_fixes(&mut text, &cause.fixes, "  ");
    }
    text
}

fn render_advisor(report: &AdvisorReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Redundant direct assignments: {}",
        report.redundant_direct_assignments.len()
    );
    for finding in &report.redundant_direct_assignments {
        let _ = writeln!(
            text,
            "  {} {} ({} from group \"{}\"{})",
            finding.user.user_principal_name,
            finding.sku_part_number,
            finding.reason,
            finding.group_display_name,
            if finding.frees_seat { ", frees a seat" } else { "" }
        );
    }
    let _ = writeln!(
        text,
        "Disabled accounts holding seats: {}",
        report.disabled_accounts_holding_seats.len()
    );
    for finding in &report.disabled_accounts_holding_seats {
        let _ = writeln!(
            text,
            "  {}: {}",
            finding.user.user_principal_name,
            finding.sku_part_numbers.join(", ")
        );
    }
    let _ = writeln!(text, "Add-ons at risk: {}", report.add_on_risks.len());
    for risk in &report.add_on_risks {
        let _ = writeln!(
            text,
            "  group \"{}\", {}: {}",
            risk.display_name, risk.add_on_plan.display_name, risk.reason
        );
    }
    let _ = writeln!(
        text,
        "Products near exhaustion: {}",
        report.products_near_exhaustion.len()
    );
    for product in &report.products_near_exhaustion {
        let _ = writeln!(
            text,
            "  {}: {} available, {} waiting, {} queued, short by {}",
            product.sku_part_number,
            product.available_units,
            product.waiting_users,
            product.queued_demand,
            product.shortfall
        );
    }
    let _ = writeln!(text, "Reclaimable seats:");
    for seats in &report.reclaimable_seats {
        let _ = writeln!(text, "  {}: {}", seats.sku_part_number, seats.seats);
    }
    text
}
