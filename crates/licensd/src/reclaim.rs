//! `licensd reclaim ...`: reclamation policies over the HTTP API — list, add and remove them,
//! run one (a dry run unless `--apply`), list the notices, and revert a reclamation from its
//! audit record; enable or disable a policy, exempt a user from one or undo it.

use std::fmt::Write as _;

use anyhow::Context;
use licensd_api_types::reclamation::{
    CreateReclamationPolicy, ReclamationPolicy, ReclamationRun, UpdateReclamationPolicy,
};
use licensd_client::LicensdClient;

use crate::admin::{run_action, to_json, ConnectionOptions, Rendered};

#[derive(clap::Args)]
pub struct ReclaimArguments {
    #[command(subcommand)]
    command: ReclaimCommand,
}

#[derive(clap::Subcommand)]
enum ReclaimCommand {
    /// Lists the reclamation policies.
    Policies(Options),
    /// Adds a policy: reclaim the seats of users inactive for N days, disabled, or who left.
    Add(AddArguments),
    /// Removes a policy and its notices (what it reclaimed stays reclaimed).
    Remove(PolicyArguments),
    /// Runs a policy now: a dry run (who would be acted on, and how) unless --apply.
    Run(RunArguments),
    /// Lists the notices: seats a policy will act on, and seats to review by hand.
    Notices(Options),
    /// Restores what a reclamation removed, from its "Reclaim license" audit record.
    Revert(RevertArguments),
    /// Runs a policy in the background again (every minute).
    Enable(PolicyArguments),
    /// Stops running a policy in the background (its notices stay; `reclaim run` still runs it).
    Disable(PolicyArguments),
    /// Exempts a user from a policy: it never acts on them; its notices to them are withdrawn.
    Exempt(ExemptArguments),
    /// Undoes a user's exemption from a policy.
    Unexempt(ExemptArguments),
}

