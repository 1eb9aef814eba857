//! Exact output of the tables and CSV, from fixed bodies.

use std::collections::BTreeMap;

use super::{csv, render};
use crate::client::read_series;
use crate::protocol::campaigns::{
    CallOutcomes, CampaignDashboard, CampaignMetrics, CampaignPerformance, CampaignSummary,
    HourlyPoint, TimingStats, TopError,
};
use crate::protocol::dashboard::{
    Overview, PoolStats, Series, SeriesPoint, Subsystem, SystemStats,
};
use crate::protocol::metrics::{Kpis, Period};

fn subsystem(name: &str, status: &str, detail: &str) -> Subsystem {
    Subsystem {
        name: name.into(),
        status: status.into(),
        detail: detail.into(),
    }
}

/// A busy tenant whose bus is in trouble.
fn overview() -> Overview {
    Overview {
        tenant_id: Some("acme".into()),
        generated_at: "2026-12-03T10:37:12.000Z".into(),
        kpis: Kpis {
            tenant_id: Some("acme".into()),
            messages_sent: 1200,
            messages_received: 840,
            messages_failed: 36,
            message_failure_rate: 2.91,
            active_conversations: 17,
            conversations_started: 40,
            conversations_ended: 23,
            tickets_created: 5,
            campaigns_started: 2,
            campaigns_completed: 1,
            campaign_messages_sent: 950,
            campaign_messages_failed: 30,
            calls_answered: 12,
            calls_busy: 3,
            calls_failed: 2,
            calls_converted: 4,
            calls_opt_out: 1,
            ai_interactions: 64,
            ai_tokens: 51_234,
            erp_calls: 300,
            erp_errors: 6,
            erp_error_rate: 2.0,
            erp_latency_p50_ms: 87.5,
            erp_latency_p95_ms: 420.0,
            system_alerts: 1,
            events_total: 3406,
            events_per_second: 1.25,
            websocket_connections: 9,
            system_cpu_usage: 12.5,
            system_memory_usage: 48.03,
            window_seconds: 3600,
            last_event_id: 3406,
            timestamp: "2026-12-03T10:37:12.000Z".into(),
        },
        system: SystemStats {
            cpu_usage: 12.5,
            memory_usage: 48.03,
            rss_bytes: 36_175_872,
            websocket_connections: 9,
            store_pool: Some(PoolStats {
                size: 4,
                idle: 3,
                in_use: 1,
                max: 8,
            }),
            queue_depth: None,
            uptime_seconds: 93_784,
        },
        subsystems: vec![
            subsystem("store", "ok", "sqlite, ping 0.4 ms"),
            subsystem("bus", "degraded", "redis: reconnecting"),
            subsystem("metrics", "ok", "counted up to event 3406"),
        ],
    }
}

#[test]
fn overview_table() {
    assert_eq!(
        render::overview(&overview(), false),
        "\
tenant acme · 2026-12-03T10:37:12.000Z · rates over the last 1h
┌───────────────┬──────────────────────────────────────────────────────────────────┐
│ area          ┆ figures                                                          │
╞═══════════════╪══════════════════════════════════════════════════════════════════╡
│ messages      ┆ 1200 sent · 840 received · 36 failed · 2.91% failing             │
│ conversations ┆ 17 active · 40 started · 23 ended                                │
│ tickets       ┆ 5 created                                                        │
│ campaigns     ┆ 2 started · 1 completed · 950 messages sent · 30 failed          │
│ calls         ┆ 12 answered · 3 busy · 2 failed · 4 converted · 1 opt-outs       │
│ ai            ┆ 64 interactions · 51234 tokens                                   │
│ erp           ┆ 300 calls · 6 errors · 2.00% failing · p50 87.50 ms · p95 420 ms │
│ alerts        ┆ 1 system alerts                                                  │
│ events        ┆ 3406 stored · 1.25/s · newest #3406                              │
│ websocket     ┆ 9 connections                                                    │
│ system        ┆ cpu 12.50% · memory 48.03%                                       │
└───────────────┴──────────────────────────────────────────────────────────────────┘
┌───────────┬──────────┬──────────────────────────┐
│ subsystem ┆ status   ┆ detail                   │
╞═══════════╪══════════╪══════════════════════════╡
│ store     ┆ ok       ┆ sqlite, ping 0.4 ms      │
│ bus       ┆ degraded ┆ redis: reconnecting      │
│ metrics   ┆ ok       ┆ counted up to event 3406 │
└───────────┴──────────┴──────────────────────────┘
"
    );
}

