//! `pytake token create|verify`: sign a token with the server's secret, or
//! say what a token holds and whether this server accepts it.

mod verify;

use std::io::Write;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::auth::{check_ttl, read_secret, Keys, SecretError};
use crate::config::{duration, Settings};
use crate::protocol::rooms::validate_tenant;
use crate::protocol::Role;

use super::exit::UsageError;
use crate::config::flags::AuthFlags;

pub use verify::VerifyArgs;

const TOKEN_EXAMPLES: &str = "\
Examples:
  pytake token create --tenant acme --role viewer --ttl 8h
  pytake token verify \"$PYTAKE_TOKEN\"
  pytake token verify - < token.txt

Exit status: 0 ok, 1 failure, 2 usage (also: no secret, or not a token at all),
4 the token is not valid here (verify)";

const CREATE_EXAMPLES: &str = "\
Examples:
  # a dashboard's read-only token for one tenant, for a day
  pytake token create --tenant acme --role viewer
  # a service that posts acme's events, for a year
  pytake token create --tenant acme --role service --sub crm --ttl 365d
  # an admin token signed with a secret from the environment
  PYTAKE_SECRET=... pytake token create --role admin --ttl 1h

The secret is --secret, else PYTAKE_SECRET, else <data-dir>/secret, which
`pytake serve` writes on its first start; token create never creates one.

Exit status: 0 printed a token, 1 failure (the secret cannot be read),
2 usage (bad flag, no secret, a --ttl over token_max_lifetime)";

/// `pytake token ...`.
#[derive(Debug, Subcommand)]
#[command(after_help = TOKEN_EXAMPLES)]
pub enum TokenCommand {
    /// Print a new token signed with the server's secret
    #[command(after_help = CREATE_EXAMPLES)]
    Create(CreateArgs),
    /// Show a token's claims and whether this server's secret and rules accept it
    #[command(after_help = verify::EXAMPLES)]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Tenant the token speaks for (required unless --role admin)
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,

    /// admin (every tenant), operator (read and publish), viewer (read), service (publish)
    #[arg(long, value_name = "ROLE", hide_possible_values = true,
          value_parser = crate::cli::values::Known::new(&["admin", "operator", "viewer", "service"], parse_role))]
    pub role: Role,

    /// Who the token is for, shown in the server's log [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub sub: Option<String>,

    /// Lifetime, e.g. 15m, 24h, 30d
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_ttl)]
    pub ttl: Duration,

    #[command(flatten)]
    pub auth: AuthFlags,
}

/// The secret to sign or check with: the configured one (`--secret`,
/// `--secret-file`, `PYTAKE_SECRET`, the config file), else the data dir's.
/// Never creates one: a missing secret is a usage error (exit 2), since the
/// fix is always in how the command is run (a mistyped `--data-dir`, a
/// missing `--secret`); a secret that exists but cannot be read is a
/// failure (exit 1).
fn resolve_secret(settings: &Settings) -> anyhow::Result<String> {
    if let Some(secret) = settings.secret() {
        return Ok(secret.to_string());
    }
    read_secret(&settings.data_dir()).map_err(|e| match e {
        SecretError::Missing { .. } => UsageError(e.to_string()).into(),
        unreadable => anyhow::Error::new(unreadable),
    })
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    duration::parse_positive(s)
}

/// Runs `pytake token ...`.
pub fn run(cmd: TokenCommand, settings: Settings) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create(args) => create(args, settings),
        TokenCommand::Verify(args) => verify::run(args, settings),
    }
}

impl TokenCommand {
    /// The `[auth]` flags of whichever subcommand this is.
    pub fn auth(&self) -> &AuthFlags {
        match self {
            TokenCommand::Create(args) => &args.auth,
            TokenCommand::Verify(args) => &args.auth,
        }
    }
}

fn create(args: CreateArgs, settings: Settings) -> anyhow::Result<()> {
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
    let secret = resolve_secret(&settings)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_ttl_says_what_a_duration_looks_like() {
        assert_eq!(parse_ttl("8h"), Ok(Duration::from_secs(8 * 3600)));
        assert_eq!(
            parse_ttl("1x").unwrap_err(),
            "`1x` is not a duration like 30s, 15m, 24h or 7d (units: ms, s, m, h, d or w)"
        );
        assert_eq!(
            parse_ttl("24").unwrap_err(),
            "`24` has no unit: write 24s, 24m or 24h (units: ms, s, m, h, d or w)"
        );
        assert_eq!(parse_ttl("0s").unwrap_err(), "`0s` must be longer than 0s");
    }
}
