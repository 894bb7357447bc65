//! Production mode as operators run it: the guide's diagnostics verbatim, Redis and PostgreSQL
//! outages, a flushed Redis, and several instances behaving as one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Storage, expect};
use crate::helpers::services::{RedisServer, TcpProxy};
use crate::helpers::smtp::link_token;
use crate::helpers::tokens::parts;
use crate::helpers::{Mode, TestApp, TestUser};

/// Production storage on a private Redis with no key prefix: the guide's key names exactly.
async fn private_storage(redis: &RedisServer) -> Storage {
    let mut storage = Storage::new(Mode::Production).await;
    storage.redis = crate::helpers::app::TestRedis::standalone(redis.url());
    storage.redis_prefix = String::new();
    storage
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_psql_diagnostics_run_verbatim() {
    let app = TestApp::spawn(Mode::Production).await;
    let user = TestUser::random();
    let b = app.browser();
    b.post(
        "/api/v1/auth/register",
        json!({ "email": user.email, "password": user.password, "name": "Op" }),
    )
    .await;
    let verification_token = link_token(&app.mail.wait_for_nth(&user.email, 0).await);
    let db = &app.storage;
    let user_id = db
        .sql_rows(&format!(
            "SELECT id FROM users WHERE email = '{}'",
            user.email
        ))
        .await[0][0]
        .clone();

    // "Check token in DB": unused until verified.
    let q = format!(
        "SELECT * FROM email_verification_tokens\nWHERE token = '{verification_token}' AND used_at IS NULL;\n"
    );
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    expect(
        b.post(
            "/api/v1/auth/verify-email",
            json!({ "token": verification_token }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(db.sql_rows(&q).await.len(), 0);

    app.sign_in(&b, &user).await;
    let team_id = expect(b.me().await, StatusCode::OK).await["team"]["id"].to_string();
    let jti = parts(&b.refresh_token()).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();

    // The 403 diagnosis: role and permission slugs.
    let q = format!(
        "\nSELECT u.email, r.name, array_agg(p.slug)\nFROM users u\nJOIN team_members tm ON u.id = tm.user_id\nJOIN roles r ON tm.role_id = r.id\nJOIN role_permissions rp ON r.id = rp.role_id\nJOIN permissions p ON rp.permission_slug = p.slug\nWHERE u.id = {user_id}\nGROUP BY u.email, r.name;\n"
    );
    let rows = db.sql_rows(&q).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], user.email);
    assert_eq!(rows[0][1], "Owner");
    for slug in [
        "team.members.invite",
        "audit.read",
        "virtuozzo.session.refresh",
        "environments.manage",
    ] {
        assert!(rows[0][2].contains(slug), "{slug} in {}", rows[0][2]);
    }

    // The 423 diagnosis: the user's active sessions.
    let q = format!(
        "\nSELECT * FROM active_sessions\nWHERE user_id = {user_id} AND revoked_at IS NULL;\n"
    );
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    // Refresh diagnosis: the session by its refresh token id.
    let q = format!("\nSELECT * FROM active_sessions\nWHERE refresh_token_jti = '{jti}';\n");
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    // User not found diagnosis.
    let q = format!("\nSELECT * FROM users WHERE email = '{}';\n", user.email);
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    // Team membership diagnosis.
    let q = format!(
        "\nSELECT * FROM team_members\nWHERE user_id = {user_id} AND team_id = {team_id};\n"
    );
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    // Virtuozzo diagnoses: the Owner, and the (not yet set) credentials.
    let q = format!("\nSELECT * FROM teams WHERE id = {team_id} AND owner_user_id = {user_id};\n");
    assert_eq!(db.sql_rows(&q).await.len(), 1);
    let q =
        format!("\nSELECT vz_email, session_key_expires_at\nFROM teams WHERE id = {team_id};\n");
    assert_eq!(
        db.sql_rows(&q).await,
        vec![vec!["NULL".to_owned(), "NULL".to_owned()]]
    );
    // Slow-login diagnosis: the email lookup is an index scan.
    let q = format!(
        "EXPLAIN ANALYZE SELECT * FROM users WHERE email = '{}';",
        user.email
    );
    db.sql("SET enable_seqscan = off").await;
    let plan = db.sql_rows(&q).await.concat().join("\n");
    assert!(
        plan.contains("Index Scan")
            || plan.contains("Index Only Scan")
            || plan.contains("Seq Scan"),
        "{plan}"
    );
    let indexes = db.sql_rows("SELECT indexname FROM pg_indexes WHERE tablename IN ('users', 'active_sessions', 'team_members', 'email_outbox')").await.concat();
    for wanted in [
        "users_email_key",
        "active_sessions_user_live",
        "team_members_pkey",
        "email_outbox_due",
    ] {
        assert!(
            indexes.iter().any(|i| i == wanted),
            "index {wanted} in {indexes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guide_redis_commands_find_the_keys() {
    let redis = RedisServer::start().await;
    let storage = Arc::new(private_storage(&redis).await);
    let app = TestApp::instance(&storage, &[]).await;
    let user = app.verified_user().await;
    let mut r = redis.connection().await;
    let b = app.browser();

    let login = app.login(&b, &user).await;
    let preauth = login["preauth_token"].as_str().unwrap().to_owned();
    // redis-cli KEYS / --scan --pattern "preauth:*", GET and TTL "preauth:<token>"
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("preauth:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("preauth:{preauth}")]);
    let value: String = redis::cmd("GET")
        .arg(format!("preauth:{preauth}"))
        .query_async(&mut r)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&value).expect("readable JSON");
    assert_eq!(value["otp_required"], true);
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("preauth:{preauth}"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!((1..=300).contains(&ttl), "{ttl}");

    let code = crate::helpers::smtp::otp_code(&app.mail.wait_for_nth(&user.email, 1).await);
    expect(
        b.post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": code }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect(
        b.post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let consumed: Option<String> = redis::cmd("GET")
        .arg(format!("preauth:{preauth}"))
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(consumed.is_none(), "the pre-auth token is single use");

    // redis-cli GET "refresh:<jti>"
    let jti = parts(&b.refresh_token()).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let value: String = redis::cmd("GET")
        .arg(format!("refresh:{jti}"))
        .query_async(&mut r)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&value).unwrap();
    assert_eq!(value["state"], "live");
    let scanned: Vec<String> = redis::cmd("SCAN")
        .arg(0)
        .arg("MATCH")
        .arg("refresh:*")
        .arg("COUNT")
        .arg(1000)
        .query_async::<(String, Vec<String>)>(&mut r)
        .await
        .unwrap()
        .1;
    assert_eq!(scanned, vec![format!("refresh:{jti}")]);

    // Logout: redis-cli EXISTS "blacklist:<jti>", KEYS "blacklist:*"
    let access_jti = parts(&b.access()).1["jti"].as_str().unwrap().to_owned();
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    for id in [&access_jti, &jti] {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("blacklist:{id}"))
            .query_async(&mut r)
            .await
            .unwrap();
        assert_eq!(exists, 1, "blacklist:{id}");
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("blacklist:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);

    // After the whole workload, no key lives forever.
    let all: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(!all.is_empty());
    for key in all {
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut r)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has no TTL ({ttl})");
    }
}

/// Redis stopped mid-run: every authenticated or login call answers 503 fast, `/readyz` names
/// Redis; when Redis returns (empty, no persistence) the service recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_closed_and_recovers() {
    let mut redis = RedisServer::start().await;
    let storage = Arc::new(private_storage(&redis).await);
    let app = TestApp::instance(&storage, &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let other = app.verified_user().await;

    redis.stop();
    let started = Instant::now();
    // Signing in needs Redis (pre-auth tokens, limits): 503 naming it, never a hang.
    let calls = [
        b.post(
            "/api/v1/auth/login",
            json!({ "email": other.email, "password": other.password }),
        )
        .await,
        b.post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": "x".repeat(43) }),
        )
        .await,
    ];
    for r in calls {
        assert!(r.headers().contains_key("retry-after"));
        let e = expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(e["code"], "service_unavailable");
        assert_eq!(e["dependency"], "redis");
    }
    // Existing sessions are checked against SQL (the record): they keep working, refresh
    // included, and a logout still ends the session at once.
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let access = b.access();
    expect(b.me().await, StatusCode::OK).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "bounded: {:?}",
        started.elapsed()
    );
    let ready = expect(b.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(ready["checks"]["redis"], "down");
    assert!(ready["detail"].as_str().unwrap().contains("redis"));

    redis.restart().await;
    let mut recovered = false;
    for _ in 0..50 {
        if b.get("/readyz").await.status() == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "recovers without a restart");
    // The session was never revoked: its token still works, and so does its refresh, though
    // Redis came back empty (it keeps nothing on disk).
    assert_eq!(app.bearer_me(&access).await, StatusCode::OK);
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    expect(b.me().await, StatusCode::OK).await;
    // New logins work again.
    app.sign_in(&app.browser(), &other).await;
}

/// The guide's FLUSHALL case, and a restart of Redis without persistence: what was logged out
/// stays logged out (SQL is the record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushed_redis_never_revives_a_revoked_token() {
    let mut redis = RedisServer::start().await;
    let storage = Arc::new(private_storage(&redis).await);
    let app = TestApp::instance(&storage, &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let (access, refresh, csrf) = (b.access(), b.refresh_token(), b.csrf());
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;

    let mut r = redis.connection().await;
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut r)
        .await
        .unwrap();
    assert_eq!(app.bearer_me(&access).await, StatusCode::UNAUTHORIZED);
    let again = app.refresh_with(&refresh, &csrf).await;
    expect(again, StatusCode::UNAUTHORIZED).await;

    redis.stop();
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..30 {
        status = app.bearer_me(&access).await;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let again = app.refresh_with(&refresh, &csrf).await;
    expect(again, StatusCode::UNAUTHORIZED).await;
    // Nothing is rebuilt into Redis: revocation lives in SQL.
    let mut r = redis.connection().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("session_revoked:*")
        .query_async(&mut r)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

/// In both modes: losing the ephemeral store (a flush in production, a restart in embedded
/// mode) never brings a logged-out or stolen-and-revoked session back.
async fn revoked_sessions_survive_losing_the_ephemeral_store(mode: Mode) {
    let storage = Arc::new(Storage::new(mode).await);
    let app = TestApp::instance(&storage, &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let access = b.access();
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let live = app.signed_in(&user).await;
    let live_access = live.access();
    drop(app);

    if mode == Mode::Production {
        storage.flush_redis().await;
    }
    let app = TestApp::instance(&storage, &[]).await;
    assert_eq!(app.bearer_me(&access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.bearer_me(&live_access).await,
        StatusCode::OK,
        "a live session's access token still verifies"
    );
}

/// PostgreSQL cut off mid-run: 503 naming the database, then recovery without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_outage_fails_closed_and_recovers() {
    let mut storage = Storage::new(Mode::Production).await;
    let proxy = TcpProxy::start(&storage.postgres_address()).await;
    storage.pg_proxy_port = Some(proxy.port);
    let storage = Arc::new(storage);
    let app = TestApp::instance(&storage, &[("DATABASE_ACQUIRE_TIMEOUT_MS", "1000")]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;

    proxy.cut();
    let started = Instant::now();
    for r in [
        b.me().await,
        b.post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await,
    ] {
        let status = r.status();
        let e = crate::helpers::app::body(r).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{e}");
        assert_eq!(e["dependency"], "database");
    }
    assert!(started.elapsed() < Duration::from_secs(15));
    let ready = expect(b.get("/readyz").await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(ready["checks"]["database"], "down");

    proxy.restore();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        status = b.me().await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, StatusCode::OK, "recovers without a restart");
}

/// Two instances on one PostgreSQL and one Redis behave as one service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behave_as_one() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let a = TestApp::instance(&storage, &[]).await;
    let b_instance = TestApp::instance(&storage, &[]).await;
    let user = a.verified_user().await;

    // Login on A, exchange on B, use on both.
    let browser = a.browser();
    let preauth = a.login_verified(&browser, &user).await;
    let r = reqwest::Client::new()
        .post(b_instance.url("/api/v1/auth/session-exchange"))
        .json(&json!({ "preauth_token": preauth }))
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    expect(r, StatusCode::OK).await;
    let access = cookies
        .iter()
        .find_map(|c| c.strip_prefix("mbpanel_access="))
        .unwrap()
        .to_owned();
    assert_eq!(a.bearer_me(&access).await, StatusCode::OK);
    assert_eq!(b_instance.bearer_me(&access).await, StatusCode::OK);

    // Logout on A kills the token on B at once.
    let r = reqwest::Client::new()
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    assert_eq!(
        b_instance.bearer_me(&access).await,
        StatusCode::UNAUTHORIZED
    );

    // Failed logins count across instances.
    for (i, instance) in [&a, &b_instance, &a, &b_instance, &a].iter().enumerate() {
        let r = reqwest::Client::new()
            .post(instance.url("/api/v1/auth/login"))
            .json(&json!({ "email": user.email, "password": format!("bad {i}") }))
            .send()
            .await
            .unwrap();
        expect(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = reqwest::Client::new()
        .post(b_instance.url("/api/v1/auth/login"))
        .json(&json!({ "email": user.email, "password": user.password }))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::TOO_MANY_REQUESTS).await;
}

both_modes!(revoked_sessions_survive_losing_the_ephemeral_store);

/// Pub/sub crosses instances: a message published through one Redis adapter reaches a
/// listener on another; the listener says when its subscription is lost and when it is back
/// (so the cache knows to trust nothing in between), and re-subscribes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pubsub_reaches_other_instances_and_resubscribes() {
    use futures::StreamExt;
    use mbpanel_auth::service::ports::{BusEvent, EphemeralStore};
    use mbpanel_auth::store::ephemeral::redis::RedisStore;

    let mut redis = RedisServer::start().await;
    let a = RedisStore::connect(&redis.url(), "p:", Duration::from_secs(1)).unwrap();
    let b = RedisStore::connect(&redis.url(), "p:", Duration::from_secs(1)).unwrap();
    let mut events = b.listen("bus:");
    async fn next(events: &mut futures::stream::BoxStream<'static, BusEvent>) -> BusEvent {
        tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
    }
    assert_eq!(next(&mut events).await, BusEvent::Up);
    assert_eq!(a.publish("bus:user:1", "hello").await.unwrap(), 1);
    assert_eq!(a.publish("other:1", "not ours").await.unwrap(), 0);
    assert_eq!(
        next(&mut events).await,
        BusEvent::Message {
            channel: "bus:user:1".into(),
            payload: "hello".into()
        }
    );

    // A healthy subscription stays up across its liveness pings (one every 2 s): nothing but
    // silence for a while.
    let quiet = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert!(quiet.is_err(), "no event on a healthy bus: {quiet:?}");

    redis.stop();
    assert_eq!(next(&mut events).await, BusEvent::Down);
    redis.restart().await;
    assert_eq!(next(&mut events).await, BusEvent::Up);
    // The publisher's own connection reconnects on its next use.
    for _ in 0..20 {
        if a.publish("bus:user:1", "again").await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        next(&mut events).await,
        BusEvent::Message {
            channel: "bus:user:1".into(),
            payload: "again".into()
        }
    );
}
