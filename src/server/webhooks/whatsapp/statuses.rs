//! The status of a message the business sent (`value.statuses[]`):
//! `sent`, `delivered` and `read` (`played` for a voice message counts as
//! `read`) as `MessageSent`, `failed` as `MessageFailed` with WhatsApp's
//! error.
//!
//! Keys are `wa:status:{wamid}:{status}`: one event per message and
//! state, whichever webhook delivers it and however often. `read` and
//! `played` share a key, so the data of a `read` is only what both carry
//! (Meta attaches `pricing` and `conversation` to `sent` and to one of
//! `delivered` or `read`; the `sent` copy is the one kept).

use chrono::SecondsFormat;
use serde_json::{json, Map, Value};

use super::super::batch::Batch;
use super::super::ids::{key, party};
use super::super::node::{shown, Node};
use super::super::Unusable;
use super::{Number, SOURCE};

/// Adds the events of one status.
pub(super) fn translate(number: &Number, status: &Node, batch: &mut Batch) -> Result<(), Unusable> {
    status.object()?;
    let id = status.req("id")?.str()?;
    let state = status.req("status")?.str()?;
    let at = status.req("timestamp")?.unix_time()?;
    // A message sent to a business-scoped user id has no phone number.
    let who = match status.opt_str("recipient_id")? {
        Some(recipient) => recipient,
        None => match status.opt_str("recipient_user_id")? {
            Some(user) => user,
            None => return Err(status.missing("recipient_id")),
        },
    };
    let reported = match state {
        "sent" | "delivered" | "failed" => state,
        "read" | "played" => "read",
        other => {
            batch.skip(format!(
                "{}.status `{}` is not a delivery state pytake tracks (sent, delivered, read, \
                 played, failed)",
                status.at(),
                shown(other)
            ));
            return Ok(());
        }
    };
    // The business's message opens the chat for the day, like the
    // customer's; a status carrying Meta's conversation window does too
    // (a `delivered` whose `sent` never came).
    if reported != "failed" && (reported == "sent" || status.get("conversation").is_some()) {
        number.open_conversation(batch, who, at);
    }
    let conversation = number.conversation_id(who);
    let mut data = number.base(&conversation);
    data.insert("message_id".into(), json!(id));
    data.insert("to".into(), json!(party(who)));
    data.insert("recipient_id".into(), json!(who));
    let mut parts = vec!["status", id];
    // In a group, each participant has its own statuses.
    if let Some(participant) = status.opt_str("recipient_participant_id")? {
        data.insert("recipient_participant_id".into(), json!(participant));
        parts.push(participant);
    }
    if let Some(callback) = status.opt_str("biz_opaque_callback_data")? {
        data.insert("biz_opaque_callback_data".into(), json!(callback));
    }
    parts.push(reported);
    let key = key(SOURCE, &parts);
    if reported == "failed" {
        failure(status, &mut data)?;
        batch.event("MessageFailed", number.tenant, key, at, Value::Object(data));
        return Ok(());
    }
    data.insert("status".into(), json!(reported));
    if reported != "read" {
        billing(status, &mut data);
    }
    batch.event("MessageSent", number.tenant, key, at, Value::Object(data));
    Ok(())
}

/// `error`: the first of `errors[]` as `{code, title, message, details,
/// href}`, keeping WhatsApp's numeric code (131047: the 24-hour window
/// has closed); all of them under `errors` when there are several.
fn failure(status: &Node, data: &mut Map<String, Value>) -> Result<(), Unusable> {
    let errors = match status.get("errors") {
        Some(errors) => errors.items()?,
        None => Vec::new(),
    };
    let error = match errors.first() {
        Some(first) => {
            let mut error = Map::new();
            for field in ["code", "title", "message", "href"] {
                if let Some(value) = first.get(field) {
                    error.insert(field.into(), value.value.clone());
                }
            }
            let details = first.get("error_data").and_then(|d| d.get("details"));
            if let Some(details) = details {
                error.insert("details".into(), details.value.clone());
            }
            if error.is_empty() {
                error.insert("title".into(), json!("WhatsApp gave an empty error"));
            }
            Value::Object(error)
        }
        None => json!({"title": "WhatsApp reported the message failed without saying why"}),
    };
    data.insert("error".into(), error);
    if errors.len() > 1 {
        let all = errors.iter().map(|e| e.value.clone()).collect();
        data.insert("errors".into(), Value::Array(all));
    }
    Ok(())
}

/// What Meta bills: `pricing` as it is, and the conversation window
/// (`conversation.id`, `origin.type`, `expiration_timestamp`) as
/// `whatsapp_conversation_id`, `conversation_origin` and
/// `conversation_expires_at`. Meta's conversation id is kept here, not as
/// the `conversation_id`: it changes with every window, the chat does not.
fn billing(status: &Node, data: &mut Map<String, Value>) {
    if let Some(pricing) = status.get("pricing").filter(|p| p.value.is_object()) {
        data.insert("pricing".into(), pricing.value.clone());
    }
    let Some(window) = status.get("conversation") else {
        return;
    };
    if let Some(id) = window.get("id").and_then(|i| i.id().ok()) {
        data.insert("whatsapp_conversation_id".into(), json!(id));
    }
    let origin = window.get("origin").and_then(|o| o.get("type"));
    if let Some(origin) = origin.filter(|o| o.value.is_string()) {
        data.insert("conversation_origin".into(), origin.value.clone());
    }
    let expires = window
        .get("expiration_timestamp")
        .and_then(|e| e.unix_time().ok());
    if let Some(expires) = expires {
        data.insert(
            "conversation_expires_at".into(),
            json!(expires.to_rfc3339_opts(SecondsFormat::Secs, true)),
        );
    }
}
