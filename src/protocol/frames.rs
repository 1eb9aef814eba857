//! WebSocket frames, named by direction. Every frame is a JSON text frame in
//! the seed 000 envelope `{message_type, payload, timestamp}`.

use chrono::{SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use super::codes::ErrorCode;
use super::events::{Event, EventId};

/// `Subscription` payload: rooms to join (required; an explicit `[]` means
/// every room of the tenant), an optional event-type filter, the tenant
/// (admins only may pick another), and `since`, the last event id the
/// client saw, to replay what it missed. Unknown fields are refused, as in
/// every client payload: a misspelt `since` would silently skip the replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub rooms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_types: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<EventId>,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    Auth {
        token: String,
    },
    Subscription(Subscription),
    Unsubscribe {
        rooms: Vec<String>,
    },
    Heartbeat,
    Publish {
        room: String,
        event_type: String,
        data: Value,
    },
    Typing {
        conversation_id: String,
        typing: bool,
    },
    Presence {
        status: String,
    },
    /// Hands a conversation to another agent (operators and admins);
    /// `tenant_id` only for admin tokens, which name the tenant.
    Transfer {
        conversation_id: String,
        to_user: String,
        note: Option<String>,
        tenant_id: Option<String>,
    },
}

/// The message types a client may send, for error messages.
pub const CLIENT_MESSAGE_TYPES: [&str; 8] = [
    "Auth",
    "Subscription",
    "Unsubscribe",
    "Heartbeat",
    "Publish",
    "Typing",
    "Presence",
    "Transfer",
];

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    message_type: String,
    #[serde(borrow, default)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthPayload {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnsubscribePayload {
    rooms: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishPayload {
    room: String,
    event_type: String,
    #[serde(default)]
    data: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TypingPayload {
    conversation_id: String,
    typing: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresencePayload {
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferPayload {
    conversation_id: String,
    to_user: String,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    tenant_id: Option<String>,
}

fn payload<T: DeserializeOwned>(raw: Option<&RawValue>) -> Result<T, String> {
    let text = raw.map(RawValue::get).unwrap_or("{}");
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // The position would point into the payload, not the frame: the
        // path says where the problem is.
        let inner = without_position(&e.into_inner().to_string()).to_string();
        if path == "." {
            format!("payload: {inner}")
        } else {
            format!("payload.{path}: {inner}")
        }
    })
}

/// `serde_json` messages end in ` at line L column C`; strip that.
fn without_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    }
}

