use super::*;
use std::path::Path;

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
        nbf: None,
        aud: None,
        iss: None,
    });
    assert!(matches!(keys.verify(&expired), Err(AuthError::Expired)));

    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4Iiwicm9sZSI6ImFkbWluIiwiZXhwIjo0MTAyNDQ0ODAwLCJpYXQiOjB9.";
    assert!(matches!(
        keys.verify(none),
        Err(AuthError::BadAlgorithm(Some(alg))) if alg == "none"
    ));

    let tenantless = keys.mint_for("svc", None, Role::Service, Duration::from_secs(60));
    assert!(matches!(
        keys.verify(&tenantless),
        Err(AuthError::MissingTenant)
    ));
}

const DAY: u64 = 86_400;

/// Viewer claims of acme issued at `iat`, expiring at `exp`.
fn claims(iat: u64, exp: u64) -> Claims {
    Claims::new("ana", Some("acme"), Role::Viewer, iat, exp)
}

fn rules(f: impl FnOnce(&mut TokenSettings)) -> Keys {
    let mut rules = TokenSettings::default();
    f(&mut rules);
    Keys::with_settings(b"one", &rules)
}

fn refusal(keys: &Keys, claims: &Claims) -> String {
    match keys.verify(&keys.mint(claims)) {
        Ok(c) => panic!("accepted {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn nbf_beyond_the_leeway_is_refused() {
    let keys = Keys::new(b"one");
    let now = unix_now();
    let nbf = 1_893_456_000; // 2030-01-01T00:00:00Z
    let later = Claims {
        nbf: Some(nbf),
        ..claims(now, nbf + 3600)
    };
    assert_eq!(
        refusal(&keys, &later),
        "token not valid before 2030-01-01T00:00:00Z"
    );
    assert!(matches!(
        keys.verify(&keys.mint(&later)),
        Err(AuthError::NotYetValid(n)) if n == nbf
    ));
    // Within the leeway, or already reached: fine.
    for nbf in [now + 20, now, now - 60] {
        let ok = Claims {
            nbf: Some(nbf),
            ..claims(now, now + 3600)
        };
        assert!(
            keys.verify(&keys.mint(&ok)).is_ok(),
            "nbf now{:+}",
            nbf as i64 - now as i64
        );
    }
}

#[test]
fn iat_in_the_future_beyond_the_leeway_is_refused() {
    let keys = Keys::new(b"one");
    let now = unix_now();
    let iat = 1_893_456_000;
    assert_eq!(
        refusal(&keys, &claims(iat, iat + 3600)),
        "token issued in the future (2030-01-01T00:00:00Z)"
    );
    assert!(matches!(
        keys.verify(&keys.mint(&claims(now + 120, now + 3600))),
        Err(AuthError::IssuedInFuture(_))
    ));
    assert!(keys
        .verify(&keys.mint(&claims(now + 20, now + 3600)))
        .is_ok());
}

#[test]
fn iat_is_required() {
    let keys = Keys::new(b"one");
    let now = unix_now();
    let token = encode(
        &Header::new(Algorithm::HS256),
        &serde_json::json!({"sub": "ana", "tenant_id": "acme", "role": "viewer", "exp": now + 60}),
        &EncodingKey::from_secret(b"one"),
    )
    .unwrap();
    assert_eq!(
        keys.verify(&token).unwrap_err().to_string(),
        "token is malformed: iat: missing (when it was issued, in Unix seconds)"
    );
}

#[test]
fn the_leeway_is_a_setting() {
    let now = unix_now();
    let strict = rules(|r| r.leeway = Duration::ZERO);
    let lax = rules(|r| r.leeway = Duration::from_secs(300));
    let just_expired = claims(now - 3600, now - 10);
    let soon = Claims {
        nbf: Some(now + 120),
        ..claims(now, now + 3600)
    };
    let early = claims(now + 120, now + 3600);
    assert!(Keys::new(b"one")
        .verify(&strict.mint(&just_expired))
        .is_ok());
    assert!(matches!(
        strict.verify(&strict.mint(&just_expired)),
        Err(AuthError::Expired)
    ));
    assert!(matches!(
        strict.verify(&strict.mint(&soon)),
        Err(AuthError::NotYetValid(_))
    ));
    assert!(lax.verify(&lax.mint(&soon)).is_ok());
    assert!(lax.verify(&lax.mint(&early)).is_ok());
}

#[test]
fn lifetimes_over_the_maximum_are_refused() {
    let keys = Keys::new(b"one");
    let now = unix_now();
    let long = claims(now, now + 900 * DAY);
    assert_eq!(
        refusal(&keys, &long),
        "token lifetime 900d is over the limit of 366d"
    );
    assert!(keys
        .verify(&keys.mint(&claims(now, now + 366 * DAY)))
        .is_ok());
    let odd = claims(now, now + 2 * DAY + 3 * 3600 + 4);
    let short = rules(|r| r.max_lifetime = Some(Duration::from_secs(DAY)));
    assert_eq!(
        refusal(&short, &odd),
        "token lifetime 2d 3h 4s is over the limit of 1d"
    );
    let unlimited = rules(|r| r.max_lifetime = None);
    assert!(unlimited.verify(&unlimited.mint(&long)).is_ok());

    // The minting side: `token create` asks first; `mint_for` caps.
    let defaults = TokenSettings::default();
    assert_eq!(
        check_ttl(&defaults, Duration::from_secs(900 * DAY))
            .unwrap_err()
            .to_string(),
        "token lifetime 900d is over the limit of 366d"
    );
    assert!(check_ttl(&defaults, Duration::from_secs(366 * DAY)).is_ok());
    let none = TokenSettings {
        max_lifetime: None,
        ..defaults
    };
    assert!(check_ttl(&none, Duration::from_secs(9000 * DAY)).is_ok());
    let capped = short.mint_for("ana", Some("acme"), Role::Viewer, LOCAL_TOKEN_TTL * 4);
    let c = short.verify(&capped).unwrap();
    assert_eq!(c.exp - c.iat, DAY);
}

#[test]
fn audience_is_checked_only_when_configured() {
    let now = unix_now();
    let with = |aud: Option<Audience>| Claims {
        aud,
        ..claims(now, now + 60)
    };
    let one = |a: &str| Some(Audience::One(a.into()));
    let many = |a: &[&str]| Some(Audience::Many(a.iter().map(|s| s.to_string()).collect()));

    let open = Keys::new(b"one");
    for aud in [None, one("anything"), many(&["x", "y"])] {
        assert!(open.verify(&open.mint(&with(aud))).is_ok());
    }

    let keys = rules(|r| r.audience = Some("pytake".into()));
    assert!(keys.verify(&keys.mint(&with(one("pytake")))).is_ok());
    assert!(keys
        .verify(&keys.mint(&with(many(&["crm", "pytake"]))))
        .is_ok());
    assert_eq!(
        refusal(&keys, &with(one("crm"))),
        "token audience `crm` is not `pytake`"
    );
    assert_eq!(
        refusal(&keys, &with(many(&["crm", "erp"]))),
        "token audience [`crm`, `erp`] does not include `pytake`"
    );
    assert_eq!(
        refusal(&keys, &with(None)),
        "token has no audience (aud); this server expects `pytake`"
    );
    let huge = "a".repeat(500);
    let e = refusal(&keys, &with(one(&huge)));
    assert!(e.len() < 120 && e.contains("…` is not `pytake`"), "{e}");
}

#[test]
fn issuer_is_checked_only_when_configured() {
    let now = unix_now();
    let with = |iss: Option<&str>| Claims {
        iss: iss.map(str::to_string),
        ..claims(now, now + 60)
    };
    let open = Keys::new(b"one");
    assert!(open.verify(&open.mint(&with(Some("whoever")))).is_ok());

    let keys = rules(|r| r.issuer = Some("https://id.example.com".into()));
    assert!(keys
        .verify(&keys.mint(&with(Some("https://id.example.com"))))
        .is_ok());
    assert_eq!(
        refusal(&keys, &with(Some("https://evil.example.com"))),
        "token issuer `https://evil.example.com` is not `https://id.example.com`"
    );
    assert_eq!(
        refusal(&keys, &with(None)),
        "token has no issuer (iss); this server expects `https://id.example.com`"
    );
}

#[test]
fn minted_tokens_carry_the_configured_audience_and_issuer() {
    let keys = rules(|r| {
        r.audience = Some("pytake".into());
        r.issuer = Some("ops".into());
    });
    let token = keys.mint_for("ana", None, Role::Admin, LOCAL_TOKEN_TTL);
    let c = keys.verify(&token).unwrap();
    assert_eq!(c.aud, Some(Audience::One("pytake".into())));
    assert_eq!(c.iss.as_deref(), Some("ops"));
    assert_eq!(c.exp - c.iat, LOCAL_TOKEN_TTL.as_secs());

    let plain = Keys::new(b"one").mint_for("ana", None, Role::Admin, LOCAL_TOKEN_TTL);
    let c = Keys::new(b"one").verify(&plain).unwrap();
    assert_eq!((c.aud, c.iss, c.nbf), (None, None, None));
    assert!(matches!(
        keys.verify(&plain),
        Err(AuthError::WrongIssuer { .. })
    ));
}

#[test]
fn durations_read_compactly() {
    assert_eq!(compact(Duration::ZERO), "0s");
    assert_eq!(compact(Duration::from_secs(45)), "45s");
    assert_eq!(compact(Duration::from_secs(DAY + 60)), "1d 1m");
    assert_eq!(compact(DEFAULT_MAX_LIFETIME), "366d");
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_created_private_and_an_existing_one_is_left_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    let root = tempfile::tempdir().unwrap();
    let fresh = root.path().join("a").join("data");
    open_data_dir(&fresh).unwrap();
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(shared_mode(&fresh), None);

    let shared = root.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    open_data_dir(&shared).unwrap();
    assert_eq!(mode(&shared), 0o755);
    assert_eq!(shared_mode(&shared), Some(0o755));

    let secret_dir = root.path().join("s");
    load_or_create_secret(&secret_dir).unwrap();
    assert_eq!(mode(&secret_dir), 0o700);
}

#[test]
fn paths_are_quoted_for_the_shell() {
    assert_eq!(shell_word(Path::new("/var/lib/pytake")), "/var/lib/pytake");
    assert_eq!(shell_word(Path::new("/tmp/my dir")), "'/tmp/my dir'");
    assert_eq!(shell_word(Path::new("/tmp/it's")), "'/tmp/it'\\''s'");
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

/// Signs any JSON payload with `secret`, as a foreign tool might.
fn signed(secret: &[u8], payload: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &payload,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

#[test]
fn refusals_say_what_is_wrong_without_library_words() {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let keys = Keys::new(b"one");
    let now = unix_now();
    let superuser =
        serde_json::json!({"sub": "x", "role": "superuser", "exp": now + 60, "iat": now});
    let no_alg = format!("{}.{}.sig", b64(r#"{"typ":"JWT"}"#), b64(r#"{"sub":"x"}"#));
    for (token, message) in [
        (
            "garbage".to_string(),
            "token is malformed: expected three dot-separated parts (header.payload.signature), found 1",
        ),
        (
            "a.b".to_string(),
            "token is malformed: expected three dot-separated parts (header.payload.signature), found 2",
        ),
        (
            format!("{}.e30.sig", b64("alg")),
            "token is malformed: the header (part 1) is not a JSON object",
        ),
        (
            format!("{}.%%.sig", b64(r#"{"alg":"HS256"}"#)),
            "token is malformed: the payload (part 2) is not base64url",
        ),
        (
            no_alg,
            "token header has no algorithm (alg); only HS256 is accepted",
        ),
        (
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.".to_string(),
            "token algorithm `none` is not accepted (only HS256)",
        ),
        (
            encode(
                &Header::new(Algorithm::HS512),
                &superuser,
                &EncodingKey::from_secret(b"one"),
            )
            .unwrap(),
            "token algorithm `HS512` is not accepted (only HS256)",
        ),
        (
            format!("{}.e30.sig", b64(r#"{"alg":"hs256"}"#)),
            "token algorithm `hs256` is not accepted (only HS256)",
        ),
        (
            signed(b"one", superuser.clone()),
            "token is malformed: role: unknown role `superuser`: expected admin, operator, viewer or service",
        ),
        // The signature is checked before the claims are believed.
        (
            signed(b"two", superuser),
            "token signature does not match this server's secret",
        ),
        (
            signed(b"one", serde_json::json!({"sub": "x", "role": "viewer", "iat": now})),
            "token is malformed: exp: missing (when it expires, in Unix seconds)",
        ),
        (
            signed(
                b"one",
                serde_json::json!({"sub": "x", "role": "viewer", "tenant_id": 7, "exp": now + 60, "iat": now}),
            ),
            "token is malformed: tenant_id: expected a string, got a number (7)",
        ),
    ] {
        let e = keys.verify(&token).unwrap_err().to_string();
        assert_eq!(e, message, "{token}");
        assert!(!e.contains("InvalidToken") && !e.contains("JSON error"));
    }
}

#[test]
fn an_inspection_reports_every_check() {
    let keys = Keys::new(b"one");
    let now = 1_800_000_000;
    let expired = claims(now - 7200, now - 3600);
    let inspection = Keys::new(b"two")
        .inspect_at(&keys.mint(&expired), now)
        .unwrap();
    assert!(matches!(inspection.signature, Err(AuthError::BadSignature)));
    assert_eq!(inspection.claims.as_ref().unwrap(), &expired);
    assert!(matches!(inspection.rules, Err(AuthError::Expired)));
    assert_eq!(inspection.token.payload["sub"], "ana");
    assert!(matches!(inspection.verdict(), Err(AuthError::BadSignature)));

    let fine = keys
        .inspect_at(&keys.mint(&claims(now, now + 60)), now)
        .unwrap();
    assert!(fine.signature.is_ok() && fine.rules.is_ok());
    assert_eq!(fine.verdict().unwrap(), claims(now, now + 60));

    // Expiry allows the leeway, like the other clock checks.
    let just = keys.mint(&claims(now - 3600, now - 30));
    assert!(keys.inspect_at(&just, now).unwrap().rules.is_ok());
    let past = keys.inspect_at(&just, now + 1).unwrap();
    assert!(matches!(past.rules, Err(AuthError::Expired)));

    let e = keys.inspect_at("x.y", now).unwrap_err();
    assert!(e.is_structural(), "{e}");
}

#[test]
fn only_the_server_creates_a_secret() {
    let root = tempfile::tempdir().unwrap();
    let typo = root.path().join("pytkae");
    assert_eq!(
        read_secret(&typo).unwrap_err().to_string(),
        format!(
            "no secret at {}/secret; start `pytake serve --data-dir {}` once to create it, \
             or give it with --secret-file (PYTAKE_SECRET_FILE) or PYTAKE_SECRET",
            typo.display(),
            typo.display()
        )
    );
    assert!(!typo.exists());
    let spaced = root.path().join("my data");
    std::fs::create_dir(&spaced).unwrap();
    std::fs::write(spaced.join(SECRET_FILE), "  \n").unwrap();
    assert!(read_secret(&spaced)
        .unwrap_err()
        .to_string()
        .contains(&format!("--data-dir '{}'", spaced.display())));
    let made = load_or_create_secret(&spaced.join("d")).unwrap();
    assert_eq!(read_secret(&spaced.join("d")).unwrap(), made);
}

#[test]
fn an_empty_or_short_secret_file_is_refused_not_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(SECRET_FILE), "").unwrap();
    let e = load_or_create_secret(dir.path()).unwrap_err().to_string();
    assert!(
        e.ends_with("secret holds 0 bytes, fewer than the 32 a secret needs: delete it to have a new one generated (tokens signed with the old one stop working), or write a longer secret into it"),
        "{e}"
    );
    std::fs::write(dir.path().join(SECRET_FILE), "short\n").unwrap();
    assert!(load_or_create_secret(dir.path()).is_err());
    // A new one is whole, private and read back the same.
    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let secret = load_or_create_secret(&data).unwrap();
    assert_eq!(secret.len(), 64);
    assert_eq!(load_or_create_secret(&data).unwrap(), secret);
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [SECRET_FILE], "nothing left aside");
}
