//! The handler against real local peers (an HTTP server on loopback, a
//! closed port), and the fixtures the channels' tests share.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

use super::*;
use crate::protocol::alerts::{Alert, AlertState, Comparator, Condition, Incident, Severity};
use crate::server::alerts::notification::{Reason, Window};
use crate::server::storage::jobs::JobStatus;

/// A firing alert of tenant `acme` at 7.5 % against > 5 %.
pub fn alert(rule_id: &str, name: &str, severity: Severity) -> Alert {
    Alert {
        id: format!("al-{rule_id}"),
        rule_id: rule_id.into(),
        rule_name: name.into(),
        condition: Condition::MessageFailureRate,
        metric: None,
        comparator: Comparator::Above,
        threshold: 5.0,
        severity,
        tenant_id: "acme".into(),
        state: AlertState::Firing,
        current_value: 7.5,
        pending_since: "2026-12-03T16:00:00Z".into(),
        fired_at: Some("2026-12-03T16:01:00Z".into()),
        resolved_at: None,
        incident_id: Some("inc-1".into()),
        acknowledged_at: None,
        acknowledged_by: None,
        silenced: false,
    }
}

/// Incident `inc-1` of `acme` with one critical alert, to Slack.
pub fn notification(reason: Reason) -> Notification {
    Notification {
        channel: Channel::Slack,
        reason,
        incident: Incident {
            id: "inc-1".into(),
            correlation_id: "corr-7f3a".into(),
            tenant_id: "acme".into(),
            state: AlertState::Firing,
            opened_at: "2026-12-03T16:01:00Z".into(),
            last_fired_at: "2026-12-03T16:01:00Z".into(),
            resolved_at: None,
            acknowledged_at: None,
            acknowledged_by: None,
            last_notified_at: None,
            notifications: 1,
            alert_ids: vec!["al-high_failure_rate".into()],
        },
        alerts: vec![alert(
            "high_failure_rate",
            "High message failure rate",
            Severity::Critical,
        )],
        windows: BTreeMap::from([(
            "high_failure_rate".to_string(),
            Window(Duration::from_secs(300)),
        )]),
    }
}

fn job(n: &Notification) -> Job {
    let now = chrono::Utc::now();
    Job {
        id: 7,
        queue: "default".into(),
        kind: crate::server::alerts::notification::NOTIFY_KIND.into(),
        payload: serde_json::to_value(n).unwrap(),
        priority: 0,
        status: JobStatus::Running,
        attempts: 1,
        max_attempts: 3,
        run_at: now,
        lease_expires_at: None,
        last_error: None,
        correlation_id: None,
        tenant_id: None,
        created_at: now,
        updated_at: now,
    }
}

