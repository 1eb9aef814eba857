//! `pytake token verify TOKEN` (Centrifugo's `checktoken`): what a token
//! says and whether this server would accept it, without a running server.

use std::io::{Read, Write};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat};
use clap::Args;
use serde::Serialize;
use serde_json::{Map, Value};

use super::resolve_secret;
use crate::auth::{parse, unix_now, AuthError, Inspection, Keys};
use crate::cli::exit::UsageError;
use crate::cli::output::Output;
use crate::cli::output::OutputFormat;
use crate::client::ClientError;
use crate::config::flags::AuthFlags;
use crate::config::{duration, Settings, TokenSettings};

pub const EXAMPLES: &str = "\
Examples:
  pytake token verify eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi...
  # from stdin, so the token stays out of shell history
  pytake token verify - < token.txt
  # against another server's secret and rules
  PYTAKE_SECRET=... PYTAKE_TOKEN_AUDIENCE=pytake pytake token verify - --output json

Exit status: 0 valid, 1 failure, 2 not a token at all (or no secret to check
with), 4 not valid here (signature, expiry, claims or token rules)";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The token, or - to read it from stdin (keeps it out of shell history)
    #[arg(value_name = "TOKEN")]
    pub jwt: String,

    #[command(flatten)]
    pub auth: AuthFlags,

    #[command(flatten)]
    pub output: Output,
}

/// Prints the report; a token that is not valid is then an `Unauthorized`
/// error (exit 4) naming the first problem, a text that is not a JWT a usage
/// error (exit 2).
pub fn run(args: VerifyArgs, settings: Settings) -> anyhow::Result<()> {
    let format = OutputFormat::resolve(args.output.output);
    let token = match args.jwt.as_str() {
        "-" => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        }
        given => given.to_string(),
    };
    // Pasted from a header, a token may come with its scheme.
    let token = token.trim();
    let token = token.strip_prefix("Bearer ").unwrap_or(token).trim();
    if token.is_empty() {
        return Err(UsageError("no token given (stdin was empty)".into()).into());
    }
    // Not a JWT at all: say so before asking for a secret.
    parse(token).map_err(|e| UsageError(AuthError::Malformed(e).to_string()))?;
    let secret = resolve_secret(&settings)?;
    let keys = Keys::with_settings(secret.as_bytes(), &settings.tokens());
    let now = unix_now();
    let inspection = keys
        .inspect_at(token, now)
        .map_err(|e| UsageError(AuthError::Malformed(e).to_string()))?;
    let text = match format {
        OutputFormat::Json => serde_json::to_string(&Report::new(&inspection))? + "\n",
        _ => table(&inspection, keys.rules(), now),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    match inspection.problem() {
        None => Ok(()),
        Some(problem) => Err(ClientError::Unauthorized(problem.to_string()).into()),
    }
}

/// `--output json`: absolute times only, so the same token gives the same
/// line at any time of checking.
#[derive(Debug, Serialize)]
struct Report<'a> {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
    signature: Check,
    rules: Check,
    claims: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl Check {
    fn of(result: Result<(), &AuthError>) -> Check {
        Check {
            ok: result.is_ok(),
            problem: result.err().map(ToString::to_string),
        }
    }
}

