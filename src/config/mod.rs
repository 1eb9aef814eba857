//! Layered settings: flags > `PYTAKE_*` environment > config file > defaults.
//!
//! Loading is a pure function of its [`Sources`], so each layer is tested
//! without touching the process environment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

use crate::protocol::limits;

pub mod duration;

/// Why settings could not be loaded; the text names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
    #[error("{0}")]
    Other(String),
}

/// Where settings come from, highest precedence last in the list below:
/// defaults, `file`, `env`, `overrides` (the command-line flags).
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The config file, and whether it must exist (`--config` given).
    pub file: Option<(PathBuf, bool)>,
    /// Environment variables; only `PYTAKE_*` ones are read.
    pub env: HashMap<String, String>,
    /// Flags the user gave, as `(key, value)`.
    pub overrides: Vec<(&'static str, String)>,
}

impl Sources {
    /// The process environment and the default config file (or `--config`).
    pub fn from_process(config_flag: Option<PathBuf>) -> Sources {
        let env: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("PYTAKE_"))
            .collect();
        let file = match config_flag.or_else(|| env.get("PYTAKE_CONFIG").map(PathBuf::from)) {
            Some(path) => Some((path, true)),
            None => default_config_file().map(|p| (p, false)),
        };
        Sources {
            file,
            env,
            overrides: Vec::new(),
        }
    }

    /// Adds a flag's value if the user gave it.
    pub fn flag(&mut self, key: &'static str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.overrides.push((key, v.to_string()));
        }
    }
}

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

/// Every setting, resolved. Names match the design's Settings table.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Server address; port 0 picks a free one.
    pub listen: String,
    pub data_dir: PathBuf,
    /// JWT secret; `None` means the generated one in the data dir.
    pub secret: Option<String>,
    /// `sqlite://PATH` (default under the data dir).
    pub store: String,
    /// `memory`.
    pub bus: String,
    /// Where client subcommands go.
    pub server: String,
    /// Client credentials; `None` means minted from the local secret.
    pub token: Option<String>,
    pub gateway: GatewaySettings,
    pub tokens: TokenSettings,
}

/// How the server checks tokens, and what the local tools put in the tokens
/// they mint so that the server accepts them.
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
        TokenSettings {
            leeway: crate::auth::DEFAULT_LEEWAY,
            audience: None,
            issuer: None,
            max_lifetime: Some(crate::auth::DEFAULT_MAX_LIFETIME),
        }
    }
}

/// Per-connection limits of the WebSocket gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    pub rate_limit_per_minute: u32,
    pub max_frame_bytes: usize,
    pub outbound_queue: usize,
    pub auth_timeout: Duration,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub write_stall: Duration,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        GatewaySettings {
            rate_limit_per_minute: limits::RATE_LIMIT_PER_MINUTE,
            max_frame_bytes: limits::MAX_FRAME_BYTES,
            outbound_queue: limits::OUTBOUND_QUEUE,
            auth_timeout: limits::AUTH_TIMEOUT,
            ping_interval: limits::PING_INTERVAL,
            idle_timeout: limits::IDLE_TIMEOUT,
            write_stall: limits::WRITE_STALL,
        }
    }
}

/// The raw layer the `config` crate fills; durations stay text until checked.
#[derive(Debug, Deserialize)]
struct Raw {
    listen: String,
    data_dir: Option<String>,
    secret: Option<String>,
    store: Option<String>,
    bus: String,
    server: String,
    token: Option<String>,
    rate_limit: u32,
    max_frame_bytes: usize,
    outbound_queue: usize,
    auth_timeout: String,
    ping_interval: String,
    idle_timeout: String,
    write_stall: String,
    token_leeway: String,
    token_audience: Option<String>,
    token_issuer: Option<String>,
    token_max_lifetime: String,
}

/// Every key a config file or `PYTAKE_*` variable may set.
pub const KEYS: [&str; 18] = [
    "listen",
    "data_dir",
    "secret",
    "store",
    "bus",
    "server",
    "token",
    "rate_limit",
    "max_frame_bytes",
    "outbound_queue",
    "auth_timeout",
    "ping_interval",
    "idle_timeout",
    "write_stall",
    "token_leeway",
    "token_audience",
    "token_issuer",
    "token_max_lifetime",
];

/// `token_max_lifetime`'s default as written in the docs (humantime would
/// print 366 days as "1year 18h").
const DEFAULT_MAX_LIFETIME_TEXT: &str = "366d";

