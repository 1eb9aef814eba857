//! Conformance cases of the alerting store's history: acknowledgements,
//! the alert and incident listings, silences, and what another tenant's
//! ids reveal (nothing), on every backend.

use pytake::protocol::alerts::{Alert, AlertState, Incident, Silence};
use pytake::protocol::{Scope, TenantId};
use pytake::server::storage::alerts::{AlertFilter, AlertWrite};
use pytake::server::storage::{StoreError, Stores};

use super::alerts::{alert, at, commit, fired, incident, leased, resolved, text};
use super::{tenant, Backend};

/// Every stored alert, newest first.
pub(super) async fn every_alert(stores: &Stores) -> Vec<Alert> {
    listed(stores, Scope::All, None, None, 1000).await
}

async fn listed(
    stores: &Stores,
    tenant: Scope<TenantId>,
    since: Option<i64>,
    state: Option<AlertState>,
    limit: u32,
) -> Vec<Alert> {
    let filter = AlertFilter {
        tenant,
        since: since.map(at),
        state,
        limit,
    };
    stores.alerts.alerts(&filter).await.expect("alerts")
}

fn alert_ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

fn incident_ids(incidents: &[Incident]) -> Vec<&str> {
    incidents.iter().map(|i| i.id.as_str()).collect()
}

fn acme() -> Scope<TenantId> {
    Scope::Only(tenant("acme"))
}

/// Commits `write` as the evaluator's lease holder at minute 0.
async fn evaluated(stores: &Stores, write: AlertWrite) {
    let token = leased(stores, "node-a", at(0)).await;
    assert!(commit(stores, token, write, at(0)).await);
}

/// Two incidents of acme (i1 of a1 and a2, i2 of a3), one pending alert
/// (p1), and globex's incident g1 of ga1 and its pending gp1.
fn two_tenants() -> AlertWrite {
    AlertWrite {
        alerts: vec![
            fired(alert("a1", "r1", "acme", 0), 1, "i1"),
            fired(alert("a2", "r2", "acme", 0), 1, "i1"),
            fired(alert("a3", "r3", "acme", 2), 3, "i2"),
            alert("p1", "r4", "acme", 4),
            fired(alert("ga1", "r1", "globex", 0), 1, "g1"),
            alert("gp1", "r2", "globex", 4),
        ],
        incidents: vec![
            incident("i1", "acme", 1, &["a1", "a2"]),
            incident("i2", "acme", 3, &["a3"]),
            incident("g1", "globex", 1, &["ga1"]),
        ],
        ..AlertWrite::default()
    }
}

fn acked_by(alert: &Alert) -> (Option<&str>, Option<&str>) {
    (
        alert.acknowledged_at.as_deref(),
        alert.acknowledged_by.as_deref(),
    )
}

