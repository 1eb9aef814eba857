//! Settings: one serde struct per section of the config file, each with
//! its defaults from the documented constants, layered flags > `PYTAKE_*`
//! environment > config file > defaults (see [`load`]).
//!
//! Adding a setting is one field in a section struct (and its default),
//! plus, when it has a flag or a variable, one field in the section's flag
//! group in [`flags`]: the file key, the variable, the flag, the help text,
//! `config show` and `config init` all follow from those two.

mod alerts;
pub mod duration;
mod file;
pub mod flags;
mod load;
pub(crate) mod origin;
mod parse;
mod secret_files;
mod validate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::limits;

pub use alerts::{AlertsSettings, SlackSettings, SmtpSettings, SmtpTls};
pub use file::{check_file, init_text};
pub use load::{load, ConfigError, Loaded, Sources, ALL_SECTIONS};
pub use origin::{default_text, Origin, SECRETS};
pub use validate::listen_address;

/// `dirs::config_dir()/pytake/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("pytake").join("config.toml"))
}

/// `dirs::data_dir()/pytake`, or `./pytake-data` where there is no home.
pub fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("pytake"))
        .unwrap_or_else(|| PathBuf::from("pytake-data"))
}

/// Every setting, resolved. Section and key names are the config file's.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub gateway: GatewaySettings,
    pub store: StoreSettings,
    pub bus: BusSettings,
    pub metrics: MetricsSettings,
    pub queue: QueueSettings,
    pub alerts: AlertsSettings,
    pub webhooks: WebhooksSettings,
    pub slack: SlackSettings,
    pub smtp: SmtpSettings,
    pub client: ClientSettings,
}

/// `[server]`: where `pytake serve` listens and keeps its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `HOST:PORT`; port 0 picks a free one.
    pub listen: String,
    /// `None`: [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    pub log_format: LogFormat,
    /// REST requests per minute per viewer token subject (0: no limit).
    pub rate_limit_viewer: u32,
    /// REST requests per minute per operator token subject (0: no limit).
    pub rate_limit_operator: u32,
    /// REST requests per minute per admin token subject (0: no limit).
    pub rate_limit_admin: u32,
    /// REST requests per minute per service token subject (0: no limit).
    pub rate_limit_service: u32,
    /// Reverse proxies whose `X-Forwarded-For` names the client, for the
    /// per-address connection cap.
    pub trusted_proxies: Vec<crate::server::caps::ProxyNet>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: "127.0.0.1:8080".into(),
            data_dir: None,
            log_format: LogFormat::Text,
            rate_limit_viewer: limits::REST_RATE_LIMIT_PEOPLE,
            rate_limit_operator: limits::REST_RATE_LIMIT_PEOPLE,
            rate_limit_admin: limits::REST_RATE_LIMIT_MACHINES,
            rate_limit_service: limits::REST_RATE_LIMIT_MACHINES,
            trusted_proxies: Vec::new(),
        }
    }
}

/// How `pytake serve` writes its log lines (stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines
    #[default]
    Text,
    /// One JSON object per line, for log shippers
    Json,
}

/// `[auth]`: the JWT secret and the rules a token must meet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// `None`: the secret generated into the data dir.
    pub secret: Option<String>,
    /// A file holding the secret, so it stays out of argv and environment.
    pub secret_file: Option<PathBuf>,
    #[serde(with = "duration")]
    pub token_leeway: Duration,
    pub token_audience: Option<String>,
    pub token_issuer: Option<String>,
    /// `None` (`none` in text): no limit.
    #[serde(with = "duration::option")]
    pub token_max_lifetime: Option<Duration>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            secret: None,
            secret_file: None,
            token_leeway: crate::auth::DEFAULT_LEEWAY,
            token_audience: None,
            token_issuer: None,
            token_max_lifetime: Some(crate::auth::DEFAULT_MAX_LIFETIME),
        }
    }
}

/// How the server checks tokens, and what the local tools put in the tokens
/// they mint so that the server accepts them (from `[auth]`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSettings {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// When set, a token's `aud` must be (or include) it.
    pub audience: Option<String>,
    /// When set, a token's `iss` must be it.
    pub issuer: Option<String>,
    /// Longest `exp - iat` accepted; `None`: no limit.
    pub max_lifetime: Option<Duration>,
}

impl Default for TokenSettings {
    fn default() -> Self {
        AuthSettings::default().tokens()
    }
}

