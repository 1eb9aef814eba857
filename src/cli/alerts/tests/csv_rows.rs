//! CSV, and the bodies read back as the API writes them.

use serde_json::json;

use super::*;
use crate::cli::alerts::csv;
use crate::cli::alerts::fetch::{Acked, RulesPage, SilencesPage};

#[test]
fn list_csv_has_every_field() {
    assert_eq!(
        String::from_utf8(csv::alerts(&page().alerts)).unwrap(),
        "\
id,rule_id,rule_name,condition,metric,comparator,threshold,severity,tenant_id,state,current_value,pending_since,fired_at,resolved_at,incident_id,acknowledged_at,acknowledged_by,silenced
alt_20261203103930c9d0e1f2,slow_erp,Slow ERP,ErpLatency,p95,>=,2000.0,critical,globex,pending,2450.25,2026-12-03T10:39:30.000Z,,,,,,false
alt_20261203103600a1b2c3d4,high_failure_rate,High message failure rate,MessageFailureRate,,>,5.0,warning,acme,firing,12.5,2026-12-03T10:36:00.000Z,2026-12-03T10:37:00.000Z,,inc_20261203103700e5f6a7b8,2026-12-03T10:38:30.000Z,alice,false
alt_20261202220500aabbccdd,queue_backlog,Queue backlog,QueueDepth,,>,500.0,info,system,resolved,120.0,2026-12-02T22:05:00.000Z,2026-12-02T22:10:00.000Z,2026-12-02T23:05:00.000Z,inc_20261202221000deadbeef,,,true
"
    );
}

#[test]
fn incidents_csv_lists_the_alert_ids() {
    assert_eq!(
        String::from_utf8(csv::incidents(&[open_incident(), resolved_incident()])).unwrap(),
        "\
id,correlation_id,tenant_id,state,opened_at,last_fired_at,resolved_at,acknowledged_at,acknowledged_by,last_notified_at,notifications,alert_ids
inc_20261203103700e5f6a7b8,cor_20261203103700c9d0e1f2,acme,firing,2026-12-03T10:37:00.000Z,2026-12-03T10:39:00.000Z,,2026-12-03T10:38:30.000Z,alice,2026-12-03T10:37:00.000Z,2,alt_20261203103600a1b2c3d4 alt_20261203103900ffeeddcc
inc_20261202221000deadbeef,cor_2026120222100012345678,system,resolved,2026-12-02T22:10:00.000Z,2026-12-02T22:10:00.000Z,2026-12-02T23:05:00.000Z,,,,0,alt_20261202220500aabbccdd
"
    );
}

#[test]
fn rules_csv() {
    assert_eq!(
        String::from_utf8(csv::rules(&rules())).unwrap(),
        "\
id,name,condition,metric,comparator,threshold,window,for,severity,enabled,tenant_id,channels
high_failure_rate,High message failure rate,MessageFailureRate,,>,5.0,5m,1m,warning,true,,websocket
cpu_usage,High CPU usage,SystemResourceUsage,cpu,>,80.0,5m,1m,warning,false,,websocket slack email webhook
slow_erp,Slow ERP,ErpLatency,p95,>=,2000.0,10m,0s,critical,true,globex,websocket slack
"
    );
}

#[test]
fn silences_csv() {
    assert_eq!(
        String::from_utf8(csv::silences(&silences())).unwrap(),
        "\
id,rule_id,tenant_id,starts_at,ends_at,reason,created_by
sil_20261203101500a1b2c3d4,,system,2026-12-03T10:15:00.000Z,2026-12-03T10:30:00.000Z,,admin
sil_2026120310390001020304,high_failure_rate,acme,2026-12-03T10:39:00.000Z,2026-12-03T11:39:00.000Z,\"carrier outage, ticket #4411\",alice
"
    );
}

/// CSV writes numbers and durations as the API's JSON does, so a script
/// can join them; the bodies read back whole.
#[test]
fn values_read_as_the_api_writes_them() {
    let body = json!({"alerts": [serde_json::to_value(firing()).unwrap()],
                      "since": "2026-12-02T10:40:00.000Z"});
    assert_eq!(body["alerts"][0]["threshold"].to_string(), "5.0");
    assert_eq!(body["alerts"][0]["current_value"].to_string(), "12.5");
    let read: AlertsPage = serde_json::from_value(body).unwrap();
    assert_eq!(read.alerts, [firing()]);
    let rule = serde_json::to_value(slow_erp()).unwrap();
    assert_eq!(
        (&rule["window"], &rule["for"]),
        (&json!("10m"), &json!("0s"))
    );
    let read: RulesPage = serde_json::from_value(json!({ "rules": [rule] })).unwrap();
    assert_eq!(read.rules, [slow_erp()]);
    let silence = serde_json::to_value(&silences()[1]).unwrap();
    let read: SilencesPage = serde_json::from_value(json!({ "silences": [silence] })).unwrap();
    assert_eq!(read.silences, silences()[1..]);
    let incident = serde_json::to_value(open_incident()).unwrap();
    let read: Acked = serde_json::from_value(json!({ "incident": incident })).unwrap();
    assert_eq!(read.incident, open_incident());
}
