//! What both sources promise whatever arrives: no panic, a refusal for
//! what is not their schema, and events that intake accepts.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use serde_json::{json, Value};

use super::*;

type Translate = fn(&[u8], &BTreeMap<String, String>) -> Result<Translation, Unusable>;

const FIXTURES: [(Translate, &str); 13] = [
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/text.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/image.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/status_sent.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/status_delivered.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/status_read.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/status_failed.json"),
    ),
    (
        whatsapp::translate,
        include_str!("../../../tests/fixtures/webhooks/whatsapp/batch.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/messages_upsert.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/messages_upsert_image.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/messages_upsert_from_me.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/send_message.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/messages_update.json"),
    ),
    (
        evolution::translate,
        include_str!("../../../tests/fixtures/webhooks/evolution/connection_update.json"),
    ),
];

/// Every account of the fixtures, for both sources.
fn tenants() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("106540352242922".to_string(), "acme".to_string()),
        ("102944729380254".to_string(), "globex".to_string()),
        ("acme-main".to_string(), "acme".to_string()),
    ])
}

/// Asserts that intake would take every event of `translation` as it is:
/// tenant, key and time set, the key short enough and used once, and
/// `validate_at` passing (known types' fields, rooms from the data).
pub(super) fn assert_valid(translation: &Translation) {
    let now = Utc::now();
    let mut keys = HashSet::new();
    for event in &translation.events {
        let tenant = event.tenant_id.clone().expect("a tenant");
        let key = event.idempotency_key.clone().expect("a key");
        assert!(key.len() <= ids::MAX_KEY, "{key}");
        assert!(keys.insert(key.clone()), "key {key} used twice");
        assert!(event.timestamp.is_some(), "{event:?}");
        if let Err(e) = event.clone().validate_at(tenant, now) {
            panic!("{e}: {event:?}");
        }
    }
}

#[test]
fn every_fixture_translates_to_valid_events() {
    for (translate, body) in FIXTURES {
        let translation = translate(body.as_bytes(), &tenants()).unwrap();
        assert_valid(&translation);
        assert!(
            !translation.events.is_empty() || !translation.skipped.is_empty(),
            "{body}"
        );
    }
}

#[test]
fn truncated_bodies_are_refused() {
    for (translate, body) in FIXTURES {
        // The fixtures end with a newline, whose loss changes nothing.
        let bytes = body.trim_end().as_bytes();
        for end in 0..bytes.len() {
            let result = translate(&bytes[..end], &tenants());
            assert!(
                result.is_err(),
                "{end}: {}",
                String::from_utf8_lossy(&bytes[..end])
            );
        }
    }
}

#[test]
fn garbage_and_deep_nesting_are_refused() {
    let mut garbage: Vec<Vec<u8>> = [
        "",
        "null",
        "[]",
        "1",
        "\"x\"",
        "{}",
        "{\"entry\": []}",
        "\u{feff}{}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    garbage.push(vec![0xff, 0xfe, b'{', b'}']);
    garbage.push(format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes());
    garbage.push(
        format!(
            r#"{{"object": "whatsapp_business_account", "entry": {}{}}}"#,
            "[".repeat(5_000),
            "]".repeat(5_000)
        )
        .into_bytes(),
    );
    garbage.push(
        format!(
            r#"{{"event": "messages.upsert", "instance": "acme-main", "data": {}{}}}"#,
            "{\"a\":".repeat(5_000),
            "}".repeat(5_000)
        )
        .into_bytes(),
    );
    // Bytes from a fixed xorshift: the same "random" input on every run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..200 {
        let noise = (0..256)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        garbage.push(noise);
    }
    for bytes in &garbage {
        for translate in [whatsapp::translate as Translate, evolution::translate] {
            assert!(translate(bytes, &tenants()).is_err());
        }
    }
}

/// Every path of a JSON value, with a setter: `(path, value)` pairs.
fn paths(value: &Value, at: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(at.clone());
    match value {
        Value::Object(fields) => {
            for (name, field) in fields {
                let mut next = at.clone();
                next.push(json!(name));
                paths(field, next, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut next = at.clone();
                next.push(json!(i));
                paths(item, next, out);
            }
        }
        _ => {}
    }
}

fn slot<'v>(value: &'v mut Value, path: &[Value]) -> &'v mut Value {
    path.iter().fold(value, |v, step| match step {
        Value::String(name) => &mut v[name.as_str()],
        step => &mut v[step.as_u64().unwrap() as usize],
    })
}

#[test]
fn any_value_of_the_wrong_type_is_refused_or_still_valid() {
    let replacements = [
        json!(null),
        json!(0),
        json!(-1),
        json!(1e300),
        json!(""),
        json!("x y"),
        json!(true),
        json!([]),
        json!({}),
        json!("9".repeat(400)),
    ];
    for (translate, body) in FIXTURES {
        let original: Value = serde_json::from_str(body).unwrap();
        let mut all = Vec::new();
        paths(&original, Vec::new(), &mut all);
        for path in all.iter().filter(|p| !p.is_empty()) {
            for replacement in &replacements {
                let mut mutated = original.clone();
                *slot(&mut mutated, path) = replacement.clone();
                let bytes = mutated.to_string().into_bytes();
                if let Ok(translation) = translate(&bytes, &tenants()) {
                    assert_valid(&translation);
                }
            }
            // And the field or item gone.
            let mut mutated = original.clone();
            let (last, parent) = path.split_last().unwrap();
            match (slot(&mut mutated, parent), last) {
                (Value::Object(fields), Value::String(name)) => {
                    fields.remove(name);
                }
                (Value::Array(items), index) => {
                    items.remove(index.as_u64().unwrap() as usize);
                }
                _ => unreachable!(),
            }
            if let Ok(translation) = translate(mutated.to_string().as_bytes(), &tenants()) {
                assert_valid(&translation);
            }
        }
    }
}

#[test]
fn secrets_compare_by_value_only() {
    assert!(same_secret("s3cret", "s3cret"));
    assert!(!same_secret("s3cret", "s3cre"));
    assert!(!same_secret("s3cret", "S3cret"));
    assert!(!same_secret("", "s3cret"));
    assert!(same_secret("", ""));
}