impl<'a> Report<'a> {
    fn new(i: &'a Inspection) -> Report<'a> {
        let claims = &i.token.payload;
        let time = |claim: &str| claims.get(claim).and_then(Value::as_u64).and_then(rfc3339);
        Report {
            valid: i.problem().is_none(),
            problem: i.problem().map(ToString::to_string),
            signature: Check::of(i.signature.as_ref().map(|_| ())),
            rules: Check::of(rules_result(i)),
            claims,
            issued_at: time("iat"),
            not_before: time("nbf"),
            expires_at: time("exp"),
        }
    }
}

/// The claims and the rules as one check: a claim of the wrong type is a
/// rule this server's tokens follow.
fn rules_result(i: &Inspection) -> Result<(), &AuthError> {
    i.claims.as_ref()?;
    i.rules.as_ref().map(|_| ())
}

/// Two columns, claim or check and its value, at Unix time `now`.
fn table(i: &Inspection, rules: &TokenSettings, now: u64) -> String {
    let claims = &i.token.payload;
    let text = |claim: &str, absent: &str| match claims.get(claim) {
        None | Some(Value::Null) => absent.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    };
    let time = |claim: &str| match claims.get(claim) {
        Some(v) => v
            .as_u64()
            .and_then(rfc3339)
            .unwrap_or_else(|| v.to_string()),
        None => "(none)".into(),
    };
    let mut rows: Vec<(&str, String)> = vec![
        (
            "valid",
            match i.problem() {
                None => "yes".into(),
                Some(problem) => format!("no: {problem}"),
            },
        ),
        ("sub", text("sub", "(none)")),
        ("tenant", text("tenant_id", "(none: every tenant)")),
        ("role", text("role", "(none)")),
        ("issued", time("iat")),
    ];
    if claims.get("nbf").is_some_and(|v| !v.is_null()) {
        rows.push(("not before", time("nbf")));
    }
    let expires = match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) => format!("{} ({})", time("exp"), relative(exp, now)),
        None => time("exp"),
    };
    rows.push(("expires", expires));
    rows.push(("audience", text("aud", "(none)")));
    rows.push(("issuer", text("iss", "(none)")));
    rows.push((
        "signature",
        match &i.signature {
            Ok(()) => "ok: signed with this server's secret".into(),
            Err(e) => format!("bad: {e}"),
        },
    ));
    rows.push((
        "rules",
        match rules_result(i) {
            Ok(()) => format!("ok: {}", describe(rules)),
            Err(e) => format!("bad: {e}"),
        },
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// This server's token rules in a line, so "ok" says what was checked.
fn describe(rules: &TokenSettings) -> String {
    let mut parts = vec![format!("leeway {}", duration::format(rules.leeway))];
    parts.push(match rules.max_lifetime {
        Some(max) => format!("max lifetime {}", duration::format(max)),
        None => "no max lifetime".into(),
    });
    if let Some(aud) = &rules.audience {
        parts.push(format!("audience `{aud}`"));
    }
    if let Some(iss) = &rules.issuer {
        parts.push(format!("issuer `{iss}`"));
    }
    format!(
        "accepted by this server's token rules ({})",
        parts.join(", ")
    )
}

/// `expires in 23h59m` or `expired 2h ago`, to the minute past a minute.
fn relative(exp: u64, now: u64) -> String {
    let (secs, future) = match exp.checked_sub(now) {
        Some(left) => (left, true),
        None => (now - exp, false),
    };
    let secs = if secs >= 60 { secs - secs % 60 } else { secs };
    let span = duration::format(Duration::from_secs(secs));
    if future {
        format!("expires in {span}")
    } else {
        format!("expired {span} ago")
    }
}

/// Unix seconds as `2026-05-01T10:00:00Z`.
fn rfc3339(secs: u64) -> Option<String> {
    DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Claims, Role};

    const NOW: u64 = 1_800_000_000; // 2027-01-15T08:00:00Z

    fn claims() -> Claims {
        Claims {
            sub: "ana".into(),
            tenant_id: Some("acme".into()),
            role: Role::Viewer,
            iat: NOW - 60,
            exp: NOW + 86_400 - 60,
            nbf: None,
            aud: None,
            iss: None,
        }
    }

    #[test]
    fn a_valid_token_reads_as_two_columns() {
        let keys = Keys::new(b"one");
        let i = keys.inspect_at(&keys.mint(&claims()), NOW).unwrap();
        assert_eq!(
            table(&i, keys.rules(), NOW),
            "valid      yes\n\
             sub        ana\n\
             tenant     acme\n\
             role       viewer\n\
             issued     2027-01-15T07:59:00Z\n\
             expires    2027-01-16T07:59:00Z (expires in 23h59m)\n\
             audience   (none)\n\
             issuer     (none)\n\
             signature  ok: signed with this server's secret\n\
             rules      ok: accepted by this server's token rules (leeway 30s, max lifetime 366d)\n"
        );
        assert_eq!(
            serde_json::to_string(&Report::new(&i)).unwrap(),
            r#"{"valid":true,"signature":{"ok":true},"rules":{"ok":true},"claims":{"exp":1800086340,"iat":1799999940,"role":"viewer","sub":"ana","tenant_id":"acme"},"issued_at":"2027-01-15T07:59:00Z","expires_at":"2027-01-16T07:59:00Z"}"#
        );
    }

    #[test]
    fn every_problem_shows_with_the_claims() {
        let keys = Keys::with_settings(
            b"one",
            &TokenSettings {
                audience: Some("pytake".into()),
                ..TokenSettings::default()
            },
        );
        let token = Keys::new(b"two").mint(&Claims {
            tenant_id: None,
            role: Role::Admin,
            iat: NOW - 3 * 3600,
            exp: NOW - 2 * 3600 + 59,
            nbf: Some(NOW - 3 * 3600),
            aud: Some(crate::protocol::claims::Audience::Many(vec![
                "crm".into(),
                "erp".into(),
            ])),
            ..claims()
        });
        let i = keys.inspect_at(&token, NOW).unwrap();
        assert_eq!(
            table(&i, keys.rules(), NOW),
            "valid       no: token signature does not match this server's secret\n\
             sub         ana\n\
             tenant      (none: every tenant)\n\
             role        admin\n\
             issued      2027-01-15T05:00:00Z\n\
             not before  2027-01-15T05:00:00Z\n\
             expires     2027-01-15T06:00:59Z (expired 1h59m ago)\n\
             audience    crm, erp\n\
             issuer      (none)\n\
             signature   bad: token signature does not match this server's secret\n\
             rules       bad: token expired\n"
        );
    }

    #[test]
    fn claims_of_the_wrong_type_are_shown_as_sent() {
        let keys = Keys::new(b"one");
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &serde_json::json!({"sub": "x", "role": "superuser", "iat": "now", "exp": NOW + 30}),
            &jsonwebtoken::EncodingKey::from_secret(b"one"),
        )
        .unwrap();
        let i = keys.inspect_at(&token, NOW).unwrap();
        let table = table(&i, keys.rules(), NOW);
        assert!(table.contains("\nrole       superuser\n"), "{table}");
        assert!(table.contains("\nissued     \"now\"\n"), "{table}");
        assert!(
            table.contains("\nexpires    2027-01-15T08:00:30Z (expires in 30s)\n"),
            "{table}"
        );
        assert!(table.ends_with(
            "rules      bad: token is malformed: role: unknown role `superuser`: \
             expected admin, operator, viewer or service\n"
        ));
    }

    #[test]
    fn relative_times_read_to_the_minute() {
        assert_eq!(relative(NOW + 86_399, NOW), "expires in 23h59m");
        assert_eq!(relative(NOW + 45, NOW), "expires in 45s");
        assert_eq!(relative(NOW, NOW), "expires in 0s");
        assert_eq!(relative(NOW - 7200, NOW), "expired 2h ago");
        assert_eq!(relative(NOW - 400 * 86_400, NOW), "expired 400d ago");
    }
}
