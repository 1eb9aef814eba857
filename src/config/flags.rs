//! The settings that have flags, one clap group per config section.
//!
//! A field's name is its key in the section (the flag named after its
//! section, `--store` and `--bus`, sets that section's `url`). Its `env`
//! is its `PYTAKE_*` variable: the loader reads the environment through
//! these same definitions, so a variable exists exactly where a flag does
//! and both parse the same way. Defaults are not written here: they come
//! from the section structs and are added to the help by [`with_defaults`].

use super::parse::*;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, Args, Command, FromArgMatches};
use serde::Serialize;

use super::LogFormat;

/// A clap group whose fields are keys of one config section.
pub trait Group: Args + FromArgMatches + Serialize {
    const SECTION: &'static str;
}

/// The config key a flag sets in its section.
pub fn key_of<'a>(section: &str, id: &'a str) -> &'a str {
    if id == section {
        return "url";
    }
    // `--store-pool-size` is `[store] pool_size`.
    id.strip_prefix(section)
        .and_then(|rest| rest.strip_prefix('_'))
        .unwrap_or(id)
}

/// `--data-dir`: every command reads it (the server keeps its files there,
/// the local tools find the secret there).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct DataDirFlag {
    /// Data dir: the SQLite file and the generated secret
    #[arg(long, global = true, value_name = "DIR", env = "PYTAKE_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
}

impl Group for DataDirFlag {
    const SECTION: &'static str = "server";
}

/// `[server]` flags of `pytake serve`.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Server")]
pub struct ServerFlags {
    /// Address to listen on, HOST:PORT; port 0 picks a free one
    #[arg(long, value_name = "ADDR", env = "PYTAKE_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,

    /// Log lines as readable text or one JSON object per line
    #[arg(long, value_name = "FORMAT", env = "PYTAKE_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,

    /// REST requests per minute per viewer token subject; 0: no limit
    #[arg(long, value_name = "N", env = "PYTAKE_RATE_LIMIT_VIEWER", value_parser = parse_quota)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_viewer: Option<u32>,

    /// REST requests per minute per operator token subject; 0: no limit
    #[arg(long, value_name = "N", env = "PYTAKE_RATE_LIMIT_OPERATOR", value_parser = parse_quota)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_operator: Option<u32>,

    /// REST requests per minute per admin token subject; 0: no limit
    #[arg(long, value_name = "N", env = "PYTAKE_RATE_LIMIT_ADMIN", value_parser = parse_quota)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_admin: Option<u32>,

    /// REST requests per minute per service token subject; 0: no limit
    #[arg(long, value_name = "N", env = "PYTAKE_RATE_LIMIT_SERVICE", value_parser = parse_quota)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_service: Option<u32>,

    /// Reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For names the client
    #[arg(
        long,
        value_name = "CIDR,...",
        env = "PYTAKE_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_proxy
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<crate::server::caps::ProxyNet>>,
}

impl Group for ServerFlags {
    const SECTION: &'static str = "server";
}

/// `[auth]` flags: the secret and the token rules.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Tokens")]
pub struct AuthFlags {
    /// JWT HS256 secret; prefer --secret-file or PYTAKE_SECRET, which `ps` does not show
    #[arg(
        long,
        value_name = "SECRET",
        env = "PYTAKE_SECRET",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,

    /// File holding the JWT secret (its first line)
    #[arg(long, value_name = "FILE", env = "PYTAKE_SECRET_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,

    /// Clock skew tolerated on a token's exp, nbf and iat
    #[arg(long, value_name = "DURATION", env = "PYTAKE_TOKEN_LEEWAY", value_parser = parse_duration)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub token_leeway: Option<Duration>,

    /// Refuse tokens whose aud is not (or does not include) this; unset: aud is not checked
    #[arg(long, value_name = "AUD", env = "PYTAKE_TOKEN_AUDIENCE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_audience: Option<String>,

    /// Refuse tokens whose iss is not this; unset: iss is not checked
    #[arg(long, value_name = "ISS", env = "PYTAKE_TOKEN_ISSUER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_issuer: Option<String>,

