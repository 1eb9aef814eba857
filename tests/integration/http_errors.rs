//! Every error is JSON `{error: {code, message}}` with the right status
//! and headers, even where the router or the upgrade answers; held
//! long-polls are capped.

use std::time::Duration;

use serde_json::Value;

use crate::support::TestServer;

async fn json_error(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(
        headers["content-type"], "application/json",
        "status {status} is not JSON"
    );
    let body: Value = response.json().await.expect("a JSON body");
    assert!(body["error"]["code"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    (status, headers, body)
}

#[tokio::test]
async fn router_and_upgrade_errors_are_json() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();

    let (status, _, body) = json_error(
        http.get(format!("{}/nope", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );

    let (status, headers, body) = json_error(
        http.delete(format!("{}/api/v1/events", server.url))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET,HEAD,POST");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DELETE is not allowed on /api/v1/events"));

    let long = format!("{}/api/v1/events?rooms={}", server.url, "a".repeat(20_000));
    let (status, _, body) = json_error(http.get(long).send().await.unwrap()).await;
    assert_eq!(status, 414, "{body}");

    let (status, _, body) =
        json_error(http.get(format!("{}/ws", server.url)).send().await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("not a WebSocket upgrade"),
        "{body}"
    );
}

#[tokio::test]
async fn long_polls_are_capped_per_token_with_429_and_retry_after() {
    let server = TestServer::start().await;
    let token = server.viewer("acme");
    let url = format!("{}/api/v1/events?rooms=alerts&wait=30s", server.url);
    let http = reqwest::Client::new();
    let mut held = Vec::new();
    for _ in 0..pytake::protocol::limits::MAX_LONG_POLLS_PER_TOKEN {
        held.push(tokio::spawn(http.get(&url).bearer_auth(&token).send()));
    }
    server
        .wait_for_health("/long_polls", held.len() as u64)
        .await;
    let refused = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let (_, headers, body) = json_error(refused).await;
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another token, and the same token without `wait`, still get answers.
    let other = http
        .get(format!("{}/api/v1/events?rooms=alerts", server.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    // An event answers the held polls, which frees their places.
    server
        .publish(
            &server.operator("acme"),
            crate::support::custom("acme", "alerts", 1),
        )
        .await;
    for poll in held {
        assert_eq!(poll.await.unwrap().unwrap().status(), 200);
    }
    let again = http
        .get(format!("{}&wait=0", url.split("&wait").next().unwrap()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}

/// What hyper answers by itself (before any route runs) is JSON too.
#[tokio::test]
async fn requests_hyper_cannot_parse_get_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let host = server.url.trim_start_matches("http://").to_string();
    let cases: [(Vec<u8>, &str); 3] = [
        (
            format!(
                "GET /api/v1/events?x={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(70_000)
            )
            .into_bytes(),
            "HTTP/1.1 414 ",
        ),
        (b"NOT HTTP AT ALL\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (
            format!(
                "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                // Far over hyper's ~400 KB header buffer: hyper only refuses
                // a head it has not yet seen whole once its buffer is full,
                // and one read of a head just over the limit can take it all.
                "b".repeat(4_000_000)
            )
            .into_bytes(),
            "HTTP/1.1 431 ",
        ),
    ];
    for (request, status) in cases {
        let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
        // The server answers and closes before it has read everything, so
        // the answer is read while the request is still being written.
        let (mut read, mut write) = tcp.into_split();
        let writer = tokio::spawn(async move {
            let _ = write.write_all(&request).await;
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut answer)).await;
        writer.abort();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(status), "{answer}");
        assert!(
            answer.contains("\r\ncontent-type: application/json\r\n"),
            "{answer}"
        );
        let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
}
