//! The Evolution API v2 (EvolutionAPI/evolution-api, WhatsApp Web through
//! Baileys): its API key, and its webhooks as pytake events.
//!
//! Every webhook is `{event, instance, data, date_time, sender,
//! server_url, apikey}` with one event; `event` is `messages.upsert`, or
//! `MESSAGES_UPSERT` in the form the set-up API and `.env` use, or
//! `messages-upsert` in the URL suffix of "webhook by events".
//! `messages.rs` turns message events into pytake events; the others are
//! skipped with the reason in [`SKIPPED`].

mod messages;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::batch::Batch;
use super::ids::{conversation_id, conversation_key, party, phone};
use super::node::{self, quoted, shown, Node};
use super::{same_secret, tenant, Translation, Unusable};

/// The idempotency keys' prefix.
const SOURCE: &str = "evo";

/// The config section operators fix mappings in.
const SECTION: &str = "webhooks.evolution";

/// Events deliberately not turned into pytake events (names normalized by
/// [`normalize`]), and why; the worker logs the reason.
const SKIPPED: [(&str, &str); 29] = [
    ("application.startup", "the Evolution server started"),
    ("qrcode.updated", "a new QR code to pair the instance"),
    (
        "messages.set",
        "a history sync of old messages, not new traffic",
    ),
    (
        "messaging.history.set",
        "a history sync of old messages, not new traffic",
    ),
    ("messages.delete", "a message was deleted; it stays counted"),
    ("messages.edited", "an edit of a message already counted"),
    (
        "send.message.update",
        "an edit of a sent message already counted",
    ),
    ("contacts.set", "a contact book change"),
    ("contacts.upsert", "a contact book change"),
    ("contacts.update", "a contact book change"),
    (
        "presence.update",
        "a contact typing or coming online; pytake's presence is its own operators'",
    ),
    (
        "chats.set",
        "a chat list change (Evolution also sends these for renames, read marks and \
         history syncs, so they cannot tell a new conversation)",
    ),
    (
        "chats.upsert",
        "a chat list change (also sent for renames, read marks and syncs)",
    ),
    (
        "chats.update",
        "a chat list change (also sent for renames, read marks and syncs)",
    ),
    ("chats.delete", "a chat was deleted"),
    ("groups.upsert", "group metadata"),
    ("groups.update", "group metadata"),
    ("group.participants.update", "group membership"),
    (
        "call",
        "a WhatsApp voice or video call; pytake's CallEvent is a campaign call's outcome",
    ),
    ("labels.edit", "a label change"),
    ("labels.association", "a label change"),
    ("typebot.start", "a chatbot session state"),
    ("typebot.change.status", "a chatbot session state"),
    ("instance.create", "the instance's lifecycle"),
    ("instance.delete", "the instance's lifecycle"),
    ("remove.instance", "the instance's lifecycle"),
    ("logout.instance", "the instance's lifecycle"),
    ("status.instance", "the instance's lifecycle"),
    ("creds.update", "the instance's credentials were renewed"),
];

/// Why a webhook does not carry the configured API key (the endpoint
/// answers 401 and stores nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error(
        "[webhooks.evolution] api_key is not set, so no webhook can be checked: set it and \
         send it from Evolution as an `apikey` webhook header"
    )]
    NotConfigured,
    #[error(
        "no API key: neither an `apikey` header nor an `apikey` field in the body; add \
         `\"headers\": {{\"apikey\": \"...\"}}` to the instance's webhook in Evolution (the \
         body's field is only sent with AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true)"
    )]
    Missing,
    #[error(
        "the `apikey` header or body field is not [webhooks.evolution] api_key: the webhook \
         comes from another Evolution server or instance, or one of the two keys was changed"
    )]
    Wrong,
}

/// Checks that the `apikey` header or the body's top-level `apikey` field
/// (Evolution's instance token) is the configured key, comparing in
/// constant time. The body is only parsed when the header does not match.
pub fn check_api_key(
    configured: &str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), ApiKeyError> {
    if configured.is_empty() {
        return Err(ApiKeyError::NotConfigured);
    }
    let header = header.filter(|h| !h.is_empty());
    if header.is_some_and(|h| same_secret(h, configured)) {
        return Ok(());
    }
    let field = body_api_key(body);
    if field.as_deref().is_some_and(|f| same_secret(f, configured)) {
        return Ok(());
    }
    if header.is_none() && field.is_none() {
        return Err(ApiKeyError::Missing);
    }
    Err(ApiKeyError::Wrong)
}

/// The body's top-level `apikey` string, if the body is a JSON object
/// that has one (Evolution writes `null` when it does not expose it).
fn body_api_key(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        apikey: Option<Value>,
    }
    let envelope: Envelope = serde_json::from_slice(body).ok()?;
    match envelope.apikey? {
        Value::String(key) if !key.is_empty() => Some(key),
        _ => None,
    }
}