    /// Refuse tokens whose exp - iat is longer, or `none`
    #[arg(long, value_name = "DURATION", env = "PYTAKE_TOKEN_MAX_LIFETIME", value_parser = parse_lifetime)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_max_lifetime: Option<String>,
}

impl Group for AuthFlags {
    const SECTION: &'static str = "auth";
}

/// `[gateway]` flags: per-connection limits.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Gateway")]
pub struct GatewayFlags {
    /// Client messages per minute per WebSocket connection
    #[arg(long, value_name = "N", env = "PYTAKE_RATE_LIMIT", value_parser = parse_count_u32)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,

    /// Largest WebSocket frame a client may send, in bytes
    #[arg(long, value_name = "BYTES", env = "PYTAKE_MAX_FRAME_BYTES", value_parser = parse_count)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_bytes: Option<u64>,

    /// Frames queued per connection before it is closed as a slow consumer (4009)
    #[arg(long, value_name = "N", env = "PYTAKE_OUTBOUND_QUEUE", value_parser = parse_count)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_queue: Option<u64>,

    /// Close connections that have not authenticated by then (4001)
    #[arg(long, value_name = "DURATION", env = "PYTAKE_AUTH_TIMEOUT", value_parser = parse_positive)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub auth_timeout: Option<Duration>,

    /// How often the server pings each connection
    #[arg(long, value_name = "DURATION", env = "PYTAKE_PING_INTERVAL", value_parser = parse_positive)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub ping_interval: Option<Duration>,

    /// Close connections silent for this long
    #[arg(long, value_name = "DURATION", env = "PYTAKE_IDLE_TIMEOUT", value_parser = parse_positive)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub idle_timeout: Option<Duration>,

    /// Close a connection as a slow consumer (4009) when a write makes no progress for this long
    #[arg(long, value_name = "DURATION", env = "PYTAKE_WRITE_STALL", value_parser = parse_positive)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub write_stall: Option<Duration>,

    /// Compress WebSocket messages (permessage-deflate) for clients that offer it; false turns it off
    #[arg(
        long,
        value_name = "BOOL",
        env = "PYTAKE_COMPRESSION",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,

    /// Connections (WebSocket and SSE) this node serves at once; over it, 503
    #[arg(long, value_name = "N", env = "PYTAKE_MAX_CONNECTIONS", value_parser = parse_count_u32)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,

    /// Connections one tenant may hold on this node; over it, 503 (or close 1013 after Auth)
    #[arg(long, value_name = "N", env = "PYTAKE_MAX_CONNECTIONS_PER_TENANT", value_parser = parse_count_u32)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_tenant: Option<u32>,

    /// Connections not yet authenticated one source address may hold; over it, 503
    #[arg(long, value_name = "N", env = "PYTAKE_MAX_UNAUTHENTICATED_PER_ADDRESS", value_parser = parse_count_u32)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unauthenticated_per_address: Option<u32>,
    /// Keep a user online this long after its last connection closed (0s: at once)
    #[arg(long, value_name = "DURATION", env = "PYTAKE_PRESENCE_GRACE", value_parser = parse_duration)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub presence_grace: Option<Duration>,

    /// With several nodes: a node whose presence heartbeat stops this long has its users go offline
    #[arg(long, value_name = "DURATION", env = "PYTAKE_PRESENCE_TTL", value_parser = parse_positive)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub presence_ttl: Option<Duration>,
}

impl Group for GatewayFlags {
    const SECTION: &'static str = "gateway";
}

/// `[store]` flags.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Store and bus")]
pub struct StoreFlags {
    /// Event store URL: sqlite://PATH (one node) or postgres://USER:PASSWORD@HOST:PORT/DATABASE (several)
    #[arg(long, value_name = "URL", env = "PYTAKE_STORE", hide_env_values = true)]
    #[serde(rename = "url", skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,

    /// Most PostgreSQL connections this node opens
    #[arg(long, value_name = "N", env = "PYTAKE_STORE_POOL_SIZE", value_parser = clap::value_parser!(u32).range(1..=1000))]
    #[serde(rename = "pool_size", skip_serializing_if = "Option::is_none")]
    pub store_pool_size: Option<u32>,
}