fn secs(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Settings {
    /// Resolves settings from their sources.
    pub fn load(sources: &Sources) -> Result<Settings, ConfigError> {
        let g = GatewaySettings::default();
        let mut b = Config::builder()
            .set_default("listen", "127.0.0.1:8080")
            .and_then(|b| b.set_default("bus", "memory"))
            .and_then(|b| b.set_default("server", "http://127.0.0.1:8080"))
            .and_then(|b| b.set_default("rate_limit", i64::from(g.rate_limit_per_minute)))
            .and_then(|b| b.set_default("max_frame_bytes", g.max_frame_bytes as i64))
            .and_then(|b| b.set_default("outbound_queue", g.outbound_queue as i64))
            .and_then(|b| b.set_default("auth_timeout", secs(g.auth_timeout)))
            .and_then(|b| b.set_default("ping_interval", secs(g.ping_interval)))
            .and_then(|b| b.set_default("idle_timeout", secs(g.idle_timeout)))
            .and_then(|b| b.set_default("write_stall", secs(g.write_stall)))
            .and_then(|b| b.set_default("token_leeway", secs(crate::auth::DEFAULT_LEEWAY)))
            .and_then(|b| b.set_default("token_max_lifetime", DEFAULT_MAX_LIFETIME_TEXT))
            .map_err(|e| ConfigError::Other(e.to_string()))?;
        if let Some((path, required)) = &sources.file {
            if *required && !path.exists() {
                return Err(ConfigError::File {
                    path: path.clone(),
                    message: "no such file".into(),
                });
            }
            check_file_keys(path)?;
            b = b.add_source(
                File::from(path.as_path())
                    .format(FileFormat::Toml)
                    .required(*required),
            );
        }
        let env: HashMap<String, String> = sources
            .env
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("PYTAKE_")
                    .is_some_and(|rest| KEYS.contains(&rest.to_ascii_lowercase().as_str()))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        b = b.add_source(
            Environment::with_prefix("PYTAKE")
                .prefix_separator("_")
                .source(Some(env)),
        );
        for (key, value) in &sources.overrides {
            b = b
                .set_override(*key, value.clone())
                .map_err(|e| ConfigError::Other(e.to_string()))?;
        }
        let raw: Raw = b
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| ConfigError::Other(e.to_string()))?;
        Settings::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Settings, ConfigError> {
        let data_dir = raw
            .data_dir
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(default_data_dir);
        let store = raw
            .store
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("pytake.db").display()));
        let server = raw.server.trim_end_matches('/').to_string();
        let url = url::Url::parse(&server).map_err(|e| ConfigError::Invalid {
            key: "server",
            message: format!("`{server}` is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                key: "server",
                message: format!("`{server}` must start with http:// or https://"),
            });
        }
        let duration = |key: &'static str, v: &str| {
            let d = humantime::parse_duration(v).map_err(|e| ConfigError::Invalid {
                key,
                message: format!("`{v}` is not a duration like 10s or 2m: {e}"),
            })?;
            if d.is_zero() {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be longer than 0s".into(),
                });
            }
            Ok(d)
        };
        let positive = |key: &'static str, v: usize| {
            if v == 0 {
                Err(ConfigError::Invalid {
                    key,
                    message: "must be greater than 0".into(),
                })
            } else {
                Ok(v)
            }
        };
        let gateway = GatewaySettings {
            rate_limit_per_minute: positive("rate_limit", raw.rate_limit as usize)? as u32,
            max_frame_bytes: positive("max_frame_bytes", raw.max_frame_bytes)?,
            outbound_queue: positive("outbound_queue", raw.outbound_queue)?,
            auth_timeout: duration("auth_timeout", &raw.auth_timeout)?,
            ping_interval: duration("ping_interval", &raw.ping_interval)?,
            idle_timeout: duration("idle_timeout", &raw.idle_timeout)?,
            write_stall: duration("write_stall", &raw.write_stall)?,
        };
        let tokens = TokenSettings {
            leeway: humantime::parse_duration(&raw.token_leeway).map_err(|e| {
                ConfigError::Invalid {
                    key: "token_leeway",
                    message: format!("`{}` is not a duration like 30s: {e}", raw.token_leeway),
                }
            })?,
            audience: raw.token_audience.filter(|s| !s.is_empty()),
            issuer: raw.token_issuer.filter(|s| !s.is_empty()),
            max_lifetime: match raw.token_max_lifetime.trim() {
                v if v.eq_ignore_ascii_case("none") => None,
                v => Some(duration("token_max_lifetime", v).map_err(|e| match e {
                    ConfigError::Invalid { key, message } => ConfigError::Invalid {
                        key,
                        message: format!("{message} (or `none` for no limit)"),
                    },
                    other => other,
                })?),
            },
        };
        Ok(Settings {
            listen: raw.listen,
            data_dir,
            secret: raw.secret.filter(|s| !s.is_empty()),
            store,
            bus: raw.bus,
            server,
            token: raw.token.filter(|s| !s.is_empty()),
            gateway,
            tokens,
        })
    }
}

/// Unknown keys in a config file are almost always typos; say so rather than
/// silently ignoring them.
fn check_file_keys(path: &Path) -> Result<(), ConfigError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(());
    };
    let table: toml::Table = text.parse().map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        message: format!("{e}"),
    })?;
    for key in table.keys() {
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                message: format!("unknown key `{key}` (known: {})", KEYS.join(", ")),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
