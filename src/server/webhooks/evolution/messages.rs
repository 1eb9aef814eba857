//! Evolution's message events as pytake events:
//!
//! - `messages.upsert` with `fromMe: false`: the customer wrote;
//!   `MessageReceived`, keyed `evo:msg:{conversation}:{id}`.
//! - `messages.upsert` with `fromMe: true` (sent from the phone or another
//!   linked device) and `send.message` (sent through Evolution's API;
//!   Evolution runs Baileys without its own echoes, so the two never
//!   describe one message): `MessageSent` with status `sent`.
//! - `messages.update` of the business's messages: `SERVER_ACK`,
//!   `DELIVERY_ACK`, `READ` and `PLAYED` as `MessageSent` `sent`,
//!   `delivered`, `read`, `read`; `ERROR` as `MessageFailed`.
//!
//! A status's key is `evo:status:{conversation}:{id}:{status}` and its
//! data is a function of that key alone, so the `sent` of a `send.message`
//! and of its `SERVER_ACK`, or the `read` of a `READ` and of a `PLAYED`,
//! are one event whichever arrives first.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::super::batch::Batch;
use super::super::ids::key;
use super::super::node::{quoted, shown, Node};
use super::super::Unusable;
use super::{Instance, SOURCE};

/// Message types that are not something a person wrote.
const NOT_MESSAGES: [&str; 3] = [
    "protocolMessage",
    "senderKeyDistributionMessage",
    "messageContextInfo",
];

/// Evolution's `messageType` (Baileys' message field) as the Cloud API's
/// type names, so dashboards see one vocabulary.
const TYPES: [(&str, &str); 20] = [
    ("conversation", "text"),
    ("extendedTextMessage", "text"),
    ("imageMessage", "image"),
    ("videoMessage", "video"),
    ("ptvMessage", "video"),
    ("audioMessage", "audio"),
    ("documentMessage", "document"),
    ("documentWithCaptionMessage", "document"),
    ("stickerMessage", "sticker"),
    ("locationMessage", "location"),
    ("liveLocationMessage", "location"),
    ("contactMessage", "contacts"),
    ("contactsArrayMessage", "contacts"),
    ("reactionMessage", "reaction"),
    ("buttonsResponseMessage", "button"),
    ("templateButtonReplyMessage", "button"),
    ("listResponseMessage", "interactive"),
    ("interactiveResponseMessage", "interactive"),
    ("pollCreationMessage", "poll"),
    ("pollCreationMessageV3", "poll"),
];

/// Fields of a media message worth an event's room: what it is, not the
/// media itself (Evolution may inline it as base64).
const MEDIA_FIELDS: [&str; 5] = ["mimetype", "caption", "fileName", "fileLength", "seconds"];

/// One `messages.upsert` item: `{key: {remoteJid, fromMe, id,
/// participant?, remoteJidAlt?}, pushName, status, message, messageType,
/// messageTimestamp, source}`.
pub(super) fn upsert(instance: &Instance, item: &Node, batch: &mut Batch) -> Result<(), Unusable> {
    let Some(found) = message(instance, item, batch)? else {
        return Ok(());
    };
    if found.from_me {
        outgoing(instance, &found, batch);
    } else {
        received(instance, item, &found, batch)?;
    }
    Ok(())
}

/// One `send.message` item: a message the business sent through
/// Evolution's API, in the shape of `messages.upsert`.
pub(super) fn send(instance: &Instance, item: &Node, batch: &mut Batch) -> Result<(), Unusable> {
    let Some(found) = message(instance, item, batch)? else {
        return Ok(());
    };
    outgoing(instance, &found, batch);
    Ok(())
}

/// One `messages.update` item: `{keyId, remoteJid, fromMe, participant,
/// status, messageId, instanceId}` (Evolution v2), or the older `{key,
/// update: {status}}`.
pub(super) fn update(instance: &Instance, item: &Node, batch: &mut Batch) -> Result<(), Unusable> {
    item.object()?;
    let key_node = item.get("key");
    let either = |flat: &str, nested: &str| {
        item.get(flat)
            .or_else(|| key_node.as_ref().and_then(|k| k.get(nested)))
    };
    let id = match either("keyId", "id") {
        Some(id) => id.str()?,
        None => return Err(item.missing("keyId")),
    };
    let raw_jid = match either("remoteJid", "remoteJid") {
        Some(jid) => jid.str()?,
        None => return Err(item.missing("remoteJid")),
    };
    let from_me = match either("fromMe", "fromMe") {
        Some(from_me) => boolean(&from_me)?,
        None => return Err(item.missing("fromMe")),
    };
    let status = match item
        .get("status")
        .or_else(|| item.get("update").and_then(|u| u.get("status")))
    {
        Some(status) => status,
        None => return Err(item.missing("status")),
    };
    if !from_me {
        batch.skip(format!(
            "{}: the status of a message the customer sent (fromMe false); pytake tracks the \
             delivery of the business's messages",
            item.at()
        ));
        return Ok(());
    }
    let reported = match status_name(status.value) {
        Some("SERVER_ACK") => "sent",
        Some("DELIVERY_ACK") => "delivered",
        Some("READ" | "PLAYED") => "read",
        Some("ERROR") => "failed",
        _ => {
            batch.skip(format!(
                "{} {} is not a delivery state pytake tracks (SERVER_ACK, DELIVERY_ACK, READ, \
                 PLAYED, ERROR)",
                status.at(),
                quoted(status.value)
            ));
            return Ok(());
        }
    };
    let at = instance.sent_at()?;
    let jid = chat_jid(raw_jid);
    if reported == "sent" {
        instance.open_conversation(batch, &jid, at);
    }
    status_event(instance, batch, &jid, id, reported, at);
    Ok(())
}