impl Group for StoreFlags {
    const SECTION: &'static str = "store";
}

/// `[bus]` flags.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct BusFlags {
    /// Event bus: memory (one node) or redis://HOST:PORT (several)
    #[arg(long, value_name = "URL", env = "PYTAKE_BUS", hide_env_values = true)]
    #[serde(rename = "url", skip_serializing_if = "Option::is_none")]
    pub bus: Option<String>,
}

impl Group for BusFlags {
    const SECTION: &'static str = "bus";
}

/// `[metrics]` flags.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Metrics")]
pub struct MetricsFlags {
    /// How often dashboard subscribers get a Metrics message (when something changed)
    #[arg(long, value_name = "DURATION", env = "PYTAKE_METRICS_PUSH_INTERVAL", value_parser = parse_positive)]
    #[serde(
        rename = "push_interval",
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub metrics_push_interval: Option<Duration>,

    /// Least time between two pushes of one campaign's figures; lifecycle changes go at once
    #[arg(long, value_name = "DURATION", env = "PYTAKE_METRICS_CAMPAIGN_THROTTLE", value_parser = parse_positive)]
    #[serde(
        rename = "campaign_throttle",
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub metrics_campaign_throttle: Option<Duration>,

    /// A conversation idle this long is no longer active
    #[arg(long, value_name = "DURATION", env = "PYTAKE_METRICS_ACTIVE_WINDOW", value_parser = parse_positive)]
    #[serde(
        rename = "active_window",
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub metrics_active_window: Option<Duration>,
}

impl Group for MetricsFlags {
    const SECTION: &'static str = "metrics";
}

/// `[queue]` flags of `pytake serve`.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Queue")]
pub struct QueueFlags {
    /// Jobs this node runs at once
    #[arg(long, value_name = "N", env = "PYTAKE_QUEUE_CONCURRENCY", value_parser = parse_count_u32)]
    #[serde(rename = "concurrency", skip_serializing_if = "Option::is_none")]
    pub queue_concurrency: Option<u32>,

    /// Most jobs one lease takes
    #[arg(long, value_name = "N", env = "PYTAKE_QUEUE_BATCH_SIZE", value_parser = parse_count_u32)]
    #[serde(rename = "batch_size", skip_serializing_if = "Option::is_none")]
    pub queue_batch_size: Option<u32>,

    /// How often idle workers look for due jobs (a fallback: enqueues wake them at once)
    #[arg(long, value_name = "DURATION", env = "PYTAKE_QUEUE_POLL_INTERVAL", value_parser = parse_positive)]
    #[serde(
        rename = "poll_interval",
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub queue_poll_interval: Option<Duration>,

    /// How long a worker holds a job; a job whose worker died runs again after it
    #[arg(long, value_name = "DURATION", env = "PYTAKE_QUEUE_LEASE", value_parser = parse_positive)]
    #[serde(
        rename = "lease",
        skip_serializing_if = "Option::is_none",
        serialize_with = "some_duration"
    )]
    pub queue_lease: Option<Duration>,

    /// Runs before a failing job is dead
    #[arg(long, value_name = "N", env = "PYTAKE_QUEUE_MAX_ATTEMPTS", value_parser = parse_count_u32)]
    #[serde(rename = "max_attempts", skip_serializing_if = "Option::is_none")]
    pub queue_max_attempts: Option<u32>,
}

impl Group for QueueFlags {
    const SECTION: &'static str = "queue";
}

/// `[client]` flags of the commands that talk to a server.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(next_help_heading = "Connection")]
pub struct ClientFlags {
    /// Server to talk to
    #[arg(long, value_name = "URL", env = "PYTAKE_SERVER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,

    /// Token to present; prefer --token-file or PYTAKE_TOKEN, which `ps` does not show
    #[arg(long, value_name = "JWT", env = "PYTAKE_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,

