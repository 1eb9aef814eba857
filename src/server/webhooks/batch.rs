//! Gathering the events of one payload, each idempotency key once.
//!
//! The store refuses a request that names one key twice (which of the two
//! the key means is unknowable), so a payload that repeats itself (two
//! messages of one chat and day both open its conversation; a batch that
//! carries one status twice) must yield that key once.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Translation;
use crate::protocol::NewEvent;

/// The events and skips of one payload, in payload order.
#[derive(Debug, Default)]
pub(super) struct Batch {
    translation: Translation,
    /// Where each key's event is in `translation.events`.
    keys: HashMap<String, usize>,
}

impl Batch {
    /// Adds an event for `tenant`. A key already taken by an event with the
    /// same data keeps the earlier time of the two (the conversation opened
    /// with the first message); one taken by other data keeps the first
    /// and says so in the skips.
    pub fn event(
        &mut self,
        event_type: &str,
        tenant: &str,
        key: String,
        at: DateTime<Utc>,
        data: Value,
    ) {
        if let Some(&index) = self.keys.get(&key) {
            let earlier = &mut self.translation.events[index];
            if earlier.data == data {
                earlier.timestamp = earlier.timestamp.min(Some(at));
            } else {
                self.translation.skipped.push(format!(
                    "a second {event_type} under key `{key}` with other data: the payload \
                     repeats an id, the first one is kept"
                ));
            }
            return;
        }
        self.keys.insert(key.clone(), self.translation.events.len());
        self.translation.events.push(NewEvent {
            event_type: event_type.to_string(),
            data,
            tenant_id: Some(tenant.to_string()),
            rooms: None,
            idempotency_key: Some(key),
            timestamp: Some(at),
        });
    }

    /// Records what was deliberately not turned into an event, and why.
    pub fn skip(&mut self, why: String) {
        self.translation.skipped.push(why);
    }

    pub fn finish(self) -> Translation {
        self.translation
    }
}
