//! `licensd tenant create|list`: tenants are created directly in the database (one server hosts
//! many), each with its own Global Administrator token, printed once. Running servers pick a new
//! tenant up on its first request (or within a few seconds in their processor).

use std::sync::{Arc, Mutex};

use anyhow::Context;
use licensd_engine::{CountryCode, TenantSettings, Uuid};
use licensd_runtime::access::{self, Role};

#[derive(clap::Args)]
pub struct TenantArguments {
    #[command(subcommand)]
    command: TenantCommand,
}

#[derive(clap::Subcommand)]
enum TenantCommand {
    /// Creates a tenant and prints its Global Administrator token once.
    Create(CreateArguments),
    /// Lists the database's tenants.
    List(ListArguments),
}

#[derive(clap::Args)]
struct CreateArguments {
    /// The tenant's display name.
    #[arg(long)]
    name: String,
    /// The default usage location (ISO 3166-1 alpha-2) of users without one.
    #[arg(long)]
    default_usage_location: Option<String>,
    /// The database (as for `licensd serve`).
    #[arg(long, env = "LICENSD_DATABASE_URL", default_value = "sqlite://licensd.db")]
    database_url: String,
    /// Print JSON (`tenantId`, `token`) for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct ListArguments {
    #[arg(long, env = "LICENSD_DATABASE_URL", default_value = "sqlite://licensd.db")]
    database_url: String,
}

pub fn run(arguments: TenantArguments) -> anyhow::Result<()> {
    match arguments.command {
        TenantCommand::Create(arguments) => create(arguments),
        TenantCommand::List(arguments) => {
            let mut store = licensd_store::Store::open(&arguments.database_url)
                .with_context(|| format!("cannot open {}", arguments.database_url))?;
            for tenant_id in store.tenant_ids()? {
                println!("{tenant_id}");
            }
            Ok(())
        }
    }
}

fn create(arguments: CreateArguments) -> anyhow::Result<()> {
    let name = arguments.name.trim();
    if name.is_empty() || name.chars().count() > 256 {
        anyhow::bail!("the tenant name must be 1 to 256 characters");
    }
    let mut settings = TenantSettings::new(Uuid::new_v4(), name);
    if let Some(location) = &arguments.default_usage_location {
        settings.default_usage_location = Some(
            CountryCode::parse(location)
                .map_err(|error| anyhow::anyhow!("--default-usage-location: {error}"))?,
        );
    }
    let store = licensd_store::Store::open(&arguments.database_url)
        .with_context(|| format!("cannot open {}", arguments.database_url))?;
    let store = Arc::new(Mutex::new(store));
    store
        .lock()
        .map_err(|_| anyhow::anyhow!("the database connection is unusable"))?
        .create_tenant(&settings)
        .context("creating the tenant")?;
    let (_, token) = access::create_token(
        &store,
        settings.tenant_id,
        "Tenant administrator",
        Role::GlobalAdministrator,
        None,
        "licensd tenant create",
    )
    .context("creating the tenant's administrator token")?;
    if arguments.json {
        println!(
            "{}",
            serde_json::json!({"tenantId": settings.tenant_id, "displayName": name, "token": token})
        );
    } else {
        println!(
            "Created tenant {name} ({}).\n\nIts Global Administrator token (shown only this once):\n\n    {token}\n",
            settings.tenant_id
        );
    }
    Ok(())
}
