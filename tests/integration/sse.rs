//! `GET /api/v1/stream`: Server-Sent Events with the WebSocket's payload,
//! resume with `Last-Event-ID` or `since` (across a restart too), tenant
//! scoping, bad input refused before the stream starts.

use std::sync::Arc;

use pytake::protocol::Event;
use serde_json::json;

use crate::support::sse::{Ask, TestSse};
use crate::support::{custom, rooms, TestServer};

fn ids(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

async fn events(stream: &mut TestSse, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(stream.event().await);
    }
    events
}

#[tokio::test]
async fn a_stream_sends_live_events_in_order_as_id_event_data_records() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    let mut stream = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&viewer),
            query: "rooms=erp",
            ..Ask::default()
        },
    )
    .await;
    let content_type = &stream.response_headers["content-type"];
    assert_eq!(content_type, "text/event-stream");
    let first = stream.record().await.expect("a first record");
    assert_eq!(
        first.retry,
        Some(3000),
        "the reconnect hint opens the stream"
    );
    assert!(!first.is_event());
    // A WebSocket subscriber of the same room, to compare payloads.
    let (mut ws, _) = server.subscribed(&viewer, rooms(&["erp"])).await;
    let mut posted = Vec::new();
    for n in 1..=3 {
        posted.extend(server.publish(&admin, custom("acme", "erp", n)).await);
        server.publish(&admin, custom("acme", "ai", n)).await;
        server.publish(&admin, custom("globex", "erp", n)).await;
    }
    let streamed = events(&mut stream, 3).await;
    assert_eq!(ids(&streamed), posted, "its room and tenant, in order");
    for event in &streamed {
        assert_eq!(event.event_type, "TestEvent");
        assert_eq!(event.tenant_id, "acme");
        let frame = ws.event().await;
        assert_eq!(
            &frame, event,
            "the WebSocket Event payload, field for field"
        );
    }
    stream.quiet().await;
}

#[tokio::test]
async fn last_event_id_resumes_across_a_server_restart_without_gap_or_duplicate() {
    let mut server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    for n in 1..=5 {
        server.publish(&admin, custom("acme", "erp", n)).await;
    }
    let mut stream = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&viewer),
            query: "rooms=erp&since=0",
            ..Ask::default()
        },
    )
    .await;
    let read = events(&mut stream, 3).await;
    assert_eq!(ids(&read), [1, 2, 3]);
    let last = read[2].id.to_string();
    // A graceful stop ends the stream, with a comment saying why.
    let stopping = tokio::spawn(async move {
        let rest = stream.rest().await;
        (stream, rest)
    });
    server.restart().await;
    let (_, rest) = stopping.await.unwrap();
    let goodbye = rest.last().expect("a last record");
    assert!(
        goodbye.comments.iter().any(|c| c.contains("shutting down")),
        "{rest:?}"
    );
    let mut after = Vec::new();
    for n in 6..=8 {
        after.extend(server.publish(&admin, custom("acme", "erp", n)).await);
    }
    assert_eq!(after, [6, 7, 8], "ids go on after the restart");
    // `since=0` is still in the URL, as EventSource keeps it; the header wins.
    let mut resumed = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&viewer),
            query: "rooms=erp&since=0",
            last_event_id: Some(&last),
        },
    )
    .await;
    let replayed = events(&mut resumed, 5).await;
    assert_eq!(ids(&replayed), [4, 5, 6, 7, 8]);
    let live = server.publish(&admin, custom("acme", "erp", 9)).await;
    assert_eq!(resumed.event().await.id, live[0]);
    resumed.quiet().await;
}

/// Subscribers join with `since` while a publisher runs: each gets every
/// event after its point once, in order, across the replay/live seam.
#[tokio::test]
async fn since_meets_live_traffic_without_gap_or_duplicate() {
    let server = Arc::new(TestServer::start().await);
    let admin = server.admin();
    const TOTAL: i64 = 1_500;
    let publisher = tokio::spawn({
        let server = server.clone();
        async move {
            let mut n = 0;
            while n < TOTAL {
                let size = 1 + n % 7;
                let batch: Vec<_> = (n..(n + size).min(TOTAL))
                    .map(|i| custom("acme", "dashboard", i))
                    .collect();
                n += batch.len() as i64;
                server.publish(&admin, json!(batch)).await;
            }
        }
    });
    let viewer = server.viewer("acme");
    let mut streams = Vec::new();
    for from in [0, 100, 1_100] {
        let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
        loop {
            let (_, health) = server.get(None, "/health").await;
            let head = health["last_event_id"].as_i64().unwrap();
            if head >= from {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the publisher stored only up to {head}, not {from}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        let query = format!("rooms=dashboard&since={from}");
        let ask = Ask {
            bearer: Some(&viewer),
            query: &query,
            ..Ask::default()
        };
        streams.push((from, TestSse::ok(&server, ask).await));
    }
    for (from, mut stream) in streams {
        for expect in from + 1..=TOTAL {
            let id = stream.event().await.id;
            assert_eq!(id, expect, "stream from {from}: gap or duplicate");
        }
        stream.quiet().await;
    }
    publisher.await.unwrap();
}

#[tokio::test]
async fn a_stream_sees_only_what_its_token_may() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let acme = server.viewer("acme");
    let mut own = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&acme),
            ..Ask::default()
        },
    )
    .await;
    let mut globex_only = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&admin),
            query: "tenant_id=globex",
            ..Ask::default()
        },
    )
    .await;
    let mut every_tenant = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&admin),
            ..Ask::default()
        },
    )
    .await;
    let g = server.publish(&admin, custom("globex", "erp", 1)).await[0];
    let a = server.publish(&admin, custom("acme", "ai", 2)).await[0];
    assert_eq!(own.event().await.id, a, "a tenant token: its tenant only");
    assert_eq!(globex_only.event().await.id, g);
    assert_eq!(ids(&events(&mut every_tenant, 2).await), [g, a]);
    own.quiet().await;
    globex_only.quiet().await;
    // Naming another tenant is refused, before any stream starts.
    let (status, body) = TestSse::open(
        &server,
        Ask {
            bearer: Some(&acme),
            query: "tenant_id=globex",
            ..Ask::default()
        },
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
}

