//! Checks that need more than a type: values that parse but cannot work.
//! Each error names where the value came from and suggests a fix.

use std::time::Duration;

use super::load::{ConfigError, Loaded};
use super::Settings;

/// Checks the settings of `sections`, the ones the command reads.
pub(super) fn check(s: &Settings, loaded: &Loaded, sections: &[&str]) -> Result<(), ConfigError> {
    let invalid = |path: &str, value: String, message: String| ConfigError::Invalid {
        at: loaded.origin(path).with_value(&super::mask_url(&value)),
        message,
    };
    let uses = |section: &str| sections.contains(&section);
    if uses("server") {
        listen_address(&s.server.listen)
            .map_err(|m| invalid("server.listen", s.server.listen.clone(), m))?;
    }
    if uses("client") {
        server_url(&s.client.server)
            .map_err(|m| invalid("client.server", s.client.server.clone(), m))?;
    }
    if uses("store") {
        if let Some(url) = &s.store.url {
            crate::server::storage::check_url(url)
                .map_err(|m| invalid("store.url", url.clone(), m))?;
        }
    }
    if uses("bus") {
        crate::server::bus::check_url(&s.bus.url)
            .map_err(|m| invalid("bus.url", s.bus.url.clone(), m))?;
    }
    if uses("gateway") {
        let g = &s.gateway;
        for (path, value) in [
            ("gateway.rate_limit", g.rate_limit as u64),
            ("gateway.max_frame_bytes", g.max_frame_bytes as u64),
            ("gateway.outbound_queue", g.outbound_queue as u64),
            (
                "gateway.max_unauthenticated_per_address",
                g.max_unauthenticated_per_address as u64,
            ),
            (
                "gateway.max_connections",
                g.max_connections.map_or(1, u64::from),
            ),
            (
                "gateway.max_connections_per_tenant",
                g.max_connections_per_tenant.map_or(1, u64::from),
            ),
        ] {
            if value == 0 {
                return Err(invalid(path, "0".into(), "must be at least 1".into()));
            }
        }
        for (path, value) in [
            ("gateway.auth_timeout", g.auth_timeout),
            ("gateway.ping_interval", g.ping_interval),
            ("gateway.idle_timeout", g.idle_timeout),
            ("gateway.write_stall", g.write_stall),
            ("gateway.presence_ttl", g.presence_ttl),
        ] {
            if value == Duration::ZERO {
                return Err(invalid(path, "0s".into(), "must be longer than 0s".into()));
            }
        }
    }
    if uses("queue") {
        let q = &s.queue;
        for (path, value) in [
            ("queue.concurrency", q.concurrency),
            ("queue.batch_size", q.batch_size),
            ("queue.max_attempts", q.max_attempts),
            ("queue.breaker_threshold", q.breaker_threshold),
        ] {
            if value == 0 {
                return Err(invalid(path, "0".into(), "must be at least 1".into()));
            }
        }
        for (path, value) in [
            ("queue.poll_interval", q.poll_interval),
            ("queue.lease", q.lease),
            ("queue.retry_base", q.retry_base),
            ("queue.retry_cap", q.retry_cap),
            ("queue.breaker_cooldown", q.breaker_cooldown),
            ("queue.http_timeout", q.http_timeout),
        ] {
            if value == Duration::ZERO {
                return Err(invalid(path, "0s".into(), "must be longer than 0s".into()));
            }
        }
        if q.http_timeout >= q.lease {
            return Err(invalid(
                "queue.http_timeout",
                super::duration::format(q.http_timeout),
                format!(
                    "must be shorter than queue.lease ({}): a run that outlives its lease runs twice",
                    super::duration::format(q.lease)
                ),
            ));
        }
    }
    if uses("webhooks") {
        check_webhooks(&s.webhooks, loaded)?;
    }
    // The channels' URLs are credentials: their errors name where the
    // value was set, never the value.
    for (section, path, url) in [
        ("alerts", "alerts.webhook_url", &s.alerts.webhook_url),
        ("slack", "slack.webhook_url", &s.slack.webhook_url),
    ] {
        if let (true, Some(url)) = (uses(section), url) {
            crate::server::alerts::notify::check_url(url).map_err(|m| ConfigError::Invalid {
                at: loaded.origin(path).with_value("…"),
                message: format!("{path} {m} (the value is a secret: not shown)"),
            })?;
        }
    }
    if uses("smtp") {
        check_smtp(&s.smtp, loaded)?;
    }
    if uses("auth") && s.auth.token_max_lifetime == Some(Duration::ZERO) {
        return Err(invalid(
            "auth.token_max_lifetime",
            "0s".into(),
            "must be longer than 0s, or `none` for no limit".into(),
        ));
    }
    Ok(())
}

