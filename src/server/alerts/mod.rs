//! Alerting: rules evaluated by one node at a time, alerts that fire and
//! resolve with a pending duration and a hysteresis band, incidents that
//! group a tenant's alerts, and notifications as queue jobs.
//!
//! Exactly once across nodes: the evaluator holds a lease in the store
//! and writes each evaluation's transitions with one fenced commit that
//! also enqueues the `SystemAlert` events and the notifications, so a
//! transition is recorded, published and notified once, and a node that
//! lost the lease cannot write.

pub mod evaluate;
mod incidents;
pub mod machine;
pub mod notification;
pub mod notify;
pub mod publish;
pub mod runner;
pub mod status;
pub mod values;

/// The job kind that stores a transition's `SystemAlert` event.
pub const EVENT_KIND: &str = "alert.event";

/// The store lease of the evaluator.
pub const LEASE: &str = "alerts.evaluator";

use std::collections::BTreeSet;

use crate::config::Settings;
use crate::protocol::alerts::Channel;

/// The channels this node's settings can deliver to. A rule's other
/// channels are skipped (the API refuses rules naming them; seed 000's
/// default rules name all four, so they notify whatever is configured).
pub fn configured_channels(settings: &Settings) -> BTreeSet<Channel> {
    let mut channels = BTreeSet::from([Channel::Websocket]);
    if settings.slack.webhook_url.is_some() || settings.slack.webhook_url_file.is_some() {
        channels.insert(Channel::Slack);
    }
    if settings.smtp.host.is_some() {
        channels.insert(Channel::Email);
    }
    if settings.alerts.webhook_url.is_some() {
        channels.insert(Channel::Webhook);
    }
    channels
}