/// Acknowledging by an alert's id acknowledges its incident and all the
/// incident's alerts; a second acknowledgement keeps the first's time and
/// author; a pending alert has nothing to acknowledge yet.
pub(super) async fn acknowledging_by_alert_or_incident_id_once(backend: Backend) {
    let stores = backend.open_all().await;
    evaluated(&stores, two_tenants()).await;
    let store = &stores.alerts;

    let i1 = store
        .acknowledge("a2", "alice", &acme(), at(10))
        .await
        .unwrap();
    let first = (Some(text(10)), Some("alice".to_string()));
    assert_eq!(i1.id, "i1");
    assert_eq!(
        (i1.acknowledged_at.clone(), i1.acknowledged_by.clone()),
        first
    );
    assert_eq!(
        i1,
        Incident {
            acknowledged_at: Some(text(10)),
            acknowledged_by: Some("alice".into()),
            ..incident("i1", "acme", 1, &["a1", "a2"])
        }
    );
    for id in ["a1", "a2"] {
        let a = store.alert(id, &acme()).await.unwrap();
        assert_eq!(
            acked_by(&a),
            (Some(text(10).as_str()), Some("alice")),
            "{id}"
        );
    }
    let a3 = store.alert("a3", &acme()).await.unwrap();
    assert_eq!(acked_by(&a3), (None, None), "another incident's alert");

    let again = store
        .acknowledge("i1", "bob", &acme(), at(20))
        .await
        .unwrap();
    assert_eq!(again, i1, "the first acknowledgement stays");
    let a1 = store.alert("a1", &Scope::All).await.unwrap();
    assert_eq!(acked_by(&a1), (Some(text(10).as_str()), Some("alice")));

    let i2 = store
        .acknowledge("i2", "bob", &Scope::All, at(20))
        .await
        .unwrap();
    assert_eq!(
        (i2.acknowledged_at.as_deref(), i2.acknowledged_by.as_deref()),
        (Some(text(20).as_str()), Some("bob"))
    );
    let a3 = store.alert("a3", &Scope::All).await.unwrap();
    assert_eq!(acked_by(&a3), (Some(text(20).as_str()), Some("bob")));

    let pending = store
        .acknowledge("p1", "bob", &acme(), at(20))
        .await
        .unwrap_err();
    assert!(matches!(pending, StoreError::Conflict(_)), "{pending:?}");
    assert_eq!(
        pending.to_string(),
        "alert `p1` is pending: it has no incident to acknowledge until it fires"
    );
    let p1 = store.alert("p1", &acme()).await.unwrap();
    assert_eq!(acked_by(&p1), (None, None));
    let missing = store
        .acknowledge("nope", "bob", &Scope::All, at(20))
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "incident or alert `nope` does not exist"
    );
}

/// The evaluator's commit of rows it read before an acknowledgement
/// (none in them, or another) never clears or replaces the stored one.
pub(super) async fn an_acknowledgement_survives_later_commits(backend: Backend) {
    let stores = backend.open_all().await;
    let token = leased(&stores, "node-a", at(1)).await;
    let write = two_tenants();
    assert!(commit(&stores, token, write.clone(), at(1)).await);
    let acked = stores
        .alerts
        .acknowledge("i1", "alice", &acme(), at(10))
        .await
        .unwrap();

    // The evaluator's next commit, from what it read before.
    let mut a1 = write.alerts[0].clone();
    a1.current_value = 2048.5;
    let mut a2 = write.alerts[1].clone();
    a2.acknowledged_at = Some(text(11));
    a2.acknowledged_by = Some("evaluator".into());
    let mut i1 = write.incidents[0].clone();
    i1.notifications = 2;
    i1.last_notified_at = Some(text(12));
    // A new alert with an acknowledgement of its own keeps it.
    let mut a4 = fired(alert("a4", "r5", "acme", 5), 6, "i1");
    a4.acknowledged_at = Some(text(12));
    a4.acknowledged_by = Some("carol".into());
    let next = AlertWrite {
        alerts: vec![a1.clone(), a2.clone(), a4.clone()],
        incidents: vec![i1.clone()],
        ..AlertWrite::default()
    };
    assert_eq!(leased(&stores, "node-a", at(12)).await, token, "renewed");
    assert!(commit(&stores, token, next, at(12)).await);

    let alice = |mut alert: Alert| {
        alert.acknowledged_at = Some(text(10));
        alert.acknowledged_by = Some("alice".into());
        alert
    };
    assert_eq!(stores.alerts.alert("a1", &acme()).await.unwrap(), alice(a1));
    assert_eq!(stores.alerts.alert("a2", &acme()).await.unwrap(), alice(a2));
    assert_eq!(stores.alerts.alert("a4", &acme()).await.unwrap(), a4);
    let stored = stores.alerts.incidents(&acme(), at(0), 10).await.unwrap();
    let i1_stored = stored.iter().find(|i| i.id == "i1").unwrap();
    assert_eq!(
        *i1_stored,
        Incident {
            acknowledged_at: acked.acknowledged_at.clone(),
            acknowledged_by: acked.acknowledged_by.clone(),
            ..i1
        }
    );
    assert_eq!(
        i1_stored.notifications, 2,
        "the rest of the row is replaced"
    );
}

