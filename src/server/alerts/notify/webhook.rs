//! The generic webhook channel: the notification itself, as JSON, to
//! `[alerts] webhook_url`, for receivers that make their own message
//! (PagerDuty-style bridges, chat bots, a ticketing system). The
//! correlation id also travels as a header, so a receiver can route or
//! deduplicate without reading the body.

use reqwest::header::{HeaderName, HeaderValue};

use super::post::{Endpoint, Poster};
use crate::server::alerts::notification::Notification;
use crate::server::queue::handlers::JobError;

/// The header carrying the incident's correlation id.
pub const CORRELATION_HEADER: &str = "x-pytake-correlation-id";

/// The configured receiver.
pub struct Webhook {
    pub endpoint: Endpoint,
}

impl Webhook {
    pub async fn send(&self, poster: &Poster, n: &Notification) -> Result<(), JobError> {
        let id = HeaderValue::from_str(&n.incident.correlation_id).map_err(|_| {
            JobError::Fatal(format!(
                "payload.incident.correlation_id: `{}` cannot be sent as an HTTP header",
                n.incident.correlation_id.escape_debug()
            ))
        })?;
        let body = serde_json::to_value(n).expect("notifications serialize");
        let header = (HeaderName::from_static(CORRELATION_HEADER), id);
        poster.post(&self.endpoint, &body, &[header]).await
    }
}
