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
    /// the data dir.
    pub fn from_settings(settings: &Settings) -> Result<TokenSource, ClientError> {
        if let Some(token) = settings.token() {
            return Ok(TokenSource::Static(token.to_string()));
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
