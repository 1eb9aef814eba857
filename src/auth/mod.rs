//! Tokens: HS256 JWTs signed with the server's secret.
//!
//! Trust model: the secret is the root of trust. Whoever can read it can mint
//! any token, admin included. `pytake serve` writes a generated secret to
//! `<data-dir>/secret` with mode 0600, so on the server's machine the user that
//! runs the server (and root) can mint tokens; client subcommands with no token
//! configured do exactly that, minting a short-lived admin token for
//! themselves. Everyone else needs a token made with `pytake token create`,
//! which reads the secret but never creates one (a secret made anywhere but
//! by the server signs tokens the server refuses).
//!
//! The data dir is created 0700 and the database 0600, since both hold every
//! tenant's events; an existing, looser data dir is warned about, not changed.
//!
//! Beyond signature and `exp`, [`Keys::verify`] refuses a future `nbf` or
//! `iat` (past the leeway), a lifetime (`exp - iat`) over
//! `token_max_lifetime`, and, when configured, a foreign `aud` or `iss`.
//! Every refusal says what was wrong in words a user can act on: which part
//! of the token is broken, which claim is missing or of the wrong type.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header};

use crate::config::TokenSettings;
use crate::protocol::claims::Audience;
use crate::protocol::{Claims, Role};

mod jwt;
mod secret;

pub use jwt::{parse, Malformed, Unverified};
pub use secret::{
    create_private_dir, load_or_create_secret, open_data_dir, read_local_secret, read_secret,
    secret_path, shared_mode, shell_word, SecretError, MIN_SECRET_BYTES, SECRET_FILE,
};

/// Default `token_leeway`: clock skew tolerated on `exp`, `nbf` and `iat`, so
/// a token is not refused because two machines disagree by a few seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Default `token_max_lifetime`: a year and a day, so a yearly service token
/// fits and a leaked one is not good forever.
pub const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(366 * 86_400);

/// Lifetime of the tokens client subcommands mint for themselves: the
/// gateway closes a connection when its token expires, and a long `tail`
/// should not reconnect often for that.
pub const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

/// Longest piece of a token's `aud` or `iss` quoted back in an error.
const QUOTE_MAX: usize = 64;

/// Why a token was refused; the text is shown to the client.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("token expired")]
    Expired,
    #[error("token signature does not match this server's secret")]
    BadSignature,
    /// The header's `alg`, when there is one.
    #[error("{}", algorithm_problem(.0.as_deref()))]
    BadAlgorithm(Option<String>),
    #[error("token is malformed: {0}")]
    Malformed(#[from] Malformed),
    #[error("token without tenant_id must have role admin")]
    MissingTenant,
    #[error("token not valid before {}", rfc3339(*.0))]
    NotYetValid(u64),
    #[error("token issued in the future ({})", rfc3339(*.0))]
    IssuedInFuture(u64),
    #[error("token lifetime {} is over the limit of {}", compact(*lifetime), compact(*max))]
    TooLong { lifetime: Duration, max: Duration },
    #[error("{}", audience_problem(found.as_ref(), expected))]
    WrongAudience {
        found: Option<Audience>,
        expected: String,
    },
    #[error("{}", issuer_problem(found.as_deref(), expected))]
    WrongIssuer {
        found: Option<String>,
        expected: String,
    },
}

/// Signing and verifying keys made from one secret, with the server's token
/// rules.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    rules: TokenSettings,
}

impl Keys {
    /// Keys with the default token rules (no audience or issuer).
    pub fn new(secret: &[u8]) -> Keys {
        Keys::with_settings(secret, &TokenSettings::default())
    }