/// A configured source must be able to check what it receives, and map
/// it to tenants that can exist.
fn check_webhooks(w: &super::WebhooksSettings, loaded: &Loaded) -> Result<(), ConfigError> {
    let invalid = |section: &str, message: String| ConfigError::Invalid {
        at: format!(
            "[webhooks.{section}] ({})",
            loaded.origin(&format!("webhooks.{section}"))
        ),
        message,
    };
    let tenants = |section: &str, map: &std::collections::BTreeMap<String, String>| {
        for (from, tenant) in map {
            crate::protocol::TenantId::parse(tenant)
                .map_err(|e| invalid(section, format!("tenants.\"{from}\" = \"{tenant}\": {e}")))?;
        }
        Ok(())
    };
    if let Some(wa) = &w.whatsapp {
        if wa.app_secret.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                "whatsapp",
                "app_secret (or app_secret_file) is required: without it no X-Hub-Signature-256 can be checked".into(),
            ));
        }
        tenants("whatsapp", &wa.tenants)?;
    }
    if let Some(evo) = &w.evolution {
        if evo.api_key.as_deref().is_none_or(str::is_empty) {
            return Err(invalid(
                "evolution",
                "api_key (or api_key_file) is required: without it anyone could post events".into(),
            ));
        }
        tenants("evolution", &evo.tenants)?;
    }
    Ok(())
}

/// With `host` set, the email channel is on: it must have somewhere to
/// send, addresses a server will take, and a login that is whole and not
/// sent in clear text across a network.
fn check_smtp(smtp: &super::SmtpSettings, loaded: &Loaded) -> Result<(), ConfigError> {
    let Some(host) = smtp.host.as_deref() else {
        return Ok(());
    };
    let invalid = |path: &str, value: &str, message: String| ConfigError::Invalid {
        at: loaded.origin(path).with_value(value),
        message,
    };
    if smtp.to.is_empty() {
        return Err(invalid(
            "smtp.host",
            host,
            "smtp.host is set but smtp.to names no recipient: add e.g. to = [\"oncall@example.com\"]"
                .into(),
        ));
    }
    if smtp.port == 0 {
        return Err(invalid(
            "smtp.port",
            "0",
            "must be a port from 1 to 65535 (587 for starttls, 465 for tls)".into(),
        ));
    }
    let address = |path: &str, text: &str| {
        text.parse::<lettre::message::Mailbox>()
            .map(|_| ())
            .map_err(|e| {
                invalid(
                    path,
                    text,
                    format!("`{text}` is not an email address ({e}): write e.g. oncall@example.com or \"Ops <ops@example.com>\""),
                )
            })
    };
    address("smtp.from", &smtp.from)?;
    for to in &smtp.to {
        address("smtp.to", to)?;
    }
    match (&smtp.username, &smtp.password) {
        (None, Some(_)) => {
            return Err(invalid(
                "smtp.password",
                "…",
                "smtp.password is set without smtp.username: set both, or neither for a server that takes mail without a login".into(),
            ))
        }
        (Some(user), None) => {
            return Err(invalid(
                "smtp.username",
                user,
                "smtp.username is set without a password: set smtp.password or smtp.password_file".into(),
            ))
        }
        (Some(_), Some(_)) if smtp.tls == super::SmtpTls::None && !is_loopback(host) => {
            return Err(invalid(
                "smtp.tls",
                "none",
                format!(
                    "a login with tls = \"none\" would send the password to {host} in clear text: use starttls or tls (none is for a relay on this host)"
                ),
            ))
        }
        _ => {}
    }
    Ok(())
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `HOST:PORT`, with a suggestion for the usual mistakes (a bare port, a
/// URL).
pub fn listen_address(listen: &str) -> Result<(), String> {
    let example = "127.0.0.1:8080, or 0.0.0.0:8080 for every interface";
    if let Ok(port) = listen.trim().parse::<u16>() {
        return Err(format!(
            "not an address: write HOST:PORT, e.g. 127.0.0.1:{port} (0.0.0.0:{port} for every interface)"
        ));
    }
    if listen.contains("://") {
        return Err(format!(
            "not an address: write HOST:PORT without a scheme, e.g. {example}"
        ));
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err(format!("not an address: write HOST:PORT, e.g. {example}"));
    };
    if host.is_empty() {
        return Err(format!("no host: write HOST:PORT, e.g. {example}"));
    }
    if port.parse::<u16>().is_err() {
        return Err(format!(
            "`{port}` is not a port (0 to 65535; 0 picks a free one)"
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL.
pub fn server_url(server: &str) -> Result<(), String> {
    let url = url::Url::parse(server)
        .map_err(|e| format!("not a URL ({e}): write e.g. http://127.0.0.1:8080"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://, e.g. http://127.0.0.1:8080".into());
    }
    Ok(())
}
