//! Conversation assignments and their transfer history (see
//! [`crate::server::conversations`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::NewJob;
use super::StoreError;
use crate::protocol::conversations::{Conversation, Transfer};
use crate::protocol::{EventId, TenantId};

/// A transfer asked for, checked by the caller (ids that key rooms, a
/// note within its limit, the caller's right to the tenant).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTransfer {
    pub tenant_id: TenantId,
    pub conversation_id: String,
    pub to_user: String,
    pub note: Option<String>,
    /// The caller's token subject.
    pub by: String,
}

/// Builds the job that publishes a transfer's event should the caller not
/// get to it (the outbox), from the transfer as committed.
pub type Outbox = dyn Fn(&Transfer) -> NewJob + Send + Sync;

/// The conversation store: per tenant, each conversation's current
/// assignee and every transfer that led there.
///
/// # Contract (every backend; the conformance suite checks each point)
///
/// - **One order.** Transfers of one conversation are serialized: on
///   SQLite by the single writer, on PostgreSQL by a row lock on the
///   conversation (`SELECT ... FOR UPDATE`) that every node's transfer
///   takes before reading the assignee. Two transfers racing, on one
///   node or two, are committed one after the other; each sees the
///   other's result, so `from_user` of the later is the `to_user` of the
///   earlier, and `seq` numbers the history 1, 2, 3... with no gap or
///   repeat.
/// - **Conflict.** A transfer to the current assignee writes nothing and
///   is [`StoreError::Conflict`] (409): of two racing transfers to the
///   same user, one wins and the other conflicts.
/// - **Atomic with its outbox.** The assignment, the history row and the
///   job `outbox` builds are one transaction. The `ConversationTransferred`
///   event is stored afterwards by intake (the event store's single
///   writer and its id order cannot join this transaction), under
///   [`Transfer::event_key`]: the caller publishes at once, and the job,
///   due later, publishes again if the caller died or intake refused, the
///   key making the second a no-op. So a committed transfer's event is
///   stored exactly once, possibly after a delay, never lost.
/// - **Tenants are apart.** Conversation ids are per tenant; another
///   tenant's conversation of the same id is another conversation.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Assigns the conversation to `transfer.to_user` (creating it at the
    /// first transfer), records the move and enqueues `outbox(&record)`,
    /// all in one transaction; the record (its `event_id` none).
    async fn transfer(
        &self,
        transfer: &NewTransfer,
        outbox: &Outbox,
        now: DateTime<Utc>,
    ) -> Result<Transfer, StoreError>;

    /// Records the id of a transfer's stored event. Idempotent: a second
    /// call (the outbox job after the caller) keeps the first id, which is
    /// the same event by its key.
    async fn set_event_id(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        seq: i64,
        event_id: EventId,
    ) -> Result<(), StoreError>;

    /// The conversation with its newest `limit` transfers before seq
    /// `before` (all, with `None`), oldest first, so a caller pages back
    /// with `before` = the first seq it got; [`StoreError::NotFound`] when
    /// it was never transferred.
    async fn conversation(
        &self,
        tenant: &TenantId,
        conversation_id: &str,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Conversation, StoreError>;
}

/// The columns [`TransferRow`] reads.
pub(super) const TRANSFER_COLUMNS: &str =
    "tenant_id, conversation_id, seq, from_user, to_user, note, by_user, at, event_id";

/// A `conversation_transfers` row as every backend reads it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TransferRow {
    pub tenant_id: String,
    pub conversation_id: String,
    pub seq: i64,
    pub from_user: Option<String>,
    pub to_user: String,
    pub note: Option<String>,
    pub by_user: String,
    pub at: i64,
    pub event_id: Option<i64>,
}

/// Unix milliseconds as a time, or the row named as corrupt.
pub(super) fn time(ms: i64, what: &'static str, id: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::<Utc>::from_timestamp_millis(ms).ok_or_else(|| StoreError::CorruptRow {
        what,
        id: id.to_string(),
        message: format!("time {ms} is out of range"),
    })
}

impl TransferRow {
    pub(super) fn into_transfer(self) -> Result<Transfer, StoreError> {
        let at = time(
            self.at,
            "conversation transfer",
            &format!("{}:{}", self.conversation_id, self.seq),
        )?;
        Ok(Transfer {
            conversation_id: self.conversation_id,
            tenant_id: self.tenant_id,
            seq: self.seq,
            from_user: self.from_user,
            to_user: self.to_user,
            note: self.note,
            by: self.by_user,
            at,
            event_id: self.event_id,
        })
    }
}

/// What a transfer writes once the backend has locked the conversation
/// and read its assignee: the record, or the conflict.
pub(super) fn next_transfer(
    transfer: &NewTransfer,
    current: Option<(String, i64)>,
    now: DateTime<Utc>,
) -> Result<Transfer, StoreError> {
    let (from_user, seq) = match current {
        Some((assignee, _)) if assignee == transfer.to_user => {
            return Err(StoreError::Conflict(format!(
                "conversation `{}` is already assigned to `{}`",
                transfer.conversation_id, transfer.to_user
            )))
        }
        Some((assignee, count)) => (Some(assignee), count + 1),
        None => (None, 1),
    };
    Ok(Transfer {
        conversation_id: transfer.conversation_id.clone(),
        tenant_id: transfer.tenant_id.as_str().to_string(),
        seq,
        from_user,
        to_user: transfer.to_user.clone(),
        note: transfer.note.clone(),
        by: transfer.by.clone(),
        // Stored in milliseconds: the record answers as it reads back.
        at: time(now.timestamp_millis(), "conversation transfer", "new")?,
        event_id: None,
    })
}
