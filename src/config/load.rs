//! Layering: defaults < config file < `PYTAKE_*` environment < flags.
//!
//! Loading is a pure function of its [`Sources`] and the command's parsed
//! flags, so each layer is tested without touching the process
//! environment. The environment is read through the flags' own clap
//! definitions ([`super::flags`]): a variable parses exactly as its flag
//! does, and a bad one is reported by its name (`PYTAKE_RATE_LIMIT=abc`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::Command;

use super::file;
use super::flags::{
    args_of, key_of, AuthFlags, BusFlags, ClientFlags, CommandFlags, DataDirFlag, GatewayFlags,
    Group, MetricsFlags, QueueFlags, ServerFlags, StoreFlags,
};
use super::origin::Origin;
use super::Settings;

/// Why settings could not be loaded; the text names where the bad value
/// came from and what is accepted. Every one is a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {message}", at_line(path, *line))]
    File {
        path: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("{var}={value}: {message}")]
    Env {
        var: String,
        value: String,
        message: String,
    },
    /// A value that parsed but cannot be used; `at` is its origin with the
    /// value (`--listen 8080`, `config.toml line 3`).
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
}

fn at_line(path: &Path, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{} line {line}", path.display()),
        None => path.display().to_string(),
    }
}

/// Where settings come from, besides the command's flags.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// The config file, and whether it must exist (`--config` or
    /// `PYTAKE_CONFIG` given).
    pub file: Option<(PathBuf, bool)>,
    /// Environment variables; only `PYTAKE_*` ones are read.
    pub env: HashMap<String, String>,
}

impl Sources {
    /// The process environment and the config file: `--config`, else
    /// `PYTAKE_CONFIG`, else the default location if it exists.
    pub fn from_process(config_flag: Option<PathBuf>) -> Sources {
        let env = std::env::vars()
            .filter(|(k, _)| k.starts_with("PYTAKE_"))
            .collect();
        Sources::from_env(env, config_flag)
    }

    /// [`Sources::from_process`] with the environment given.
    pub fn from_env(env: HashMap<String, String>, config_flag: Option<PathBuf>) -> Sources {
        let named = config_flag.or_else(|| {
            env.get("PYTAKE_CONFIG")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        });
        let file = match named {
            Some(path) => Some((path, true)),
            None => super::default_config_file().map(|p| (p, false)),
        };
        Sources { file, env }
    }
}

/// The settings in effect and where each came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// By `section.key`, for every key that has a flag or a default.
    pub origins: BTreeMap<String, Origin>,
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
}

/// One layer's values by section, and the origin of each.
#[derive(Default)]
struct Layer {
    values: Vec<(&'static str, String, toml::Value, Origin)>,
}

impl Layer {
    fn add(
        &mut self,
        section: &'static str,
        table: toml::Table,
        origin_of: impl Fn(&str) -> Option<Origin>,
    ) {
        for (key, value) in table {
            if let Some(origin) = origin_of(&key) {
                self.values.push((section, key, value, origin));
            }
        }
    }
}

/// The sections a command that does not say (`config show`, `config
/// check`) reads and checks: all of them.
pub const ALL_SECTIONS: [&str; 12] = [
    "server", "auth", "gateway", "store", "bus", "metrics", "queue", "alerts", "webhooks", "slack",
    "smtp", "client",
];

/// The variables of the groups of `sections`, but not those of keys a flag
/// set: a flag excuses a bad variable for the same setting, and a command
/// is not refused over a variable it never reads.
fn env_layer(
    env: &HashMap<String, String>,
    sections: &[&str],
    set_by_flags: &HashSet<String>,
) -> Result<Layer, ConfigError> {
    let mut layer = Layer::default();
    let ctx = EnvContext {
        env,
        sections,
        set_by_flags,
    };
    ctx.group::<DataDirFlag>(&mut layer)?;
    ctx.group::<ServerFlags>(&mut layer)?;
    ctx.group::<AuthFlags>(&mut layer)?;
    ctx.group::<GatewayFlags>(&mut layer)?;
    ctx.group::<StoreFlags>(&mut layer)?;
    ctx.group::<BusFlags>(&mut layer)?;
    ctx.group::<MetricsFlags>(&mut layer)?;
    ctx.group::<QueueFlags>(&mut layer)?;
    ctx.group::<ClientFlags>(&mut layer)?;
    Ok(layer)
}

struct EnvContext<'a> {
    env: &'a HashMap<String, String>,
    sections: &'a [&'a str],
    set_by_flags: &'a HashSet<String>,
}

