//! The `licensd` command: parses arguments and hands over to the library crates.

mod admin;
mod alert;
mod demo;
mod diagnosis;
mod import;
mod reclaim;
mod spend;
mod tenant;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use licensd_runtime::config::{ConfigFile, ServerConfig};

/// mimalloc instead of glibc's malloc: every request allocates and frees dozens of small objects
/// (headers, extractors, JSON), and glibc's allocator took a fifth of the read path's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "licensd",
    version,
    about = "A self-hosted group-based licensing engine"
)]
struct Arguments {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Runs licensd preloaded with the demo tenant (the seed document's world, every licensing
    /// error present): prints what an administrator would see, then serves the API (and console)
    /// on an embedded SQLite database in a temporary (or the given) directory.
    Demo(demo::DemoArguments),
    /// Runs the server: storage, background processing and HTTP. With no flags it uses
    /// ./licensd.db (SQLite) and listens on 127.0.0.1:8080.
    Serve(ServeArguments),
    /// Writes a synthetic tenant of the given size into a database (everything queued for
    /// evaluation, which `licensd serve` then carries out).
    Gen(GenArguments),
    /// Loads a Microsoft Graph JSON export (subscribedSkus, users, groups, members) into a new
    /// tenant, reports what was loaded and skipped, and with --compare lists where licensd's
    /// evaluation differs from the states Microsoft recorded.
    Import(import::ImportArguments),
    /// Writes a stored tenant as a Microsoft Graph JSON export (the shapes `import` reads).
    Export(import::ExportArguments),
    /// Lists the tenant's products and seats (admin CLI: these commands talk to a running server
    /// over its HTTP API; see docs/cli.md).
    Sku(admin::SkuArguments),
    /// Shows a user's properties and license assignments, with each error explained.
    User(admin::UserArguments),
    /// Shows a group's licenses, processing state, members and members with errors.
    Group(admin::GroupArguments),
    /// Lists every user with a license error, grouped by group and error kind.
    Errors(admin::ErrorsArguments),
    /// Assigns a product to a user (directly) or to a group.
    Assign(admin::AssignArguments),
    /// Removes a product from a user (a direct assignment) or from a group.
    Unassign(admin::UnassignArguments),
    /// Queues a user, or a group's members, for license processing.
    Reprocess(admin::ReprocessArguments),
    /// Sets the number of purchased seats of a product.
    Seats(admin::SeatsArguments),
    /// Explains a user's or a group's license errors, with fixes and their predicted effect.
    Explain(diagnosis::ExplainArguments),
    /// Creates, lists and revokes access tokens (Global Administrator).
    Token(token::TokenArguments),
    /// Lists, adds and removes license alert rules (webhooks, Slack, Teams; docs/alerts.md).
    Alert(alert::AlertArguments),
    /// Creates a tenant in a database with its own Global Administrator token, or lists them.
    Tenant(tenant::TenantArguments),
    /// Predicts the effect of a JSON file of changes without applying anything.
    Whatif(diagnosis::ChangesFileArguments),
    /// Applies a JSON file of changes (for example the changes of a proposed fix).
    Apply(diagnosis::ChangesFileArguments),
    /// The tenant advisor: redundant licenses, seats of disabled accounts, add-on risks,
    /// products near exhaustion.
    Advisor(diagnosis::AdvisorArguments),
    /// Sets a product's price per seat and month.
    Price(spend::PriceArguments),
    /// What licenses cost: per product, group, direct assignments, department and company.
    Cost(spend::CostArguments),
    /// Idle seats: held by users who left, are disabled or have not signed in for a while.
    Idle(spend::CostArguments),
    /// Moves direct assignments to a group (`direct-to-group`; a dry run unless --apply).
    Migrate(spend::MigrateArguments),
    /// Reclamation policies: reclaim the seats of inactive, disabled and departed users, with a
    /// dry run, a notice period and a revert from the audit record.
    Reclaim(reclaim::ReclaimArguments),
}

#[derive(clap::Args)]
struct ServeArguments {
    /// Database: a SQLite path (`sqlite://path`) or `postgres://user@host/db`.
    #[arg(long, env = "LICENSD_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A second address serving every tenant's Prometheus metrics at /metrics without a token
    /// (bind it where only the monitoring network reaches).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Directory of the default SQLite database.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A TOML configuration file (keys: database-url, listen, data-dir, processing-batch-size,
    /// processing-idle-interval-ms, processing-lease-ms, instance-id, rate-limit-per-second,
    /// rate-limit-burst, authentication-failures-per-second, authentication-failure-burst,
    /// header-read-timeout-ms, body-read-timeout-ms, max-connections, shutdown-drain-ms,
    /// audit-retention-days, engine-snapshot-interval-s, tenant-idle-eviction-s, tls-cert, tls-key, public-url,
    /// trusted-proxies, metrics-listen).
    #[arg(long)]
    config: Option<PathBuf>,
    /// PEM certificate chain: serve HTTPS (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The address clients reach the server at (`https://licensd.example.com`), used for every
    /// absolute link (`@odata.nextLink`, `@odata.deltaLink`, `@odata.context`, `Location`).
    #[arg(long)]
    public_url: Option<String>,
    /// A reverse proxy's address whose `X-Forwarded-Proto`/`X-Forwarded-Host` are believed
    /// (repeat for several); from any other peer these headers are ignored.
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// The default tenant's first Global Administrator token (`lsd_…`), stored on first start
    /// instead of a generated one.
    #[arg(long, env = "LICENSD_BOOTSTRAP_TOKEN", hide_env_values = true)]
    bootstrap_token: Option<String>,
}

#[derive(clap::Args)]
struct GenArguments {
    /// Database to write the tenant into.
    #[arg(long, env = "LICENSD_DATABASE_URL", default_value = "sqlite://licensd.db")]
    database_url: String,
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 100)]
    groups: usize,
    #[arg(long, default_value_t = 20)]
    skus: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also create a Global Administrator token for the generated tenant and print it once (a
    /// generated tenant other than the server's default one has no token otherwise).
    #[arg(long)]
    token: bool,
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    match arguments.command {
        Commands::Demo(demo_arguments) => demo::run(demo_arguments),
        Commands::Serve(serve_arguments) => serve(serve_arguments),
        Commands::Gen(gen_arguments) => generate(gen_arguments),
        Commands::Import(import_arguments) => import::run_import(import_arguments),
        Commands::Export(export_arguments) => import::run_export(export_arguments),
        Commands::Sku(arguments) => admin::run(admin::AdminCommand::Sku(arguments)),
        Commands::User(arguments) => admin::run(admin::AdminCommand::User(arguments)),
        Commands::Group(arguments) => admin::run(admin::AdminCommand::Group(arguments)),
        Commands::Errors(arguments) => admin::run(admin::AdminCommand::Errors(arguments)),
        Commands::Assign(arguments) => admin::run(admin::AdminCommand::Assign(arguments)),
        Commands::Unassign(arguments) => admin::run(admin::AdminCommand::Unassign(arguments)),
        Commands::Reprocess(arguments) => admin::run(admin::AdminCommand::Reprocess(arguments)),
        Commands::Seats(arguments) => admin::run(admin::AdminCommand::Seats(arguments)),
        Commands::Explain(arguments) => diagnosis::run_explain(arguments),
        Commands::Token(arguments) => token::run(arguments),
        Commands::Alert(arguments) => alert::run(arguments),
        Commands::Tenant(arguments) => tenant::run(arguments),
        Commands::Whatif(arguments) => diagnosis::run_what_if(arguments),
        Commands::Apply(arguments) => diagnosis::run_apply(arguments),
        Commands::Advisor(arguments) => diagnosis::run_advisor(arguments),
        Commands::Price(arguments) => spend::run_price(arguments),
        Commands::Cost(arguments) => spend::run_cost(arguments),
        Commands::Idle(arguments) => spend::run_idle(arguments),
        Commands::Migrate(arguments) => spend::run_migrate(arguments),
        Commands::Reclaim(arguments) => reclaim::run_reclaim(arguments),
    }
}