/// What `messages.upsert` and `send.message` items share.
struct Message<'a> {
    id: &'a str,
    jid: String,
    from_me: bool,
    at: DateTime<Utc>,
    /// `status: ERROR` on a message Evolution could not send.
    failed: bool,
}

/// Reads a message item; `None` when it is skipped (a status post, a
/// broadcast copy, a protocol message).
fn message<'a>(
    instance: &Instance,
    item: &Node<'a>,
    batch: &mut Batch,
) -> Result<Option<Message<'a>>, Unusable> {
    item.object()?;
    let key = item.req("key")?;
    key.object()?;
    let id = key.req("id")?.str()?;
    let raw_jid = key.req("remoteJid")?.str()?;
    let from_me = boolean(&key.req("fromMe")?)?;
    let at = match item.get("messageTimestamp") {
        Some(time) => time.unix_time()?,
        None => instance.sent_at()?,
    };
    let jid = chat_jid(raw_jid);
    if jid.ends_with("@broadcast") || jid.ends_with("@newsletter") {
        batch.skip(format!(
            "{}: `{}` is a status post, broadcast list or channel, not a chat",
            item.at(),
            shown(&jid)
        ));
        return Ok(None);
    }
    let kind = item.opt_str("messageType")?.unwrap_or("unknown");
    if NOT_MESSAGES.contains(&kind) {
        batch.skip(format!(
            "{}: a `{kind}` is WhatsApp's bookkeeping, not a message someone wrote",
            item.at()
        ));
        return Ok(None);
    }
    let failed = item.get("status").and_then(|s| status_name(s.value)) == Some("ERROR");
    Ok(Some(Message {
        id,
        jid,
        from_me,
        at,
        failed,
    }))
}

/// The business's own message: it opens the chat for the day and is
/// `sent`, or `failed` when Evolution says so.
fn outgoing(instance: &Instance, message: &Message, batch: &mut Batch) {
    let Message { id, jid, at, .. } = message;
    if message.failed {
        status_event(instance, batch, jid, id, "failed", *at);
        return;
    }
    instance.open_conversation(batch, jid, *at);
    status_event(instance, batch, jid, id, "sent", *at);
}

/// `MessageSent` with `status`, or `MessageFailed` for `failed`; the
/// data depends on nothing but the key's parts (see the module's doc).
fn status_event(
    instance: &Instance,
    batch: &mut Batch,
    jid: &str,
    id: &str,
    status: &str,
    at: DateTime<Utc>,
) {
    let conversation = instance.conversation_id(jid);
    let mut data = instance.base(&conversation, jid);
    data.insert("message_id".into(), json!(id));
    data.insert("to".into(), json!(Instance::party(jid)));
    let key = key(SOURCE, &["status", &conversation, id, status]);
    if status == "failed" {
        data.insert(
            "error".into(),
            json!({
                "code": "ERROR",
                "title": "WhatsApp did not take the message (Evolution status ERROR)",
            }),
        );
        batch.event(
            "MessageFailed",
            instance.tenant,
            key,
            at,
            Value::Object(data),
        );
    } else {
        data.insert("status".into(), json!(status));
        batch.event("MessageSent", instance.tenant, key, at, Value::Object(data));
    }
}

