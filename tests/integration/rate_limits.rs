//! REST rate limits per token subject: the 429 and its headers, the
//! window (on a paused clock), floods that lose nothing accepted, service
//! tokens at intake rates, and one quota shared by two nodes.

use std::time::Duration;

use pytake::protocol::Role;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::services::{Postgres, Redis};
use crate::support::{custom, Options, TestServer};

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `(RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset)`.
    fn quota(&self) -> (&str, &str, &str) {
        (
            self.header("ratelimit-limit").unwrap_or("-"),
            self.header("ratelimit-remaining").unwrap_or("-"),
            self.header("ratelimit-reset").unwrap_or("-"),
        )
    }
}

async fn get(client: &reqwest::Client, url: &str, token: Option<&str>) -> Answer {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("GET");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.json().await.unwrap_or(Value::Null),
    }
}

/// 3 a minute for viewers: one every 20 s. The first three carry the
/// quota's state, the fourth is 429 with the exact headers, and once the
/// (paused, advanced) clock has moved 20 s the next one is served.
#[tokio::test]
async fn the_429_says_when_to_retry_and_the_retry_is_served() {
    let server = TestServer::in_process(|s| s.server.rate_limit_viewer = 3).await;
    let viewer = server.viewer("acme");
    // No kept-alive connections: the clock jumps past the server's idle
    // timeout for them.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let url = format!("{}/api/v1/events?tenant_id=acme&limit=1", server.url);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let answer = get(&client, &url, Some(&viewer)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.header("retry-after"), None);
        let (limit, remaining, reset) = answer.quota();
        seen.push(format!("{limit} {remaining} {reset}"));
    }
    assert_eq!(seen, ["3 2 20", "3 1 40", "3 0 60"]);
    let refused = get(&client, &url, Some(&viewer)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("20"));
    assert_eq!(refused.quota(), ("3", "0", "60"));
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    assert_eq!(
        refused.body["error"]["message"],
        "rate limit of 3 requests a minute for viewer tokens reached by subject `test`; retry in 20 s"
    );
    // Another subject, and another role of the same subject, have their own.
    let other = server
        .keys()
        .mint_for("ana", Some("acme"), Role::Viewer, Duration::from_secs(60));
    assert_eq!(
        get(&client, &url, Some(&other)).await.quota(),
        ("3", "2", "20")
    );
    let operator = get(&client, &url, Some(&server.operator("acme"))).await;
    assert_eq!(operator.quota(), ("60", "59", "1"));

    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(19)).await;
    tokio::time::resume();
    assert_eq!(get(&client, &url, Some(&viewer)).await.status, 429);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::time::resume();
    let again = get(&client, &url, Some(&viewer)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.quota().1, "0");
}

/// What is not counted: probes, scrapes, a missing or bad token (401,
/// no quota headers), webhooks without a token.
#[tokio::test]
async fn probes_and_requests_without_a_valid_token_are_not_counted() {
    let server = TestServer::in_process(|s| s.server.rate_limit_viewer = 1).await;
    let client = reqwest::Client::new();
    for path in ["/health", "/ready", "/metrics"] {
        for _ in 0..3 {
            let answer = get(
                &client,
                &format!("{}{path}", server.url),
                Some(&server.viewer("acme")),
            )
            .await;
            assert_eq!(answer.status, 200, "{path}");
            assert_eq!(answer.header("ratelimit-limit"), None, "{path}");
        }
    }
    let url = format!("{}/api/v1/events?tenant_id=acme", server.url);
    for token in [None, Some("not-a-token")] {
        for _ in 0..3 {
            let answer = get(&client, &url, token).await;
            assert_eq!(answer.status, 401, "{}", answer.body);
            assert_eq!(answer.header("ratelimit-limit"), None);
        }
    }
    // The one request of the quota is still there.
    assert_eq!(
        get(&client, &url, Some(&server.viewer("acme")))
            .await
            .status,
        200
    );
    assert_eq!(
        get(&client, &url, Some(&server.viewer("acme")))
            .await
            .status,
        429
    );
}