pub(crate) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LICENSD_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(colours)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(arguments: ServeArguments) -> anyhow::Result<()> {
    init_logging();
    let config = server_config(arguments)?;
    run_server(config)
}

fn server_config(arguments: ServeArguments) -> anyhow::Result<ServerConfig> {
    let data_dir = arguments.data_dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let mut config = ServerConfig::defaults(&data_dir);
    if let Some(path) = &arguments.config {
        let file = ConfigFile::read(path)?;
        config = config.with_file(&file)?;
    }
    if let Some(data_dir) = &arguments.data_dir {
        config = config.with_file(&ConfigFile {
            data_dir: Some(data_dir.clone()),
            ..Default::default()
        })?;
    }
    if let Some(url) = arguments.database_url {
        config.database_url = url;
    }
    if let Some(listen) = arguments.listen {
        config.listen = listen;
    }
    if let Some(address) = arguments.metrics_listen {
        config.metrics_listen = Some(address);
    }
    if arguments.tls_cert.is_some() || arguments.tls_key.is_some() {
        config = config.with_file(&ConfigFile {
            tls_cert: arguments.tls_cert.clone(),
            tls_key: arguments.tls_key.clone(),
            ..Default::default()
        })?;
    }
    if let Some(url) = &arguments.public_url {
        config.public_url = Some(licensd_runtime::config::parse_public_url(url)?);
    }
    if !arguments.trusted_proxies.is_empty() {
        config.trusted_proxies = arguments.trusted_proxies.clone();
    }
    config.bootstrap_token = arguments.bootstrap_token.filter(|token| !token.trim().is_empty());
    Ok(config)
}

