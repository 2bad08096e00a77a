//! The admin CLI over the HTTP API: `licensd sku list`, `user show`, `group show`, `errors`,
//! `assign` / `unassign` (direct and group), `reprocess` and `seats set`. It talks to a running
//! server through `licensd-client` and never links the server's internals. Output is aligned
//! tables, or stable JSON with `--json`; exit codes are documented in `docs/cli.md`: 0 success,
//! 1 the server refused the request, 2 usage or configuration errors, 3 the server could not be
//! reached or failed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;

use anyhow::Context;
use licensd_api_types::admin::{ExplainedLicenseState, Product, ProductList, UpdateProductRequest};
use licensd_api_types::graph::{AssignLicenseRequest, AssignedLicense, Group, SubscribedSku, User};
use licensd_client::{
    find_service_plans, ClientConfig, ClientError, ConfigError, FailureKind, LicensdClient, Uuid,
};
use serde::Serialize;

/// The server refused the request (4xx), or it names something the tenant does not have.
pub const EXIT_REFUSED: i32 = 1;
/// The command line or the client's configuration is wrong (clap uses 2 for usage errors too).
pub const EXIT_USAGE: i32 = 2;
/// The server could not be reached, did not answer in time, or failed (5xx).
pub const EXIT_UNAVAILABLE: i32 = 3;

/// Options every admin command takes.
#[derive(clap::Args)]
pub struct ConnectionOptions {
    /// The licensd server's address [default: `server` in ~/.config/licensd/cli.toml, else
    /// http://127.0.0.1:8080].
    #[arg(long, env = "LICENSD_SERVER", value_name = "URL")]
    server: Option<String>,
    /// Print stable JSON for scripts instead of tables.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct SkuArguments {
    #[command(subcommand)]
    command: SkuCommand,
}

#[derive(clap::Subcommand)]
enum SkuCommand {
    /// Lists every product with purchased, assigned and available seats and waiting users.
    List(OptionsOnly),
}

#[derive(clap::Args)]
struct OptionsOnly {
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct UserArguments {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand)]
enum UserCommand {
    /// Shows a user's properties and each license assignment with its state, error and
    /// licensd's explanation of the error.
    Show(UserTarget),
}

#[derive(clap::Args)]
struct UserTarget {
    /// The user's id or userPrincipalName.
    #[arg(value_name = "ID|UPN")]
    user: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct GroupArguments {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand)]
enum GroupCommand {
    /// Shows a group's licenses, processing state, member count and the members with errors.
    Show(GroupTarget),
    /// Adds a user (`--user`) or a group (`--group`: a nested group) to a group.
    AddMember(GroupMemberArguments),
    /// Takes a user (`--user`) or a nested group (`--group`) out of a group.
    RemoveMember(GroupMemberArguments),
    /// Creates a security group; with --rule, a dynamic membership group.
    Create(GroupCreateArguments),
    /// Previews a dynamic group's new rule (or a pause with --paused): who would join and
    /// leave, licenses, seats and new errors. Nothing is saved.
    PreviewRule(PreviewRuleArguments),
}

