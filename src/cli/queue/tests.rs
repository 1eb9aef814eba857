//! Exact output of the tables, lines and CSV, from fixed bodies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::fetch::{Circuit, Listing, Page, Purged, Stats};
use super::{csv, render};
use crate::server::storage::jobs::{Job, JobStatus, QueueStats};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The time every age is counted from.
fn now() -> DateTime<Utc> {
    t("2026-12-03T10:40:00Z")
}

/// An error as the `http` handler words it: what failed first, the root
/// cause last.
const REFUSED: &str = "cannot reach hooks.acme.example:443: error sending request for url \
     (https://hooks.acme.example/crm): client error (Connect): tcp connect error: \
     Connection refused (os error 111) (attempt 3 of 3)";

/// An `http` delivery to acme's CRM that ran out of attempts.
fn dead_http() -> Job {
    Job {
        id: 42,
        queue: "default".into(),
        kind: "http".into(),
        payload: json!({"url": "https://hooks.acme.example/crm", "headers": {"authorization": "****"}, "body": {"order": 7}}),
        priority: 0,
        status: JobStatus::Dead,
        attempts: 3,
        max_attempts: 3,
        run_at: t("2026-12-03T10:36:40.250Z"),
        lease_expires_at: None,
        last_error: Some(REFUSED.into()),
        correlation_id: Some("order-7".into()),
        tenant_id: Some("acme".into()),
        created_at: t("2026-12-03T10:36:26Z"),
        updated_at: t("2026-12-03T10:36:40.250Z"),
    }
}

/// A platform webhook that could not be read.
fn dead_webhook() -> Job {
    Job {
        id: 7,
        queue: "default".into(),
        kind: "webhook.whatsapp".into(),
        payload: json!({"raw": "{}"}),
        priority: 0,
        status: JobStatus::Dead,
        attempts: 1,
        max_attempts: 3,
        run_at: t("2026-12-02T08:10:00Z"),
        lease_expires_at: None,
        last_error: Some("no tenant for phone_number_id 106540352242922".into()),
        correlation_id: None,
        tenant_id: None,
        created_at: t("2026-12-02T08:10:00Z"),
        updated_at: t("2026-12-02T08:10:01Z"),
    }
}

/// A noop job a worker holds now.
fn running_noop() -> Job {
    Job {
        id: 43,
        kind: "noop".into(),
        payload: json!({}),
        status: JobStatus::Running,
        attempts: 1,
        last_error: None,
        correlation_id: None,
        run_at: t("2026-12-03T10:39:58Z"),
        lease_expires_at: Some(t("2026-12-03T10:40:28Z")),
        created_at: t("2026-12-03T10:39:58Z"),
        updated_at: t("2026-12-03T10:39:58Z"),
        ..dead_http()
    }
}

fn listing(dead: bool) -> Listing {
    Listing {
        dead,
        status: None,
        kind: None,
        limit: 50,
        before: None,
    }
}

fn stats() -> Stats {
    Stats {
        stats: QueueStats {
            depth: BTreeMap::from([
                (JobStatus::Pending, 12),
                (JobStatus::Running, 3),
                (JobStatus::Retrying, 4),
                (JobStatus::Done, 1830),
                (JobStatus::Dead, 2),
            ]),
            oldest_pending_seconds: 200.5,
            processed_per_second: 6.1,
            error_rate: 0.0214,
            dead_by_kind: BTreeMap::from([
                ("http".to_string(), 1),
                ("webhook.whatsapp".to_string(), 1),
            ]),
        },
        tenant_id: None,
        circuits: vec![
            Circuit {
                host: "hooks.acme.example:443".into(),
                state: "open".into(),
            },
            Circuit {
                host: "hooks.globex.example:443".into(),
                state: "half_open".into(),
            },
        ],
    }
}

