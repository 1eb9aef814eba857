//! `[alerts]`, `[slack]` and `[smtp]`: alert evaluation and where its
//! notifications go.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[alerts]`: rule evaluation, incidents and their notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSettings {
    /// How often the rules are evaluated (by one node at a time).
    #[serde(with = "duration")]
    pub evaluation_interval: Duration,
    /// How often an incident that still fires and is not acknowledged is
    /// notified again.
    #[serde(with = "duration")]
    pub repeat_interval: Duration,
    /// Alerts of one tenant firing within this of each other form one
    /// incident, notified once.
    #[serde(with = "duration")]
    pub group_window: Duration,
    /// The generic webhook channel: incidents are POSTed here as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The tenant machine-wide alerts (CPU, memory) belong to, so that
    /// they have a stream and an `alerts` room of their own.
    pub system_tenant: String,
    /// Rules of the configuration (`[[alerts.rules]]`), stored at start
    /// unless a rule with the id is stored already; with seed 000's two
    /// default rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<crate::protocol::alerts::AlertRule>,
}

impl Default for AlertsSettings {
    fn default() -> Self {
        AlertsSettings {
            evaluation_interval: Duration::from_secs(5),
            repeat_interval: Duration::from_secs(3600),
            group_window: Duration::from_secs(300),
            webhook_url: None,
            system_tenant: "system".into(),
            rules: Vec::new(),
        }
    }
}

/// `[slack]`: the Slack channel of alert notifications.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlackSettings {
    /// An incoming webhook (`https://hooks.slack.com/services/...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// A file holding it (its first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url_file: Option<PathBuf>,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: a relay on the same host or network only.
    None,
    /// Upgrade a plain connection (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// `[smtp]`: the email channel of alert notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    /// None: no email channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub port: u16,
    pub tls: SmtpTls,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A file holding the password (its first line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub from: String,
    pub to: Vec<String>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            password_file: None,
            from: "pytake@localhost".into(),
            to: Vec::new(),
        }
    }
}
