//! Conversations: who a conversation is assigned to and how it moved
//! between agents (seed 002's transfer sequence). The wire shapes of
//! `POST /api/v1/conversations/{id}/transfer`, `GET
//! /api/v1/conversations/{id}` and the `ConversationTransferred` event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::events::{rfc3339_millis, EventId, FieldError};
use super::rooms::keyed;

/// The event type a transfer is stored and published as.
pub const TRANSFERRED: &str = "ConversationTransferred";

/// Longest transfer note, in characters: a hand-over message between
/// agents, not a transcript; the event carries it to every subscriber.
pub const MAX_NOTE_CHARS: usize = 1000;

/// Most transfers `GET /api/v1/conversations/{id}` lists: the newest ones.
pub const MAX_HISTORY: u32 = 1000;

/// `POST /api/v1/conversations/{id}/transfer` body. Unknown fields are
/// refused: a misspelt `note` would silently drop the hand-over message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    #[serde(default)]
    pub to_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The conversation's tenant, for admin tokens (tenant tokens act on
    /// their own tenant only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

/// One move of a conversation from one agent to another, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub conversation_id: String,
    pub tenant_id: String,
    /// 1 for the conversation's first transfer, then 2, 3...: the order
    /// the store committed them in.
    pub seq: i64,
    /// The assignee before (`None`: the conversation was unassigned).
    pub from_user: Option<String>,
    pub to_user: String,
    pub note: Option<String>,
    /// The caller's token subject.
    pub by: String,
    #[serde(serialize_with = "rfc3339_millis")]
    pub at: DateTime<Utc>,
    /// The `ConversationTransferred` event, once stored.
    pub event_id: Option<EventId>,
}

impl Transfer {
    /// The `ConversationTransferred` event's `data`.
    pub fn event_data(&self) -> Value {
        json!({
            "conversation_id": self.conversation_id,
            "from_user": self.from_user,
            "to_user": self.to_user,
            "note": self.note,
            "by": self.by,
            "seq": self.seq,
        })
    }

    /// The event's idempotency key (scoped by tenant): one per transfer,
    /// so publishing it again stores nothing new.
    pub fn event_key(&self) -> String {
        format!(
            "conversation-transfer:{}:{}",
            self.conversation_id, self.seq
        )
    }
}

/// `GET /api/v1/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    pub conversation_id: String,
    pub tenant_id: String,
    pub assignee: Option<String>,
    #[serde(serialize_with = "optional_millis")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// Oldest first: the newest `limit` ([`MAX_HISTORY`] at most) before
    /// the `before` asked for.
    pub transfers: Vec<Transfer>,
}

fn optional_millis<S: serde::Serializer>(
    t: &Option<DateTime<Utc>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339_millis(t, s),
        None => s.serialize_none(),
    }
}

/// Checks an id that keys a room (`conversation:{id}`, `user:{id}`);
/// the error names `field`.
pub fn check_key(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(field, "required, and not empty"));
    }
    let prefix = if field == "to_user" {
        "user"
    } else {
        "conversation"
    };
    keyed(prefix, &Value::String(value.to_string()))
        .map(drop)
        .map_err(|e| FieldError::new(field, e))
}

/// Checks a transfer's target and note; the error names the field.
pub fn check_transfer(to_user: &str, note: Option<&str>) -> Result<(), FieldError> {
    check_key("to_user", to_user)?;
    if let Some(note) = note {
        let chars = note.chars().count();
        if chars > MAX_NOTE_CHARS {
            return Err(FieldError::new(
                "note",
                format!("{chars} characters is over the limit of {MAX_NOTE_CHARS}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_checked_naming_the_field() {
        assert!(check_transfer("bob", Some("VIP")).is_ok());
        assert_eq!(check_transfer("", None).unwrap_err().field, "to_user");
        assert_eq!(check_transfer("a b", None).unwrap_err().field, "to_user");
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        let e = check_transfer("bob", Some(&long)).unwrap_err();
        assert_eq!(e.field, "note");
        assert!(e.problem.contains("1001 characters"), "{}", e.problem);
        assert_eq!(
            check_key("conversation_id", "x'y").unwrap_err().field,
            "conversation_id"
        );
    }
}
