//! Events: what a stored, published event looks like, what a producer posts,
//! and the known event types of the seeds with their required fields and
//! default rooms.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::rooms::{keyed, validate_room, validate_tenant};

/// Event ids grow monotonically; a client resumes with the last one it saw.
pub type EventId = i64;

/// A stored event as it is delivered (`Event` frame payload, history API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    pub tenant_id: String,
    /// The first of `rooms`: the one a dashboard files the event under.
    pub room: String,
    pub rooms: Vec<String>,
    pub data: Value,
    #[serde(serialize_with = "rfc3339_millis")]
    pub timestamp: DateTime<Utc>,
}

/// Timestamps go out as `2026-01-01T00:00:00.000Z`.
pub fn rfc3339_millis<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// One event as a producer posts it to `POST /api/v1/events`. Unknown
/// fields are refused: `room` for `rooms` would otherwise be dropped and
/// the event delivered to its default rooms, a typo nobody notices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    pub event_type: String,
    #[serde(default = "empty_object")]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A rule broken by an event, naming the field (`data.message_id`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// The JSON type a required field must have.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Num,
    Bool,
    /// A string or an integer: ids come both ways from the platforms.
    Id,
    /// Any JSON value, as long as it is present.
    Any,
}

impl Kind {
    fn accepts(self, v: &Value) -> bool {
        match self {
            Kind::Str => v.is_string(),
            Kind::Num => v.is_number(),
            Kind::Bool => v.is_boolean(),
            Kind::Id => v.is_string() || v.is_i64() || v.is_u64(),
            Kind::Any => !v.is_null(),
        }
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Str => "a string",
            Kind::Num => "a number",
            Kind::Bool => "true or false",
            Kind::Id => "a string or an integer",
            Kind::Any => "a value",
        }
    }
}

/// A known event type: its required `data` fields and where it is delivered.
struct Spec {
    name: &'static str,
    fields: &'static [(&'static str, Kind)],
    /// Allowed values of one field, when the seeds fix them.
    one_of: Option<(&'static str, &'static [&'static str])>,
    rooms: &'static [&'static str],
    /// `(prefix, data field)`: the keyed room taken from the data.
    keyed: Option<(&'static str, &'static str)>,
}

/// Lifecycle events of a campaign (seeds 001 and 003); `campaign_failed`
/// ends a campaign that could not finish (the throttle sends it at once,
/// like the other lifecycle changes).
pub const CAMPAIGN_EVENTS: [&str; 8] = [
    "campaign_created",
    "campaign_started",
    "campaign_paused",
    "campaign_complete",
    "campaign_failed",
    "message_sent",
    "message_failed",
    "progress",
];

/// Outcomes of a call (seed 004).
pub const CALL_OUTCOMES: [&str; 5] = ["answered", "busy", "failed", "converted", "opt_out"];

