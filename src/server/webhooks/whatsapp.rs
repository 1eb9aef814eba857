//! The WhatsApp Cloud API (Meta): the webhook's signature, the handshake
//! that subscribes a callback URL, and its notifications as pytake events.
//!
//! A notification is `{object: "whatsapp_business_account", entry: [{id,
//! changes: [{field: "messages", value: {metadata: {phone_number_id},
//! contacts, messages, statuses, errors}}]}]}`; one body may batch many
//! entries, changes, messages and statuses. `messages.rs` and
//! `statuses.rs` turn each item into events.

mod messages;
mod statuses;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::batch::Batch;
use super::ids::{conversation_id, conversation_key, customer, phone};
use super::node::{self, quoted, shown, Node};
use super::{same_secret, tenant, Translation, Unusable};

/// The idempotency keys' prefix.
const SOURCE: &str = "wa";

/// The config section operators fix mappings in.
const SECTION: &str = "webhooks.whatsapp";

/// Longest `hub.challenge` echoed back. Meta's is a short number; the
/// endpoint sends it back as the body, so it is bounded like any input.
const MAX_CHALLENGE: usize = 256;

/// Why a POST's `X-Hub-Signature-256` does not prove it comes from Meta
/// (the endpoint answers 401 and stores nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "[webhooks.whatsapp] app_secret is not set, so no webhook can be verified: set it \
         to the App Secret of the Meta app (App settings > Basic)"
    )]
    NotConfigured,
    #[error(
        "no X-Hub-Signature-256 header: Meta signs every webhook it sends, so this request \
         did not come from Meta (or a proxy dropped the header)"
    )]
    Missing,
    #[error("X-Hub-Signature-256 is not `sha256=` followed by 64 hex digits")]
    Malformed,
    #[error(
        "X-Hub-Signature-256 does not match the body: [webhooks.whatsapp] app_secret is not \
         the App Secret of the Meta app that sent it, or something on the way changed the body"
    )]
    Mismatch,
}

/// The `X-Hub-Signature-256` value Meta sends with `body`: what the demo
/// and the tests sign with, and what [`verify_signature`] checks.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!(
        "sha256={}",
        crate::protocol::events::hex(&mac.finalize().into_bytes())
    )
}

/// Checks `X-Hub-Signature-256: sha256=<hex>`, Meta's HMAC-SHA256 of the
/// raw body keyed with the app secret. The comparison is constant-time,
/// so response times tell a forger nothing about the right tag.
pub fn verify_signature(
    app_secret: &str,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), SignatureError> {
    if app_secret.is_empty() {
        return Err(SignatureError::NotConfigured);
    }
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let digits = header
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let tag = decode_hex(digits).ok_or(SignatureError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&tag).map_err(|_| SignatureError::Mismatch)
}

/// The 32 bytes of a SHA-256 tag written as 64 hex digits.
fn decode_hex(digits: &str) -> Option<[u8; 32]> {
    let bytes = digits.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut tag = [0u8; 32];
    for (out, pair) in tag.iter_mut().zip(bytes.chunks_exact(2)) {
        let high = (pair[0] as char).to_digit(16)?;
        let low = (pair[1] as char).to_digit(16)?;
        *out = (high * 16 + low) as u8;
    }
    Some(tag)
}

/// Why the subscription handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The endpoint answers 403: whoever asks does not know the token.
    #[error(
        "hub.verify_token is missing or is not [webhooks.whatsapp] verify_token (which must \
         be set): give Meta the same Verify token as the config"
    )]
    Forbidden,
    /// The endpoint answers 400: this is not a subscription request.
    #[error("{0}")]
    BadRequest(String),
}

/// Answers Meta's `GET ?hub.mode=subscribe&hub.verify_token=..&hub.challenge=..`:
/// the challenge, to be sent back as a `text/plain` body with 200, when
/// the token is the configured one (compared in constant time). An empty
/// configured token refuses every handshake rather than match an empty one.
pub fn handshake(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    configured: &str,
) -> Result<String, HandshakeError> {
    match mode {
        Some("subscribe") => {}
        Some(other) => {
            return Err(HandshakeError::BadRequest(format!(
                "hub.mode is `{}`, expected `subscribe`",
                shown(other)
            )))
        }
        None => {
            return Err(HandshakeError::BadRequest(
                "hub.mode is missing: this URL answers Meta's webhook verification \
                 (hub.mode=subscribe&hub.verify_token=..&hub.challenge=..)"
                    .into(),
            ))
        }
    }
    let known = verify_token.is_some_and(|token| same_secret(token, configured));
    if configured.is_empty() || !known {
        return Err(HandshakeError::Forbidden);
    }
    match challenge {
        None | Some("") => Err(HandshakeError::BadRequest(
            "hub.challenge is missing: Meta sends one to be echoed back".into(),
        )),
        Some(c) if c.len() > MAX_CHALLENGE => Err(HandshakeError::BadRequest(format!(
            "hub.challenge is {} bytes, over the {MAX_CHALLENGE} this endpoint echoes",
            c.len()
        ))),
        Some(c) => Ok(c.to_string()),
    }
}

