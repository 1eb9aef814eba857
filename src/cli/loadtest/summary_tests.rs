//! Exact-output tests of the loadtest summary.

use std::collections::BTreeMap;

use super::*;
use crate::client::loadtest::report::*;
use crate::client::loadtest::Verdict;

/// A run of 10 connections at 100/s for 10 s, interrupted after 3.2 s.
fn interrupted() -> Report {
    let latency = LatencyReport {
        samples: 3200,
        p50: 1.5,
        p90: 2.25,
        p99: 4.0,
        p99_9: 8.5,
        max: 12.0,
        mean: 1.75,
    };
    Report {
        schema: SCHEMA,
        valid: false,
        invalid_reason: Some("interrupted after 3.2s of 10s".into()),
        interrupted: true,
        config: RunConfig {
            server: "http://127.0.0.1:8080/".into(),
            model: "closed".into(),
            connections: 10,
            ramp_s: 0.0,
            rate: 100.0,
            duration_s: 10.0,
            rooms: 1,
            tenants: 1,
            payload_bytes: 64,
            publishers: 32,
            nodes: 1,
        },
        connections: ConnectionReport {
            established: 10,
            failed: 0,
            time_to_connect_all_s: 0.25,
            source_addresses: 1,
        },
        events: EventReport {
            published: 320,
            publish_failed: 0,
            accepted_per_s: 100.0,
            published_for_s: 3.2,
            ack_latency_ms: latency.clone(),
        },
        deliveries: DeliveryReport {
            expected: 3200,
            received: 3200,
            lost: 0,
            duplicated: 0,
            per_second: 1000.0,
        },
        latency_ms: latency,
        errors: BTreeMap::from([("closed_1001".to_string(), 2)]),
        server_memory: MemoryReport {
            rss_before_bytes: Some(1000),
            rss_after_bytes: Some(11240),
            per_connection_bytes: Some(1024.0),
        },
        generator: GeneratorReport {
            max_schedule_lag_ms: 0.5,
            backpressure_ms: 0.0,
        },
        thresholds: vec![
            Verdict {
                threshold: "loss==0".into(),
                actual: 0.0,
                ok: true,
            },
            Verdict {
                threshold: "p99<2ms".into(),
                actual: 4.0,
                ok: false,
            },
        ],
        nodes: vec![NodeReport {
            url: "http://127.0.0.1:8080/".into(),
            connections: NodeConnections {
                established: 10,
                failed: 0,
            },
            events: NodeEvents {
                published: 320,
                publish_failed: 0,
            },
            deliveries: DeliveryReport {
                expected: 3200,
                received: 3200,
                lost: 0,
                duplicated: 0,
                per_second: 1000.0,
            },
        }],
    }
}

/// The same run on two nodes: 6 connections on the first, 4 on the
/// second; the second lost 5 deliveries and saw one twice.
fn two_nodes() -> Report {
    let mut r = interrupted();
    r.config.nodes = 2;
    r.deliveries.received = 3195;
    r.deliveries.lost = 5;
    r.deliveries.duplicated = 1;
    let node = |url: &str, conns: u64, published: u64, expected: u64, lost: u64| NodeReport {
        url: url.into(),
        connections: NodeConnections {
            established: conns,
            failed: 0,
        },
        events: NodeEvents {
            published,
            publish_failed: 0,
        },
        deliveries: DeliveryReport {
            expected,
            received: expected - lost,
            lost,
            duplicated: lost.min(1),
            per_second: (expected - lost) as f64 / 3.2,
        },
    };
    r.nodes = vec![
        node("http://127.0.0.1:8080/", 6, 160, 1920, 0),
        node("http://127.0.0.1:8081/", 4, 160, 1280, 5),
    ];
    r
}

fn written(format: OutputFormat) -> String {
    written_of(&interrupted(), format)
}

