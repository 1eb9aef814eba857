//! `pytake token create`.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::auth::{check_ttl, load_or_create_secret, Keys};
use crate::config::Settings;
use crate::protocol::rooms::validate_tenant;
use crate::protocol::Role;

use super::exit::UsageError;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a new token signed with the server's secret
    Create(CreateArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant the token speaks for (required unless --role admin)
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// admin (every tenant), operator (read and publish), viewer (read), service (publish)
    #[arg(long, value_name = "ROLE", value_parser = parse_role)]
    pub role: Role,

    /// Who the token is for, shown in the server's log [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub sub: Option<String>,

    /// Lifetime, e.g. 15m, 24h, 30d
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 24h: {e}"))?;
    if d.as_secs() == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(d)
}

pub fn run(cmd: TokenCommand, settings: Settings) -> anyhow::Result<()> {
    let TokenCommand::Create(args) = cmd;
    match (&args.tenant, args.role) {
        (Some(_), Role::Admin) => {
            return Err(UsageError(
                "--tenant cannot be used with --role admin: admin tokens see every tenant".into(),
            )
            .into())
        }
        (None, role) if role != Role::Admin => {
            return Err(UsageError(format!("--tenant is required for --role {role}")).into())
        }
        (Some(t), _) => validate_tenant(t).map_err(|e| UsageError(format!("--tenant: {e}")))?,
        _ => {}
    }
    // A token the server would refuse is no use: say so instead.
    check_ttl(&settings.tokens(), args.ttl).map_err(|e| {
        UsageError(format!(
            "--ttl: {e} (token_max_lifetime; PYTAKE_TOKEN_MAX_LIFETIME)"
        ))
    })?;
    let secret = match settings.secret() {
        Some(secret) => secret.to_string(),
        None => load_or_create_secret(&settings.data_dir()).with_context(|| {
            format!(
                "cannot read the secret in {}",
                settings.data_dir().display()
            )
        })?,
    };
    let sub = args
        .sub
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "pytake".into());
    // With the configured audience and issuer, so the server accepts it.
    let token = Keys::with_settings(secret.as_bytes(), &settings.tokens()).mint_for(
        &sub,
        args.tenant.as_deref(),
        args.role,
        args.ttl,
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    Ok(())
}
