//! Taking a JWT apart without trusting it, so that every way a token can be
//! wrong is said in words: which of its three parts is broken, or which
//! claim is missing or of the wrong type (the JWT library says only
//! `InvalidToken` or `JSON error: unknown variant ...`).

use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use serde_json::{Map, Value};

use crate::protocol::claims::Audience;
use crate::protocol::events::json_type;
use crate::protocol::rooms::validate_tenant;
use crate::protocol::{Claims, Role};

/// base64url as JWTs use it; `=` padding is tolerated since the signature
/// covers the text as sent anyway.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Longest piece of a claim's value quoted back in an error.
const SHOWN_MAX: usize = 40;

/// What is wrong with a token's shape, named by part or by claim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("expected three dot-separated parts (header.payload.signature), found {0}")]
    Parts(usize),
    #[error("the header (part 1) is not base64url")]
    HeaderEncoding,
    #[error("the header (part 1) is not a JSON object")]
    HeaderJson,
    #[error("the payload (part 2) is not base64url")]
    PayloadEncoding,
    #[error("the payload (part 2) is not a JSON object")]
    PayloadJson,
    /// The payload is JSON, but a claim is missing or has the wrong type.
    #[error("{claim}: {problem}")]
    Claim {
        claim: &'static str,
        problem: String,
    },
}

impl Malformed {
    /// Whether the text is not a JWT at all (as opposed to a JWT whose
    /// claims are not a pytake token's).
    pub fn is_structural(&self) -> bool {
        !matches!(self, Malformed::Claim { .. })
    }
}

/// A token split into its parts and decoded, nothing checked yet.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The header's `alg`, when it is a string.
    pub alg: Option<String>,
    /// The payload's claims as sent.
    pub payload: Map<String, Value>,
    /// `header.payload`: what the signature covers.
    pub signing_input: String,
    /// The third part, as sent.
    pub signature: String,
}

/// Splits and decodes a token. Fails only when the text is not a JWT:
/// not three parts, or a header or payload that is not base64url JSON.
pub fn parse(token: &str) -> Result<Unverified, Malformed> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(Malformed::Parts(parts.len()));
    };
    let header = object(header, Malformed::HeaderEncoding, Malformed::HeaderJson)?;
    let payload = object(payload, Malformed::PayloadEncoding, Malformed::PayloadJson)?;
    Ok(Unverified {
        alg: header
            .get("alg")
            .and_then(Value::as_str)
            .map(str::to_string),
        payload,
        signing_input: token[..token.len() - signature.len() - 1].to_string(),
        signature: signature.to_string(),
    })
}

fn object(
    part: &str,
    encoding: Malformed,
    json: Malformed,
) -> Result<Map<String, Value>, Malformed> {
    let bytes = BASE64URL.decode(part).map_err(|_| encoding)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(json),
    }
}

impl Unverified {
    /// The payload as pytake claims; the error names the claim and says
    /// what it should be. A tenant is checked for its form, not for whether
    /// the role allows its absence (see `AuthError::MissingTenant`).
    pub fn claims(&self) -> Result<Claims, Malformed> {
        let p = &self.payload;
        Ok(Claims {
            sub: required(p, "sub", "who the token is for", string)?,
            tenant_id: optional(p, "tenant_id", |v| {
                let tenant = string(v)?;
                validate_tenant(&tenant)?;
                Ok(tenant)
            })?,
            role: required(p, "role", "admin, operator, viewer or service", role)?,
            exp: required(p, "exp", "when it expires, in Unix seconds", seconds)?,
            iat: required(p, "iat", "when it was issued, in Unix seconds", seconds)?,
            nbf: optional(p, "nbf", seconds)?,
            aud: optional(p, "aud", audience)?,
            iss: optional(p, "iss", string)?,
        })
    }
}

fn required<T>(
    payload: &Map<String, Value>,
    claim: &'static str,
    meaning: &str,
    read: impl Fn(&Value) -> Result<T, String>,
) -> Result<T, Malformed> {
    match payload.get(claim) {
        None | Some(Value::Null) => Err(Malformed::Claim {
            claim,
            problem: format!("missing ({meaning})"),
        }),
        Some(v) => read(v).map_err(|problem| Malformed::Claim { claim, problem }),
    }
}

fn optional<T>(
    payload: &Map<String, Value>,
    claim: &'static str,
    read: impl Fn(&Value) -> Result<T, String>,
) -> Result<Option<T>, Malformed> {
    match payload.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => read(v)
            .map(Some)
            .map_err(|problem| Malformed::Claim { claim, problem }),
    }
}

fn string(v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("expected a string, got {}", shown(v)))
}

fn role(v: &Value) -> Result<Role, String> {
    string(v)?.parse()
}

fn seconds(v: &Value) -> Result<u64, String> {
    v.as_u64()
        .ok_or_else(|| format!("expected Unix seconds (a whole number), got {}", shown(v)))
}

fn audience(v: &Value) -> Result<Audience, String> {
    let wrong = || format!("expected a string or an array of strings, got {}", shown(v));
    match v {
        Value::String(s) => Ok(Audience::One(s.clone())),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
            .map(Audience::Many)
            .ok_or_else(wrong),
        _ => Err(wrong()),
    }
}

