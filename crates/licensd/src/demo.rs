//! `licensd demo`: the demo tenant, printed as an administrator sees it, then served by
//! `licensd serve` on an embedded SQLite database in a temporary or given directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use licensd_engine::{Engine, LicenseAssignmentState, Uuid};
use licensd_fixtures::seed_world::SeedWorld;

#[derive(clap::Args)]
pub struct DemoArguments {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the demo's SQLite database (default: a new temporary directory, removed on
    /// exit). An existing demo database there is served as it is.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the demo tenant and exit without serving it.
    #[arg(long)]
    no_serve: bool,
}

/// Prints the demo tenant, stores it and serves it until Ctrl-C.
pub fn run(arguments: DemoArguments) -> anyhow::Result<()> {
    let (mut world, directory) = SeedWorld::demo().context("building the demo tenant")?;
    // Departments and companies change no license state: the seed's errors stay as they are.
    for command in SeedWorld::demo_attribute_commands(&directory) {
        world
            .apply(command)
            .context("giving the demo's users departments")?;
    }
    print_demo(&world.engine)?;
    if arguments.no_serve {
        return Ok(());
    }
    crate::init_logging();
    let temporary = match &arguments.data_dir {
        Some(_) => None,
        None => Some(tempfile::tempdir().context("creating a temporary directory")?),
    };
    let data_dir = match (&arguments.data_dir, &temporary) {
        (Some(directory), _) => directory.clone(),
        (None, Some(temporary)) => temporary.path().to_path_buf(),
        (None, None) => PathBuf::from("."),
    };
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let mut config = licensd_runtime::config::ServerConfig::defaults(&data_dir);
    config.listen = arguments.listen;
    // The demo's administrator: LICENSD_BOOTSTRAP_TOKEN when given, else a new token each run
    // (stored next to any earlier ones of a reused --data-dir).
    let token = match std::env::var("LICENSD_BOOTSTRAP_TOKEN") {
        Ok(token) if !token.trim().is_empty() => token.trim().to_string(),
        _ => licensd_runtime::access::generate_token_text().context("generating the demo's token")?,
    };
    config.bootstrap_token = Some(token.clone());
    let mut store = licensd_store::Store::open(&config.database_url)
        .with_context(|| format!("opening {}", config.database_url))?;
    if store.tenant_ids()?.is_empty() {
        let image = world.engine.to_image();
        let tenant_id = image.settings.tenant_id;
        store.create_tenant(&image.settings)?;
        store
            .write(tenant_id, &licensd_store::WriteBatch::from_image(image))
            .context("storing the demo tenant")?;
        // Prices and the users' activity (a few leavers, some inactive users): the spend pages.
        let spend = SeedWorld::demo_spend(&directory, licensd_runtime::tenants::now());
        for (sku_id, price_minor, currency) in spend.prices {
            let price = licensd_store::SkuPrice {
                sku_id,
                price_minor,
                currency: currency.to_string(),
            };
            store
                .set_sku_price(tenant_id, sku_id, Some(&price), &[])
                .context("storing the demo's prices")?;
        }
        let activity: Vec<licensd_store::UserActivityRecord> = spend
            .activity
            .iter()
            .map(|(user_id, activity)| licensd_store::UserActivityRecord {
                user_id: *user_id,
                last_sign_in: activity.last_sign_in.map(|at| at.0),
                leave_date: activity.leave_date.map(|at| at.0),
            })
            .collect();
        store
            .set_user_activity(tenant_id, &activity, &[])
            .context("storing the demo's activity")?;
    }
    drop(store);
    println!(
        "\nServing the demo tenant from {}\n  console: http://{}/  (sign in with the token below)\n  API:     \
         http://{}/v1.0/users  (Graph-shaped; OpenAPI at /openapi.json)\n\nGlobal Administrator token (shown once):\n\n    \
         {token}\n\nFor the CLI: export LICENSD_TOKEN={token}\nFor the API: Authorization: Bearer <token>\n\
         Press Ctrl-C to stop.",
        data_dir.display(),
        arguments.listen,
        arguments.listen
    );
    crate::run_server(config)
}

/// The demo tenant as an administrator would see it.
fn print_demo(engine: &Engine) -> anyhow::Result<()> {
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
