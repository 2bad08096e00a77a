//! `licensd price set`, `licensd cost`, `licensd idle` and `licensd migrate direct-to-group`:
//! prices per seat, what licenses cost and where, idle seats, and moving direct assignments to a
//! group (a dry run unless `--apply`) — over the HTTP API, printed for people or as JSON with
//! `--json`.

use std::fmt::Write as _;

use anyhow::Context;
use licensd_api_types::spend::{
    Amount, CostReport, DirectToGroupReport, DirectToGroupRequest, IdleSeatList, SetPriceRequest,
};

use crate::admin::{run_action, to_json, ConnectionOptions, Rendered};

#[derive(clap::Args)]
pub struct PriceArguments {
    #[command(subcommand)]
    command: PriceCommand,
}

#[derive(clap::Subcommand)]
enum PriceCommand {
    /// Sets a product's price per seat and month.
    Set(PriceSetArguments),
}

#[derive(clap::Args)]
struct PriceSetArguments {
    /// The product: skuId or skuPartNumber.
    #[arg(long)]
    sku: String,
    /// Per seat and month, at most two decimals (`33.50`).
    #[arg(long)]
    price: String,
    /// ISO 4217 currency (`EUR`).
    #[arg(long)]
    currency: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct CostArguments {
    /// Days without a sign-in after which a held seat is idle.
    #[arg(long, default_value_t = 90)]
    inactive_days: u32,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct MigrateArguments {
    #[command(subcommand)]
    command: MigrateCommand,
}

#[derive(clap::Subcommand)]
enum MigrateCommand {
    /// Removes the direct licenses of a product that a group fully covers: a dry run (report
    /// and what-if) unless --apply.
    DirectToGroup(DirectToGroupArguments),
}

#[derive(clap::Args)]
struct DirectToGroupArguments {
    /// The group: id or display name.
    #[arg(long)]
    group: String,
    /// The product: skuId or skuPartNumber.
    #[arg(long)]
    sku: String,
    /// Remove the covered direct licenses (without it: a dry run).
    #[arg(long)]
    apply: bool,
    /// Users per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
    #[command(flatten)]
    options: ConnectionOptions,
}

fn amounts(amounts: &[Amount]) -> String {
    if amounts.is_empty() {
        return "-".to_string();
    }
    amounts
        .iter()
        .map(|amount| format!("{} {}", amount.amount, amount.currency))
        .collect::<Vec<_>>()
        .join(" + ")
}

pub fn run_price(arguments: PriceArguments) -> anyhow::Result<()> {
    let PriceCommand::Set(arguments) = arguments.command;
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let product = client
                .resolve_product(&arguments.sku)
                .context("finding the product")?;
            let price = client
                .set_price(
                    product.sku_id,
                    &SetPriceRequest {
                        price_per_seat: arguments.price.clone(),
                        currency: arguments.currency.clone(),
                    },
                )
                .context("setting the price")?;
            Ok(Rendered {
                text: format!(
                    "{}: {} {} per seat and month\n",
                    price.sku_part_number, price.price_per_seat, price.currency
                ),
                json: to_json(&price)?,
            })
        }),
    )
}

fn render_cost(report: &CostReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "Cost per month (idle: unassigned, left, disabled, or no sign-in for {} days)",
        report.inactive_days
    );
    let _ = writeln!(text, "\nPer product:");
    for product in &report.products {
        let price = match (&product.price_per_seat, &product.currency) {
            (Some(price), Some(currency)) => format!("{price} {currency}"),
            _ => "no price".to_string(),
        };
        let _ = writeln!(
            text,
            "  {:<24} {:>6} purchased {:>6} consumed {:>6} idle  at {:<14} consumed {:>12}  idle {:>12}",
            product.sku_part_number,
            product.purchased,
            product.consumed,
            product.idle_seats,
            price,
            product.consumed_cost.clone().unwrap_or_else(|| "-".into()),
            product.idle_cost.clone().unwrap_or_else(|| "-".into()),
        );
    }
    let _ = writeln!(
        text,
        "\nPer source (a seat counts once: direct first, else the group with the lowest id):"
    );
    for source in &report.sources {
        let _ = writeln!(text, "  {:<32} {}", source.display_name, amounts(&source.cost));
    }
    let _ = writeln!(text, "\nPer department:");
    for entry in &report.departments {
        let _ = writeln!(
            text,
            "  {:<32} {}",
            entry.value.as_deref().unwrap_or("(none)"),
            amounts(&entry.cost)
        );
    }
    let _ = writeln!(text, "\nTotals:");
    for total in &report.totals {
        let _ = writeln!(
            text,
            "  {}: purchased {}, consumed {}, idle {}",
            total.currency, total.purchased, total.consumed, total.idle
        );
    }
    text
}

