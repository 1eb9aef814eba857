//! `pytake token create|verify` as an operator runs them: exact output and
//! exit codes, and token errors in the user's words wherever they surface.

use std::process::Stdio;

use chrono::{DateTime, SecondsFormat};
use pytake::auth::{unix_now, Keys};
use pytake::protocol::{Claims, Role};
use tokio::io::AsyncWriteExt;

use crate::support::{bin, pytake, pytake_env, Options, Run, TestServer, DEADLINE};

fn rfc3339(secs: u64) -> String {
    DateTime::from_timestamp(secs as i64, 0)
        .unwrap()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Viewer claims of acme for `ana`, issued at `iat`, expiring at `exp`.
fn viewer(iat: u64, exp: u64) -> Claims {
    Claims::new("ana", Some("acme"), Role::Viewer, iat, exp)
}

/// `pytake token verify ARGS` with the secret `s3cret` in the environment.
async fn verify(args: &[&str], home: &std::path::Path) -> Run {
    let argv = [&["token", "verify"], args].concat();
    pytake_env(&argv, home, &[("PYTAKE_SECRET", "s3cret")]).await
}

#[tokio::test]
async fn token_create_with_a_mistyped_data_dir_creates_nothing_and_says_how_to_fix_it() {
    let home = tempfile::tempdir().unwrap();
    let typo = home.path().join("pytkae");
    let run = pytake(
        &[
            "--data-dir",
            typo.to_str().unwrap(),
            "token",
            "create",
            "--role",
            "admin",
        ],
        home.path(),
    )
    .await;
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{}", run.stderr);
    assert_eq!(
        run.stderr,
        format!(
            "error: no secret at {}/secret; start `pytake serve --data-dir {}` once to create \
             it, or give it with --secret-file (PYTAKE_SECRET_FILE) or PYTAKE_SECRET\n",
            typo.display(),
            typo.display()
        )
    );
    assert!(!typo.exists(), "token create made {}", typo.display());
}

#[tokio::test]
async fn token_create_signs_with_the_servers_secret_or_the_one_given() {
    let server = TestServer::start_with(Options {
        generated_secret: true,
        ..Options::default()
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let dir = server.path().to_str().unwrap();
    let run = pytake(
        &[
            "--data-dir",
            dir,
            "token",
            "create",
            "--tenant",
            "acme",
            "--role",
            "viewer",
            "--sub",
            "ana",
            "--ttl",
            "1h",
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let token = run.stdout.trim_end();
    assert_eq!(run.stdout, format!("{token}\n"));
    let claims = server.keys().verify(token).unwrap();
    assert_eq!(
        (claims.sub.as_str(), claims.tenant_id.as_deref()),
        ("ana", Some("acme"))
    );
    assert_eq!(claims.exp - claims.iat, 3600);
    let (status, _) = server.get(Some(token), "/api/v1/events").await;
    assert_eq!(status, 200);

    // `--secret` (it used to be an unexpected argument) and PYTAKE_SECRET.
    let flag = [
        "token",
        "create",
        "--role",
        "admin",
        "--secret",
        "from-flag",
    ];
    let run = pytake(&flag, home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(Keys::new(b"from-flag")
        .verify(run.stdout.trim_end())
        .is_ok());
    let run = pytake_env(
        &["token", "create", "--role", "admin"],
        home.path(),
        &[("PYTAKE_SECRET", "from-env")],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(Keys::new(b"from-env").verify(run.stdout.trim_end()).is_ok());
    assert!(
        !home.path().join("no-data").exists(),
        "no secret was written"
    );
}

#[tokio::test]
async fn token_create_refuses_bad_flags_with_exit_2() {
    let home = tempfile::tempdir().unwrap();
    let create = ["token", "create", "--secret", "x"];
    for (args, message) in [
        (
            &["--role", "viewer"][..],
            "error: --tenant is required for --role viewer\n",
        ),
        (
            &["--role", "admin", "--tenant", "acme"][..],
            "error: --tenant cannot be used with --role admin: admin tokens see every tenant\n",
        ),
        (
            &["--role", "admin", "--ttl", "1x"][..],
            "error: invalid value '1x' for '--ttl <DURATION>': `1x` is not a duration like 30s, \
             15m, 24h or 7d (units: ms, s, m, h, d or w)\n\nFor more information, try '--help'.\n",
        ),
        (
            &["--role", "admin", "--ttl", "0s"][..],
            "error: invalid value '0s' for '--ttl <DURATION>': `0s` must be longer than 0s\n\n\
             For more information, try '--help'.\n",
        ),
    ] {
        let run = pytake(&[&create[..], args].concat(), home.path()).await;
        assert_eq!((run.code, run.stderr.as_str()), (2, message), "{args:?}");
    }
    let run = pytake(&[&create[..], &["--role", "boss"]].concat(), home.path()).await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .starts_with("error: invalid value 'boss' for '--role <ROLE>': unknown role `boss`: expected admin, operator, viewer or service\n"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn token_verify_shows_a_valid_tokens_claims() {
    let home = tempfile::tempdir().unwrap();
    let now = unix_now();
    // 30 s past a whole day, so "expires in 1d" holds for the run's duration.
    let claims = viewer(now, now + 86_400 + 30);
    let token = Keys::new(b"s3cret").mint(&claims);
    let run = verify(&[&token, "--output", "table"], home.path()).await;
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "valid      yes\n\
             sub        ana\n\
             tenant     acme\n\
             role       viewer\n\
             issued     {}\n\
             expires    {} (expires in 1d)\n\
             audience   (none)\n\
             issuer     (none)\n\
             signature  ok: signed with this server's secret\n\
             rules      ok: accepted by this server's token rules (leeway 30s, max lifetime 366d)\n",
            rfc3339(claims.iat),
            rfc3339(claims.exp)
        )
    );
    let run = verify(&[&token, "--output", "json"], home.path()).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "{{\"valid\":true,\"signature\":{{\"ok\":true}},\"rules\":{{\"ok\":true}},\
             \"claims\":{{\"exp\":{},\"iat\":{},\"role\":\"viewer\",\"sub\":\"ana\",\"tenant_id\":\"acme\"}},\
             \"issued_at\":\"{}\",\"expires_at\":\"{}\"}}\n",
            claims.exp,
            claims.iat,
            rfc3339(claims.iat),
            rfc3339(claims.exp)
        )
    );
}

#[tokio::test]
async fn token_verify_reads_the_token_from_stdin() {
    let home = tempfile::tempdir().unwrap();
    let now = unix_now();
    let token = Keys::new(b"s3cret").mint(&viewer(now, now + 600));
    let mut child = tokio::process::Command::new(bin())
        .args(["token", "verify", "-", "--output", "json"])
        .env("PYTAKE_SECRET", "s3cret")
        .env("XDG_CONFIG_HOME", home.path().join("no-config"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{token}\n").as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .starts_with("{\"valid\":true,"));
}

#[tokio::test]
async fn token_verify_says_why_a_token_is_not_valid_with_exit_4() {
    let home = tempfile::tempdir().unwrap();
    let now = unix_now();
    // 30 s past two hours ago, so "expired 2h ago" holds for the run's duration.
    let claims = viewer(now - 3 * 3600, now - 2 * 3600 - 30);
    let expired = Keys::new(b"s3cret").mint(&claims);
    let run = verify(&[&expired, "--output", "table"], home.path()).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (4, "error: unauthorized: token expired\n")
    );
    assert_eq!(
        run.stdout,
        format!(
            "valid      no: token expired\n\
             sub        ana\n\
             tenant     acme\n\
             role       viewer\n\
             issued     {}\n\
             expires    {} (expired 2h ago)\n\
             audience   (none)\n\
             issuer     (none)\n\
             signature  ok: signed with this server's secret\n\
             rules      bad: token expired\n",
            rfc3339(claims.iat),
            rfc3339(claims.exp)
        )
    );

    let claims = viewer(now, now + 86_400 + 30);
    let foreign = Keys::new(b"another").mint(&claims);
    let run = verify(&[&foreign, "--output", "table"], home.path()).await;
    assert_eq!(
        (run.code, run.stderr.as_str()),
        (
            4,
            "error: unauthorized: token signature does not match this server's secret\n"
        )
    );
    assert_eq!(
        run.stdout,
        format!(
            "valid      no: token signature does not match this server's secret\n\
             sub        ana\n\
             tenant     acme\n\
             role       viewer\n\
             issued     {}\n\
             expires    {} (expires in 1d)\n\
             audience   (none)\n\
             issuer     (none)\n\
             signature  bad: token signature does not match this server's secret\n\
             rules      ok: accepted by this server's token rules (leeway 30s, max lifetime 366d)\n",
            rfc3339(claims.iat),
            rfc3339(claims.exp)
        )
    );

    // This server's rules: an audience it expects.
    let token = Keys::new(b"s3cret").mint(&claims);
    let run = pytake_env(
        &["token", "verify", &token, "--output", "json"],
        home.path(),
        &[
            ("PYTAKE_SECRET", "s3cret"),
            ("PYTAKE_TOKEN_AUDIENCE", "pytake"),
        ],
    )
    .await;
    let problem = "token has no audience (aud); this server expects `pytake`";
    assert_eq!(
        (run.code, run.stderr),
        (4, format!("error: unauthorized: {problem}\n"))
    );
    assert!(
        run.stdout.starts_with(&format!(
            "{{\"valid\":false,\"problem\":\"{problem}\",\"signature\":{{\"ok\":true}},\
             \"rules\":{{\"ok\":false,\"problem\":\"{problem}\"}},"
        )),
        "{}",
        run.stdout
    );
}

#[tokio::test]
async fn token_verify_refuses_what_is_not_a_token_with_exit_2() {
    let home = tempfile::tempdir().unwrap();
    for (text, message) in [
        (
            "garbage",
            "token is malformed: expected three dot-separated parts (header.payload.signature), found 1",
        ),
        (
            "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
            "token is malformed: the payload (part 2) is not a JSON object",
        ),
    ] {
        let run = verify(&[text], home.path()).await;
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr),
            (2, "", format!("error: {message}\n"))
        );
    }
    // No secret to check with: the same advice as token create.
    let typo = home.path().join("nowhere");
    let now = unix_now();
    let token = Keys::new(b"s3cret").mint(&viewer(now, now + 60));
    let run = pytake(
        &[
            "--data-dir",
            typo.to_str().unwrap(),
            "token",
            "verify",
            &token,
        ],
        home.path(),
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.starts_with(&format!(
            "error: no secret at {}/secret; start `pytake serve",
            typo.display()
        )),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_bad_role_in_a_token_is_named_by_the_server_and_the_cli() {
    let server = TestServer::start().await;
    let now = unix_now();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({"sub": "x", "role": "superuser", "tenant_id": "acme",
                            "iat": now, "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(server.secret.as_ref().unwrap().as_bytes()),
    )
    .unwrap();
    let problem = "token is malformed: role: unknown role `superuser`: expected admin, \
                   operator, viewer or service";
    let (status, body) = server.get(Some(&token), "/api/v1/events").await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (401, Some(problem))
    );
    let mut ws = server.ws("/ws").await;
    ws.send(pytake::protocol::ClientFrame::Auth {
        token: token.clone(),
    })
    .await;
    assert_eq!(ws.error().await, ("unauthorized".into(), problem.into()));

    let home = tempfile::tempdir().unwrap();
    let run = pytake(
        &["tail", "--server", &server.url, "--token", &token],
        home.path(),
    )
    .await;
    assert_eq!(
        (run.code, run.stderr),
        (4, format!("error: unauthorized: {problem}\n"))
    );
}
