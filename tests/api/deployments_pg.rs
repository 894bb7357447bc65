//! PostgreSQL beyond one server (SPEC §12): no DDL when the schema is up to date (a read-only
//! database), libpq multi-host URLs with failover to a promoted standby without a restart,
//! PgBouncer in transaction pooling mode, and refreshes as HOT updates.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::app::{Storage, body, expect};
use crate::helpers::services::{PgBouncer, PgCluster};
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{Mode, TestApp};

async fn spawn(storage: &Arc<Storage>, overrides: &[(&str, &str)]) -> TestApp {
    let (mail, smtp_port) = SmtpSink::start_on(0).await;
    TestApp::spawn_on(Arc::clone(storage), mail, smtp_port, overrides).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_on_a_read_only_database_with_migrations_applied() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let name = storage.pg_database.clone().unwrap();
    // First start: a fresh database gets migrated.
    let app = spawn(&storage, &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let access = b.access();
    let versions = storage
        .sql_rows("SELECT count(*) FROM _sqlx_migrations")
        .await;
    let applied: i64 = versions[0][0].parse().unwrap();
    assert!(applied >= 5, "{versions:?}");
    drop(app);

    // Now nobody may write (as on a hot standby): a start that ran any DDL would fail.
    storage
        .sql(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .await;
    let app = spawn(&storage, &[]).await;
    expect(
        reqwest::get(app.url("/healthz")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
    // Reads work: the signed-in user's profile.
    assert_eq!(app.bearer_me(&access).await, StatusCode::OK);
    // A write is refused by the database: 503 naming the dependency, never 500.
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": "ro@example.com", "password": "correct horse battery", "name": "R" }),
        )
        .await;
    let e = expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(e["detail"].is_string(), "{e}");
    assert_eq!(e["code"], "service_unavailable", "{e}");
    assert_eq!(e["dependency"], "database", "{e}");
    let still: i64 = storage
        .sql_rows("SELECT count(*) FROM _sqlx_migrations")
        .await[0][0]
        .parse()
        .unwrap();
    assert_eq!(still, applied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_as_a_role_that_cannot_create_tables() {
    use sqlx::Connection;
    let storage = Arc::new(Storage::new(Mode::Production).await);
    drop(spawn(&storage, &[]).await); // migrated by the owner
    let role = crate::helpers::app::unique("mbpanel_app_");
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_owned(),
    ] {
        storage.sql(&sql).await;
    }
    let mut url = url::Url::parse(&storage.database_url().unwrap()).unwrap();
    url.set_username(&role).unwrap();
    // The role really cannot run the start-up's old DDL.
    let mut conn = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
    let refused = sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations_probe (version BIGINT PRIMARY KEY)",
    )
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("permission denied"),
        "{refused}"
    );
    drop(conn);
    let app = spawn(&storage, &[("DATABASE_URL", url.as_str())]).await;
    let b = app.signed_in(&app.verified_user().await).await;
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    drop(app);
    if let Ok(mut admin) = sqlx::PgConnection::connect(&storage.database_url().unwrap()).await {
        let cleanup = format!("DROP OWNED BY {role}; DROP ROLE {role}");
        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(cleanup))
            .execute(&mut admin)
            .await;
    }
}

/// Waits until `f` answers 200, failing on any 500; returns how long it took.
async fn until_ok<F, Fut>(what: &str, limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let start = Instant::now();
    loop {
        let r = f().await;
        let status = r.status();
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            body(r).await
        );
        if status == StatusCode::OK {
            return start.elapsed();
        }
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE,
            "{what}: unexpected {status}"
        );
        assert!(start.elapsed() < limit, "{what}: still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_host_url_follows_a_failover_to_the_promoted_standby_without_a_restart() {
    let mut primary = PgCluster::primary().await;
    primary.try_sql("CREATE DATABASE mbpanel").await.unwrap();
    let standby = PgCluster::standby_of(&primary).await;
    let in_recovery = standby.try_sql("SELECT pg_is_in_recovery()::text").await;
    assert_eq!(in_recovery.unwrap(), vec![vec!["true".to_owned()]]);
    // A host that is down, the standby, then the primary: the service picks the primary.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres@127.0.0.1:{dead},127.0.0.1:{},127.0.0.1:{}/mbpanel?target_session_attrs=read-write",
        standby.port, primary.port
    );
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let app = spawn(
        &storage,
        &[
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    // The session reached the standby (until the schema's own transaction is replayed there,
    // the table does not exist yet: that is "not yet" too).
    let user_rows = async || {
        standby
            .try_sql_on(
                "mbpanel",
                "SELECT count(*)::text FROM active_sessions WHERE revoked_at IS NULL",
            )
            .await
            .unwrap_or_default()
    };
    for _ in 0..100 {
        if user_rows().await == vec![vec!["1".to_owned()]] {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(user_rows().await, vec![vec!["1".to_owned()]]);

    // The primary dies; the standby is promoted (what an operator or Patroni does).
    primary.stop();
    let failed_over = Instant::now();
    standby.try_sql("SELECT pg_promote()").await.unwrap();
    // Reads and writes come back through the same process: no restart, no 500, same session.
    let took = until_ok("refresh after failover", Duration::from_secs(30), || {
        b.post_csrf("/api/v1/auth/refresh")
    })
    .await;
    let total = failed_over.elapsed();
    eprintln!(
        "failover: service writes again {} ms after the promotion request (first successful refresh after {} ms of polling)",
        total.as_millis(),
        took.as_millis()
    );
    expect(b.me().await, StatusCode::OK).await;
    let fresh = app.verified_user().await;
    expect(app.signed_in(&fresh).await.me().await, StatusCode::OK).await;

    // The keyword form, with the old primary (now down) listed first, starts on the new one.
    let keywords = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} dbname=mbpanel user=postgres target_session_attrs=read-write",
        primary.port, standby.port
    );
    let second = spawn(&storage, &[("DATABASE_URL", keywords.as_str())]).await;
    assert_eq!(second.bearer_me(&b.access()).await, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_skips_hosts_that_are_down_or_read_only() {
    // Two independent clusters: the first read-only, the second read-write.
    let read_only = PgCluster::primary().await;
    let writable = PgCluster::primary().await;
    for c in [&read_only, &writable] {
        c.try_sql("CREATE DATABASE mbpanel").await.unwrap();
    }
    // The read-only one answers, but a read-write target must skip it.
    read_only
        .try_sql("ALTER DATABASE mbpanel SET default_transaction_read_only = on")
        .await
        .unwrap();
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let url = format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/mbpanel?target_session_attrs=read-write",
        read_only.port, writable.port
    );
    let app = spawn(&storage, &[("DATABASE_URL", url.as_str())]).await;
    let user = app.verified_user().await;
    expect(app.signed_in(&user).await.me().await, StatusCode::OK).await;
    let on_writable = writable
        .try_sql_on("mbpanel", "SELECT count(*)::text FROM users")
        .await
        .unwrap();
    assert_eq!(on_writable, vec![vec!["1".to_owned()]]);
    let tables = read_only
        .try_sql_on(
            "mbpanel",
            "SELECT count(*)::text FROM pg_tables WHERE tablename = 'users'",
        )
        .await
        .unwrap();
    assert_eq!(
        tables,
        vec![vec!["0".to_owned()]],
        "nothing ran on the read-only host"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_flow_works_through_pgbouncer_in_transaction_mode() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    // Two server connections for up to ten client connections: statements of different
    // clients share servers between transactions.
    let bouncer = PgBouncer::start(&storage.postgres_address(), 2).await;
    let name = storage.pg_database.clone().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", bouncer.port);
    // The fresh database is migrated through the pooler (transaction-level advisory lock).
    let app = spawn(
        &storage,
        &[
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_STATEMENT_CACHE_CAPACITY", "0"),
        ],
    )
    .await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    expect(owner.me().await, StatusCode::OK).await;
    expect(
        owner.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::OK,
    )
    .await;
    let (_, member) = app.join_team(&owner, team, 3).await;
    let members = expect(
        owner.get(&format!("/api/v1/teams/{team}/members")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 2);
    expect(
        owner.get(&format!("/api/v1/teams/{team}/roles")).await,
        StatusCode::OK,
    )
    .await;
    expect(
        owner.get(&format!("/api/v1/teams/{team}/audit")).await,
        StatusCode::OK,
    )
    .await;
    let r = owner
        .send(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": "Through the pooler" })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    // Concurrent traffic: many clients' statements interleave on two servers.
    let mut users = Vec::new();
    for _ in 0..3 {
        let u = app.verified_user().await;
        users.push(app.signed_in(&u).await);
    }
    users.push(owner);
    users.push(member);
    for round in 0..5 {
        let mut calls = Vec::new();
        for b in &users {
            calls.push(b.get("/api/v1/auth/me"));
            calls.push(b.get("/api/v1/teams"));
        }
        for r in futures::future::join_all(calls).await {
            let status = r.status();
            assert_eq!(status, StatusCode::OK, "round {round}: {}", body(r).await);
        }
        let refreshes = users.iter().map(|b| b.post_csrf("/api/v1/auth/refresh"));
        for r in futures::future::join_all(refreshes).await {
            let status = r.status();
            assert_eq!(status, StatusCode::OK, "round {round}: {}", body(r).await);
        }
    }
    for b in &users {
        expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
        assert_eq!(b.me().await.status(), StatusCode::UNAUTHORIZED);
    }
    let log = bouncer.log();
    assert!(log.contains("127.0.0.1"), "pgbouncer served us: {log}");
    assert!(!log.contains("prepared statement"), "{log}");
    // A second instance starts through the pooler with nothing to migrate.
    let second = spawn(
        &storage,
        &[
            ("DATABASE_URL", url.as_str()),
            ("DATABASE_STATEMENT_CACHE_CAPACITY", "0"),
        ],
    )
    .await;
    expect(
        reqwest::get(second.url("/readyz")).await.unwrap(),
        StatusCode::OK,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refreshes_are_hot_updates() {
    let app = TestApp::spawn(Mode::Production).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let stats = async || {
        let rows = app
            .storage
            .sql_rows(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'active_sessions'",
            )
            .await;
        (
            rows[0][0].parse::<i64>().unwrap(),
            rows[0][1].parse::<i64>().unwrap(),
        )
    };
    let fillfactor = app
        .storage
        .sql_rows("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = 'active_sessions'::regclass")
        .await;
    assert_eq!(fillfactor, vec![vec!["fillfactor=80".to_owned()]]);
    const REFRESHES: i64 = 40;
    for _ in 0..REFRESHES {
        expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    }
    // Statistics reach pg_stat_user_tables within about ten seconds of the last write.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (upd, hot) = loop {
        let (upd, hot) = stats().await;
        if upd >= REFRESHES || Instant::now() > deadline {
            break (upd, hot);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "active_sessions after {REFRESHES} refreshes: n_tup_upd = {upd}, n_tup_hot_upd = {hot}"
    );
    assert!(upd >= REFRESHES, "n_tup_upd = {upd}");
    assert!(hot * 100 >= upd * 95, "HOT {hot} of {upd} updates");
    // The guide's diagnostic by jti still finds the session.
    let jti = app
        .storage
        .sql_rows("SELECT refresh_token_jti FROM active_sessions")
        .await[0][0]
        .clone();
    let found = app
        .storage
        .sql_rows(&format!(
            "SELECT id FROM active_sessions WHERE refresh_token_jti = '{jti}'"
        ))
        .await;
    assert_eq!(found.len(), 1);
}