pub fn run_cost(arguments: CostArguments) -> anyhow::Result<()> {
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let report = client
                .cost_report(arguments.inactive_days)
                .context("reading the cost report")?;
            Ok(Rendered {
                text: render_cost(&report),
                json: to_json(&report)?,
            })
        }),
    )
}

fn render_idle(list: &IdleSeatList) -> String {
    let mut text = format!(
        "{} idle seats (no sign-in for {} days, left or disabled)\n",
        list.total, list.inactive_days
    );
    for seat in &list.value {
        let _ = writeln!(
            text,
            "  {:<40} {:<20} {:<9} {}",
            seat.user_principal_name,
            seat.sku_part_number,
            seat.reason,
            seat.since_date_time.as_deref().unwrap_or("")
        );
    }
    text
}

pub fn run_idle(arguments: CostArguments) -> anyhow::Result<()> {
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let list = client
                .idle_seats(arguments.inactive_days)
                .context("reading the idle seats")?;
            Ok(Rendered {
                text: render_idle(&list),
                json: to_json(&list)?,
            })
        }),
    )
}

fn render_migration(report: &DirectToGroupReport) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{} direct licenses covered by the group, {} members would lose plans (kept), {} users not in the group (kept)",
        report.covered.len(),
        report.losing_plans.len(),
        report.not_in_group.len()
    );
    for user in &report.losing_plans {
        let _ = writeln!(
            text,
            "  would lose: {} ({}{})",
            user.user_principal_name,
            user.reason.as_deref().unwrap_or(""),
            if user.plans.is_empty() {
                String::new()
            } else {
                format!(": {}", user.plans.join(", "))
            }
        );
    }
    if let Some(what_if) = &report.what_if {
        let _ = writeln!(
            text,
            "Dry run: {} users would change, {} newly broken. Run again with --apply to remove them.",
            what_if.changed_users, what_if.newly_broken_users
        );
    }
    if !report.dry_run {
        for batch in &report.batches {
            let _ = writeln!(
                text,
                "  batch {}: {} of {} removed in {} ms",
                batch.index + 1,
                batch.removed,
                batch.users,
                batch.duration_milliseconds
            );
        }
        let _ = writeln!(text, "Removed {} direct licenses.", report.removed);
        if let Some(error) = &report.stopped_by {
            let _ = writeln!(text, "Stopped by an unexpected error: {error}");
        }
        if report.users_who_lost_plans.is_empty() {
            let _ = writeln!(text, "No migrated user lost a plan.");
        } else {
            for user in &report.users_who_lost_plans {
                let _ = writeln!(
                    text,
                    "  LOST PLANS: {} ({})",
                    user.user_principal_name,
                    user.plans.join(", ")
                );
            }
        }
    }
    text
}

pub fn run_migrate(arguments: MigrateArguments) -> anyhow::Result<()> {
    let MigrateCommand::DirectToGroup(arguments) = arguments.command;
    run_action(
        &arguments.options,
        Box::new(move |client| {
            let group = client.find_group(&arguments.group).context("finding the group")?;
            let product = client
                .resolve_product(&arguments.sku)
                .context("finding the product")?;
            let report = client
                .direct_to_group(&DirectToGroupRequest {
                    group_id: group.id,
                    sku_id: product.sku_id,
                    dry_run: Some(!arguments.apply),
                    batch_size: Some(arguments.batch_size),
                })
                .context("migrating direct licenses to the group")?;
            let failed = report.stopped_by.is_some() || !report.users_who_lost_plans.is_empty();
            let rendered = Rendered {
                text: render_migration(&report),
                json: to_json(&report)?,
            };
            if failed {
                anyhow::bail!("{}", rendered.text);
            }
            Ok(rendered)
        }),
    )
}
