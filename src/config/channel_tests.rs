//! The alert channels' settings: secrets read from files, and the checks
//! that refuse a channel that could not send, without printing a secret.

use std::path::Path;

use super::*;

/// Loads `text` as the config file (in `dir`), as `config show` does:
/// every section read and checked.
fn load_file(dir: &Path, text: &str) -> Result<Loaded, ConfigError> {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    load(
        &Sources {
            file: Some((path, true)),
            env: Default::default(),
        },
        None,
    )
}

fn error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let e = load_file(dir.path(), text).unwrap_err().to_string();
    let at = format!("{}", dir.path().join("config.toml").display());
    e.replace(&at, "config.toml")
}

#[test]
fn channel_secrets_come_from_files_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/slack"),
        "https://hooks.slack.com/services/T0/B0/s3cret\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("secrets/smtp"), "hunter2\n").unwrap();
    let loaded = load_file(
        dir.path(),
        "[slack]\nwebhook_url_file = \"secrets/slack\"\n\n\
         [smtp]\nhost = \"smtp.example.com\"\nusername = \"pytake\"\n\
         password_file = \"secrets/smtp\"\nto = [\"oncall@example.com\"]\n",
    )
    .unwrap();
    let s = &loaded.settings;
    assert_eq!(
        s.slack.webhook_url.as_deref(),
        Some("https://hooks.slack.com/services/T0/B0/s3cret")
    );
    assert_eq!(s.smtp.password.as_deref(), Some("hunter2"));
    let file = dir.path().join("config.toml");
    assert_eq!(
        loaded.origin("slack.webhook_url"),
        Origin::File {
            path: file.clone(),
            line: Some(2)
        }
    );
    assert_eq!(
        loaded.origin("smtp.password"),
        Origin::File {
            path: file,
            line: Some(7)
        }
    );
}

#[test]
fn a_secret_given_twice_or_unreadable_is_refused() {
    assert_eq!(
        error("[slack]\nwebhook_url = \"https://a.example.com/x\"\nwebhook_url_file = \"f\"\n"),
        "config.toml line 3: both `webhook_url` and `webhook_url_file` are set: give one"
    );
    assert_eq!(
        error("[smtp]\npassword = \"x\"\npassword_file = \"f\"\n"),
        "config.toml line 3: both `password` and `password_file` are set: give one"
    );
    let e = error("[smtp]\npassword_file = \"nope\"\n");
    assert!(
        e.starts_with("config.toml line 2: cannot read the SMTP password file "),
        "{e}"
    );
}

#[test]
fn channel_urls_must_be_http_and_are_never_printed() {
    assert_eq!(
        error("[slack]\nwebhook_url = \"ftp://hooks.example.com/s3cret\"\n"),
        "config.toml line 2: slack.webhook_url must be an http:// or https:// URL with a host, not a `ftp:` URL (the value is a secret: not shown)"
    );
    assert_eq!(
        error("[alerts]\nwebhook_url = \"hooks.example.com/s3cret\"\n"),
        "config.toml line 2: alerts.webhook_url not a URL (relative URL without a base) (the value is a secret: not shown)"
    );
    let dir = tempfile::tempdir().unwrap();
    let loaded = load_file(dir.path(), "[alerts]\nwebhook_url = \"\"\n").unwrap();
    assert_eq!(loaded.settings.alerts.webhook_url, None, "empty is unset");
}

#[test]
fn an_smtp_host_needs_recipients_addresses_and_a_whole_safe_login() {
    let smtp = |rest: &str| error(&format!("[smtp]\nhost = \"smtp.example.com\"\n{rest}"));
    assert_eq!(
        smtp(""),
        "config.toml line 2: smtp.host is set but smtp.to names no recipient: add e.g. to = [\"oncall@example.com\"]"
    );
    assert_eq!(
        smtp("to = [\"oncall@example.com\", \"not an address\"]\n"),
        "config.toml line 3: `not an address` is not an email address (Invalid input): write e.g. oncall@example.com or \"Ops <ops@example.com>\""
    );
    assert_eq!(
        smtp("to = [\"a@example.com\"]\nfrom = \"pytake\"\n"),
        "config.toml line 4: `pytake` is not an email address (Invalid input): write e.g. oncall@example.com or \"Ops <ops@example.com>\""
    );
    assert_eq!(
        smtp("to = [\"a@example.com\"]\nport = 0\n"),
        "config.toml line 4: must be a port from 1 to 65535 (587 for starttls, 465 for tls)"
    );
    assert_eq!(
        smtp("to = [\"a@example.com\"]\npassword = \"hunter2\"\n"),
        "config.toml line 4: smtp.password is set without smtp.username: set both, or neither for a server that takes mail without a login"
    );
    assert_eq!(
        smtp("to = [\"a@example.com\"]\nusername = \"pytake\"\n"),
        "config.toml line 4: smtp.username is set without a password: set smtp.password or smtp.password_file"
    );
    assert_eq!(
        smtp("to = [\"a@example.com\"]\nusername = \"u\"\npassword = \"p\"\ntls = \"none\"\n"),
        "config.toml line 6: a login with tls = \"none\" would send the password to smtp.example.com in clear text: use starttls or tls (none is for a relay on this host)"
    );
    let dir = tempfile::tempdir().unwrap();
    let local = "[smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n\
                 username = \"u\"\npassword = \"p\"\nto = [\"Ops <ops@example.com>\"]\n";
    let loaded = load_file(dir.path(), local).unwrap();
    assert_eq!(loaded.settings.smtp.port, 2525);
    // Without a host the channel is off, whatever else is set.
    assert!(load_file(dir.path(), "[smtp]\nto = [\"nope\"]\n").is_ok());
}

#[test]
fn the_init_files_channel_example_is_a_working_configuration() {
    let text = init_text();
    let start = text.find("# [alerts]").expect("the example");
    let example: String = text[start..]
        .lines()
        .map(|l| l.strip_prefix("# ").unwrap_or(""))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let s = load_file(dir.path(), &example).unwrap().settings;
    assert_eq!(s.smtp.host.as_deref(), Some("smtp.example.com"));
    assert_eq!(s.smtp.to, vec!["oncall@example.com".to_string()]);
    assert_eq!(
        s.slack.webhook_url.as_deref(),
        Some("https://hooks.slack.com/services/...")
    );
    assert_eq!(s.alerts.evaluation_interval, Duration::from_secs(5));
}