/// Turns one Evolution webhook into events; `tenants` maps the body's
/// `instance` to its tenant.
pub fn translate(body: &[u8], tenants: &BTreeMap<String, String>) -> Result<Translation, Unusable> {
    let value = node::parse(body)?;
    let root = Node::root(&value);
    root.object()?;
    let event = root.req("event")?.str()?;
    let instance_node = root.req("instance")?;
    let name = instance_node.str()?;
    let instance = Instance {
        tenant: tenant(tenants, &instance_node, name, SECTION)?,
        name,
        date_time: root.get("date_time"),
    };
    let mut batch = Batch::default();
    match normalize(event).as_str() {
        "messages.upsert" => {
            for item in root.req("data")?.one_or_many()? {
                messages::upsert(&instance, &item, &mut batch)?;
            }
        }
        "send.message" => {
            for item in root.req("data")?.one_or_many()? {
                messages::send(&instance, &item, &mut batch)?;
            }
        }
        "messages.update" => {
            for item in root.req("data")?.one_or_many()? {
                messages::update(&instance, &item, &mut batch)?;
            }
        }
        "connection.update" => {
            let state = root
                .get("data")
                .and_then(|d| d.get("state"))
                .map_or("unknown".into(), |s| quoted(s.value));
            batch.skip(format!(
                "connection.update: instance `{}` is {state}: the instance's link to \
                 WhatsApp, not a conversation event",
                shown(name)
            ));
        }
        normalized => match SKIPPED.iter().find(|(skipped, _)| *skipped == normalized) {
            Some((_, why)) => batch.skip(format!("{}: {why}", shown(event))),
            None => batch.skip(format!(
                "event `{}` is not one pytake turns into events",
                shown(event)
            )),
        },
    }
    Ok(batch.finish())
}

/// `messages.upsert`, `MESSAGES_UPSERT` and `messages-upsert` alike.
fn normalize(event: &str) -> String {
    event
        .chars()
        .map(|c| match c {
            '_' | '-' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The Evolution instance a webhook comes from, and its tenant.
struct Instance<'a> {
    tenant: &'a str,
    name: &'a str,
    /// The envelope's `date_time`: when Evolution sent the webhook.
    date_time: Option<Node<'a>>,
}

impl Instance<'_> {
    /// The conversation of this instance's chat `jid`:
    /// `evo-{instance}_{jid}`. Chat JIDs never hold `_`, so the last one
    /// ends the instance's name; a JID that does is hashed.
    fn conversation_id(&self, jid: &str) -> String {
        let plain = (!jid.contains('_')).then(|| format!("evo-{}_{jid}", self.name));
        conversation_id(plain, "evoh", &[self.name, jid])
    }

    /// Opens the chat `jid` for the UTC day of `at`, like the Cloud API's
    /// (see `whatsapp::Number::open_conversation`): data from the key's
    /// parts only, so any message of the day may be the one stored.
    fn open_conversation(&self, batch: &mut Batch, jid: &str, at: DateTime<Utc>) {
        let conversation = self.conversation_id(jid);
        let data = json!({
            "conversation_id": conversation,
            "customer": Self::customer(jid, Map::new()),
            "channel": "evolution",
            "instance": self.name,
        });
        let key = conversation_key(SOURCE, &conversation, at);
        batch.event("ConversationStarted", self.tenant, key, at, data);
    }

    /// The fields every event of this chat carries.
    fn base(&self, conversation: &str, jid: &str) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("conversation_id".into(), json!(conversation));
        data.insert("channel".into(), json!("evolution"));
        data.insert("instance".into(), json!(self.name));
        data.insert("remote_jid".into(), json!(jid));
        data
    }

    /// When Evolution sent the webhook, for events whose data has no time
    /// of its own (`messages.update`). Evolution writes its local time
    /// with a `Z`, so this is exact only on an Evolution server running
    /// in UTC (its Docker image's default).
    fn sent_at(&self) -> Result<DateTime<Utc>, Unusable> {
        match &self.date_time {
            Some(date_time) => date_time.rfc3339(),
            None => Err(Unusable(
                "date_time is missing, and the event has no time of its own".into(),
            )),
        }
    }

    /// `to` or `from`: the phone number of a chat with one, else its JID.
    fn party(jid: &str) -> String {
        party(number(jid).unwrap_or(jid))
    }

    /// The `customer` object: the phone number when the JID has one, the
    /// JID, and `extra` fields.
    fn customer(jid: &str, extra: Map<String, Value>) -> Value {
        let mut customer = Map::new();
        if let Some(phone) = number(jid).and_then(phone) {
            customer.insert("phone".into(), json!(phone));
        }
        customer.insert("jid".into(), json!(jid));
        customer.extend(extra);
        Value::Object(customer)
    }
}

/// The phone number of a person's JID (`5511988887777@s.whatsapp.net`);
/// groups (`@g.us`) and LIDs (`@lid`, WhatsApp's hidden-number ids) have
/// none.
fn number(jid: &str) -> Option<&str> {
    let (user, server) = jid.split_once('@')?;
    let person = matches!(server, "s.whatsapp.net" | "c.us");
    (person && !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit())).then_some(user)
}

#[cfg(test)]
mod tests;
