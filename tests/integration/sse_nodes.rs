//! `GET /api/v1/stream` on two nodes sharing PostgreSQL and Redis: an
//! event posted to one node reaches a stream on the other, and a stream
//! resumes on either node with `Last-Event-ID`.

use crate::support::services::{Postgres, Redis};
use crate::support::sse::{Ask, TestSse};
use crate::support::{custom, Options, TestServer};

#[tokio::test]
async fn an_event_posted_on_node_a_reaches_a_stream_on_node_b() {
    let test = "an_event_posted_on_node_a_reaches_a_stream_on_node_b";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let options = Options::args(&["--store", &store, "--bus", &redis.url()]);
    let a = TestServer::start_with(options.clone()).await;
    let b = TestServer::start_with(options).await;
    let admin = a.admin();
    let viewer = b.viewer("acme");
    let mut on_b = TestSse::ok(
        &b,
        Ask {
            bearer: Some(&viewer),
            query: "rooms=erp",
            ..Ask::default()
        },
    )
    .await;
    let mut posted = Vec::new();
    for n in 1..=3 {
        posted.extend(a.publish(&admin, custom("acme", "erp", n)).await);
        a.publish(&admin, custom("globex", "erp", n)).await;
    }
    for id in &posted {
        let event = on_b.event().await;
        assert_eq!((event.id, event.tenant_id.as_str()), (*id, "acme"));
    }
    on_b.quiet().await;
    // The client moves to node A with the last id it saw; events posted
    // on B meanwhile are replayed there, then live ones follow.
    drop(on_b);
    let mut missed = Vec::new();
    for n in 4..=5 {
        missed.extend(b.publish(&b.admin(), custom("acme", "erp", n)).await);
    }
    let last = posted[2].to_string();
    let mut on_a = TestSse::ok(
        &a,
        Ask {
            bearer: Some(&viewer),
            query: "rooms=erp",
            last_event_id: Some(&last),
        },
    )
    .await;
    assert_eq!(on_a.event().await.id, missed[0]);
    assert_eq!(on_a.event().await.id, missed[1]);
    let live = b.publish(&b.admin(), custom("acme", "erp", 6)).await;
    assert_eq!(on_a.event().await.id, live[0]);
    on_a.quiet().await;
}
