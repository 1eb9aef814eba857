//! The config file: read with line numbers in every error, and the
//! commented default file `pytake config init` writes.

use std::path::{Path, PathBuf};

use super::flags::{all_groups, key_of};
use super::load::ConfigError;
use super::origin::{default_text, default_words, plain};
use super::Settings;

/// A config file that parsed and whose keys are all known.
#[derive(Debug, Clone)]
pub(super) struct FileLayer {
    pub path: PathBuf,
    pub text: String,
    pub table: toml::Table,
}

impl FileLayer {
    /// The line that sets `section.key`, for messages and `--origin`.
    pub fn line_of(&self, section: &str, key: &str) -> Option<usize> {
        let mut current = String::new();
        for (n, line) in self.text.lines().enumerate() {
            let t = line.trim();
            if let Some(header) = header_of(t) {
                current = header;
            } else if current == section {
                let name = t.split('=').next().unwrap_or("").trim().trim_matches('"');
                if t.contains('=') && name == key {
                    return Some(n + 1);
                }
            }
        }
        None
    }
}

/// Reads and checks a config file. `Ok(None)`: it does not exist and was
/// not required (the default location).
pub(super) fn read(path: &Path, required: bool) -> Result<Option<FileLayer>, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(None),
        Err(e) => {
            return Err(ConfigError::File {
                path: path.to_path_buf(),
                line: None,
                message: match e.kind() {
                    std::io::ErrorKind::NotFound => {
                        "no such file (`pytake config init` writes one)".into()
                    }
                    _ => e.to_string(),
                },
            })
        }
    };
    parse(path, text).map(Some)
}

fn parse(path: &Path, text: String) -> Result<FileLayer, ConfigError> {
    if let Err(e) = toml::from_str::<Settings>(&text) {
        let line = e
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        return Err(ConfigError::File {
            path: path.to_path_buf(),
            line,
            message: explain(e.message(), &text, line),
        });
    }
    let table = text.parse::<toml::Table>().map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        line: None,
        message: e.message().to_string(),
    })?;
    Ok(FileLayer {
        path: path.to_path_buf(),
        text,
        table,
    })
}

/// serde's words made the file's: "unknown field" is an unknown key, and a
/// key of the old flat layout is pointed to its section.
fn explain(message: &str, text: &str, line: Option<usize>) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let name = rest.split('`').next().unwrap_or("");
    let expected = rest.split_once(", ").map(|(_, e)| e).unwrap_or("");
    let section = line.and_then(|l| section_at(text, l));
    let home = all_groups().into_iter().find_map(|(section, args)| {
        args.iter()
            .any(|a| key_of(section, a.get_id().as_str()) == name)
            .then_some(section)
    });
    match (section, home) {
        (None, Some(home)) => format!(
            "unknown key `{name}` at the top level: it belongs in [{home}] (settings are in sections)"
        ),
        (None, None) => format!("unknown section or key `{name}`, {expected}"),
        (Some(s), _) => format!("unknown key `{name}` in [{s}], {expected}"),
    }
}

/// The `[section]` a line is in.
fn section_at(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(|l| header_of(l.trim()))
        .last()
}

/// `server` for a line `[server]` or `[server]  # comment`.
fn header_of(line: &str) -> Option<String> {
    let rest = line.strip_prefix('[')?;
    let (name, after) = rest.split_once(']')?;
    let after = after.trim();
    (after.is_empty() || after.starts_with('#')).then(|| name.trim().to_string())
}

/// `pytake config check FILE`: parses and checks a file as `serve` would.
pub fn check_file(path: &Path) -> Result<(), ConfigError> {
    read(path, true).map(|_| ())
}