impl AuthSettings {
    pub fn tokens(&self) -> TokenSettings {
        TokenSettings {
            leeway: self.token_leeway,
            audience: self.token_audience.clone(),
            issuer: self.token_issuer.clone(),
            max_lifetime: self.token_max_lifetime,
        }
    }
}

/// `[gateway]`: per-connection limits of the WebSocket gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySettings {
    /// Client messages per minute per connection.
    pub rate_limit: u32,
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    #[serde(with = "duration")]
    pub auth_timeout: Duration,
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    #[serde(with = "duration")]
    pub write_stall: Duration,
    /// permessage-deflate for clients that offer it; false answers no
    /// offer, so every connection runs uncompressed.
    pub compression: bool,

    /// Connections this node serves at once (WebSocket and SSE); `None`:
    /// sized from the open-file limit at start (see
    /// [`crate::server::caps::default_max_connections`]).
    #[serde(deserialize_with = "count_or_unset")]
    pub max_connections: Option<u32>,
    /// Connections one tenant may hold on this node; `None`: the same as
    /// `max_connections`.
    #[serde(deserialize_with = "count_or_unset")]
    pub max_connections_per_tenant: Option<u32>,
    /// Connections not yet authenticated one source address may hold.
    pub max_unauthenticated_per_address: u32,
    /// How long a user stays online after its last connection closed.
    #[serde(with = "duration")]
    pub presence_grace: Duration,
    /// With Redis: a node silent this long has its users go offline.
    #[serde(with = "duration")]
    pub presence_ttl: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            rate_limit: limits::RATE_LIMIT_PER_MINUTE,
            max_frame_bytes: limits::MAX_FRAME_BYTES,
            outbound_queue: limits::OUTBOUND_QUEUE,
            auth_timeout: limits::AUTH_TIMEOUT,
            ping_interval: limits::PING_INTERVAL,
            idle_timeout: limits::IDLE_TIMEOUT,
            write_stall: limits::WRITE_STALL,
            compression: true,

            max_connections: None,
            max_connections_per_tenant: None,
            max_unauthenticated_per_address: limits::MAX_UNAUTHENTICATED_PER_ADDRESS,
            presence_grace: limits::PRESENCE_GRACE,
            presence_ttl: limits::PRESENCE_TTL,
        }
    }
}

/// A count, or `""` for unset (what `config init` writes for a default
/// that depends on the machine).
fn count_or_unset<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Value {
        Count(u32),
        Text(String),
    }
    match Option::<Value>::deserialize(d)? {
        None => Ok(None),
        Some(Value::Count(n)) => Ok(Some(n)),
        Some(Value::Text(t)) if t.is_empty() => Ok(None),
        Some(Value::Text(t)) => Err(serde::de::Error::custom(format!(
            "`{t}` is not a whole number"
        ))),
    }
}

/// `[store]`: where events are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// `sqlite://PATH` or `postgres://...`; `None`:
    /// `sqlite://<data-dir>/pytake.db`.
    pub url: Option<String>,
    /// Most connections to PostgreSQL this node opens. Every node opens
    /// its own pool: nodes x pool_size must stay under the server's
    /// `max_connections` (100 by default).
    pub pool_size: u32,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            url: None,
            pool_size: crate::server::storage::StoreOptions::default().pool_size,
        }
    }
}

/// `[bus]`: how events reach every connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusSettings {
    /// `memory` (one node) or `redis://HOST:PORT` (several).
    pub url: String,
}

impl Default for BusSettings {
    fn default() -> Self {
        BusSettings {
            url: "memory".into(),
        }
    }
}

