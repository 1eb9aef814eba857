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
#[path = "summary_tests.rs"]
mod tests;