#[test]
fn system_table() {
    assert_eq!(
        render::system(&overview(), false),
        "\
this node · 2026-12-03T10:37:12.000Z
┌─────────────┬─────────────────────────────────────────┐
│             ┆ value                                   │
╞═════════════╪═════════════════════════════════════════╡
│ cpu         ┆ 12.50%                                  │
│ memory      ┆ 48.03%                                  │
│ rss         ┆ 34.5 MiB                                │
│ connections ┆ 9                                       │
│ store pool  ┆ 1 in use · 3 idle · 4 open of 8 at most │
│ queue depth ┆ no queue                                │
│ uptime      ┆ 1d2h                                    │
└─────────────┴─────────────────────────────────────────┘
┌───────────┬──────────┬──────────────────────────┐
│ subsystem ┆ status   ┆ detail                   │
╞═══════════╪══════════╪══════════════════════════╡
│ store     ┆ ok       ┆ sqlite, ping 0.4 ms      │
│ bus       ┆ degraded ┆ redis: reconnecting      │
│ metrics   ┆ ok       ┆ counted up to event 3406 │
└───────────┴──────────┴──────────────────────────┘
"
    );
}

#[test]
fn colour_only_when_asked() {
    let plain = render::overview(&overview(), false);
    assert!(!plain.contains('\x1b'));
    let coloured = render::overview(&overview(), true);
    assert!(coloured.contains("\x1b["), "{coloured}");
}

/// Three one-minute buckets of an hour's series.
fn series() -> Series {
    let point = |t: &str, sent: f64, rate: f64| SeriesPoint {
        timestamp: t.into(),
        values: BTreeMap::from([
            ("messages_sent".to_string(), sent),
            ("message_failure_rate".to_string(), rate),
        ]),
    };
    Series {
        tenant_id: None,
        period: Period::Hour,
        bucket_seconds: 60,
        from: "2026-12-03T10:35:00Z".into(),
        to: "2026-12-03T10:38:00Z".into(),
        metrics: vec!["messages_sent".into(), "message_failure_rate".into()],
        points: vec![
            point("2026-12-03T10:35:00Z", 0.0, 0.0),
            point("2026-12-03T10:36:00Z", 42.0, 4.55),
            point("2026-12-03T10:37:00Z", 7.0, 12.5),
        ],
    }
}

#[test]
fn series_table() {
    assert_eq!(
        render::series(&series(), false),
        "\
every tenant · 1h · 3 buckets of 1m from 2026-12-03T10:35:00Z to 2026-12-03T10:38:00Z
┌──────────────────────┬───────────────┬──────────────────────┐
│ timestamp            ┆ messages_sent ┆ message_failure_rate │
╞══════════════════════╪═══════════════╪══════════════════════╡
│ 2026-12-03T10:35:00Z ┆             0 ┆                    0 │
│ 2026-12-03T10:36:00Z ┆            42 ┆                 4.55 │
│ 2026-12-03T10:37:00Z ┆             7 ┆                12.50 │
└──────────────────────┴───────────────┴──────────────────────┘
"
    );
}

#[test]
fn series_csv_is_the_export_format() {
    assert_eq!(
        String::from_utf8(csv::series(&series())).unwrap(),
        "\
timestamp,messages_sent,message_failure_rate
2026-12-03T10:35:00Z,0,0
2026-12-03T10:36:00Z,42,4.55
2026-12-03T10:37:00Z,7,12.5
"
    );
}

