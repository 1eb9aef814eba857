//! Campaign analytics and the streamed exports against a real server.

use chrono::{Duration as Chrono, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::dashboard::{counted, typed};
use crate::support::TestServer;

/// Seed 003's flow for campaign `CAMP-1` of `acme`: 10 contacts, 6 sent,
/// 2 failed ("Timeout" twice... once more as "Invalid number"), two calls.
fn campaign_events() -> Vec<Value> {
    let start = Utc::now() - Chrono::minutes(10);
    let at =
        |secs: i64| (start + Chrono::seconds(secs)).to_rfc3339_opts(SecondsFormat::Millis, true);
    let c = |secs: i64, data: Value| {
        let mut e = typed("acme", "CampaignUpdate", data);
        e["timestamp"] = at(secs).into();
        e
    };
    let mut events = vec![
        c(
            0,
            json!({"campaign_id": "CAMP-1", "event": "campaign_created", "name": "Natal", "total_contacts": 10}),
        ),
        c(
            10,
            json!({"campaign_id": "CAMP-1", "event": "campaign_started"}),
        ),
    ];
    // Sends 60 s apart: 6 sends over 5 minutes.
    for i in 0..6 {
        events.push(c(
            20 + i * 60,
            json!({"campaign_id": "CAMP-1", "event": "message_sent", "phone": "+55"}),
        ));
    }
    events.push(c(
        30,
        json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Timeout"}),
    ));
    events.push(c(
        40,
        json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Timeout"}),
    ));
    events.push(c(
        50,
        json!({"campaign_id": "CAMP-1", "event": "message_failed", "error": "Invalid number"}),
    ));
    for outcome in ["answered", "converted"] {
        let mut e = typed(
            "acme",
            "CallEvent",
            json!({"campaign_id": "CAMP-1", "outcome": outcome}),
        );
        e["timestamp"] = at(60).into();
        events.push(e);
    }
    events.push(c(
        400,
        json!({"campaign_id": "CAMP-2", "event": "campaign_started", "total_contacts": 5}),
    ));
    events
}

#[tokio::test]
async fn campaign_figures_are_exact() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ids = server
        .publish(&admin, Value::Array(campaign_events()))
        .await;
    let acme = server.viewer("acme");
    counted(&server, &acme, "", *ids.last().unwrap()).await;

    let (status, m) = server
        .get(Some(&acme), "/api/v1/campaigns/CAMP-1/metrics")
        .await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["campaign_id"], "CAMP-1");
    assert_eq!(m["name"], "Natal");
    assert_eq!(m["status"], "running");
    assert_eq!(m["total_contacts"], 10);
    assert_eq!(
        (m["sent_count"].as_i64(), m["error_count"].as_i64()),
        (Some(6), Some(3))
    );
    assert_eq!(m["progress_percentage"], 90.0);
    assert_eq!(m["success_rate"], 66.67);
    assert_eq!(m["error_rate"], 33.33);
    // 33 % errors (-30), 67 % success (-25), pace of a send a minute or so.
    assert_eq!(m["health_score"], 45);
    assert_eq!(m["health"], "poor");
    assert_eq!(m["outcomes"]["answered"], 1);
    assert_eq!(m["outcomes"]["converted"], 1);
    assert_eq!(m["answer_rate"], 100.0);
    assert_eq!(m["conversion_rate"], 50.0);

    let (status, p) = server
        .get(Some(&acme), "/api/v1/campaigns/CAMP-1/performance")
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(
        p["top_errors"],
        json!([
            {"error_message": "Timeout", "count": 2, "percentage": 66.67},
            {"error_message": "Invalid number", "count": 1, "percentage": 33.33}
        ])
    );
    assert_eq!(p["timing_stats"]["avg_send_time_seconds"], 60.0);
    assert_eq!(p["timing_stats"]["min_send_time_seconds"], 60.0);
    assert_eq!(p["timing_stats"]["max_send_time_seconds"], 60.0);
    assert_eq!(p["timing_stats"]["intervals"], 5);
    let hours = p["hourly_analysis"].as_array().unwrap();
    let total: i64 = hours.iter().map(|h| h["total"].as_i64().unwrap()).sum();
    let sent: i64 = hours.iter().map(|h| h["sent"].as_i64().unwrap()).sum();
    assert_eq!((total, sent), (9, 6));

    let (status, list) = server.get(Some(&acme), "/api/v1/campaigns").await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["campaign_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["CAMP-2", "CAMP-1"], "the most recent first");

    let (status, d) = server.get(Some(&acme), "/api/v1/campaigns/dashboard").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["summary"]["total_campaigns"], 2);
    assert_eq!(d["summary"]["running_campaigns"], 2);
    assert_eq!(d["summary"]["completed_campaigns"], 0);
    // Only CAMP-1 sent anything.
    assert_eq!(d["summary"]["avg_success_rate"], 66.67);
    let days = d["daily_performance"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let day_sent: i64 = days.iter().map(|d| d["sent"].as_i64().unwrap()).sum();
    assert_eq!(day_sent, 6);
    assert_eq!(
        days.last().unwrap()["date"],
        Utc::now().format("%Y-%m-%d").to_string()
    );

    // Bad asks.
    let (status, body) = server
        .get(Some(&acme), "/api/v1/campaigns/CAMP-9/metrics")
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = server
        .get(Some(&admin), "/api/v1/campaigns/CAMP-1/metrics")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tenant_id: required"));
    let (status, _) = server
        .get(
            Some(&server.viewer("globex")),
            "/api/v1/campaigns/CAMP-1/metrics?tenant_id=acme",
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = server
        .get(
            Some(&server.viewer("globex")),
            "/api/v1/campaigns/CAMP-1/metrics",
        )
        .await;
    assert_eq!(status, 404, "globex has no CAMP-1");

    // The report: campaign, performance and every message, one document.
    let report: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/campaigns/CAMP-1/export", server.url))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["campaign"]["sent_count"], 6);
    assert_eq!(report["performance"]["top_errors"][0]["count"], 2);
    assert_eq!(report["messages"].as_array().unwrap().len(), 13);
}

/// An export of more events than a page, filtered by type and time.
#[tokio::test]
async fn the_events_export_streams_every_matching_event() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let mut batch = Vec::new();
    for i in 0..2500 {
        let kind = if i % 5 == 0 {
            "MessageFailed"
        } else {
            "MessageSent"
        };
        batch.push(typed(
            "acme",
            kind,
            json!({"message_id": format!("m{i}"), "to": "+55", "status": "sent", "error": "x"}),
        ));
    }
    let mut first = Vec::new();
    for part in batch[..1250].chunks(625) {
        first.extend(server.publish(&admin, Value::Array(part.to_vec())).await);
    }
    // A moment between the two halves, by the server's millisecond clock.
    let split = Utc::now() + Chrono::milliseconds(2);
    while Utc::now() <= split {
        std::hint::spin_loop();
    }
    let mut second = Vec::new();
    for part in batch[1250..].chunks(625) {
        second.extend(server.publish(&admin, Value::Array(part.to_vec())).await);
    }
    let export = |query: String| {
        let url = format!("{}/api/v1/events/export?{query}", server.url);
        let admin = admin.clone();
        async move {
            let resp = reqwest::Client::new()
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            (
                resp.headers()["content-type"].to_str().unwrap().to_string(),
                resp.text().await.unwrap(),
            )
        }
    };
    let (kind, all) = export("format=ndjson".into()).await;
    assert_eq!(kind, "application/x-ndjson");
    let lines: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2500);
    let ids: Vec<i64> = lines.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(
        ids,
        first.iter().chain(&second).copied().collect::<Vec<_>>()
    );

    let (_, failed) = export("event_types=MessageFailed&format=json".into()).await;
    let failed: Vec<Value> = serde_json::from_str(&failed).unwrap();
    assert_eq!(failed.len(), 500);

    let until = split.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (kind, csv_text) = export(format!("format=csv&until={}", urlencode(&until))).await;
    assert_eq!(kind, "text/csv; charset=utf-8");
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "id",
            "timestamp",
            "tenant_id",
            "event_type",
            "room",
            "rooms",
            "data"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        rows.len(),
        1250,
        "only the first half was received before {until}"
    );
    let data: Value = serde_json::from_str(&rows[0][6]).unwrap();
    assert_eq!(data["message_id"], "m0");
    let (_, later) = export(format!("since_time={}", urlencode(&until))).await;
    assert_eq!(later.lines().count(), 1250);

    let (status, body) = server
        .get(Some(&admin), "/api/v1/events/export?format=xml")
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = server
        .get(
            Some(&server.viewer("acme")),
            "/api/v1/events/export?tenant_id=globex",
        )
        .await;
    assert_eq!(status, 403);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