/// Runs `licensd serve` with a configuration until Ctrl-C or SIGTERM.
pub(crate) fn run_server(config: ServerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        licensd_server::run(listener, config, shutdown_signal()?).await?;
        Ok(())
    })
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives while tenants load is not lost (without a
/// handler, SIGTERM would end the process at once).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let interrupt = tokio::signal::ctrl_c();
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = interrupt => {},
            _ = terminate.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = interrupt.await;
        tracing::info!("shutting down: finishing the batch in flight");
    })
}

fn generate(arguments: GenArguments) -> anyhow::Result<()> {
    use licensd_fixtures::generator::{build_engine, GeneratorConfig};
    let config = GeneratorConfig::new(arguments.users, arguments.groups, arguments.skus, arguments.seed);
    let started = std::time::Instant::now();
    let (engine, summary) =
        build_engine(&config).map_err(|error| anyhow::anyhow!("generating the tenant failed: {error}"))?;
    let image = engine.to_image();
    let tenant_id = image.settings.tenant_id;
    let mut store = licensd_store::Store::open(&arguments.database_url)
        .with_context(|| format!("cannot open {}", arguments.database_url))?;
    let settings = image.settings.clone();
    // The tenant and everything in it in one transaction: a failed write leaves no tenant.
    let batch = licensd_store::WriteBatch::from_image(image);
    store
        .create_tenant_with(&settings, &batch)
        .with_context(|| format!("writing tenant {tenant_id} failed; nothing of it was stored"))?;
    let token = if arguments.token {
        let store = std::sync::Arc::new(std::sync::Mutex::new(store));
        let (_, token) = licensd_runtime::access::create_token(
            &store,
            tenant_id,
            "Tenant administrator",
            licensd_runtime::access::Role::GlobalAdministrator,
            None,
            "licensd gen",
        )
        .context("creating the generated tenant's administrator token")?;
        Some(token)
    } else {
        None
    };
    println!(
        "tenant {tenant_id}: {} users, {} groups, {} products, {} memberships, {} users queued ({:.1} s)",
        summary.users,
        summary.groups,
        summary.skus.len(),
        summary.memberships,
        engine.queued_users(),
        started.elapsed().as_secs_f64()
    );
    if let Some(token) = token {
        println!("token {token}");
    }
    Ok(())
}