/// The server's JSON (numbers as it writes them) reads back whole,
/// despite `arbitrary_precision` (see [`read_series`]).
#[test]
fn a_series_body_reads_back() {
    let json = serde_json::to_string(&series()).unwrap();
    assert!(json.contains(r#""messages_sent":42.0"#), "{json}");
    assert_eq!(read_series(&json).unwrap(), series());
}

fn campaign() -> CampaignMetrics {
    CampaignMetrics {
        campaign_id: "CAMP-42".into(),
        tenant_id: "acme".into(),
        name: Some("Black Friday".into()),
        status: "running".into(),
        total_contacts: Some(1000),
        sent_count: 380,
        error_count: 20,
        processed: 400,
        success_rate: 95.0,
        error_rate: 5.0,
        progress_percentage: 40.0,
        messages_per_minute: 12.5,
        estimated_seconds_remaining: Some(2880),
        health_score: 100,
        health: "excellent".into(),
        outcomes: CallOutcomes {
            answered: 10,
            busy: 2,
            failed: 1,
            converted: 3,
            opt_outs: 1,
            total: 17,
        },
        answer_rate: 76.47,
        conversion_rate: 17.65,
        created_at: Some("2026-12-03T08:00:00.000Z".into()),
        started_at: Some("2026-12-03T09:00:00.000Z".into()),
        completed_at: None,
        duration_seconds: None,
        updated_at: "2026-12-03T10:37:00.000Z".into(),
    }
}

fn finished() -> CampaignMetrics {
    CampaignMetrics {
        campaign_id: "CAMP-7".into(),
        tenant_id: "acme".into(),
        name: None,
        status: "completed".into(),
        total_contacts: None,
        sent_count: 50,
        error_count: 10,
        processed: 60,
        success_rate: 83.33,
        error_rate: 16.67,
        progress_percentage: 0.0,
        messages_per_minute: 0.4,
        estimated_seconds_remaining: Some(0),
        health_score: 30,
        health: "poor".into(),
        created_at: None,
        started_at: Some("2026-12-02T09:00:00.000Z".into()),
        completed_at: Some("2026-12-02T11:30:00.000Z".into()),
        duration_seconds: Some(9000),
        updated_at: "2026-12-02T11:30:00.000Z".into(),
        ..CampaignMetrics::default()
    }
}

fn dashboard() -> CampaignDashboard {
    CampaignDashboard {
        tenant_id: Some("acme".into()),
        summary: CampaignSummary {
            total_campaigns: 2,
            completed_campaigns: 1,
            running_campaigns: 1,
            avg_success_rate: 89.17,
        },
        recent_campaigns: vec![],
        daily_performance: vec![],
    }
}

#[test]
fn campaigns_table() {
    assert_eq!(
        render::campaigns(&[campaign(), finished()], &dashboard(), false),
        "\
tenant acme · 2 campaigns · 1 running · 1 completed · 89.17% average success
┌──────────┬──────────────┬───────────┬───────────────────┬──────┬────────┬─────────┬─────────┬─────┬───────────────┐
│ campaign ┆ name         ┆ status    ┆ progress          ┆ sent ┆ errors ┆ success ┆ msg/min ┆ eta ┆ health        │
╞══════════╪══════════════╪═══════════╪═══════════════════╪══════╪════════╪═════════╪═════════╪═════╪═══════════════╡
│ CAMP-42  ┆ Black Friday ┆ running   ┆ 400/1000 (40.00%) ┆  380 ┆     20 ┆  95.00% ┆   12.50 ┆ 48m ┆ 100 excellent │
│ CAMP-7   ┆              ┆ completed ┆                60 ┆   50 ┆     10 ┆  83.33% ┆    0.40 ┆  0s ┆ 30 poor       │
└──────────┴──────────────┴───────────┴───────────────────┴──────┴────────┴─────────┴─────────┴─────┴───────────────┘
"
    );
}

#[test]
fn campaigns_csv() {
    assert_eq!(
        String::from_utf8(csv::campaigns(&[campaign(), finished()])).unwrap(),
        "\
campaign_id,tenant_id,name,status,total_contacts,sent_count,error_count,processed,success_rate,error_rate,progress_percentage,messages_per_minute,estimated_seconds_remaining,health_score,health,answered,busy,failed,converted,opt_outs,answer_rate,conversion_rate,created_at,started_at,completed_at,updated_at
CAMP-42,acme,Black Friday,running,1000,380,20,400,95,5,40,12.5,2880,100,excellent,10,2,1,3,1,76.47,17.65,2026-12-03T08:00:00.000Z,2026-12-03T09:00:00.000Z,,2026-12-03T10:37:00.000Z
CAMP-7,acme,,completed,,50,10,60,83.33,16.67,0,0.4,0,30,poor,0,0,0,0,0,0,0,,2026-12-02T09:00:00.000Z,2026-12-02T11:30:00.000Z,2026-12-02T11:30:00.000Z
"
    );
}

fn performance() -> CampaignPerformance {
    CampaignPerformance {
        campaign_id: "CAMP-42".into(),
        hourly_analysis: vec![
            HourlyPoint {
                hour: 9,
                hour_start: "2026-12-03T09:00:00.000Z".into(),
                total: 250,
                sent: 240,
                failed: 10,
                success_rate: 96.0,
            },
            HourlyPoint {
                hour: 10,
                hour_start: "2026-12-03T10:00:00.000Z".into(),
                total: 150,
                sent: 140,
                failed: 10,
                success_rate: 93.33,
            },
        ],
        top_errors: vec![
            TopError {
                error_message: "invalid number".into(),
                count: 15,
                percentage: 75.0,
            },
            TopError {
                error_message: "blocked by recipient".into(),
                count: 5,
                percentage: 25.0,
            },
        ],
        timing_stats: TimingStats {
            avg_send_time_seconds: Some(4.8),
            min_send_time_seconds: Some(2.0),
            max_send_time_seconds: Some(9.0),
            intervals: 379,
        },
    }
}

#[test]
fn campaign_table() {
    assert_eq!(
        render::campaign(&campaign(), &performance(), false),
        "\
campaign CAMP-42 · tenant acme · updated 2026-12-03T10:37:00.000Z
┌──────────┬─────────────────────────────────────────────────────────────────────────────────────────────────────┐
│          ┆ value                                                                                               │
╞══════════╪═════════════════════════════════════════════════════════════════════════════════════════════════════╡
│ name     ┆ Black Friday                                                                                        │
│ status   ┆ running                                                                                             │
│ progress ┆ 400/1000 (40.00%)                                                                                   │
│ sent     ┆ 380 sent · 20 failed · 95.00% success · 5.00% error rate                                            │
│ pace     ┆ 12.50 messages/min · eta 48m                                                                        │
│ health   ┆ 100 excellent                                                                                       │
│ calls    ┆ 10 answered · 2 busy · 1 failed · 3 converted · 1 opt-outs · 76.47% answer rate · 17.65% conversion │
│ times    ┆ created 2026-12-03T08:00:00.000Z · started 2026-12-03T09:00:00.000Z · completed -                   │
│ duration ┆ -                                                                                                   │
└──────────┴─────────────────────────────────────────────────────────────────────────────────────────────────────┘
┌──────────────────────────┬───────┬──────┬────────┬─────────┐
│ hour                     ┆ total ┆ sent ┆ failed ┆ success │
╞══════════════════════════╪═══════╪══════╪════════╪═════════╡
│ 2026-12-03T09:00:00.000Z ┆   250 ┆  240 ┆     10 ┆  96.00% │
│ 2026-12-03T10:00:00.000Z ┆   150 ┆  140 ┆     10 ┆  93.33% │
└──────────────────────────┴───────┴──────┴────────┴─────────┘
┌──────────────────────┬───────┬────────┐
│ error                ┆ count ┆ share  │
╞══════════════════════╪═══════╪════════╡
│ invalid number       ┆    15 ┆ 75.00% │
│ blocked by recipient ┆     5 ┆ 25.00% │
└──────────────────────┴───────┴────────┘
between sends: 4.80s on average, 2s to 9s, over 379 intervals
"
    );
}

#[test]
fn a_campaign_without_sends_says_so() {
    let empty = CampaignPerformance {
        campaign_id: "CAMP-7".into(),
        ..CampaignPerformance::default()
    };
    let screen = render::campaign(&finished(), &empty, false);
    assert!(
        screen.ends_with(
            "hourly: no sends yet\ntop errors: none\nbetween sends: fewer than two sends so far\n"
        ),
        "{screen}"
    );
    assert!(screen.contains("│ duration ┆ 2h30m"), "{screen}");
}

#[test]
fn overview_and_system_csv_are_name_value_rows() {
    let kpis = String::from_utf8(csv::overview(&overview())).unwrap();
    assert!(
        kpis.starts_with("name,value\ntenant_id,acme\nmessages_sent,1200\n"),
        "{kpis}"
    );
    assert!(kpis.contains("\nerp_latency_p50_ms,87.5\n"), "{kpis}");
    assert_eq!(kpis.lines().count(), 35);
    assert_eq!(
        String::from_utf8(csv::system(&overview())).unwrap(),
        "\
name,value
cpu_usage,12.5
memory_usage,48.03
rss_bytes,36175872
websocket_connections,9
store_pool.size,4
store_pool.idle,3
store_pool.in_use,1
store_pool.max,8
queue_depth,
uptime_seconds,93784
subsystem.store,ok
subsystem.bus,degraded
subsystem.metrics,ok
"
    );
}

#[test]
fn the_command_line_parses() {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from([
        "pytake", "metrics", "series", "--period", "1h", "--metric", "a,b", "--metric", "c",
    ])
    .unwrap();
    let crate::cli::Command::Metrics(args) = cli.command else {
        panic!("not metrics")
    };
    let Some(super::View::Series(s)) = args.view else {
        panic!("not series")
    };
    assert_eq!(s.metrics, ["a", "b", "c"]);
    assert_eq!(s.period, Some(Period::Hour));
    // Flags without a view are the overview's; with a view, the view's.
    assert!(crate::cli::Cli::try_parse_from(["pytake", "metrics", "--tenant", "acme"]).is_ok());
    assert!(
        crate::cli::Cli::try_parse_from(["pytake", "metrics", "--tenant", "a", "system"]).is_err()
    );
    assert!(crate::cli::Cli::try_parse_from(["pytake", "metrics", "--watch", "0s"]).is_err());
}
