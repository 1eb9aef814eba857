use chrono::DateTime;
use serde_json::json;

use super::*;
use crate::protocol::NewEvent;
use crate::server::webhooks::tests::assert_valid;

const TEXT: &str = include_str!("../../../../tests/fixtures/webhooks/whatsapp/text.json");
const IMAGE: &str = include_str!("../../../../tests/fixtures/webhooks/whatsapp/image.json");
const SENT: &str = include_str!("../../../../tests/fixtures/webhooks/whatsapp/status_sent.json");
const DELIVERED: &str =
    include_str!("../../../../tests/fixtures/webhooks/whatsapp/status_delivered.json");
const READ: &str = include_str!("../../../../tests/fixtures/webhooks/whatsapp/status_read.json");
const FAILED: &str =
    include_str!("../../../../tests/fixtures/webhooks/whatsapp/status_failed.json");
const BATCH: &str = include_str!("../../../../tests/fixtures/webhooks/whatsapp/batch.json");

/// The chat of the fixtures' business number with Sheena Nelson.
const CHAT: &str = "wa-106540352242922-16505551234";
const WAMID_OUT: &str = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA";

fn tenants() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("106540352242922".to_string(), "acme".to_string()),
        ("102944729380254".to_string(), "globex".to_string()),
    ])
}

/// Translates a fixture (as bytes, like the job's body) and checks every
/// event would pass intake.
fn translated(body: &str) -> Translation {
    let translation = translate(body.as_bytes(), &tenants()).unwrap();
    assert_valid(&translation);
    translation
}

fn event(event_type: &str, key: &str, secs: i64, data: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        data,
        tenant_id: Some("acme".into()),
        rooms: None,
        idempotency_key: Some(key.into()),
        timestamp: DateTime::from_timestamp(secs, 0),
    }
}

fn started(day: &str, secs: i64) -> NewEvent {
    event(
        "ConversationStarted",
        &format!("wa:conv:{CHAT}:{day}"),
        secs,
        json!({
            "conversation_id": CHAT,
            "customer": {"phone": "+16505551234", "wa_id": "16505551234"},
            "channel": "whatsapp_cloud_api",
            "phone_number_id": "106540352242922",
        }),
    )
}

#[test]
fn a_text_message_opens_its_chat_and_is_received() {
    let wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=";
    assert_eq!(
        translated(TEXT),
        Translation {
            events: vec![
                started("2025-06-08", 1_749_416_383),
                event(
                    "MessageReceived",
                    &format!("wa:msg:{wamid}"),
                    1_749_416_383,
                    json!({
                        "conversation_id": CHAT,
                        "channel": "whatsapp_cloud_api",
                        "phone_number_id": "106540352242922",
                        "from": "+16505551234",
                        "message": "Does it come in another color?",
                        "message_id": wamid,
                        "message_type": "text",
                        "customer": {
                            "phone": "+16505551234",
                            "wa_id": "16505551234",
                            "name": "Sheena Nelson",
                        },
                        "to": "+15550783881",
                    }),
                ),
            ],
            skipped: vec![],
        }
    );
}

#[test]
fn an_image_is_received_with_its_caption_and_media_id() {
    let t = translated(IMAGE);
    assert_eq!(t.events.len(), 2);
    assert_eq!(t.events[0], started("2025-06-08", 1_749_416_528));
    let data = &t.events[1].data;
    assert_eq!(data["message"], "This one, in blue");
    assert_eq!(data["message_type"], "image");
    assert_eq!(
        data["content"],
        json!({
            "caption": "This one, in blue",
            "mime_type": "image/jpeg",
            "sha256": "EnMjtNBEEdNb6HhcHBRnU2j2pt+sIEMAcLHrgavX4Uo=",
            "id": "1003383421387256",
        })
    );
}

#[test]
fn a_sent_status_opens_the_chat_and_keeps_what_meta_bills() {
    assert_eq!(
        translated(SENT).events,
        vec![
            started("2025-06-18", 1_750_263_700),
            event(
                "MessageSent",
                &format!("wa:status:{WAMID_OUT}:sent"),
                1_750_263_700,
                json!({
                    "conversation_id": CHAT,
                    "channel": "whatsapp_cloud_api",
                    "phone_number_id": "106540352242922",
                    "message_id": WAMID_OUT,
                    "to": "+16505551234",
                    "recipient_id": "16505551234",
                    "status": "sent",
                    "pricing": {"billable": true, "pricing_model": "CBP", "category": "service"},
                    "whatsapp_conversation_id": "6ceb9d929c9bdc4f90e967a32f8639b4",
                    "conversation_origin": "service",
                    "conversation_expires_at": "2025-06-19T16:22:00Z",
                }),
            ),
        ]
    );
}

