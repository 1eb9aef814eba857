//! The tables, and the lines after an action.

use super::*;
use crate::cli::alerts::render;

#[test]
fn list_table() {
    assert_eq!(
        render::alerts(&page(), &listing(), now(), false),
        "\
3 alerts since 2026-12-02T10:40:00.000Z (1d ago), newest first
┌──────────┬──────────┬────────┬───────────────────────────┬───────────────────┬────────────┬────────────┬────────────┬─────┬──────────┬────────────────────────────┐
│ state    ┆ severity ┆ tenant ┆ rule                      ┆ value             ┆ since      ┆ fired      ┆ resolved   ┆ ack ┆ silenced ┆ id                         │
╞══════════╪══════════╪════════╪═══════════════════════════╪═══════════════════╪════════════╪════════════╪════════════╪═════╪══════════╪════════════════════════════╡
│ pending  ┆ critical ┆ globex ┆ Slow ERP                  ┆ 2450.25 (>= 2000) ┆    30s ago ┆          - ┆          - ┆     ┆          ┆ alt_20261203103930c9d0e1f2 │
│ firing   ┆ warning  ┆ acme   ┆ High message failure rate ┆       12.50 (> 5) ┆     4m ago ┆     3m ago ┆          - ┆  ✓  ┆          ┆ alt_20261203103600a1b2c3d4 │
│ resolved ┆ info     ┆ system ┆ Queue backlog             ┆       120 (> 500) ┆ 12h35m ago ┆ 12h30m ago ┆ 11h35m ago ┆     ┆     ✓    ┆ alt_20261202220500aabbccdd │
└──────────┴──────────┴────────┴───────────────────────────┴───────────────────┴────────────┴────────────┴────────────┴─────┴──────────┴────────────────────────────┘
"
    );
}

/// The filters are said above the table, and a full page says there may
/// be more.
#[test]
fn a_filtered_full_listing_says_so() {
    let one = AlertsPage {
        alerts: vec![firing()],
        since: "2026-12-03T10:30:00.000Z".into(),
    };
    let filtered = AlertListing {
        state: Some(AlertState::Firing),
        tenant: Some("acme".into()),
        limit: 1,
    };
    let screen = render::alerts(&one, &filtered, now(), false);
    assert!(
        screen.starts_with(
            "1 firing alert of tenant acme since 2026-12-03T10:30:00.000Z (10m ago), newest first\n┌"
        ),
        "{screen}"
    );
    assert!(
        screen.ends_with("┘\nthe newest 1 only: --limit up to 1000, or a later --since\n"),
        "{screen}"
    );
    let empty = AlertsPage {
        alerts: vec![],
        since: "2026-12-03T10:30:00.000Z".into(),
    };
    assert_eq!(
        render::alerts(&empty, &filtered, now(), false),
        "no firing alerts of tenant acme since 2026-12-03T10:30:00.000Z (10m ago)\n"
    );
}

#[test]
fn incidents_table() {
    assert_eq!(
        render::incidents(
            &[open_incident(), resolved_incident()],
            &incident_listing(),
            now(),
            false
        ),
        "\
2 incidents, newest first: 1 open, 1 resolved recently
┌────────────────────────────┬──────────┬────────┬────────────┬────────────┬────────────┬────────┬────────────────────┬────────────────┐
│ id                         ┆ state    ┆ tenant ┆ opened     ┆ last fired ┆ resolved   ┆ alerts ┆ acknowledged       ┆ notifications  │
╞════════════════════════════╪══════════╪════════╪════════════╪════════════╪════════════╪════════╪════════════════════╪════════════════╡
│ inc_20261203103700e5f6a7b8 ┆ firing   ┆ acme   ┆     3m ago ┆     1m ago ┆          - ┆      2 ┆ by alice 1m30s ago ┆ 2, last 3m ago │
│ inc_20261202221000deadbeef ┆ resolved ┆ system ┆ 12h30m ago ┆ 12h30m ago ┆ 11h35m ago ┆      1 ┆ -                  ┆ 0              │
└────────────────────────────┴──────────┴────────┴────────────┴────────────┴────────────┴────────┴────────────────────┴────────────────┘
"
    );
}