/// `[metrics]`: the live figures and their pushes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// How often `dashboard` subscribers get a `Metrics` message (when
    /// something changed): seed 004's 2 s.
    #[serde(with = "duration")]
    pub push_interval: Duration,
    /// The least time between two pushes of one campaign's figures
    /// (seed 001); lifecycle changes go at once.
    #[serde(with = "duration")]
    pub campaign_throttle: Duration,
    /// A conversation without activity for this long is no longer active:
    /// WhatsApp's 24-hour customer-service window.
    #[serde(with = "duration")]
    pub active_window: Duration,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            push_interval: Duration::from_secs(2),
            campaign_throttle: Duration::from_secs(2),
            active_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// `[queue]`: the job queue's workers on this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// Jobs this node runs at once. Webhook and `http` jobs mostly wait
    /// (for a group commit, for a peer), so this is well above the cores:
    /// at 8, 500 webhooks a second outran the workers whenever commits
    /// slowed, and 8 slow peers could hold every slot for `http_timeout`.
    pub concurrency: u32,
    /// Most jobs one lease takes (seed 002's 10).
    pub batch_size: u32,
    /// How often idle workers look for due jobs when nothing woke them: a
    /// fallback, since every enqueue on any node wakes them at once.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How long a worker holds a job; a job whose worker died runs again
    /// after it. A run longer than this is stopped and retried.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// Runs before a failing job is dead (seed 002's 3).
    pub max_attempts: u32,
    /// The first retry's delay; each next one doubles (seed 003's 2 s,
    /// 4 s, 8 s...), up to `retry_cap`, plus up to 20 % jitter.
    #[serde(with = "duration")]
    pub retry_base: Duration,
    #[serde(with = "duration")]
    pub retry_cap: Duration,
    /// Consecutive failures to one host that open its circuit (seed 003).
    pub breaker_threshold: u32,
    /// How long an open circuit holds that host's jobs back before one
    /// trial run (half-open).
    #[serde(with = "duration")]
    pub breaker_cooldown: Duration,
    /// How long an `http` job waits for its destination.
    #[serde(with = "duration")]
    pub http_timeout: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            concurrency: 32,
            batch_size: 10,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(30),
            max_attempts: 3,
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(600),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(30),
            http_timeout: Duration::from_secs(10),
        }
    }
}

/// `[webhooks.whatsapp]` and `[webhooks.evolution]`: the sources that may
/// post to `/api/v1/webhooks/{source}`. A source without its section is
/// refused (404), so an unconfigured server accepts no unsigned input.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whatsapp: Option<WhatsappSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evolution: Option<EvolutionSettings>,
}

/// The WhatsApp Cloud API's webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhatsappSettings {
    /// The key of `X-Hub-Signature-256` (HMAC-SHA256 of the raw body).
    pub app_secret: Option<String>,
    /// A file holding it (its first line).
    pub app_secret_file: Option<PathBuf>,
    /// What the `GET` handshake's `hub.verify_token` must be.
    pub verify_token: Option<String>,
    /// `metadata.phone_number_id` -> tenant.
    pub tenants: std::collections::BTreeMap<String, String>,
}

/// The Evolution API's webhook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvolutionSettings {
    /// The body's `apikey` field or an `apikey` header must be this.
    pub api_key: Option<String>,
    /// A file holding it (its first line).
    pub api_key_file: Option<PathBuf>,
    /// The body's `instance` -> tenant.
    pub tenants: std::collections::BTreeMap<String, String>,
}

/// `[client]`: where the operator's commands go and who they say they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSettings {
    pub server: String,
    /// `None`: minted from the local secret.
    pub token: Option<String>,
    /// A file holding the token, so it stays out of argv and history.
    pub token_file: Option<PathBuf>,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            server: "http://127.0.0.1:8080".into(),
            token: None,
            token_file: None,
        }
    }
}

impl Settings {
    /// The data dir: `[server] data_dir`, else the user's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.server
            .data_dir
            .clone()
            .unwrap_or_else(default_data_dir)
    }

    /// The store URL: `[store] url`, else SQLite in the data dir.
    pub fn store_url(&self) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| sqlite_in(&self.data_dir()))
    }

    /// How to open the store.
    pub fn store_options(&self) -> crate::server::storage::StoreOptions {
        crate::server::storage::StoreOptions {
            pool_size: self.store.pool_size,
        }
    }

    /// The token rules of `[auth]`.
    pub fn tokens(&self) -> TokenSettings {
        self.auth.tokens()
    }

    /// The configured secret (after `secret_file` was read); `None`: the one
    /// in the data dir.
    pub fn secret(&self) -> Option<&str> {
        self.auth.secret.as_deref()
    }

    /// The server URL the client commands use, without a trailing `/`.
    pub fn server_url(&self) -> &str {
        self.client.server.trim_end_matches('/')
    }

    /// The configured client token (after `token_file` was read).
    pub fn token(&self) -> Option<&str> {
        self.client.token.as_deref()
    }
}

/// A URL with its password replaced, for logs and `config show`
/// (`postgres://app:****@db/pytake`).
pub fn mask_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => text.to_string(),
    }
}

fn sqlite_in(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("pytake.db").display())
}

#[cfg(test)]
mod channel_tests;
#[cfg(test)]
mod tests;
