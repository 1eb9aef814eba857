use super::*;
use serde_json::json;

fn rule(v: serde_json::Value) -> Result<AlertRule, String> {
    let mut r: AlertRule = serde_json::from_value(v).map_err(|e| e.to_string())?;
    r.check().map_err(|e| e.to_string())?;
    Ok(r)
}

#[test]
fn a_rule_gets_its_defaults_and_an_id_from_its_name() {
    let r =
        rule(json!({"name": "Too many ERP errors!", "condition": "ErpErrorRate", "threshold": 10}))
            .unwrap();
    assert_eq!(r.id, "too_many_erp_errors");
    assert_eq!(
        (r.comparator, r.severity, r.enabled),
        (Comparator::Above, Severity::Warning, true)
    );
    assert_eq!(
        (r.window, r.for_),
        (Duration::from_secs(300), Duration::from_secs(60))
    );
    assert_eq!(r.channels, vec![Channel::Websocket]);
    let r =
        rule(json!({"name": "mem", "condition": "SystemResourceUsage", "threshold": 90})).unwrap();
    assert_eq!(r.metric.as_deref(), Some("cpu"));
    assert!(r.is_system());
}

#[test]
fn bad_rules_name_the_field() {
    let e = |v| rule(v).unwrap_err();
    assert!(e(json!({"name": "x", "condition": "Nope", "threshold": 1}))
        .contains("unknown variant `Nope`"));
    assert!(
        e(json!({"name": "x", "condition": "QueueDepth"})).contains("missing field `threshold`")
    );
    assert!(
        e(json!({"name": "x", "condition": "QueueDepth", "threshold": 1, "window": "-5m"}))
            .contains("`-5m` is not a duration")
    );
    assert_eq!(
        e(json!({"name": "x", "condition": "QueueDepth", "threshold": 1, "window": "0s"})),
        "window: must be from 1m to 1h"
    );
    assert!(
        e(json!({"name": "x", "condition": "Metric", "threshold": 1}))
            .starts_with("metric: the Metric condition needs one of: messages_sent")
    );
    assert!(
        e(json!({"name": "x", "condition": "Metric", "metric": "nope", "threshold": 1}))
            .starts_with("metric: unknown metric `nope`")
    );
    assert_eq!(
        e(json!({"name": "x", "condition": "QueueDepth", "metric": "cpu", "threshold": 1})),
        "metric: QueueDepth takes no metric"
    );
    assert_eq!(
        e(json!({"name": "x", "id": "a b", "condition": "QueueDepth", "threshold": 1})),
        "id: `a b`: 1 to 64 of A-Z a-z 0-9 _ - ."
    );
}

#[test]
fn hysteresis_keeps_a_hovering_value_firing() {
    let c = Comparator::Above;
    assert!(c.breached(5.1, 5.0) && !c.breached(5.0, 5.0));
    // Back under the threshold but within 5 % of it: not cleared.
    assert!(!c.cleared(4.9, 5.0));
    assert!(c.cleared(4.7, 5.0));
    assert!(Comparator::Below.cleared(52.6, 50.0) && !Comparator::Below.cleared(52.4, 50.0));
    assert!(Comparator::AtLeast.cleared(-0.1, 0.0) && !Comparator::AtLeast.cleared(0.0, 0.0));
    // A count rule (`> 0`) resolves when the count is back to 0.
    assert!(Comparator::Above.cleared(0.0, 0.0) && !Comparator::Above.cleared(1.0, 0.0));
    assert!(c.cleared(4.75, 5.0));
}
