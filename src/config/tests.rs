use std::collections::HashMap;

use clap::{Args, Command, FromArgMatches};

use super::flags::{AuthFlags, ClientFlags, CommandFlags, GatewayFlags, ServerFlags};
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

/// Loads with `argv` parsed by a command that has the serve and client
/// groups, as the real commands flatten them. The command's `env`s are
/// dropped so the process environment cannot leak into a test.
fn load_with(sources: &Sources, argv: &[&str]) -> Result<Loaded, ConfigError> {
    let cmd = Command::new("t").no_binary_name(true);
    let cmd = ServerFlags::augment_args(cmd);
    let cmd = AuthFlags::augment_args(cmd);
    let cmd = GatewayFlags::augment_args(cmd);
    let cmd = ClientFlags::augment_args(cmd).mut_args(|a| a.env(None::<&'static str>));
    let m = cmd.try_get_matches_from(argv).expect("valid test flags");
    let flags = CommandFlags::new(&m, &ALL_SECTIONS)
        .group(&ServerFlags::from_arg_matches(&m).unwrap())
        .group(&AuthFlags::from_arg_matches(&m).unwrap())
        .group(&GatewayFlags::from_arg_matches(&m).unwrap())
        .group(&ClientFlags::from_arg_matches(&m).unwrap());
    load(sources, Some(&flags))
}

fn settings(sources: &Sources, argv: &[&str]) -> Settings {
    load_with(sources, argv).unwrap().settings
}

fn error(sources: &Sources, argv: &[&str]) -> String {
    load_with(sources, argv).unwrap_err().to_string()
}

fn with_file(path: PathBuf) -> Sources {
    Sources {
        file: Some((path, true)),
        ..Sources::default()
    }
}

#[test]
fn defaults_apply_when_nothing_is_set() {
    let s = settings(&Sources::default(), &[]);
    assert_eq!(s, Settings::default());
    assert_eq!(s.server.listen, "127.0.0.1:8080");
    assert_eq!(s.server_url(), "http://127.0.0.1:8080");
    assert_eq!(s.bus.url, "memory");
    assert_eq!(s.data_dir(), default_data_dir());
    assert_eq!(
        s.store_url(),
        format!(
            "sqlite://{}",
            default_data_dir().join("pytake.db").display()
        )
    );
    assert_eq!(s.secret(), None);
    assert_eq!(s.gateway.rate_limit, limits::RATE_LIMIT_PER_MINUTE);
    assert_eq!(s.tokens().leeway, Duration::from_secs(30));
    assert_eq!(
        s.tokens().max_lifetime,
        Some(Duration::from_secs(366 * 86_400))
    );
}

#[test]
fn file_overrides_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "[server]\nlisten = \"0.0.0.0:9000\"\ndata_dir = \"/srv/pytake\"\n\n\
         [gateway]\nrate_limit = 50\nauth_timeout = \"3s\"\n\n\
         [auth]\ntoken_leeway = \"5s\"\ntoken_audience = \"pytake\"\n\
         token_issuer = \"https://id.example.com\"\ntoken_max_lifetime = \"30d\"\n",
    );
    let loaded = load_with(&with_file(path.clone()), &[]).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.server.listen, "0.0.0.0:9000");
    assert_eq!(s.data_dir(), PathBuf::from("/srv/pytake"));
    assert_eq!(s.store_url(), "sqlite:///srv/pytake/pytake.db");
    assert_eq!(s.gateway.rate_limit, 50);
    assert_eq!(s.gateway.auth_timeout, Duration::from_secs(3));
    assert_eq!(
        s.tokens(),
        TokenSettings {
            leeway: Duration::from_secs(5),
            audience: Some("pytake".into()),
            issuer: Some("https://id.example.com".into()),
            max_lifetime: Some(Duration::from_secs(30 * 86_400)),
        }
    );
    assert_eq!(
        loaded.origin("gateway.rate_limit"),
        Origin::File {
            path,
            line: Some(6)
        }
    );
    assert_eq!(loaded.origin("gateway.idle_timeout"), Origin::Default);
}

#[test]
fn env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "[server]\nlisten = \"0.0.0.0:9000\"\n[auth]\nsecret = \"from-file\"\n\
         token_audience = \"file\"\ntoken_issuer = \"file\"\n",
    );
    let sources = Sources {
        file: Some((path, true)),
        env: env(&[
            ("PYTAKE_SECRET", "from-env"),
            ("PYTAKE_RATE_LIMIT", "7"),
            ("PYTAKE_TOKEN_AUDIENCE", "env"),
            ("PYTAKE_TOKEN_LEEWAY", "0s"),
            ("PYTAKE_TOKEN_MAX_LIFETIME", "none"),
            ("PYTAKE_STORE", "sqlite:///tmp/x.db"),
            ("PYTAKE_UNRELATED", "ignored"),
            ("PYTAKE_TOKEN", ""),
        ]),
    };
    let loaded = load_with(&sources, &[]).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.server.listen, "0.0.0.0:9000");
    assert_eq!(s.secret(), Some("from-env"));
    assert_eq!(s.gateway.rate_limit, 7);
    assert_eq!(s.store_url(), "sqlite:///tmp/x.db");
    assert_eq!(s.tokens().audience.as_deref(), Some("env"));
    assert_eq!(s.tokens().issuer.as_deref(), Some("file"));
    assert_eq!(s.tokens().leeway, Duration::ZERO);
    assert_eq!(s.tokens().max_lifetime, None);
    // An empty variable is unset, as in a shell's `PYTAKE_TOKEN=`.
    assert_eq!(s.token(), None);
    assert_eq!(
        loaded.origin("gateway.rate_limit"),
        Origin::Env("PYTAKE_RATE_LIMIT".into())
    );
}

