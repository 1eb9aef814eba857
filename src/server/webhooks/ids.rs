//! The identities a webhook's events carry: the conversation a customer
//! chat is filed under, the idempotency key of each event, and how a
//! customer's number is written.
//!
//! Both are derived from the payload alone, so that a redelivered webhook
//! (Meta retries for days, Evolution on every timeout) or a retried job
//! produces the same ids and the store keeps each event once.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::protocol::events::hex;
use crate::protocol::limits::MAX_IDEMPOTENCY_KEY;
use crate::protocol::rooms::keyed;

/// Longest idempotency key made here. Provider ids are opaque and
/// unbounded; a longer key is replaced by a hash of it (see [`key`]).
pub(super) const MAX_KEY: usize = 128;

const _: () = assert!(MAX_KEY <= MAX_IDEMPOTENCY_KEY);

/// An idempotency key: `source` and `parts` joined with `:`. A key that
/// would be longer than [`MAX_KEY`] or hold anything but printable ASCII
/// becomes `{source}:h:{sha256 hex}` of it instead; no readable key has
/// `h` as its second part, so the two forms never meet.
pub(super) fn key(source: &str, parts: &[&str]) -> String {
    let mut plain = source.to_string();
    for part in parts {
        plain.push(':');
        plain.push_str(part);
    }
    if plain.len() <= MAX_KEY && plain.bytes().all(|b| b.is_ascii_graphic()) {
        return plain;
    }
    format!("{source}:h:{}", hex(&Sha256::digest(plain.as_bytes())))
}

/// The key of the conversation a chat opens on the UTC day of `at`: one
/// `ConversationStarted` per chat and day, whichever message comes first.
pub(super) fn conversation_key(source: &str, conversation_id: &str, at: DateTime<Utc>) -> String {
    key(
        source,
        &["conv", conversation_id, &at.format("%Y-%m-%d").to_string()],
    )
}

/// A conversation id that is also a valid key of the `conversation:{id}`
/// room: `plain` when the caller could write one that no other chat can
/// have and the room accepts it, else `{hashed}-{sha256 hex}` of `parts`
/// (encoded as a JSON array, so no two lists of parts hash alike).
/// `hashed` is not a prefix of any plain id, so the two forms never meet.
pub(super) fn conversation_id(plain: Option<String>, hashed: &str, parts: &[&str]) -> String {
    if let Some(plain) = plain {
        if keyed("conversation", &Value::String(plain.clone())).is_ok() {
            return plain;
        }
    }
    let encoded = serde_json::to_vec(parts).expect("strings serialize");
    format!("{hashed}-{}", hex(&Sha256::digest(&encoded)))
}

/// A customer's number as pytake writes phone numbers (`+5511988887777`,
/// E.164), when `id` is one: the platforms write them without the `+`.
pub(super) fn phone(id: &str) -> Option<String> {
    let digits = (5..=20).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| format!("+{id}"))
}

/// How an event names the other side of a chat: the phone number when
/// the provider's id is one, the provider's id as it is otherwise (a
/// business-scoped user id, a LID, a group).
pub(super) fn party(id: &str) -> String {
    phone(id).unwrap_or_else(|| id.to_string())
}

/// The `customer` object of an event: the phone number when there is one
/// and the provider's own id under `id_field`, plus `extra` fields.
pub(super) fn customer(id_field: &str, id: &str, extra: Map<String, Value>) -> Value {
    let mut customer = Map::new();
    if let Some(phone) = phone(id) {
        customer.insert("phone".into(), json!(phone));
    }
    customer.insert(id_field.into(), json!(id));
    customer.extend(extra);
    Value::Object(customer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_readable_when_short_and_hashed_when_not() {
        assert_eq!(key("wa", &["msg", "wamid.ABC="]), "wa:msg:wamid.ABC=");
        let long = "x".repeat(200);
        let hashed = key("wa", &["msg", &long]);
        assert!(
            hashed.starts_with("wa:h:") && hashed.len() == 5 + 64,
            "{hashed}"
        );
        assert_eq!(hashed, key("wa", &["msg", &long]));
        assert_ne!(hashed, key("wa", &["msg", &"y".repeat(200)]));
        assert!(key("evo", &["msg", "a b"]).starts_with("evo:h:"));
        assert!(key("evo", &["msg", "ç"]).starts_with("evo:h:"));
    }

    #[test]
    fn conversation_ids_always_key_a_room() {
        let plain = "wa-106540352242922-16505551234";
        assert_eq!(conversation_id(Some(plain.into()), "wah", &[]), plain);
        for plain in ["evo-acme main_1@s.whatsapp.net", &"9".repeat(300), "a:b"] {
            let id = conversation_id(Some(plain.to_string()), "evoh", &[plain]);
            assert!(id.starts_with("evoh-"), "{id}");
            assert!(keyed("conversation", &json!(id)).is_ok());
        }
        // Parts are hashed as a list: moving a separator changes the id.
        assert_ne!(
            conversation_id(None, "wah", &["a-b", "c"]),
            conversation_id(None, "wah", &["a", "b-c"])
        );
    }

    #[test]
    fn phone_numbers_get_their_plus() {
        assert_eq!(phone("16505551234").as_deref(), Some("+16505551234"));
        assert_eq!(phone("US.13491208655302741918"), None);
        assert_eq!(party("120363025246125486@g.us"), "120363025246125486@g.us");
        assert_eq!(
            customer("wa_id", "16505551234", Map::new()),
            json!({"phone": "+16505551234", "wa_id": "16505551234"})
        );
    }
}
