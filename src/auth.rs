//! Tokens: HS256 JWTs signed with the server's secret.
//!
//! Trust model: the secret is the root of trust. Whoever can read it can mint
//! any token, admin included. `pytake serve` writes a generated secret to
//! `<data-dir>/secret` with mode 0600, so on the server's machine the user that
//! runs the server (and root) can mint tokens; client subcommands with no token
//! configured do exactly that, minting a short-lived admin token for
//! themselves. Everyone else needs a token made with `pytake token create`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;

use crate::protocol::{Claims, Role};

/// Name of the generated secret inside the data dir.
pub const SECRET_FILE: &str = "secret";

/// Clock skew tolerated on `exp`, so a token is not refused because two
/// machines disagree by a few seconds.
const LEEWAY_SECONDS: u64 = 30;

/// Lifetime of the tokens client subcommands mint for themselves: the
/// gateway closes a connection when its token expires, and a long `tail`
/// should not reconnect often for that.
pub const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

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
}

/// Signing and verifying keys made from one secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Keys {
    pub fn new(secret: &[u8]) -> Keys {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Signs claims into a token.
    pub fn mint(&self, claims: &Claims) -> String {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Makes and signs claims valid from now for `ttl`.
    pub fn mint_for(
        &self,
        sub: &str,
        tenant_id: Option<&str>,
        role: Role,
        ttl: Duration,
    ) -> String {
        let iat = unix_now();
        self.mint(&Claims {
            sub: sub.to_string(),
            tenant_id: tenant_id.map(str::to_string),
            role,
            iat,
            exp: iat + ttl.as_secs(),
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
        match &claims.tenant_id {
            None if claims.role != Role::Admin => return Err(AuthError::MissingTenant),
            Some(tenant) => crate::protocol::rooms::validate_tenant(tenant)
                .map_err(|e| AuthError::Malformed(format!("tenant_id: {e}")))?,
            None => {}
        }
        Ok(claims)
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
    std::fs::create_dir_all(data_dir)?;
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

/// Reads the data dir's secret if it exists (client side: never creates it).
pub fn read_local_secret(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(secret_path(data_dir))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_fail_cleanly() {
        let keys = Keys::new(b"one");
        let token = keys.mint_for("ana", Some("acme"), Role::Viewer, Duration::from_secs(60));
        let claims = keys.verify(&token).unwrap();
        assert_eq!(claims.tenant_id.as_deref(), Some("acme"));
        assert_eq!(claims.role, Role::Viewer);

        let other = Keys::new(b"two");
        assert!(matches!(other.verify(&token), Err(AuthError::BadSignature)));

        let now = unix_now();
        let expired = keys.mint(&Claims {
            sub: "ana".into(),
            tenant_id: Some("acme".into()),
            role: Role::Viewer,
            iat: now - 7200,
            exp: now - 3600,
        });
        assert!(matches!(keys.verify(&expired), Err(AuthError::Expired)));

        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjB9.";
        assert!(matches!(keys.verify(none), Err(AuthError::BadAlgorithm)));

        let tenantless = keys.mint_for("svc", None, Role::Service, Duration::from_secs(60));
        assert!(matches!(
            keys.verify(&tenantless),
            Err(AuthError::MissingTenant)
        ));
    }

    #[test]
    fn secret_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        let b = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(secret_path(dir.path()))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(read_local_secret(dir.path()), Some(a));
    }
}
