//! Conformance cases of the alerting store (`AlertStore`): the
//! evaluator's lease and its fenced commit, on every backend, and the
//! helpers of every alerting case. Rules are in `alerts_rules.rs`, the
//! acknowledgements and listings in `alerts_history.rs`.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use pytake::protocol::alerts::{
    Alert, AlertRule, AlertState, Channel, Comparator, Condition, Incident, Severity,
};
use pytake::protocol::Scope;
use pytake::server::storage::alerts::{AlertWrite, RuleState};
use pytake::server::storage::jobs::{Job, JobFilter};
use pytake::server::storage::{StoreError, Stores};
use sqlx::Connection;

use super::jobs::job;
use super::{t0, Backend};

/// The evaluator's lease.
pub(super) const LEASE: &str = "alert-evaluator";
pub(super) const TTL: Duration = Duration::from_secs(30);

/// `minutes` after [`t0`].
pub(super) fn at(minutes: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::minutes(minutes)
}

/// [`at`] as the API writes times.
pub(super) fn text(minutes: i64) -> String {
    at(minutes).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn rule(id: &str, tenant: Option<&str>, threshold: f64) -> AlertRule {
    AlertRule {
        id: id.into(),
        name: format!("Rule {id}"),
        condition: Condition::QueueDepth,
        metric: None,
        comparator: Comparator::Above,
        threshold,
        window: Duration::from_secs(300),
        for_: Duration::from_secs(60),
        severity: Severity::Warning,
        enabled: true,
        tenant_id: tenant.map(str::to_string),
        channels: vec![Channel::Websocket, Channel::Slack],
    }
}

/// A pending alert of `rule` for `tenant`, begun at minute `since`.
pub(super) fn alert(id: &str, rule: &str, tenant: &str, since: i64) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        rule_name: format!("Rule {rule}"),
        condition: Condition::ErpLatency,
        metric: Some("p95".into()),
        comparator: Comparator::AtLeast,
        threshold: 1500.0,
        severity: Severity::Critical,
        tenant_id: tenant.into(),
        state: AlertState::Pending,
        current_value: 1734.25,
        pending_since: text(since),
        fired_at: None,
        resolved_at: None,
        incident_id: None,
        acknowledged_at: None,
        acknowledged_by: None,
        silenced: false,
    }
}

/// `alert` fired at minute `minute` into `incident`.
pub(super) fn fired(alert: Alert, minute: i64, incident: &str) -> Alert {
    Alert {
        state: AlertState::Firing,
        fired_at: Some(text(minute)),
        incident_id: Some(incident.into()),
        ..alert
    }
}

/// `alert` resolved at minute `minute`.
pub(super) fn resolved(alert: Alert, minute: i64) -> Alert {
    Alert {
        state: AlertState::Resolved,
        resolved_at: Some(text(minute)),
        ..alert
    }
}

/// A firing incident of `tenant` opened at minute `opened`.
pub(super) fn incident(id: &str, tenant: &str, opened: i64, alerts: &[&str]) -> Incident {
    Incident {
        id: id.into(),
        correlation_id: format!("corr-{id}"),
        tenant_id: tenant.into(),
        state: AlertState::Firing,
        opened_at: text(opened),
        last_fired_at: text(opened + 1),
        resolved_at: None,
        acknowledged_at: None,
        acknowledged_by: None,
        last_notified_at: Some(text(opened + 2)),
        notifications: 1,
        alert_ids: alerts.iter().map(|a| a.to_string()).collect(),
    }
}

pub(super) fn state(rule: &str, tenant: &str, alert: &str, state: AlertState) -> RuleState {
    RuleState {
        rule_id: rule.into(),
        tenant_id: tenant.into(),
        state,
        alert_id: alert.into(),
        since: Some(at(1) + chrono::Duration::milliseconds(250)),
    }
}

/// Takes the evaluator's lease for `holder` at `now`; its token.
pub(super) async fn leased(stores: &Stores, holder: &str, now: DateTime<Utc>) -> i64 {
    stores
        .alerts
        .lease(LEASE, holder, TTL, now)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{holder} gets the lease at {now}"))
}

/// Commits `write` under `token`; whether it was written.
pub(super) async fn commit(
    stores: &Stores,
    token: i64,
    write: AlertWrite,
    now: DateTime<Utc>,
) -> bool {
    stores
        .alerts
        .commit(LEASE, token, write, now)
        .await
        .expect("commit")
}

/// Every job, oldest first.
pub(super) async fn all_jobs(stores: &Stores) -> Vec<Job> {
    let filter = JobFilter {
        tenant: Scope::All,
        status: None,
        kind: None,
        before: None,
        limit: 100,
    };
    let mut jobs = stores.jobs.jobs(&filter).await.unwrap();
    jobs.reverse();
    jobs
}

fn kinds(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.kind.as_str()).collect()
}