    /// File holding the token (its first line)
    #[arg(long, value_name = "FILE", env = "PYTAKE_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

impl Group for ClientFlags {
    const SECTION: &'static str = "client";
}

/// The flags of one command, as the loader reads them: each group's
/// values and the matches that say which came from the command line.
pub struct CommandFlags<'a> {
    pub matches: &'a ArgMatches,
    pub(super) overlays: Vec<(&'static str, toml::Table, Vec<clap::Arg>)>,
    /// The sections the command reads: only their variables are parsed and
    /// only their values checked, so a command is not refused over a
    /// setting it never uses.
    pub(super) sections: Vec<&'static str>,
}

impl<'a> CommandFlags<'a> {
    /// A command that reads `sections` (see [`super::ALL_SECTIONS`]).
    pub fn new(matches: &'a ArgMatches, sections: &[&'static str]) -> CommandFlags<'a> {
        CommandFlags {
            matches,
            overlays: Vec::new(),
            sections: sections.to_vec(),
        }
    }

    /// Adds a group this command has (flattened in its clap args).
    pub fn group<G: Group>(mut self, group: &G) -> Self {
        let table = to_table(group);
        self.overlays.push((G::SECTION, table, args_of::<G>()));
        self
    }
}

/// A group's set values as a TOML table keyed like its section.
pub(super) fn to_table<G: Serialize>(group: &G) -> toml::Table {
    match toml::Value::try_from(group) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    }
}

/// A group's clap args, to read their names, variables and help.
pub fn args_of<G: Group>() -> Vec<clap::Arg> {
    G::augment_args(Command::new("group"))
        .get_arguments()
        .cloned()
        .collect()
}

/// Every group, as (section, args): the whole set of flags and variables.
pub fn all_groups() -> Vec<(&'static str, Vec<clap::Arg>)> {
    vec![
        (DataDirFlag::SECTION, args_of::<DataDirFlag>()),
        (ServerFlags::SECTION, args_of::<ServerFlags>()),
        (AuthFlags::SECTION, args_of::<AuthFlags>()),
        (GatewayFlags::SECTION, args_of::<GatewayFlags>()),
        (StoreFlags::SECTION, args_of::<StoreFlags>()),
        (BusFlags::SECTION, args_of::<BusFlags>()),
        (MetricsFlags::SECTION, args_of::<MetricsFlags>()),
        (QueueFlags::SECTION, args_of::<QueueFlags>()),
        (ClientFlags::SECTION, args_of::<ClientFlags>()),
    ]
}

/// The command as users see it. For every settings flag in `cmd` and its
/// subcommands: its variable and default go into its help, and its `env`
/// is taken off, so that the loader ([`super::load`]) is the only reader
/// of the environment. Otherwise clap would read the variables too, blame
/// a flag for a bad variable (`invalid value 'abc' for '--rate-limit'`),
/// refuse an empty one, check variables of settings the command does not
/// use, and print their values (secrets among them) in `--help`.
pub fn for_users(mut cmd: Command) -> Command {
    let groups = all_groups();
    let ids: Vec<(String, String)> = groups
        .iter()
        .flat_map(|(section, args)| {
            args.iter().map(move |a| {
                let id = a.get_id().as_str().to_string();
                let key = key_of(section, &id).to_string();
                (id, format!("{section}.{key}"))
            })
        })
        .collect();
    for (id, path) in &ids {
        if !cmd.get_arguments().any(|a| a.get_id() == id.as_str()) {
            continue;
        }
        let default = super::origin::default_text(path)
            .map(|text| format!(" [default: {text}]"))
            .unwrap_or_default();
        cmd = cmd.mut_arg(id.as_str(), |a| {
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let env = a
                .get_env()
                .map(|e| format!(" [env: {}]", e.to_string_lossy()))
                .unwrap_or_default();
            a.help(format!("{help}{env}{default}"))
                .env(None::<&'static str>)
        });
    }
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, for_users);
    }
    cmd
}

/// The variable of a settings flag, by its clap id (for the man pages,
/// whose command has had its `env`s taken off by [`for_users`]).
pub fn env_of(id: &str) -> Option<String> {
    if id == "config" {
        return Some("PYTAKE_CONFIG".into());
    }
    all_groups()
        .into_iter()
        .flat_map(|(_, args)| args)
        .find(|a| a.get_id() == id)
        .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
}