#[tokio::test]
async fn bad_input_is_refused_with_the_apis_errors_before_the_stream_starts() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    server.publish(&admin, custom("acme", "erp", 1)).await;
    let v = Some(viewer.as_str());
    let ask = |bearer, query, last_event_id| Ask {
        bearer,
        query,
        last_event_id,
    };
    // (request, status, the field the error names)
    let cases: Vec<(Ask, u16, Option<&str>)> = vec![
        (ask(None, "", None), 401, None),
        (ask(Some("not-a-jwt"), "", None), 401, None),
        (ask(v, "since=abc", None), 400, Some("since")),
        (ask(v, "since=-3", None), 400, Some("since")),
        (ask(v, "since=99", None), 400, Some("since")),
        (ask(v, "", Some("x1")), 400, Some("Last-Event-ID")),
        (ask(v, "", Some("1000")), 400, Some("Last-Event-ID")),
        (ask(v, "rooms=erp,lobby", None), 400, Some("rooms")),
        (ask(v, "event_types=a%20b", None), 400, Some("event_types")),
        (ask(v, "room=erp", None), 400, Some("room")),
        (
            ask(v, "tenant_id=Not%20A%20Tenant", None),
            400,
            Some("tenant_id"),
        ),
    ];
    for (ask, status, field) in cases {
        let (query, last_event_id) = (ask.query, ask.last_event_id);
        let (got, body) = TestSse::open(&server, ask)
            .await
            .err()
            .unwrap_or_else(|| panic!("{query} {last_event_id:?} was accepted"));
        assert_eq!(got, status, "{query} {last_event_id:?}: {body}");
        assert_eq!(
            body["error"]["field"].as_str(),
            field,
            "{query} {last_event_id:?}: {body}"
        );
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // `?token=` is how EventSource authenticates; a bad one is 401 too.
    let (status, _) = TestSse::open(
        &server,
        Ask {
            query: "token=forged",
            ..Ask::default()
        },
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(status, 401);
    let query = format!("token={viewer}&since=0");
    let mut by_query = TestSse::ok(
        &server,
        Ask {
            query: &query,
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(by_query.event().await.id, 1);
}

/// `curl -N` is a working client: the records arrive as they happen.
#[tokio::test]
async fn curl_is_a_client() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = TestServer::start().await;
    let admin = server.admin();
    let viewer = server.viewer("acme");
    let first = server.publish(&admin, custom("acme", "erp", 1)).await[0];
    let mut curl = tokio::process::Command::new("curl")
        .args(["-N", "-s", "-H"])
        .arg(format!("Authorization: Bearer {viewer}"))
        .arg(format!("{}/api/v1/stream?rooms=erp&since=0", server.url))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl is installed");
    let mut lines = BufReader::new(curl.stdout.take().unwrap()).lines();
    let mut parser = crate::support::sse::Parser::default();
    let mut events = Vec::new();
    let mut live = None;
    while events.len() < 2 {
        let line = tokio::time::timeout(crate::support::DEADLINE, lines.next_line())
            .await
            .expect("curl printed nothing in time")
            .expect("read curl")
            .expect("curl ended");
        let Some(record) = parser.line(&line) else {
            continue;
        };
        if record.is_event() {
            events.push(record.event());
            // The replayed one is out: post a live one while curl reads.
            if events.len() == 1 {
                live = Some(server.publish(&admin, custom("acme", "erp", 2)).await[0]);
            }
        }
    }
    assert_eq!(
        ids(&events),
        [first, live.unwrap()],
        "the replay, then live"
    );
    assert_eq!(events[1].data, json!({"n": 2}));
    curl.kill().await.unwrap();
}

/// A quiet stream writes a `: keep-alive` comment every 15 s, so proxies
/// do not cut it; the clock is moved, not waited for.
#[tokio::test]
async fn a_quiet_stream_sends_a_keep_alive_comment_every_15_s() {
    use pytake::protocol::limits::SSE_KEEP_ALIVE;
    use std::time::Duration;
    let server = TestServer::in_process(|_| {}).await;
    let viewer = server.viewer("acme");
    let mut stream = TestSse::ok(
        &server,
        Ask {
            bearer: Some(&viewer),
            ..Ask::default()
        },
    )
    .await;
    assert_eq!(stream.record().await.unwrap().retry, Some(3000));
    assert_eq!(SSE_KEEP_ALIVE, Duration::from_secs(15));
    // Paused only for each jump: while the test waits on the socket, a
    // paused clock would move on by itself.
    tokio::time::pause();
    tokio::time::advance(SSE_KEEP_ALIVE - Duration::from_secs(1)).await;
    tokio::time::resume();
    stream.quiet().await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::time::resume();
    let keep_alive = stream.record().await.unwrap();
    assert_eq!(keep_alive.comments, ["keep-alive"]);
    assert!(!keep_alive.is_event());
}
