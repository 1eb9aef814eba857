//! The run's summary on stdout: a table for people, one JSON object for
//! programs (the `pytake.loadtest/v1` schema), or CSV for spreadsheets.

use std::io::Write;
use std::time::Duration;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, Table};

use crate::cli::output::OutputFormat;
use crate::client::loadtest::report::{LatencyReport, Report};
use crate::config::duration;

/// Writes the summary in `format`. A write error is returned as is, a
/// broken pipe included (`serde_json::Error` for JSON): the caller decides
/// that a reader who left is not a failure.
pub fn write(report: &Report, format: OutputFormat, out: &mut impl Write) -> anyhow::Result<()> {
    match format {
        OutputFormat::Json => {
            serde_json::to_writer(&mut *out, report)?;
            writeln!(out)?;
        }
        OutputFormat::Csv => out.write_all(&csv(report))?,
        OutputFormat::Table => writeln!(out, "{}", table(report))?,
    }
    out.flush()?;
    Ok(())
}

/// One header row and one data row, so runs append to a spreadsheet
/// (`tail -n +2 >> runs.csv`). Columns are the JSON summary's paths, then
/// `config.nodes` and each node's columns (`nodes.0.url`, ...: after the
/// others, so that those keep their place), then one `threshold EXPR`
/// column per threshold (`ok` or `failed`); `errors` is the count of every
/// kind. Empty cells are values the run did not have.
pub fn csv(r: &Report) -> Vec<u8> {
    let lat = |prefix: &str, l: &LatencyReport| {
        [
            (format!("{prefix}.p50"), l.p50.to_string()),
            (format!("{prefix}.p90"), l.p90.to_string()),
            (format!("{prefix}.p99"), l.p99.to_string()),
            (format!("{prefix}.p99_9"), l.p99_9.to_string()),
            (format!("{prefix}.max"), l.max.to_string()),
            (format!("{prefix}.mean"), l.mean.to_string()),
        ]
    };
    let c = &r.config;
    let mut cols: Vec<(String, String)> = vec![
        ("valid".into(), r.valid.to_string()),
        ("interrupted".into(), r.interrupted.to_string()),
        ("config.server".into(), c.server.clone()),
        ("config.model".into(), c.model.clone()),
        ("config.connections".into(), c.connections.to_string()),
        ("config.ramp_s".into(), c.ramp_s.to_string()),
        ("config.rate".into(), c.rate.to_string()),
        ("config.duration_s".into(), c.duration_s.to_string()),
        ("config.rooms".into(), c.rooms.to_string()),
        ("config.tenants".into(), c.tenants.to_string()),
        ("config.payload_bytes".into(), c.payload_bytes.to_string()),
        ("config.publishers".into(), c.publishers.to_string()),
        (
            "connections.established".into(),
            r.connections.established.to_string(),
        ),
        (
            "connections.failed".into(),
            r.connections.failed.to_string(),
        ),
        (
            "connections.time_to_connect_all_s".into(),
            r.connections.time_to_connect_all_s.to_string(),
        ),
        ("events.published".into(), r.events.published.to_string()),
        (
            "events.publish_failed".into(),
            r.events.publish_failed.to_string(),
        ),
        (
            "events.accepted_per_s".into(),
            r.events.accepted_per_s.to_string(),
        ),
        (
            "events.published_for_s".into(),
            r.events.published_for_s.to_string(),
        ),
    ];
    let ack = lat("events.ack_latency_ms", &r.events.ack_latency_ms);
    cols.extend([ack[0].clone(), ack[2].clone()]);
    let d = &r.deliveries;
    cols.extend([
        ("deliveries.expected".into(), d.expected.to_string()),
        ("deliveries.received".into(), d.received.to_string()),
        ("deliveries.lost".into(), d.lost.to_string()),
        ("deliveries.duplicated".into(), d.duplicated.to_string()),
        ("deliveries.per_second".into(), d.per_second.to_string()),
        (
            "latency_ms.samples".into(),
            r.latency_ms.samples.to_string(),
        ),
    ]);
    cols.extend(lat("latency_ms", &r.latency_ms));
    cols.extend([
        ("errors".into(), r.errors.values().sum::<u64>().to_string()),
        (
            "server_memory.per_connection_bytes".into(),
            r.server_memory
                .per_connection_bytes
                .map(|b| b.to_string())
                .unwrap_or_default(),
        ),
        (
            "generator.max_schedule_lag_ms".into(),
            r.generator.max_schedule_lag_ms.to_string(),
        ),
        (
            "generator.backpressure_ms".into(),
            r.generator.backpressure_ms.to_string(),
        ),
    ]);
    cols.extend(node_fields(r));
    for v in &r.thresholds {
        let verdict = if v.ok { "ok" } else { "failed" };
        cols.push((format!("threshold {}", v.threshold), verdict.into()));
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(cols.iter().map(|(k, _)| k))
        .and_then(|()| w.write_record(cols.iter().map(|(_, v)| v)));
    written.expect("CSV into memory cannot fail");
    w.into_inner().expect("CSV into memory cannot fail")
}

/// The node count and each node's figures, by their JSON paths
/// (`config.nodes`, `nodes.0.url`, ...): the CSV's last columns before the
/// thresholds, and the JUnit suite's properties.
pub fn node_fields(r: &Report) -> Vec<(String, String)> {
    let mut fields = vec![("config.nodes".to_string(), r.config.nodes.to_string())];
    for (i, n) in r.nodes.iter().enumerate() {
        let d = &n.deliveries;
        fields.extend(
            [
                ("url", n.url.clone()),
                (
                    "connections.established",
                    n.connections.established.to_string(),
                ),
                ("connections.failed", n.connections.failed.to_string()),
                ("events.published", n.events.published.to_string()),
                ("events.publish_failed", n.events.publish_failed.to_string()),
                ("deliveries.expected", d.expected.to_string()),
                ("deliveries.received", d.received.to_string()),
                ("deliveries.lost", d.lost.to_string()),
                ("deliveries.duplicated", d.duplicated.to_string()),
                ("deliveries.per_second", d.per_second.to_string()),
            ]
            .map(|(k, v)| (format!("nodes.{i}.{k}"), v)),
        );
    }
    fields
}

/// A number without noise: integers as integers, others with 2 decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

fn table(r: &Report) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(vec!["", "result"]);
    let mut row = |k: &str, v: String| {
        t.add_row(vec![Cell::new(k), Cell::new(v)]);
    };
    let run = if r.interrupted {
        format!(
            "INTERRUPTED after {:.1}s of {}",
            r.events.published_for_s,
            duration::format(Duration::from_secs_f64(r.config.duration_s))
        )
    } else if r.valid {
        "valid".into()
    } else {
        format!("INVALID: {}", r.invalid_reason.clone().unwrap_or_default())
    };
    row("run", run);
    let mut load = format!(
        "{} connections ({}), {}/s for {}, {} room(s) x {} tenant(s), {} B payload",
        r.config.connections,
        r.config.model,
        number(r.config.rate),
        duration::format(Duration::from_secs_f64(r.config.duration_s)),
        r.config.rooms,
        r.config.tenants,
        r.config.payload_bytes
    );
    // One node's share is the whole run: its rows would repeat the totals.
    let several = r.nodes.len() > 1;
    if several {
        load.push_str(&format!(", {} nodes", r.nodes.len()));
    }
    row("load", load);
    row(
        "connections",
        format!(
            "{} established, {} failed, all in {:.2}s ({} source address(es))",
            r.connections.established,
            r.connections.failed,
            r.connections.time_to_connect_all_s,
            r.connections.source_addresses
        ),
    );
    row(
        "events",
        format!(
            "{} published, {} failed, {:.0}/s accepted",
            r.events.published, r.events.publish_failed, r.events.accepted_per_s
        ),
    );
    row(
        "deliveries",
        format!(
            "{} of {} expected, {} lost, {} duplicated, {:.0}/s",
            r.deliveries.received,
            r.deliveries.expected,
            r.deliveries.lost,
            r.deliveries.duplicated,
            r.deliveries.per_second
        ),
    );
    let percentiles = |l: &LatencyReport| {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p90, l.p99, l.p99_9, l.max
        )
    };
    if several {
        for (i, n) in r.nodes.iter().enumerate() {
            let d = &n.deliveries;
            row(
                &format!("node {}", i + 1),
                format!(
                    "{}: {} connections ({} failed), {} published, \
                     {} of {} deliveries, {} lost, {} duplicated",
                    n.url,
                    n.connections.established,
                    n.connections.failed,
                    n.events.published,
                    d.received,
                    d.expected,
                    d.lost,
                    d.duplicated,
                ),
            );
        }
    }
    row("latency (ms)", percentiles(&r.latency_ms));
    if r.events.ack_latency_ms.samples > 0 {
        row("publish ack (ms)", percentiles(&r.events.ack_latency_ms));
    }
    if let Some(per) = r.server_memory.per_connection_bytes {
        row(
            "server memory",
            format!("{:.1} KiB per connection", per / 1024.0),
        );
    }
    row(
        "generator",
        format!(
            "max schedule lag {:.1} ms, backpressure {:.0} ms",
            r.generator.max_schedule_lag_ms, r.generator.backpressure_ms
        ),
    );
    if !r.errors.is_empty() {
        let errors: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        row("errors", errors.join(", "));
    }
    for v in &r.thresholds {
        row(
            &format!("threshold {}", v.threshold),
            format!(
                "{} (actual {})",
                if v.ok { "ok" } else { "FAILED" },
                number(v.actual)
            ),
        );
    }
    t
}

#[cfg(test)]
mod tests {
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
}