#[test]
fn stats_table() {
    assert_eq!(
        render::stats(&stats(), false),
        "\
every tenant · rates over the last 5m
┌────────────────┬──────────────────────────────────────────────────────────┐
│                ┆ value                                                    │
╞════════════════╪══════════════════════════════════════════════════════════╡
│ depth          ┆ 12 pending · 3 running · 4 retrying · 1830 done · 2 dead │
│ processed      ┆ 6.10 done/s                                              │
│ error rate     ┆ 2.14%                                                    │
│ oldest pending ┆ 3m20s                                                    │
│ dead by kind   ┆ http 1 · webhook.whatsapp 1                              │
└────────────────┴──────────────────────────────────────────────────────────┘
┌─────────────────────────────┬───────────┐
│ host (this node's circuits) ┆ state     │
╞═════════════════════════════╪═══════════╡
│ hooks.acme.example:443      ┆ open      │
│ hooks.globex.example:443    ┆ half-open │
└─────────────────────────────┴───────────┘
"
    );
}

/// A quiet tenant: nothing waits, nothing died, no deliveries yet.
#[test]
fn stats_of_an_idle_queue() {
    let idle = Stats {
        stats: QueueStats {
            depth: JobStatus::ALL.into_iter().map(|s| (s, 0)).collect(),
            oldest_pending_seconds: 0.0,
            processed_per_second: 0.0,
            error_rate: 0.0,
            dead_by_kind: BTreeMap::new(),
        },
        tenant_id: Some("acme".into()),
        circuits: vec![],
    };
    assert_eq!(
        render::stats(&idle, false),
        "\
tenant acme · rates over the last 5m
┌────────────────┬──────────────────────────────────────────────────────┐
│                ┆ value                                                │
╞════════════════╪══════════════════════════════════════════════════════╡
│ depth          ┆ 0 pending · 0 running · 0 retrying · 0 done · 0 dead │
│ processed      ┆ 0 done/s                                             │
│ error rate     ┆ 0.00%                                                │
│ oldest pending ┆ none due                                             │
│ dead by kind   ┆ none                                                 │
└────────────────┴──────────────────────────────────────────────────────┘
circuits: none on this node yet (one per host it delivered http jobs to)
"
    );
}

/// The server's body (its stats, the tenant, the circuits) reads back
/// whole, f64s included, despite `arbitrary_precision`.
#[test]
fn a_stats_body_reads_back() {
    let s = stats();
    let mut body = serde_json::to_value(&s.stats).unwrap();
    body["tenant_id"] = json!(null);
    body["circuits"] = json!([
        {"host": "hooks.acme.example:443", "state": "open"},
        {"host": "hooks.globex.example:443", "state": "half_open"},
    ]);
    let text = body.to_string();
    assert!(text.contains(r#""error_rate":0.0214"#), "{text}");
    let read: Stats = serde_json::from_str(&text).unwrap();
    assert_eq!(read, s);
}

fn page() -> Page {
    Page {
        jobs: vec![running_noop(), dead_http(), dead_webhook()],
        next_before: Some(7),
    }
}

#[test]
fn list_table() {
    assert_eq!(
        render::jobs(&page(), &listing(false), now(), false),
        "\
3 jobs, newest first
┌────┬─────────┬──────────────────┬────────┬──────────┬───────────┬───────────────────────────────────────────────────────────────────────────────────────────┐
│ id ┆ status  ┆ kind             ┆ tenant ┆ attempts ┆ updated   ┆ last error                                                                                │
╞════╪═════════╪══════════════════╪════════╪══════════╪═══════════╪═══════════════════════════════════════════════════════════════════════════════════════════╡
│ 43 ┆ running ┆ noop             ┆ acme   ┆      1/3 ┆    2s ago ┆                                                                                           │
│ 42 ┆ dead    ┆ http             ┆ acme   ┆      3/3 ┆ 3m19s ago ┆ cannot reach hooks.acme.example:443: … Connection refused (os error 111) (attempt 3 of 3) │
│  7 ┆ dead    ┆ webhook.whatsapp ┆ -      ┆      1/3 ┆  1d2h ago ┆ no tenant for phone_number_id 106540352242922                                             │
└────┴─────────┴──────────────────┴────────┴──────────┴───────────┴───────────────────────────────────────────────────────────────────────────────────────────┘
older ones: pytake queue list --before 7
"
    );
}

/// The dead-letter view: no status column, and the next page's command
/// keeps the filters.
#[test]
fn dead_table() {
    let page = Page {
        jobs: vec![dead_http(), dead_webhook()],
        next_before: Some(7),
    };
    let listing = Listing {
        limit: 2,
        ..listing(true)
    };
    assert_eq!(
        render::jobs(&page, &listing, now(), false),
        "\
2 dead jobs, newest first
┌────┬──────────────────┬────────┬──────────┬───────────┬───────────────────────────────────────────────────────────────────────────────────────────┐
│ id ┆ kind             ┆ tenant ┆ attempts ┆ updated   ┆ last error                                                                                │
╞════╪══════════════════╪════════╪══════════╪═══════════╪═══════════════════════════════════════════════════════════════════════════════════════════╡
│ 42 ┆ http             ┆ acme   ┆      3/3 ┆ 3m19s ago ┆ cannot reach hooks.acme.example:443: … Connection refused (os error 111) (attempt 3 of 3) │
│  7 ┆ webhook.whatsapp ┆ -      ┆      1/3 ┆  1d2h ago ┆ no tenant for phone_number_id 106540352242922                                             │
└────┴──────────────────┴────────┴──────────┴───────────┴───────────────────────────────────────────────────────────────────────────────────────────┘
older ones: pytake queue dead --limit 2 --before 7
"
    );
}

#[test]
fn empty_listings_say_what_was_asked() {
    let empty = Page {
        jobs: vec![],
        next_before: None,
    };
    let http = Listing {
        kind: Some("http".into()),
        ..listing(true)
    };
    assert_eq!(
        render::jobs(&empty, &http, now(), false),
        "no dead http jobs\n"
    );
    let filtered = Listing {
        status: Some(JobStatus::Retrying),
        kind: Some("http".into()),
        before: Some(100),
        ..listing(false)
    };
    assert_eq!(
        render::jobs(&empty, &filtered, now(), false),
        "no jobs below #100 (status retrying, kind http)\n"
    );
    let one = Page {
        jobs: vec![dead_http()],
        next_before: None,
    };
    let screen = render::jobs(&one, &http, now(), false);
    assert!(
        screen.starts_with("1 dead http job, newest first\n"),
        "{screen}"
    );
    assert!(!screen.contains("older ones"), "{screen}");
}

#[test]
fn show_table_has_the_whole_error() {
    assert_eq!(
        render::job(&dead_http(), now(), false),
        "\
job 42 · http · dead
┌───────────────┬────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┐
│               ┆ value                                                                                                                                                                                              │
╞═══════════════╪════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════════╡
│ status        ┆ dead                                                                                                                                                                                               │
│ kind          ┆ http                                                                                                                                                                                               │
│ queue         ┆ default                                                                                                                                                                                            │
│ tenant        ┆ acme                                                                                                                                                                                               │
│ attempts      ┆ 3 of 3                                                                                                                                                                                             │
│ priority      ┆ 0                                                                                                                                                                                                  │
│ run at        ┆ 2026-12-03T10:36:40.250Z (3m19s ago)                                                                                                                                                               │
│ lease expires ┆ -                                                                                                                                                                                                  │
│ created       ┆ 2026-12-03T10:36:26Z (3m34s ago)                                                                                                                                                                   │
│ updated       ┆ 2026-12-03T10:36:40.250Z (3m19s ago)                                                                                                                                                               │
│ correlation   ┆ order-7                                                                                                                                                                                            │
│ last error    ┆ cannot reach hooks.acme.example:443: error sending request for url (https://hooks.acme.example/crm): client error (Connect): tcp connect error: Connection refused (os error 111) (attempt 3 of 3) │
│ payload       ┆ {\"body\":{\"order\":7},\"headers\":{\"authorization\":\"****\"},\"url\":\"https://hooks.acme.example/crm\"}                                                                                                     │
└───────────────┴────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────────┘
"
    );
}

#[test]
fn show_of_a_running_platform_job() {
    let job = Job {
        tenant_id: None,
        payload: json!({"raw": "x".repeat(600)}),
        ..running_noop()
    };
    let screen = render::job(&job, now(), false);
    assert!(screen.starts_with("job 43 · noop · running\n"), "{screen}");
    assert!(
        screen.contains("│ lease expires ┆ 2026-12-03T10:40:28Z (in 28s) "),
        "{screen}"
    );
    assert!(
        screen.contains("│ tenant        ┆ - (a platform job) "),
        "{screen}"
    );
    assert!(
        screen.contains("xxx… (610 bytes; --output json for all) "),
        "{screen}"
    );
}

#[test]
fn colour_only_when_asked() {
    let plain = render::jobs(&page(), &listing(false), now(), false);
    assert!(!plain.contains('\x1b'));
    let coloured = render::jobs(&page(), &listing(false), now(), true);
    assert!(coloured.contains("\x1b["), "{coloured}");
    assert!(render::stats(&stats(), true).contains("\x1b["));
}

#[test]
fn list_csv_has_every_field_but_the_payload() {
    assert_eq!(
        String::from_utf8(csv::jobs(&page().jobs)).unwrap(),
        "\
id,queue,kind,priority,status,attempts,max_attempts,run_at,lease_expires_at,last_error,correlation_id,tenant_id,created_at,updated_at
43,default,noop,0,running,1,3,2026-12-03T10:39:58Z,2026-12-03T10:40:28Z,,,acme,2026-12-03T10:39:58Z,2026-12-03T10:39:58Z
42,default,http,0,dead,3,3,2026-12-03T10:36:40.250Z,,cannot reach hooks.acme.example:443: error sending request for url (https://hooks.acme.example/crm): client error (Connect): tcp connect error: Connection refused (os error 111) (attempt 3 of 3),order-7,acme,2026-12-03T10:36:26Z,2026-12-03T10:36:40.250Z
7,default,webhook.whatsapp,0,dead,1,3,2026-12-02T08:10:00Z,,no tenant for phone_number_id 106540352242922,,,2026-12-02T08:10:00Z,2026-12-02T08:10:01Z
"
    );
}

/// CSV and `show` write times as the API's JSON does, so a script can
/// join them.
#[test]
fn times_read_as_the_api_writes_them() {
    let body = serde_json::to_value(dead_http()).unwrap();
    let job = dead_http();
    assert_eq!(body["run_at"], render::time(job.run_at));
    assert_eq!(body["created_at"], render::time(job.created_at));
    let page: Page = serde_json::from_value(json!({"jobs": [body], "next_before": null})).unwrap();
    assert_eq!(page.jobs, [job]);
}

#[test]
fn ages_rates_and_clipped_errors() {
    assert_eq!(render::relative(now(), now()), "now");
    assert_eq!(
        render::relative(t("2026-12-03T10:39:15Z"), now()),
        "45s ago"
    );
    assert_eq!(
        render::relative(t("2026-12-03T12:45:30Z"), now()),
        "in 2h5m"
    );
    assert_eq!(
        render::relative(t("2026-11-01T09:00:00Z"), now()),
        "32d1h ago"
    );
    // One job done in five minutes is not nothing.
    assert_eq!(render::rate(1.0 / 300.0), "0.0033");
    assert_eq!(
        (render::rate(0.0), render::rate(6.1), render::rate(12.0)),
        ("0".into(), "6.10".into(), "12".into())
    );
    assert_eq!(render::clip("short", 10), "short");
    assert_eq!(
        render::clip("line one\n  line two", 80),
        "line one line two"
    );
    assert_eq!(render::clip("abcdefghijklmnop", 10), "abc…klmnop");
    // A chained error keeps what failed and its root cause.
    assert_eq!(
        render::clip(REFUSED, render::ERROR_WIDTH),
        "cannot reach hooks.acme.example:443: … Connection refused (os error 111) (attempt 3 of 3)"
    );
    // Unless even the root cause is too long.
    assert_eq!(
        render::clip("a: b: c: a root cause longer than the room", 20),
        "a: b: …than the room"
    );
}

#[test]
fn lines_after_an_action() {
    assert_eq!(
        render::retried(&Job {
            status: JobStatus::Pending,
            attempts: 0,
            ..dead_http()
        }),
        "job 42 (http) is pending again, with 3 attempts\n"
    );
    assert_eq!(
        render::retried_dead(2, None),
        "2 dead jobs pending again, each with its attempts anew\n"
    );
    assert_eq!(
        render::retried_dead(1, Some("http")),
        "1 dead http job pending again, each with its attempts anew\n"
    );
    assert_eq!(
        render::retried_dead(0, Some("http")),
        "no dead http jobs to retry\n"
    );
    let purged = Purged {
        purged: 3,
        status: JobStatus::Done,
        before: t("2026-11-26T10:40:00Z"),
    };
    assert_eq!(
        render::purged(&purged, now()),
        "purged 3 done jobs last updated before 2026-11-26T10:40:00Z (7d ago)\n"
    );
    let enqueued = Job {
        status: JobStatus::Pending,
        attempts: 0,
        max_attempts: 1,
        run_at: t("2026-12-03T10:50:00Z"),
        ..dead_http()
    };
    assert_eq!(
        render::enqueued(&enqueued, now()),
        "enqueued job 42 (http, tenant acme): pending, runs in 10m, at most 1 attempt\n"
    );
}