impl ClientFrame {
    /// Parses a text frame; the error names what is wrong, for `Error bad_message`.
    pub fn parse(text: &str) -> Result<ClientFrame, String> {
        let raw: RawEnvelope<'_> = serde_json::from_str(text).map_err(|e| {
            if e.is_syntax() || e.is_eof() {
                format!("frame is not valid JSON: {e}")
            } else {
                format!("bad envelope: {e}")
            }
        })?;
        let p = raw.payload;
        Ok(match raw.message_type.as_str() {
            "Auth" => ClientFrame::Auth {
                token: payload::<AuthPayload>(p)?.token,
            },
            "Subscription" => ClientFrame::Subscription(payload(p)?),
            "Unsubscribe" => ClientFrame::Unsubscribe {
                rooms: payload::<UnsubscribePayload>(p)?.rooms,
            },
            "Heartbeat" => ClientFrame::Heartbeat,
            "Publish" => {
                let p: PublishPayload = payload(p)?;
                ClientFrame::Publish {
                    room: p.room,
                    event_type: p.event_type,
                    data: p.data,
                }
            }
            "Typing" => {
                let p: TypingPayload = payload(p)?;
                ClientFrame::Typing {
                    conversation_id: p.conversation_id,
                    typing: p.typing,
                }
            }
            "Presence" => ClientFrame::Presence {
                status: payload::<PresencePayload>(p)?.status,
            },
            "Transfer" => {
                let p: TransferPayload = payload(p)?;
                ClientFrame::Transfer {
                    conversation_id: p.conversation_id,
                    to_user: p.to_user,
                    note: p.note,
                    tenant_id: p.tenant_id,
                }
            }
            other => {
                return Err(format!(
                    "unknown message_type `{other}`: expected one of {}",
                    CLIENT_MESSAGE_TYPES.join(", ")
                ))
            }
        })
    }

    /// The frame as JSON text in the envelope, stamped now.
    pub fn to_text(&self) -> String {
        let (message_type, payload) = match self {
            ClientFrame::Auth { token } => ("Auth", serde_json::json!({ "token": token })),
            ClientFrame::Subscription(s) => (
                "Subscription",
                serde_json::to_value(s).expect("subscription serializes"),
            ),
            ClientFrame::Unsubscribe { rooms } => {
                ("Unsubscribe", serde_json::json!({ "rooms": rooms }))
            }
            ClientFrame::Heartbeat => ("Heartbeat", serde_json::json!({})),
            ClientFrame::Publish {
                room,
                event_type,
                data,
            } => (
                "Publish",
                serde_json::json!({"room": room, "event_type": event_type, "data": data}),
            ),
            ClientFrame::Typing {
                conversation_id,
                typing,
            } => (
                "Typing",
                serde_json::json!({"conversation_id": conversation_id, "typing": typing}),
            ),
            ClientFrame::Presence { status } => {
                ("Presence", serde_json::json!({ "status": status }))
            }
            ClientFrame::Transfer {
                conversation_id,
                to_user,
                note,
                tenant_id,
            } => {
                let mut payload = serde_json::json!({
                    "conversation_id": conversation_id,
                    "to_user": to_user,
                });
                if let Some(note) = note {
                    payload["note"] = note.as_str().into();
                }
                if let Some(tenant) = tenant_id {
                    payload["tenant_id"] = tenant.as_str().into();
                }
                ("Transfer", payload)
            }
        };
        serde_json::json!({
            "message_type": message_type,
            "payload": payload,
            "timestamp": now_rfc3339(),
        })
        .to_string()
    }
}

/// The current time as the envelope writes it.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Server limits told to the client in `Welcome`, so it can pace itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub rate_limit_per_minute: u32,
    pub max_frame_bytes: usize,
    pub ping_interval_seconds: u64,
    pub idle_timeout_seconds: u64,
}

/// `Welcome`: sent once the connection is authenticated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Welcome {
    pub connection_id: String,
    pub tenant_id: Option<String>,
    pub role: String,
    /// Rooms joined because the endpoint named them (`/ws/{room}`,
    /// `/ws/tenant/{id}`); empty for `/ws`.
    pub rooms: Vec<String>,
    pub limits: Limits,
}

/// `Subscribed`: the rooms now joined. When `since` was given, the missed
/// events follow this frame in id order, then live ones, with no gap and no
/// duplicate; events with ids up to `head` are the replayed ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    /// The rooms joined; empty means every room of the tenant (or of all
    /// tenants, for an admin who named none).
    pub rooms: Vec<String>,
    pub tenant_id: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub since: Option<EventId>,
    /// The newest event id the server had when the subscription started.
    pub head: EventId,
}

/// `Error` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPayload {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds to wait before sending again (`rate_limited`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<f64>,
}

/// Frames the server sends. `Metrics`, `Alert` and `Presence` are carried as
/// JSON objects: their producers own their shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "message_type", content = "payload")]
pub enum ServerFrame {
    Welcome(Welcome),
    Subscribed(Subscribed),
    Unsubscribed {
        rooms: Vec<String>,
    },
    Event(Event),
    Metrics(Value),
    /// The job queue's stats (`dashboard` room).
    QueueStats(Value),
    Alert(Value),
    /// A [`PresenceChange`](super::presence::PresenceChange) (`presence` room).
    Presence(Value),
    /// A [`TypingChange`](super::presence::TypingChange) (`conversation:{id}`).
    Typing(Value),
    HeartbeatAck {
        server_time: String,
    },
    Error(ErrorPayload),
}

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(flatten)]
    frame: &'a ServerFrame,
    timestamp: String,
}

