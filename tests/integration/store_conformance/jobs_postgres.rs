//! The job queue's contract where only PostgreSQL can show it: several
//! nodes leasing, enqueueing and listening on one database at once
//! (SQLite is one node with one writer). Each node is a `PgStore` of its
//! own, with its own pool, as another `pytake serve` opens it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pytake::protocol::Scope;
use pytake::server::storage::jobs::{
    Finish, JobFilter, JobId, JobStatus, JobStore, Leased, NewJob, Outcome,
};
use pytake::server::storage::{EventStore, PgStore};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{after, ms, t0};
use crate::support::services::Postgres;
use crate::support::DEADLINE;

/// Opens a node's store on `url`.
async fn node(url: &str) -> Arc<PgStore> {
    Arc::new(
        PgStore::open(url, 16)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e:#}")),
    )
}

/// Job `n` of queue `default`, due at [`t0`], payload `{"n": n}`.
fn job(n: usize, priority: i32) -> NewJob {
    NewJob {
        queue: "default".into(),
        kind: "http".into(),
        payload: serde_json::json!({ "n": n }),
        priority,
        run_at: t0(),
        max_attempts: 3,
        correlation_id: None,
        tenant_id: Some("acme".into()),
    }
}

fn done(leased: &[Leased]) -> Vec<Finish> {
    leased
        .iter()
        .map(|l| Finish {
            lease: l.lease,
            outcome: Outcome::Done,
        })
        .collect()
}

/// Leases from `stores` with `leasers` tasks at once, round robin over the
/// stores, each leasing batches of 7 at `now` until nothing is left for
/// it; each batch is finished (with [`Outcome::Done`]) when `keep` says
/// so, else left to expire. Every leased batch is in the contract's order.
/// What each task leased, in order.
async fn lease_all(
    stores: &[Arc<PgStore>],
    leasers: usize,
    now: DateTime<Utc>,
    keep: fn(&Leased) -> bool,
) -> Vec<Vec<Leased>> {
    let mut tasks = JoinSet::new();
    for i in 0..leasers {
        let store = stores[i % stores.len()].clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            loop {
                let leased = store
                    .lease("default", 7, Duration::from_secs(60), now)
                    .await
                    .expect("lease");
                if leased.is_empty() {
                    return (i, mine);
                }
                let order: Vec<_> = leased
                    .iter()
                    .map(|l| (-l.job.priority, l.job.run_at, l.job.id))
                    .collect();
                assert!(order.is_sorted(), "a batch in lease order: {order:?}");
                let finishing: Vec<Leased> = leased.iter().filter(|l| keep(l)).cloned().collect();
                let counted = store.finish(done(&finishing), now).await.expect("finish");
                assert!(counted.iter().all(|c| *c), "a held lease's finish counts");
                mine.extend(leased);
            }
        });
    }
    let mut all = vec![Vec::new(); leasers];
    while let Some(joined) = tasks.join_next().await {
        let (i, mine) = joined.expect("leaser");
        all[i] = mine;
    }
    all
}

/// Each id once: panics naming one leased twice.
fn once(leased: &[Vec<Leased>]) -> Vec<JobId> {
    let mut seen: HashMap<JobId, usize> = HashMap::new();
    for (task, batch) in leased.iter().enumerate() {
        for l in batch {
            if let Some(first) = seen.insert(l.job.id, task) {
                panic!(
                    "job {} leased twice: by leaser {first} and leaser {task}",
                    l.job.id
                );
            }
        }
    }
    let mut ids: Vec<JobId> = seen.into_keys().collect();
    ids.sort_unstable();
    ids
}

