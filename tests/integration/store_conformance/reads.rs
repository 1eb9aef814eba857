//! Reading back: history filters and paging, each tenant's head, a
//! room's tenants, the id before a time, and what an aborted append leaves.

use super::*;

/// History filters (tenant, rooms, types, since, before, limit) and
/// paging, which reads every match once.
pub(super) async fn history_filters_and_pages(backend: Backend) {
    let store = backend.open().await;
    let mut events = Vec::new();
    for i in 0..30i64 {
        let tenant = ["acme", "globex"][(i % 2) as usize];
        let rooms: &[&str] = match i % 3 {
            0 => &["erp"],
            1 => &["alerts", "erp"],
            _ => &["ai"],
        };
        let mut ev = event(tenant, rooms, serde_json::json!({ "i": i }));
        if i % 5 == 0 {
            ev.event_type = "MessageReceived".into();
        }
        events.push(ev);
    }
    append_one(&*store, request(events.clone()), t0()).await;
    let matching = |f: &dyn Fn(&ValidEvent) -> bool| -> Vec<EventId> {
        (1..=30)
            .filter(|id| f(&events[(*id - 1) as usize]))
            .collect()
    };
    let query = |tenant: Option<&str>, rooms: Option<&[&str]>| EventQuery {
        tenant: tenant.map_or(Scope::All, |t| Scope::Only(self::tenant(t))),
        rooms: rooms.map_or(Scope::All, |r| {
            Scope::Only(r.iter().map(|r| Room::parse(r).unwrap()).collect())
        }),
        event_types: None,
        since: 0,
        before: None,
        limit: 4,
    };
    let cases: Vec<(EventQuery, Vec<EventId>)> = vec![
        (query(None, None), (1..=30).collect()),
        (
            query(Some("acme"), None),
            matching(&|e| e.tenant_id == "acme"),
        ),
        (
            query(None, Some(&["alerts"])),
            matching(&|e| e.rooms.contains(&"alerts".into())),
        ),
        (
            query(Some("globex"), Some(&["erp"])),
            matching(&|e| e.tenant_id == "globex" && e.rooms.contains(&"erp".into())),
        ),
        (
            // An event in two of the rooms asked for comes once.
            query(Some("acme"), Some(&["erp", "alerts", "ai"])),
            matching(&|e| e.tenant_id == "acme"),
        ),
        (
            EventQuery {
                event_types: Some(vec!["MessageReceived".into()]),
                ..query(None, None)
            },
            matching(&|e| e.event_type == "MessageReceived"),
        ),
        (
            EventQuery {
                event_types: Some(vec!["MessageReceived".into(), "Custom".into()]),
                ..query(None, Some(&["ai"]))
            },
            matching(&|e| e.rooms == ["ai"]),
        ),
        (
            EventQuery {
                since: 10,
                before: Some(20),
                ..query(None, None)
            },
            (11..20).collect(),
        ),
        (
            EventQuery {
                since: 10,
                before: Some(20),
                ..query(Some("acme"), Some(&["erp"]))
            },
            matching(&|e| e.tenant_id == "acme" && e.rooms.contains(&"erp".into()))
                .into_iter()
                .filter(|id| (11..20).contains(id))
                .collect(),
        ),
        (query(Some("nobody"), None), vec![]),
    ];
    for (query, want) in cases {
        let first = store.events(&query).await.unwrap();
        let head: Vec<EventId> = want.iter().copied().take(4).collect();
        assert_eq!(id_list(&first), head, "first page of {query:?}");
        assert_eq!(
            id_list(&read_all(&*store, query.clone()).await),
            want,
            "{query:?}"
        );
    }
    let one = store
        .events(&EventQuery::after(Scope::All, 29, 100))
        .await
        .unwrap();
    assert_eq!(id_list(&one), vec![30]);
    assert_eq!(one[0].data, events[29].data);
}

/// Each tenant's newest id, 0 for a tenant without events.
pub(super) async fn tenant_heads_are_each_tenants_newest(backend: Backend) {
    let store = backend.open().await;
    let names = [tenant("acme"), tenant("globex"), tenant("nobody")];
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![0, 0, 0]);
    append_one(
        &*store,
        request(vec![plain("acme", 1), plain("globex", 2), plain("acme", 3)]),
        t0(),
    )
    .await;
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![3, 2, 0]);
    append_one(&*store, request(vec![plain("globex", 4)]), t0()).await;
    assert_eq!(store.tenant_heads(&names).await.unwrap(), vec![3, 4, 0]);
    assert_eq!(
        store.tenant_heads(&[]).await.unwrap(),
        Vec::<EventId>::new()
    );
    let reversed = [tenant("globex"), tenant("acme")];
    assert_eq!(store.tenant_heads(&reversed).await.unwrap(), vec![4, 3]);
}