/// An HTTP peer on loopback answering with `statuses` in turn (then
/// 200), keeping what it received.
struct Peer {
    base: String,
    received: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn peer(statuses: &[u16]) -> Peer {
    let answers = Arc::new(Mutex::new(
        statuses.iter().copied().collect::<VecDeque<_>>(),
    ));
    let received = Arc::new(Mutex::new(Vec::new()));
    let kept = received.clone();
    let app = Router::new().route(
        "/services/T0/B0/s3cret",
        post(move |headers: HeaderMap, body: String| {
            let (answers, kept) = (answers.clone(), kept.clone());
            async move {
                kept.lock()
                    .unwrap()
                    .push((headers, serde_json::from_str(&body).unwrap()));
                let status = answers.lock().unwrap().pop_front().unwrap_or(200);
                (StatusCode::from_u16(status).unwrap(), "boom")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Peer { base, received }
}

fn notifier(configure: impl FnOnce(&mut Settings), threshold: u32) -> Notifier {
    let mut settings = Settings::default();
    settings.queue.http_timeout = Duration::from_secs(5);
    configure(&mut settings);
    Notifier::new(
        &settings,
        Arc::new(Breakers::new(threshold, Duration::from_secs(30))),
    )
}

#[test]
fn the_start_up_log_names_each_channels_host_or_off() {
    let mut settings = Settings::default();
    assert_eq!(destinations(&settings), "slack off, email off, webhook off");
    settings.slack.webhook_url = Some("https://hooks.slack.com/services/T0/B0/s3cret".into());
    settings.alerts.webhook_url = Some("http://10.1.2.3:8000/hook?token=t0ken".into());
    settings.smtp.host = Some("smtp.example.com".into());
    settings.smtp.to = vec!["oncall@example.com".into()];
    assert_eq!(
        destinations(&settings),
        "slack hooks.slack.com:443, email smtp.example.com:587, webhook 10.1.2.3:8000"
    );
}

#[test]
fn payloads_that_do_not_parse_name_the_field() {
    let mut v = serde_json::to_value(notification(Reason::Firing)).unwrap();
    v["channel"] = json!("sms");
    assert_eq!(
        parse(&v).unwrap_err(),
        "payload.channel: unknown variant `sms`, expected one of `websocket`, `slack`, `email`, `webhook`"
    );
    let mut v = serde_json::to_value(notification(Reason::Firing)).unwrap();
    v["alerts"][0]["threshold"] = json!("high");
    assert_eq!(
        parse(&v).unwrap_err(),
        "payload.alerts[0].threshold: invalid type: string \"high\", expected f64"
    );
    v["alerts"] = json!([]);
    assert_eq!(
        parse(&v).unwrap_err(),
        "payload.alerts: empty: a notification is about at least one alert"
    );
    assert_eq!(
        parse(&json!("hi")).unwrap_err(),
        "payload: invalid type: string \"hi\", expected struct Notification"
    );
}

#[tokio::test]
async fn a_bad_payload_is_dead_at_once() {
    let mut j = job(&notification(Reason::Firing));
    j.payload["reason"] = json!("maybe");
    let err = notifier(|_| {}, 5).run(&j).await.unwrap_err();
    assert_eq!(
        err,
        JobError::Fatal(
            "payload.reason: unknown variant `maybe`, expected one of `firing`, `repeat`, `resolved`"
                .into()
        )
    );
}

#[tokio::test]
async fn a_channel_not_configured_is_dead_with_what_to_set() {
    let n = notifier(|_| {}, 5);
    let mut note = notification(Reason::Firing);
    let cases = [
        (Channel::Slack, "the slack channel is not configured on this node: set [slack] webhook_url (or webhook_url_file)"),
        (Channel::Email, "the email channel is not configured on this node: set [smtp] host and to"),
        (Channel::Webhook, "the webhook channel is not configured on this node: set [alerts] webhook_url"),
    ];
    for (channel, reason) in cases {
        note.channel = channel;
        assert_eq!(
            n.run(&job(&note)).await,
            Err(JobError::Fatal(reason.into()))
        );
    }
    note.channel = Channel::Websocket;
    assert_eq!(n.run(&job(&note)).await, Ok(()), "nothing to send");

    let n = notifier(
        |s| s.slack.webhook_url = Some("ftp://hooks.example.com/s3cret".into()),
        5,
    );
    note.channel = Channel::Slack;
    assert_eq!(
        n.run(&job(&note)).await,
        Err(JobError::Fatal(
            "the slack channel's URL cannot be used: [slack] webhook_url (or webhook_url_file) must be an http:// or https:// URL with a host, not a `ftp:` URL".into()
        ))
    );
}

#[tokio::test]
async fn slack_and_webhook_post_to_the_configured_urls() {
    let peer = peer(&[]).await;
    let url = format!("{}/services/T0/B0/s3cret", peer.base);
    let (slack_url, hook_url) = (url.clone(), url.clone());
    let n = notifier(
        move |s| {
            s.slack.webhook_url = Some(slack_url);
            s.alerts.webhook_url = Some(hook_url);
        },
        5,
    );
    let mut note = notification(Reason::Firing);
    assert_eq!(n.run(&job(&note)).await, Ok(()));
    note.channel = Channel::Webhook;
    assert_eq!(n.run(&job(&note)).await, Ok(()));
    let received = peer.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    note.channel = Channel::Slack;
    assert_eq!(received[0].1, slack::message(&note));
    note.channel = Channel::Webhook;
    assert_eq!(received[1].1, serde_json::to_value(&note).unwrap());
    assert_eq!(received[1].0[CORRELATION_HEADER], "corr-7f3a");
    assert_eq!(received[1].0["content-type"], "application/json");
}

#[tokio::test]
async fn failures_retry_naming_the_host_only_and_open_the_circuit() {
    let peer = peer(&[500]).await;
    let host = peer.base.trim_start_matches("http://").to_string();
    let url = format!("{}/services/T0/B0/s3cret", peer.base);
    let n = notifier(move |s| s.slack.webhook_url = Some(url), 2);
    let note = notification(Reason::Firing);
    assert_eq!(
        n.run(&job(&note)).await,
        Err(JobError::Retry(format!(
            "{host} answered 500 Internal Server Error: boom"
        )))
    );
    // The second failure in a row opens the circuit: held, not sent.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let down = notifier(
        move |s| s.slack.webhook_url = Some(format!("http://127.0.0.1:{port}/services/s3cret")),
        2,
    );
    let Err(JobError::Retry(error)) = down.run(&job(&note)).await else {
        panic!("a refused connection retries");
    };
    assert!(
        error.starts_with(&format!("cannot reach 127.0.0.1:{port}: ")),
        "{error}"
    );
    assert!(!error.contains("s3cret"), "{error}");
    assert!(matches!(
        down.run(&job(&note)).await,
        Err(JobError::Retry(_))
    ));
    match down.run(&job(&note)).await {
        Err(JobError::Held { host, .. }) => assert_eq!(host, format!("127.0.0.1:{port}")),
        other => panic!("not held: {other:?}"),
    }
}