/// Another tenant's alerts, incidents and silences answer NotFound,
/// exactly as ids that do not exist, and are left as they were.
pub(super) async fn other_tenants_ids_reveal_nothing(backend: Backend) {
    let stores = backend.open_all().await;
    evaluated(&stores, two_tenants()).await;
    let store = &stores.alerts;
    let not_found = |e: StoreError| match e {
        StoreError::NotFound { what, id } => format!("{what} {id}"),
        other => panic!("not NotFound: {other:?}"),
    };
    assert_eq!(
        not_found(store.alert("ga1", &acme()).await.unwrap_err()),
        "alert ga1"
    );
    for id in ["g1", "ga1", "gp1"] {
        let e = store
            .acknowledge(id, "mallory", &acme(), at(10))
            .await
            .unwrap_err();
        assert_eq!(not_found(e), format!("incident or alert {id}"));
    }
    let g1 = store.incidents(&Scope::All, at(0), 10).await.unwrap();
    let g1 = g1.iter().find(|i| i.id == "g1").unwrap();
    assert_eq!(g1.acknowledged_by, None);
    let ga1 = store
        .alert("ga1", &Scope::Only(tenant("globex")))
        .await
        .unwrap();
    assert_eq!(ga1.acknowledged_by, None);

    assert_eq!(
        alert_ids(&listed(&stores, acme(), None, None, 100).await),
        ["p1", "a3", "a2", "a1"]
    );
    assert_eq!(
        incident_ids(&store.incidents(&acme(), at(0), 10).await.unwrap()),
        ["i2", "i1"]
    );

    store
        .add_silence(&silence("gs", None, Some("globex"), 0, 60))
        .await
        .unwrap();
    let e = store.delete_silence("gs", &acme()).await.unwrap_err();
    assert_eq!(not_found(e), "silence gs");
    assert_eq!(store.silences(&acme(), None).await.unwrap(), []);
    assert_eq!(store.silences(&Scope::All, None).await.unwrap().len(), 1);
}

/// Newest first by when they began; `since` keeps alerts begun since or
/// not resolved before it; the state and the limit cut after that.
pub(super) async fn alert_listings_filter_by_time_state_and_tenant(backend: Backend) {
    let stores = backend.open_all().await;
    let write = AlertWrite {
        alerts: vec![
            resolved(fired(alert("old", "r1", "acme", 0), 1, "i1"), 10),
            resolved(fired(alert("late", "r2", "acme", 0), 1, "i1"), 40),
            resolved(fired(alert("edge", "r3", "acme", 5), 6, "i2"), 30),
            fired(alert("firing", "r4", "acme", 1), 2, "i3"),
            alert("new", "r5", "acme", 50),
            alert("globex", "r1", "globex", 45),
        ],
        ..AlertWrite::default()
    };
    evaluated(&stores, write.clone()).await;
    let all = |id: &str| write.alerts.iter().find(|a| a.id == id).unwrap().clone();

    let since = listed(&stores, Scope::All, Some(30), None, 100).await;
    assert_eq!(
        alert_ids(&since),
        ["new", "globex", "edge", "firing", "late"]
    );
    assert_eq!(since[2], all("edge"), "read back whole");
    assert_eq!(
        alert_ids(&listed(&stores, Scope::All, None, None, 100).await),
        ["new", "globex", "edge", "firing", "old", "late"],
        "equal beginnings by id, newest first"
    );
    assert_eq!(
        alert_ids(
            &listed(
                &stores,
                Scope::All,
                Some(30),
                Some(AlertState::Resolved),
                100
            )
            .await
        ),
        ["edge", "late"]
    );
    assert_eq!(
        alert_ids(&listed(&stores, Scope::All, Some(30), Some(AlertState::Firing), 100).await),
        ["firing"]
    );
    assert_eq!(
        alert_ids(&listed(&stores, Scope::All, None, Some(AlertState::Pending), 100).await),
        ["new", "globex"]
    );
    assert_eq!(
        alert_ids(&listed(&stores, acme(), Some(30), None, 100).await),
        ["new", "edge", "firing", "late"]
    );
    assert_eq!(
        alert_ids(&listed(&stores, Scope::All, Some(30), None, 2).await),
        ["new", "globex"]
    );
    assert_eq!(
        listed(&stores, Scope::Only(tenant("initech")), None, None, 100).await,
        []
    );
}

