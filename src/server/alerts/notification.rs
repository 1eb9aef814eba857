//! What an incident's notification job carries (kind
//! [`NOTIFY_KIND`]): the incident and its alerts as they were when the
//! evaluator decided to notify, and the channel. Never a credential: the
//! handler reads the channel's URL or SMTP login from the settings when
//! it runs, so `pytake queue show` and dead letters reveal no secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::protocol::alerts::{Alert, Channel, Incident};

/// The job kind of notifications.
pub const NOTIFY_KIND: &str = "alert.notify";

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The incident opened.
    Firing,
    /// Still firing and not acknowledged after `[alerts] repeat_interval`.
    Repeat,
    /// Every alert of the incident resolved.
    Resolved,
}

/// The payload of an [`NOTIFY_KIND`] job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notification {
    pub channel: Channel,
    pub reason: Reason,
    pub incident: Incident,
    /// The incident's alerts, firing first, then by severity.
    pub alerts: Vec<Alert>,
    /// Each alert's rule window, by rule id: an [`Alert`] copies its
    /// rule's threshold and comparator but not what a rate or a sum was
    /// measured over, and a message that says "7.5 % > 5 %" must say
    /// over how long. A rule missing here is shown without its window.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub windows: BTreeMap<String, Window>,
}

/// A rule's window, written as the rules API writes it (`5m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Window(#[serde(with = "crate::config::duration")] pub Duration);