/// Who a room name belongs to: each tenant with events there once, up to
/// the limit, whatever the order of their events.
pub(super) async fn room_tenants_lists_each_tenant_of_a_room_once(backend: Backend) {
    let store = backend.open().await;
    let room = |name: &str| Room::parse(name).unwrap();
    let sorted = |mut v: Vec<TenantId>| {
        v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        v.iter().map(|t| t.to_string()).collect::<Vec<_>>()
    };
    let empty = store
        .room_tenants(&room("conversation:c1"), 2)
        .await
        .unwrap();
    assert!(empty.is_empty());
    let mut events: Vec<ValidEvent> = (0..70)
        .map(|n| event("acme", &["conversation:c1"], serde_json::json!({ "n": n })))
        .collect();
    // A second tenant only after many events of the first.
    events.push(event(
        "globex",
        &["conversation:c1", "erp"],
        serde_json::json!({}),
    ));
    events.push(event(
        "initech",
        &["conversation:c2"],
        serde_json::json!({}),
    ));
    append_one(&*store, request(events), t0()).await;
    assert_eq!(
        sorted(
            store
                .room_tenants(&room("conversation:c1"), 2)
                .await
                .unwrap()
        ),
        ["acme", "globex"]
    );
    assert_eq!(
        store
            .room_tenants(&room("conversation:c1"), 1)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        sorted(
            store
                .room_tenants(&room("conversation:c2"), 2)
                .await
                .unwrap()
        ),
        ["initech"]
    );
}

/// The id just before the first event received at or after a time.
pub(super) async fn id_before_a_time_starts_a_replay_there(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.id_before(t0()).await.unwrap(), 0);
    for (minute, n) in [(0, 2), (10, 3), (20, 1)] {
        let events = (0..n).map(|i| plain("acme", i)).collect();
        append_one(&*store, request(events), after(t0(), ms(minute * 60_000))).await;
    }
    let at = |minute: i64| store.id_before(after(t0(), ms(minute * 60_000)));
    assert_eq!(at(0).await.unwrap(), 0);
    assert_eq!(at(5).await.unwrap(), 2);
    assert_eq!(at(10).await.unwrap(), 2);
    assert_eq!(at(11).await.unwrap(), 5);
    assert_eq!(at(20).await.unwrap(), 5);
    assert_eq!(at(30).await.unwrap(), 6, "after every event: the newest");
    let earlier = t0() - chrono::Duration::days(1);
    assert_eq!(store.id_before(earlier).await.unwrap(), 0);
}

/// An append stopped half-way (its caller dropped) stores all of itself
/// or nothing, at whatever point it is dropped, and leaves the store
/// usable; a closed store refuses calls, and another store on the
/// database goes on from what was committed.
pub(super) async fn an_aborted_or_failed_append_leaves_nothing_behind(backend: Backend) {
    const GROUP: usize = 1000;
    let store = backend.open().await;
    let mut singles =
        vec![ids(&append_one(&*store, request(vec![plain("acme", 1)]), t0()).await)[0]];
    for round in 0..5 {
        let batch: Vec<AppendRequest> = (0..GROUP / 50)
            .map(|_| {
                let events = (0..50)
                    .map(|_| event("acme", &["erp"], serde_json::json!({ "round": round })))
                    .collect();
                request(events)
            })
            .collect();
        let task = tokio::spawn({
            let store = store.clone();
            async move { store.append(batch, t0()).await }
        });
        // Dropped at different points of its work.
        for _ in 0..round * 3 {
            tokio::task::yield_now().await;
        }
        task.abort();
        let _ = task.await;
        // The dropped append may still commit, before or after this one.
        let next = append_one(&*store, request(vec![plain("acme", 2)]), t0()).await;
        let id = next.events[0].event.id;
        assert_eq!(next.events[0].prev, id - 1, "one tenant, dense ids");
        singles.push(id);
    }
    // Closing waits for appends in flight.
    store.close().await;
    assert!(store
        .append(vec![request(vec![plain("acme", 3)])], t0())
        .await
        .is_err());
    assert!(store.last_event_id().await.is_err());

    let other = backend.open().await;
    let all = history(&*other, 1000).await;
    let head = all.len() as EventId;
    assert_eq!(id_list(&all), (1..=head).collect::<Vec<_>>());
    for round in 0..5 {
        let stored = all.iter().filter(|e| e.data["round"] == round).count();
        assert!(
            stored == 0 || stored == GROUP,
            "round {round}: {stored} of a group stored"
        );
    }
    for id in &singles {
        assert_eq!(
            all[(*id - 1) as usize].data["n"],
            if *id == 1 { 1 } else { 2 }
        );
    }
    let next = append_one(&*other, request(vec![plain("acme", 4)]), t0()).await;
    assert_eq!(ids(&next), vec![head + 1]);
    other.ping().await.unwrap();
}
