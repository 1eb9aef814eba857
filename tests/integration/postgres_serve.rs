//! `pytake serve --store postgres://...`: the server on a PostgreSQL store,
//! and what an operator sees when the store cannot be had.

use serde_json::Value;

use crate::support::services::Postgres;
use crate::support::{custom, pytake, Options, TestServer};

/// Events go in, history and a long poll read them back, and a restarted
/// server goes on from the stored ids.
#[tokio::test]
async fn a_server_on_postgres_stores_serves_history_and_wakes_a_long_poll() {
    let Some(url) = Postgres::database_or_skip("postgres_serve::a_server_on_postgres_stores").await
    else {
        return;
    };
    let mut server = TestServer::start_with(Options::args(&["--store", &url])).await;
    let admin = server.admin();
    let (status, health) = server.get(None, "/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["store"], "postgres", "{health}");

    let first = server.publish(&admin, custom("acme", "erp", 1)).await;
    let second = server.publish(&admin, custom("globex", "ai", 2)).await;
    assert_eq!((first.clone(), second.clone()), (vec![1], vec![2]));
    let history = server.history("tenant_id=acme").await;
    assert_eq!(history.iter().map(|e| e.id).collect::<Vec<_>>(), vec![1]);
    assert_eq!(history[0].data["n"], 1);

    // A long poll from the newest id waits, and an event wakes it.
    let since = second[0];
    let poll = tokio::spawn({
        let url = format!("{}/api/v1/events?wait=5&since={since}", server.url);
        let admin = admin.clone();
        async move {
            let started = std::time::Instant::now();
            let body: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .expect("GET")
                .json()
                .await
                .expect("JSON");
            (body, started.elapsed())
        }
    });
    server.wait_for_health("/long_polls", 1).await;
    let third = server.publish(&admin, custom("acme", "erp", 3)).await;
    let (body, took) = poll.await.unwrap();
    assert_eq!(body["events"][0]["id"], third[0], "{body}");
    assert!(took.as_secs() < 5, "woken by the event, not the timeout");

    // Restarted on the same database: the ids go on.
    server.restart().await;
    let fourth = server.publish(&admin, custom("acme", "erp", 4)).await;
    assert_eq!(fourth, vec![4]);
    assert_eq!(server.history("").await.len(), 4);
}

/// PostgreSQL lost while serving: intake answers 503 with `Retry-After`
/// (nothing half-stored), and once PostgreSQL is back the server goes on by
/// itself, from the next id.
#[tokio::test]
async fn a_lost_postgres_is_503_then_served_again_when_it_is_back() {
    let Some(mut pg) = Postgres::start_or_skip("postgres_serve::a_lost_postgres").await else {
        return;
    };
    let url = pg.create_database("outage").await;
    let server = TestServer::start_with(Options::args(&["--store", &url])).await;
    let admin = server.admin();
    assert_eq!(
        server.publish(&admin, custom("acme", "erp", 1)).await,
        vec![1]
    );

    pg.stop().await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(custom("acme", "erp", 2).to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 503);
    assert!(resp.headers().contains_key("retry-after"));

    pg.restart_stopped().await;
    // The pool replaces its broken connections on the next calls.
    let deadline = tokio::time::Instant::now() + crate::support::DEADLINE;
    let ids = loop {
        let (status, body) = server
            .post(Some(&admin), custom("acme", "erp", 3).to_string(), None)
            .await;
        if status == 201 {
            break body["ids"].clone();
        }
        assert_eq!(status, 503, "{body}");
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(ids, serde_json::json!([2]));
    let stored: Vec<i64> = server.history("").await.iter().map(|e| e.id).collect();
    assert_eq!(stored, vec![1, 2]);
}

/// No server at the address: exit 1 with a message naming it, not a panic.
#[tokio::test]
async fn an_unreachable_postgres_names_its_address_and_exits_1() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let run = pytake(
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "postgres://pytake:hunter2@127.0.0.1:1/x",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot connect to PostgreSQL at postgres://pytake:****@127.0.0.1:1/x"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "never listened: {}", run.stdout);
}

/// A scheme no backend has is a usage error (2) listing the ones there are.
#[tokio::test]
async fn an_unknown_store_scheme_exits_2_listing_the_schemes() {
    let home = tempfile::tempdir().unwrap();
    let run = pytake(&["serve", "--store", "mysql://x"], home.path()).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("sqlite://PATH") && run.stderr.contains("postgres://"),
        "{}",
        run.stderr
    );
}
