//! Idempotency keys (per request and per event), their time-to-live, and
//! appends racing on two nodes: ids in one order, a key stored once.

use super::*;

/// A request key: the same request again gets the same events (nothing
/// new); another request under it is refused whole; keys are per scope.
pub(super) async fn request_keys_return_the_first_events_or_refuse(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k-1",
            "f-1",
            vec![plain("acme", 1), plain("acme", 2)],
        ),
        t0(),
    )
    .await;
    assert_eq!(ids(&first), vec![1, 2]);
    assert_eq!(fresh(&first), vec![true, true]);

    let again = append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k-1",
            "f-1",
            vec![plain("acme", 1), plain("acme", 2)],
        ),
        after(t0(), ms(1000)),
    )
    .await;
    assert_eq!(ids(&again), vec![1, 2]);
    assert_eq!(fresh(&again), vec![false, false]);
    assert!(again.duplicate());
    assert!(again.events.iter().all(|a| a.prev == 0));
    assert_eq!(again.events[0].event, first.events[0].event);

    let other = append(
        &*store,
        vec![keyed_request(
            Some("acme"),
            "k-1",
            "f-2",
            vec![plain("acme", 9)],
        )],
        t0(),
    )
    .await;
    let reused = other[0].clone().expect_err("another request under k-1");
    assert_eq!(reused.field, "Idempotency-Key");
    assert_eq!(reused.key, "k-1");
    assert_eq!(reused.what, "request");
    assert_eq!(reused.hours, IDEMPOTENCY_TTL.as_secs() / 3600);
    assert_eq!(store.last_event_id().await.unwrap(), 2, "nothing stored");

    // The same key in another scope is another key.
    let elsewhere = append_one(
        &*store,
        keyed_request(Some("globex"), "k-1", "f-2", vec![plain("globex", 3)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&elsewhere), vec![3]);
    let admin = append_one(
        &*store,
        keyed_request(None, "k-1", "f-3", vec![plain("acme", 4)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&admin), vec![4]);

    // Inside one group: a repeat gets the first's events, another request
    // is refused, and the refused one takes no id.
    let group = append(
        &*store,
        vec![
            keyed_request(Some("acme"), "k-2", "f-1", vec![plain("acme", 5)]),
            keyed_request(Some("acme"), "k-2", "f-9", vec![plain("acme", 6)]),
            keyed_request(Some("acme"), "k-2", "f-1", vec![plain("acme", 5)]),
            request(vec![plain("acme", 7)]),
        ],
        t0(),
    )
    .await;
    assert_eq!(ids(group[0].as_ref().unwrap()), vec![5]);
    assert_eq!(group[1].as_ref().unwrap_err().key, "k-2");
    assert_eq!(ids(group[2].as_ref().unwrap()), vec![5]);
    assert_eq!(fresh(group[2].as_ref().unwrap()), vec![false]);
    assert_eq!(ids(group[3].as_ref().unwrap()), vec![6]);
    assert_eq!(
        id_list(&history(&*store, 100).await),
        vec![1, 2, 3, 4, 5, 6]
    );
    // A key of control characters and non-ASCII is a key like any other.
    let odd = "\u{0}\u{1}ключ";
    let first = append_one(
        &*store,
        keyed_request(Some("acme"), odd, "f-1", vec![plain("acme", 8)]),
        t0(),
    )
    .await;
    let again = append_one(
        &*store,
        keyed_request(Some("acme"), odd, "f-1", vec![plain("acme", 8)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&first), ids(&again));
    assert!(again.duplicate());
}

/// An event key, per tenant: the same event again is the stored one; another
/// event under it refuses its whole request; two events of one request
/// under one key are refused.
pub(super) async fn event_keys_are_per_tenant(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(&*store, request(vec![keyed("acme", "e-1", "f-1")]), t0()).await;
    assert_eq!(ids(&first), vec![1]);

    let mixed = append_one(
        &*store,
        request(vec![keyed("acme", "e-1", "f-1"), plain("acme", 2)]),
        t0(),
    )
    .await;
    assert_eq!(ids(&mixed), vec![1, 2]);
    assert_eq!(fresh(&mixed), vec![false, true]);
    assert_eq!(mixed.events[0].prev, 0);
    assert_eq!(mixed.events[1].prev, 1);

    let other = append(
        &*store,
        vec![request(vec![plain("acme", 3), keyed("acme", "e-1", "f-2")])],
        t0(),
    )
    .await;
    let reused = other[0].clone().expect_err("another event under e-1");
    assert_eq!(reused.field, "[1].idempotency_key");
    assert_eq!(reused.what, "event");
    assert_eq!(reused.hours, EVENT_KEY_TTL.as_secs() / 3600);
    let single = append(
        &*store,
        vec![request(vec![keyed("acme", "e-1", "f-2")])],
        t0(),
    )
    .await;
    assert_eq!(single[0].as_ref().unwrap_err().field, "idempotency_key");
    assert_eq!(store.last_event_id().await.unwrap(), 2, "nothing stored");

    // Another tenant's key of the same name is another key.
    let globex = append_one(&*store, request(vec![keyed("globex", "e-1", "f-2")]), t0()).await;
    assert_eq!(ids(&globex), vec![3]);
    assert_eq!(fresh(&globex), vec![true]);

    let twice = append(
        &*store,
        vec![request(vec![
            keyed("acme", "e-2", "f-1"),
            keyed("acme", "e-2", "f-1"),
        ])],
        t0(),
    )
    .await;
    assert_eq!(twice[0].as_ref().unwrap_err().field, "[1].idempotency_key");
    // A key of control characters and non-ASCII is a key like any other.
    let odd = "\u{0}\u{1}ключ";
    let first = append_one(&*store, request(vec![keyed("acme", odd, "f-1")]), t0()).await;
    let again = append_one(&*store, request(vec![keyed("acme", odd, "f-1")]), t0()).await;
    assert_eq!((ids(&first), ids(&again)), (vec![4], vec![4]));
    assert!(again.duplicate());

    // Inside one group: the second use of a new key is the first's event.
    let group = append(
        &*store,
        vec![
            request(vec![keyed("acme", "e-3", "f-1")]),
            request(vec![keyed("acme", "e-3", "f-1"), plain("acme", 5)]),
            request(vec![keyed("acme", "e-3", "f-2")]),
        ],
        t0(),
    )
    .await;
    assert_eq!(ids(group[0].as_ref().unwrap()), vec![5]);
    assert_eq!(ids(group[1].as_ref().unwrap()), vec![5, 6]);
    assert_eq!(fresh(group[1].as_ref().unwrap()), vec![false, true]);
    assert!(group[2].is_err());
    assert_eq!(
        id_list(&history(&*store, 100).await),
        vec![1, 2, 3, 4, 5, 6]
    );
}

/// Keys are honoured for their time-to-live from the append's `now`, and
/// free from then on: measured by the `now` each call is given.
pub(super) async fn keys_are_free_after_their_ttl(backend: Backend) {
    let store = backend.open().await;
    let first = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-1", vec![plain("acme", 1)]),
        t0(),
    )
    .await;
    let event = append_one(&*store, request(vec![keyed("acme", "e", "f-1")]), t0()).await;
    assert_eq!((ids(&first), ids(&event)), (vec![1], vec![2]));

    // A millisecond before the end: honoured, and still refused for
    // something else.
    let almost = after(t0(), IDEMPOTENCY_TTL - ms(1));
    let again = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-1", vec![plain("acme", 1)]),
        almost,
    )
    .await;
    assert_eq!((ids(&again), again.duplicate()), (vec![1], true));
    let refused = append(
        &*store,
        vec![keyed_request(
            Some("acme"),
            "k",
            "f-2",
            vec![plain("acme", 1)],
        )],
        almost,
    )
    .await;
    assert!(refused[0].is_err());

    // At the end of its TTL a request key is new again, for anything.
    let expired = after(t0(), IDEMPOTENCY_TTL);
    let renewed = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-2", vec![plain("acme", 9)]),
        expired,
    )
    .await;
    assert_eq!((ids(&renewed), renewed.duplicate()), (vec![3], false));
    // ... and honoured from its new first use.
    let repeat = append_one(
        &*store,
        keyed_request(Some("acme"), "k", "f-2", vec![plain("acme", 9)]),
        expired,
    )
    .await;
    assert_eq!((ids(&repeat), repeat.duplicate()), (vec![3], true));

    // The event key outlives the request key: honoured a day on...
    let event_again = append_one(&*store, request(vec![keyed("acme", "e", "f-1")]), expired).await;
    assert_eq!(
        (ids(&event_again), event_again.duplicate()),
        (vec![2], true)
    );
    let almost = after(t0(), EVENT_KEY_TTL - ms(1));
    let refused = append(
        &*store,
        vec![request(vec![keyed("acme", "e", "f-2")])],
        almost,
    )
    .await;
    assert!(refused[0].is_err());
    // ... and free at the end of its own.
    let expired = after(t0(), EVENT_KEY_TTL);
    let renewed = append_one(&*store, request(vec![keyed("acme", "e", "f-2")]), expired).await;
    assert_eq!((ids(&renewed), renewed.duplicate()), (vec![4], false));
    let repeat = append_one(&*store, request(vec![keyed("acme", "e", "f-2")]), expired).await;
    assert_eq!((ids(&repeat), repeat.duplicate()), (vec![4], true));
    assert_eq!(id_list(&history(&*store, 100).await), vec![1, 2, 3, 4]);
}

