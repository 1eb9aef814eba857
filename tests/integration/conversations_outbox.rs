//! The transfer's outbox, on a paused clock: a node that committed a
//! transfer and died before publishing its event has the event stored by
//! the outbox job once it is due; a transfer whose event was published has
//! its job find it and store nothing more.

use std::time::Duration;

use chrono::Utc;
use pytake::protocol::{Event, TenantId};
use pytake::server::conversations::{outbox_job, OUTBOX_DELAY, OUTBOX_KIND};
use pytake::server::storage::conversations::NewTransfer;
use pytake::server::storage::{self, StoreOptions};
use reqwest::Method;
use serde_json::json;

use crate::alerts::{jump, wait_until};
use crate::support::TestServer;

async fn transfers(server: &TestServer) -> Vec<Event> {
    server
        .history("event_types=ConversationTransferred&tenant_id=acme")
        .await
}

#[tokio::test]
async fn the_outbox_stores_a_lost_event_once_and_a_published_one_never_again() {
    let mut server = TestServer::in_process(|s| {
        s.gateway.idle_timeout = Duration::from_secs(7200);
        s.gateway.ping_interval = Duration::from_secs(3600);
    })
    .await;
    let operator = server.operator("acme");
    let (status, first) = server
        .call(
            Method::POST,
            Some(&operator),
            "/api/v1/conversations/c1/transfer",
            Some(json!({"to_user": "bob"})),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    server.stop().await;

    // What a node leaves when it dies between the commit and the publish.
    let url = format!(
        "sqlite://{}",
        server.data_dir.path().join("pytake.db").display()
    );
    let stores = storage::open(&url, &StoreOptions::default()).await.unwrap();
    let now = Utc::now();
    let lost = stores
        .conversations
        .transfer(
            &NewTransfer {
                tenant_id: TenantId::parse("acme").unwrap(),
                conversation_id: "c1".into(),
                to_user: "carol".into(),
                note: Some("picked up after a crash".into()),
                by: "lead".into(),
            },
            &move |t| outbox_job(t, now),
            now,
        )
        .await
        .unwrap();
    stores.events.close().await;
    drop(stores);

    server.restart_stopped().await;
    assert_eq!(
        transfers(&server).await.len(),
        1,
        "only the published one yet"
    );
    jump(OUTBOX_DELAY + Duration::from_secs(1)).await;
    let admin = server.admin();
    wait_until("both outbox jobs are done", || async {
        let (_, page) = server
            .get(
                Some(&admin),
                &format!("/api/v1/queue/jobs?kind={OUTBOX_KIND}&status=done"),
            )
            .await;
        page["jobs"].as_array().is_some_and(|jobs| jobs.len() == 2)
    })
    .await;
    let events = transfers(&server).await;
    assert_eq!(
        events.len(),
        2,
        "the lost event stored, the other not again"
    );
    assert_eq!(json!(events[0].id), first["event_id"]);
    assert_eq!(events[1].data["to_user"], "carol");
    assert_eq!(events[1].data["from_user"], "bob");
    assert_eq!(events[1].data["seq"], lost.seq);
    let (_, conversation) = server
        .get(Some(&operator), "/api/v1/conversations/c1")
        .await;
    assert_eq!(conversation["assignee"], "carol");
    assert_eq!(conversation["transfers"][1]["event_id"], events[1].id);
}
