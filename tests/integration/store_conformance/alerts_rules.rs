//! Conformance cases of the alerting store's rules: scoping, seeding and
//! what deleting one leaves, on every backend.

use pytake::protocol::alerts::{default_rules, AlertRule, AlertState, Channel};
use pytake::protocol::Scope;
use pytake::server::storage::alerts::AlertWrite;
use pytake::server::storage::StoreError;

use super::alerts::{alert, at, commit, fired, incident, leased, rule, state};
use super::{t0, tenant, Backend};

fn rule_ids(rules: &[AlertRule]) -> Vec<&str> {
    rules.iter().map(|r| r.id.as_str()).collect()
}

/// Rules are keyed by id; a tenant sees its own and those for every
/// tenant; `create` refuses an id that exists.
pub(super) async fn alert_rules_are_scoped_and_replaced(backend: Backend) {
    let store = backend.open_all().await.alerts;
    let (every, acme, globex) = (
        rule("every", None, 5.0),
        rule("acme-only", Some("acme"), 10.0),
        rule("globex-only", Some("globex"), 0.1),
    );
    for r in [&every, &acme, &globex] {
        store.put_rule(r, true, t0()).await.unwrap();
    }
    assert_eq!(
        store.rules(&Scope::All).await.unwrap(),
        [acme.clone(), every.clone(), globex.clone()]
    );
    assert_eq!(
        store.rules(&Scope::Only(tenant("acme"))).await.unwrap(),
        [acme.clone(), every.clone()]
    );
    assert_eq!(
        store.rules(&Scope::Only(tenant("initech"))).await.unwrap(),
        vec![every.clone()]
    );
    assert_eq!(store.rule("globex-only").await.unwrap(), globex);

    let again = store.put_rule(&every, true, at(1)).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)), "{again:?}");
    assert_eq!(again.to_string(), "alert rule `every` already exists");

    let changed = AlertRule {
        threshold: 7.5,
        tenant_id: Some("acme".into()),
        channels: vec![Channel::Email],
        ..every.clone()
    };
    store.put_rule(&changed, false, at(2)).await.unwrap();
    assert_eq!(store.rule("every").await.unwrap(), changed);
    assert_eq!(
        store.rules(&Scope::Only(tenant("initech"))).await.unwrap(),
        [],
        "now acme's own"
    );
    let missing = store.rule("nope").await.unwrap_err();
    assert_eq!(missing.to_string(), "alert rule `nope` does not exist");
    let missing = store.delete_rule("nope").await.unwrap_err();
    assert!(matches!(
        missing,
        StoreError::NotFound { what: "alert rule", ref id } if id == "nope"
    ));
    store.delete_rule("every").await.unwrap();
    assert_eq!(
        rule_ids(&store.rules(&Scope::All).await.unwrap()),
        ["acme-only", "globex-only"]
    );
}

/// Seeding inserts only the ids not stored: a rule changed over the API
/// keeps its change across restarts.
pub(super) async fn seeding_keeps_a_rule_changed_over_the_api(backend: Backend) {
    let store = backend.open_all().await.alerts;
    let defaults = default_rules();
    assert_eq!(store.seed_rules(&defaults, t0()).await.unwrap(), 2);
    assert_eq!(store.rules(&Scope::All).await.unwrap(), {
        let mut sorted = defaults.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        sorted
    });
    let mut changed = defaults[0].clone();
    changed.threshold = 12.0;
    changed.enabled = false;
    store.put_rule(&changed, false, at(1)).await.unwrap();
    store.delete_rule(&defaults[1].id).await.unwrap();

    let extra = rule("queue_backlog", None, 1000.0);
    let seeds = [defaults.clone(), vec![extra.clone()]].concat();
    assert_eq!(
        store.seed_rules(&seeds, at(2)).await.unwrap(),
        2,
        "the deleted one and the new one"
    );
    assert_eq!(store.rule(&defaults[0].id).await.unwrap(), changed);
    assert_eq!(store.rule(&defaults[1].id).await.unwrap(), defaults[1]);
    assert_eq!(store.rule("queue_backlog").await.unwrap(), extra);
    assert_eq!(store.seed_rules(&seeds, at(3)).await.unwrap(), 0);
    assert_eq!(store.seed_rules(&[], at(3)).await.unwrap(), 0);
}

/// Deleting a rule deletes its states and pending alerts; its fired
/// alerts stay in history, and other rules keep theirs.
pub(super) async fn deleting_a_rule_keeps_its_fired_alerts_only(backend: Backend) {
    let stores = backend.open_all().await;
    for id in ["r1", "r2"] {
        stores
            .alerts
            .put_rule(&rule(id, None, 1.0), true, t0())
            .await
            .unwrap();
    }
    let token = leased(&stores, "node-a", at(1)).await;
    let write = AlertWrite {
        states: vec![
            state("r1", "acme", "a1", AlertState::Pending),
            state("r1", "globex", "a2", AlertState::Firing),
            state("r2", "acme", "a3", AlertState::Pending),
        ],
        alerts: vec![
            alert("a1", "r1", "acme", 0),
            fired(alert("a2", "r1", "globex", 0), 1, "i1"),
            alert("a3", "r2", "acme", 0),
        ],
        incidents: vec![incident("i1", "globex", 1, &["a2"])],
        ..AlertWrite::default()
    };
    assert!(commit(&stores, token, write.clone(), at(1)).await);
    stores.alerts.delete_rule("r1").await.unwrap();

    assert_eq!(
        stores.alerts.rule_states().await.unwrap(),
        [write.states[2].clone()]
    );
    let a1 = stores.alerts.alert("a1", &Scope::All).await.unwrap_err();
    assert_eq!(a1.to_string(), "alert `a1` does not exist");
    assert_eq!(
        stores.alerts.alert("a2", &Scope::All).await.unwrap(),
        write.alerts[1]
    );
    assert_eq!(
        stores.alerts.alert("a3", &Scope::All).await.unwrap(),
        write.alerts[2]
    );
    assert!(matches!(
        stores.alerts.rule("r1").await.unwrap_err(),
        StoreError::NotFound {
            what: "alert rule",
            ..
        }
    ));
}
