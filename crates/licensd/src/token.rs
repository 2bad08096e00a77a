//! `licensd token create|list|revoke`: a Global Administrator manages the tenant's access tokens
//! over the HTTP API (`/licensd/v1/tokens`), with the token in `LICENSD_TOKEN` or cli.toml.
//! A new token's secret is printed once; scripts read it from `--json` (`secret`).

use std::fmt::Write as _;

use anyhow::Context;
use licensd_api_types::tokens::{AccessToken, CreateAccessToken};

use crate::admin::{run_action, to_json, ConnectionOptions, Rendered};

#[derive(clap::Args)]
pub struct TokenArguments {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(clap::Subcommand)]
enum TokenCommand {
    /// Creates a token and prints its secret once.
    Create(CreateArguments),
    /// Lists the tenant's tokens (never their secrets).
    List(ListArguments),
    /// Revokes a token at once, on every instance.
    Revoke(RevokeArguments),
}

#[derive(clap::Args)]
struct CreateArguments {
    /// Who or what uses the token (shown in the audit log).
    #[arg(long)]
    name: String,
    /// GlobalAdministrator, LicenseAdministrator, UserAdministrator, GlobalReader, ReportsReader
    /// or ProvisioningAgent (any spelling: license-administrator works too).
    #[arg(long)]
    role: String,
    /// Days until the token expires (1–3650); without it the token does not expire.
    #[arg(long, value_name = "DAYS")]
    expires_in_days: Option<u32>,
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct ListArguments {
    #[command(flatten)]
    options: ConnectionOptions,
}

#[derive(clap::Args)]
struct RevokeArguments {
    /// The token's id (from `licensd token list`).
    id: String,
    #[command(flatten)]
    options: ConnectionOptions,
}

fn describe(token: &AccessToken) -> String {
    let expires = token.expiration_date_time.as_deref().unwrap_or("never");
    format!(
        "{}  {:<24} {:<22} {:<8} created {} by {}, expires {}",
        token.id,
        token.display_name,
        token.role,
        token.status,
        token.created_date_time,
        token.created_by,
        expires
    )
}

pub fn run(arguments: TokenArguments) -> anyhow::Result<()> {
    match arguments.command {
        TokenCommand::Create(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let request = CreateAccessToken {
                    display_name: arguments.name.clone(),
                    role: arguments.role.clone(),
                    expires_in_days: arguments.expires_in_days,
                };
                let created = client
                    .create_access_token(&request)
                    .with_context(|| format!("creating the token '{}'", arguments.name))?;
                let mut text = String::new();
                writeln!(text, "Created token {}", describe(&created.token))?;
                writeln!(
                    text,
                    "\nSecret (shown only this once; licensd keeps only its hash):\n\n    {}\n",
                    created.secret
                )?;
                Ok(Rendered {
                    text,
                    json: to_json(&created)?,
                })
            }),
        ),
        TokenCommand::List(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                let tokens = client.access_tokens().context("listing tokens")?;
                let mut text = String::new();
                for token in &tokens.value {
                    writeln!(text, "{}", describe(token))?;
                }
                if tokens.value.is_empty() {
                    writeln!(text, "No tokens.")?;
                }
                Ok(Rendered {
                    text,
                    json: to_json(&tokens)?,
                })
            }),
        ),
        TokenCommand::Revoke(arguments) => run_action(
            &arguments.options,
            Box::new(|client| {
                client
                    .revoke_access_token(&arguments.id)
                    .with_context(|| format!("revoking token {}", arguments.id))?;
                Ok(Rendered {
                    text: format!("Revoked token {}.\n", arguments.id),
                    json: to_json(&serde_json::json!({ "id": arguments.id, "status": "revoked" }))?,
                })
            }),
        ),
    }
}
