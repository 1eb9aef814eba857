//! Conformance cases of the job queue (`JobStore`): each point of its
//! contract, on every backend.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use pytake::protocol::Scope;
use pytake::server::storage::jobs::{
    Finish, JobFilter, JobStatus, JobStore, Leased, NewJob, Outcome,
};
use pytake::server::storage::StoreError;
use serde_json::json;

use super::{after, t0, tenant, Backend};

const LEASE: Duration = Duration::from_secs(30);

pub(super) fn job(kind: &str, priority: i32, run_at: DateTime<Utc>) -> NewJob {
    NewJob {
        queue: "default".into(),
        kind: kind.into(),
        payload: json!({"kind": kind, "n": 1.50, "text": "Olá"}),
        priority,
        run_at,
        max_attempts: 3,
        correlation_id: None,
        tenant_id: None,
    }
}

fn done(leased: &Leased) -> Finish {
    Finish {
        lease: leased.lease,
        outcome: Outcome::Done,
    }
}

async fn lease(store: &dyn JobStore, n: u32, now: DateTime<Utc>) -> Vec<Leased> {
    store.lease("default", n, LEASE, now).await.expect("lease")
}

fn kinds(leased: &[Leased]) -> Vec<&str> {
    leased.iter().map(|l| l.job.kind.as_str()).collect()
}

/// Enqueued jobs read back as written, pending with no attempt.
pub(super) async fn jobs_read_back_exactly(backend: Backend) {
    let store = backend.open_all().await.jobs;
    let mut new = job("http", 5, t0());
    new.correlation_id = Some("req-1".into());
    new.tenant_id = Some("acme".into());
    let ids = store
        .enqueue(vec![new.clone(), job("noop", 0, t0())], t0())
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1], "ids follow the order given: {ids:?}");
    let read = store.job(ids[0], &Scope::All).await.unwrap();
    assert_eq!(read.kind, "http");
    assert_eq!(read.payload, new.payload);
    assert_eq!(
        read.payload.to_string(),
        new.payload.to_string(),
        "numbers as written"
    );
    assert_eq!(read.status, JobStatus::Pending);
    assert_eq!((read.attempts, read.max_attempts, read.priority), (0, 3, 5));
    assert_eq!(read.run_at, t0());
    assert_eq!(read.created_at, t0());
    assert_eq!(read.correlation_id.as_deref(), Some("req-1"));
    assert_eq!(read.tenant_id.as_deref(), Some("acme"));
    assert_eq!(read.lease_expires_at, None);
}

/// Priority first (highest), then run_at, then id; future jobs are not due.
pub(super) async fn jobs_lease_by_priority_then_age_and_only_when_due(backend: Backend) {
    let store = backend.open_all().await.jobs;
    let later = after(t0(), Duration::from_secs(60));
    store
        .enqueue(
            vec![
                job("low-old", 0, t0()),
                job("high", 10, after(t0(), Duration::from_secs(5))),
                job("low-new", 0, after(t0(), Duration::from_secs(1))),
                job("future", 99, later),
                job("mid", 5, t0()),
            ],
            t0(),
        )
        .await
        .unwrap();
    let now = after(t0(), Duration::from_secs(10));
    let first = lease(&*store, 2, now).await;
    assert_eq!(kinds(&first), ["high", "mid"]);
    let rest = lease(&*store, 10, now).await;
    assert_eq!(kinds(&rest), ["low-old", "low-new"], "the future job waits");
    for l in first.iter().chain(&rest) {
        assert_eq!(l.job.status, JobStatus::Running);
        assert_eq!(l.job.attempts, 1);
        assert_eq!(l.job.lease_expires_at, Some(after(now, LEASE)));
    }
    assert_eq!(
        store.next_due("default").await.unwrap(),
        Some(after(now, LEASE).min(later))
    );
    let finishes = first.iter().chain(&rest).map(done).collect();
    store.finish(finishes, now).await.unwrap();
    assert_eq!(kinds(&lease(&*store, 10, later).await), ["future"]);
}

