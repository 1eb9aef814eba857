//! `pytake loadtest --server A --node B` against two `pytake serve` nodes on
//! one PostgreSQL and one Redis: connections and publishers are spread over
//! both, every event is owed to its room's subscribers on both, and the
//! summary says what each node did.

use serde_json::Value;

use crate::support::services::{Postgres, Redis};
use crate::support::{pytake, Options, TestServer};

#[tokio::test]
async fn loadtest_over_two_nodes_of_one_cluster_loses_nothing() {
    let test = "loadtest_over_two_nodes_of_one_cluster_loses_nothing";
    let Some(store) = Postgres::database_or_skip(test).await else {
        return;
    };
    // A Redis of its own: pub/sub channels are global to a Redis server.
    let Some(redis) = Redis::start_or_skip(test).await else {
        return;
    };
    let bus = redis.url();
    let node = || TestServer::start_with(Options::args(&["--store", &store, "--bus", &bus]));
    let (a, b) = (node().await, node().await);
    let home = tempfile::tempdir().unwrap();
    let junit = home.path().join("junit.xml");
    let admin = a.admin();
    let run = pytake(
        &[
            "loadtest",
            "--output",
            "json",
            "--server",
            &a.url,
            "--node",
            &b.url,
            "--token",
            &admin,
            "--connections",
            "20",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--rooms",
            "2",
            "--tenants",
            "2",
            "--publishers",
            "4",
            "--threshold",
            "loss==0",
            "--threshold",
            "duplicates==0",
            "--junit",
            junit.to_str().unwrap(),
        ],
        home.path(),
    )
    .await;
    assert_eq!(
        run.code,
        0,
        "{run:?}\nnode A:\n{}\nnode B:\n{}",
        a.log(),
        b.log()
    );
    assert!(!run.stderr.contains("in-process bus"), "{}", run.stderr);
    let r: Value = serde_json::from_str(&run.stdout).expect("one JSON summary");
    assert_eq!(r["valid"], true);
    assert_eq!(r["config"]["nodes"], 2);
    assert_eq!(r["events"]["published"], 50);
    // Connections 0, 2, ... on A and 1, 3, ... on B, each node's spread
    // over the 4 groups (2 tenants x 2 rooms) in turn: 3, 3, 2 and 2
    // subscribers of groups 0 to 3 on each. The 50 events go 13, 13, 12,
    // 12 to the groups: 3 x 13 + 3 x 13 + 2 x 12 + 2 x 12 = 126 per node.
    let nodes = r["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 2);
    let mut published = 0;
    for (node, url) in nodes.iter().zip([&a.url, &b.url]) {
        assert_eq!(node["url"], format!("{url}/"));
        assert_eq!(node["connections"]["established"], 10, "{node}");
        assert_eq!(node["connections"]["failed"], 0, "{node}");
        // Two publishers post to each node.
        let posted = node["events"]["published"].as_u64().unwrap();
        assert!(posted > 0, "{node}");
        published += posted;
        assert_eq!(node["events"]["publish_failed"], 0, "{node}");
        let d = &node["deliveries"];
        assert_eq!(d["expected"], 126, "{node}");
        assert_eq!(d["received"], 126, "{node}");
        assert_eq!(d["lost"], 0, "{node}");
        assert_eq!(d["duplicated"], 0, "{node}");
    }
    assert_eq!(published, 50);
    assert_eq!(r["deliveries"]["expected"], 252);
    assert_eq!(r["deliveries"]["received"], 252);
    assert_eq!(r["latency_ms"]["samples"], 252);
    // One store: either node reads all 50 events, whichever took them.
    assert_eq!(b.history("").await.len(), 50);
    assert_eq!(
        r["thresholds"],
        serde_json::json!([
            {"threshold": "loss==0", "actual": 0.0, "ok": true},
            {"threshold": "duplicates==0", "actual": 0.0, "ok": true}
        ])
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    for property in [
        r#"<property name="config.nodes" value="2"/>"#.to_string(),
        format!(r#"<property name="nodes.1.url" value="{}/"/>"#, b.url),
        r#"<property name="nodes.1.deliveries.received" value="126"/>"#.to_string(),
        r#"<property name="nodes.1.deliveries.lost" value="0"/>"#.to_string(),
    ] {
        assert!(xml.contains(&property), "{property} in {xml}");
    }
}
