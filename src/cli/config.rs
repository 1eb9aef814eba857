//! `pytake config show|check|init`, after Centrifugo's `genconfig` and
//! `checkconfig`: the settings in effect and where each came from, a file
//! checked before a deploy, and a commented file to start from.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::exit::UsageError;
use super::output::OutputFormat;
use crate::config::{self as settings, Loaded, Origin, Sources, SECRETS};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings in effect (file, PYTAKE_* variables, defaults), secrets masked
    #[command(after_help = "\
Examples:
  pytake config show                  # what `pytake serve` would use here
  pytake config show --origin         # and where each value came from
  PYTAKE_RATE_LIMIT=50 pytake config show --origin -o json

Exit status: 0 ok, 2 a bad variable or config file (the message names it).")]
    Show(ShowArgs),
    /// Check a config file as `pytake serve` would read it
    #[command(after_help = "\
Examples:
  pytake config check                          # the file in effect
  pytake config check /etc/pytake/config.toml  # before deploying it

Exit status: 0 valid, 2 invalid (the message gives the line).")]
    Check(CheckArgs),
    /// Write a commented config file with every setting at its default
    #[command(after_help = "\
Examples:
  pytake config init                      # --config, PYTAKE_CONFIG or <user config dir>/pytake/config.toml
  pytake config init ./pytake.toml
  pytake config init - | less             # print it instead

Never overwrites a file. Exit status: 0 written, 1 the file exists or cannot be written.")]
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Say where each value came from: a flag, a variable, the file (with its line) or the default
    #[arg(long)]
    pub origin: bool,

    /// Output format: table (TOML text, also when piped) or json
    #[arg(long, short = 'o', value_name = "FORMAT", value_parser = super::output::formats(&["table", "json"]))]
    pub output: Option<OutputFormat>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The file to check [default: --config, PYTAKE_CONFIG, or the default location]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write it, or `-` for stdout [default: --config, PYTAKE_CONFIG, or <user config dir>/pytake/config.toml]
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// What `config show` prints instead of a secret that is set.
const MASK: &str = "********";

pub fn run(cmd: ConfigCommand, loaded: &Loaded, sources: &Sources) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Show(args) => show(&args, loaded),
        ConfigCommand::Check(args) => check(args.file, sources),
        ConfigCommand::Init(args) => init(args.file, sources),
    }
}

/// Every setting as `section.key` → (value as text, origin), in file order.
fn effective(loaded: &Loaded) -> Vec<(String, String, Option<String>, Origin)> {
    let s = &loaded.settings;
    let mut table = match toml::Value::try_from(s) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::Table::new(),
    };
    // Resolved where the default depends on the machine: what will be used.
    let mut set = |section: &str, key: &str, value: String| {
        if let Some(toml::Value::Table(t)) = table.get_mut(section) {
            t.insert(key.into(), toml::Value::String(value));
        }
    };
    set("server", "data_dir", s.data_dir().display().to_string());
    set("store", "url", settings::mask_url(&s.store_url()));
    set("bus", "url", settings::mask_url(&s.bus.url));
    set("client", "server", settings::mask_url(s.server_url()));
    let mut rows = Vec::new();
    for (section, keys) in &table {
        let toml::Value::Table(keys) = keys else {
            continue;
        };
        for (key, value) in keys {
            let path = format!("{section}.{key}");
            let secret = SECRETS.contains(&path.as_str());
            let text = if secret {
                format!("\"{MASK}\"")
            } else {
                masked(&path, value).to_string()
            };
            rows.push((
                section.clone(),
                key.clone(),
                Some(text),
                loaded.origin(&path),
            ));
        }
    }
    // Unset keys are listed too, so every setting can be looked up.
    for (path, origin) in &loaded.origins {
        let (section, key) = path.split_once('.').unwrap_or(("", path));
        if !rows.iter().any(|(s, k, _, _)| s == section && k == key) {
            rows.push((section.into(), key.into(), None, origin.clone()));
        }
    }
    let order = crate::config::ALL_SECTIONS;
    rows.sort_by_key(|(s, _, _, _)| order.iter().position(|o| o == s).unwrap_or(order.len()));
    rows
}