const SPECS: &[Spec] = &[
    Spec {
        name: "MessageSent",
        fields: &[
            ("message_id", Kind::Id),
            ("to", Kind::Str),
            ("status", Kind::Str),
        ],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "MessageReceived",
        fields: &[("from", Kind::Str), ("message", Kind::Any)],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "MessageFailed",
        fields: &[("message_id", Kind::Id), ("error", Kind::Any)],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "ConversationStarted",
        fields: &[("conversation_id", Kind::Id), ("customer", Kind::Any)],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "ConversationEnded",
        fields: &[("conversation_id", Kind::Id)],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "TicketCreated",
        fields: &[
            ("ticket_id", Kind::Id),
            ("customer", Kind::Any),
            ("issue", Kind::Str),
        ],
        one_of: None,
        rooms: &["dashboard", "conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "CampaignUpdate",
        fields: &[("campaign_id", Kind::Id)],
        one_of: Some(("event", &CAMPAIGN_EVENTS)),
        rooms: &["campaigns"],
        keyed: Some(("campaign", "campaign_id")),
    },
    Spec {
        name: "CallEvent",
        fields: &[("outcome", Kind::Str)],
        one_of: Some(("outcome", &CALL_OUTCOMES)),
        rooms: &["campaigns"],
        keyed: Some(("campaign", "campaign_id")),
    },
    Spec {
        name: "AIInteraction",
        fields: &[
            ("user", Kind::Id),
            ("prompt", Kind::Str),
            ("response", Kind::Str),
            ("tokens", Kind::Num),
        ],
        one_of: None,
        rooms: &["ai"],
        keyed: None,
    },
    Spec {
        name: "ERPCall",
        fields: &[
            ("provider", Kind::Str),
            ("endpoint", Kind::Str),
            ("response_time", Kind::Num),
            ("success", Kind::Bool),
        ],
        one_of: None,
        rooms: &["erp"],
        keyed: None,
    },
    Spec {
        name: "ConversationTransferred",
        fields: &[("conversation_id", Kind::Id), ("to_user", Kind::Id)],
        one_of: None,
        rooms: &["conversations"],
        keyed: Some(("conversation", "conversation_id")),
    },
    Spec {
        name: "SystemAlert",
        fields: &[
            ("rule_id", Kind::Str),
            ("condition", Kind::Str),
            ("threshold", Kind::Num),
            ("current_value", Kind::Num),
        ],
        one_of: None,
        rooms: &["alerts"],
        keyed: None,
    },
];

/// Direct notifications: `(event type, prefix, data field)`, a second
/// keyed room after the spec's, for the one person an event is for (a
/// transfer's `user:{to_user}`).
const DIRECT: &[(&str, &str, &str)] = &[("ConversationTransferred", "user", "to_user")];

/// Rooms of events of a type the server does not know.
pub const CUSTOM_EVENT_ROOMS: [&str; 1] = ["dashboard"];

/// The names of the known event types.
pub fn known_event_types() -> impl Iterator<Item = &'static str> {
    SPECS.iter().map(|s| s.name)
}

/// Whether `name` is one of the known event types.
pub fn is_known_event_type(name: &str) -> bool {
    SPECS.iter().any(|s| s.name == name)
}

/// Checks an event type name: custom types are accepted, but must be a
/// reasonable identifier so filters can name them.
pub fn validate_event_type(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(format!(
            "bad event type `{name}`: 1 to 64 characters of A-Z a-z 0-9 _ - ."
        ));
    }
    Ok(())
}

/// Checks an event-type filter; an empty list means no filter. The error
/// names the offending entry (`event_types[1]: ...`).
pub fn validate_event_types(types: Option<Vec<String>>) -> Result<Option<Vec<String>>, String> {
    match types {
        None => Ok(None),
        Some(types) if types.is_empty() => Ok(None),
        Some(types) => {
            for (i, t) in types.iter().enumerate() {
                validate_event_type(t).map_err(|e| format!("event_types[{i}]: {e}"))?;
            }
            Ok(Some(types))
        }
    }
}