#[derive(clap::Args)]
struct GroupCreateArguments {
    /// The group's display name.
    #[arg(value_name = "NAME")]
    name: String,
    /// A membership rule in Entra's syntax (docs/dynamic-groups.md): the group becomes dynamic.
    #[arg(long)]
    rule: Option<String>,
    /// Create the rule paused (members are not computed until it is turned on).
    #[arg(long, requires = "rule")]
    paused: bool,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct PreviewRuleArguments {
    /// The group's id (or its exact display name).
    #[arg(value_name = "GROUP")]
    group: String,
    /// The rule to preview.
    #[arg(long)]
    rule: String,
    /// Preview the rule paused.
    #[arg(long)]
    paused: bool,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct GroupMemberArguments {
    /// The group (its id or exact display name).
    #[arg(value_name = "GROUP")]
    group: String,
    /// The user to add or remove (id or userPrincipalName).
    #[arg(
        long,
        value_name = "USER",
        conflicts_with = "member_group",
        required_unless_present = "member_group"
    )]
    user: Option<String>,
    /// The group to nest or take out (id or exact display name).
    #[arg(long = "group", value_name = "GROUP")]
    member_group: Option<String>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct GroupTarget {
    /// The group's id (or its exact display name).
    #[arg(value_name = "ID")]
    group: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct ErrorsArguments {
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct AssignArguments {
    #[command(subcommand)]
    target: AssignTarget,
}

#[derive(clap::Subcommand)]
enum AssignTarget {
    /// Assigns a product to a user directly (checked at once: seats, conflicting plans,
    /// prerequisites, usage location, unique proxy addresses). Assigning a product the user
    /// already has directly replaces its disabled plans.
    User(AssignUser),
    /// Assigns a product to a group; its members are licensed in the background.
    Group(AssignGroup),
}

#[derive(clap::Args)]
struct AssignUser {
    /// The user's id or userPrincipalName.
    #[arg(value_name = "ID|UPN")]
    user: String,
    /// The product's skuId or skuPartNumber (such as ENTERPRISEPACK).
    sku: String,
    /// Service plans of the product to switch off, by servicePlanId or servicePlanName
    /// (repeat the option or separate with commas).
    #[arg(long = "disable-plan", value_name = "PLAN", num_args = 1.., value_delimiter = ',')]
    disable_plans: Vec<String>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct AssignGroup {
    /// The group's id (or its exact display name).
    #[arg(value_name = "ID")]
    group: String,
    /// The product's skuId or skuPartNumber (such as ENTERPRISEPACK).
    sku: String,
    /// Service plans of the product to switch off, by servicePlanId or servicePlanName
    /// (repeat the option or separate with commas).
    #[arg(long = "disable-plan", value_name = "PLAN", num_args = 1.., value_delimiter = ',')]
    disable_plans: Vec<String>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct UnassignArguments {
    #[command(subcommand)]
    target: UnassignTarget,
}

#[derive(clap::Subcommand)]
enum UnassignTarget {
    /// Removes a user's direct assignment of a product (licenses from groups stay).
    User(UnassignUser),
    /// Removes a product from a group; its members lose it in the background.
    Group(UnassignGroup),
}

#[derive(clap::Args)]
struct UnassignUser {
    /// The user's id or userPrincipalName.
    #[arg(value_name = "ID|UPN")]
    user: String,
    /// The product's skuId or skuPartNumber.
    sku: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct UnassignGroup {
    /// The group's id (or its exact display name).
    #[arg(value_name = "ID")]
    group: String,
    /// The product's skuId or skuPartNumber.
    sku: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
pub struct ReprocessArguments {
    #[command(subcommand)]
    target: ReprocessTarget,
}

#[derive(clap::Subcommand)]
enum ReprocessTarget {
    /// Queues a user for license processing (errors whose cause is gone clear).
    User(UserTarget),
    /// Queues every member of a group (and every user it still grants licenses to).
    Group(GroupTarget),
}

#[derive(clap::Args)]
pub struct SeatsArguments {
    #[command(subcommand)]
    command: SeatsCommand,
}

#[derive(clap::Subcommand)]
enum SeatsCommand {
    /// Sets the number of purchased seats of a product (lowering it below the assigned seats
    /// takes nothing away).
    Set(SetSeats),
}

#[derive(clap::Args)]
struct SetSeats {
    /// The product's skuId or skuPartNumber.
    sku: String,
    /// The new number of purchased seats.
    #[arg(value_name = "N")]
    seats: u32,
    #[command(flatten)]
    options: ConnectionOptions,
}

/// One admin command, as `main` hands it over.
pub enum AdminCommand {
    Sku(SkuArguments),
    User(UserArguments),
    Group(GroupArguments),
    Errors(ErrorsArguments),
    Assign(AssignArguments),
    Unassign(UnassignArguments),
    Reprocess(ReprocessArguments),
    Seats(SeatsArguments),
}

/// A command, once its arguments are parsed: what it does with a client.
pub(crate) type Action<'a> = Box<dyn FnOnce(&LicensdClient) -> anyhow::Result<Rendered> + 'a>;

/// What a command prints: a table for people, JSON for scripts.
pub(crate) struct Rendered {
    pub(crate) text: String,
    pub(crate) json: String,
}

/// Runs an admin command and prints its output. On failure it prints the reason on stderr and
/// exits with the documented code (1, 2 or 3); it returns only on success.
pub fn run(command: AdminCommand) -> anyhow::Result<()> {
    let (options, action): (&ConnectionOptions, Action<'_>) = match &command {
        AdminCommand::Sku(SkuArguments {
            command: SkuCommand::List(arguments),
        }) => (&arguments.options, Box::new(list_products)),
        AdminCommand::User(UserArguments {
            command: UserCommand::Show(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| show_user(client, &arguments.user, None)),
        ),
        AdminCommand::Group(GroupArguments {
            command: GroupCommand::Show(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| show_group(client, &arguments.group)),
        ),
        AdminCommand::Group(GroupArguments {
            command: GroupCommand::AddMember(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| change_group_member(client, arguments, true)),
        ),
        AdminCommand::Group(GroupArguments {
            command: GroupCommand::RemoveMember(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| change_group_member(client, arguments, false)),
        ),
        AdminCommand::Group(GroupArguments {
            command: GroupCommand::Create(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| create_group(client, arguments)),
        ),
        AdminCommand::Group(GroupArguments {
            command: GroupCommand::PreviewRule(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| preview_rule(client, arguments)),
        ),
        AdminCommand::Errors(arguments) => (&arguments.options, Box::new(list_errors)),
        AdminCommand::Assign(AssignArguments {
            target: AssignTarget::User(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| {
                change_user_license(
                    client,
                    &arguments.user,
                    &arguments.sku,
                    Some(&arguments.disable_plans),
                )
            }),
        ),
        AdminCommand::Assign(AssignArguments {
            target: AssignTarget::Group(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| {
                change_group_license(
                    client,
                    &arguments.group,
                    &arguments.sku,
                    Some(&arguments.disable_plans),
                )
            }),
        ),
        AdminCommand::Unassign(UnassignArguments {
            target: UnassignTarget::User(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| change_user_license(client, &arguments.user, &arguments.sku, None)),
        ),
        AdminCommand::Unassign(UnassignArguments {
            target: UnassignTarget::Group(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| change_group_license(client, &arguments.group, &arguments.sku, None)),
        ),
        AdminCommand::Reprocess(ReprocessArguments {
            target: ReprocessTarget::User(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| reprocess_user(client, &arguments.user)),
        ),
        AdminCommand::Reprocess(ReprocessArguments {
            target: ReprocessTarget::Group(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| reprocess_group(client, &arguments.group)),
        ),
        AdminCommand::Seats(SeatsArguments {
            command: SeatsCommand::Set(arguments),
        }) => (
            &arguments.options,
            Box::new(|client| set_seats(client, &arguments.sku, arguments.seats)),
        ),
    };
    run_action(options, action)
}

/// Runs an action with a client built from the options and prints its output; on failure it
/// prints the reason on stderr and exits with the documented code.
pub(crate) fn run_action(options: &ConnectionOptions, action: Action<'_>) -> anyhow::Result<()> {
    let printed = with_client(options, action).and_then(|rendered| {
        let output = if options.json {
            rendered.json
        } else {
            rendered.text
        };
        print_stdout(&output)
    });
    match printed {
        Ok(()) => Ok(()),
        Err(error) => {
            let code = exit_code(&error);
            let mut stderr = std::io::stderr().lock();
            // Nothing more can be done if stderr itself is closed.
            let _ = writeln!(stderr, "error: {}", describe(&error));
            let _ = stderr.flush();
            std::process::exit(code)
        }
    }
}

/// The failure as one line: what the command was doing, then why. The chain stops at the client's
/// own error, whose message already names the root cause (the transport's inner errors would
/// repeat it).
fn describe(error: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in error.chain() {
        parts.push(cause.to_string());
        if cause.downcast_ref::<ClientError>().is_some() || cause.downcast_ref::<ConfigError>().is_some() {
            break;
        }
    }
    parts.join(": ")
}

/// The exit code of a failure: the kind of the client error (or configuration error) in it.
fn exit_code(error: &anyhow::Error) -> i32 {
    for cause in error.chain() {
        if let Some(client_error) = cause.downcast_ref::<ClientError>() {
            return match client_error.kind() {
                FailureKind::Refused => EXIT_REFUSED,
                FailureKind::Unavailable => EXIT_UNAVAILABLE,
                FailureKind::Configuration => EXIT_USAGE,
            };
        }
        if cause.downcast_ref::<ConfigError>().is_some() {
            return EXIT_USAGE;
        }
    }
    EXIT_REFUSED
}

/// Builds the client from the options, the environment and the configuration file, and runs
/// `command` with it.
fn with_client(options: &ConnectionOptions, command: Action<'_>) -> anyhow::Result<Rendered> {
    let config = ClientConfig::from_environment(options.server.clone())?;
    let client = LicensdClient::new(&config)?;
    command(&client)
}

/// Writes to stdout; a closed pipe (`licensd errors | head`) is not an error.
fn print_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(error) => Err(error).context("writing to standard output"),
    }
}

pub(crate) fn to_json(value: &impl Serialize) -> anyhow::Result<String> {
    let mut json = serde_json::to_string_pretty(value).context("writing JSON")?;
    json.push('\n');
    Ok(json)
}

// ----- sku list -----

fn list_products(client: &LicensdClient) -> anyhow::Result<Rendered> {
    let products = client.products().context("listing the products")?;
    let mut table = Table::new(&[
        ("PRODUCT", Align::Left),
        ("SKU", Align::Left),
        ("STATUS", Align::Left),
        ("PURCHASED", Align::Right),
        ("ASSIGNED", Align::Right),
        ("AVAILABLE", Align::Right),
        ("WAITING", Align::Right),
    ]);
    for product in &products {
        table.row(vec![
            product.display_name.clone(),
            product.sku_part_number.clone(),
            product.capability_status.clone(),
            product.prepaid_units.to_string(),
            product.consumed_units.to_string(),
            product.available_units.to_string(),
            product.waiting_users.to_string(),
        ]);
    }
    let text = if products.is_empty() {
        "The tenant has no products.\n".to_string()
    } else {
        table.render("")
    };
    let json = to_json(&ProductList { value: products })?;
    Ok(Rendered { text, json })
}

// ----- user show -----

/// `user show --json`: the user with every property, the groups it is a member of, and
/// licensd's explained states (`null` when the server has no explanations).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserDocument {
    user: User,
    member_of: Vec<Group>,
    explained_license_states: Option<Vec<ExplainedLicenseState>>,
}

/// One row of a user's license assignments, from licensd's explained states or Graph's.
struct StateRow {
    sku_part_number: String,
    assigned_by_group: Option<Uuid>,
    state: String,
    error: String,
    disabled_plans: usize,
    last_updated: Option<String>,
    explanation: Option<String>,
}

fn show_user(client: &LicensdClient, user: &str, headline: Option<String>) -> anyhow::Result<Rendered> {
    let document = read_user_document(client, user)?;
    let rows = state_rows(client, &document)?;
    let group_names = user_group_names(client, &document, &rows);
    let mut text = String::new();
    if let Some(headline) = headline {
        text.push_str(&headline);
        text.push_str("\n\n");
    }
    let user = &document.user;
    let mut properties = Table::new(&[("", Align::Left), ("", Align::Left)]);
    properties.row(vec!["User".into(), user.user_principal_name.clone()]);
    properties.row(vec!["Display name".into(), user.display_name.clone()]);
    properties.row(vec!["Id".into(), user.id.to_string()]);
    properties.row(vec![
        "Account enabled".into(),
        if user.account_enabled { "yes" } else { "no" }.into(),
    ]);
    properties.row(vec![
        "Usage location".into(),
        user.usage_location
            .clone()
            .unwrap_or_else(|| "none (the tenant's default applies to groups)".into()),
    ]);
    properties.row(vec!["Mail".into(), or_dash(user.mail.clone())]);
    properties.row(vec![
        "Proxy addresses".into(),
        join_or_dash(&user.proxy_addresses),
    ]);
    let member_of: Vec<String> = document
        .member_of
        .iter()
        .map(|group| group.display_name.clone())
        .collect();
    properties.row(vec!["Member of".into(), join_or_dash(&member_of)]);
    text.push_str(&properties.render_without_header());
    text.push('\n');
    if rows.is_empty() {
        text.push_str("No license assignments.\n");
    } else {
        text.push_str("License assignments\n");
        text.push_str(&assignment_table(&rows, &group_names).render("  "));
        let errors: Vec<&StateRow> = rows.iter().filter(|row| row.error != "None").collect();
        if !errors.is_empty() {
            text.push_str("\nErrors\n");
            for row in errors {
                text.push_str(&format!(
                    "  {} {}: {} ({})\n",
                    row.sku_part_number,
                    source_name(
                        row.assigned_by_group,
                        &group_names,
                        "from group ",
                        "assigned directly"
                    ),
                    row.error,
                    row.state
                ));
                if let Some(explanation) = &row.explanation {
                    text.push_str(&format!("    {explanation}\n"));
                }
            }
        }
    }
    let json = to_json(&document)?;
    Ok(Rendered { text, json })
}

fn read_user_document(client: &LicensdClient, user: &str) -> anyhow::Result<UserDocument> {
    let found = client
        .user(user)
        .with_context(|| format!("reading user {user}"))?;
    let id = found.id.to_string();
    let member_of = client
        .user_member_of(&id)
        .with_context(|| format!("reading the groups of {}", found.user_principal_name))?;
    let explained_license_states = client
        .explained_license_states(&id)
        .with_context(|| format!("reading the license states of {}", found.user_principal_name))?;
    Ok(UserDocument {
        user: found,
        member_of,
        explained_license_states,
    })
}

/// The user's states, with licensd's explanations when the server gives them.
fn state_rows(client: &LicensdClient, document: &UserDocument) -> anyhow::Result<Vec<StateRow>> {
    if let Some(explained) = &document.explained_license_states {
        return Ok(explained
            .iter()
            .map(|state| StateRow {
                sku_part_number: state.sku_part_number.clone(),
                assigned_by_group: state.assigned_by_group,
                state: state.state.clone(),
                error: state.error.clone(),
                disabled_plans: state.disabled_plans.len(),
                last_updated: state.last_updated_date_time.clone(),
                explanation: state.explanation.clone(),
            })
            .collect());
    }
    let part_numbers = sku_part_numbers(&client.subscribed_skus().context("listing the products")?);
    Ok(document
        .user
        .license_assignment_states
        .iter()
        .map(|state| StateRow {
            sku_part_number: part_number(&part_numbers, state.sku_id),
            assigned_by_group: state.assigned_by_group,
            state: state.state.clone(),
            error: state.error.clone(),
            disabled_plans: state.disabled_plans.len(),
            last_updated: state.last_updated_date_time.clone(),
            explanation: None,
        })
        .collect())
}

/// Display names of the groups the user's states come from: its groups, plus groups it has left
/// whose assignment is still in place (a blocked removal).
fn user_group_names(
    client: &LicensdClient,
    document: &UserDocument,
    rows: &[StateRow],
) -> HashMap<Uuid, String> {
    let mut names: HashMap<Uuid, String> = document
        .member_of
        .iter()
        .map(|group| (group.id, group.display_name.clone()))
        .collect();
    for group_id in rows.iter().filter_map(|row| row.assigned_by_group) {
        if let std::collections::hash_map::Entry::Vacant(entry) = names.entry(group_id) {
            // A name is a convenience: without it the id is shown.
            if let Ok(group) = client.group(group_id) {
                entry.insert(group.display_name);
            }
        }
    }
    names
}

fn assignment_table(rows: &[StateRow], group_names: &HashMap<Uuid, String>) -> Table {
    let mut table = Table::new(&[
        ("PRODUCT", Align::Left),
        ("SOURCE", Align::Left),
        ("STATE", Align::Left),
        ("ERROR", Align::Left),
        ("DISABLED PLANS", Align::Right),
        ("LAST UPDATED", Align::Left),
    ]);
    for row in rows {
        table.row(vec![
            row.sku_part_number.clone(),
            source_name(row.assigned_by_group, group_names, "group ", "direct"),
            row.state.clone(),
            if row.error == "None" {
                "-".into()
            } else {
                row.error.clone()
            },
            row.disabled_plans.to_string(),
            or_dash(row.last_updated.clone()),
        ]);
    }
    table
}

/// `direct` for a direct assignment, or `prefix` and the group's name (its id when the name is
/// unknown).
fn source_name(
    group_id: Option<Uuid>,
    group_names: &HashMap<Uuid, String>,
    prefix: &str,
    direct: &str,
) -> String {
    match group_id {
        None => direct.to_string(),
        Some(group_id) => format!(
            "{prefix}{}",
            group_names
                .get(&group_id)
                .cloned()
                .unwrap_or_else(|| group_id.to_string())
        ),
    }
}

// ----- group show -----

/// `group show --json`: the group, its member count and its members with license errors (with
/// their license states; `assignedPlans` is not read and is empty).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GroupDocument {
    group: Group,
    member_count: u64,
    members_with_license_errors: Vec<User>,
}

fn processing_state(paused: bool) -> &'static str {
    if paused {
        "Paused"
    } else {
        "On"
    }
}

fn create_group(client: &LicensdClient, arguments: &GroupCreateArguments) -> anyhow::Result<Rendered> {
    let request = licensd_api_types::graph::CreateGroupRequest {
        display_name: arguments.name.clone(),
        mail_enabled: Some(false),
        security_enabled: Some(true),
        group_types: Some(if arguments.rule.is_some() {
            vec!["DynamicMembership".to_string()]
        } else {
            Vec::new()
        }),
        membership_rule: arguments.rule.clone(),
        membership_rule_processing_state: arguments
            .rule
            .as_ref()
            .map(|_| processing_state(arguments.paused).to_string()),
        ..Default::default()
    };
    let group = client
        .create_group(&request)
        .with_context(|| format!("creating group {}", arguments.name))?;
    let mut text = format!("Created group {} ({})\n", group.display_name, group.id);
    if let Some(rule) = &group.membership_rule {
        text.push_str(&format!(
            "Rule ({}): {rule}\n",
            group.membership_rule_processing_state.as_deref().unwrap_or("On")
        ));
    }
    let json = to_json(&group)?;
    Ok(Rendered { text, json })
}

fn preview_rule(client: &LicensdClient, arguments: &PreviewRuleArguments) -> anyhow::Result<Rendered> {
    let group = client
        .find_group(&arguments.group)
        .with_context(|| format!("reading group {}", arguments.group))?;
    let request = licensd_api_types::diagnosis::WhatIfRequest {
        changes: vec![licensd_api_types::diagnosis::Change::SetMembershipRule {
            group_id: group.id,
            membership_rule: Some(arguments.rule.clone()),
            membership_rule_processing_state: Some(processing_state(arguments.paused).to_string()),
        }],
        max_listed_users: None,
    };
    let report = client
        .what_if(&request)
        .with_context(|| format!("previewing the rule of {}", group.display_name))?;
    let mut text = format!(
        "Preview of the rule of {} (nothing was saved)\n",
        group.display_name
    );
    if report.membership_changes.is_empty() {
        text.push_str("No member would join or leave.\n");
    }
    for change in &report.membership_changes {
        text.push_str(&format!(
            "{}: {} would join, {} would leave\n",
            change.display_name, change.joined, change.left
        ));
    }
    text.push_str(&format!(
        "Users whose licenses change: {}; newly in error: {}; fixed: {}\n",
        report.changed_users, report.newly_broken_users, report.fixed_users
    ));
    for sku in &report.skus {
        text.push_str(&format!(
            "{}: {} -> {} seats used of {}\n",
            sku.sku_part_number, sku.consumed_units_before, sku.consumed_units_after, sku.prepaid_units_after
        ));
    }
    let json = to_json(&report)?;
    Ok(Rendered { text, json })
}

fn show_group(client: &LicensdClient, group: &str) -> anyhow::Result<Rendered> {
    let found = client
        .find_group(group)
        .with_context(|| format!("reading group {group}"))?;
    let member_count = client
        .group_member_count(found.id)
        .with_context(|| format!("counting the members of {}", found.display_name))?;
    let members_with_license_errors =
        client
            .group_members_with_license_errors(found.id)
            .with_context(|| {
                format!(
                    "reading the members of {} with license errors",
                    found.display_name
                )
            })?;
    let products = client.subscribed_skus().context("listing the products")?;
    let part_numbers = sku_part_numbers(&products);
    let document = GroupDocument {
        group: found,
        member_count,
        members_with_license_errors,
    };
    let group = &document.group;
    let mut text = String::new();
    let mut properties = Table::new(&[("", Align::Left), ("", Align::Left)]);
    properties.row(vec!["Group".into(), group.display_name.clone()]);
    properties.row(vec!["Id".into(), group.id.to_string()]);
    properties.row(vec![
        "Processing".into(),
        group.license_processing_state.state.clone(),
    ]);
    properties.row(vec!["Members".into(), document.member_count.to_string()]);
    properties.row(vec![
        "Members with errors".into(),
        document.members_with_license_errors.len().to_string(),
    ]);
    text.push_str(&properties.render_without_header());
    text.push('\n');
    if group.assigned_licenses.is_empty() {
        text.push_str("No licenses assigned.\n");
    } else {
        text.push_str("Licenses\n");
        let mut licenses = Table::new(&[
            ("PRODUCT", Align::Left),
            ("SKU ID", Align::Left),
            ("DISABLED PLANS", Align::Left),
        ]);
        for license in &group.assigned_licenses {
            let product = products.iter().find(|product| product.sku_id == license.sku_id);
            licenses.row(vec![
                part_number(&part_numbers, license.sku_id),
                license.sku_id.to_string(),
                disabled_plans_text(product, &license.disabled_plans),
            ]);
        }
        text.push_str(&licenses.render("  "));
    }
    if !document.members_with_license_errors.is_empty() {
        text.push_str("\nMembers with license errors\n");
        let mut members = Table::new(&[
            ("USER", Align::Left),
            ("PRODUCT", Align::Left),
            ("STATE", Align::Left),
            ("ERROR", Align::Left),
        ]);
        for member in &document.members_with_license_errors {
            for state in member
                .license_assignment_states
                .iter()
                .filter(|state| state.assigned_by_group == Some(group.id) && state.error != "None")
            {
                members.row(vec![
                    member.user_principal_name.clone(),
                    part_number(&part_numbers, state.sku_id),
                    state.state.clone(),
                    state.error.clone(),
                ]);
            }
        }
        text.push_str(&members.render("  "));
        text.push_str("\nWhy and how to fix it: licensd user show <user>\n");
    }
    let json = to_json(&document)?;
    Ok(Rendered { text, json })
}

/// "none", the plans' names when there are few, or a count.
fn disabled_plans_text(product: Option<&SubscribedSku>, disabled_plans: &[Uuid]) -> String {
    if disabled_plans.is_empty() {
        return "none".to_string();
    }
    let Some(product) = product else {
        return format!("{} plans", disabled_plans.len());
    };
    let name = |plan_id: &Uuid| {
        product
            .service_plans
            .iter()
            .find(|plan| plan.service_plan_id == *plan_id)
            .map(|plan| plan.service_plan_name.clone())
            .unwrap_or_else(|| plan_id.to_string())
    };
    let total = product.service_plans.len();
    if disabled_plans.len() <= 3 {
        return disabled_plans.iter().map(name).collect::<Vec<_>>().join(", ");
    }
    let enabled: Vec<String> = product
        .service_plans
        .iter()
        .filter(|plan| !disabled_plans.contains(&plan.service_plan_id))
        .map(|plan| plan.service_plan_name.clone())
        .collect();
    if enabled.len() <= 3 {
        format!(
            "{} of {total} (enabled: {})",
            disabled_plans.len(),
            join_or_dash(&enabled)
        )
    } else {
        format!("{} of {total}", disabled_plans.len())
    }
}

// ----- errors -----

/// `errors --json`: every license assignment in error, grouped by the group it comes from (and
/// direct assignments) and by error kind.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ErrorsReport {
    users_with_errors: usize,
    assignments_with_errors: usize,
    groups: Vec<GroupErrors>,
    direct_assignments: DirectErrors,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct GroupErrors {
    id: Uuid,
    display_name: String,
    users_with_errors: usize,
    errors_by_kind: BTreeMap<String, Vec<UserError>>,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct DirectErrors {
    users_with_errors: usize,
    errors_by_kind: BTreeMap<String, Vec<UserError>>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct UserError {
    user_id: Uuid,
    user_principal_name: String,
    sku_id: Uuid,
    sku_part_number: String,
    state: String,
}

/// Collects the errors of users, without counting an assignment twice.
#[derive(Default)]
struct ErrorCollector {
    /// (group or direct, error kind, the user's error), in the order found.
    entries: Vec<(Option<Uuid>, String, UserError)>,
    seen: HashSet<(Uuid, Uuid, Option<Uuid>)>,
}

impl ErrorCollector {
    /// Adds the user's states in error; with `only_group`, only those from that group.
    fn add_user(&mut self, user: &User, only_group: Option<Uuid>, part_numbers: &HashMap<Uuid, String>) {
        for state in &user.license_assignment_states {
            if state.error == "None" || (only_group.is_some() && state.assigned_by_group != only_group) {
                continue;
            }
            if !self.seen.insert((user.id, state.sku_id, state.assigned_by_group)) {
                continue;
            }
            self.entries.push((
                state.assigned_by_group,
                state.error.clone(),
                UserError {
                    user_id: user.id,
                    user_principal_name: user.user_principal_name.clone(),
                    sku_id: state.sku_id,
                    sku_part_number: part_number(part_numbers, state.sku_id),
                    state: state.state.clone(),
                },
            ));
        }
    }

    fn users(&self) -> usize {
        self.entries
            .iter()
            .map(|(_, _, error)| error.user_id)
            .collect::<HashSet<_>>()
            .len()
    }

    fn group_ids(&self) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for group_id in self.entries.iter().filter_map(|(group_id, _, _)| *group_id) {
            if !ids.contains(&group_id) {
                ids.push(group_id);
            }
        }
        ids
    }

    /// The report, groups in the order of `group_names` (then any other group), kinds in
    /// alphabetical order, users by userPrincipalName.
    fn report(self, group_names: &[(Uuid, String)]) -> ErrorsReport {
        let users_with_errors = self.users();
        let assignments_with_errors = self.entries.len();
        let mut order: Vec<(Uuid, String)> = group_names.to_vec();
        for group_id in self.group_ids() {
            if !order.iter().any(|(id, _)| *id == group_id) {
                order.push((group_id, group_id.to_string()));
            }
        }
        let sort = |errors: &mut BTreeMap<String, Vec<UserError>>| {
            for list in errors.values_mut() {
                list.sort_by(|left, right| {
                    left.user_principal_name
                        .to_lowercase()
                        .cmp(&right.user_principal_name.to_lowercase())
                        .then(left.sku_part_number.cmp(&right.sku_part_number))
                });
            }
        };
        let mut groups = Vec::new();
        for (group_id, display_name) in order {
            let mut errors_by_kind: BTreeMap<String, Vec<UserError>> = BTreeMap::new();
            for (_, kind, error) in self.entries.iter().filter(|(id, _, _)| *id == Some(group_id)) {
                errors_by_kind
                    .entry(kind.clone())
                    .or_default()
                    .push(error.clone());
            }
            if errors_by_kind.is_empty() {
                continue;
            }
            sort(&mut errors_by_kind);
            groups.push(GroupErrors {
                id: group_id,
                display_name,
                users_with_errors: distinct_users(&errors_by_kind),
                errors_by_kind,
            });
        }
        let mut direct = BTreeMap::new();
        for (_, kind, error) in self.entries.iter().filter(|(id, _, _)| id.is_none()) {
            direct
                .entry(kind.clone())
                .or_insert_with(Vec::new)
                .push(error.clone());
        }
        sort(&mut direct);
        ErrorsReport {
            users_with_errors,
            assignments_with_errors,
            groups,
            direct_assignments: DirectErrors {
                users_with_errors: distinct_users(&direct),
                errors_by_kind: direct,
            },
        }
    }
}

fn distinct_users(errors_by_kind: &BTreeMap<String, Vec<UserError>>) -> usize {
    errors_by_kind
        .values()
        .flatten()
        .map(|error| error.user_id)
        .collect::<HashSet<_>>()
        .len()
}

fn list_errors(client: &LicensdClient) -> anyhow::Result<Rendered> {
    let part_numbers = sku_part_numbers(&client.subscribed_skus().context("listing the products")?);
    let groups = client
        .groups_with_license_errors()
        .context("listing the groups with license errors")?;
    let mut collector = ErrorCollector::default();
    let mut group_names = Vec::new();
    for group in &groups {
        let members = client
            .group_members_with_license_errors(group.id)
            .with_context(|| {
                format!(
                    "reading the members of {} with license errors",
                    group.display_name
                )
            })?;
        for member in &members {
            collector.add_user(member, Some(group.id), &part_numbers);
        }
        group_names.push((group.id, group.display_name.clone()));
    }
    // Errors on direct assignments belong to no group: read every user only when the tenant's
    // count says some users in error were not found through their groups (or cannot say).
    let users_in_error = client
        .overview()
        .context("reading the tenant overview")?
        .map(|overview| overview.users_with_errors);
    let complete = users_in_error.is_some_and(|count| collector.users() as u64 >= count);
    if !complete {
        let users = client
            .users_with_license_states()
            .context("reading every user's license states")?;
        for user in &users {
            collector.add_user(user, None, &part_numbers);
        }
        for group_id in collector.group_ids() {
            if !group_names.iter().any(|(id, _)| *id == group_id) {
                if let Ok(group) = client.group(group_id) {
                    group_names.push((group_id, group.display_name));
                }
            }
        }
    }
    let report = collector.report(&group_names);
    let text = errors_text(&report);
    let json = to_json(&report)?;
    Ok(Rendered { text, json })
}

fn errors_text(report: &ErrorsReport) -> String {
    if report.assignments_with_errors == 0 {
        return "No user has a license error.\n".to_string();
    }
    let mut text = format!(
        "{} users have license errors, in {} license assignments.\n",
        report.users_with_errors, report.assignments_with_errors
    );
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let section = |title: String, errors_by_kind: &BTreeMap<String, Vec<UserError>>, text: &mut String| {
        text.push_str(&format!("\n{title}\n"));
        let mut table = Table::new(&[
            ("ERROR", Align::Left),
            ("USER", Align::Left),
            ("PRODUCT", Align::Left),
            ("STATE", Align::Left),
        ]);
        for (kind, errors) in errors_by_kind {
            for error in errors {
                table.row(vec![
                    kind.clone(),
                    error.user_principal_name.clone(),
                    error.sku_part_number.clone(),
                    error.state.clone(),
                ]);
            }
        }
        text.push_str(&table.render("  "));
    };
    for group in &report.groups {
        section(
            format!(
                "{} ({}): {} {} with errors",
                group.display_name,
                group.id,
                group.users_with_errors,
                plural(group.users_with_errors, "user", "users")
            ),
            &group.errors_by_kind,
            &mut text,
        );
    }
    if report.direct_assignments.users_with_errors > 0 {
        section(
            format!(
                "Direct assignments: {} {} with errors",
                report.direct_assignments.users_with_errors,
                plural(report.direct_assignments.users_with_errors, "user", "users")
            ),
            &report.direct_assignments.errors_by_kind,
            &mut text,
        );
    }
    let all_kinds = report
        .groups
        .iter()
        .map(|group| &group.errors_by_kind)
        .chain(std::iter::once(&report.direct_assignments.errors_by_kind));
    for errors_by_kind in all_kinds {
        for (kind, errors) in errors_by_kind {
            *by_kind.entry(kind.as_str()).or_default() += errors.len();
        }
    }
    text.push_str("\nErrors by kind\n");
    let mut kinds = Table::new(&[("ERROR", Align::Left), ("ASSIGNMENTS", Align::Right)]);
    for (kind, count) in by_kind {
        kinds.row(vec![kind.to_string(), count.to_string()]);
    }
    text.push_str(&kinds.render("  "));
    text.push_str("\nWhy and how to fix each: licensd user show <user>\n");
    text
}

// ----- assign, unassign, reprocess -----

/// The `addLicenses`/`removeLicenses` body for one product: `disable_plans` is `Some` to assign,
/// `None` to remove.
fn license_change(
    client: &LicensdClient,
    sku: &str,
    disable_plans: Option<&Vec<String>>,
) -> anyhow::Result<(SubscribedSku, AssignLicenseRequest)> {
    let product = client
        .resolve_product(sku)
        .with_context(|| format!("finding product {sku}"))?;
    let request = match disable_plans {
        Some(plans) => AssignLicenseRequest {
            add_licenses: Some(vec![AssignedLicense {
                disabled_plans: find_service_plans(&product, plans)?,
                sku_id: product.sku_id,
                odata_type: None,
            }]),
            remove_licenses: Some(Vec::new()),
        },
        None => AssignLicenseRequest {
            add_licenses: Some(Vec::new()),
            remove_licenses: Some(vec![product.sku_id]),
        },
    };
    Ok((product, request))
}

fn change_user_license(
    client: &LicensdClient,
    user: &str,
    sku: &str,
    disable_plans: Option<&Vec<String>>,
) -> anyhow::Result<Rendered> {
    let assigning = disable_plans.is_some();
    let (product, request) = license_change(client, sku, disable_plans)?;
    let action = if assigning {
        format!("assigning {} to user {user}", product.sku_part_number)
    } else {
        format!("removing {} from user {user}", product.sku_part_number)
    };
    client.assign_user_license(user, &request).context(action)?;
    let headline = if assigning {
        format!("Assigned {} to {user} directly.", product.sku_part_number)
    } else {
        format!(
            "Removed the direct assignment of {} from {user}.",
            product.sku_part_number
        )
    };
    show_user(client, user, Some(headline))
}

fn change_group_license(
    client: &LicensdClient,
    group: &str,
    sku: &str,
    disable_plans: Option<&Vec<String>>,
) -> anyhow::Result<Rendered> {
    let assigning = disable_plans.is_some();
    let found = client
        .find_group(group)
        .with_context(|| format!("reading group {group}"))?;
    let (product, request) = license_change(client, sku, disable_plans)?;
    let action = if assigning {
        format!(
            "assigning {} to group {}",
            product.sku_part_number, found.display_name
        )
    } else {
        format!(
            "removing {} from group {}",
            product.sku_part_number, found.display_name
        )
    };
    let changed = client.assign_group_license(found.id, &request).context(action)?;
    let verb = if assigning {
        format!("Assigned {} to", product.sku_part_number)
    } else {
        format!("Removed {} from", product.sku_part_number)
    };
    let text = format!(
        "{verb} group {} ({}). Its members are processed in the background \
         (licenseProcessingState: {}).\nFollow it with: licensd group show {}\n",
        changed.display_name, changed.id, changed.license_processing_state.state, changed.id
    );
    let json = to_json(&GroupOnly { group: changed })?;
    Ok(Rendered { text, json })
}

/// `--json` of commands that change a group: the group as the server answered.
#[derive(Serialize)]
struct GroupOnly {
    group: Group,
}

fn reprocess_user(client: &LicensdClient, user: &str) -> anyhow::Result<Rendered> {
    client
        .reprocess_user(user)
        .with_context(|| format!("reprocessing user {user}"))?;
    let headline = format!(
        "Queued {user} for license processing; its states change in the background (run \
         `licensd user show {user}` again to see them)."
    );
    show_user(client, user, Some(headline))
}

fn reprocess_group(client: &LicensdClient, group: &str) -> anyhow::Result<Rendered> {
    let found = client
        .find_group(group)
        .with_context(|| format!("reading group {group}"))?;
    let queued = client
        .reprocess_group(found.id)
        .with_context(|| format!("reprocessing group {}", found.display_name))?;
    let text = format!(
        "Queued the members of group {} ({}) for license processing (licenseProcessingState: {}).\n\
         Follow it with: licensd group show {}\n",
        queued.display_name, queued.id, queued.license_processing_state.state, queued.id
    );
    let json = to_json(&GroupOnly { group: queued })?;
    Ok(Rendered { text, json })
}

// ----- group add-member / remove-member -----

/// `group add-member` and `group remove-member`: a user or a nested group, by reference.
fn change_group_member(
    client: &LicensdClient,
    arguments: &GroupMemberArguments,
    add: bool,
) -> anyhow::Result<Rendered> {
    let group = client
        .find_group(&arguments.group)
        .with_context(|| format!("reading group {}", arguments.group))?;
    let (member_id, member_name, kind) = match (&arguments.user, &arguments.member_group) {
        (Some(user), _) => {
            let found = client
                .user(user)
                .with_context(|| format!("reading user {user}"))?;
            (found.id, found.user_principal_name, "user")
        }
        (None, Some(member)) => {
            let found = client
                .find_group(member)
                .with_context(|| format!("reading group {member}"))?;
            (found.id, found.display_name, "group")
        }
        (None, None) => anyhow::bail!("name the member with --user or --group"),
    };
    if add {
        client
            .add_group_member(group.id, member_id)
            .with_context(|| format!("adding {kind} {member_name} to {}", group.display_name))?;
    } else {
        client
            .remove_group_member(group.id, member_id)
            .with_context(|| format!("removing {kind} {member_name} from {}", group.display_name))?;
    }
    let text = format!(
        "{} {kind} {member_name} ({member_id}) {} group {} ({}).\n",
        if add { "Added" } else { "Removed" },
        if add { "to" } else { "from" },
        group.display_name,
        group.id
    );
    let json = to_json(&serde_json::json!({
        "group": {"id": group.id, "displayName": group.display_name},
        "member": {"id": member_id, "type": kind, "name": member_name},
        "added": add,
    }))?;
    Ok(Rendered { text, json })
}

// ----- seats set -----

fn set_seats(client: &LicensdClient, sku: &str, seats: u32) -> anyhow::Result<Rendered> {
    let product = client
        .resolve_product(sku)
        .with_context(|| format!("finding product {sku}"))?;
    let updated: Product = client
        .update_product(
            product.sku_id,
            &UpdateProductRequest {
                prepaid_units: Some(seats),
                capability_status: None,
            },
        )
        .with_context(|| format!("setting the seats of {}", product.sku_part_number))?;
    let mut text = format!(
        "{} ({}): {} purchased, {} assigned, {} available, {} waiting.\n",
        updated.display_name,
        updated.sku_part_number,
        updated.prepaid_units,
        updated.consumed_units,
        updated.available_units,
        updated.waiting_users
    );
    if updated.over_allocated_units > 0 {
        text.push_str(&format!(
            "{} more seats are assigned than purchased; nothing is taken away.\n",
            updated.over_allocated_units
        ));
    }
    let json = to_json(&updated)?;
    Ok(Rendered { text, json })
}

// ----- Formatting -----

fn sku_part_numbers(products: &[SubscribedSku]) -> HashMap<Uuid, String> {
    products
        .iter()
        .map(|product| (product.sku_id, product.sku_part_number.clone()))
        .collect()
}

fn part_number(part_numbers: &HashMap<Uuid, String>, sku_id: Uuid) -> String {
    part_numbers
        .get(&sku_id)
        .cloned()
        .unwrap_or_else(|| sku_id.to_string())
}

fn or_dash(value: Option<String>) -> String {
    value
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "-".to_string())
}

fn join_or_dash(values: &[String]) -> String {
    if values.is_empty() {
        "-".to_string()
    } else {
        values.join(", ")
    }
}

fn plural<'a>(count: usize, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 {
        one
    } else {
        many
    }
}

#[derive(Clone, Copy)]
enum Align {
    Left,
    Right,
}

/// A table whose columns are as wide as their widest cell.
struct Table {
    headers: Vec<&'static str>,
    alignments: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            headers: columns.iter().map(|(header, _)| *header).collect(),
            alignments: columns.iter().map(|(_, alignment)| *alignment).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Every row under a header line, each line starting with `indent`.
    fn render(&self, indent: &str) -> String {
        let header: Vec<String> = self.headers.iter().map(|header| header.to_string()).collect();
        self.render_rows(indent, std::iter::once(&header).chain(&self.rows))
    }

    /// The rows alone (a list of properties).
    fn render_without_header(&self) -> String {
        self.render_rows("", self.rows.iter())
    }

    fn render_rows<'a>(&self, indent: &str, rows: impl Iterator<Item = &'a Vec<String>> + Clone) -> String {
        let mut widths = vec![0; self.headers.len()];
        for row in rows.clone() {
            for (column, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(column) {
                    *width = (*width).max(cell.chars().count());
                }
            }
        }
        let mut text = String::new();
        for row in rows {
            let mut line = indent.to_string();
            for (column, cell) in row.iter().enumerate() {
                let width = widths.get(column).copied().unwrap_or(0);
                let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
                if column > 0 {
                    line.push_str("  ");
                }
                match self.alignments.get(column).copied().unwrap_or(Align::Left) {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&padding);
                    }
                    Align::Right => {
                        line.push_str(&padding);
                        line.push_str(cell);
                    }
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use licensd_api_types::graph::LicenseAssignmentState;

    fn user(number: u128, upn: &str, states: &[(u128, Option<u128>, &str, &str)]) -> User {
        User {
            odata_type: None,
            id: Uuid::from_u128(number),
            display_name: upn.to_string(),
            user_principal_name: upn.to_string(),
            mail: None,
            account_enabled: true,
            usage_location: Some("US".to_string()),
            proxy_addresses: Vec::new(),
            assigned_licenses: Vec::new(),
            assigned_plans: Vec::new(),
            license_assignment_states: states
                .iter()
                .map(|(sku, group, state, error)| LicenseAssignmentState {
                    assigned_by_group: group.map(Uuid::from_u128),
                    disabled_plans: Vec::new(),
                    error: error.to_string(),
                    last_updated_date_time: None,
                    sku_id: Uuid::from_u128(*sku),
                    state: state.to_string(),
                })
                .collect(),
            ..User::default()
        }
    }

    #[test]
    fn errors_are_grouped_by_group_then_kind_and_counted_once() {
        let part_numbers: HashMap<Uuid, String> = [(Uuid::from_u128(1), "ENTERPRISEPACK".to_string())].into();
        let sales = Uuid::from_u128(100);
        let zed = user(2, "zed@contoso.com", &[(1, Some(100), "Error", "CountViolation")]);
        let ann = user(
            3,
            "ann@contoso.com",
            &[
                (1, Some(100), "Error", "CountViolation"),
                (1, None, "ActiveWithError", "DependencyViolation"),
                (9, Some(200), "Error", "MutuallyExclusiveViolation"),
            ],
        );
        let healthy = user(4, "bob@contoso.com", &[(1, Some(100), "Active", "None")]);
        let mut collector = ErrorCollector::default();
        collector.add_user(&zed, Some(sales), &part_numbers);
        collector.add_user(&ann, Some(sales), &part_numbers);
        // A later scan of every user finds the same group errors again, plus the others.
        for everyone in [&zed, &ann, &healthy] {
            collector.add_user(everyone, None, &part_numbers);
        }
        let report = collector.report(&[(sales, "Sales".to_string())]);
        assert_eq!(report.users_with_errors, 2);
        assert_eq!(report.assignments_with_errors, 4);
        assert_eq!(report.groups.len(), 2);
        assert_eq!(report.groups[0].display_name, "Sales");
        let count_violations = &report.groups[0].errors_by_kind["CountViolation"];
        let names: Vec<&str> = count_violations
            .iter()
            .map(|error| error.user_principal_name.as_str())
            .collect();
        assert_eq!(names, ["ann@contoso.com", "zed@contoso.com"]);
        assert_eq!(count_violations[0].sku_part_number, "ENTERPRISEPACK");
        assert_eq!(report.groups[1].id, Uuid::from_u128(200));
        assert_eq!(
            report.groups[1].errors_by_kind["MutuallyExclusiveViolation"][0].sku_part_number,
            Uuid::from_u128(9).to_string()
        );
        assert_eq!(report.direct_assignments.users_with_errors, 1);
        assert_eq!(
            report.direct_assignments.errors_by_kind["DependencyViolation"][0].state,
            "ActiveWithError"
        );
        let text = errors_text(&report);
        assert!(
            text.starts_with("2 users have license errors, in 4 license assignments."),
            "{text}"
        );
        assert!(text.contains("Direct assignments: 1 user with errors"), "{text}");
    }

    #[test]
    fn tables_align_columns_and_trim_line_ends() {
        let mut table = Table::new(&[
            ("NAME", Align::Left),
            ("SEATS", Align::Right),
            ("NOTE", Align::Left),
        ]);
        table.row(vec!["E1".into(), "170".into(), String::new()]);
        table.row(vec!["Office 365 E3".into(), "5".into(), "full".into()]);
        assert_eq!(
            table.render("  "),
            "  NAME           SEATS  NOTE\n  E1               170\n  Office 365 E3      5  full\n"
        );
    }
}