/// Turns one Cloud API notification into events; `tenants` maps each
/// `metadata.phone_number_id` to its tenant. Every mapped item of every
/// entry and change becomes events, or the whole body is refused: a job
/// half translated could not be retried without double counting.
pub fn translate(body: &[u8], tenants: &BTreeMap<String, String>) -> Result<Translation, Unusable> {
    let value = node::parse(body)?;
    let root = Node::root(&value);
    root.object()?;
    let object = root.req("object")?;
    if object.value.as_str() != Some("whatsapp_business_account") {
        return Err(object.unusable(format!(
            "is {}, expected `whatsapp_business_account`: this is not a WhatsApp Business \
             Account webhook",
            quoted(object.value)
        )));
    }
    let mut batch = Batch::default();
    let entries = root.req("entry")?.items()?;
    if entries.is_empty() {
        batch.skip("entry is empty: the notification carries nothing".into());
    }
    for entry in entries {
        entry.object()?;
        for change in entry.req("changes")?.items()? {
            translate_change(&change, tenants, &mut batch)?;
        }
    }
    Ok(batch.finish())
}

/// One `changes[]` item: the messages, statuses and errors of one number.
fn translate_change(
    change: &Node,
    tenants: &BTreeMap<String, String>,
    batch: &mut Batch,
) -> Result<(), Unusable> {
    change.object()?;
    if let Some(field) = change.opt_str("field")? {
        if field != "messages" {
            batch.skip(format!(
                "{} is a `{}` change (account, template or number news, not messages)",
                change.at(),
                shown(field)
            ));
            return Ok(());
        }
    }
    let value = change.req("value")?;
    value.object()?;
    let id_node = value.req("metadata")?.req("phone_number_id")?;
    let phone_number_id = id_node.id()?;
    let number = Number {
        tenant: tenant(tenants, &id_node, &phone_number_id, SECTION)?,
        display: value
            .get("metadata")
            .and_then(|m| m.get("display_phone_number"))
            .and_then(|n| n.id().ok()),
        phone_number_id,
        contacts: match value.get("contacts") {
            Some(contacts) => contacts.items()?,
            None => Vec::new(),
        },
    };
    let mut found = false;
    if let Some(items) = value.get("messages") {
        found = true;
        for message in items.items()? {
            messages::translate(&number, &message, batch)?;
        }
    }
    if let Some(items) = value.get("statuses") {
        found = true;
        for status in items.items()? {
            statuses::translate(&number, &status, batch)?;
        }
    }
    if let Some(items) = value.get("errors") {
        found = true;
        for error in items.items()? {
            batch.skip(format!(
                "{}: WhatsApp reported error {} {} about number {} itself, not about a message",
                error.at(),
                error.get("code").map_or("?".into(), |c| quoted(c.value)),
                error
                    .get("title")
                    .map_or(String::new(), |t| quoted(t.value)),
                number.phone_number_id
            ));
        }
    }
    if !found {
        batch.skip(format!(
            "{} carries no messages, statuses or errors",
            value.at()
        ));
    }
    Ok(())
}

/// The business number a change is about, and its tenant.
struct Number<'a> {
    tenant: &'a str,
    phone_number_id: String,
    display: Option<String>,
    /// `contacts[]`: the profiles of the customers who wrote.
    contacts: Vec<Node<'a>>,
}

impl Number<'_> {
    /// The conversation of this number's chat with `who` (a phone number
    /// or a business-scoped user id): `wa-{phone_number_id}-{who}`, the
    /// same for the customer's messages and the statuses of the business's
    /// answers. Meta's phone number ids are digits, so the first `-`
    /// after `wa-` ends it; an id that is not is hashed.
    fn conversation_id(&self, who: &str) -> String {
        let digits = self.phone_number_id.bytes().all(|b| b.is_ascii_digit());
        let plain = format!("wa-{}-{who}", self.phone_number_id);
        conversation_id(
            digits.then_some(plain),
            "wah",
            &[&self.phone_number_id, who],
        )
    }

    /// Opens the chat with `who` for the UTC day of `at`: the day's first
    /// message either way starts a conversation. Its data is a function
    /// of its key alone (the chat), so any message of the day may be the
    /// one that stores it.
    fn open_conversation(&self, batch: &mut Batch, who: &str, at: DateTime<Utc>) {
        let conversation = self.conversation_id(who);
        let data = json!({
            "conversation_id": conversation,
            "customer": customer(id_field(who), who, Map::new()),
            "channel": "whatsapp_cloud_api",
            "phone_number_id": self.phone_number_id,
        });
        let key = conversation_key(SOURCE, &conversation, at);
        batch.event("ConversationStarted", self.tenant, key, at, data);
    }

    /// The fields every event of this number carries.
    fn base(&self, conversation: &str) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("conversation_id".into(), json!(conversation));
        data.insert("channel".into(), json!("whatsapp_cloud_api"));
        data.insert("phone_number_id".into(), json!(self.phone_number_id));
        data
    }
}

/// Which of the customer's ids `who` is: a phone number (`wa_id`) or a
/// business-scoped user id, which Meta sends instead for users with a
/// username who hide their number.
fn id_field(who: &str) -> &'static str {
    if phone(who).is_some() {
        "wa_id"
    } else {
        "user_id"
    }
}

#[cfg(test)]
mod tests;
