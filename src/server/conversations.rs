//! Conversation transfer (seed 002): an operator hands a conversation to
//! another agent of the tenant. One function, [`transfer`], serves the
//! REST route, the WebSocket `Transfer` frame and the demo, so the three
//! check, store and publish alike.
//!
//! Order: the assignment, its history row and an outbox job commit
//! together ([`ConversationStore::transfer`]); then the
//! `ConversationTransferred` event goes through intake under a key
//! derived from the transfer ([`Transfer::event_key`]), so it is stored
//! (history and resume include it) and published once. The two cannot be
//! one transaction (intake is the event store's single writer, which
//! numbers events in commit order); the outbox job, due
//! [`OUTBOX_DELAY`] later, publishes again under the same key, which
//! stores nothing when the first publish got through and stores the
//! event when the node died or intake refused in between.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::protocol::conversations::{check_key, check_transfer, Transfer, TRANSFERRED};
use crate::protocol::events::FieldError;
use crate::protocol::{Claims, Event, NewEvent, Role, Scope, TenantId};
use crate::server::clock::Clock;
use crate::server::ingest::{Ingest, IngestError};
use crate::server::queue::handlers::{Handler, JobError};
use crate::server::state::Shared;
use crate::server::storage::conversations::NewTransfer;
use crate::server::storage::jobs::{Job, NewJob};
use crate::server::storage::{AppendRequest, ConversationStore, StoreError};

/// The job kind that publishes a transfer's event if its caller did not.
pub const OUTBOX_KIND: &str = "conversation.transferred";

/// How long after a transfer its outbox job runs: well past the caller's
/// own publish (milliseconds; intake waits at most 5 s for room), so the
/// job normally finds the event stored and does nothing, and soon enough
/// that an event lost to a crash still reaches agents within a minute.
pub const OUTBOX_DELAY: Duration = Duration::from_secs(30);

/// Runs of an outbox job before it is dead-lettered: intake refuses only
/// while overloaded or shutting down, so ten runs with the queue's
/// backoff outlast any such spell.
const OUTBOX_ATTEMPTS: u32 = 10;

/// Why a transfer was refused. Each maps to one REST status and one
/// `Error` code.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// 403 / `forbidden`: the role may not transfer, or not this tenant.
    #[error("{0}")]
    Forbidden(String),
    /// 400 / `bad_message`, naming the field.
    #[error("{0}")]
    Invalid(FieldError),
    /// 409 / `conflict`: already assigned to that user.
    #[error("{0}")]
    Conflict(String),
    /// 503 / `unavailable`: the store failed; nothing was transferred.
    #[error("the conversation store is unavailable; retry later")]
    Unavailable(#[source] StoreError),
}

/// Moves `conversation_id` of `tenant` to `to_user` for `caller` (an
/// operator or admin who may act for `tenant`), recording `note`; the
/// stored transfer, with its event's id once intake stored it (none when
/// intake refused: the outbox job publishes it later).
///
/// A transfer to the current assignee is [`TransferError::Conflict`] and
/// changes nothing; of two racing transfers of one conversation, on any
/// nodes, one commits first and the other sees its result (see
/// [`ConversationStore`]). `to_user` is a user of `tenant` by
/// construction: the assignment and the `user:{to_user}` room are the
/// tenant's.
pub async fn transfer(
    state: &Shared,
    caller: &Claims,
    tenant: &TenantId,
    conversation_id: &str,
    to_user: &str,
    note: Option<&str>,
) -> Result<Transfer, TransferError> {
    if !matches!(caller.role, Role::Admin | Role::Operator) {
        return Err(TransferError::Forbidden(format!(
            "role {} may not transfer conversations: operator or admin tokens only",
            caller.role
        )));
    }
    if !caller.may_see(tenant.as_str()) {
        return Err(TransferError::Forbidden(format!(
            "this token may not act for tenant `{}`",
            tenant.as_str()
        )));
    }
    check_key("conversation_id", conversation_id).map_err(TransferError::Invalid)?;
    // An empty note is no note.
    let note = note.filter(|n| !n.is_empty());
    check_transfer(to_user, note).map_err(TransferError::Invalid)?;
    let asked = NewTransfer {
        tenant_id: tenant.clone(),
        conversation_id: conversation_id.to_string(),
        to_user: to_user.to_string(),
        note: note.map(str::to_string),
        by: caller.sub.clone(),
    };
    let now = state.clock.now();
    let outbox = move |t: &Transfer| outbox_job(t, now);
    let mut record = match state
        .stores
        .conversations
        .transfer(&asked, &outbox, now)
        .await
    {
        Ok(record) => record,
        Err(StoreError::Conflict(message)) => return Err(TransferError::Conflict(message)),
        Err(e) => {
            tracing::error!(error = %e, tenant = tenant.as_str(), conversation_id, "transfer failed");
            return Err(TransferError::Unavailable(e));
        }
    };
    tracing::info!(
        tenant = tenant.as_str(),
        conversation_id,
        seq = record.seq,
        from_user = record.from_user.as_deref().unwrap_or(""),
        to_user,
        by = caller.sub.as_str(),
        "conversation transferred"
    );
    match publish(
        &state.ingest,
        &state.clock,
        &*state.stores.conversations,
        &record,
    )
    .await
    {
        Ok(event) => record.event_id = Some(event.id),
        Err(e) => tracing::warn!(
            error = %e,
            tenant = tenant.as_str(),
            conversation_id,
            seq = record.seq,
            "the transfer is stored but its event is not yet; the outbox job publishes it in {}s",
            OUTBOX_DELAY.as_secs()
        ),
    }
    Ok(record)
}

