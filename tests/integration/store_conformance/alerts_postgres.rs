//! The alerting store's contract where only PostgreSQL can show it:
//! nodes racing for the evaluator's lease at the same moment (SQLite is
//! one node whose writes take turns).

use std::sync::Arc;
use std::time::Duration;

use pytake::server::storage::{self, AlertStore, StoreOptions};
use tokio::sync::Barrier;

use super::alerts::{at, LEASE, TTL};
use crate::support::services::Postgres;

/// Asks for `name` on `stores`, one holder each, all at once (behind a
/// barrier); the tokens they got, by holder.
async fn race(
    stores: &[Arc<dyn AlertStore>],
    name: &str,
    holders: &[&'static str],
    minute: i64,
) -> Vec<Option<i64>> {
    let barrier = Arc::new(Barrier::new(holders.len()));
    let tasks: Vec<_> = holders
        .iter()
        .copied()
        .zip(stores.iter().cycle())
        .map(|(holder, store)| {
            let (store, barrier, name) = (store.clone(), barrier.clone(), name.to_string());
            tokio::spawn(async move {
                barrier.wait().await;
                store.lease(&name, holder, TTL, at(minute)).await.unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in tasks {
        got.push(task.await.unwrap());
    }
    got
}

/// Nodes asking for a free lease at once, and for an expired one at
/// once: each time exactly one gets it, the takeover with the next token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_racing_for_the_lease_get_it_once() {
    let test = "store_conformance::alerts_postgres::nodes_racing_for_the_lease_get_it_once";
    let Some(url) = Postgres::database_or_skip(test).await else {
        return;
    };
    let mut stores = Vec::new();
    for _ in 0..2 {
        let opened = storage::open(&url, &StoreOptions::default()).await;
        stores.push(
            opened
                .unwrap_or_else(|e| panic!("open {url}: {e:#}"))
                .alerts,
        );
    }
    for round in 0..25 {
        let name = format!("{LEASE}-{round}");
        let first = race(&stores, &name, &["node-a", "node-b", "node-c"], 0).await;
        let mut won: Vec<i64> = first.iter().flatten().copied().collect();
        assert_eq!(won, [1], "round {round}: {first:?}");
        // Long after expiry, the others race to take it over.
        let later = TTL.as_secs() as i64 / 60 + 1;
        let second = race(&stores, &name, &["node-d", "node-e"], later).await;
        won = second.iter().flatten().copied().collect();
        assert_eq!(won, [2], "round {round}: {second:?}");
    }
    assert_eq!(Duration::from_secs(30), TTL, "the rounds' times assume it");
}