/// The customer's message: it opens the chat for the day and is
/// `MessageReceived`.
fn received(
    instance: &Instance,
    item: &Node,
    message: &Message,
    batch: &mut Batch,
) -> Result<(), Unusable> {
    instance.open_conversation(batch, &message.jid, message.at);
    let conversation = instance.conversation_id(&message.jid);
    let key_node = item.req("key")?;
    let mut data = instance.base(&conversation, &message.jid);
    // In a group the sender is a participant, not the chat.
    let participant = key_node.opt_str("participant")?.map(chat_jid);
    let sender = participant.as_deref().unwrap_or(&message.jid);
    data.insert("from".into(), json!(Instance::party(sender)));
    let kind = item.opt_str("messageType")?.unwrap_or("unknown");
    let content = item.get("message");
    data.insert("message".into(), json!(summary(kind, content.as_ref())));
    data.insert("message_id".into(), json!(message.id));
    let plain = TYPES.iter().find(|(evolution, _)| *evolution == kind);
    data.insert(
        "message_type".into(),
        json!(plain.map_or(kind, |(_, t)| *t)),
    );
    data.insert("evolution_message_type".into(), json!(kind));
    let mut extra = Map::new();
    if let Some(name) = item.opt_str("pushName")? {
        extra.insert("name".into(), json!(name));
    }
    data.insert("customer".into(), Instance::customer(sender, extra));
    if let Some(participant) = &participant {
        data.insert("participant".into(), json!(participant));
    }
    if let Some(alt) = key_node.opt_str("remoteJidAlt")? {
        data.insert("remote_jid_alt".into(), json!(alt));
    }
    if let Some(device) = item.opt_str("source")? {
        data.insert("device".into(), json!(device));
    }
    if let Some(media) = content.as_ref().and_then(|c| media(kind, c)) {
        data.insert("content".into(), media);
    }
    let key = key(SOURCE, &["msg", &conversation, message.id]);
    batch.event(
        "MessageReceived",
        instance.tenant,
        key,
        message.at,
        Value::Object(data),
    );
    Ok(())
}

/// What a dashboard shows for a message: its text, caption or chosen
/// option, a transcript when Evolution made one, `[type]` otherwise.
fn summary(kind: &str, content: Option<&Node>) -> String {
    let text = |path: &[&str]| {
        let value = content?.value;
        path.iter()
            .try_fold(value, |v, field| v.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let found = text(&["conversation"])
        .or_else(|| text(&["extendedTextMessage", "text"]))
        .or_else(|| text(&[kind, "caption"]))
        .or_else(|| text(&["speechToText"]))
        .or_else(|| text(&["buttonsResponseMessage", "selectedDisplayText"]))
        .or_else(|| text(&["templateButtonReplyMessage", "selectedDisplayText"]))
        .or_else(|| text(&["listResponseMessage", "title"]))
        .or_else(|| text(&["locationMessage", "name"]))
        .or_else(|| text(&["documentMessage", "fileName"]));
    if let Some(found) = found {
        return found;
    }
    if kind == "reactionMessage" {
        return match text(&["reactionMessage", "text"]) {
            Some(emoji) => format!("[reaction {emoji}]"),
            None => "[reaction removed]".into(),
        };
    }
    let plain = TYPES.iter().find(|(evolution, _)| *evolution == kind);
    format!("[{}]", plain.map_or(kind, |(_, t)| *t))
}

/// A media message's description (type, caption, name, size, length)
/// and, when Evolution stored it, its `mediaUrl`.
fn media(kind: &str, content: &Node) -> Option<Value> {
    let fields = content.value.get(kind)?.as_object()?;
    let mut media = Map::new();
    for field in MEDIA_FIELDS {
        if let Some(value) = fields.get(field).filter(|v| v.is_string() || v.is_number()) {
            media.insert(field.into(), value.clone());
        }
    }
    if let Some(url) = content.value.get("mediaUrl").filter(|u| u.is_string()) {
        media.insert("mediaUrl".into(), url.clone());
    }
    (!media.is_empty()).then_some(Value::Object(media))
}

/// A message status by name; Baileys' numbers (0 `ERROR` to 5 `PLAYED`,
/// Evolution's own table) are read too.
fn status_name(value: &Value) -> Option<&str> {
    const NAMES: [&str; 6] = [
        "ERROR",
        "PENDING",
        "SERVER_ACK",
        "DELIVERY_ACK",
        "READ",
        "PLAYED",
    ];
    match value {
        Value::String(name) => Some(name),
        Value::Number(n) => n
            .as_u64()
            .and_then(|i| NAMES.get(usize::try_from(i).ok()?).copied()),
        _ => None,
    }
}

/// `true` or `false`, refused otherwise.
fn boolean(node: &Node) -> Result<bool, Unusable> {
    node.value
        .as_bool()
        .ok_or_else(|| node.unusable(format!("is {}, expected true or false", quoted(node.value))))
}

/// A chat's JID without the device a message went through
/// (`5511988887777:12@s.whatsapp.net` is the chat `5511988887777@s.whatsapp.net`).
pub(super) fn chat_jid(raw: &str) -> String {
    if let Some((user, server)) = raw.split_once('@') {
        if let Some((person, device)) = user.split_once(':') {
            if !device.is_empty() && device.bytes().all(|b| b.is_ascii_digit()) {
                return format!("{person}@{server}");
            }
        }
    }
    raw.to_string()
}
