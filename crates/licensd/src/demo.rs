//! `licensd demo`: the demo tenant evaluated in memory and printed as an administrator sees it.

use anyhow::Context;
use licensd_engine::seed_world::SeedWorld;
use licensd_engine::{Engine, LicenseAssignmentState, Uuid};

pub fn print_demo() -> anyhow::Result<()> {
    let (world, _) = SeedWorld::demo().context("building the demo tenant")?;
    let engine = &world.engine;
    let overview = engine.tenant_overview();
    println!(
        "licensd demo tenant: {} users, {} groups ({} licensed)\n",
        overview.users, overview.groups, overview.licensed_groups
    );
    println!("All products");
    println!(
        "  {:<42} {:>9} {:>9} {:>9} {:>8}",
        "Product", "Purchased", "Assigned", "Available", "Waiting"
    );
    for product in &overview.products {
        println!(
            "  {:<42} {:>9} {:>9} {:>9} {:>8}",
            format!("{} ({})", product.display_name, product.sku_part_number),
            product.prepaid_units,
            product.consumed_units,
            product.available_units,
            product.waiting_users
        );
    }
    println!("\n{} groups need your attention", overview.groups_with_errors);
    for group_id in engine.groups_with_errors() {
        let group = engine.group_view(group_id)?;
        println!(
            "\n  {} - {} users have license errors",
            group.display_name, group.members_with_license_errors
        );
        for user_id in engine.members_with_license_errors(group_id)? {
            print_user_errors(engine, user_id, Some(group_id))?;
        }
    }
    println!("\nErrors by kind");
    for (kind, count) in &overview.errors_by_kind {
        println!("  {:<36} {count}", kind.as_str());
    }
    Ok(())
}

fn print_user_errors(engine: &Engine, user_id: Uuid, group_id: Option<Uuid>) -> anyhow::Result<()> {
    let user = engine.user_view(user_id)?;
    let states: Vec<LicenseAssignmentState> = engine
        .user_license_states(user_id)?
        .into_iter()
        .filter(|state| state.error.is_some() && state.assigned_by_group == group_id)
        .collect();
    for state in states {
        let reason = engine.explain(&state).unwrap_or_default();
        println!(
            "    {:<22} {:<16} {}\n      {}",
            user.user_principal_name,
            state.state.as_str(),
            state.error.map(|kind| kind.as_str()).unwrap_or("None"),
            reason
        );
    }
    Ok(())
}
