//! The dashboard API against a real server: exact figures for a known set
//! of events, series buckets for every period, bad input, the CSV export
//! read back, and figures across a restart.

use chrono::{DateTime, SecondsFormat, Utc};
use pytake::protocol::metrics::Period;
use serde_json::{json, Value};

use crate::support::{TestServer, DEADLINE};

/// Waits until the server's metrics have counted event `head`; returns
/// the overview then.
pub async fn counted(server: &TestServer, token: &str, query: &str, head: i64) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = server
            .get(Some(token), &format!("/api/v1/dashboard/overview{query}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if body["kpis"]["last_event_id"].as_i64() >= Some(head) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never counted event {head}: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An event of a known type for `tenant`.
pub fn typed(tenant: &str, event_type: &str, data: Value) -> Value {
    json!({"event_type": event_type, "tenant_id": tenant, "data": data})
}

/// seed 000's figures, for two tenants.
pub fn known_events() -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..19 {
        events.push(typed(
            "acme",
            "MessageSent",
            json!({"message_id": format!("m{i}"), "to": "+55", "status": "sent", "conversation_id": "c1"}),
        ));
    }
    events.push(typed(
        "acme",
        "MessageFailed",
        json!({"message_id": "m19", "error": "131026 message undeliverable"}),
    ));
    // Stamped, so the end follows the start however the events are
    // committed (posted at once to two nodes, say).
    let ago = |minutes: i64| at(Utc::now() - chrono::Duration::minutes(minutes));
    for c in ["c1", "c2"] {
        let mut started = typed(
            "acme",
            "ConversationStarted",
            json!({"conversation_id": c, "customer": "Ana"}),
        );
        started["timestamp"] = ago(2).into();
        events.push(started);
    }
    let mut ended = typed(
        "acme",
        "ConversationEnded",
        json!({"conversation_id": "c2"}),
    );
    ended["timestamp"] = ago(1).into();
    events.push(ended);
    for (ms, ok) in [(80, true), (120, true), (4000, false)] {
        events.push(typed(
            "acme",
            "ERPCall",
            json!({"provider": "sap", "endpoint": "/orders", "response_time": ms, "success": ok}),
        ));
    }
    events.push(typed(
        "acme",
        "AIInteraction",
        json!({"user": "u1", "prompt": "p", "response": "r", "tokens": 150}),
    ));
    events.push(typed(
        "acme",
        "TicketCreated",
        json!({"ticket_id": "T-1", "customer": "Ana", "issue": "late"}),
    ));
    for i in 0..2 {
        events.push(typed(
            "globex",
            "MessageSent",
            json!({"message_id": format!("g{i}"), "to": "+55", "status": "sent"}),
        ));
    }
    events
}

#[tokio::test]
async fn the_overview_counts_a_known_set_of_events_exactly() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ids = server.publish(&admin, Value::Array(known_events())).await;
    let head = *ids.last().unwrap();
    let acme = server.viewer("acme");
    let overview = counted(&server, &acme, "", head).await;
    let k = &overview["kpis"];
    assert_eq!(overview["tenant_id"], "acme");
    assert_eq!(k["tenant_id"], "acme");
    assert_eq!(k["messages_sent"], 19);
    assert_eq!(k["messages_failed"], 1);
    assert_eq!(k["message_failure_rate"], 5.0);
    assert_eq!(k["active_conversations"], 1);
    assert_eq!(k["conversations_started"], 2);
    assert_eq!(k["erp_calls"], 3);
    assert_eq!(k["erp_errors"], 1);
    assert_eq!(k["erp_error_rate"], 33.33);
    assert_eq!(k["ai_interactions"], 1);
    assert_eq!(k["ai_tokens"], 150);
    assert_eq!(k["tickets_created"], 1);
    assert_eq!(k["events_total"], 28);
    let names: Vec<&str> = overview["subsystems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["store", "bus", "gateway", "intake", "metrics", "queue"]
    );
    for s in overview["subsystems"].as_array().unwrap() {
        assert_eq!(s["status"], "ok", "{s}");
    }
    assert!(overview["system"]["store_pool"]["max"].as_u64() > Some(0));

    // Every tenant, for an admin; a named tenant for an admin too.
    let all = counted(&server, &admin, "", head).await;
    assert_eq!(all["tenant_id"], Value::Null);
    assert_eq!(all["kpis"]["messages_sent"], 21);
    let globex = counted(&server, &admin, "?tenant_id=globex", head).await;
    assert_eq!(globex["kpis"]["messages_sent"], 2);
    assert_eq!(globex["kpis"]["messages_failed"], 0);

    // Another tenant's figures are not a viewer's to see.
    let (status, body) = server
        .get(Some(&acme), "/api/v1/dashboard/overview?tenant_id=globex")
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["message"],
        "this token may not see tenant `globex`"
    );
    let (status, _) = server.get(None, "/api/v1/dashboard/overview").await;
    assert_eq!(status, 401);

    // The same figures on /metrics, by tenant.
    let scrape = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scrape.contains("pytake_messages_sent_total{tenant=\"acme\"} 19\n"),
        "{scrape}"
    );
    assert!(scrape.contains("pytake_messages_sent_total{tenant=\"globex\"} 2\n"));
    assert!(scrape.contains("pytake_erp_latency_seconds_count{tenant=\"acme\"} 3\n"));
    assert!(scrape.contains("pytake_active_conversations{tenant=\"acme\"} 1\n"));
    // And in /health, the machine.
    let (_, health) = server.get(None, "/health").await;
    assert!(
        health["system"]["memory_usage"].as_f64().is_some(),
        "{health}"
    );
}