#[test]
fn empty_incident_listings_say_what_was_asked() {
    assert_eq!(
        render::incidents(&[], &incident_listing(), now(), false),
        "no incidents open or resolved recently\n"
    );
    let since = IncidentListing {
        tenant: Some("acme".into()),
        since: Some(t("2026-11-26T10:40:00Z")),
        limit: 100,
    };
    assert_eq!(
        render::incidents(&[], &since, now(), false),
        "no incidents of tenant acme open or resolved since 2026-11-26T10:40:00Z (7d ago)\n"
    );
    let screen = render::incidents(&[open_incident()], &since, now(), false);
    assert!(
        screen.starts_with(
            "1 incident of tenant acme, newest first: 1 open, 0 resolved since \
             2026-11-26T10:40:00Z (7d ago)\n"
        ),
        "{screen}"
    );
}

#[test]
fn rules_table() {
    assert_eq!(
        render::rules(&rules(), None, false),
        "\
3 rules
┌───────────────────┬───────────────────────────┬─────────────────────────┬──────────┬────────┬─────┬──────────┬─────────────┬──────────────────────────────────┬─────────┐
│ id                ┆ name                      ┆ condition               ┆ fires at ┆ window ┆ for ┆ severity ┆ tenant      ┆ channels                         ┆ enabled │
╞═══════════════════╪═══════════════════════════╪═════════════════════════╪══════════╪════════╪═════╪══════════╪═════════════╪══════════════════════════════════╪═════════╡
│ high_failure_rate ┆ High message failure rate ┆ MessageFailureRate      ┆ > 5      ┆     5m ┆  1m ┆ warning  ┆ each tenant ┆ websocket                        ┆ yes     │
│ cpu_usage         ┆ High CPU usage            ┆ SystemResourceUsage cpu ┆ > 80     ┆     5m ┆  1m ┆ warning  ┆ the machine ┆ websocket, slack, email, webhook ┆ no      │
│ slow_erp          ┆ Slow ERP                  ┆ ErpLatency p95          ┆ >= 2000  ┆    10m ┆  0s ┆ critical ┆ globex      ┆ websocket, slack                 ┆ yes     │
└───────────────────┴───────────────────────────┴─────────────────────────┴──────────┴────────┴─────┴──────────┴─────────────┴──────────────────────────────────┴─────────┘
"
    );
    assert_eq!(
        render::rules(&[], Some("acme"), false),
        "no rules that apply to tenant acme\n"
    );
}

#[test]
fn show_table_has_the_whole_rule() {
    assert_eq!(
        render::rule(&failure_rate(), "rule", false),
        "\
rule high_failure_rate · High message failure rate · enabled
┌───────────┬────────────────────────────┐
│           ┆ value                      │
╞═══════════╪════════════════════════════╡
│ condition ┆ MessageFailureRate         │
│ metric    ┆ -                          │
│ fires at  ┆ > 5                        │
│ window    ┆ 5m                         │
│ for       ┆ 1m                         │
│ severity  ┆ warning                    │
│ tenant    ┆ - (each tenant on its own) │
│ channels  ┆ websocket                  │
│ enabled   ┆ yes                        │
└───────────┴────────────────────────────┘
"
    );
    assert_eq!(
        render::rule(&slow_erp(), "added rule", false),
        "\
added rule slow_erp · Slow ERP · enabled
┌───────────┬──────────────────┐
│           ┆ value            │
╞═══════════╪══════════════════╡
│ condition ┆ ErpLatency       │
│ metric    ┆ p95              │
│ fires at  ┆ >= 2000          │
│ window    ┆ 10m              │
│ for       ┆ 0s               │
│ severity  ┆ critical         │
│ tenant    ┆ globex           │
│ channels  ┆ websocket, slack │
│ enabled   ┆ yes              │
└───────────┴──────────────────┘
"
    );
    let cpu = render::rule(&rules()[1], "rule", false);
    assert!(
        cpu.starts_with("rule cpu_usage · High CPU usage · disabled\n"),
        "{cpu}"
    );
    assert!(
        cpu.contains("│ tenant    ┆ - (the machine's: evaluated once for every tenant) │\n"),
        "{cpu}"
    );
}

