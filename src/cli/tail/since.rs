//! `--since` and `--until` as people write them: an event id, a duration
//! ago (`10m`), or an RFC 3339 time.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::duration;
use crate::protocol::EventId;

/// The forms `--since` takes, as said in its error.
const SINCE_FORMS: &str =
    "expected an event id (4200), a duration ago (10m, 2h) or an RFC 3339 time (2026-12-02T10:00:00Z)";

/// The forms `--until` takes, as said in its error.
const UNTIL_FORMS: &str =
    "expected an RFC 3339 time (2026-12-02T10:00:00Z) or a duration ago (10m, 2h)";

/// Where `--since` starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// After this event id.
    Id(EventId),
    /// With the first event received this long ago or later.
    Ago(Duration),
    /// With the first event received at or after this time.
    Time(DateTime<Utc>),
}

/// Where `--until` ends.
#[derive(Debug, Clone, PartialEq)]
pub enum Until {
    Ago(Duration),
    Time(DateTime<Utc>),
}

impl Since {
    /// The time to start at, for the forms that are times.
    pub fn time(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Since::Id(_) => None,
            Since::Ago(ago) => Some(before(now, *ago)),
            Since::Time(t) => Some(*t),
        }
    }
}

impl Until {
    /// The last time to print, seen from `now`.
    pub fn at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Until::Ago(ago) => before(now, *ago),
            Until::Time(t) => *t,
        }
    }
}

/// `now - ago`, or the earliest time chrono knows for absurd durations
/// (`--since 100000w` means "everything").
fn before(now: DateTime<Utc>, ago: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| now.checked_sub_signed(ago))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Parses `--since`: digits are an event id, `2026-...` a time, anything
/// else a duration.
pub fn parse_since(text: &str) -> Result<Since, String> {
    let s = text.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(Since::Id)
            .map_err(|_| format!("event id {s} is too large"));
    }
    if let Some(time) = time(s)? {
        return Ok(Since::Time(time));
    }
    duration::parse(s)
        .map(Since::Ago)
        .map_err(|_| SINCE_FORMS.to_string())
}

/// Parses `--until`: a time or a duration ago.
pub fn parse_until(text: &str) -> Result<Until, String> {
    let s = text.trim();
    if let Some(time) = time(s)? {
        return Ok(Until::Time(time));
    }
    duration::parse(s)
        .map(Until::Ago)
        .map_err(|_| UNTIL_FORMS.to_string())
}

/// A time if `s` starts like one (`2026-`), with chrono's reason when it
/// then fails; `None` when it is not trying to be a time.
fn time(s: &str) -> Result<Option<DateTime<Utc>>, String> {
    let b = s.as_bytes();
    let looks_like_time = b.len() > 4 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-';
    if !looks_like_time {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| format!("expected an RFC 3339 time like 2026-12-02T10:00:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn since_is_an_id_a_duration_or_a_time() {
        assert_eq!(parse_since("42"), Ok(Since::Id(42)));
        assert_eq!(parse_since("0"), Ok(Since::Id(0)));
        assert_eq!(parse_since("10m"), Ok(Since::Ago(Duration::from_secs(600))));
        assert_eq!(
            parse_since("2026-12-02T10:00:00Z"),
            Ok(Since::Time(t("2026-12-02T10:00:00Z")))
        );
        assert_eq!(
            parse_since("2026-12-02T12:00:00+02:00"),
            Ok(Since::Time(t("2026-12-02T10:00:00Z")))
        );
    }

    #[test]
    fn since_errors_name_the_three_forms() {
        for bad in ["yesterday", "-1", "10x", ""] {
            assert_eq!(
                parse_since(bad).unwrap_err(),
                "expected an event id (4200), a duration ago (10m, 2h) or an RFC 3339 time \
                 (2026-12-02T10:00:00Z)",
                "{bad}"
            );
        }
        assert_eq!(
            parse_since("2026-12-02").unwrap_err(),
            "expected an RFC 3339 time like 2026-12-02T10:00:00Z (premature end of input)"
        );
        assert_eq!(
            parse_since("99999999999999999999").unwrap_err(),
            "event id 99999999999999999999 is too large"
        );
    }

    #[test]
    fn until_is_a_time_or_a_duration() {
        let now = t("2026-12-02T10:00:00Z");
        assert_eq!(
            parse_until("5m").unwrap().at(now),
            t("2026-12-02T09:55:00Z")
        );
        assert_eq!(
            parse_until("2026-12-02T11:00:00Z").unwrap().at(now),
            t("2026-12-02T11:00:00Z")
        );
        assert_eq!(
            parse_until("42").unwrap_err(),
            "expected an RFC 3339 time (2026-12-02T10:00:00Z) or a duration ago (10m, 2h)"
        );
    }

    #[test]
    fn durations_count_back_from_now() {
        let now = t("2026-12-02T10:00:00Z");
        assert_eq!(
            Since::Ago(Duration::from_secs(3600)).time(now),
            Some(t("2026-12-02T09:00:00Z"))
        );
        assert_eq!(Since::Id(3).time(now), None);
        assert_eq!(
            Since::Ago(Duration::from_secs(u64::MAX / 4)).time(now),
            Some(DateTime::<Utc>::MIN_UTC)
        );
    }
}
