//! Tokens: HS256 JWTs signed with the server's secret.
//!
//! Trust model: the secret is the root of trust. Whoever can read it can mint
//! any token, admin included. `pytake serve` writes a generated secret to
//! `<data-dir>/secret` with mode 0600, so on the server's machine the user that
//! runs the server (and root) can mint tokens; client subcommands with no token
//! configured do exactly that, minting a short-lived admin token for
//! themselves. Everyone else needs a token made with `pytake token create`.
//!
//! The data dir is created 0700 and the database 0600, since both hold every
//! tenant's events; an existing, looser data dir is warned about, not changed.
//!
//! Beyond signature and `exp`, [`Keys::verify`] refuses a future `nbf` or
//! `iat` (past the leeway), a lifetime (`exp - iat`) over
//! `token_max_lifetime`, and, when configured, a foreign `aud` or `iss`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;

use crate::config::TokenSettings;
use crate::protocol::claims::Audience;
use crate::protocol::{Claims, Role};

/// Name of the generated secret inside the data dir.
pub const SECRET_FILE: &str = "secret";

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
    #[error("token algorithm not accepted (only HS256)")]
    BadAlgorithm,
    #[error("token is malformed: {0}")]
    Malformed(String),
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
    validation: Validation,
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
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = rules.leeway.as_secs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        // `verify` checks these itself, to say what is wrong.
        validation.validate_aud = false;
        validation.validate_nbf = false;
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            rules: rules.clone(),
        }
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
            sub: sub.to_string(),
            tenant_id: tenant_id.map(str::to_string),
            role,
            iat,
            exp: iat + ttl.as_secs(),
            nbf: None,
            aud: self.rules.audience.clone().map(Audience::One),
            iss: self.rules.issuer.clone(),
        })
    }

    /// Checks a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        use jsonwebtoken::errors::ErrorKind;
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::BadAlgorithm
                }
                _ => {
                    // `alg: none` fails header parsing: say so plainly.
                    if header_alg(token).is_some_and(|a| !a.eq_ignore_ascii_case("HS256")) {
                        AuthError::BadAlgorithm
                    } else {
                        AuthError::Malformed(e.to_string())
                    }
                }
            }
        })?;
        let claims = data.claims;
        self.check_rules(&claims, unix_now())?;
        match &claims.tenant_id {
            None if claims.role != Role::Admin => return Err(AuthError::MissingTenant),
            Some(tenant) => crate::protocol::rooms::validate_tenant(tenant)
                .map_err(|e| AuthError::Malformed(format!("tenant_id: {e}")))?,
            None => {}
        }
        Ok(claims)
    }

    /// The checks beyond signature and `exp`: `nbf`, `iat`, lifetime,
    /// issuer and audience, at Unix time `now`.
    fn check_rules(&self, claims: &Claims, now: u64) -> Result<(), AuthError> {
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

fn header_alg(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header.trim_end_matches('='))
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("alg")?.as_str().map(str::to_string)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Path of the generated secret in a data dir.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

/// Reads the data dir's secret, creating it (32 random bytes, hex, mode 0600)
/// on first start.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<String> {
    let path = secret_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_private_dir(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(secret)
        }
        // Another process won the race: use its secret.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_string())
        }
        Err(e) => Err(e),
    }
}

/// Creates `dir` and its missing parents with mode 0700: the data dir holds
/// the secret and every tenant's events. An existing directory keeps its
/// mode (the server warns about it, see [`open_data_dir`]).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The server's start: creates the data dir 0700, or, when it exists and
/// other local users may enter it, warns with the command that fixes it. It
/// never changes an existing directory's mode behind the operator's back.
pub fn open_data_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return create_private_dir(dir);
    }
    if let Some(mode) = shared_mode(dir) {
        tracing::warn!(
            path = %dir.display(),
            mode = %format!("{mode:04o}"),
            "data dir is open to other local users, who may read every tenant's events: \
             run `chmod 700 {}`",
            shell_word(dir)
        );
    }
    Ok(())
}

/// The permission bits of `path` when its group or others have any
/// access; `None` when only the owner has, or it cannot be read.
pub fn shared_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// `path` as one shell word, for the commands warnings suggest.
pub fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Reads the data dir's secret if it exists (client side: never creates it).
pub fn read_local_secret(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(secret_path(data_dir))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests;
