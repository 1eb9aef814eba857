//! Token rules beyond signature and expiry (`nbf`, `iat`, lifetime, `aud`,
//! `iss`) on both REST and WebSocket, and the data dir's file modes.

use std::path::Path;
use std::time::Duration;

use pytake::auth::{unix_now, Keys};
use pytake::config::TokenSettings;
use pytake::protocol::claims::Audience;
use pytake::protocol::{Claims, ClientFrame, Role, ServerFrame};

use crate::support::{custom, rooms, Options, TestServer};

/// Acme viewer claims issued at `iat`, expiring at `exp`.
fn claims(iat: u64, exp: u64) -> Claims {
    Claims::new("t", Some("acme"), Role::Viewer, iat, exp)
}

/// Asserts `token` is refused with `reason`: REST 401, and on WebSocket an
/// `Error unauthorized` and close 4001, as an `Auth` frame and at upgrade.
async fn refused(server: &TestServer, token: &str, reason: &str) {
    let (status, body) = server.get(Some(token), "/api/v1/events").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["message"], reason, "{body}");

    let mut ws = server.ws("/ws").await;
    ws.send(ClientFrame::Auth {
        token: token.into(),
    })
    .await;
    let (frames, closed) = ws.closed().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert!(
        matches!(&frames[..], [ServerFrame::Error(e)]
            if e.code.to_string() == "unauthorized" && e.message == reason),
        "{frames:?} for {reason}"
    );

    let mut ws = server.ws(&format!("/ws?token={token}")).await;
    let (frames, closed) = ws.closed().await;
    assert_eq!(closed.code, 4001, "{closed:?}");
    assert!(
        matches!(&frames[..], [ServerFrame::Error(e)] if e.message == reason),
        "{frames:?} for {reason}"
    );
}

/// Asserts `token` is accepted on REST and WebSocket.
async fn accepted(server: &TestServer, token: &str) {
    let (status, body) = server.get(Some(token), "/api/v1/events").await;
    assert_eq!(status, 200, "{body}");
    let mut ws = server.ws(&format!("/ws?token={token}")).await;
    ws.welcome().await;
}

#[tokio::test]
async fn tokens_not_yet_valid_or_issued_in_the_future_are_refused() {
    let server = TestServer::start().await;
    let keys = server.keys();
    let now = unix_now();
    let later = now + 3600;
    let not_yet = keys.mint(&Claims {
        nbf: Some(later),
        ..claims(now, now + 7200)
    });
    let from_the_future = keys.mint(&claims(later, now + 7200));
    let when =
        humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(later));
    refused(&server, &not_yet, &format!("token not valid before {when}")).await;
    refused(
        &server,
        &from_the_future,
        &format!("token issued in the future ({when})"),
    )
    .await;

    // Within the default leeway of 30s: a clock a little ahead is fine.
    let close = keys.mint(&Claims {
        nbf: Some(now + 10),
        ..claims(now + 10, now + 3600)
    });
    accepted(&server, &close).await;
}

#[tokio::test]
async fn leeway_and_max_lifetime_are_settings() {
    let server = TestServer::start_with(Options::args(&[
        "--token-leeway",
        "0s",
        "--token-max-lifetime",
        "1h",
    ]))
    .await;
    let keys = server.keys();
    let now = unix_now();
    refused(
        &server,
        &keys.mint(&claims(now, now + 2 * 3600 + 60)),
        "token lifetime 2h 1m is over the limit of 1h",
    )
    .await;
    let ahead = now + 20;
    refused(
        &server,
        &keys.mint(&claims(ahead, ahead + 600)),
        &format!(
            "token issued in the future ({})",
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(ahead))
        ),
    )
    .await;
    accepted(&server, &keys.mint(&claims(now, now + 3600))).await;
}

#[tokio::test]
async fn audience_and_issuer_are_enforced_when_configured() {
    let server = TestServer::start_with(Options::args(&[
        "--token-audience",
        "pytake",
        "--token-issuer",
        "https://id.example.com",
    ]))
    .await;
    let now = unix_now();
    let keys = server.keys();
    let with = |aud: Option<Audience>, iss: Option<&str>| {
        keys.mint(&Claims {
            aud,
            iss: iss.map(str::to_string),
            ..claims(now, now + 600)
        })
    };
    let one = |a: &str| Some(Audience::One(a.into()));
    let iss = Some("https://id.example.com");

    accepted(&server, &with(one("pytake"), iss)).await;
    accepted(
        &server,
        &with(
            Some(Audience::Many(vec!["crm".into(), "pytake".into()])),
            iss,
        ),
    )
    .await;
    refused(
        &server,
        &with(one("crm"), iss),
        "token audience `crm` is not `pytake`",
    )
    .await;
    refused(
        &server,
        &with(None, iss),
        "token has no audience (aud); this server expects `pytake`",
    )
    .await;
    refused(
        &server,
        &with(one("pytake"), Some("https://evil.example.com")),
        "token issuer `https://evil.example.com` is not `https://id.example.com`",
    )
    .await;
    refused(
        &server,
        &with(one("pytake"), None),
        "token has no issuer (iss); this server expects `https://id.example.com`",
    )
    .await;

    // Keys made with the same settings mint tokens the server accepts.
    let secret = server.secret.clone().expect("test secret");
    let minting = Keys::with_settings(
        secret.as_bytes(),
        &TokenSettings {
            audience: Some("pytake".into()),
            issuer: Some("https://id.example.com".into()),
            ..TokenSettings::default()
        },
    );
    let admin = minting.mint_for("t", None, Role::Admin, Duration::from_secs(60));
    let (mut ws, _) = server.subscribed(&admin, rooms(&["erp"])).await;
    let ids = server.publish(&admin, custom("acme", "erp", 1)).await;
    assert_eq!(ws.event().await.id, ids[0]);
}

