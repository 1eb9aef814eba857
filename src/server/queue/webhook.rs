//! Kinds `webhook.whatsapp` and `webhook.evolution`: a webhook's raw body,
//! stored when it arrived, turned into events through intake. The events
//! carry idempotency keys taken from the payload, so a run repeated after
//! a crash, or a provider delivering the same webhook twice, stores each
//! event once. A body that cannot be understood is dead at once with the
//! reason; a store that is down is retried.

use std::collections::BTreeMap;

use async_trait::async_trait;
use base64::Engine;
use serde_json::{json, Value};

use super::handlers::{Handler, JobError};
use crate::protocol::Scope;
use crate::server::clock::Clock;
use crate::server::ingest::{Ingest, IngestError};
use crate::server::storage::jobs::Job;
use crate::server::storage::AppendRequest;
use crate::server::webhooks::{evolution, whatsapp, Translation, Unusable};

/// The webhook sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Whatsapp,
    Evolution,
}

impl Source {
    pub fn parse(name: &str) -> Option<Source> {
        match name {
            "whatsapp" => Some(Source::Whatsapp),
            "evolution" => Some(Source::Evolution),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Source::Whatsapp => "whatsapp",
            Source::Evolution => "evolution",
        }
    }

    /// The job kind that carries this source's bodies.
    pub fn kind(self) -> &'static str {
        match self {
            Source::Whatsapp => "webhook.whatsapp",
            Source::Evolution => "webhook.evolution",
        }
    }
}

/// A job's payload for a received body: the text as it came (or, not
/// being UTF-8, its bytes in base64), so nothing accepted is lost or
/// altered before a worker reads it.
pub fn payload(body: &[u8], received_at: chrono::DateTime<chrono::Utc>) -> Value {
    match std::str::from_utf8(body) {
        Ok(text) => json!({"body": text, "received_at": received_at}),
        Err(_) => json!({
            "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
            "received_at": received_at,
        }),
    }
}

fn body_of(job: &Job) -> Result<Vec<u8>, JobError> {
    if let Some(text) = job.payload.get("body").and_then(Value::as_str) {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(encoded) = job.payload.get("body_base64").and_then(Value::as_str) {
        return base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| JobError::Fatal(format!("payload.body_base64 is not base64: {e}")));
    }
    Err(JobError::Fatal(
        "payload has neither `body` nor `body_base64`: not a webhook job".into(),
    ))
}

/// Runs one source's webhook jobs.
pub struct WebhookHandler {
    pub source: Source,
    /// The source's id (`phone_number_id`, `instance`) -> tenant.
    pub tenants: BTreeMap<String, String>,
    pub ingest: Ingest,
    pub clock: Clock,
}

#[async_trait]
impl Handler for WebhookHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let body = body_of(job)?;
        let translated = match self.source {
            Source::Whatsapp => whatsapp::translate(&body, &self.tenants),
            Source::Evolution => evolution::translate(&body, &self.tenants),
        };
        let Translation { events, skipped } =
            translated.map_err(|Unusable(reason)| JobError::Fatal(reason))?;
        for reason in &skipped {
            tracing::info!(job = job.id, source = self.source.name(), reason = %reason, "webhook part not turned into an event");
        }
        if events.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let mut valid = Vec::with_capacity(events.len());
        for (i, event) in events.into_iter().enumerate() {
            let tenant = event.tenant_id.clone().unwrap_or_default();
            let event = event
                .validate_at(tenant, now)
                .map_err(|e| JobError::Fatal(format!("event {i} of the payload: {e}")))?;
            valid.push(event);
        }
        let request = AppendRequest {
            idempotency_key: None,
            key_scope: Scope::All,
            fingerprint: None,
            events: valid,
        };
        match self.ingest.submit(request).await {
            Ok(_) => Ok(()),
            Err(IngestError::KeyReused(reused)) => Err(JobError::Fatal(format!(
                "{}: the provider sent different content under an id already stored",
                reused
            ))),
            Err(e) => Err(JobError::Retry(format!("intake: {e}"))),
        }
    }
}