/// A write with a row of every kind: a firing alert in an incident, a
/// pending one, their states, and two jobs.
fn full_write() -> AlertWrite {
    AlertWrite {
        states: vec![
            state("r1", "acme", "a1", AlertState::Firing),
            state("r2", "acme", "a2", AlertState::Pending),
        ],
        cleared: Vec::new(),
        alerts: vec![
            fired(alert("a1", "r1", "acme", 0), 1, "i1"),
            alert("a2", "r2", "acme", 3),
        ],
        dropped: Vec::new(),
        incidents: vec![incident("i1", "acme", 1, &["a1"])],
        jobs: vec![
            job("alert.publish", 0, at(1)),
            job("alert.notify", 0, at(1)),
        ],
    }
}

/// One holder at a time: it renews with the same token; another holder
/// is refused until the lease expires, then gets a greater token.
pub(super) async fn the_lease_is_renewed_refused_and_taken_over_after_expiry(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let secs = |s: i64| t0() + chrono::Duration::seconds(s);
    let lease = |stores: &Stores, holder: &'static str, now: DateTime<Utc>| {
        let store = stores.alerts.clone();
        async move { store.lease(LEASE, holder, TTL, now).await.unwrap() }
    };
    assert_eq!(lease(&a, "node-a", secs(0)).await, Some(1));
    assert_eq!(lease(&b, "node-b", secs(10)).await, None, "node-a holds it");
    assert_eq!(
        lease(&a, "node-a", secs(20)).await,
        Some(1),
        "renewed to 50 s"
    );
    assert_eq!(
        lease(&b, "node-b", secs(49)).await,
        None,
        "renewed, not expired at 30 s"
    );
    let just_before = secs(50) - chrono::Duration::milliseconds(1);
    assert_eq!(lease(&b, "node-b", just_before).await, None);
    assert_eq!(
        lease(&b, "node-b", secs(50)).await,
        Some(2),
        "expired: taken over"
    );
    assert_eq!(
        lease(&a, "node-a", secs(60)).await,
        None,
        "node-b holds it now"
    );
    assert_eq!(lease(&b, "node-b", secs(70)).await, Some(2));
    // Expired and taken back by its last holder: nobody else held it in
    // between, so nothing to fence.
    assert_eq!(lease(&b, "node-b", secs(200)).await, Some(2));
    assert_eq!(lease(&a, "node-a", secs(231)).await, Some(3));
    // Leases are by name.
    let other = a
        .alerts
        .lease("other", "node-b", TTL, secs(231))
        .await
        .unwrap();
    assert_eq!(other, Some(1));
}

/// A commit under a token that is not the lease's current one, or after
/// the lease expired, writes nothing: no row and no job.
pub(super) async fn a_commit_without_the_current_lease_writes_nothing(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let first = leased(&a, "node-a", t0()).await;
    let late = t0() + chrono::Duration::seconds(31);
    let second = leased(&b, "node-b", late).await;
    assert!(second > first, "{second} > {first}");

    let nothing = |stores: &Stores| {
        let stores = stores.clone();
        async move {
            assert_eq!(stores.alerts.rule_states().await.unwrap(), []);
            let all = super::alerts_history::every_alert(&stores).await;
            assert_eq!(all, []);
            assert_eq!(stores.alerts.open_incidents().await.unwrap(), []);
            assert_eq!(all_jobs(&stores).await, [], "no job either");
        }
    };
    assert!(!commit(&a, first, full_write(), late).await, "stale token");
    nothing(&a).await;
    let expiry = late + chrono::Duration::from_std(TTL).unwrap();
    assert!(
        !commit(&b, second, full_write(), expiry).await,
        "expired at its end"
    );
    assert!(
        !commit(&b, second + 1, full_write(), late).await,
        "a token never given"
    );
    let unknown = b
        .alerts
        .commit("no-such-lease", second, full_write(), late)
        .await;
    assert!(!unknown.unwrap());
    nothing(&b).await;

    let just_before = expiry - chrono::Duration::milliseconds(1);
    assert!(commit(&b, second, full_write(), just_before).await);
    assert_eq!(
        kinds(&all_jobs(&a).await),
        ["alert.publish", "alert.notify"]
    );
}

