use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::protocol::NewEvent;
use crate::server::webhooks::tests::assert_valid;

const UPSERT: &str =
    include_str!("../../../../tests/fixtures/webhooks/evolution/messages_upsert.json");
const IMAGE: &str =
    include_str!("../../../../tests/fixtures/webhooks/evolution/messages_upsert_image.json");
const FROM_ME: &str =
    include_str!("../../../../tests/fixtures/webhooks/evolution/messages_upsert_from_me.json");
const SEND: &str = include_str!("../../../../tests/fixtures/webhooks/evolution/send_message.json");
const UPDATE: &str =
    include_str!("../../../../tests/fixtures/webhooks/evolution/messages_update.json");
const CONNECTION: &str =
    include_str!("../../../../tests/fixtures/webhooks/evolution/connection_update.json");

/// The fixtures' chat of instance `acme-main` with Maria Souza.
const CHAT: &str = "evo-acme-main_5511988887777@s.whatsapp.net";
const JID: &str = "5511988887777@s.whatsapp.net";
/// The message the business sent through the API, in SEND and UPDATE.
const SENT_ID: &str = "3EB0F2A9C7D41E58B603";

fn tenants() -> BTreeMap<String, String> {
    BTreeMap::from([("acme-main".to_string(), "acme".to_string())])
}

fn translated(body: &str) -> Translation {
    let translation = translate(body.as_bytes(), &tenants()).unwrap();
    assert_valid(&translation);
    translation
}

fn event(event_type: &str, key: &str, at: DateTime<Utc>, data: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        data,
        tenant_id: Some("acme".into()),
        rooms: None,
        idempotency_key: Some(key.into()),
        timestamp: Some(at),
    }
}

fn secs(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap()
}

fn time(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap().into()
}

fn started(at: DateTime<Utc>) -> NewEvent {
    event(
        "ConversationStarted",
        &format!("evo:conv:{CHAT}:2025-06-12"),
        at,
        json!({
            "conversation_id": CHAT,
            "customer": {"phone": "+5511988887777", "jid": JID},
            "channel": "evolution",
            "instance": "acme-main",
        }),
    )
}

/// The data of every status event of the API-sent message.
fn status_data(extra: Value) -> Value {
    let mut data = json!({
        "conversation_id": CHAT,
        "channel": "evolution",
        "instance": "acme-main",
        "remote_jid": JID,
        "message_id": SENT_ID,
        "to": "+5511988887777",
    });
    data.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    data
}

#[test]
fn a_customers_message_opens_the_chat_and_is_received() {
    let id = "3EB0C431C26A1916E07E";
    assert_eq!(
        translated(UPSERT),
        Translation {
            events: vec![
                started(secs(1_749_737_001)),
                event(
                    "MessageReceived",
                    &format!("evo:msg:{CHAT}:{id}"),
                    secs(1_749_737_001),
                    json!({
                        "conversation_id": CHAT,
                        "channel": "evolution",
                        "instance": "acme-main",
                        "remote_jid": JID,
                        "from": "+5511988887777",
                        "message": "Olá, qual o status do meu pedido?",
                        "message_id": id,
                        "message_type": "text",
                        "evolution_message_type": "conversation",
                        "customer": {
                            "phone": "+5511988887777",
                            "jid": JID,
                            "name": "Maria Souza",
                        },
                        "device": "android",
                    }),
                ),
            ],
            skipped: vec![],
        }
    );
}

#[test]
fn an_image_is_described_not_copied() {
    let received = translated(IMAGE).events[1].data.clone();
    assert_eq!(received["message"], "Chegou assim, quebrado");
    assert_eq!(received["message_type"], "image");
    assert_eq!(
        received["content"],
        json!({
            "mimetype": "image/jpeg",
            "caption": "Chegou assim, quebrado",
            "fileLength": "48127",
        })
    );
    assert!(!received.to_string().contains("jpegThumbnail"));
}