/// 2,000 jobs, 8 leasers on two nodes at once: every job is leased
/// exactly once. Then the leases of the jobs left unfinished (a crashed
/// worker's) expire, and 8 leasers take each of those over exactly once,
/// under a new token that fences the first worker's finish out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_on_two_nodes_at_once_take_each_job_once() {
    const JOBS: usize = 2_000;
    const LEASERS: usize = 8;
    let test = "store_conformance::jobs_postgres::leases_on_two_nodes_at_once_take_each_job_once";
    let Some(url) = Postgres::database_or_skip(test).await else {
        return;
    };
    let nodes = [node(&url).await, node(&url).await];
    let jobs: Vec<NewJob> = (0..JOBS).map(|n| job(n, (n % 3) as i32)).collect();
    let mut ids = nodes[0].enqueue(jobs, t0()).await.expect("enqueue");
    ids.sort_unstable();

    // Finish the even ids; the odd ones' workers "crash".
    let first = lease_all(&nodes, LEASERS, after(t0(), ms(1)), |l| l.job.id % 2 == 0).await;
    assert_eq!(once(&first), ids, "every job leased, none twice");
    let per_leaser: Vec<usize> = first.iter().map(Vec::len).collect();
    println!("first round, jobs per leaser: {per_leaser:?}");
    assert!(first.iter().flatten().all(|l| l.lease.token == 1));

    // Before the leases expire nothing is due.
    assert!(nodes[1]
        .lease(
            "default",
            10,
            Duration::from_secs(60),
            after(t0(), ms(30_000))
        )
        .await
        .unwrap()
        .is_empty());

    let later = after(t0(), ms(120_000));
    let second = lease_all(&nodes, LEASERS, later, |_| true).await;
    let odd: Vec<JobId> = ids.iter().copied().filter(|id| id % 2 == 1).collect();
    assert_eq!(
        once(&second),
        odd,
        "every expired lease taken over once, and nothing else"
    );
    assert!(second.iter().flatten().all(|l| l.lease.token == 2));
    assert!(second.iter().flatten().all(|l| l.job.attempts == 2));

    // The crashed workers come back: their finishes are refused.
    let stale: Vec<Leased> = first
        .iter()
        .flatten()
        .filter(|l| l.job.id % 2 == 1)
        .cloned()
        .collect();
    let counted = nodes[1].finish(done(&stale), later).await.unwrap();
    assert!(
        counted.iter().all(|c| !c),
        "a lost lease's finish is refused"
    );

    let stats = nodes[0].queue_stats(&Scope::All, later).await.unwrap();
    let expect: BTreeMap<JobStatus, u64> = JobStatus::ALL
        .into_iter()
        .map(|s| (s, if s == JobStatus::Done { JOBS as u64 } else { 0 }))
        .collect();
    assert_eq!(stats.depth, expect);
    assert_eq!(stats.error_rate, 0.0);
}

/// Enqueues on two nodes at once, interleaved: each call's ids are its
/// jobs' in the order given, though the other node's took values between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_follow_the_given_order_while_another_node_enqueues() {
    const CALLS: usize = 20;
    const PER_CALL: usize = 100;
    let test =
        "store_conformance::jobs_postgres::ids_follow_the_given_order_while_another_node_enqueues";
    let Some(url) = Postgres::database_or_skip(test).await else {
        return;
    };
    let nodes = [node(&url).await, node(&url).await];
    let mut tasks = JoinSet::new();
    for call in 0..CALLS {
        let store = nodes[call % 2].clone();
        tasks.spawn(async move {
            let jobs = (0..PER_CALL).map(|i| job(call * PER_CALL + i, 0)).collect();
            (call, store.enqueue(jobs, t0()).await.expect("enqueue"))
        });
    }
    let mut answered = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        answered.push(joined.expect("enqueuer"));
    }
    let stored = nodes[0]
        .jobs(&JobFilter {
            tenant: Scope::All,
            status: None,
            kind: None,
            before: None,
            limit: (CALLS * PER_CALL) as u32,
        })
        .await
        .unwrap();
    let n_of: HashMap<JobId, u64> = stored
        .iter()
        .map(|j| (j.id, j.payload["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(n_of.len(), CALLS * PER_CALL);
    for (call, ids) in answered {
        let ns: Vec<u64> = ids.iter().map(|id| n_of[id]).collect();
        let expect: Vec<u64> = (0..PER_CALL)
            .map(|i| (call * PER_CALL + i) as u64)
            .collect();
        assert_eq!(ns, expect, "call {call}: ids in the order of its jobs");
    }
}

/// Waits until `counter` moves; panics after [`DEADLINE`].
async fn moves(counter: &mut watch::Receiver<u64>, what: &str) {
    tokio::time::timeout(DEADLINE, counter.changed())
        .await
        .unwrap_or_else(|_| panic!("{what}: the counter did not move"))
        .expect("the store keeps its counter");
}

/// An enqueue on one node moves the other's `enqueued()` counter (its
/// NOTIFY), and the enqueuing node's own before `enqueue` returns; a
/// retried dead job, due at once, wakes the other node too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_on_one_node_wakes_the_others() {
    let test = "store_conformance::jobs_postgres::an_enqueue_on_one_node_wakes_the_others";
    let Some(url) = Postgres::database_or_skip(test).await else {
        return;
    };
    let (a, b) = (node(&url).await, node(&url).await);
    let mut own = a.enqueued().await.unwrap();
    let mut other = b.enqueued().await.unwrap();
    own.borrow_and_update();
    other.borrow_and_update();

    let id = a.enqueue(vec![job(1, 0)], t0()).await.unwrap()[0];
    assert!(
        own.has_changed().unwrap(),
        "this node's counter moved at once"
    );
    moves(&mut other, "an enqueue on another node").await;

    let leased = b
        .lease("default", 1, Duration::from_secs(60), t0())
        .await
        .unwrap();
    let dead = Finish {
        lease: leased[0].lease,
        outcome: Outcome::Dead {
            error: "gone".into(),
        },
    };
    assert_eq!(b.finish(vec![dead], t0()).await.unwrap(), vec![true]);
    other.borrow_and_update();
    a.retry(id, &Scope::All, t0()).await.unwrap();
    moves(&mut other, "a retry on another node").await;
}

/// How many sessions on database `jobs` listen, or last ran an
/// `UNLISTEN` on their way out.
async fn listening(pg: &Postgres) -> String {
    pg.psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = 'jobs' AND query LIKE '%LISTEN%' AND pid <> pg_backend_pid()",
    )
    .await
}