/// A commit writes states, alerts, incidents and jobs together and wakes
/// the workers of every node; later commits replace rows, clear states
/// and drop pending alerts (never fired ones).
pub(super) async fn a_commit_writes_everything_and_enqueues_its_jobs(backend: Backend) {
    let [a, b] = backend.two_nodes_all().await;
    let mut woken = b.jobs.enqueued().await.unwrap();
    woken.borrow_and_update();
    let token = leased(&a, "node-a", at(1)).await;
    let mut write = full_write();
    // Times in another form come back in the API's.
    write.alerts[1].pending_since = "2026-03-01T13:03:00.000000+01:00".into();
    assert!(commit(&a, token, write.clone(), at(1)).await);
    tokio::time::timeout(Duration::from_secs(10), woken.changed())
        .await
        .expect("the workers of every node woken within 10 s")
        .expect("the store is open");

    let jobs = all_jobs(&b).await;
    assert_eq!(kinds(&jobs), ["alert.publish", "alert.notify"]);
    assert_eq!(jobs[1].payload, write.jobs[1].payload);
    assert_eq!((jobs[1].run_at, jobs[1].created_at), (at(1), at(1)));
    assert_eq!(b.alerts.rule_states().await.unwrap(), write.states);
    let mut stored = write.alerts.clone();
    stored[1].pending_since = text(3);
    assert_eq!(b.alerts.alert("a1", &Scope::All).await.unwrap(), stored[0]);
    assert_eq!(b.alerts.alert("a2", &Scope::All).await.unwrap(), stored[1]);
    assert_eq!(b.alerts.open_incidents().await.unwrap(), write.incidents);

    // The next evaluation: a2 cleared before it fired, a1 resolved, and
    // a state set in the same write as it is cleared ends cleared.
    let next = AlertWrite {
        states: vec![state("r3", "acme", "a3", AlertState::Pending)],
        cleared: vec![
            ("r1".into(), "acme".into()),
            ("r2".into(), "acme".into()),
            ("r3".into(), "acme".into()),
        ],
        alerts: vec![resolved(stored[0].clone(), 5)],
        // a1 is not pending: dropping it keeps it in history.
        dropped: vec!["a2".into(), "a1".into()],
        incidents: vec![Incident {
            state: AlertState::Resolved,
            resolved_at: Some(text(5)),
            notifications: 2,
            ..write.incidents[0].clone()
        }],
        jobs: Vec::new(),
    };
    assert_eq!(leased(&a, "node-a", at(5)).await, token, "renewed");
    assert!(commit(&a, token, next.clone(), at(5)).await);
    assert_eq!(b.alerts.rule_states().await.unwrap(), []);
    assert_eq!(
        b.alerts.alert("a1", &Scope::All).await.unwrap(),
        next.alerts[0]
    );
    assert!(matches!(
        b.alerts.alert("a2", &Scope::All).await.unwrap_err(),
        StoreError::NotFound { what: "alert", .. }
    ));
    assert_eq!(b.alerts.open_incidents().await.unwrap(), []);
    let all = b.alerts.incidents(&Scope::All, t0(), 10).await.unwrap();
    assert_eq!(all, next.incidents);
    assert_eq!(all_jobs(&b).await.len(), 2, "no new job");
}

/// A commit that fails part-way (here the database refuses its last
/// statement, the jobs) leaves nothing of it behind.
pub(super) async fn a_commit_that_fails_leaves_nothing_behind(backend: Backend) {
    let stores = backend.open_all().await;
    refuse_jobs_of_kind(&backend, "refused").await;
    let token = leased(&stores, "node-a", at(1)).await;
    let mut write = full_write();
    write.jobs.push(job("refused", 0, at(1)));
    let failed = stores.alerts.commit(LEASE, token, write, at(1)).await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("refused by the test")),
        "{failed:?}"
    );
    assert_eq!(stores.alerts.rule_states().await.unwrap(), []);
    assert_eq!(super::alerts_history::every_alert(&stores).await, []);
    assert_eq!(stores.alerts.open_incidents().await.unwrap(), []);
    assert_eq!(all_jobs(&stores).await, []);
    // The store goes on: the same write without the refused job commits.
    assert!(commit(&stores, token, full_write(), at(1)).await);
    assert_eq!(stores.alerts.rule_states().await.unwrap().len(), 2);

    let bad = AlertWrite {
        alerts: vec![Alert {
            pending_since: "yesterday".into(),
            ..alert("a9", "r9", "acme", 0)
        }],
        ..AlertWrite::default()
    };
    let refused = stores
        .alerts
        .commit(LEASE, token, bad, at(2))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StoreError::Unstorable { what: "alert", .. }),
        "{refused:?}"
    );
}

/// Makes the database refuse jobs of `kind` with "refused by the test".
async fn refuse_jobs_of_kind(backend: &Backend, kind: &str) {
    if backend.url.starts_with("sqlite://") {
        let mut conn = sqlx::SqliteConnection::connect(&backend.url).await.unwrap();
        sqlx::query(&format!(
            "CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs WHEN NEW.kind = '{kind}' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(&backend.url).await.unwrap();
        sqlx::raw_sql(&format!(
            "CREATE FUNCTION refuse_job() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.kind = '{kind}' THEN RAISE EXCEPTION 'refused by the test'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER refuse_jobs BEFORE INSERT ON jobs \
               FOR EACH ROW EXECUTE FUNCTION refuse_job();"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
