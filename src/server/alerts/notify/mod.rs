//! Kind `alert.notify`: sends an incident's notification to its channel.
//!
//! The evaluator decides what to notify and enqueues it in the same
//! transaction as the transition; this handler only delivers, so the
//! queue's retries, backoff, circuit breakers and dead letters apply to
//! notifications as to any other job. The channels' URLs and SMTP login
//! are read from this node's settings when the job runs, never from the
//! payload, and no error names more of a destination than its host.
//!
//! A run may repeat (at-least-once): Slack may show a message twice after
//! a lost answer; an email keeps its Message-ID, so mail clients show it
//! once; the generic webhook's receiver can deduplicate on the
//! correlation id, the reason and the incident's notification count.

mod email;
mod post;
mod render;
mod slack;
mod webhook;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::Settings;
use crate::protocol::alerts::Channel;
use crate::server::alerts::notification::Notification;
use crate::server::queue::breaker::Breakers;
use crate::server::queue::handlers::{Handler, JobError};
use crate::server::storage::jobs::Job;
use email::Email;
use post::{Endpoint, Poster};
use slack::Slack;
use webhook::Webhook;

pub use webhook::CORRELATION_HEADER;

/// Reads a notification payload; the error names the field
/// (``payload.alerts[0].threshold: invalid type ...``). The queue API
/// checks payloads with it at enqueue, the handler again when it runs.
pub fn parse(payload: &serde_json::Value) -> Result<Notification, String> {
    let n: Notification =
        serde_path_to_error::deserialize(payload.clone()).map_err(|e| {
            match e.path().to_string().as_str() {
                "." => format!("payload: {}", e.inner()),
                path => format!("payload.{path}: {}", e.inner()),
            }
        })?;
    if n.alerts.is_empty() {
        return Err("payload.alerts: empty: a notification is about at least one alert".into());
    }
    Ok(n)
}

/// Checks a channel's URL (`[slack] webhook_url`, `[alerts] webhook_url`)
/// as the handler will read it, for the config checks. The error does not
/// quote the URL: it is a credential.
pub fn check_url(url: &str) -> Result<(), String> {
    Endpoint::parse(url).map(|_| ())
}

/// Where each channel sends, for the line `pytake serve` logs when it
/// serves, so an operator can check a configuration without a test
/// alert: `slack hooks.slack.com:443, email off, webhook off`.
pub fn destinations(settings: &Settings) -> String {
    let url = |url: &Option<String>| {
        url.as_deref()
            .and_then(|u| Endpoint::parse(u).ok())
            .map_or("off".to_string(), |e| e.host().to_string())
    };
    let email = match Email::new(&settings.smtp, settings.queue.http_timeout) {
        Ok(email) => email.host().to_string(),
        Err(_) => "off".to_string(),
    };
    format!(
        "slack {}, email {email}, webhook {}",
        url(&settings.slack.webhook_url),
        url(&settings.alerts.webhook_url)
    )
}

/// The `alert.notify` handler: each channel as this node's settings
/// configure it, or why it cannot send.
pub struct Notifier {
    poster: Poster,
    breakers: Arc<Breakers>,
    slack: Result<Slack, String>,
    email: Result<Email, String>,
    webhook: Result<Webhook, String>,
}

impl Notifier {
    /// Built from the settings, configured or not: jobs stored while a
    /// channel was configured still run, and dead-letter with a reason
    /// an operator can act on, after it is removed.
    pub fn new(settings: &Settings, breakers: Arc<Breakers>) -> Notifier {
        let timeout = settings.queue.http_timeout;
        let slack = endpoint(
            settings.slack.webhook_url.as_deref(),
            "slack",
            "[slack] webhook_url (or webhook_url_file)",
        )
        .map(|endpoint| Slack { endpoint });
        let webhook = endpoint(
            settings.alerts.webhook_url.as_deref(),
            "webhook",
            "[alerts] webhook_url",
        )
        .map(|endpoint| Webhook { endpoint });
        Notifier {
            poster: Poster::new(timeout, breakers.clone()),
            breakers,
            slack,
            email: Email::new(&settings.smtp, timeout),
            webhook,
        }
    }
}

/// A channel's URL, or the reason it has none that works. The URL is a
/// secret: the reason never quotes it.
fn endpoint(url: Option<&str>, channel: &str, key: &str) -> Result<Endpoint, String> {
    match url.filter(|u| !u.is_empty()) {
        None => Err(format!(
            "the {channel} channel is not configured on this node: set {key}"
        )),
        Some(url) => Endpoint::parse(url)
            .map_err(|e| format!("the {channel} channel's URL cannot be used: {key} {e}")),
    }
}

/// A channel's outcome, or its configuration problem as a dead letter.
fn configured<T>(channel: &Result<T, String>) -> Result<&T, JobError> {
    channel.as_ref().map_err(|why| JobError::Fatal(why.clone()))
}

#[async_trait]
impl Handler for Notifier {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let n = parse(&job.payload).map_err(JobError::Fatal)?;
        let sent = match n.channel {
            // The evaluator publishes every transition to the `alerts`
            // room itself: there is nothing left to send.
            Channel::Websocket => return Ok(()),
            Channel::Slack => configured(&self.slack)?.send(&self.poster, &n).await,
            Channel::Email => configured(&self.email)?.send(&self.breakers, &n).await,
            Channel::Webhook => configured(&self.webhook)?.send(&self.poster, &n).await,
        };
        if sent.is_ok() {
            tracing::info!(
                job = job.id, channel = n.channel.name(), incident = %n.incident.id,
                correlation_id = %n.incident.correlation_id, "alert notification sent"
            );
        }
        sent
    }
}

#[cfg(test)]
pub(crate) mod tests;