/// A value as a user would recognise it: its type and, when short, itself
/// (`a number (5)`, `a string ("soon")`).
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match v {
        Value::Null => "null".into(),
        Value::Array(_) | Value::Object(_) => json_type(v).into(),
        _ if text.chars().count() > SHOWN_MAX => json_type(v).into(),
        _ => format!("{} ({text})", json_type(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(header: &Value, payload: &Value) -> String {
        let part = |v: &Value| BASE64URL.encode(v.to_string());
        format!("{}.{}.c2ln", part(header), part(payload))
    }

    fn claims_error(payload: Value) -> String {
        parse(&token(&json!({"alg": "HS256"}), &payload))
            .unwrap()
            .claims()
            .unwrap_err()
            .to_string()
    }

    fn good() -> Value {
        json!({"sub": "ana", "tenant_id": "acme", "role": "viewer", "exp": 20, "iat": 10})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = good();
        v[key] = value;
        v
    }

    fn without(key: &str) -> Value {
        let mut v = good();
        v.as_object_mut().unwrap().remove(key);
        v
    }

    #[test]
    fn each_broken_part_is_named() {
        let h = BASE64URL.encode(r#"{"alg":"HS256"}"#);
        let p = BASE64URL.encode(r#"{"sub":"x"}"#);
        for (text, message) in [
            (
                "garbage",
                "expected three dot-separated parts (header.payload.signature), found 1",
            ),
            (
                "a.b.c.d",
                "expected three dot-separated parts (header.payload.signature), found 4",
            ),
            (
                "",
                "expected three dot-separated parts (header.payload.signature), found 1",
            ),
            ("!!.x.y", "the header (part 1) is not base64url"),
            (
                &format!("{}.x.y", BASE64URL.encode("not json")),
                "the header (part 1) is not a JSON object",
            ),
            (
                &format!("{}.x.y", BASE64URL.encode("[1]")),
                "the header (part 1) is not a JSON object",
            ),
            (
                &format!("{h}.!!.y"),
                "the payload (part 2) is not base64url",
            ),
            (
                &format!("{h}.{}.y", BASE64URL.encode("{")),
                "the payload (part 2) is not a JSON object",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.to_string(), message, "{text}");
            assert!(e.is_structural());
        }
        let ok = parse(&format!("{h}.{p}.sig")).unwrap();
        assert_eq!(ok.alg.as_deref(), Some("HS256"));
        assert_eq!(ok.signing_input, format!("{h}.{p}"));
        assert_eq!(ok.signature, "sig");
        // Padding is tolerated.
        let padded = base64::engine::general_purpose::URL_SAFE.encode(r#"{"sub":"x"}"#);
        assert!(padded.ends_with('='));
        assert_eq!(
            parse(&format!("{h}.{padded}.sig")).unwrap().payload["sub"],
            "x"
        );
    }

    #[test]
    fn each_bad_claim_is_named_with_what_is_accepted() {
        for (payload, message) in [
            (
                with("role", json!("superuser")),
                "role: unknown role `superuser`: expected admin, operator, viewer or service",
            ),
            (
                with("role", json!(1)),
                "role: expected a string, got a number (1)",
            ),
            (
                without("role"),
                "role: missing (admin, operator, viewer or service)",
            ),
            (
                without("iat"),
                "iat: missing (when it was issued, in Unix seconds)",
            ),
            (
                without("exp"),
                "exp: missing (when it expires, in Unix seconds)",
            ),
            (
                with("exp", json!("tomorrow")),
                "exp: expected Unix seconds (a whole number), got a string (\"tomorrow\")",
            ),
            (
                with("exp", json!(-5)),
                "exp: expected Unix seconds (a whole number), got a number (-5)",
            ),
            (
                with("nbf", json!(1.5)),
                "nbf: expected Unix seconds (a whole number), got a number (1.5)",
            ),
            (without("sub"), "sub: missing (who the token is for)"),
            (
                with("sub", json!({"name": "ana"})),
                "sub: expected a string, got an object",
            ),
            (
                with("tenant_id", json!("acme corp")),
                "tenant_id: bad tenant id `acme corp`: 1 to 128 characters of A-Z a-z 0-9 _ - . @ +",
            ),
            (
                with("aud", json!(["a", 1])),
                "aud: expected a string or an array of strings, got an array",
            ),
            (
                with("iss", json!(true)),
                "iss: expected a string, got a boolean (true)",
            ),
            (
                with("iss", serde_json::from_str(&"9".repeat(50)).unwrap()),
                "iss: expected a string, got a number",
            ),
        ] {
            assert_eq!(claims_error(payload), message);
        }
    }

    #[test]
    fn good_claims_read_back() {
        let unverified = parse(&token(
            &json!({"alg": "HS256"}),
            &json!({"sub": "svc", "role": "admin", "exp": 20, "iat": 10, "tenant_id": null,
                    "aud": ["a", "b"], "iss": "ops", "nbf": 11, "extra": {"kept": true}}),
        ))
        .unwrap();
        assert_eq!(
            unverified.claims().unwrap(),
            Claims {
                sub: "svc".into(),
                tenant_id: None,
                role: Role::Admin,
                exp: 20,
                iat: 10,
                nbf: Some(11),
                aud: Some(Audience::Many(vec!["a".into(), "b".into()])),
                iss: Some("ops".into()),
            }
        );
    }
}
