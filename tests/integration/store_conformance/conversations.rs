//! The conversation store's contract (see `ConversationStore`): one order
//! per conversation, a conflict for the current assignee, the outbox job
//! in the same transaction, tenants apart.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use pytake::protocol::conversations::Transfer;
use pytake::protocol::{Scope, TenantId};
use pytake::server::storage::conversations::NewTransfer;
use pytake::server::storage::jobs::{JobFilter, NewJob};
use pytake::server::storage::{ConversationStore, StoreError};
use tokio::sync::Barrier;

use super::{t0, Backend};

const KIND: &str = "conversation.transferred";

fn asked(tenant: &str, conversation: &str, to: &str) -> NewTransfer {
    NewTransfer {
        tenant_id: TenantId::parse(tenant).unwrap(),
        conversation_id: conversation.into(),
        to_user: to.into(),
        note: Some(format!("over to {to}")),
        by: "lead".into(),
    }
}

fn outbox(t: &Transfer) -> NewJob {
    NewJob {
        queue: "default".into(),
        kind: KIND.into(),
        payload: serde_json::to_value(t).unwrap(),
        priority: 0,
        run_at: t.at,
        max_attempts: 3,
        correlation_id: Some(t.event_key()),
        tenant_id: Some(t.tenant_id.clone()),
    }
}

fn at(seconds: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(seconds)
}

