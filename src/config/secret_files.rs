//! Secrets given as files (`secret_file`, `token_file`, the webhooks'
//! secrets, `[slack] webhook_url_file`, `[smtp] password_file`), so they
//! stay out of argv, the environment and the config file: the file's
//! first line becomes the value. When both a value and a file are set,
//! the higher layer wins; on one layer, both is an error (which was
//! meant?).

use std::path::Path;

use super::load::{ConfigError, Loaded};
use super::origin::Origin;
use super::Settings;

/// Reads every secret file of the sections the command reads: a client
/// is not refused over the server's secret file.
pub(super) fn read(
    settings: &mut Settings,
    loaded: &mut Loaded,
    sections: &[&str],
) -> Result<(), ConfigError> {
    if sections.contains(&"auth") {
        if let Some(path) = settings.auth.secret_file.clone() {
            let has_value = settings.auth.secret.is_some();
            if use_file(loaded, has_value, "auth.secret", "auth.secret_file")? {
                settings.auth.secret =
                    Some(first_line(&path, loaded, "auth.secret_file", "secret")?);
                let origin = loaded.origin("auth.secret_file");
                loaded.origins.insert("auth.secret".into(), origin);
            }
        }
    }
    if sections.contains(&"webhooks") {
        if let Some(w) = settings.webhooks.whatsapp.as_mut() {
            if let Some(path) = w.app_secret_file.clone() {
                let key = "webhooks.whatsapp.app_secret_file";
                if w.app_secret.is_some() {
                    return Err(both_in_file(section_origin(loaded, key), key, "app_secret"));
                }
                w.app_secret = Some(first_line(&path, loaded, key, "WhatsApp app secret")?);
            }
        }
        if let Some(e) = settings.webhooks.evolution.as_mut() {
            if let Some(path) = e.api_key_file.clone() {
                let key = "webhooks.evolution.api_key_file";
                if e.api_key.is_some() {
                    return Err(both_in_file(section_origin(loaded, key), key, "api_key"));
                }
                e.api_key = Some(first_line(&path, loaded, key, "Evolution API key")?);
            }
        }
    }
    if sections.contains(&"slack") {
        let slack = &mut settings.slack;
        if let Some(path) = slack.webhook_url_file.clone() {
            let key = "slack.webhook_url_file";
            if slack.webhook_url.is_some() {
                return Err(both_in_file(loaded.origin(key), key, "webhook_url"));
            }
            slack.webhook_url = Some(first_line(&path, loaded, key, "Slack webhook URL")?);
            let origin = loaded.origin(key);
            loaded.origins.insert("slack.webhook_url".into(), origin);
        }
    }
    if sections.contains(&"smtp") {
        let smtp = &mut settings.smtp;
        if let Some(path) = smtp.password_file.clone() {
            let key = "smtp.password_file";
            if smtp.password.is_some() {
                return Err(both_in_file(loaded.origin(key), key, "password"));
            }
            smtp.password = Some(first_line(&path, loaded, key, "SMTP password")?);
            let origin = loaded.origin(key);
            loaded.origins.insert("smtp.password".into(), origin);
        }
    }
    if sections.contains(&"client") {
        if let Some(path) = settings.client.token_file.clone() {
            let has_value = settings.client.token.is_some();
            if use_file(loaded, has_value, "client.token", "client.token_file")? {
                settings.client.token =
                    Some(first_line(&path, loaded, "client.token_file", "token")?);
                let origin = loaded.origin("client.token_file");
                loaded.origins.insert("client.token".into(), origin);
            }
        }
    }
    Ok(())
}

/// Where a key of a nested section (`[webhooks.whatsapp]`) was set: the
/// section's origin, since origins are kept by `section.key`.
fn section_origin(loaded: &Loaded, key: &str) -> Origin {
    loaded.origin(key.rsplit_once('.').map_or(key, |(s, _)| s))
}

/// A secret given both inline and as a file in the config file, which
/// has one layer only: which was meant?
fn both_in_file(at: Origin, file_key: &str, value_key: &str) -> ConfigError {
    ConfigError::Invalid {
        at: at.to_string(),
        message: format!(
            "both `{value_key}` and `{}` are set: give one",
            file_key.rsplit('.').next().unwrap_or(file_key)
        ),
    }
}

/// Whether the `file` key wins over the `value` key.
fn use_file(
    loaded: &Loaded,
    has_value: bool,
    value: &str,
    file: &str,
) -> Result<bool, ConfigError> {
    if !has_value {
        return Ok(true);
    }
    let (v, f) = (loaded.origin(value), loaded.origin(file));
    if v.rank() == f.rank() {
        return Err(ConfigError::Invalid {
            at: format!("{v} and {f}"),
            message: format!(
                "both `{value}` and `{file}` are set: give one (the file keeps it out of argv and the environment)"
            ),
        });
    }
    Ok(f.rank() > v.rank())
}

fn first_line(path: &Path, loaded: &Loaded, key: &str, what: &str) -> Result<String, ConfigError> {
    let at = loaded.origin(key).with_value(&path.display().to_string());
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        at: at.clone(),
        message: format!("cannot read the {what} file {}: {e}", path.display()),
    })?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.is_empty() {
        return Err(ConfigError::Invalid {
            at,
            message: format!("the {what} file is empty"),
        });
    }
    Ok(line)
}