/// A table value (`[webhooks.whatsapp]`) with its secret keys masked.
fn masked(path: &str, value: &toml::Value) -> toml::Value {
    match value {
        toml::Value::Table(table) => toml::Value::Table(
            table
                .iter()
                .map(|(key, inner)| {
                    let inner_path = format!("{path}.{key}");
                    let shown = if SECRETS.contains(&inner_path.as_str()) {
                        toml::Value::String(MASK.into())
                    } else {
                        masked(&inner_path, inner)
                    };
                    (key.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

fn show(args: &ShowArgs, loaded: &Loaded) -> anyhow::Result<()> {
    let rows = effective(loaded);
    let mut out = std::io::stdout().lock();
    // TOML by default, piped or not: `config show > config.toml` is a use.
    match args.output.unwrap_or(OutputFormat::Table) {
        OutputFormat::Json => {
            let mut root = Map::new();
            for (section, key, value, origin) in &rows {
                let entry = root
                    .entry(section.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                let value = match value {
                    Some(text) => toml_text_to_json(text),
                    None => Value::Null,
                };
                let value = match args.origin {
                    true => json!({"value": value, "origin": origin.to_string()}),
                    false => value,
                };
                if let Value::Object(m) = entry {
                    m.insert(key.clone(), value);
                }
            }
            serde_json::to_writer(&mut out, &Value::Object(root))?;
            writeln!(out)?;
        }
        _ => {
            if let Some(file) = &loaded.file {
                writeln!(out, "# config file: {}", file.display())?;
            } else {
                writeln!(out, "# config file: none")?;
            }
            let mut current = "";
            let width = rows
                .iter()
                .map(|(_, k, v, _)| k.len() + v.as_ref().map_or(4, |v| v.len()) + 3)
                .max()
                .unwrap_or(0);
            for (section, key, value, origin) in &rows {
                if section != current {
                    writeln!(out, "\n[{section}]")?;
                    current = section;
                }
                let line = match value {
                    Some(v) => format!("{key} = {v}"),
                    None => format!("# {key} unset"),
                };
                match args.origin {
                    true => writeln!(out, "{line:<width$}  # {origin}")?,
                    false => writeln!(out, "{line}")?,
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// A value printed as TOML, as JSON (strings, numbers, booleans).
fn toml_text_to_json(text: &str) -> Value {
    match format!("v = {text}").parse::<toml::Table>() {
        Ok(t) => t
            .get("v")
            .and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or(Value::Null),
        Err(_) => Value::String(text.to_string()),
    }
}

fn check(file: Option<PathBuf>, sources: &Sources) -> anyhow::Result<()> {
    let default = sources
        .file
        .as_ref()
        .filter(|(path, required)| *required || path.exists())
        .map(|(path, _)| path.clone());
    let path = match file.or(default) {
        Some(path) => path,
        None => {
            return Err(UsageError(format!(
                "no config file to check: none at {} (give a FILE, --config or PYTAKE_CONFIG)",
                settings::default_config_file()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "the default location".into())
            ))
            .into())
        }
    };
    // As `serve` reads it: the file alone, every value checked.
    settings::load(
        &Sources {
            file: Some((path.clone(), true)),
            env: Default::default(),
        },
        None,
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}: ok", path.display())?;
    Ok(())
}

fn init(file: Option<PathBuf>, sources: &Sources) -> anyhow::Result<()> {
    let text = settings::init_text();
    // The file the other commands would read: --config, PYTAKE_CONFIG, or
    // the default location.
    let named = sources.file.as_ref().map(|(path, _)| path.clone());
    let path = match file {
        Some(p) if p == Path::new("-") => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            return Ok(());
        }
        Some(p) => p,
        None => named.context("this system has no user config dir: give a FILE")?,
    };
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(UsageError(format!(
            "{} is a directory: give a file, e.g. {}",
            path.display(),
            path.join("config.toml").display()
        ))
        .into());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // create_new: never overwrite, even if the file appears meanwhile.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // It may come to hold secrets.
        options.mode(0o600);
    }
    let mut f = match options.open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            anyhow::bail!(
                "{} exists; not overwriting it (move it away first, or write elsewhere: pytake config init FILE)",
                path.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("cannot write {}", path.display())),
    };
    f.write_all(text.as_bytes())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
}
