//! The throwaway PostgreSQL and Redis of `support::services` work: they
//! answer, databases are apart, and a stopped server comes back on its port
//! with (PostgreSQL) its data.

use crate::support::services::{require, verdict, Postgres, Redis, Service};

#[tokio::test]
async fn postgres_answers_and_fresh_databases_are_apart() {
    let test = "postgres_answers_and_fresh_databases_are_apart";
    let Some(pg) = Postgres::shared_or_skip(test).await else {
        return;
    };
    assert_eq!(pg.psql("postgres", "select 1").await, "1");
    let a = pg.fresh_database().await;
    let b = pg.fresh_database().await;
    assert_ne!(a, b);
    let (a, b) = (db_name(&a), db_name(&b));
    pg.psql(
        a,
        "create table marker (n int); insert into marker values (7)",
    )
    .await;
    assert_eq!(pg.psql(a, "select n from marker").await, "7");
    let missing = pg.try_psql(b, "select n from marker").await.unwrap_err();
    assert!(missing.contains("does not exist"), "{missing}");
    assert_eq!(
        pg.psql(b, "select current_user || ' ' || pg_encoding_to_char(encoding) from pg_database where datname = current_database()")
            .await,
        "pytake UTF8"
    );
}

#[tokio::test]
async fn postgres_stopped_and_started_keeps_its_data_and_port() {
    let test = "postgres_stopped_and_started_keeps_its_data_and_port";
    let Some(mut pg) = Postgres::start_or_skip(test).await else {
        return;
    };
    let url = pg.create_database("kept").await;
    assert_eq!(
        url,
        format!("postgres://pytake@127.0.0.1:{}/kept", pg.port())
    );
    pg.psql(
        "kept",
        "create table t (n int); insert into t values (1), (2)",
    )
    .await;
    let port = pg.port();

    pg.stop().await;
    assert!(pg.try_psql("kept", "select 1").await.is_err());

    pg.restart_stopped().await;
    assert_eq!(pg.port(), port);
    assert_eq!(pg.psql("kept", "select sum(n) from t").await, "3");
}

#[tokio::test]
async fn redis_answers_and_restarts_on_its_port() {
    let Some(mut redis) = Redis::start_or_skip("redis_answers_and_restarts_on_its_port").await
    else {
        return;
    };
    redis.ping().await.unwrap();
    let port = redis.port();
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{port}"));

    redis.stop().await;
    assert!(redis.ping().await.is_err());

    redis.restart_stopped().await;
    assert_eq!(redis.port(), port);
    redis.ping().await.unwrap();
}

#[tokio::test]
async fn shared_redis_answers() {
    let Some(redis) = Redis::shared_or_skip("shared_redis_answers").await else {
        return;
    };
    redis.ping().await.unwrap();
}

#[test]
fn a_missing_service_is_a_skip_outside_ci_and_a_failure_in_it() {
    assert_eq!(
        verdict(false, "t", Service::Redis, "not here"),
        Ok("skipped: t: Redis is not available (not here); install redis-server, or set CI=true to make this a failure".to_string())
    );
    let failure = verdict(true, "t", Service::Postgres, "not here").unwrap_err();
    assert!(
        failure.starts_with("t: PostgreSQL is not available (not here); CI is set"),
        "{failure}"
    );
    assert_eq!(require("t", Service::Postgres, Ok(5)), Some(5));
    assert_eq!(
        verdict(true, "t", Service::Aiosmtpd, "no module").unwrap_err(),
        "t: aiosmtpd is not available (no module); CI is set, so this fails instead of skipping (install python3-aiosmtpd)"
    );
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}