#[test]
fn delivered_and_read_follow_the_same_message_in_the_same_chat() {
    let delivered = translated(DELIVERED).events;
    // It carries Meta's conversation window, so it would open the chat if
    // the `sent` never came; with it, the key is the same and intake
    // keeps one.
    assert_eq!(
        delivered[0].idempotency_key,
        started("2025-06-18", 0).idempotency_key
    );
    assert_eq!(delivered[0].data, started("2025-06-18", 0).data);
    assert_eq!(
        delivered[1].idempotency_key.as_deref(),
        Some(format!("wa:status:{WAMID_OUT}:delivered").as_str())
    );
    assert_eq!(delivered[1].data["status"], "delivered");
    assert_eq!(delivered[1].data["conversation_id"], CHAT);
    assert!(delivered[1].data.get("conversation_expires_at").is_none());

    assert_eq!(
        translated(READ).events,
        vec![event(
            "MessageSent",
            &format!("wa:status:{WAMID_OUT}:read"),
            1_750_263_991,
            json!({
                "conversation_id": CHAT,
                "channel": "whatsapp_cloud_api",
                "phone_number_id": "106540352242922",
                "message_id": WAMID_OUT,
                "to": "+16505551234",
                "recipient_id": "16505551234",
                "status": "read",
            }),
        )]
    );
}

#[test]
fn a_played_voice_message_is_its_read() {
    let played = READ.replace("\"read\"", "\"played\"");
    assert_eq!(translated(&played).events, translated(READ).events);
}

#[test]
fn a_failure_keeps_whatsapps_error_code() {
    let wamid = "wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI4Qzc5QkNGNTc5NTMyMDU5QzEA";
    assert_eq!(
        translated(FAILED).events,
        vec![event(
            "MessageFailed",
            &format!("wa:status:{wamid}:failed"),
            1_750_350_305,
            json!({
                "conversation_id": CHAT,
                "channel": "whatsapp_cloud_api",
                "phone_number_id": "106540352242922",
                "message_id": wamid,
                "to": "+16505551234",
                "recipient_id": "16505551234",
                "error": {
                    "code": 131047,
                    "title": "Re-engagement message",
                    "message": "Re-engagement message",
                    "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
                    "details": "Message failed to send because more than 24 hours have passed \
                                since the customer last replied to this number.",
                },
            }),
        )]
    );
}

#[test]
fn a_batch_translates_every_entry_change_message_and_status() {
    let t = translated(BATCH);
    let summary: Vec<(&str, &str, &str)> = t
        .events
        .iter()
        .map(|e| {
            (
                e.tenant_id.as_deref().unwrap(),
                e.event_type.as_str(),
                e.data["conversation_id"].as_str().unwrap(),
            )
        })
        .collect();
    let other = "wa-106540352242922-16505559876";
    let globex = "wa-102944729380254-15550123456";
    assert_eq!(
        summary,
        vec![
            ("acme", "ConversationStarted", CHAT),
            ("acme", "MessageReceived", CHAT),
            ("acme", "ConversationStarted", other),
            ("acme", "MessageReceived", other),
            // Sheena's second message: her chat is already open today.
            ("acme", "MessageReceived", CHAT),
            ("acme", "MessageSent", other),
            ("acme", "MessageSent", other),
            ("acme", "MessageSent", CHAT),
            ("globex", "MessageFailed", globex),
        ]
    );
    assert_eq!(t.events[3].data["message"], "Track my order");
    assert_eq!(t.events[3].data["customer"]["name"], "Pablo Morales");
    assert_eq!(
        t.events[3].data["context"]["id"],
        "wamid.HBgLMTY1MDU1NTk4NzYVAgARGBJBQjU4NjI3NkE1OTk0M0E5RDcA"
    );
    assert_eq!(t.events[5].data["pricing"]["pricing_model"], "PMP");
    assert_eq!(t.events[8].data["error"]["code"], 131_026);
    assert_eq!(
        t.skipped,
        vec![
            "entry[2].changes[0] is a `message_template_status_update` change (account, \
             template or number news, not messages)"
        ]
    );
}

