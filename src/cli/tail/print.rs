//! What `pytake tail` prints for each event, and when it has printed
//! enough (`--count`, `--until`).

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::cli::output::{paint, OutputFormat, Style};
use crate::protocol::presence::{PresenceChange, Status, TypingChange};
use crate::protocol::Event;

/// Longest value shown in a readable line before it is cut.
const MAX_VALUE: usize = 48;

/// How far past `--until` an event's timestamp may be before it ends the
/// stream (it is not printed either way). Events arrive in id order, which
/// is commit order; their timestamps are the server's clock at intake
/// (unless the publisher set one), so two requests committed a few
/// milliseconds apart may arrive out of timestamp order, and the client's
/// clock may be a little off the server's. Within this grace an event past
/// `--until` is skipped rather than taken as the end, so an event stamped
/// just before `--until` that commits just after one stamped past it is
/// still printed. When following, the stream also ends once the local clock
/// is this far past `--until`, so a quiet stream does not wait forever.
pub const UNTIL_GRACE: Duration = Duration::from_secs(5);

/// Whether to go on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    More,
    Done,
}

/// Prints events to `out` (stdout, or a buffer in tests), one line each.
pub struct Printer<W> {
    out: W,
    format: OutputFormat,
    color: bool,
    count: Option<u64>,
    until: Option<DateTime<Utc>>,
    printed: u64,
}

impl<W: Write> Printer<W> {
    /// `count`: stop after this many printed; `until`: print only events
    /// stamped at or before it. An event stamped past it never ends the
    /// output: publishers may stamp events themselves, so one skewed
    /// timestamp would hide every event after it. Following stops on the
    /// clock instead (`--until` plus [`UNTIL_GRACE`]), and history at the
    /// head it first saw.
    pub fn new(
        out: W,
        format: OutputFormat,
        color: bool,
        count: Option<u64>,
        until: Option<DateTime<Utc>>,
    ) -> Printer<W> {
        Printer {
            out,
            format,
            color,
            count,
            until,
            printed: 0,
        }
    }

    /// Prints `event` if it is wanted, and says whether to go on. Each line
    /// is flushed at once, so `tail | grep` sees it as it happens.
    pub fn event(&mut self, event: &Event) -> anyhow::Result<Flow> {
        if self.count.is_some_and(|n| self.printed >= n) {
            return Ok(Flow::Done);
        }
        if self.until.is_some_and(|until| event.timestamp > until) {
            return Ok(Flow::More);
        }
        let line = match self.format {
            OutputFormat::Json => serde_json::to_string(event)?,
            _ => readable(event, self.color),
        };
        self.line(&line)
    }

    /// Prints a presence change (`--room presence`): a readable line, or
    /// the frame's payload as JSON. Counts toward `--count` like an event.
    pub fn presence(&mut self, change: &PresenceChange) -> anyhow::Result<Flow> {
        if self.count.is_some_and(|n| self.printed >= n) {
            return Ok(Flow::Done);
        }
        let line = match self.format {
            OutputFormat::Json => serde_json::to_string(change)?,
            _ => presence_line(change, self.color),
        };
        self.line(&line)
    }

    /// Prints a typing change (`--room conversation:{id}`), received at
    /// `at` (the frame has no time of its own). Counts like an event.
    pub fn typing(&mut self, change: &TypingChange, at: DateTime<Utc>) -> anyhow::Result<Flow> {
        if self.count.is_some_and(|n| self.printed >= n) {
            return Ok(Flow::Done);
        }
        let line = match self.format {
            OutputFormat::Json => serde_json::to_string(change)?,
            _ => typing_line(change, at, self.color),
        };
        self.line(&line)
    }

    /// Writes one line and flushes it; says whether `--count` is reached.
    fn line(&mut self, line: &str) -> anyhow::Result<Flow> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        self.printed += 1;
        Ok(match self.count {
            Some(n) if self.printed >= n => Flow::Done,
            _ => Flow::More,
        })
    }

    /// The sink, for tests.
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// `12:00:03 typing conversation:c4 ana typing` (or `stopped typing`)
pub fn typing_line(c: &TypingChange, at: DateTime<Utc>, color: bool) -> String {
    format!(
        "{} {} {} {} {}",
        paint(&at.format("%H:%M:%S").to_string(), Style::Dim, color),
        paint("typing", Style::Blue, color),
        paint(
            &format!("conversation:{}", c.conversation_id),
            Style::Cyan,
            color
        ),
        c.user_id,
        if c.typing {
            paint("typing", Style::Yellow, color)
        } else {
            paint("stopped typing", Style::Dim, color)
        },
    )
}

/// `12:00:01 presence acme alice online (2 connections, 3 online)`
pub fn presence_line(c: &PresenceChange, color: bool) -> String {
    let style = match c.status {
        Status::Online => Style::Green,
        Status::Offline => Style::Dim,
        Status::Away | Status::Busy => Style::Yellow,
    };
    let plural = |n: u32, one: &str, many: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    };
    format!(
        "{} {} {} {} {} ({}, {} online)",
        paint(
            &c.timestamp.format("%H:%M:%S").to_string(),
            Style::Dim,
            color
        ),
        paint("presence", Style::Blue, color),
        paint(&c.tenant_id, Style::Cyan, color),
        c.user_id,
        paint(c.status.as_str(), style, color),
        plural(c.connections, "connection", "connections"),
        c.online_count,
    )
}