/// The sweep forgets keys past their time-to-live at the `now` it is
/// given, and counts them.
pub(super) async fn expiring_keys_counts_what_it_forgot(backend: Backend) {
    let store = backend.open().await;
    append_one(
        &*store,
        keyed_request(
            Some("acme"),
            "k",
            "f-1",
            vec![keyed("acme", "e-1", "f-1"), keyed("acme", "e-2", "f-2")],
        ),
        t0(),
    )
    .await;
    append_one(&*store, request(vec![plain("acme", 3)]), t0()).await;
    let sweep = |d| store.expire_idempotency_keys(after(t0(), d));
    assert_eq!(sweep(Duration::from_secs(3600)).await.unwrap(), 0);
    assert_eq!(
        sweep(IDEMPOTENCY_TTL + ms(1)).await.unwrap(),
        1,
        "the request key"
    );
    assert_eq!(sweep(IDEMPOTENCY_TTL + ms(2)).await.unwrap(), 0);
    assert_eq!(
        sweep(EVENT_KEY_TTL + ms(1)).await.unwrap(),
        2,
        "the event keys"
    );
    assert_eq!(sweep(EVENT_KEY_TTL + ms(2)).await.unwrap(), 0);
    // The events stay.
    assert_eq!(id_list(&history(&*store, 100).await), vec![1, 2, 3]);
}

