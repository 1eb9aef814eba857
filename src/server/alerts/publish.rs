//! Kind `alert.event`: stores a transition's `SystemAlert` event through
//! intake. The evaluator queues it in the same commit as the transition,
//! so the event is never lost to a crash between the two; the event's
//! key (`{alert id}:{state}`) makes a repeated run store it once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::protocol::{NewEvent, Scope};
use crate::server::clock::Clock;
use crate::server::ingest::{Ingest, IngestError};
use crate::server::queue::handlers::{Handler, JobError};
use crate::server::storage::jobs::Job;
use crate::server::storage::AppendRequest;

/// What an `alert.event` job carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    tenant_id: String,
    /// The transition's time, not the run's: a retried job keeps it.
    timestamp: DateTime<Utc>,
    idempotency_key: String,
    data: serde_json::Value,
}

pub struct PublishAlert {
    pub ingest: Ingest,
    pub clock: Clock,
}

#[async_trait]
impl Handler for PublishAlert {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let payload: Payload = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fatal(format!("not an alert event: {e}")))?;
        // The evaluator stamps a tenant's alert jobs with the tenant: one
        // that says otherwise did not come from it.
        if job
            .tenant_id
            .as_ref()
            .is_some_and(|t| *t != payload.tenant_id)
        {
            return Err(JobError::Fatal(format!(
                "the job is tenant {}'s but the event names tenant {}",
                job.tenant_id.as_deref().unwrap_or_default(),
                payload.tenant_id
            )));
        }
        let event = NewEvent {
            event_type: "SystemAlert".into(),
            data: payload.data,
            tenant_id: Some(payload.tenant_id.clone()),
            rooms: None,
            idempotency_key: Some(payload.idempotency_key),
            timestamp: Some(payload.timestamp),
        }
        .validate_at(payload.tenant_id, self.clock.now())
        .map_err(|e| JobError::Fatal(format!("the SystemAlert event is invalid: {e}")))?;
        let request = AppendRequest {
            idempotency_key: None,
            key_scope: Scope::All,
            fingerprint: None,
            events: vec![event],
        };
        match self.ingest.submit(request).await {
            Ok(_) => Ok(()),
            Err(IngestError::KeyReused(reused)) => Err(JobError::Fatal(reused.to_string())),
            Err(e) => Err(JobError::Retry(format!("intake: {e}"))),
        }
    }
}