#[test]
fn flags_override_env() {
    let sources = Sources {
        env: env(&[
            ("PYTAKE_LISTEN", "127.0.0.1:7000"),
            ("PYTAKE_TOKEN", "env-token"),
            ("PYTAKE_TOKEN_ISSUER", "env"),
            ("PYTAKE_TOKEN_MAX_LIFETIME", "1d"),
        ]),
        ..Sources::default()
    };
    let loaded = load_with(
        &sources,
        &[
            "--listen=127.0.0.1:0",
            "--token-issuer",
            "flag",
            "--token-leeway=2s",
            "--token-max-lifetime=12h",
        ],
    )
    .unwrap();
    let s = &loaded.settings;
    assert_eq!(s.server.listen, "127.0.0.1:0");
    assert_eq!(s.token(), Some("env-token"));
    assert_eq!(s.server_url(), "http://127.0.0.1:8080");
    assert_eq!(s.tokens().issuer.as_deref(), Some("flag"));
    assert_eq!(s.tokens().leeway, Duration::from_secs(2));
    assert_eq!(
        s.tokens().max_lifetime,
        Some(Duration::from_secs(12 * 3600))
    );
    assert_eq!(
        loaded.origin("server.listen"),
        Origin::Flag("--listen".into())
    );
    assert_eq!(
        loaded.origin("client.token"),
        Origin::Env("PYTAKE_TOKEN".into())
    );
}

#[test]
fn pytake_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "[gateway]\nrate_limit = 9\n");
    let p = path.to_str().unwrap();
    let sources = Sources::from_env(env(&[("PYTAKE_CONFIG", p)]), None);
    assert_eq!(sources.file, Some((path.clone(), true)));
    assert_eq!(settings(&sources, &[]).gateway.rate_limit, 9);
    // --config beats the variable; an empty variable is unset.
    let flag = dir.path().join("other.toml");
    let sources = Sources::from_env(env(&[("PYTAKE_CONFIG", p)]), Some(flag.clone()));
    assert_eq!(sources.file, Some((flag, true)));
    let sources = Sources::from_env(env(&[("PYTAKE_CONFIG", "")]), None);
    assert_eq!(
        sources.file.map(|(_, required)| required),
        default_config_file().map(|_| false)
    );

    // Named but missing: an error, not a silent fallback to defaults.
    let e = error(&with_file(dir.path().join("missing.toml")), &[]);
    assert!(
        e.ends_with("missing.toml: no such file (`pytake config init` writes one)"),
        "{e}"
    );
}

#[test]
fn bad_variables_are_named_with_their_value() {
    let bad = |var: &str, value: &str| {
        error(
            &Sources {
                env: env(&[(var, value)]),
                ..Sources::default()
            },
            &[],
        )
    };
    assert_eq!(
        bad("PYTAKE_RATE_LIMIT", "abc"),
        "PYTAKE_RATE_LIMIT=abc: `abc` is not a whole number"
    );
    assert_eq!(
        bad("PYTAKE_IDLE_TIMEOUT", "soon"),
        "PYTAKE_IDLE_TIMEOUT=soon: `soon` is not a duration like 30s, 15m, 24h or 7d (units: ms, s, m, h, d or w)"
    );
    assert_eq!(
        bad("PYTAKE_LOG_FORMAT", "xml"),
        "PYTAKE_LOG_FORMAT=xml: expected one of text, json"
    );
    assert_eq!(
        bad("PYTAKE_LISTEN", "8080"),
        "PYTAKE_LISTEN=8080: not an address: write HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)"
    );
    // A value that starts with a dash is a value, not a flag.
    let s = settings(
        &Sources {
            env: env(&[("PYTAKE_TOKEN_AUDIENCE", "--x")]),
            ..Sources::default()
        },
        &[],
    );
    assert_eq!(s.tokens().audience.as_deref(), Some("--x"));
}