#[test]
fn a_redelivery_translates_to_the_same_events() {
    for body in [TEXT, IMAGE, SENT, DELIVERED, READ, FAILED, BATCH] {
        assert_eq!(translated(body), translated(body));
    }
}

#[test]
fn a_conversation_opens_once_a_day_whichever_message_comes_first() {
    // The customer writes, the business answers the same day: one key.
    let reply = SENT.replace("1750263700", "1749416400");
    let asked = translated(TEXT).events[0].clone();
    let answered = translated(&reply).events[0].clone();
    assert_eq!(asked.idempotency_key, answered.idempotency_key);
    assert_eq!(asked.data, answered.data);
    // The next UTC day opens it again.
    let next_day = TEXT.replace("1749416383", "1749427200");
    assert_ne!(
        translated(&next_day).events[0].idempotency_key,
        asked.idempotency_key
    );
}

#[test]
fn a_large_batch_translates_in_full() {
    let mut value: Value = serde_json::from_str(TEXT).unwrap();
    let template = value["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    let status: Value = serde_json::from_str::<Value>(SENT).unwrap()["entry"][0]["changes"][0]
        ["value"]["statuses"][0]
        .clone();
    let change = &mut value["entry"][0]["changes"][0]["value"];
    let messages: Vec<Value> = (0..2000)
        .map(|i| {
            let mut m = template.clone();
            m["id"] = json!(format!("wamid.in{i}"));
            m["from"] = json!(format!("1650555{i:04}"));
            m
        })
        .collect();
    let statuses: Vec<Value> = (0..2000)
        .map(|i| {
            let mut s = status.clone();
            s["id"] = json!(format!("wamid.out{i}"));
            s["recipient_id"] = json!(format!("1650555{i:04}"));
            s
        })
        .collect();
    change["messages"] = Value::Array(messages);
    change["statuses"] = Value::Array(statuses);
    let t = translated(&value.to_string());
    let count = |kind: &str| t.events.iter().filter(|e| e.event_type == kind).count();
    assert_eq!(count("MessageReceived"), 2000);
    assert_eq!(count("MessageSent"), 2000);
    // One chat per customer; the statuses' day is another than the messages'.
    assert_eq!(count("ConversationStarted"), 4000);
}

#[test]
fn refusals_name_the_path_and_the_fix() {
    let refused = |body: &str| translate(body.as_bytes(), &tenants()).unwrap_err().0;
    assert_eq!(
        refused(&TEXT.replace("106540352242922", "123")),
        "entry[0].changes[0].value.metadata.phone_number_id `123` is not mapped to a tenant: \
         add it to [webhooks.whatsapp] tenants"
    );
    assert_eq!(
        refused(&TEXT.replace("whatsapp_business_account", "page")),
        "object is `page`, expected `whatsapp_business_account`: this is not a WhatsApp \
         Business Account webhook"
    );
    assert_eq!(
        refused(r#"{"object": "whatsapp_business_account"}"#),
        "entry is missing"
    );
    assert_eq!(
        refused(&FAILED.replace(
            "\"id\": \"wamid.HBgLMTY1MDU1NTEyMzQVAgARGBI4Qzc5QkNGNTc5NTMyMDU5QzEA\",",
            ""
        )),
        "entry[0].changes[0].value.statuses[0].id is missing"
    );
    assert_eq!(
        refused(&READ.replace("\"1750263991\"", "\"yesterday\"")),
        "entry[0].changes[0].value.statuses[0].timestamp is `yesterday`, expected a Unix time \
         in seconds"
    );
    let mut value: Value = serde_json::from_str(TEXT).unwrap();
    value["entry"][0]["changes"][0]["value"]["messages"] = json!({"x": 1});
    assert_eq!(
        refused(&value.to_string()),
        "entry[0].changes[0].value.messages is an object, expected an array"
    );
    let mut bad_tenant = tenants();
    bad_tenant.insert("106540352242922".into(), "acme corp".into());
    let err = translate(TEXT.as_bytes(), &bad_tenant).unwrap_err().0;
    assert!(
        err.starts_with("[webhooks.whatsapp] tenants maps `106540352242922` to a tenant id"),
        "{err}"
    );
}

#[test]
fn unknown_states_and_notices_are_skipped_with_a_reason() {
    let t = translated(&READ.replace("\"read\"", "\"deleted\""));
    assert!(t.events.is_empty());
    assert_eq!(
        t.skipped,
        vec![
            "entry[0].changes[0].value.statuses[0].status `deleted` is not a delivery state \
             pytake tracks (sent, delivered, read, played, failed)"
        ]
    );
    let t = translated(&TEXT.replace("\"type\": \"text\"", "\"type\": \"system\""));
    assert!(t.events.is_empty());
    assert!(
        t.skipped[0].contains("messages[0] is a system notice"),
        "{t:?}"
    );
}

#[test]
fn a_customer_without_a_phone_number_is_known_by_their_user_id() {
    let hidden = TEXT
        .replace(
            "\"from\": \"16505551234\"",
            "\"from_user_id\": \"US.13491208655302741918\"",
        )
        .replace(
            "\"wa_id\": \"16505551234\"",
            "\"user_id\": \"US.13491208655302741918\"",
        );
    let t = translated(&hidden);
    let received = &t.events[1].data;
    assert_eq!(
        received["conversation_id"],
        "wa-106540352242922-US.13491208655302741918"
    );
    assert_eq!(received["from"], "US.13491208655302741918");
    assert_eq!(
        received["customer"],
        json!({"user_id": "US.13491208655302741918", "name": "Sheena Nelson"})
    );
}

#[test]
fn signatures_are_checked_against_the_raw_body() {
    let body = TEXT.as_bytes();
    let good = signature("s3cret", body);
    assert_eq!(verify_signature("s3cret", Some(&good), body), Ok(()));
    let upper = format!("sha256={}", good["sha256=".len()..].to_uppercase());
    assert_eq!(verify_signature("s3cret", Some(&upper), body), Ok(()));
    let check = |header: Option<&str>| verify_signature("s3cret", header, body);
    assert_eq!(check(None), Err(SignatureError::Missing));
    assert_eq!(check(Some("")), Err(SignatureError::Missing));
    assert_eq!(check(Some(&good[7..])), Err(SignatureError::Malformed));
    assert_eq!(check(Some("sha1=abc")), Err(SignatureError::Malformed));
    assert_eq!(
        check(Some(&good[..good.len() - 2])),
        Err(SignatureError::Malformed)
    );
    let not_hex = format!("{}zz", &good[..good.len() - 2]);
    assert_eq!(check(Some(&not_hex)), Err(SignatureError::Malformed));
    assert_eq!(
        check(Some(&signature("other", body))),
        Err(SignatureError::Mismatch)
    );
    let changed = TEXT.replace("color", "colour");
    assert_eq!(
        verify_signature("s3cret", Some(&good), changed.as_bytes()),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature("", Some(&signature("", body)), body),
        Err(SignatureError::NotConfigured)
    );
    assert!(SignatureError::Mismatch
        .to_string()
        .contains("[webhooks.whatsapp] app_secret"));
}

#[test]
fn the_handshake_echoes_the_challenge_to_whoever_knows_the_token() {
    let shake = |mode, token, challenge| handshake(mode, token, challenge, "verify-me");
    assert_eq!(
        shake(Some("subscribe"), Some("verify-me"), Some("1158201444")),
        Ok("1158201444".to_string())
    );
    assert_eq!(
        shake(Some("subscribe"), Some("guess"), Some("1")),
        Err(HandshakeError::Forbidden)
    );
    assert_eq!(
        shake(Some("subscribe"), None, Some("1")),
        Err(HandshakeError::Forbidden)
    );
    assert_eq!(
        handshake(Some("subscribe"), Some(""), Some("1"), ""),
        Err(HandshakeError::Forbidden)
    );
    assert!(matches!(
        shake(Some("unsubscribe"), Some("verify-me"), Some("1")),
        Err(HandshakeError::BadRequest(reason)) if reason.contains("`unsubscribe`")
    ));
    assert!(matches!(
        shake(None, Some("verify-me"), Some("1")),
        Err(HandshakeError::BadRequest(_))
    ));
    assert!(matches!(
        shake(Some("subscribe"), Some("verify-me"), None),
        Err(HandshakeError::BadRequest(reason)) if reason.contains("hub.challenge")
    ));
    let long = "9".repeat(MAX_CHALLENGE + 1);
    assert!(matches!(
        shake(Some("subscribe"), Some("verify-me"), Some(&long)),
        Err(HandshakeError::BadRequest(_))
    ));
}
