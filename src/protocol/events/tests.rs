use super::*;
use serde_json::json;

fn new(event_type: &str, data: Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        data,
        ..NewEvent::default()
    }
}

#[test]
fn required_fields_are_named() {
    let err = new("MessageSent", json!({"to": "+55", "status": "sent"}))
        .validate("acme".into())
        .unwrap_err();
    assert_eq!(err.field, "data.message_id");
    assert_eq!(err.problem, "required for MessageSent");
}

#[test]
fn wrong_types_are_named() {
    let err = new(
        "ERPCall",
        json!({"provider": "sap", "endpoint": "/x", "response_time": "slow", "success": true}),
    )
    .validate("acme".into())
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "data.response_time: expected a number, got a string"
    );
}

#[test]
fn campaign_lifecycle_is_checked() {
    let err = new(
        "CampaignUpdate",
        json!({"campaign_id": "C1", "event": "exploded"}),
    )
    .validate("acme".into())
    .unwrap_err();
    assert_eq!(err.field, "data.event");
    let ok = new(
        "CampaignUpdate",
        json!({"campaign_id": "C1", "event": "progress"}),
    )
    .validate("acme".into())
    .unwrap();
    assert_eq!(ok.rooms, vec!["campaigns", "campaign:C1"]);
}

#[test]
fn default_rooms_follow_the_design() {
    let ev = new(
        "MessageSent",
        json!({"message_id": 1, "to": "+55", "status": "sent", "conversation_id": "c9"}),
    )
    .validate("acme".into())
    .unwrap();
    assert_eq!(
        ev.rooms,
        vec!["dashboard", "conversations", "conversation:c9"]
    );
    let custom = new("OrderShipped", json!({}))
        .validate("acme".into())
        .unwrap();
    assert_eq!(custom.rooms, vec!["dashboard"]);
    let transfer = new(
        "ConversationTransferred",
        json!({"conversation_id": "c9", "from_user": null, "to_user": "bob", "note": null}),
    )
    .validate("acme".into())
    .unwrap();
    assert_eq!(
        transfer.rooms,
        vec!["conversations", "conversation:c9", "user:bob"]
    );
}

#[test]
fn explicit_rooms_are_checked_and_deduplicated() {
    let mut ev = new("OrderShipped", json!({}));
    ev.rooms = Some(vec!["erp".into(), "erp".into(), "user:7".into()]);
    assert_eq!(
        ev.validate("acme".into()).unwrap().rooms,
        vec!["erp", "user:7"]
    );
    let mut bad = new("OrderShipped", json!({}));
    bad.rooms = Some(vec!["erp".into(), "nope".into()]);
    assert_eq!(bad.validate("acme".into()).unwrap_err().field, "rooms[1]");
}

#[test]
fn an_event_names_at_most_100_rooms() {
    let rooms = |n: usize| Some((0..n).map(|i| format!("campaign:{i}")).collect());
    let mut most = new("OrderShipped", json!({}));
    most.rooms = rooms(100);
    assert_eq!(most.validate("acme".into()).unwrap().rooms.len(), 100);
    let mut over = new("OrderShipped", json!({}));
    over.rooms = rooms(101);
    assert_eq!(over.validate("acme".into()).unwrap_err().field, "rooms");
}

#[test]
fn an_id_that_cannot_key_its_room_is_refused() {
    let err = new(
        "ConversationStarted",
        json!({"conversation_id": "c\"1", "customer": "x"}),
    )
    .validate("acme".into())
    .unwrap_err();
    assert_eq!(err.field, "data.conversation_id");
    assert!(err.problem.contains("1 to 128 characters"), "{err}");
    let long = new(
        "MessageSent",
        json!({"message_id": 1, "to": "+55", "status": "sent", "conversation_id": "x".repeat(10_000)}),
    );
    assert_eq!(
        long.validate("acme".into()).unwrap_err().field,
        "data.conversation_id"
    );
    let mut explicit = new(
        "MessageSent",
        json!({"message_id": 1, "to": "+55", "status": "sent", "conversation_id": {"a": 1}}),
    );
    assert_eq!(
        explicit.clone().validate("acme".into()).unwrap_err().field,
        "data.conversation_id"
    );
    explicit.rooms = Some(vec!["dashboard".into()]);
    assert!(explicit.validate("acme".into()).is_ok());
}

#[test]
fn the_fingerprint_ignores_form_and_timestamp_but_not_content() {
    let posted = |body: &str| {
        serde_json::from_str::<NewEvent>(body)
            .unwrap()
            .validate("acme".into())
            .unwrap()
            .fingerprint
            .unwrap()
    };
    let first = posted(r#"{"event_type":"X","idempotency_key":"k","data":{"a":1,"b":[2]}}"#);
    let same = posted(
        r#"{ "data": {"b": [2], "a": 1}, "tenant_id": "acme", "rooms": ["dashboard"],
             "timestamp": "2026-01-01T00:00:00Z", "event_type": "X", "idempotency_key": "k" }"#,
    );
    assert_eq!(first, same);
    for other in [
        r#"{"event_type":"X","idempotency_key":"k","data":{"a":2,"b":[2]}}"#,
        r#"{"event_type":"X","idempotency_key":"k","data":{"a":1.0,"b":[2]}}"#,
        r#"{"event_type":"Y","idempotency_key":"k","data":{"a":1,"b":[2]}}"#,
        r#"{"event_type":"X","idempotency_key":"k","rooms":["erp"],"data":{"a":1,"b":[2]}}"#,
    ] {
        assert_ne!(posted(other), first, "{other}");
    }
}

#[test]
fn unknown_fields_are_refused() {
    let err =
        serde_json::from_value::<NewEvent>(json!({"event_type": "OrderShipped", "room": "alerts"}))
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `room`"), "{err}");
}

#[test]
fn data_must_be_an_object() {
    let err = new("OrderShipped", json!([1]))
        .validate("acme".into())
        .unwrap_err();
    assert_eq!(err.field, "data");
}
