//! Where a client's token comes from: a configured token, or one minted
//! from the local secret (see the trust model in [`crate::auth`]).

use crate::auth::{read_local_secret, Keys, LOCAL_TOKEN_TTL};
use crate::config::Settings;
use crate::protocol::Role;

use super::ClientError;

/// Hands out a token for each connection attempt.
#[derive(Clone)]
pub enum TokenSource {
    /// `--token` / `PYTAKE_TOKEN`.
    Static(String),
    /// Minted from the secret: a short-lived admin token, fresh each time.
    Local(Box<Keys>),
}

impl TokenSource {
    /// A configured token, else the configured secret, else the secret in
    /// the data dir. A token minted from a secret is an admin token for
    /// every tenant: it is only ever sent to a server on this machine, so
    /// that `--server https://elsewhere` cannot receive one to replay here.
    pub fn from_settings(settings: &Settings) -> Result<TokenSource, ClientError> {
        if let Some(token) = settings.token() {
            return Ok(TokenSource::Static(token.to_string()));
        }
        if !is_loopback(settings.server_url()) {
            return Err(ClientError::RemoteNeedsToken {
                server: settings.server_url().to_string(),
            });
        }
        let secret = settings
            .secret()
            .map(str::to_string)
            .or_else(|| read_local_secret(&settings.data_dir()))
            .ok_or_else(|| ClientError::NoCredentials {
                data_dir: settings.data_dir().display().to_string(),
            })?;
        Ok(TokenSource::Local(Box::new(Keys::with_settings(
            secret.as_bytes(),
            &settings.tokens(),
        ))))
    }

    /// A token to present now.
    pub fn token(&self) -> String {
        match self {
            TokenSource::Static(token) => token.clone(),
            TokenSource::Local(keys) => {
                let user = std::env::var("USER").unwrap_or_else(|_| "local".into());
                keys.mint_for(&format!("local:{user}"), None, Role::Admin, LOCAL_TOKEN_TTL)
            }
        }
    }
}

/// Whether a server URL names this machine: `localhost` or a loopback IP.
pub fn is_loopback(server: &str) -> bool {
    let Ok(url) = url::Url::parse(server) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_gets_a_minted_token() {
        for local in [
            "http://127.0.0.1:8080",
            "http://127.0.0.9:1",
            "http://[::1]:8080",
            "http://localhost:8080",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "https://rt.example.com",
            "http://10.0.0.5:8080",
            "http://localhost.example.com",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
        let mut settings = Settings::default();
        settings.auth.secret = Some("x".repeat(32));
        settings.client.server = "https://rt.example.com".into();
        assert!(matches!(
            TokenSource::from_settings(&settings),
            Err(ClientError::RemoteNeedsToken { .. })
        ));
        settings.client.token = Some("a.b.c".into());
        assert!(matches!(
            TokenSource::from_settings(&settings),
            Ok(TokenSource::Static(_))
        ));
    }
}