/// The commented default file `pytake config init` writes: every key at
/// its default, commented out, with its flag and variable.
pub fn init_text() -> String {
    let mut out = String::from(
        "# pytake configuration (`pytake config init`).\n\
         # Precedence: flags > PYTAKE_* environment variables > this file > defaults.\n\
         # Every key is shown commented out at its default: uncomment to change it.\n\
         # `pytake config check FILE` validates a file; `pytake config show --origin`\n\
         # prints the settings in effect and where each came from.\n",
    );
    let mut sections: Vec<&str> = Vec::new();
    for (section, _) in all_groups() {
        if !sections.contains(&section) {
            sections.push(section);
        }
    }
    for section in sections {
        out.push_str(&format!("\n[{section}]\n"));
        for (s, args) in all_groups() {
            if s != section {
                continue;
            }
            for arg in args {
                let id = arg.get_id().as_str();
                let key = key_of(section, id);
                let path = format!("{section}.{key}");
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                let env = arg
                    .get_env()
                    .map(|e| e.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let default = match default_text(&path) {
                    Some(text) => format!(" [default: {text}]"),
                    None => String::new(),
                };
                out.push_str(&format!(
                    "# {help}{default}\n# --{}, {env}\n",
                    arg.get_long().unwrap_or(id)
                ));
                let value = match (default_words(&path), default_text(&path)) {
                    (None, Some(text)) => literal(&path, &text),
                    _ => "\"\"".to_string(),
                };
                out.push_str(&format!("#{key} = {value}\n"));
            }
        }
        for (s, key, help) in FILE_ONLY {
            if *s != section {
                continue;
            }
            let path = format!("{section}.{key}");
            let default = default_text(&path).unwrap_or_default();
            out.push_str(&format!(
                "# {help} [default: {default}]\n# (config file only)\n#{key} = {}\n",
                literal(&path, &default)
            ));
        }
    }
    out.push_str(WEBHOOKS_EXAMPLE);
    out.push_str(&notifications_example());
    out
}

/// The alert sections, as an example like the webhook sources: a channel
/// is off until its section names a destination, so there is no default
/// to uncomment. The defaults shown are the code's.
fn notifications_example() -> String {
    // `key = default`, as a TOML line.
    let d = |path: &str| {
        let key = path.split_once('.').map_or(path, |(_, k)| k);
        let text = default_text(path).unwrap_or_default();
        format!("{key} = {}", literal(path, &text))
    };
    let lines: Vec<(String, &str)> = vec![
        ("[alerts]".into(), ""),
        (
            d("alerts.evaluation_interval"),
            "how often the rules are evaluated",
        ),
        (
            d("alerts.repeat_interval"),
            "notify again while firing and not acknowledged",
        ),
        (
            d("alerts.group_window"),
            "a tenant's alerts within it form one incident",
        ),
        (
            d("alerts.system_tenant"),
            "the tenant of machine-wide alerts (CPU, memory)",
        ),
        (
            "webhook_url = \"https://...\"".into(),
            "the generic webhook: each notification POSTed as JSON",
        ),
        (String::new(), ""),
        ("[slack]".into(), ""),
        (
            "webhook_url = \"https://hooks.slack.com/services/...\"".into(),
            "an incoming webhook",
        ),
        (String::new(), ""),
        ("[smtp]".into(), "the email channel"),
        ("host = \"smtp.example.com\"".into(), ""),
        (d("smtp.port"), "587 for starttls, 465 for tls"),
        (d("smtp.tls"), "none | starttls | tls"),
        (
            "username = \"...\"".into(),
            "with password (or password_file), or neither",
        ),
        ("password = \"...\"".into(), ""),
        (d("smtp.from"), ""),
        ("to = [\"oncall@example.com\"]".into(), ""),
    ];
    let mut out = String::from(
        "
# Alerting and its notification channels (docs/alerts.md). A channel is
# off until its section names a destination; a notification for a channel
# that is off is a dead job that says what to set. The URLs and the SMTP
# password are secrets: give them as files (webhook_url_file,
# password_file) to keep them out of the file; `config show` masks them.
",
    );
    for (line, comment) in lines {
        match (line.is_empty(), comment.is_empty()) {
            (true, _) => out.push_str("#\n"),
            (false, true) => out.push_str(&format!("# {line}\n")),
            (false, false) => out.push_str(&format!("# {line:<34} # {comment}\n")),
        }
    }
    out
}

/// Keys a config file sets but no flag does: the queue's finer settings.
const FILE_ONLY: &[(&str, &str, &str)] = &[
    (
        "queue",
        "retry_base",
        "The first retry's delay; each next one doubles, plus up to 20 % jitter",
    ),
    (
        "queue",
        "retry_cap",
        "The longest delay between two attempts",
    ),
    (
        "queue",
        "breaker_threshold",
        "Consecutive failures to one host that open its circuit",
    ),
    (
        "queue",
        "breaker_cooldown",
        "How long an open circuit holds a host's jobs back before one trial",
    ),
    (
        "queue",
        "http_timeout",
        "How long an http job waits for its destination (shorter than lease)",
    ),
];

/// The webhook sources, as an example to copy (not `#key` lines: it is
/// not a default to uncomment, and a source is refused until its section
/// is set).
const WEBHOOKS_EXAMPLE: &str = "
# The webhook sources (`POST /api/v1/webhooks/{source}`); each is refused
# (404) until its section is set. Secrets may be given as files
# (app_secret_file, api_key_file) and never show in `config show`.
# [webhooks.whatsapp]
# app_secret = \"...\"            # key of X-Hub-Signature-256
# verify_token = \"...\"          # the GET handshake's hub.verify_token
# tenants = { \"106540352242922\" = \"acme\" }   # metadata.phone_number_id -> tenant
#
# [webhooks.evolution]
# api_key = \"...\"               # the body's `apikey` field or an `apikey` header
# tenants = { \"acme-main\" = \"acme\" }         # the body's `instance` -> tenant
";

/// A default as a TOML literal: numbers bare, everything else quoted.
fn literal(path: &str, text: &str) -> String {
    let defaults = toml::Value::try_from(Settings::default()).ok();
    let (section, key) = path.split_once('.').unwrap_or(("", ""));
    match defaults
        .as_ref()
        .and_then(|d| d.get(section))
        .and_then(|s| s.get(key))
    {
        Some(v @ (toml::Value::Integer(_) | toml::Value::Boolean(_) | toml::Value::Array(_))) => {
            plain(v)
        }
        _ => format!("{:?}", text),
    }
}