/// The outbox job of a transfer committed at `now` (public for the
/// crash-recovery test, which commits a transfer the way a node that died
/// before publishing left it).
pub fn outbox_job(transfer: &Transfer, now: DateTime<Utc>) -> NewJob {
    NewJob {
        queue: "default".into(),
        kind: OUTBOX_KIND.into(),
        payload: serde_json::to_value(transfer).expect("a transfer serializes"),
        priority: 0,
        run_at: now + chrono::Duration::from_std(OUTBOX_DELAY).expect("a short delay"),
        max_attempts: OUTBOX_ATTEMPTS,
        correlation_id: Some(transfer.event_key()),
        tenant_id: Some(transfer.tenant_id.clone()),
    }
}

/// Stores (once, by its key) and publishes a transfer's event, then
/// records its id with the transfer; the event.
async fn publish(
    ingest: &Ingest,
    clock: &Clock,
    store: &dyn ConversationStore,
    transfer: &Transfer,
) -> Result<Arc<Event>, IngestError> {
    let tenant = TenantId::checked(&transfer.tenant_id);
    let event = NewEvent {
        event_type: TRANSFERRED.into(),
        data: transfer.event_data(),
        tenant_id: Some(transfer.tenant_id.clone()),
        rooms: None,
        idempotency_key: Some(transfer.event_key()),
        timestamp: Some(transfer.at),
    }
    .validate_at(transfer.tenant_id.clone(), clock.now())
    .map_err(|e| IngestError::Store(format!("the transfer's event is invalid: {e}")))?;
    let request = AppendRequest {
        idempotency_key: None,
        key_scope: Scope::Only(tenant.clone()),
        fingerprint: None,
        events: vec![event],
    };
    let outcome = ingest.submit(request).await?;
    let event = outcome
        .events
        .into_iter()
        .next()
        .map(|a| a.event)
        .ok_or_else(|| IngestError::Store("intake answered without the event".into()))?;
    if let Err(e) = store
        .set_event_id(&tenant, &transfer.conversation_id, transfer.seq, event.id)
        .await
    {
        // The event is stored; only the link in the history is missing,
        // and the outbox job sets it again.
        tracing::warn!(error = %e, event_id = event.id, "could not record a transfer's event id");
    }
    Ok(event)
}

/// Kind [`OUTBOX_KIND`]: publishes a committed transfer's event, a no-op
/// when its caller already did (same key).
pub struct PublishTransfer {
    pub ingest: Ingest,
    pub clock: Clock,
    pub store: Arc<dyn ConversationStore>,
}

#[async_trait]
impl Handler for PublishTransfer {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let transfer: Transfer = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Fatal(format!("not a conversation transfer: {e}")))?;
        if job.tenant_id.as_deref() != Some(transfer.tenant_id.as_str()) {
            return Err(JobError::Fatal(format!(
                "the job is tenant {}'s but the transfer names tenant {}",
                job.tenant_id.as_deref().unwrap_or("(none)"),
                transfer.tenant_id
            )));
        }
        match publish(&self.ingest, &self.clock, &*self.store, &transfer).await {
            Ok(_) => Ok(()),
            Err(IngestError::KeyReused(reused)) => Err(JobError::Fatal(reused.to_string())),
            Err(e) => Err(JobError::Retry(format!("intake: {e}"))),
        }
    }
}