/// `12:00:01.123  #42  acme  dashboard  MessageSent  message_id=m1 to=+55...`
pub fn readable(e: &Event, color: bool) -> String {
    let style = match e.event_type.as_str() {
        t if t.contains("Failed") || t == "SystemAlert" => Style::Red,
        "MessageSent" | "MessageReceived" => Style::Green,
        "CampaignUpdate" | "CallEvent" => Style::Magenta,
        "ERPCall" | "AIInteraction" => Style::Yellow,
        _ => Style::Bold,
    };
    let time = e.timestamp.format("%H:%M:%S%.3f").to_string();
    let mut line = format!(
        "{}  {}  {}  {}  {}",
        paint(&time, Style::Dim, color),
        paint(&format!("#{}", e.id), Style::Dim, color),
        paint(&e.tenant_id, Style::Cyan, color),
        paint(&e.room, Style::Blue, color),
        paint(&e.event_type, style, color),
    );
    if let Value::Object(map) = &e.data {
        for (k, v) in map {
            let mut text = match v {
                Value::String(s) if !s.contains(char::is_whitespace) && !s.is_empty() => s.clone(),
                other => other.to_string(),
            };
            if text.chars().count() > MAX_VALUE {
                text = text.chars().take(MAX_VALUE - 1).collect::<String>() + "…";
            }
            line.push_str(&format!("  {}={text}", paint(k, Style::Dim, color)));
        }
    }
    line
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use serde_json::json;

    /// An event `id` stamped `time`.
    pub fn event(id: i64, time: &str) -> Event {
        Event {
            id,
            event_type: "MessageSent".into(),
            tenant_id: "acme".into(),
            room: "dashboard".into(),
            rooms: vec!["dashboard".into()],
            data: json!({"message_id": format!("m{id}")}),
            timestamp: time.parse().unwrap(),
        }
    }

    #[test]
    fn typing_lines_say_who_and_where() {
        let at = "2026-01-01T12:00:03Z".parse().unwrap();
        let mut change = TypingChange {
            conversation_id: "c4".into(),
            user_id: "ana".into(),
            typing: true,
        };
        assert_eq!(
            typing_line(&change, at, false),
            "12:00:03 typing conversation:c4 ana typing"
        );
        change.typing = false;
        assert_eq!(
            typing_line(&change, at, false),
            "12:00:03 typing conversation:c4 ana stopped typing"
        );
        let mut printer = Printer::new(Vec::new(), OutputFormat::Json, false, Some(1), None);
        assert_eq!(printer.typing(&change, at).unwrap(), Flow::Done);
        assert_eq!(
            String::from_utf8(printer.into_inner()).unwrap(),
            "{\"conversation_id\":\"c4\",\"user_id\":\"ana\",\"typing\":false}\n"
        );
    }

    #[test]
    fn presence_lines_say_who_and_how_many() {
        let change = PresenceChange {
            tenant_id: "acme".into(),
            user_id: "alice".into(),
            status: Status::Online,
            connections: 2,
            online_count: 3,
            timestamp: "2026-01-01T12:00:01Z".parse().unwrap(),
        };
        assert_eq!(
            presence_line(&change, false),
            "12:00:01 presence acme alice online (2 connections, 3 online)"
        );
        let gone = PresenceChange {
            status: Status::Offline,
            connections: 0,
            online_count: 1,
            ..change
        };
        assert_eq!(
            presence_line(&gone, false),
            "12:00:01 presence acme alice offline (0 connections, 1 online)"
        );
    }

    #[test]
    fn readable_lines_are_plain_without_colour() {
        let event = Event {
            data: json!({"message_id": "m1", "status": "sent", "text": "olá mundo"}),
            ..event(7, "2026-01-01T12:00:01.123Z")
        };
        assert_eq!(
            readable(&event, false),
            "12:00:01.123  #7  acme  dashboard  MessageSent  message_id=m1  status=sent  text=\"olá mundo\""
        );
        assert!(readable(&event, true).contains("\x1b[32mMessageSent\x1b[0m"));
    }

    #[test]
    fn count_stops_after_that_many_printed() {
        let mut p = Printer::new(Vec::new(), OutputFormat::Table, false, Some(2), None);
        assert_eq!(
            p.event(&event(1, "2026-01-01T10:00:00Z")).unwrap(),
            Flow::More
        );
        assert_eq!(
            p.event(&event(2, "2026-01-01T10:00:01Z")).unwrap(),
            Flow::Done
        );
        assert_eq!(
            p.event(&event(3, "2026-01-01T10:00:02Z")).unwrap(),
            Flow::Done
        );
        assert_eq!(
            String::from_utf8(p.into_inner()).unwrap(),
            "10:00:00.000  #1  acme  dashboard  MessageSent  message_id=m1\n\
             10:00:01.000  #2  acme  dashboard  MessageSent  message_id=m2\n"
        );
    }

    #[test]
    fn until_skips_later_events_and_never_ends_on_one() {
        let until = "2026-01-01T10:00:00Z".parse().ok();
        let mut p = Printer::new(Vec::new(), OutputFormat::Json, false, None, until);
        let flows: Vec<Flow> = [
            event(1, "2026-01-01T09:59:59Z"),
            event(2, "2026-01-01T10:00:00Z"),
            // Stamped a day ahead by its publisher: skipped, not the end.
            event(3, "2026-01-02T10:00:04Z"),
            event(4, "2026-01-01T09:59:59.999Z"),
            event(5, "2026-01-01T10:00:06Z"),
        ]
        .iter()
        .map(|e| p.event(e).unwrap())
        .collect();
        assert_eq!(flows, [Flow::More; 5]);
        let ids: Vec<i64> = String::from_utf8(p.into_inner())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Event>(l).unwrap().id)
            .collect();
        assert_eq!(ids, [1, 2, 4]);
    }
}