/// For each period: an event in the bucket under way (at its first
/// second) and one in the bucket before (at its last second) land in
/// those buckets; every other bucket is present and zero.
#[tokio::test]
async fn every_period_buckets_its_events_and_keeps_empty_buckets_as_zeros() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let now = Utc::now();
    let mut head = 0;
    for period in Period::ALL {
        let size = period.bucket_seconds();
        let current = now.timestamp().div_euclid(size) * size;
        let tenant = format!("p{}", period.name());
        let stamp = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
        let events: Vec<Value> = [current, current - 1, current - 1]
            .iter()
            .map(|t| {
                json!({"event_type": "MessageSent", "tenant_id": tenant, "timestamp": at(stamp(*t)),
                       "data": {"message_id": "m", "to": "+55", "status": "sent"}})
            })
            .collect();
        head = *server
            .publish(&admin, Value::Array(events))
            .await
            .last()
            .unwrap();
    }
    counted(&server, &admin, "", head).await;
    for period in Period::ALL {
        let size = period.bucket_seconds();
        let current = now.timestamp().div_euclid(size) * size;
        let (status, series) = server
            .get(
                Some(&admin),
                &format!(
                    "/api/v1/dashboard/metrics?period={}&tenant_id=p{}&metrics=messages_sent,events_per_second",
                    period.name(),
                    period.name()
                ),
            )
            .await;
        assert_eq!(status, 200, "{series}");
        assert_eq!(series["bucket_seconds"], size);
        assert_eq!(
            series["metrics"],
            json!(["messages_sent", "events_per_second"])
        );
        let points = series["points"].as_array().unwrap();
        assert_eq!(points.len() as i64, period.points(), "{period}");
        let mut sum = 0.0;
        for (i, point) in points.iter().enumerate() {
            let t = DateTime::parse_from_rfc3339(point["timestamp"].as_str().unwrap())
                .unwrap()
                .timestamp();
            if i > 0 {
                let before =
                    DateTime::parse_from_rfc3339(points[i - 1]["timestamp"].as_str().unwrap())
                        .unwrap()
                        .timestamp();
                assert_eq!(t - before, size, "{period}: evenly spaced");
            }
            let expected = if t == current {
                1.0
            } else if t == current - size {
                2.0
            } else {
                0.0
            };
            assert_eq!(point["messages_sent"], expected, "{period} at {t}");
            let per_second = ((expected / size as f64) * 100.0).round() / 100.0;
            assert_eq!(point["events_per_second"], per_second, "{period} at {t}");
            sum += point["messages_sent"].as_f64().unwrap();
        }
        assert_eq!(sum, 3.0, "{period}: every event in some bucket");
    }
}