/// Open incidents oldest first; a listing shows a tenant's open ones and
/// those resolved since, newest first.
pub(super) async fn incidents_list_open_and_recently_resolved(backend: Backend) {
    let stores = backend.open_all().await;
    let resolved_at = |mut i: Incident, minute: i64| {
        i.state = AlertState::Resolved;
        i.resolved_at = Some(text(minute));
        i
    };
    let write = AlertWrite {
        incidents: vec![
            resolved_at(incident("old", "acme", 0, &["a1"]), 10),
            resolved_at(incident("recent", "acme", 5, &["a2", "a3"]), 40),
            incident("open", "acme", 20, &["a4"]),
            incident("globex", "globex", 2, &["g1"]),
        ],
        ..AlertWrite::default()
    };
    evaluated(&stores, write.clone()).await;
    let store = &stores.alerts;
    assert_eq!(
        store.open_incidents().await.unwrap(),
        [write.incidents[3].clone(), write.incidents[2].clone()]
    );
    assert_eq!(
        store.incidents(&Scope::All, at(30), 10).await.unwrap(),
        [
            write.incidents[2].clone(),
            write.incidents[1].clone(),
            write.incidents[3].clone()
        ]
    );
    assert_eq!(
        incident_ids(&store.incidents(&acme(), at(30), 10).await.unwrap()),
        ["open", "recent"]
    );
    assert_eq!(
        incident_ids(&store.incidents(&acme(), at(10), 10).await.unwrap()),
        ["open", "recent", "old"],
        "resolved exactly at `since` is listed"
    );
    assert_eq!(
        incident_ids(&store.incidents(&Scope::All, at(30), 1).await.unwrap()),
        ["open"]
    );
}

pub(super) fn silence(
    id: &str,
    rule: Option<&str>,
    tenant: Option<&str>,
    starts: i64,
    ends: i64,
) -> Silence {
    Silence {
        id: id.into(),
        rule_id: rule.map(str::to_string),
        tenant_id: tenant.map(str::to_string),
        starts_at: text(starts),
        ends_at: text(ends),
        reason: Some(format!("maintenance {id}")),
        created_by: "ops".into(),
    }
}

/// A tenant sees its silences and those of every tenant, by end;
/// `active_at` keeps those running then (from start, until end).
pub(super) async fn silences_are_scoped_and_filtered_by_time(backend: Backend) {
    let store = backend.open_all().await.alerts;
    let every = silence("every", None, None, 0, 60);
    let acme_r1 = silence("acme-r1", Some("r1"), Some("acme"), 10, 20);
    let globex = Silence {
        reason: None,
        ..silence("globex", None, Some("globex"), 0, 30)
    };
    for s in [&every, &acme_r1, &globex] {
        store.add_silence(s).await.unwrap();
    }
    let dup = store.add_silence(&every).await.unwrap_err();
    assert_eq!(dup.to_string(), "silence `every` already exists");

    assert_eq!(
        store.silences(&Scope::All, None).await.unwrap(),
        [acme_r1.clone(), globex.clone(), every.clone()]
    );
    assert_eq!(
        store.silences(&acme(), None).await.unwrap(),
        [acme_r1.clone(), every.clone()]
    );
    let active = |minute: i64| {
        let store = store.clone();
        async move {
            let s = store.silences(&acme(), Some(at(minute))).await.unwrap();
            s.into_iter().map(|s| s.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(active(5).await, ["every"], "not begun");
    assert_eq!(active(10).await, ["acme-r1", "every"], "from its start");
    assert_eq!(active(20).await, ["every"], "until its end");
    assert_eq!(active(60).await, Vec::<String>::new());

    store.delete_silence("acme-r1", &acme()).await.unwrap();
    let again = store.delete_silence("acme-r1", &acme()).await.unwrap_err();
    assert_eq!(again.to_string(), "silence `acme-r1` does not exist");
    // A silence of every tenant is one each tenant sees, so may end.
    store
        .delete_silence("every", &Scope::Only(tenant("globex")))
        .await
        .unwrap();
    assert_eq!(store.silences(&Scope::All, None).await.unwrap(), [globex]);
}