#[derive(clap::Args)]
struct ExemptArguments {
    /// The policy: id or name.
    policy: String,
    /// The user: id or userPrincipalName.
    user: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

fn set_enabled(client: &LicensdClient, policy: &str, enabled: bool) -> anyhow::Result<Rendered> {
    let policy = find_policy(client, policy)?;
    let policy = client
        .update_reclamation_policy(
            &policy.id.to_string(),
            &UpdateReclamationPolicy {
                enabled: Some(enabled),
                notice_days: None,
            },
        )
        .context("changing the reclamation policy")?;
    Ok(Rendered {
        text: format!("{}\n", render_policy(&policy)),
        json: to_json(&policy)?,
    })
}

fn set_exempt(
    client: &LicensdClient,
    policy: &str,
    user_name: &str,
    exempt: bool,
) -> anyhow::Result<Rendered> {
    let policy = find_policy(client, policy)?;
    let user = client
        .user(user_name)
        .with_context(|| format!("finding {user_name}"))?;
    let (policy_id, user_id) = (policy.id.to_string(), user.id.to_string());
    if exempt {
        client
            .exempt_from_reclamation(&policy_id, &user_id)
            .context("exempting the user")?;
    } else {
        client
            .remove_reclamation_exemption(&policy_id, &user_id)
            .context("undoing the exemption")?;
    }
    let text = if exempt {
        format!("{user_name} is exempt from {}.\n", policy.display_name)
    } else {
        format!("{user_name} is no longer exempt from {}.\n", policy.display_name)
    };
    Ok(Rendered {
        text,
        json: to_json(&serde_json::json!({"policyId": policy.id, "userId": user.id, "exempt": exempt}))?,
    })
}

#[derive(clap::Args)]
struct Options {
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct AddArguments {
    /// The policy's name.
    #[arg(long)]
    name: String,
    /// inactive, disabled or left.
    #[arg(long)]
    reason: String,
    /// For inactive: days without a sign-in [default: 90].
    #[arg(long)]
    inactive_days: Option<u32>,
    /// Only this product (skuId or skuPartNumber) [default: every product].
    #[arg(long)]
    sku: Option<String>,
    /// Days between the notice and the action; 0 acts at once [default: 14].
    #[arg(long)]
    notice_days: Option<u32>,
    /// Do not run it in the background (run it by hand with `licensd reclaim run`).
    #[arg(long)]
    disabled: bool,
    /// A user never acted on (id or userPrincipalName); repeat for more.
    #[arg(long)]
    exclude_user: Vec<String>,
    /// A group whose members are never acted on (id or display name); repeat for more.
    #[arg(long)]
    exclude_group: Vec<String>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct PolicyArguments {
    /// The policy: id or name.
    policy: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct RunArguments {
    /// The policy: id or name.
    policy: String,
    /// Give the notices and reclaim the seats whose notice date has come (without it: a dry run).
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct RevertArguments {
    /// The id of the "Reclaim license" audit record (printed by `reclaim run --apply`).
    audit_id: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

fn find_policy(client: &LicensdClient, policy: &str) -> anyhow::Result<ReclamationPolicy> {
    let policies = client.reclamation_policies()?.value;
    let mut found: Vec<ReclamationPolicy> = policies
        .into_iter()
        .filter(|candidate| {
            candidate.id.to_string().eq_ignore_ascii_case(policy.trim())
                || candidate.display_name.eq_ignore_ascii_case(policy.trim())
        })
        .collect();
    match found.len() {
        0 => anyhow::bail!("no reclamation policy '{policy}' (see `licensd reclaim policies`)"),
        1 => Ok(found.remove(0)),
        _ => anyhow::bail!("several reclamation policies are named '{policy}': give its id"),
    }
}

fn render_policy(policy: &ReclamationPolicy) -> String {
    let reason = match policy.reason.as_str() {
        "inactive" => format!("inactive for {} days", policy.inactive_days),
        other => other.to_string(),
    };
    format!(
        "{}  {:<28} {:<22} {:<38} notice {:>3} days  {}{}",
        policy.id,
        policy.display_name,
        reason,
        policy
            .sku_id
            .map_or_else(|| "every product".to_string(), |sku| sku.to_string()),
        policy.notice_days,
        if policy.enabled { "enabled" } else { "manual" },
        policy
            .last_run_date_time
            .as_deref()
            .map(|at| format!(", last run {at}"))
            .unwrap_or_default()
    )
}

fn render_run(run: &ReclamationRun) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{}: {} seats reclaimed{}, {} pending a notice, {} to review, {} notices withdrawn",
        if run.dry_run { "Dry run" } else { "Run" },
        run.reclaimed,
        if run.dry_run { " now" } else { "" },
        run.pending,
        run.review,
        run.withdrawn_notices
    );
    for seat in &run.seats {
        let steps: Vec<String> = seat
            .steps
            .iter()
            .map(|step| match (&step.action[..], &step.group_display_name) {
                ("removeDirectLicense", _) => "remove the direct license".to_string(),
                ("removeFromGroup", Some(group)) => format!("remove from {group}"),
                (_, Some(group)) => {
                    format!("review {group} ({})", step.review_reason.as_deref().unwrap_or(""))
                }
                (action, None) => action.to_string(),
            })
            .collect();
        let _ = writeln!(
            text,
            "  {:<36} {:<20} {:<9} {:<13} on {}  {}{}",
            seat.user_principal_name,
            seat.sku_part_number,
            seat.reason,
            seat.outcome,
            seat.action_date_time,
            steps.join(", "),
            seat.audit_id
                .map(|id| format!("  (audit {id})"))
                .unwrap_or_default()
        );
        if let Some(error) = &seat.error {
            let _ = writeln!(text, "      error: {error}");
        }
    }
    if !run.money_saved_per_month.is_empty() {
        let saved: Vec<String> = run
            .money_saved_per_month
            .iter()
            .map(|amount| format!("{} {}", amount.amount, amount.currency))
            .collect();
        let _ = writeln!(text, "Saves {} per month.", saved.join(" + "));
    }
    if run.dry_run {
        let _ = writeln!(text, "Nothing changed. Run again with --apply to act.");
    }
    text
}

pub fn run_reclaim(arguments: ReclaimArguments) -> anyhow::Result<()> {
    match arguments.command {
        ReclaimCommand::Policies(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let list = client
                    .reclamation_policies()
                    .context("listing reclamation policies")?;
                let mut text = String::new();
                for policy in &list.value {
                    let _ = writeln!(text, "{}", render_policy(policy));
                }
                if list.value.is_empty() {
                    text.push_str("No reclamation policy.\n");
                }
                Ok(Rendered {
                    text,
                    json: to_json(&list)?,
                })
            }),
        ),
        ReclaimCommand::Add(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| {
                let sku_id = match &arguments.sku {
                    Some(sku) => Some(client.resolve_product(sku).context("finding the product")?.sku_id),
                    None => None,
                };
                let mut excluded_user_ids = Vec::new();
                for user in &arguments.exclude_user {
                    excluded_user_ids.push(client.user(user).with_context(|| format!("finding {user}"))?.id);
                }
                let mut excluded_group_ids = Vec::new();
                for group in &arguments.exclude_group {
                    excluded_group_ids.push(
                        client
                            .find_group(group)
                            .with_context(|| format!("finding {group}"))?
                            .id,
                    );
                }
                let policy = client
                    .create_reclamation_policy(&CreateReclamationPolicy {
                        display_name: arguments.name.clone(),
                        reason: arguments.reason.clone(),
                        inactive_days: arguments.inactive_days,
                        sku_id,
                        notice_days: arguments.notice_days,
                        enabled: Some(!arguments.disabled),
                        excluded_user_ids,
                        excluded_group_ids,
                    })
                    .context("adding the reclamation policy")?;
                Ok(Rendered {
                    text: format!("Added {}\n", render_policy(&policy)),
                    json: to_json(&policy)?,
                })
            }),
        ),
        ReclaimCommand::Remove(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| {
                let policy = find_policy(client, &arguments.policy)?;
                client
                    .delete_reclamation_policy(&policy.id.to_string())
                    .context("removing the reclamation policy")?;
                Ok(Rendered {
                    text: format!("Removed {}\n", policy.display_name),
                    json: to_json(&serde_json::json!({"id": policy.id, "removed": true}))?,
                })
            }),
        ),
        ReclaimCommand::Run(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| {
                let policy = find_policy(client, &arguments.policy)?;
                let run = client
                    .run_reclamation_policy(&policy.id.to_string(), !arguments.apply)
                    .context("running the reclamation policy")?;
                Ok(Rendered {
                    text: render_run(&run),
                    json: to_json(&run)?,
                })
            }),
        ),
        ReclaimCommand::Notices(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let list = client.reclamation_notices().context("listing the notices")?;
                let mut text = format!("{} notices\n", list.value.len());
                for notice in &list.value {
                    let _ = writeln!(
                        text,
                        "  {:<36} {:<20} {:<7} on {}  ({})",
                        notice.user_principal_name,
                        notice.sku_part_number,
                        notice.state,
                        notice.action_date_time,
                        notice.policy_display_name
                    );
                }
                Ok(Rendered {
                    text,
                    json: to_json(&list)?,
                })
            }),
        ),
        ReclaimCommand::Enable(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| set_enabled(client, &arguments.policy, true)),
        ),
        ReclaimCommand::Disable(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| set_enabled(client, &arguments.policy, false)),
        ),
        ReclaimCommand::Exempt(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| set_exempt(client, &arguments.policy, &arguments.user, true)),
        ),
        ReclaimCommand::Unexempt(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| set_exempt(client, &arguments.policy, &arguments.user, false)),
        ),
        ReclaimCommand::Revert(arguments) => run_action(
            &arguments.options,
            Box::new(move |client| {
                let revert = client
                    .revert_reclamation(&arguments.audit_id)
                    .context("reverting the reclamation")?;
                let mut text = format!(
                    "Restored {} direct licenses and {} group memberships of {} (audit {}).\n",
                    revert.restored_sku_ids.len(),
                    revert.restored_group_ids.len(),
                    revert.user_id,
                    revert.audit_id
                );
                for failure in &revert.failures {
                    let _ = writeln!(text, "  not restored: {failure}");
                }
                Ok(Rendered {
                    text,
                    json: to_json(&revert)?,
                })
            }),
        ),
    }
}