/// Appends from several tasks on each of two stores on one database (two
/// nodes): every id from 1 to the total names one event, each outcome's
/// ids increase, every tenant's `prev` chain follows its history, and an
/// id one node handed out is readable on the other at once.
pub(super) async fn concurrent_appends_on_two_nodes_keep_one_order(backend: Backend) {
    const TASKS_PER_NODE: usize = 4;
    const GROUPS_PER_TASK: usize = 12;
    let nodes = backend.two_nodes().await;
    let tenants = ["acme", "globex", "initech"];
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for task in 0..TASKS_PER_NODE {
            let (node, other) = (node.clone(), nodes[1 - n].clone());
            tasks.push(tokio::spawn(async move {
                let mut appended = Vec::new();
                let mut last_seen = 0;
                for group in 0..GROUPS_PER_TASK {
                    let size = 1 + (task + group) % 3;
                    let batch: Vec<AppendRequest> = (0..size)
                        .map(|r| {
                            let events = (0..1 + (r + group) % 4)
                                .map(|e| plain(tenants[(task + r + e) % 3], group as i64))
                                .collect();
                            request(events)
                        })
                        .collect();
                    let outcomes = node.append(batch, Utc::now()).await.expect("append");
                    let outcomes: Vec<AppendOutcome> =
                        outcomes.into_iter().map(Result::unwrap).collect();
                    let group_ids: Vec<EventId> = outcomes.iter().flat_map(ids).collect();
                    assert!(
                        group_ids.windows(2).all(|w| w[0] < w[1]),
                        "ids increase in a group: {group_ids:?}"
                    );
                    assert!(group_ids[0] > last_seen, "a later append has greater ids");
                    last_seen = *group_ids.last().unwrap();
                    // Committed before the answer: the other node reads it.
                    assert!(other.last_event_id().await.unwrap() >= last_seen);
                    let page = other
                        .events(&EventQuery::after(Scope::All, last_seen - 1, 1))
                        .await
                        .unwrap();
                    assert_eq!(id_list(&page), vec![last_seen]);
                    appended.extend(outcomes.into_iter().flat_map(|o| o.events));
                }
                appended
            }));
        }
    }
    let mut appended = Vec::new();
    for task in tasks {
        appended.extend(task.await.expect("task"));
    }
    let total = appended.len() as EventId;
    let stored = history(&*nodes[0], 97).await;
    assert_eq!(id_list(&stored), (1..=total).collect::<Vec<_>>());
    let mut prev_of: HashMap<EventId, EventId> = HashMap::new();
    for a in &appended {
        assert!(a.new);
        assert_eq!(*a.event, stored[(a.event.id - 1) as usize]);
        prev_of.insert(a.event.id, a.prev);
    }
    let mut heads: HashMap<&str, EventId> = HashMap::new();
    for e in &stored {
        let head = heads.insert(&e.tenant_id, e.id).unwrap_or(0);
        assert_eq!(prev_of[&e.id], head, "prev of {} ({})", e.id, e.tenant_id);
    }
    let names: Vec<TenantId> = tenants.iter().map(|t| tenant(t)).collect();
    for node in &nodes {
        let got = node.tenant_heads(&names).await.unwrap();
        let want: Vec<EventId> = tenants.iter().map(|t| heads[t]).collect();
        assert_eq!(got, want);
        assert_eq!(node.last_event_id().await.unwrap(), total);
    }
}

/// Two nodes appending the same keys at once store each key once.
pub(super) async fn one_key_appended_on_two_nodes_at_once_is_stored_once(backend: Backend) {
    let nodes = backend.two_nodes().await;
    let mut tasks = Vec::new();
    for node in nodes.iter().chain(nodes.iter()) {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for k in 0..10 {
                let key = format!("k-{k}");
                let req = keyed_request(
                    Some("acme"),
                    &key,
                    "f",
                    vec![plain("acme", k), keyed("acme", &format!("e-{k}"), "f")],
                );
                let outcome = node.append(vec![req], Utc::now()).await.expect("append");
                got.push(ids(outcome[0].as_ref().expect("accepted")));
            }
            got
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for answer in &answers[1..] {
        assert_eq!(
            *answer, answers[0],
            "every node answers each key with the same ids"
        );
    }
    assert_eq!(nodes[0].last_event_id().await.unwrap(), 20);
    assert_eq!(history(&*nodes[1], 100).await.len(), 20);
}
