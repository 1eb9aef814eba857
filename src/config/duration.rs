//! Durations as people write them (`30s`, `15m`, `24h`, `7d`), one parser
//! and one printer for every flag, variable, config key and message, so
//! that what `pytake config show` prints reads back as the same value.

use std::time::Duration;

/// The units a duration may use, as said in every error.
pub const UNITS: &str = "ms, s, m, h, d or w";

/// Parses `30s`, `1h30m`, `7d`, `250ms`. Errors say what was wrong in the
/// user's words (humantime's own say "(and few variations)").
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("a duration is needed, like 30s, 15m or 24h".into());
    }
    // Zero needs no unit; any other bare number is ambiguous.
    if t.chars().all(|c| c == '0') {
        return Ok(Duration::ZERO);
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "`{t}` has no unit: write {t}s, {t}m or {t}h (units: {UNITS})"
        ));
    }
    humantime::parse_duration(t).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => format!("`{t}` is too long"),
        _ => format!("`{t}` is not a duration like 30s, 15m, 24h or 7d (units: {UNITS})"),
    })
}

/// Parses a duration that must be longer than zero.
pub fn parse_positive(text: &str) -> Result<Duration, String> {
    let d = parse(text)?;
    if d.is_zero() {
        return Err(format!("`{}` must be longer than 0s", text.trim()));
    }
    Ok(d)
}

/// Prints a duration compactly and exactly: `366d`, `1h30m`, `250ms`, `0s`
/// (humantime prints 366 days as "1year 18h").
pub fn format(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    let mut out = String::new();
    for (unit, name) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
        let n = secs / unit;
        secs %= unit;
        if n > 0 {
            out.push_str(&format!("{n}{name}"));
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// `#[serde(with = "crate::config::duration")]` for a `Duration` kept as text.
pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// See [`serialize`].
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for `Option<Duration>`, where `none` (any case) means no value.
pub mod option {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&super::format(*d)),
            None => s.serialize_str("none"),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        if text.trim().eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        super::parse(&text)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or `none`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_people_write() {
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse(" 7d "), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
    }

    #[test]
    fn errors_name_the_value_and_the_units() {
        assert_eq!(
            parse("10x").unwrap_err(),
            "`10x` is not a duration like 30s, 15m, 24h or 7d (units: ms, s, m, h, d or w)"
        );
        assert_eq!(
            parse("90").unwrap_err(),
            "`90` has no unit: write 90s, 90m or 90h (units: ms, s, m, h, d or w)"
        );
        assert_eq!(
            parse_positive("0s").unwrap_err(),
            "`0s` must be longer than 0s"
        );
        assert!(!parse("1x").unwrap_err().contains("variations"));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_positive("0").unwrap_err(),
            "`0` must be longer than 0s"
        );
    }

    #[test]
    fn prints_compactly_and_reads_back() {
        for (d, text) in [
            (Duration::from_secs(366 * 86_400), "366d"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::ZERO, "0s"),
        ] {
            assert_eq!(format(d), text);
            assert_eq!(parse(text), Ok(d));
        }
    }
}