#[test]
fn the_business_own_messages_are_sent() {
    let id = "3A5F8E2C41B7D0963E12";
    assert_eq!(
        translated(FROM_ME).events,
        vec![
            started(secs(1_749_737_160)),
            event(
                "MessageSent",
                &format!("evo:status:{CHAT}:{id}:sent"),
                secs(1_749_737_160),
                json!({
                    "conversation_id": CHAT,
                    "channel": "evolution",
                    "instance": "acme-main",
                    "remote_jid": JID,
                    "message_id": id,
                    "to": "+5511988887777",
                    "status": "sent",
                }),
            ),
        ]
    );
    assert_eq!(
        translated(SEND).events,
        vec![
            started(secs(1_749_737_220)),
            event(
                "MessageSent",
                &format!("evo:status:{CHAT}:{SENT_ID}:sent"),
                secs(1_749_737_220),
                status_data(json!({"status": "sent"})),
            ),
        ]
    );
}

#[test]
fn updates_of_the_business_messages_are_their_delivery() {
    let at = time("2025-06-12T14:07:03.266Z");
    assert_eq!(
        translated(UPDATE),
        Translation {
            events: vec![event(
                "MessageSent",
                &format!("evo:status:{CHAT}:{SENT_ID}:delivered"),
                at,
                status_data(json!({"status": "delivered"})),
            )],
            skipped: vec![],
        }
    );
    let with = |status: &str| translated(&UPDATE.replace("\"DELIVERY_ACK\"", status)).events;
    // SERVER_ACK is the same `sent` as the send.message: one key, one data.
    let acked = with("\"SERVER_ACK\"");
    let sent = translated(SEND).events;
    assert_eq!(acked[0].idempotency_key, sent[0].idempotency_key);
    assert_eq!(acked[1].idempotency_key, sent[1].idempotency_key);
    assert_eq!(acked[1].data, sent[1].data);
    // READ and PLAYED are one `read`; Baileys' numbers mean the same.
    let read = with("\"READ\"");
    assert_eq!(read[0].data["status"], "read");
    assert_eq!(with("\"PLAYED\""), read);
    assert_eq!(with("4"), read);
    assert_eq!(
        with("\"ERROR\""),
        vec![event(
            "MessageFailed",
            &format!("evo:status:{CHAT}:{SENT_ID}:failed"),
            at,
            status_data(json!({"error": {
                "code": "ERROR",
                "title": "WhatsApp did not take the message (Evolution status ERROR)",
            }})),
        )]
    );
    let pending = translated(&UPDATE.replace("\"DELIVERY_ACK\"", "\"PENDING\""));
    assert!(pending.events.is_empty());
    assert!(pending.skipped[0].contains("`PENDING` is not a delivery state"));
}

#[test]
fn status_of_the_customers_messages_and_other_events_are_skipped() {
    let theirs = translated(&UPDATE.replace("\"fromMe\": true", "\"fromMe\": false"));
    assert!(theirs.events.is_empty());
    assert!(theirs.skipped[0].starts_with("data: the status of a message the customer sent"));
    assert_eq!(
        translated(CONNECTION),
        Translation {
            events: vec![],
            skipped: vec![
                "connection.update: instance `acme-main` is `open`: the instance's link to \
                 WhatsApp, not a conversation event"
                    .into()
            ],
        }
    );
    let presence = translated(&CONNECTION.replace("connection.update", "PRESENCE_UPDATE"));
    assert_eq!(
        presence.skipped,
        vec![
            "PRESENCE_UPDATE: a contact typing or coming online; pytake's presence is its own \
             operators'"
        ]
    );
    let unknown = translated(&CONNECTION.replace("connection.update", "labels.exploded"));
    assert_eq!(
        unknown.skipped,
        vec!["event `labels.exploded` is not one pytake turns into events"]
    );
    let status_post = translated(&UPSERT.replace(JID, "status@broadcast"));
    assert!(status_post.events.is_empty());
}

#[test]
fn event_names_come_in_three_spellings() {
    let reference = translated(UPSERT);
    for name in ["MESSAGES_UPSERT", "messages-upsert"] {
        assert_eq!(
            translated(&UPSERT.replace("messages.upsert", name)),
            reference
        );
    }
}

#[test]
fn a_redelivery_translates_to_the_same_events() {
    for body in [UPSERT, IMAGE, FROM_ME, SEND, UPDATE, CONNECTION] {
        assert_eq!(translated(body), translated(body));
    }
}