/// Checks `data` against the event type's required fields.
pub fn validate_data(event_type: &str, data: &Value) -> Result<(), FieldError> {
    let Some(obj) = data.as_object() else {
        return Err(FieldError::new("data", "expected a JSON object"));
    };
    let Some(spec) = SPECS.iter().find(|s| s.name == event_type) else {
        return Ok(());
    };
    for (field, kind) in spec.fields {
        match obj.get(*field) {
            None | Some(Value::Null) => {
                return Err(FieldError::new(
                    format!("data.{field}"),
                    format!("required for {event_type}"),
                ))
            }
            Some(v) if !kind.accepts(v) => {
                return Err(FieldError::new(
                    format!("data.{field}"),
                    format!("expected {}, got {}", kind.name(), json_type(v)),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some((field, allowed)) = spec.one_of {
        if let Some(v) = obj.get(field) {
            if !v.as_str().is_some_and(|s| allowed.contains(&s)) {
                return Err(FieldError::new(
                    format!("data.{field}"),
                    format!("expected one of {}", allowed.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

/// The rooms an event goes to when the producer names none. An id that
/// cannot key its room (`conversation_id` with a quote in it) is refused
/// rather than its room silently left out.
pub fn default_rooms(event_type: &str, data: &Value) -> Result<Vec<String>, FieldError> {
    let Some(spec) = SPECS.iter().find(|s| s.name == event_type) else {
        return Ok(CUSTOM_EVENT_ROOMS.iter().map(|r| r.to_string()).collect());
    };
    let mut rooms: Vec<String> = spec.rooms.iter().map(|r| r.to_string()).collect();
    if let Some((prefix, field)) = spec.keyed {
        match data.get(field) {
            None | Some(Value::Null) => {}
            Some(id) => rooms
                .push(keyed(prefix, id).map_err(|e| FieldError::new(format!("data.{field}"), e))?),
        }
    }
    for (_, prefix, field) in DIRECT.iter().filter(|(name, ..)| *name == event_type) {
        if let Some(id) = data.get(*field).filter(|v| !v.is_null()) {
            rooms.push(keyed(prefix, id).map_err(|e| FieldError::new(format!("data.{field}"), e))?);
        }
    }
    Ok(rooms)
}

/// The JSON type of a value, for error messages.
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event checked and ready to store: tenant and rooms resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent {
    pub event_type: String,
    pub tenant_id: String,
    pub rooms: Vec<String>,
    pub data: Value,
    pub timestamp: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    /// With a key: the event as posted ([`NewEvent::fingerprint`]), so a
    /// reuse of the key for another event is told apart from a retry.
    pub fingerprint: Option<String>,
}

impl NewEvent {
    /// Checks the event and resolves its rooms; `tenant_id` is the tenant it
    /// is published for (the caller has already checked the right to).
    pub fn validate(self, tenant_id: String) -> Result<ValidEvent, FieldError> {
        self.validate_at(tenant_id, Utc::now())
    }

    /// [`NewEvent::validate`], stamping an event posted without a
    /// timestamp with `now` (the server's clock, which tests may pause).
    pub fn validate_at(
        self,
        tenant_id: String,
        now: DateTime<Utc>,
    ) -> Result<ValidEvent, FieldError> {
        validate_event_type(&self.event_type).map_err(|e| FieldError::new("event_type", e))?;
        validate_tenant(&tenant_id).map_err(|e| FieldError::new("tenant_id", e))?;
        validate_data(&self.event_type, &self.data)?;
        let rooms = match self.rooms {
            Some(rooms) => {
                if rooms.is_empty() {
                    return Err(FieldError::new("rooms", "must name at least one room"));
                }
                if rooms.len() > super::limits::MAX_ROOMS_PER_EVENT {
                    return Err(FieldError::new(
                        "rooms",
                        format!(
                            "{} rooms is over the limit of {} per event",
                            rooms.len(),
                            super::limits::MAX_ROOMS_PER_EVENT
                        ),
                    ));
                }
                for (i, room) in rooms.iter().enumerate() {
                    validate_room(room).map_err(|e| FieldError::new(format!("rooms[{i}]"), e))?;
                }
                let mut unique = Vec::with_capacity(rooms.len());
                for room in rooms {
                    if !unique.contains(&room) {
                        unique.push(room);
                    }
                }
                unique
            }
            None => default_rooms(&self.event_type, &self.data)?,
        };
        if let Some(key) = &self.idempotency_key {
            if key.is_empty() || key.len() > super::limits::MAX_IDEMPOTENCY_KEY {
                return Err(FieldError::new(
                    "idempotency_key",
                    format!("1 to {} characters", super::limits::MAX_IDEMPOTENCY_KEY),
                ));
            }
        }
        let mut event = ValidEvent {
            event_type: self.event_type,
            tenant_id,
            rooms,
            data: self.data,
            timestamp: self.timestamp.unwrap_or(now),
            idempotency_key: self.idempotency_key,
            fingerprint: None,
        };
        if event.idempotency_key.is_some() {
            event.fingerprint = Some(event.content_fingerprint());
        }
        Ok(event)
    }
}

impl ValidEvent {
    /// SHA-256 (hex) of what the event asks for: its type, tenant, rooms
    /// and data, in canonical form (object keys sorted, numbers as
    /// written). Whitespace, key order, a tenant or rooms written out or
    /// left to their defaults, and `timestamp` (a retry may stamp it
    /// anew) do not change it; any other value does. The Idempotency-Key
    /// draft's fingerprint.
    pub fn content_fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let canonical =
            serde_json::to_vec(&(&self.event_type, &self.tenant_id, &self.rooms, &self.data))
                .expect("an event serializes");
        hex(&Sha256::digest(&canonical))
    }
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