/// Done, retry, dead and release each set what they promise; a finish
/// under a lost lease does not count.
pub(super) async fn finishes_record_outcomes_under_their_lease_only(backend: Backend) {
    let store = backend.open_all().await.jobs;
    let ids = store
        .enqueue(
            (0..4).map(|i| job(&format!("k{i}"), 0, t0())).collect(),
            t0(),
        )
        .await
        .unwrap();
    let leased = lease(&*store, 4, t0()).await;
    let retry_at = after(t0(), Duration::from_secs(2));
    let counted = store
        .finish(
            vec![
                done(&leased[0]),
                Finish {
                    lease: leased[1].lease,
                    outcome: Outcome::Retry {
                        at: retry_at,
                        error: "HTTP 502 from hooks.example.com".into(),
                    },
                },
                Finish {
                    lease: leased[2].lease,
                    outcome: Outcome::Dead {
                        error: "unknown kind `k2`".into(),
                    },
                },
                Finish {
                    lease: leased[3].lease,
                    outcome: Outcome::Release { at: retry_at },
                },
            ],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(counted, [true; 4]);
    let read = |i: usize| {
        let store = store.clone();
        let id = ids[i];
        async move { store.job(id, &Scope::All).await.unwrap() }
    };
    let (d, r, x, rel) = (read(0).await, read(1).await, read(2).await, read(3).await);
    assert_eq!((d.status, d.lease_expires_at), (JobStatus::Done, None));
    assert_eq!(
        (r.status, r.run_at, r.attempts),
        (JobStatus::Retrying, retry_at, 1)
    );
    assert_eq!(
        r.last_error.as_deref(),
        Some("HTTP 502 from hooks.example.com")
    );
    assert_eq!((x.status, x.attempts), (JobStatus::Dead, 1));
    assert_eq!(x.last_error.as_deref(), Some("unknown kind `k2`"));
    assert_eq!(
        (rel.status, rel.attempts, rel.run_at),
        (JobStatus::Pending, 0, retry_at),
        "a release gives the attempt back"
    );
    // Finishing again under the same (now spent) lease counts for nothing.
    assert_eq!(
        store.finish(vec![done(&leased[1])], t0()).await.unwrap(),
        [false]
    );
    assert_eq!(read(1).await.status, JobStatus::Retrying);
    // The retry is due at its time, as its second attempt.
    assert!(lease(&*store, 10, t0()).await.is_empty());
    let again = lease(&*store, 10, retry_at).await;
    assert_eq!(kinds(&again), ["k1", "k3"]);
    assert_eq!(again[0].job.attempts, 2);
    assert_eq!(again[1].job.attempts, 1);
}

/// A lease that expires makes the job due again under a new token; the
/// first holder's late finish is refused and the job completes once.
pub(super) async fn an_expired_lease_is_taken_over_and_fenced(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let id = a
        .jobs
        .enqueue(vec![job("slow", 0, t0())], t0())
        .await
        .unwrap()[0];
    let first = lease(&*a.jobs, 1, t0()).await;
    assert_eq!(first.len(), 1);
    let before_expiry = after(t0(), LEASE - Duration::from_millis(1));
    assert!(
        lease(&*b.jobs, 1, before_expiry).await.is_empty(),
        "held by its lease"
    );
    let expired = after(t0(), LEASE);
    let second = lease(&*b.jobs, 1, expired).await;
    assert_eq!(second.len(), 1, "due again once the lease expired");
    assert_eq!(second[0].job.id, id);
    assert_eq!(
        second[0].job.attempts, 2,
        "the crashed run counts as an attempt"
    );
    assert_ne!(second[0].lease, first[0].lease);
    assert_eq!(
        a.jobs.finish(vec![done(&first[0])], expired).await.unwrap(),
        [false]
    );
    assert_eq!(
        a.jobs.job(id, &Scope::All).await.unwrap().status,
        JobStatus::Running
    );
    assert_eq!(
        b.jobs
            .finish(vec![done(&second[0])], expired)
            .await
            .unwrap(),
        [true]
    );
    assert_eq!(
        b.jobs.job(id, &Scope::All).await.unwrap().status,
        JobStatus::Done
    );
}

/// Concurrent leases, from two nodes where the backend has several, hand
/// every job out exactly once.
pub(super) async fn concurrent_leases_hand_each_job_out_once(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let total = 600;
    a.jobs
        .enqueue(
            (0..total).map(|i| job(&format!("j{i}"), 0, t0())).collect(),
            t0(),
        )
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 {
            a.jobs.clone()
        } else {
            b.jobs.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .lease("default", 10, LEASE, t0())
                    .await
                    .expect("lease");
                if got.is_empty() {
                    return mine;
                }
                let finishes = got.iter().map(done).collect();
                assert!(store
                    .finish(finishes, t0())
                    .await
                    .unwrap()
                    .iter()
                    .all(|c| *c));
                mine.extend(got.into_iter().map(|l| l.job.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut count = 0;
    for task in tasks {
        for id in task.await.unwrap() {
            count += 1;
            assert!(seen.insert(id), "job {id} leased twice");
        }
    }
    assert_eq!(count, total);
    let stats = a.jobs.queue_stats(&Scope::All, t0()).await.unwrap();
    assert_eq!(stats.depth[&JobStatus::Done], total as u64);
}

/// Retry only from dead (409 otherwise); retry-all by kind; purge only
/// final statuses by age; tenants see only their own jobs.
pub(super) async fn dead_letters_retry_purge_and_tenant_scope(backend: Backend) {
    let store = backend.open_all().await.jobs;
    let mut acme = job("http", 0, t0());
    acme.tenant_id = Some("acme".into());
    let mut globex = job("webhook.whatsapp", 0, t0());
    globex.tenant_id = Some("globex".into());
    let ids = store
        .enqueue(vec![acme, globex, job("http", 0, t0())], t0())
        .await
        .unwrap();
    let acme_scope = Scope::Only(tenant("acme"));
    assert!(matches!(
        store.job(ids[1], &acme_scope).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.retry(ids[0], &Scope::All, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    let leased = lease(&*store, 3, t0()).await;
    let dead = |l: &Leased| Finish {
        lease: l.lease,
        outcome: Outcome::Dead {
            error: "HTTP 410".into(),
        },
    };
    store
        .finish(leased.iter().map(dead).collect(), t0())
        .await
        .unwrap();
    let listed = store
        .jobs(&JobFilter {
            tenant: acme_scope.clone(),
            status: Some(JobStatus::Dead),
            kind: None,
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [ids[0]]);
    let all = store
        .jobs(&JobFilter {
            tenant: Scope::All,
            status: None,
            kind: Some("http".into()),
            before: None,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|j| j.id).collect::<Vec<_>>(),
        [ids[2], ids[0]],
        "newest first"
    );
    let stats = store.queue_stats(&Scope::All, t0()).await.unwrap();
    assert_eq!(stats.depth[&JobStatus::Dead], 3);
    assert_eq!(stats.dead_by_kind["http"], 2);
    assert_eq!(stats.error_rate, 1.0);

    let later = after(t0(), Duration::from_secs(5));
    let retried = store.retry(ids[0], &acme_scope, later).await.unwrap();
    assert_eq!(
        (retried.status, retried.attempts, retried.run_at),
        (JobStatus::Pending, 0, later)
    );
    assert!(matches!(
        store.retry(ids[1], &acme_scope, later).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        store
            .retry_dead(Some("webhook.whatsapp"), &Scope::All, later)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.job(ids[2], &Scope::All).await.unwrap().status,
        JobStatus::Dead
    );

    assert!(matches!(
        store.purge(JobStatus::Pending, later, &Scope::All).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .purge(JobStatus::Dead, t0(), &Scope::All)
            .await
            .unwrap(),
        0,
        "too young"
    );
    assert_eq!(
        store
            .purge(JobStatus::Dead, later, &Scope::All)
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        store.job(ids[2], &Scope::All).await,
        Err(StoreError::NotFound { .. })
    ));
}

/// Depth, oldest due wait, processing and error rates over the window.
pub(super) async fn queue_stats_count_depth_age_and_rates(backend: Backend) {
    let store = backend.open_all().await.jobs;
    store
        .enqueue(
            (0..5).map(|i| job(&format!("s{i}"), 0, t0())).collect(),
            t0(),
        )
        .await
        .unwrap();
    store
        .enqueue(
            vec![job("future", 0, after(t0(), Duration::from_secs(3600)))],
            t0(),
        )
        .await
        .unwrap();
    let now = after(t0(), Duration::from_secs(90));
    let leased = lease(&*store, 4, now).await;
    let mut finishes: Vec<Finish> = leased[..3].iter().map(done).collect();
    finishes.push(Finish {
        lease: leased[3].lease,
        outcome: Outcome::Retry {
            at: after(now, Duration::from_secs(600)),
            error: "timeout".into(),
        },
    });
    store.finish(finishes, now).await.unwrap();
    let stats = store.queue_stats(&Scope::All, now).await.unwrap();
    let depth: Vec<u64> = JobStatus::ALL.iter().map(|s| stats.depth[s]).collect();
    // pending: the one left and the future one; retrying: 1; done: 3.
    assert_eq!(depth, [2, 0, 1, 3, 0]);
    assert!(
        (stats.oldest_pending_seconds - 90.0).abs() < 1e-9,
        "{stats:?}"
    );
    assert!((stats.error_rate - 0.25).abs() < 1e-9, "{stats:?}");
    assert!(stats.processed_per_second > 0.0);
    let idle = store
        .queue_stats(&Scope::All, after(now, Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(idle.processed_per_second, 0.0, "past the window");
    assert_eq!(idle.error_rate, 0.0);
}

/// An enqueue moves the wake-up counter of every node's store.
pub(super) async fn an_enqueue_wakes_every_node(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let mut woken = b.jobs.enqueued().await.unwrap();
    woken.borrow_and_update();
    a.jobs
        .enqueue(vec![job("noop", 0, t0())], t0())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), woken.changed())
        .await
        .expect("woken within 10 s")
        .expect("the store is open");
}
