//! The Slack channel: a message to `[slack] webhook_url`, an incoming
//! webhook. `text` is what Slack shows in its notification (the
//! headline); the blocks carry the facts.

use serde_json::{json, Value};

use super::post::{Endpoint, Poster};
use super::render::{alert_facts, headline, incident_facts, intro};
use crate::server::alerts::notification::Notification;
use crate::server::queue::handlers::JobError;

/// Slack refuses a section whose text is longer.
const SECTION_CHARS: usize = 3000;

/// The configured incoming webhook.
pub struct Slack {
    pub endpoint: Endpoint,
}

impl Slack {
    pub async fn send(&self, poster: &Poster, n: &Notification) -> Result<(), JobError> {
        poster.post(&self.endpoint, &message(n), &[]).await
    }
}

/// The message's JSON.
pub fn message(n: &Notification) -> Value {
    let context = incident_facts(n)
        .into_iter()
        .map(|(label, value)| format!("{label} `{}`", escape(&value)))
        .collect::<Vec<_>>()
        .join(" · ");
    json!({
        "text": escape(&headline(n)),
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}*", escape(&intro(n)))}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert_lines(n)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": context}]},
        ],
    })
}

/// One line per alert, as many as fit in a section, then how many did
/// not: a message Slack refuses would fail every attempt.
fn alert_lines(n: &Notification) -> String {
    let lines: Vec<String> = n
        .alerts
        .iter()
        .map(|a| {
            let f = alert_facts(n, a);
            format!(
                "• *{}*: {} (threshold {}), {}; {}, {}",
                escape(&f.name),
                f.value,
                escape(&f.threshold),
                escape(&f.condition),
                f.severity,
                escape(&f.state)
            )
        })
        .collect();
    // Room for the last line, `…and 9999 more alerts`.
    let budget = SECTION_CHARS - 32;
    let mut text = String::new();
    let mut used = 0;
    for (shown, line) in lines.iter().enumerate() {
        let len = line.chars().count() + 1;
        if used + len > budget {
            text.push_str(&format!("…and {} more alerts", lines.len() - shown));
            return text;
        }
        used += len;
        text.push_str(line);
        text.push('\n');
    }
    text.pop();
    text
}

/// Slack's mrkdwn reads `<`, `>` and `&` as markup: escaped, so a rule
/// named `A < B` or a threshold `> 5%` shows as written.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::alerts::Severity;
    use crate::server::alerts::notification::Reason;
    use crate::server::alerts::notify::tests::{alert, notification};

    #[test]
    fn the_message_is_the_headline_then_the_facts() {
        let n = notification(Reason::Firing);
        assert_eq!(
            message(&n),
            json!({
                "text": "[FIRING] critical: High message failure rate (acme)",
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "*FIRING: incident inc-1 of tenant acme, 1 alert, severity critical*"}},
                    {"type": "section", "text": {"type": "mrkdwn",
                        "text": "• *High message failure rate*: 7.5% (threshold &gt; 5%), MessageFailureRate over 5m; critical, firing since 2026-12-03T16:01:00Z"}},
                    {"type": "context", "elements": [{"type": "mrkdwn",
                        "text": "correlation id `corr-7f3a` · opened `2026-12-03T16:01:00Z`"}]},
                ],
            })
        );
    }

    #[test]
    fn markup_in_names_is_escaped() {
        let mut n = notification(Reason::Resolved);
        n.alerts[0].rule_name = "Errors <b> & co".into();
        let m = message(&n);
        assert_eq!(
            m["text"],
            "[RESOLVED] critical: Errors &lt;b&gt; &amp; co (acme)"
        );
    }

    #[test]
    fn alerts_past_what_a_section_holds_are_counted_not_sent() {
        let mut n = notification(Reason::Firing);
        n.alerts = (0..100)
            .map(|i| alert(&format!("r{i}"), &"x".repeat(60), Severity::Warning))
            .collect();
        let text = alert_lines(&n);
        assert!(text.chars().count() <= SECTION_CHARS, "{}", text.len());
        let shown = text.lines().filter(|l| l.starts_with('•')).count();
        assert_eq!(
            text.lines().last().unwrap(),
            format!("…and {} more alerts", 100 - shown)
        );
        assert!(shown > 10, "{shown}");
    }
}