#[test]
fn several_messages_in_one_webhook_all_translate() {
    let mut value: Value = serde_json::from_str(UPSERT).unwrap();
    let one = value["data"].clone();
    value["data"] = Value::Array(
        (0..500)
            .map(|i| {
                let mut m = one.clone();
                m["key"]["id"] = json!(format!("3EB0{i:016}"));
                m["key"]["remoteJid"] = json!(format!("55119{:08}@s.whatsapp.net", i % 50));
                m
            })
            .collect(),
    );
    let t = translated(&value.to_string());
    let count = |kind: &str| t.events.iter().filter(|e| e.event_type == kind).count();
    assert_eq!(
        (count("MessageReceived"), count("ConversationStarted")),
        (500, 50)
    );
}

#[test]
fn chats_are_one_whatever_device_or_group_member_writes() {
    let device = translated(&UPDATE.replace(JID, "5511988887777:12@s.whatsapp.net"));
    assert_eq!(device.events[0].data["conversation_id"], CHAT);
    let group = UPSERT.replace(JID, "120363025246125486@g.us").replace(
        "\"fromMe\": false,",
        "\"fromMe\": false, \"participant\": \"5511988887777@s.whatsapp.net\",",
    );
    let received = translated(&group).events[1].data.clone();
    assert_eq!(
        received["conversation_id"],
        "evo-acme-main_120363025246125486@g.us"
    );
    assert_eq!(received["from"], "+5511988887777");
    assert_eq!(received["participant"], JID);
    let odd = UPSERT.replace("acme-main", "Loja Centro");
    let mut tenants = tenants();
    tenants.insert("Loja Centro".into(), "acme".into());
    let t = translate(odd.as_bytes(), &tenants).unwrap();
    assert_valid(&t);
    assert!(t.events[0].data["conversation_id"]
        .as_str()
        .unwrap()
        .starts_with("evoh-"));
}

#[test]
fn refusals_name_the_path_and_the_fix() {
    let refused = |body: &str| translate(body.as_bytes(), &tenants()).unwrap_err().0;
    assert_eq!(
        refused(&UPSERT.replace("\"acme-main\"", "\"acme-old\"")),
        "instance `acme-old` is not mapped to a tenant: add it to [webhooks.evolution] tenants"
    );
    assert_eq!(
        refused(&UPSERT.replace("\"id\": \"3EB0C431C26A1916E07E\"", "\"id\": 7.5")),
        "data.key.id is a number, expected a string"
    );
    assert_eq!(
        refused(&UPSERT.replace("\"fromMe\": false", "\"fromMe\": \"no\"")),
        "data.key.fromMe is `no`, expected true or false"
    );
    assert_eq!(
        refused(&UPDATE.replace("\"keyId\"", "\"id\"")),
        "data.keyId is missing"
    );
    assert_eq!(
        refused(&UPDATE.replace("\"date_time\"", "\"sent\"")),
        "date_time is missing, and the event has no time of its own"
    );
    assert_eq!(refused(r#"{"instance": "acme-main"}"#), "event is missing");
}

#[test]
fn the_api_key_comes_as_a_header_or_in_the_body() {
    let key = "7A1E0B9C2D3F4E5A8B6C9D0E1F2A3B4C";
    let body = UPSERT.as_bytes();
    let without = UPSERT.replace(&format!("\"apikey\": \"{key}\""), "\"apikey\": null");
    assert_eq!(check_api_key(key, None, body), Ok(()));
    assert_eq!(
        check_api_key("header-key", Some("header-key"), body),
        Ok(())
    );
    assert_eq!(check_api_key(key, Some("stale"), body), Ok(()));
    assert_eq!(
        check_api_key(key, None, without.as_bytes()),
        Err(ApiKeyError::Missing)
    );
    assert_eq!(
        check_api_key(key, Some(""), b"not json"),
        Err(ApiKeyError::Missing)
    );
    assert_eq!(
        check_api_key(key, Some("guess"), without.as_bytes()),
        Err(ApiKeyError::Wrong)
    );
    assert_eq!(check_api_key("other", None, body), Err(ApiKeyError::Wrong));
    assert_eq!(
        check_api_key("", Some(""), body),
        Err(ApiKeyError::NotConfigured)
    );
}
