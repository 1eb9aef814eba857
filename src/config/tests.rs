use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let s = Settings::load(&Sources::default()).unwrap();
    assert_eq!(s.listen, "127.0.0.1:8080");
    assert_eq!(s.server, "http://127.0.0.1:8080");
    assert_eq!(s.bus, "memory");
    assert_eq!(s.data_dir, default_data_dir());
    assert_eq!(
        s.store,
        format!(
            "sqlite://{}",
            default_data_dir().join("pytake.db").display()
        )
    );
    assert_eq!(s.secret, None);
    assert_eq!(s.gateway, GatewaySettings::default());
    assert_eq!(s.tokens, TokenSettings::default());
    assert_eq!(s.tokens.leeway, Duration::from_secs(30));
    assert_eq!(
        s.tokens.max_lifetime,
        Some(Duration::from_secs(366 * 86_400))
    );
    assert_eq!(
        humantime::parse_duration(DEFAULT_MAX_LIFETIME_TEXT).ok(),
        Some(crate::auth::DEFAULT_MAX_LIFETIME)
    );
}

#[test]
fn file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "listen = \"0.0.0.0:9000\"\ndata_dir = \"/srv/pytake\"\nrate_limit = 50\nauth_timeout = \"3s\"\n\
         token_leeway = \"5s\"\ntoken_audience = \"pytake\"\ntoken_issuer = \"https://id.example.com\"\n\
         token_max_lifetime = \"30d\"\n",
    );
    let s = Settings::load(&Sources {
        file: Some((path, true)),
        ..Sources::default()
    })
    .unwrap();
    assert_eq!(s.listen, "0.0.0.0:9000");
    assert_eq!(s.data_dir, PathBuf::from("/srv/pytake"));
    assert_eq!(s.store, "sqlite:///srv/pytake/pytake.db");
    assert_eq!(s.gateway.rate_limit_per_minute, 50);
    assert_eq!(s.gateway.auth_timeout, Duration::from_secs(3));
    assert_eq!(
        s.tokens,
        TokenSettings {
            leeway: Duration::from_secs(5),
            audience: Some("pytake".into()),
            issuer: Some("https://id.example.com".into()),
            max_lifetime: Some(Duration::from_secs(30 * 86_400)),
        }
    );
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "listen = \"0.0.0.0:9000\"\nsecret = \"from-file\"\ntoken_audience = \"file\"\n\
         token_issuer = \"file\"\n",
    );
    let s = Settings::load(&Sources {
        file: Some((path, false)),
        env: env(&[
            ("PYTAKE_LISTEN", "127.0.0.1:7000"),
            ("PYTAKE_DATA_DIR", "/tmp/x"),
            ("PYTAKE_RATE_LIMIT", "7"),
            ("PYTAKE_TOKEN_AUDIENCE", "env"),
            ("PYTAKE_TOKEN_LEEWAY", "0s"),
            ("PYTAKE_TOKEN_MAX_LIFETIME", "none"),
            ("PYTAKE_UNRELATED", "ignored"),
        ]),
        ..Sources::default()
    })
    .unwrap();
    assert_eq!(s.listen, "127.0.0.1:7000");
    assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(s.secret.as_deref(), Some("from-file"));
    assert_eq!(s.gateway.rate_limit_per_minute, 7);
    assert_eq!(s.tokens.audience.as_deref(), Some("env"));
    assert_eq!(s.tokens.issuer.as_deref(), Some("file"));
    assert_eq!(s.tokens.leeway, Duration::ZERO);
    assert_eq!(s.tokens.max_lifetime, None);
}

#[test]
fn flags_override_env() {
    let mut sources = Sources {
        env: env(&[
            ("PYTAKE_LISTEN", "127.0.0.1:7000"),
            ("PYTAKE_TOKEN", "env-token"),
            ("PYTAKE_TOKEN_ISSUER", "env"),
            ("PYTAKE_TOKEN_MAX_LIFETIME", "1d"),
        ]),
        ..Sources::default()
    };
    sources.flag("listen", Some("127.0.0.1:0"));
    sources.flag("token_issuer", Some("flag"));
    sources.flag("token_leeway", Some("2s"));
    sources.flag("token_max_lifetime", Some("12h"));
    sources.flag("server", None::<String>);
    let s = Settings::load(&sources).unwrap();
    assert_eq!(s.listen, "127.0.0.1:0");
    assert_eq!(s.token.as_deref(), Some("env-token"));
    assert_eq!(s.server, "http://127.0.0.1:8080");
    assert_eq!(s.tokens.issuer.as_deref(), Some("flag"));
    assert_eq!(s.tokens.leeway, Duration::from_secs(2));
    assert_eq!(s.tokens.max_lifetime, Some(Duration::from_secs(12 * 3600)));
}

#[test]
fn bad_values_name_the_setting() {
    let mut sources = Sources::default();
    sources.flag("idle_timeout", Some("soon"));
    let e = Settings::load(&sources).unwrap_err().to_string();
    assert!(
        e.starts_with("setting `idle_timeout`: `soon` is not a duration"),
        "{e}"
    );

    let mut sources = Sources::default();
    sources.flag("ping_interval", Some("0s"));
    let e = Settings::load(&sources).unwrap_err().to_string();
    assert_eq!(e, "setting `ping_interval`: must be longer than 0s");

    let mut sources = Sources::default();
    sources.flag("server", Some("ftp://x"));
    let e = Settings::load(&sources).unwrap_err().to_string();
    assert!(e.contains("must start with http://"), "{e}");

    let mut sources = Sources::default();
    sources.flag("token_leeway", Some("a bit"));
    let e = Settings::load(&sources).unwrap_err().to_string();
    assert!(
        e.starts_with("setting `token_leeway`: `a bit` is not a duration"),
        "{e}"
    );

    let mut sources = Sources::default();
    sources.flag("token_max_lifetime", Some("0s"));
    let e = Settings::load(&sources).unwrap_err().to_string();
    assert_eq!(
        e,
        "setting `token_max_lifetime`: must be longer than 0s (or `none` for no limit)"
    );
}

#[test]
fn file_problems_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "lisen = \"x\"\n");
    let e = Settings::load(&Sources {
        file: Some((path, false)),
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("unknown key `lisen`"), "{e}");

    let e = Settings::load(&Sources {
        file: Some((dir.path().join("missing.toml"), true)),
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("no such file"), "{e}");
}