/// The default for people's tokens is seed 003's 60 a minute.
#[tokio::test]
async fn an_operator_gets_sixty_requests_a_minute_by_default() {
    let server = TestServer::start().await;
    let operator = server.operator("acme");
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/events?tenant_id=acme&limit=1", server.url);
    let first = get(&client, &url, Some(&operator)).await;
    assert_eq!(first.quota(), ("60", "59", "1"));
    let mut served = 1;
    loop {
        let answer = get(&client, &url, Some(&operator)).await;
        if answer.status == 429 {
            assert_eq!(answer.quota().0, "60");
            break;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
        served += 1;
        assert!(served <= 120, "no 429 after {served} requests");
    }
    // One more a second passes while the loop runs.
    assert!(served >= 60, "{served}");
}

/// 100 posts at once against a quota of 20: every 201 is stored, nothing
/// refused is, and the ids answered are exactly those stored.
#[tokio::test]
async fn a_flood_loses_no_accepted_request() {
    let server = TestServer::start_with(Options::args(&["--rate-limit-operator", "20"])).await;
    let operator = server.operator("acme");
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/events", server.url);
    let posts = (0..100).map(|n| {
        let request = client
            .post(&url)
            .bearer_auth(&operator)
            .json(&custom("acme", "erp", n));
        async move {
            let response = request.send().await.expect("POST");
            let status = response.status().as_u16();
            let retry = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            (status, retry, body)
        }
    });
    let answers = futures_util::future::join_all(posts).await;
    let mut accepted: Vec<i64> = Vec::new();
    let mut refused = 0;
    for (status, retry, body) in answers {
        match status {
            201 => accepted.extend(
                body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap()),
            ),
            429 => {
                refused += 1;
                assert!(retry.is_some());
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!((20..=22).contains(&accepted.len()), "{}", accepted.len());
    assert_eq!(accepted.len() + refused, 100);
    accepted.sort();
    let stored: Vec<i64> = server
        .history("tenant_id=acme&limit=1000")
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(stored, accepted);
}

/// Service tokens post intake at intake rates: 2000 requests, 16 at a
/// time, none refused.
#[tokio::test]
async fn service_tokens_are_not_throttled_at_intake_rates() {
    let server = TestServer::start().await;
    let service = server.token(Some("acme"), Role::Service);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/events", server.url);
    let mut limit = None;
    for chunk in 0..125 {
        let posts = (0..16).map(|i| {
            client
                .post(&url)
                .bearer_auth(&service)
                .json(&custom("acme", "erp", chunk * 16 + i))
                .send()
        });
        for response in futures_util::future::join_all(posts).await {
            let response = response.expect("POST");
            assert_eq!(response.status().as_u16(), 201);
            limit = response.headers().get("ratelimit-limit").cloned();
        }
    }
    assert_eq!(limit.unwrap(), "60000");
}

/// Two nodes on PostgreSQL and Redis, a quota of 10: requests alternating
/// between the nodes use one quota, and the 11th is 429 on either node.
#[tokio::test]
async fn two_nodes_share_one_quota() {
    let Some(store) = Postgres::database_or_skip("two_nodes_share_one_quota").await else {
        return;
    };
    let Some(redis) = Redis::start_or_skip("two_nodes_share_one_quota").await else {
        return;
    };
    let args = [
        "--store",
        &store,
        "--bus",
        &redis.url(),
        "--rate-limit-viewer",
        "10",
    ];
    let a = TestServer::start_with(Options::args(&args)).await;
    let b = TestServer::start_with(Options::args(&args)).await;
    let viewer = a.viewer("acme");
    let client = reqwest::Client::new();
    let path = "/api/v1/events?tenant_id=acme&limit=1";
    let mut remaining = Vec::new();
    for n in 0..10 {
        let node = if n % 2 == 0 { &a } else { &b };
        let answer = get(&client, &format!("{}{path}", node.url), Some(&viewer)).await;
        assert_eq!(answer.status, 200, "request {n}: {}", answer.body);
        remaining.push(answer.quota().1.to_string());
    }
    assert_eq!(
        remaining,
        ["9", "8", "7", "6", "5", "4", "3", "2", "1", "0"]
    );
    for node in [&a, &b] {
        let answer = get(&client, &format!("{}{path}", node.url), Some(&viewer)).await;
        assert_eq!(answer.status, 429, "{}", answer.body);
        // 60 s / 10: the next request is due 6 s after the first, less
        // the time the ten took.
        let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=6).contains(&retry), "{retry}");
        assert_eq!(answer.quota().0, "10");
    }
    let metrics = client
        .get(format!("{}/metrics", a.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pytake_http_rate_limited_total{role=\"viewer\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pytake_rate_limit_fallbacks_total 0"),
        "{metrics}"
    );
}

/// Redis stops: every request is still answered, each node counts its own
/// quota (so a flood is still refused), and each fallback is counted; when
/// Redis is back the quota is shared again.
#[tokio::test]
async fn without_redis_each_node_counts_its_own_quota() {
    let test = "without_redis_each_node_counts_its_own_quota";
    let Some(mut redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let args = ["--bus", &redis.url(), "--rate-limit-viewer", "3"];
    let server = TestServer::start_with(Options::args(&args)).await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/events?tenant_id=acme&limit=1", server.url);
    let fallbacks = || async {
        let text = client
            .get(format!("{}/metrics", server.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("pytake_rate_limit_fallbacks_total "))
            .expect("the fallback counter")
            .parse::<u64>()
            .unwrap()
    };
    let shared = server.viewer("acme");
    assert_eq!(get(&client, &url, Some(&shared)).await.status, 200);
    assert_eq!(fallbacks().await, 0);

    redis.stop().await;
    let ana = server
        .keys()
        .mint_for("ana", Some("acme"), Role::Viewer, Duration::from_secs(600));
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(get(&client, &url, Some(&ana)).await.status);
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the node's own quota of 3");
    assert!(fallbacks().await >= 4, "each request counted as a fallback");

    redis.restart_stopped().await;
    // Back once the bus reconnects (it retries with backoff); a new
    // subject each time, so the quota never refuses the probe.
    let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
    for n in 0.. {
        let probe = server.keys().mint_for(
            &format!("probe-{n}"),
            Some("acme"),
            Role::Viewer,
            Duration::from_secs(600),
        );
        let before = fallbacks().await;
        let answer = get(&client, &url, Some(&probe)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        if fallbacks().await == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quota never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