#[test]
fn silences_table() {
    assert_eq!(
        render::silences(&silences(), true, now(), false),
        "\
2 silences, ended ones too
┌────────────────────────────┬───────────────────┬────────┬─────────┬─────────┬───────┬──────────────────────────────┐
│ id                         ┆ rule              ┆ tenant ┆ started ┆ ends    ┆ by    ┆ reason                       │
╞════════════════════════════╪═══════════════════╪════════╪═════════╪═════════╪═══════╪══════════════════════════════╡
│ sil_20261203101500a1b2c3d4 ┆ every rule        ┆ system ┆ 25m ago ┆ 10m ago ┆ admin ┆                              │
│ sil_2026120310390001020304 ┆ high_failure_rate ┆ acme   ┆  1m ago ┆  in 59m ┆ alice ┆ carrier outage, ticket #4411 │
└────────────────────────────┴───────────────────┴────────┴─────────┴─────────┴───────┴──────────────────────────────┘
"
    );
    let running = render::silences(&silences()[1..], false, now(), false);
    assert!(running.starts_with("1 running silence\n┌"), "{running}");
    assert_eq!(
        render::silences(&[], false, now(), false),
        "no running silences\n"
    );
    assert_eq!(render::silences(&[], true, now(), false), "no silences\n");
}

#[test]
fn colour_only_when_asked() {
    let plain = render::alerts(&page(), &listing(), now(), false);
    assert!(!plain.contains('\x1b'));
    let coloured = render::alerts(&page(), &listing(), now(), true);
    // Firing red, pending yellow, resolved green.
    for state in [
        "\x1b[38;5;9m firing ",
        "\x1b[38;5;11m pending ",
        "\x1b[38;5;10m resolved ",
    ] {
        assert!(coloured.contains(state), "{state:?} in {coloured:?}");
    }
    let incidents = render::incidents(&[open_incident()], &incident_listing(), now(), true);
    assert!(incidents.contains("\x1b[38;5;9m firing "), "{incidents:?}");
    assert!(render::rules(&rules(), None, true).contains("\x1b["));
    assert!(!render::rules(&rules(), None, false).contains('\x1b'));
}

#[test]
fn lines_after_an_action() {
    assert_eq!(
        render::acked(&open_incident(), now()),
        "incident inc_20261203103700e5f6a7b8 (acme, firing, 2 alerts) acknowledged by alice \
         1m30s ago: its repeats stop\n"
    );
    assert_eq!(
        render::silenced(&silences()[1]),
        "silenced rule high_failure_rate of tenant acme for 1h, until 2026-12-03T11:39:00.000Z: \
         sil_2026120310390001020304\n"
    );
    let everything_of_system = Silence {
        rule_id: None,
        ..silences()[1].clone()
    };
    assert!(render::silenced(&everything_of_system)
        .starts_with("silenced every rule of tenant acme for 1h, until "));
    let one_rule_everywhere = Silence {
        tenant_id: None,
        ..silences()[1].clone()
    };
    assert!(render::silenced(&one_rule_everywhere)
        .starts_with("silenced rule high_failure_rate of every tenant for 1h, until "));
    assert_eq!(
        render::unsilenced("sil_2026120310390001020304"),
        "ended silence sil_2026120310390001020304\n"
    );
    assert_eq!(
        render::toggled(&rules()[1]),
        "rule cpu_usage (High CPU usage) is disabled: its firing alerts resolve at the next \
         evaluation\n"
    );
    assert_eq!(
        render::toggled(&rules()[0]),
        "rule high_failure_rate (High message failure rate) is enabled\n"
    );
    assert_eq!(
        render::removed("slow_erp"),
        "deleted rule slow_erp: its firing alerts resolve at the next evaluation, fired ones \
         stay in history\n"
    );
}

#[test]
fn figures_and_times_as_shown() {
    assert_eq!(
        (
            render::number(5.0),
            render::number(1.0 / 3.0),
            render::number(-3.25)
        ),
        ("5".into(), "0.33".into(), "-3.25".into())
    );
    // A time the API wrote in another form is shown as sent.
    let odd = Alert {
        pending_since: "yesterday".into(),
        ..pending()
    };
    let page = AlertsPage {
        alerts: vec![odd],
        since: "a while ago".into(),
    };
    let screen = render::alerts(&page, &listing(), now(), false);
    assert!(
        screen.starts_with("1 alert since a while ago, newest first\n"),
        "{screen}"
    );
    assert!(screen.contains("┆ yesterday ┆ "), "{screen}");
}
