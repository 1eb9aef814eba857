//! A customer's message (`value.messages[]`) as a `MessageReceived`,
//! after the `ConversationStarted` of its chat and day.

use serde_json::{json, Map, Value};

use super::super::batch::Batch;
use super::super::ids::{customer, key, party};
use super::super::node::Node;
use super::super::Unusable;
use super::{id_field, Number, SOURCE};

/// Message types that are notices about the customer rather than
/// something the customer wrote, with why they are skipped.
const NOTICES: [(&str, &str); 2] = [
    (
        "system",
        "a system notice (the customer changed number or user id), not a message they wrote",
    ),
    (
        "request_welcome",
        "a request for the welcome message (the customer opened the chat), not a message \
         they wrote",
    ),
];

/// Message fields copied as they are when present: what the message
/// answers or quotes (`context`), the ad or post it came from
/// (`referral`), and why WhatsApp could not deliver its content
/// (`errors`, on `unsupported` messages).
const KEPT: [&str; 3] = ["context", "referral", "errors"];

/// Adds the events of one message: `ConversationStarted` (once a day per
/// chat) and `MessageReceived` keyed `wa:msg:{wamid}`.
pub(super) fn translate(
    number: &Number,
    message: &Node,
    batch: &mut Batch,
) -> Result<(), Unusable> {
    message.object()?;
    let id = message.req("id")?.str()?;
    let at = message.req("timestamp")?.unix_time()?;
    let kind = message.opt_str("type")?.unwrap_or("unknown");
    // A user who hides their number behind a username is known by a
    // business-scoped user id only.
    let who = match message.opt_str("from")? {
        Some(from) => from,
        None => match message.opt_str("from_user_id")? {
            Some(user) => user,
            None => return Err(message.missing("from")),
        },
    };
    if let Some((_, why)) = NOTICES.iter().find(|(notice, _)| *notice == kind) {
        batch.skip(format!("{} is {why}", message.at()));
        return Ok(());
    }
    number.open_conversation(batch, who, at);
    let conversation = number.conversation_id(who);
    let mut data = number.base(&conversation);
    data.insert("from".into(), json!(party(who)));
    data.insert("message".into(), json!(summary(kind, message)));
    data.insert("message_id".into(), json!(id));
    data.insert("message_type".into(), json!(kind));
    data.insert(
        "customer".into(),
        customer(id_field(who), who, profile(number, who)),
    );
    if let Some(display) = &number.display {
        data.insert("to".into(), json!(party(display)));
    }
    if kind != "text" {
        if let Some(content) = message.get(kind).filter(|c| c.value.is_object()) {
            data.insert("content".into(), content.value.clone());
        }
    }
    for field in KEPT {
        if let Some(kept) = message.get(field) {
            data.insert(field.into(), kept.value.clone());
        }
    }
    batch.event(
        "MessageReceived",
        number.tenant,
        key(SOURCE, &["msg", id]),
        at,
        Value::Object(data),
    );
    Ok(())
}

/// The customer's profile from `contacts[]` (name, username), matched by
/// the id they wrote from.
fn profile(number: &Number, who: &str) -> Map<String, Value> {
    let mut extra = Map::new();
    let contact = number.contacts.iter().find(|c| {
        ["wa_id", "user_id"]
            .iter()
            .any(|f| c.value.get(*f).and_then(Value::as_str) == Some(who))
    });
    if let Some(profile) = contact.and_then(|c| c.get("profile")) {
        for field in ["name", "username"] {
            if let Some(value) = profile.value.get(field).filter(|v| v.is_string()) {
                extra.insert(field.into(), value.clone());
            }
        }
    }
    extra
}

/// What a dashboard shows for a message: its text, a caption or a title
/// for the types that have one, `[type]` for the others.
fn summary(kind: &str, message: &Node) -> String {
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(message.value, |v, field| v.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let found = match kind {
        "text" => text(&["text", "body"]),
        "image" | "video" | "audio" | "sticker" => text(&[kind, "caption"]),
        "document" => text(&["document", "caption"]).or_else(|| text(&["document", "filename"])),
        "button" => text(&["button", "text"]),
        "interactive" => text(&["interactive", "button_reply", "title"])
            .or_else(|| text(&["interactive", "list_reply", "title"])),
        "location" => text(&["location", "name"]).or_else(|| text(&["location", "address"])),
        "reaction" => Some(match text(&["reaction", "emoji"]) {
            Some(emoji) => format!("[reaction {emoji}]"),
            None => "[reaction removed]".into(),
        }),
        _ => None,
    };
    found.unwrap_or_else(|| format!("[{kind}]"))
}