/// Waits until [`listening`] is `n`; panics after [`DEADLINE`].
async fn listening_sessions(pg: &Postgres, n: u32, what: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now = listening(pg).await;
        if now == n.to_string() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {now} listening sessions, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server restart breaks the listening connection: the listener
/// connects again by itself, moves the counter (it may have missed
/// notifications meanwhile), and other nodes' enqueues wake it again.
/// Closing the store ends it, and so does dropping a store unclosed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_outlives_a_restart_and_ends_with_the_store() {
    let test =
        "store_conformance::jobs_postgres::the_listener_outlives_a_restart_and_ends_with_the_store";
    let Some(mut pg) = Postgres::start_or_skip(test).await else {
        return;
    };
    let url = pg.create_database("jobs").await;
    let (a, b) = (node(&url).await, node(&url).await);
    let mut woken = b.enqueued().await.unwrap();
    woken.borrow_and_update();
    listening_sessions(&pg, 1, "after enqueued()").await;

    pg.restart().await;
    moves(&mut woken, "listening again after the restart").await;
    woken.borrow_and_update();
    a.enqueue(vec![job(1, 0)], t0()).await.unwrap();
    moves(&mut woken, "an enqueue after the restart").await;
    listening_sessions(&pg, 1, "after the restart").await;

    // Closed, but not dropped: the listener ends with the close.
    b.close().await;
    listening_sessions(&pg, 0, "after close").await;
    assert!(
        b.enqueued().await.is_err(),
        "a closed store does not listen again"
    );

    let dropped = node(&url).await;
    dropped.enqueued().await.unwrap();
    listening_sessions(&pg, 1, "a third store listens").await;
    drop(dropped);
    listening_sessions(&pg, 0, "after dropping it unclosed").await;
    a.close().await;
}

/// A group of enqueues that PostgreSQL refuses (one job's correlation id
/// holds a NUL, which text cannot) is stored again request by request: the
/// bad request fails, every other one in the group is stored.
#[tokio::test]
async fn one_refused_job_fails_only_its_own_request_of_a_group() {
    use pytake::server::clock::Clock;
    use pytake::server::queue::enqueue::{EnqueueError, Enqueuer};
    let test =
        "store_conformance::jobs_postgres::one_refused_job_fails_only_its_own_request_of_a_group";
    let Some(url) = Postgres::database_or_skip(test).await else {
        return;
    };
    let store = node(&url).await;
    let enqueuer = Enqueuer::start(store.clone(), Clock::System);
    // On this one-thread runtime every request is queued before the group
    // writer first runs, so they are one group.
    let requests = (0..5).map(|n| {
        let mut jobs = vec![job(n, 0)];
        if n == 2 {
            jobs[0].correlation_id = Some("bad\u{0}id".into());
        }
        enqueuer.enqueue(jobs)
    });
    let answers = futures_util::future::join_all(requests).await;
    for (n, answer) in answers.iter().enumerate() {
        match (n, answer) {
            (2, Err(EnqueueError::Store(_))) => {}
            (2, other) => panic!("the NUL request: {other:?}"),
            (_, Ok(ids)) => {
                let stored = store.job(ids[0], &Scope::All).await.unwrap();
                assert_eq!(stored.payload, serde_json::json!({ "n": n }));
            }
            (_, Err(e)) => panic!("request {n} failed with the bad one: {e}"),
        }
    }
}