impl EnvContext<'_> {
    fn group<G: Group>(&self, layer: &mut Layer) -> Result<(), ConfigError> {
        if !self.sections.contains(&G::SECTION) {
            return Ok(());
        }
        env_group::<G>(self.env, self.set_by_flags, layer)
    }
}

/// Parses the variables of one group as if they were its flags.
fn env_group<G: Group>(
    env: &HashMap<String, String>,
    set_by_flags: &HashSet<String>,
    layer: &mut Layer,
) -> Result<(), ConfigError> {
    // Without `env` on the args: clap must see only the map given here.
    let command = || {
        G::augment_args(Command::new("env").no_binary_name(true))
            .mut_args(|a| a.env(None::<&'static str>).global(false))
    };
    let mut argv = Vec::new();
    let mut vars = HashMap::new();
    for arg in args_of::<G>() {
        let Some(var) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(value) = env.get(&var).filter(|v| !v.is_empty()) else {
            continue;
        };
        let key = key_of(G::SECTION, arg.get_id().as_str());
        if set_by_flags.contains(&format!("{}.{key}", G::SECTION)) {
            continue;
        }
        let long = arg.get_long().unwrap_or(arg.get_id().as_str());
        let flag = format!("--{long}={value}");
        if let Err(e) = command().try_get_matches_from([&flag]) {
            let shown = if arg.is_hide_env_values_set() {
                "…".to_string()
            } else {
                value.clone()
            };
            return Err(ConfigError::Env {
                var,
                value: shown,
                message: reason(&e),
            });
        }
        argv.push(flag);
        vars.insert(key_of(G::SECTION, arg.get_id().as_str()).to_string(), var);
    }
    if argv.is_empty() {
        return Ok(());
    }
    let parsed = command()
        .try_get_matches_from(&argv)
        .and_then(|m| G::from_arg_matches(&m))
        .map_err(|e| ConfigError::Invalid {
            at: "the PYTAKE_* variables".into(),
            message: reason(&e),
        })?;
    layer.add(G::SECTION, super::flags::to_table(&parsed), |key| {
        vars.get(key).map(|v| Origin::Env(v.clone()))
    });
    Ok(())
}

/// What clap found wrong with a value, without its `error: invalid value
/// ... for '--flag'` framing (the caller names the variable).
pub(crate) fn reason(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    if let Some(source) = std::error::Error::source(e) {
        return source.to_string();
    }
    if let Some(ContextValue::Strings(valid)) = e.get(ContextKind::ValidValue) {
        return format!("expected one of {}", valid.join(", "));
    }
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

fn flag_layer(flags: &CommandFlags<'_>) -> Layer {
    let mut layer = Layer::default();
    for (section, table, args) in &flags.overlays {
        let from_command_line: HashMap<String, String> = args
            .iter()
            .filter(|a| {
                flags
                    .matches
                    .try_get_raw(a.get_id().as_str())
                    .is_ok_and(|v| v.is_some())
                    && flags.matches.value_source(a.get_id().as_str())
                        == Some(ValueSource::CommandLine)
            })
            .map(|a| {
                let id = a.get_id().as_str();
                (
                    key_of(section, id).to_string(),
                    format!("--{}", a.get_long().unwrap_or(id)),
                )
            })
            .collect();
        layer.add(section, table.clone(), |key| {
            from_command_line.get(key).map(|f| Origin::Flag(f.clone()))
        });
    }
    layer
}

/// Keys whose empty value means "unset" (`PYTAKE_TOKEN=` in a shell, `""`
/// in a file written by `config init`).
const EMPTY_IS_UNSET: [&str; 17] = [
    "server.data_dir",
    "auth.secret",
    "auth.secret_file",
    "auth.token_audience",
    "auth.token_issuer",
    "store.url",
    "alerts.webhook_url",
    "slack.webhook_url",
    "slack.webhook_url_file",
    "smtp.host",
    "smtp.username",
    "smtp.password",
    "smtp.password_file",
    "client.token",
    "client.token_file",
    "gateway.max_connections",
    "gateway.max_connections_per_tenant",
];

/// Resolves the settings of a command: `flags` are the groups it has, or
/// `None` for a command with no settings flags (then only the file and the
/// environment count, as for `config show`).
pub fn load(sources: &Sources, flags: Option<&CommandFlags<'_>>) -> Result<Loaded, ConfigError> {
    let file = match &sources.file {
        Some((path, required)) => file::read(path, *required)?,
        None => None,
    };
    let sections: Vec<&str> = match flags {
        Some(f) => f.sections.to_vec(),
        None => ALL_SECTIONS.to_vec(),
    };
    let flags = flags.map(flag_layer).unwrap_or_default();
    let set_by_flags: HashSet<String> = flags
        .values
        .iter()
        .map(|(section, key, _, _)| format!("{section}.{key}"))
        .collect();
    let env = env_layer(&sources.env, &sections, &set_by_flags)?;

    let mut merged = file.as_ref().map(|f| f.table.clone()).unwrap_or_default();
    let mut origins: BTreeMap<String, Origin> = BTreeMap::new();
    if let Some(f) = &file {
        for (section, keys) in &f.table {
            if let toml::Value::Table(keys) = keys {
                for key in keys.keys() {
                    origins.insert(
                        format!("{section}.{key}"),
                        Origin::File {
                            path: f.path.clone(),
                            line: f.line_of(section, key),
                        },
                    );
                }
            }
        }
    }
    for (section, key, value, origin) in env.values.into_iter().chain(flags.values) {
        let table = merged
            .entry(section)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = table {
            t.insert(key.clone(), value);
        }
        origins.insert(format!("{section}.{key}"), origin);
    }
    for path in EMPTY_IS_UNSET {
        let (section, key) = path.split_once('.').expect("section.key");
        if let Some(toml::Value::Table(t)) = merged.get_mut(section) {
            if t.get(key).and_then(|v| v.as_str()) == Some("") {
                t.remove(key);
            }
        }
    }
    let mut settings: Settings =
        toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid {
                at: "settings".into(),
                message: e.message().to_string(),
            })?;
    if let Some(f) = &file {
        resolve_relative_paths(&mut settings, f, &origins);
    }
    let mut loaded = Loaded {
        origins: all_origins(origins),
        file: file.map(|f| f.path),
        settings: Settings::default(),
    };
    super::secret_files::read(&mut settings, &mut loaded, &sections)?;
    super::validate::check(&settings, &loaded, &sections)?;
    loaded.settings = settings;
    Ok(loaded)
}

/// A relative path in a config file means relative to that file, not to
/// wherever the command happens to run.
fn resolve_relative_paths(
    settings: &mut Settings,
    file: &file::FileLayer,
    origins: &BTreeMap<String, Origin>,
) {
    let Some(dir) = file.path.parent() else {
        return;
    };
    let from_file = |key: &str| matches!(origins.get(key), Some(Origin::File { .. }));
    let fix = |p: &mut Option<PathBuf>, key: &str| {
        if let Some(path) = p.as_mut() {
            if path.is_relative() && from_file(key) {
                *path = dir.join(&*path);
            }
        }
    };
    fix(&mut settings.server.data_dir, "server.data_dir");
    fix(&mut settings.auth.secret_file, "auth.secret_file");
    fix(&mut settings.client.token_file, "client.token_file");
    if let Some(w) = settings.webhooks.whatsapp.as_mut() {
        fix(&mut w.app_secret_file, "webhooks.whatsapp");
    }
    if let Some(e) = settings.webhooks.evolution.as_mut() {
        fix(&mut e.api_key_file, "webhooks.evolution");
    }
    fix(
        &mut settings.slack.webhook_url_file,
        "slack.webhook_url_file",
    );
    fix(&mut settings.smtp.password_file, "smtp.password_file");
}

/// Every key with a flag or a default gets an origin (`default` if no
/// layer set it).
fn all_origins(mut origins: BTreeMap<String, Origin>) -> BTreeMap<String, Origin> {
    if let Ok(toml::Value::Table(defaults)) = toml::Value::try_from(Settings::default()) {
        for (section, keys) in defaults {
            if let toml::Value::Table(keys) = keys {
                for key in keys.keys() {
                    origins
                        .entry(format!("{section}.{key}"))
                        .or_insert(Origin::Default);
                }
            }
        }
    }
    for (section, args) in super::flags::all_groups() {
        for arg in args {
            let key = key_of(section, arg.get_id().as_str());
            origins
                .entry(format!("{section}.{key}"))
                .or_insert(Origin::Default);
        }
    }
    // The optional keys no flag has (the alert channels' destinations
    // and secrets), so that `config show` names them while unset.
    for path in EMPTY_IS_UNSET {
        origins.entry(path.to_string()).or_insert(Origin::Default);
    }
    origins
}

impl Loaded {
    pub fn origin(&self, path: &str) -> Origin {
        self.origins.get(path).cloned().unwrap_or(Origin::Default)
    }
}
