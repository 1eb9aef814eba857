//! The email's text, and what each SMTP answer means for the job, against
//! a real SMTP conversation on loopback (a peer that speaks just enough
//! of RFC 5321 to accept, defer or reject a message).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::*;
use crate::protocol::alerts::{AlertState, Severity};
use crate::server::alerts::notify::tests::{alert, notification};

const BODY: &str = "\
FIRING: incident inc-1 of tenant acme, 1 alert, severity critical

High message failure rate
  value:      7.5% (threshold > 5%)
  condition:  MessageFailureRate over 5m
  severity:   critical
  state:      firing since 2026-12-03T16:01:00Z

Correlation id: corr-7f3a
Opened: 2026-12-03T16:01:00Z";

#[test]
fn the_body_states_the_facts_in_plain_text() {
    assert_eq!(body(&notification(Reason::Firing)), BODY);
    let mut n = notification(Reason::Resolved);
    n.alerts[0].state = AlertState::Resolved;
    n.alerts[0].resolved_at = Some("2026-12-03T16:20:00Z".into());
    n.alerts[0].current_value = 4.5;
    let mut cpu = alert("cpu_usage", "High CPU usage", Severity::Warning);
    cpu.state = AlertState::Resolved;
    cpu.resolved_at = Some("2026-12-03T16:19:00Z".into());
    n.alerts.push(cpu);
    n.incident.resolved_at = Some("2026-12-03T16:20:00Z".into());
    n.incident.acknowledged_at = Some("2026-12-03T16:05:00Z".into());
    n.incident.acknowledged_by = Some("ops@acme".into());
    assert_eq!(
        body(&n),
        "\
RESOLVED: incident inc-1 of tenant acme, 2 alerts, severity critical

High message failure rate
  value:      4.5% (threshold > 5%)
  condition:  MessageFailureRate over 5m
  severity:   critical
  state:      resolved at 2026-12-03T16:20:00Z

High CPU usage
  value:      7.5% (threshold > 5%)
  condition:  MessageFailureRate
  severity:   warning
  state:      resolved at 2026-12-03T16:19:00Z

Correlation id: corr-7f3a
Opened: 2026-12-03T16:01:00Z
Resolved: 2026-12-03T16:20:00Z
Acknowledged: 2026-12-03T16:05:00Z by ops@acme"
    );
}

#[test]
fn notifications_of_one_incident_are_one_thread() {
    let from: Mailbox = "pytake <alerts@example.com>".parse().unwrap();
    let to: Vec<Mailbox> = vec![
        "oncall@example.com".parse().unwrap(),
        "Ops <ops@example.com>".parse().unwrap(),
    ];
    let header = |m: &Message, name: &str| m.headers().get_raw(name).map(str::to_string);
    let first = message(&from, &to, &notification(Reason::Firing)).unwrap();
    assert_eq!(
        header(&first, "Subject").as_deref(),
        Some("[FIRING] critical: High message failure rate (acme)")
    );
    assert_eq!(
        header(&first, "From").as_deref(),
        Some("pytake <alerts@example.com>")
    );
    assert_eq!(
        header(&first, "To").as_deref(),
        Some("oncall@example.com, Ops <ops@example.com>")
    );
    assert_eq!(
        header(&first, "Message-ID").as_deref(),
        Some("<corr-7f3a@example.com>")
    );
    assert_eq!(header(&first, "In-Reply-To"), None);
    let mut later = notification(Reason::Repeat);
    later.incident.notifications = 2;
    let later = message(&from, &to, &later).unwrap();
    assert_eq!(
        header(&later, "Message-ID").as_deref(),
        Some("<corr-7f3a.repeat.2@example.com>")
    );
    assert_eq!(
        header(&later, "In-Reply-To").as_deref(),
        Some("<corr-7f3a@example.com>")
    );
    assert_eq!(
        header(&later, "References").as_deref(),
        Some("<corr-7f3a@example.com>")
    );
}

/// An SMTP server on loopback that answers `MAIL FROM` with `mail_reply`
/// and everything else as a willing relay would.
async fn smtp_peer(mail_reply: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 peer ESMTP\r\n").await?;
                let mut in_data = false;
                while let Some(line) = lines.next_line().await? {
                    let reply: &str = if in_data {
                        if line != "." {
                            continue;
                        }
                        in_data = false;
                        "250 queued"
                    } else {
                        match line.get(..4).unwrap_or("").to_ascii_uppercase().as_str() {
                            "EHLO" => "250 peer",
                            "MAIL" => mail_reply,
                            "DATA" => {
                                in_data = true;
                                "354 go on"
                            }
                            "QUIT" => {
                                write.write_all(b"221 bye\r\n").await?;
                                return Ok::<_, std::io::Error>(());
                            }
                            _ => "250 ok",
                        }
                    };
                    write.write_all(format!("{reply}\r\n").as_bytes()).await?;
                }
                Ok(())
            });
        }
    });
    port
}

fn channel(port: u16) -> Email {
    let smtp = SmtpSettings {
        host: Some("127.0.0.1".into()),
        port,
        tls: SmtpTls::None,
        to: vec!["oncall@example.com".into()],
        ..SmtpSettings::default()
    };
    Email::new(&smtp, Duration::from_secs(5)).unwrap()
}

#[tokio::test]
async fn smtp_answers_decide_between_retry_and_dead() {
    let breakers = Arc::new(Breakers::new(5, Duration::from_secs(30)));
    let n = notification(Reason::Firing);
    let port = smtp_peer("250 ok").await;
    assert_eq!(channel(port).send(&breakers, &n).await, Ok(()));

    let port = smtp_peer("451 4.3.0 try again later").await;
    assert_eq!(
        channel(port).send(&breakers, &n).await,
        Err(JobError::Retry(format!(
            "127.0.0.1:{port} deferred the email: transient error (451): 4.3.0 try again later"
        )))
    );

    let port = smtp_peer("550 5.7.1 relaying denied").await;
    assert_eq!(
        channel(port).send(&breakers, &n).await,
        Err(JobError::Fatal(format!(
            "127.0.0.1:{port} rejected the email for good: permanent error (550): 5.7.1 relaying denied"
        )))
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let Err(JobError::Retry(error)) = channel(port).send(&breakers, &n).await else {
        panic!("a refused connection retries");
    };
    assert!(
        error.starts_with(&format!(
            "cannot send to 127.0.0.1:{port}: Connection error"
        )),
        "{error}"
    );
}

#[test]
fn settings_that_cannot_send_say_why() {
    let smtp = |f: fn(&mut SmtpSettings)| {
        let mut s = SmtpSettings {
            host: Some("smtp.example.com".into()),
            to: vec!["oncall@example.com".into()],
            ..SmtpSettings::default()
        };
        f(&mut s);
        Email::new(&s, Duration::from_secs(5)).err()
    };
    assert_eq!(smtp(|_| {}), None);
    assert_eq!(
        smtp(|s| s.to.clear()).as_deref(),
        Some("the email channel is not configured on this node: [smtp] to names no recipient")
    );
    assert_eq!(
        smtp(|s| s.from = "not an address".into()).as_deref(),
        Some("[smtp] from: `not an address` is not an email address (Invalid input)")
    );
}