impl ServerFrame {
    /// The frame as JSON text in the envelope, stamped now.
    pub fn to_text(&self) -> String {
        serde_json::to_string(&Envelope {
            frame: self,
            timestamp: now_rfc3339(),
        })
        .expect("server frames serialize")
    }

    /// Parses a server frame (clients); unknown types are an error the
    /// caller may skip, so older clients survive newer servers.
    pub fn parse(text: &str) -> Result<ServerFrame, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// An `Event` frame for a stored event, without copying the event.
    pub fn event_text(event: &Event) -> String {
        #[derive(Serialize)]
        struct EventEnvelope<'a> {
            message_type: &'static str,
            payload: &'a Event,
            timestamp: String,
        }
        serde_json::to_string(&EventEnvelope {
            message_type: "Event",
            payload: event,
            timestamp: now_rfc3339(),
        })
        .expect("events serialize")
    }

    /// An `Error` frame.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> ServerFrame {
        ServerFrame::Error(ErrorPayload {
            code,
            message: message.into(),
            retry_after: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_000_subscription() {
        let text = r#"{"message_type":"Subscription","payload":{"rooms":["dashboard","alerts"],
            "event_types":["MessageSent"],"tenant_id":"t1"},"timestamp":"2026-01-01T00:00:00Z"}"#;
        let ClientFrame::Subscription(s) = ClientFrame::parse(text).unwrap() else {
            panic!("not a subscription")
        };
        assert_eq!(s.rooms, vec!["dashboard", "alerts"]);
        assert_eq!(s.tenant_id.as_deref(), Some("t1"));
        assert_eq!(s.since, None);
    }

    #[test]
    fn heartbeat_needs_no_payload() {
        assert_eq!(
            ClientFrame::parse(r#"{"message_type":"Heartbeat"}"#).unwrap(),
            ClientFrame::Heartbeat
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let e = ClientFrame::parse("{nope").unwrap_err();
        assert!(e.starts_with("frame is not valid JSON"), "{e}");
        let e = ClientFrame::parse(r#"{"message_type":"Shout","payload":{}}"#).unwrap_err();
        assert!(e.contains("unknown message_type `Shout`"), "{e}");
        let e = ClientFrame::parse(r#"{"message_type":"Subscription","payload":{"rooms":"x"}}"#)
            .unwrap_err();
        assert!(e.starts_with("payload.rooms: invalid type: string"), "{e}");
        let e = ClientFrame::parse(r#"{"message_type":"Auth","payload":{}}"#).unwrap_err();
        assert!(e.contains("missing field `token`"), "{e}");
        let e = ClientFrame::parse(r#"{"payload":{}}"#).unwrap_err();
        assert!(e.contains("missing field `message_type`"), "{e}");
    }

    #[test]
    fn client_frames_round_trip() {
        let frame = ClientFrame::Subscription(Subscription {
            rooms: vec!["erp".into()],
            since: Some(41),
            ..Subscription::default()
        });
        assert_eq!(ClientFrame::parse(&frame.to_text()).unwrap(), frame);
    }

    #[test]
    fn transfer_frames_round_trip_and_name_missing_fields() {
        let frame = ClientFrame::Transfer {
            conversation_id: "c1".into(),
            to_user: "bob".into(),
            note: Some("VIP".into()),
            tenant_id: None,
        };
        assert_eq!(ClientFrame::parse(&frame.to_text()).unwrap(), frame);
        let e =
            ClientFrame::parse(r#"{"message_type":"Transfer","payload":{"conversation_id":"c1"}}"#)
                .unwrap_err();
        assert!(e.contains("missing field `to_user`"), "{e}");
    }

    #[test]
    fn server_frames_use_the_envelope() {
        let text = ServerFrame::error(ErrorCode::Forbidden, "no").to_text();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["message_type"], "Error");
        assert_eq!(v["payload"]["code"], "forbidden");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
        assert_eq!(
            ServerFrame::parse(&text).unwrap(),
            ServerFrame::error(ErrorCode::Forbidden, "no")
        );
    }
}