async fn transfer(
    store: &dyn ConversationStore,
    tenant: &str,
    conversation: &str,
    to: &str,
    seconds: i64,
) -> Result<Transfer, StoreError> {
    store
        .transfer(&asked(tenant, conversation, to), &outbox, at(seconds))
        .await
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

pub async fn transfers_assign_record_and_enqueue_their_outbox(backend: Backend) {
    let stores = backend.open_all().await;
    let store = &*stores.conversations;
    let first = transfer(store, "acme", "c1", "alice", 1).await.unwrap();
    assert_eq!(
        (
            first.seq,
            first.from_user.as_deref(),
            first.to_user.as_str()
        ),
        (1, None, "alice")
    );
    assert_eq!(
        (first.by.as_str(), first.at, first.event_id),
        ("lead", at(1), None)
    );
    let second = transfer(store, "acme", "c1", "bob", 2).await.unwrap();
    assert_eq!(
        (
            second.seq,
            second.from_user.as_deref(),
            second.to_user.as_str()
        ),
        (2, Some("alice"), "bob")
    );
    store.set_event_id(&acme(), "c1", 2, 42).await.unwrap();
    // Idempotent: a second id (the outbox job's) does not replace the first.
    store.set_event_id(&acme(), "c1", 2, 43).await.unwrap();
    let read = store.conversation(&acme(), "c1", 100, None).await.unwrap();
    assert_eq!(read.assignee.as_deref(), Some("bob"));
    assert_eq!(read.assigned_at, Some(at(2)));
    let mut expected = second.clone();
    expected.event_id = Some(42);
    assert_eq!(read.transfers, vec![first.clone(), expected]);
    // The newest `limit`, oldest first.
    let newest = store.conversation(&acme(), "c1", 1, None).await.unwrap();
    assert_eq!(newest.transfers.len(), 1);
    assert_eq!(newest.transfers[0].seq, 2);
    // Paging back: before the first seq of the last page.
    let older = store.conversation(&acme(), "c1", 1, Some(2)).await.unwrap();
    assert_eq!(older.transfers, vec![first.clone()]);
    assert_eq!(
        older.assignee.as_deref(),
        Some("bob"),
        "the assignee is today's"
    );
    let none = store.conversation(&acme(), "c1", 1, Some(1)).await.unwrap();
    assert!(none.transfers.is_empty());
    // Each transfer's outbox job committed with it.
    let jobs = stores
        .jobs
        .jobs(&JobFilter {
            tenant: Scope::All,
            status: None,
            kind: Some(KIND.into()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    let mut keys: Vec<_> = jobs
        .iter()
        .filter_map(|j| j.correlation_id.clone())
        .collect();
    keys.sort();
    assert_eq!(keys, vec![first.event_key(), second.event_key()]);
    assert!(jobs.iter().all(|j| j.tenant_id.as_deref() == Some("acme")));
}

pub async fn a_transfer_to_the_current_assignee_conflicts_and_writes_nothing(backend: Backend) {
    let stores = backend.open_all().await;
    let store = &*stores.conversations;
    transfer(store, "acme", "c1", "alice", 1).await.unwrap();
    let e = transfer(store, "acme", "c1", "alice", 2).await.unwrap_err();
    assert!(
        matches!(&e, StoreError::Conflict(m) if m.contains("already assigned to `alice`")),
        "{e}"
    );
    let read = store.conversation(&acme(), "c1", 100, None).await.unwrap();
    assert_eq!(read.transfers.len(), 1);
    assert_eq!(read.assigned_at, Some(at(1)));
    let jobs = stores
        .jobs
        .jobs(&JobFilter {
            tenant: Scope::All,
            status: None,
            kind: Some(KIND.into()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "the refused transfer enqueued nothing");
}

pub async fn conversations_are_per_tenant_and_unknown_ones_not_found(backend: Backend) {
    let store = backend.open_all().await.conversations;
    transfer(&*store, "acme", "c1", "alice", 1).await.unwrap();
    // The same id in another tenant is another conversation.
    let other = transfer(&*store, "globex", "c1", "alice", 2).await.unwrap();
    assert_eq!((other.seq, other.from_user), (1, None));
    let globex = TenantId::parse("globex").unwrap();
    assert_eq!(
        store
            .conversation(&globex, "c1", 10, None)
            .await
            .unwrap()
            .transfers
            .len(),
        1
    );
    for (tenant, id) in [(acme(), "c2"), (TenantId::parse("initech").unwrap(), "c1")] {
        let e = store.conversation(&tenant, id, 10, None).await.unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    }
}

/// Transfers racing on two nodes (or one store's turns): one order, the
/// history numbered without gap, each `from_user` the previous `to_user`.
pub async fn racing_transfers_of_one_conversation_commit_in_one_order(backend: Backend) {
    const N: usize = 12;
    let nodes = backend.two_nodes_all().await;
    let barrier = Arc::new(Barrier::new(N));
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let store = nodes[i % 2].conversations.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let to = format!("agent{i}");
                transfer(&*store, "acme", "race", &to, i as i64).await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .expect("each goes to a different agent: none conflicts");
    }
    let read = nodes[1]
        .conversations
        .conversation(&acme(), "race", 100, None)
        .await
        .unwrap();
    let seqs: Vec<i64> = read.transfers.iter().map(|t| t.seq).collect();
    assert_eq!(seqs, (1..=N as i64).collect::<Vec<_>>());
    assert_eq!(read.transfers[0].from_user, None);
    for pair in read.transfers.windows(2) {
        assert_eq!(pair[1].from_user.as_deref(), Some(pair[0].to_user.as_str()));
    }
    assert_eq!(
        read.assignee.as_deref(),
        Some(read.transfers[N - 1].to_user.as_str())
    );
}

/// Transfers of one conversation to the same user racing: one wins, the
/// others conflict, whichever node each ran on (the first transfer
/// included, when no row exists yet to lock).
pub async fn racing_transfers_to_one_user_store_one(backend: Backend) {
    const N: usize = 8;
    let nodes = backend.two_nodes_all().await;
    for (conversation, before) in [("fresh", None), ("held", Some("alice"))] {
        if let Some(user) = before {
            transfer(&*nodes[0].conversations, "acme", conversation, user, 0)
                .await
                .unwrap();
        }
        let barrier = Arc::new(Barrier::new(N));
        let tasks: Vec<_> = (0..N)
            .map(|i| {
                let store = nodes[i % 2].conversations.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    transfer(&*store, "acme", conversation, "bob", 1).await
                })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(t) => {
                    won += 1;
                    assert_eq!(t.from_user.as_deref(), before);
                }
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{conversation}: {e}"),
            }
        }
        assert_eq!(won, 1, "{conversation}: exactly one transfer to bob");
        let read = nodes[0]
            .conversations
            .conversation(&acme(), conversation, 100, None)
            .await
            .unwrap();
        assert_eq!(read.assignee.as_deref(), Some("bob"));
        assert_eq!(read.transfers.len(), 1 + usize::from(before.is_some()));
    }
}