#[tokio::test]
async fn unknown_periods_and_metrics_are_refused_naming_the_valid_ones() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let (status, body) = server
        .get(Some(&admin), "/api/v1/dashboard/metrics?period=2h")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "period: unknown period `2h`; valid: 1h, 24h, 7d, 30d"
    );
    let (status, body) = server
        .get(
            Some(&admin),
            "/api/v1/dashboard/metrics?metrics=messages_sent,bogus",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "metrics: unknown metric `bogus`; valid: messages_sent, messages_received,"
        ),
        "{message}"
    );
    let export = |body: Value| {
        let url = format!("{}/api/v1/dashboard/export", server.url);
        let admin = admin.clone();
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = export(json!({"format": "csv", "period": "2h"})).await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown variant `2h`"), "{message}");
    assert!(message.contains("`1h`, `24h`, `7d`, `30d`"), "{message}");
    let (status, body) = export(json!({"format": "xml", "period": "1h"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`csv`, `json`, `ndjson`"));
    let (status, body) = export(json!({"period": "1h", "metrics": ["nope"]})).await;
    assert_eq!(status, 400, "{body}");
    let viewer = server.viewer("acme");
    let (status, _) = server
        .get(Some(&viewer), "/api/v1/dashboard/metrics?tenant_id=globex")
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_csv_export_reads_back_as_the_series() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let ids = server.publish(&admin, Value::Array(known_events())).await;
    counted(&server, &admin, "", *ids.last().unwrap()).await;
    let metrics = [
        "messages_sent",
        "messages_failed",
        "message_failure_rate",
        "erp_latency_p95_ms",
    ];
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/dashboard/export", server.url))
        .bearer_auth(&admin)
        .json(&json!({"format": "csv", "period": "1h", "metrics": metrics, "tenant_id": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"pytake-metrics-acme-1h.csv\""
    );
    let text = resp.text().await.unwrap();
    let (_, series) = server
        .get(
            Some(&admin),
            &format!(
                "/api/v1/dashboard/metrics?period=1h&tenant_id=acme&metrics={}",
                metrics.join(",")
            ),
        )
        .await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "timestamp",
            "messages_sent",
            "messages_failed",
            "message_failure_rate",
            "erp_latency_p95_ms"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let points = series["points"].as_array().unwrap();
    // A minute may turn between the two reads: compare the buckets both have.
    let mut compared = 0;
    for row in &rows {
        let Some(point) = points.iter().find(|p| p["timestamp"] == row[0]) else {
            continue;
        };
        for (i, metric) in metrics.iter().enumerate() {
            assert_eq!(
                row[i + 1].parse::<f64>().unwrap(),
                point[*metric].as_f64().unwrap(),
                "{metric} at {}",
                &row[0]
            );
        }
        compared += 1;
    }
    assert!(compared >= 59, "{compared} buckets in common");
    let total: f64 = rows.iter().map(|r| r[1].parse::<f64>().unwrap()).sum();
    assert_eq!(total, 19.0);
}

#[tokio::test]
async fn figures_survive_a_restart_without_loss_or_double_counting() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let ids = server.publish(&admin, Value::Array(known_events())).await;
    let before = counted(&server, &admin, "?tenant_id=acme", *ids.last().unwrap()).await;
    server.restart().await;
    let after = counted(&server, &admin, "?tenant_id=acme", *ids.last().unwrap()).await;
    for key in [
        "messages_sent",
        "messages_failed",
        "active_conversations",
        "erp_calls",
        "ai_tokens",
        "events_total",
        "message_failure_rate",
        "erp_latency_p95_ms",
    ] {
        assert_eq!(after["kpis"][key], before["kpis"][key], "{key}");
    }
    let more = server
        .publish(
            &admin,
            json!([typed(
                "acme",
                "MessageSent",
                json!({"message_id": "x", "to": "+55", "status": "sent"})
            )]),
        )
        .await;
    let later = counted(&server, &admin, "?tenant_id=acme", more[0]).await;
    assert_eq!(later["kpis"]["messages_sent"], 20);
    let (_, series) = server
        .get(
            Some(&admin),
            "/api/v1/dashboard/metrics?period=1h&tenant_id=acme&metrics=messages_sent",
        )
        .await;
    let total: f64 = series["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["messages_sent"].as_f64().unwrap())
        .sum();
    assert_eq!(total, 20.0);
}