fn written_of(report: &Report, format: OutputFormat) -> String {
    let mut out = Vec::new();
    write(report, format, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn the_table_marks_an_interrupted_run() {
    assert_eq!(
            written(OutputFormat::Table),
            "\
┌───────────────────┬───────────────────────────────────────────────────────────────────────────────┐
│                   ┆ result                                                                        │
╞═══════════════════╪═══════════════════════════════════════════════════════════════════════════════╡
│ run               ┆ INTERRUPTED after 3.2s of 10s                                                 │
│ load              ┆ 10 connections (closed), 100/s for 10s, 1 room(s) x 1 tenant(s), 64 B payload │
│ connections       ┆ 10 established, 0 failed, all in 0.25s (1 source address(es))                 │
│ events            ┆ 320 published, 0 failed, 100/s accepted                                       │
│ deliveries        ┆ 3200 of 3200 expected, 0 lost, 0 duplicated, 1000/s                           │
│ latency (ms)      ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                           │
│ publish ack (ms)  ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                           │
│ server memory     ┆ 1.0 KiB per connection                                                        │
│ generator         ┆ max schedule lag 0.5 ms, backpressure 0 ms                                    │
│ errors            ┆ closed_1001: 2                                                                │
│ threshold loss==0 ┆ ok (actual 0)                                                                 │
│ threshold p99<2ms ┆ FAILED (actual 4)                                                             │
└───────────────────┴───────────────────────────────────────────────────────────────────────────────┘
"
        );
}

#[test]
fn csv_is_one_header_and_one_row_with_a_column_per_threshold() {
    assert_eq!(
            written(OutputFormat::Csv),
            "valid,interrupted,config.server,config.model,config.connections,config.ramp_s,\
config.rate,config.duration_s,config.rooms,config.tenants,config.payload_bytes,config.publishers,\
connections.established,connections.failed,connections.time_to_connect_all_s,\
events.published,events.publish_failed,events.accepted_per_s,events.published_for_s,\
events.ack_latency_ms.p50,events.ack_latency_ms.p99,\
deliveries.expected,deliveries.received,deliveries.lost,deliveries.duplicated,deliveries.per_second,\
latency_ms.samples,latency_ms.p50,latency_ms.p90,latency_ms.p99,latency_ms.p99_9,latency_ms.max,latency_ms.mean,\
errors,server_memory.per_connection_bytes,generator.max_schedule_lag_ms,generator.backpressure_ms,\
config.nodes,nodes.0.url,nodes.0.connections.established,nodes.0.connections.failed,\
nodes.0.events.published,nodes.0.events.publish_failed,nodes.0.deliveries.expected,\
nodes.0.deliveries.received,nodes.0.deliveries.lost,nodes.0.deliveries.duplicated,\
nodes.0.deliveries.per_second,\
threshold loss==0,threshold p99<2ms
false,true,http://127.0.0.1:8080/,closed,10,0,100,10,1,1,64,32,10,0,0.25,320,0,100,3.2,1.5,4,\
3200,3200,0,0,1000,3200,1.5,2.25,4,8.5,12,1.75,2,1024,0.5,0,\
1,http://127.0.0.1:8080/,10,0,320,0,3200,3200,0,0,1000,ok,failed
"
        );
}

#[test]
fn several_nodes_get_a_row_each_in_the_table() {
    assert_eq!(
            written_of(&two_nodes(), OutputFormat::Table),
            "\
┌───────────────────┬────────────────────────────────────────────────────────────────────────────────────────────────────────────────┐
│                   ┆ result                                                                                                         │
╞═══════════════════╪════════════════════════════════════════════════════════════════════════════════════════════════════════════════╡
│ run               ┆ INTERRUPTED after 3.2s of 10s                                                                                  │
│ load              ┆ 10 connections (closed), 100/s for 10s, 1 room(s) x 1 tenant(s), 64 B payload, 2 nodes                         │
│ connections       ┆ 10 established, 0 failed, all in 0.25s (1 source address(es))                                                  │
│ events            ┆ 320 published, 0 failed, 100/s accepted                                                                        │
│ deliveries        ┆ 3195 of 3200 expected, 5 lost, 1 duplicated, 1000/s                                                            │
│ node 1            ┆ http://127.0.0.1:8080/: 6 connections (0 failed), 160 published, 1920 of 1920 deliveries, 0 lost, 0 duplicated │
│ node 2            ┆ http://127.0.0.1:8081/: 4 connections (0 failed), 160 published, 1275 of 1280 deliveries, 5 lost, 1 duplicated │
│ latency (ms)      ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                                                            │
│ publish ack (ms)  ┆ p50 1.50  p90 2.25  p99 4.00  p99.9 8.50  max 12.00                                                            │
│ server memory     ┆ 1.0 KiB per connection                                                                                         │
│ generator         ┆ max schedule lag 0.5 ms, backpressure 0 ms                                                                     │
│ errors            ┆ closed_1001: 2                                                                                                 │
│ threshold loss==0 ┆ ok (actual 0)                                                                                                  │
│ threshold p99<2ms ┆ FAILED (actual 4)                                                                                              │
└───────────────────┴────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
"
        );
}

#[test]
fn several_nodes_add_their_columns_before_the_thresholds() {
    let csv = written_of(&two_nodes(), OutputFormat::Csv);
    let (header, row) = csv.trim_end().split_once('\n').unwrap();
    let (header, row): (Vec<&str>, Vec<&str>) =
        (header.split(',').collect(), row.split(',').collect());
    let at = header.iter().position(|c| *c == "config.nodes").unwrap();
    assert_eq!(header[at - 1], "generator.backpressure_ms");
    assert_eq!(
        header[at..]
            .iter()
            .zip(&row[at..])
            .map(|(h, v)| format!("{h}={v}"))
            .collect::<Vec<_>>(),
        [
            "config.nodes=2",
            "nodes.0.url=http://127.0.0.1:8080/",
            "nodes.0.connections.established=6",
            "nodes.0.connections.failed=0",
            "nodes.0.events.published=160",
            "nodes.0.events.publish_failed=0",
            "nodes.0.deliveries.expected=1920",
            "nodes.0.deliveries.received=1920",
            "nodes.0.deliveries.lost=0",
            "nodes.0.deliveries.duplicated=0",
            "nodes.0.deliveries.per_second=600",
            "nodes.1.url=http://127.0.0.1:8081/",
            "nodes.1.connections.established=4",
            "nodes.1.connections.failed=0",
            "nodes.1.events.published=160",
            "nodes.1.events.publish_failed=0",
            "nodes.1.deliveries.expected=1280",
            "nodes.1.deliveries.received=1275",
            "nodes.1.deliveries.lost=5",
            "nodes.1.deliveries.duplicated=1",
            "nodes.1.deliveries.per_second=398.4375",
            "threshold loss==0=ok",
            "threshold p99<2ms=failed",
        ]
    );
}

#[test]
fn junit_has_the_nodes_as_properties_of_the_suite() {
    assert_eq!(
        super::super::junit::render(&two_nodes()),
        r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="pytake loadtest" tests="3" failures="2" time="10">
  <testsuite name="pytake loadtest" tests="3" failures="2" time="10">
    <properties>
      <property name="config.nodes" value="2"/>
      <property name="nodes.0.url" value="http://127.0.0.1:8080/"/>
      <property name="nodes.0.connections.established" value="6"/>
      <property name="nodes.0.connections.failed" value="0"/>
      <property name="nodes.0.events.published" value="160"/>
      <property name="nodes.0.events.publish_failed" value="0"/>
      <property name="nodes.0.deliveries.expected" value="1920"/>
      <property name="nodes.0.deliveries.received" value="1920"/>
      <property name="nodes.0.deliveries.lost" value="0"/>
      <property name="nodes.0.deliveries.duplicated" value="0"/>
      <property name="nodes.0.deliveries.per_second" value="600"/>
      <property name="nodes.1.url" value="http://127.0.0.1:8081/"/>
      <property name="nodes.1.connections.established" value="4"/>
      <property name="nodes.1.connections.failed" value="0"/>
      <property name="nodes.1.events.published" value="160"/>
      <property name="nodes.1.events.publish_failed" value="0"/>
      <property name="nodes.1.deliveries.expected" value="1280"/>
      <property name="nodes.1.deliveries.received" value="1275"/>
      <property name="nodes.1.deliveries.lost" value="5"/>
      <property name="nodes.1.deliveries.duplicated" value="1"/>
      <property name="nodes.1.deliveries.per_second" value="398.4375"/>
    </properties>
    <testcase classname="pytake.loadtest" name="run is valid"><failure message="interrupted after 3.2s of 10s"/></testcase>
    <testcase classname="pytake.loadtest" name="loss==0"/>
    <testcase classname="pytake.loadtest" name="p99&lt;2ms"><failure message="actual 4"/></testcase>
  </testsuite>
</testsuites>
"#
    );
}

#[test]
fn json_says_interrupted_beside_valid() {
    let json = written(OutputFormat::Json);
    assert!(
            json.starts_with(
                r#"{"schema":"pytake.loadtest/v1","valid":false,"invalid_reason":"interrupted after 3.2s of 10s","interrupted":true,"config":{"#
            ),
            "{json}"
        );
    assert!(json.contains(r#""published_for_s":3.2,"#), "{json}");
    assert_eq!(json.lines().count(), 1);
}

#[test]
fn json_has_the_node_count_and_each_node() {
    let json: serde_json::Value =
        serde_json::from_str(&written_of(&two_nodes(), OutputFormat::Json)).unwrap();
    assert_eq!(json["config"]["nodes"], 2);
    assert_eq!(
        json["nodes"][1],
        serde_json::json!({
            "url": "http://127.0.0.1:8081/",
            "connections": {"established": 4, "failed": 0},
            "events": {"published": 160, "publish_failed": 0},
            "deliveries": {"expected": 1280, "received": 1275, "lost": 5, "duplicated": 1, "per_second": 398.4375}
        })
    );
    // The totals stay where they were.
    assert_eq!(json["deliveries"]["lost"], 5);
}