    /// Keys that check tokens by `rules` and put its audience and issuer in
    /// the tokens they mint.
    pub fn with_settings(secret: &[u8], rules: &TokenSettings) -> Keys {
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            rules: rules.clone(),
        }
    }

    /// The token rules these keys check by.
    pub fn rules(&self) -> &TokenSettings {
        &self.rules
    }

    /// Signs claims into a token.
    pub fn mint(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Makes and signs claims valid from now for `ttl` (at most
    /// `token_max_lifetime`), with the configured audience and issuer.
    pub fn mint_for(
        &self,
        sub: &str,
        tenant_id: Option<&str>,
        role: Role,
        ttl: Duration,
    ) -> String {
        let ttl = self.rules.max_lifetime.map_or(ttl, |max| ttl.min(max));
        let iat = unix_now();
        self.mint(&Claims {
            aud: self.rules.audience.clone().map(Audience::One),
            iss: self.rules.issuer.clone(),
            ..Claims::new(sub, tenant_id, role, iat, iat + ttl.as_secs())
        })
    }

    /// Checks a token and returns its claims. Checks run in this order,
    /// and the first failure is the error: shape (three base64url JSON
    /// parts), algorithm, signature, claims (types, tenant), then time and
    /// the configured rules.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.inspect_at(token, unix_now())?.verdict()
    }

    /// Everything this server thinks of a token at Unix time `now`, each
    /// check made even when an earlier one failed (`pytake token verify`
    /// shows them all). Fails only when the text is not a JWT at all.
    pub fn inspect_at(&self, token: &str, now: u64) -> Result<Inspection, Malformed> {
        let token = jwt::parse(token)?;
        let signature = self.check_signature(&token);
        let claims =
            token
                .claims()
                .map_err(AuthError::Malformed)
                .and_then(|c| match &c.tenant_id {
                    None if c.role != Role::Admin => Err(AuthError::MissingTenant),
                    _ => Ok(c),
                });
        let rules = match &claims {
            Ok(claims) => self.check_rules(claims, now),
            Err(_) => Ok(()),
        };
        Ok(Inspection {
            token,
            signature,
            claims,
            rules,
        })
    }

    fn check_signature(&self, token: &Unverified) -> Result<(), AuthError> {
        // Algorithm names are case-sensitive (RFC 7515, 4.1.1).
        if token.alg.as_deref() != Some("HS256") {
            return Err(AuthError::BadAlgorithm(token.alg.clone()));
        }
        let signed = jsonwebtoken::crypto::verify(
            &token.signature,
            token.signing_input.as_bytes(),
            &self.decoding,
            Algorithm::HS256,
        );
        match signed {
            Ok(true) => Ok(()),
            _ => Err(AuthError::BadSignature),
        }
    }

    /// The checks beyond signature and claim types: `exp`, `nbf`, `iat`,
    /// lifetime, issuer and audience, at Unix time `now`, each with
    /// `token_leeway` of clock skew.
    fn check_rules(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
        if claims.exp.saturating_add(self.rules.leeway.as_secs()) < now {
            return Err(AuthError::Expired);
        }
        let horizon = now.saturating_add(self.rules.leeway.as_secs());
        if let Some(nbf) = claims.nbf.filter(|nbf| *nbf > horizon) {
            return Err(AuthError::NotYetValid(nbf));
        }
        if claims.iat > horizon {
            return Err(AuthError::IssuedInFuture(claims.iat));
        }
        if let Some(max) = self.rules.max_lifetime {
            let lifetime = Duration::from_secs(claims.exp.saturating_sub(claims.iat));
            if lifetime > max {
                return Err(AuthError::TooLong { lifetime, max });
            }
        }
        if let Some(expected) = &self.rules.issuer {
            if claims.iss.as_ref() != Some(expected) {
                return Err(AuthError::WrongIssuer {
                    found: claims.iss.clone(),
                    expected: expected.clone(),
                });
            }
        }
        if let Some(expected) = &self.rules.audience {
            if !claims
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(expected))
            {
                return Err(AuthError::WrongAudience {
                    found: claims.aud.clone(),
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A token taken apart and judged: what `pytake token verify` prints.
#[derive(Debug)]
pub struct Inspection {
    /// The parts as sent, claims untyped.
    pub token: Unverified,
    /// Algorithm and signature against this server's secret.
    pub signature: Result<(), AuthError>,
    /// The claims typed, or which one is wrong.
    pub claims: Result<Claims, AuthError>,
    /// Time and the configured rules; `Ok` when the claims could not be read.
    pub rules: Result<(), AuthError>,
}

impl Inspection {
    /// The first failure, in the order [`Keys::verify`] checks; `None` when
    /// the token is valid.
    pub fn problem(&self) -> Option<&AuthError> {
        self.signature
            .as_ref()
            .err()
            .or(self.claims.as_ref().err())
            .or(self.rules.as_ref().err())
    }

    /// The claims if every check passed, else the first failure.
    pub fn verdict(self) -> Result<Claims, AuthError> {
        self.signature?;
        let claims = self.claims?;
        self.rules?;
        Ok(claims)
    }
}

/// Refuses a lifetime a server with `rules` would refuse
/// (`token_max_lifetime`), so `pytake token create` does not mint it.
pub fn check_ttl(rules: &TokenSettings, ttl: Duration) -> Result<(), AuthError> {
    match rules.max_lifetime {
        Some(max) if ttl > max => Err(AuthError::TooLong { lifetime: ttl, max }),
        _ => Ok(()),
    }
}

/// Unix seconds as `2026-05-01T10:00:00Z`.
fn rfc3339(secs: u64) -> String {
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => format!("{secs} (Unix seconds)"),
    }
}

/// A duration as `900d`, `1d 2h` or `45s`: humantime would say "2years
/// 5months 17days 9h" for 900 days.
fn compact(d: Duration) -> String {
    let secs = d.as_secs();
    let parts: Vec<String> = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .iter()
        .scan(secs, |left, &(unit, name)| {
            let n = *left / unit;
            *left %= unit;
            Some((n, name))
        })
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    if parts.is_empty() {
        "0s".into()
    } else {
        parts.join(" ")
    }
}

/// A value from a token, quoted and cut short.
fn quote(value: &str) -> String {
    match value.char_indices().nth(QUOTE_MAX) {
        Some((end, _)) => format!("`{}…`", &value[..end]),
        None => format!("`{value}`"),
    }
}

fn audience_problem(found: Option<&Audience>, expected: &str) -> String {
    match found {
        None => format!("token has no audience (aud); this server expects `{expected}`"),
        Some(Audience::One(one)) => {
            format!("token audience {} is not `{expected}`", quote(one))
        }
        Some(Audience::Many(many)) if many.is_empty() => {
            format!("token audience is empty; this server expects `{expected}`")
        }
        Some(Audience::Many(many)) => {
            let shown: Vec<String> = many.iter().take(4).map(|a| quote(a)).collect();
            let more = if many.len() > 4 { ", …" } else { "" };
            format!(
                "token audience [{}{more}] does not include `{expected}`",
                shown.join(", ")
            )
        }
    }
}

fn issuer_problem(found: Option<&str>, expected: &str) -> String {
    match found {
        None => format!("token has no issuer (iss); this server expects `{expected}`"),
        Some(iss) => format!("token issuer {} is not `{expected}`", quote(iss)),
    }
}

fn algorithm_problem(found: Option<&str>) -> String {
    match found {
        None => "token header has no algorithm (alg); only HS256 is accepted".into(),
        Some(alg) => format!(
            "token algorithm {} is not accepted (only HS256)",
            quote(alg)
        ),
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