#[test]
fn bad_flags_and_file_values_name_where_they_came_from() {
    assert_eq!(
        error(&Sources::default(), &["--listen", "8080"]),
        "--listen 8080: not an address: write HOST:PORT, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every interface)"
    );
    assert_eq!(
        error(&Sources::default(), &["--server", "ftp://x"]),
        "--server ftp://x: must start with http:// or https://, e.g. http://127.0.0.1:8080"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "[gateway]\n\nping_interval = \"0s\"\n");
    assert_eq!(
        error(&with_file(path.clone()), &[]),
        format!("{} line 3: must be longer than 0s", path.display())
    );
    let path = file(dir.path(), "[auth]\ntoken_max_lifetime = \"0s\"\n");
    assert_eq!(
        error(&with_file(path.clone()), &[]),
        format!(
            "{} line 2: must be longer than 0s, or `none` for no limit",
            path.display()
        )
    );
}

#[test]
fn file_problems_give_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = file(
        dir.path(),
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[gateway]\nlistne = \"x\"\n",
    );
    assert_eq!(
        error(&with_file(path.clone()), &[]),
        format!(
            "{} line 5: unknown key `listne` in [gateway], expected one of `rate_limit`, `max_frame_bytes`, `outbound_queue`, `auth_timeout`, `ping_interval`, `idle_timeout`, `write_stall`, `compression`, `max_connections`, `max_connections_per_tenant`, `max_unauthenticated_per_address`, `presence_grace`, `presence_ttl`",
            path.display()
        )
    );
    // The flat layout of earlier versions is pointed to its section.
    let path = file(dir.path(), "# old\nlisten = \"127.0.0.1:1\"\n");
    assert_eq!(
        error(&with_file(path.clone()), &[]),
        format!(
            "{} line 2: unknown key `listen` at the top level: it belongs in [server] (settings are in sections)",
            path.display()
        )
    );
    let path = file(dir.path(), "[gateway]\nrate_limit = \"lots\"\n");
    let e = error(&with_file(path.clone()), &[]);
    assert!(
        e.starts_with(&format!(
            "{} line 2: invalid type: string \"lots\"",
            path.display()
        )),
        "{e}"
    );
    // A header with a comment is still a header.
    let path = file(dir.path(), "[server]\n[gateway] # limits\nrate_limt = 5\n");
    let e = error(&with_file(path.clone()), &[]);
    assert!(
        e.starts_with(&format!(
            "{} line 3: unknown key `rate_limt` in [gateway]",
            path.display()
        )),
        "{e}"
    );
    let path = file(dir.path(), "[gateway\n");
    let e = error(&with_file(path.clone()), &[]);
    assert!(e.starts_with(&format!("{} line 1:", path.display())), "{e}");
}

#[test]
fn secrets_can_come_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "a.b.c\n").unwrap();
    let s = settings(
        &Sources::default(),
        &[
            "--secret-file",
            secret.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    assert_eq!(s.secret(), Some("s3cret"));
    assert_eq!(s.token(), Some("a.b.c"));

    // A higher layer wins; both on one layer is a question, not a guess.
    let sources = Sources {
        env: env(&[("PYTAKE_SECRET", "from-env")]),
        ..Sources::default()
    };
    let s = settings(&sources, &["--secret-file", secret.to_str().unwrap()]);
    assert_eq!(s.secret(), Some("s3cret"));
    let e = error(
        &Sources::default(),
        &["--secret", "x", "--secret-file", secret.to_str().unwrap()],
    );
    assert_eq!(
        e,
        "--secret and --secret-file: both `auth.secret` and `auth.secret_file` are set: give one (the file keeps it out of argv and the environment)"
    );
    let missing = dir.path().join("nope");
    let e = error(
        &Sources::default(),
        &["--token-file", missing.to_str().unwrap()],
    );
    assert!(
        e.starts_with(&format!(
            "--token-file {0}: cannot read the token file {0}: No such file",
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn the_init_file_is_the_defaults_and_loads_back() {
    let text = init_text();
    let dir = tempfile::tempdir().unwrap();
    // Commented out, it changes nothing.
    let path = file(dir.path(), &text);
    assert_eq!(settings(&with_file(path), &[]), Settings::default());
    // Uncommented, every key is valid and still the default.
    let uncommented: String = text
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.contains(" = ") && !rest.starts_with(' ') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = file(dir.path(), &uncommented);
    assert_eq!(settings(&with_file(path), &[]), Settings::default());
    assert!(text.contains("#rate_limit = 100\n"), "{text}");
    assert!(
        text.contains("# --rate-limit, PYTAKE_RATE_LIMIT\n"),
        "{text}"
    );
    assert!(text.contains("#token_max_lifetime = \"366d\"\n"), "{text}");
}

#[test]
fn every_flag_has_a_variable_and_a_key() {
    for (section, args) in flags::all_groups() {
        for arg in args {
            let id = arg.get_id().as_str();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let long = arg.get_long().unwrap_or_default();
            assert_eq!(
                env.as_deref(),
                Some(format!("PYTAKE_{}", long.replace('-', "_").to_uppercase()).as_str()),
                "{section}.{id}"
            );
            let key = flags::key_of(section, id);
            assert!(
                origin::default_text(&format!("{section}.{key}")).is_some()
                    || matches!(key, "secret_file" | "token_file"),
                "{section}.{key} has no default text"
            );
        }
    }
}