/// Permission bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn a_new_data_dir_and_its_database_are_private() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fresh");
    let server =
        TestServer::start_with(Options::args(&["--data-dir", dir.to_str().unwrap()])).await;
    // An event, so the -wal and -shm files exist.
    server
        .publish(&server.admin(), custom("acme", "erp", 1))
        .await;
    assert_eq!(mode(&dir), 0o700, "data dir");
    for file in ["pytake.db", "pytake.db-wal", "pytake.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert!(
        !server.log().contains("other local users"),
        "{}",
        server.log()
    );
}

#[tokio::test]
async fn a_shared_data_dir_is_reported_and_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("shared");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.join("pytake.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();

    let server =
        TestServer::start_with(Options::args(&["--data-dir", dir.to_str().unwrap()])).await;
    let log = server.log();
    let dir_warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("data dir is open to other local users"))
        .unwrap_or_else(|| panic!("no data dir warning in:\n{log}"));
    assert!(
        dir_warning.contains(&format!("run `chmod 700 {}`", dir.display()))
            && dir_warning.contains(&format!("path={}", dir.display()))
            && dir_warning.contains("mode=0755"),
        "{dir_warning}"
    );
    let db_warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("database file is open to other local users"))
        .unwrap_or_else(|| panic!("no database warning in:\n{log}"));
    assert!(
        db_warning.contains(&format!("run `chmod 600 {}`", db.display()))
            && db_warning.contains("mode=0644"),
        "{db_warning}"
    );
    // Warned about, not changed.
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&db), 0o644);
}

#[tokio::test]
async fn token_create_refuses_a_ttl_over_the_max_lifetime() {
    let home = tempfile::tempdir().unwrap();
    let d = home.path().join("data");
    let d = d.to_str().unwrap();
    let create = ["--data-dir", d, "token", "create", "--role", "admin"];
    let run = crate::support::pytake_env(
        &[&create[..], &["--ttl", "900d"]].concat(),
        home.path(),
        &[],
    )
    .await;
    assert_eq!(
        (run.code, run.stderr.as_str(), run.stdout.as_str()),
        (
            2,
            "error: --ttl: token lifetime 900d is over the limit of 366d \
             (token_max_lifetime; PYTAKE_TOKEN_MAX_LIFETIME)\n",
            ""
        )
    );
    let run = crate::support::pytake_env(
        &[&create[..], &["--ttl", "2h"]].concat(),
        home.path(),
        &[("PYTAKE_TOKEN_MAX_LIFETIME", "1h")],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("token lifetime 2h is over the limit of 1h"),
        "{run:?}"
    );
    let run = crate::support::pytake_env(
        &[&create[..], &["--ttl", "900d"]].concat(),
        home.path(),
        &[
            ("PYTAKE_TOKEN_MAX_LIFETIME", "none"),
            ("PYTAKE_SECRET", "s"),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
}

#[tokio::test]
async fn local_tools_mint_tokens_with_the_configured_audience_and_issuer() {
    let server = TestServer::start_with(Options {
        args: ["--token-audience", "pytake", "--token-issuer", "ops"]
            .map(String::from)
            .to_vec(),
        generated_secret: true,
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let d = server.path().to_str().unwrap();
    let env = [
        ("PYTAKE_TOKEN_AUDIENCE", "pytake"),
        ("PYTAKE_TOKEN_ISSUER", "ops"),
    ];

    // `token create`: the token names the audience and issuer.
    let run = crate::support::pytake_env(
        &["--data-dir", d, "token", "create", "--role", "admin"],
        home.path(),
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let admin = run.stdout.trim_end();
    let claims = server
        .keys()
        .verify(admin)
        .expect("verifies without aud/iss rules");
    assert_eq!(
        (claims.aud, claims.iss.as_deref()),
        (Some(Audience::One("pytake".into())), Some("ops"))
    );
    let id = server.publish(admin, custom("acme", "erp", 1)).await[0];

    // A client command minting its own token from the data dir's secret.
    let run = crate::support::pytake_env(
        &[
            "--data-dir",
            d,
            "tail",
            "--server",
            &server.url,
            "--output",
            "json",
            "--since",
            "0",
            "--count",
            "1",
        ],
        home.path(),
        &env,
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains(&format!("\"id\":{id}")), "{run:?}");

    // Without the settings, the same client is refused, and says why.
    let run = crate::support::pytake_env(
        &[
            "--data-dir",
            d,
            "tail",
            "--server",
            &server.url,
            "--since",
            "0",
            "--count",
            "1",
        ],
        home.path(),
        &[],
    )
    .await;
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr
            .contains("token has no issuer (iss); this server expects `ops`"),
        "{run:?}"
    );
}
