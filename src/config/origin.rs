//! Where each setting came from, so that an error names the flag, the
//! variable or the file line to fix, and `config show --origin` can answer
//! "why is it set to that?".

use std::fmt;
use std::path::PathBuf;

/// The layer that set a value. Ordered by precedence, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    Default,
    /// A config file, and the line when it could be found.
    File {
        path: PathBuf,
        line: Option<usize>,
    },
    /// A `PYTAKE_*` variable.
    Env(String),
    /// A command-line flag, as `--name`.
    Flag(String),
}

impl Origin {
    /// Which layer, for precedence (a flag beats a variable beats a file).
    pub fn rank(&self) -> u8 {
        match self {
            Origin::Default => 0,
            Origin::File { .. } => 1,
            Origin::Env(_) => 2,
            Origin::Flag(_) => 3,
        }
    }

    /// The origin with a value: `PYTAKE_RATE_LIMIT=abc`, `--rate-limit abc`,
    /// `config.toml line 4`, for error messages.
    pub fn with_value(&self, value: &str) -> String {
        match self {
            Origin::Default => format!("the default `{value}`"),
            Origin::File { .. } => self.to_string(),
            Origin::Env(var) => format!("{var}={value}"),
            Origin::Flag(flag) => format!("{flag} {value}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File {
                path,
                line: Some(line),
            } => write!(f, "{} line {line}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env(var) => f.write_str(var),
            Origin::Flag(flag) => f.write_str(flag),
        }
    }
}

/// Keys whose values are never printed, in `section.key` form.
pub const SECRETS: [&str; 8] = [
    "auth.secret",
    "client.token",
    "webhooks.whatsapp.app_secret",
    "webhooks.whatsapp.verify_token",
    "webhooks.evolution.api_key",
    "slack.webhook_url",
    "smtp.password",
    "alerts.webhook_url",
];

/// What a key's default is, in words where it depends on the machine (so
/// the generated help, man pages and docs are the same everywhere), or from
/// the section structs' defaults.
pub fn default_text(path: &str) -> Option<String> {
    match default_words(path) {
        Some("") => return None,
        Some(words) => return Some(words.to_string()),
        None => {}
    }
    let defaults = toml::Value::try_from(super::Settings::default()).ok()?;
    let (section, key) = path.split_once('.')?;
    defaults.get(section)?.get(key).map(plain)
}

/// The defaults that are not a value: machine-dependent or "unset"
/// (`Some("")`: unset, nothing to say).
pub fn default_words(path: &str) -> Option<&'static str> {
    Some(match path {
        "server.data_dir" => "<user data dir>/pytake",
        "auth.secret" => "generated into <data-dir>/secret, mode 0600",
        "auth.secret_file" | "client.token_file" => "",
        "auth.token_audience" | "auth.token_issuer" => "not checked",
        "store.url" => "sqlite://<data-dir>/pytake.db",
        "client.token" => "minted from the local secret",
        "gateway.max_connections" => "min(20000, 80% of the open-file limit)",
        "gateway.max_connections_per_tenant" => "max_connections",
        _ => return None,
    })
}

/// A TOML value as a person would type it on a command line.
pub fn plain(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
