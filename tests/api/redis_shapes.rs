//! Redis beyond one server (SPEC §12): every Redis error class is a 503, a Sentinel failover
//! and a Cluster slot migration in the middle of traffic log nobody out and answer no 5xx,
//! and TLS with a private CA works. (The whole suite also runs against each shape: see
//! `scripts/test.sh`.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::app::{Browser, Storage, TestRedis, expect};
use crate::helpers::services::{RedisServer, RedisShapeServers, redis_cli};
use crate::helpers::{Mode, TestApp, TestUser};

async fn app_on(redis: TestRedis, overrides: &[(&str, &str)]) -> TestApp {
    let mut storage = Storage::new(Mode::Production).await;
    storage.redis = redis;
    TestApp::instance(&Arc::new(storage), overrides).await
}

async fn login_status(app: &TestApp, user: &TestUser) -> (StatusCode, serde_json::Value) {
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

async fn assert_redis_unavailable(app: &TestApp, user: &TestUser, what: &str) {
    let (status, body) = login_status(app, user).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["dependency"], "redis", "{what}: {body}");
}

/// OOM, READONLY, MASTERDOWN and CLUSTERDOWN are each a 503 naming Redis, never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_error_class_is_503() {
    // Out of memory: a full Redis with no eviction.
    let full =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]).await;
    let app = app_on(TestRedis::standalone(full.url()), &[]).await;
    let user = app.verified_user().await;
    let mut conn = full.connection().await;
    // Big values first, then small ones to the brim.
    for size in [64 * 1024, 1024, 64] {
        let filler = "x".repeat(size);
        for i in 0..10_000 {
            if redis::cmd("SET")
                .arg(format!("filler:{size}:{i}"))
                .arg(&filler)
                .query_async::<()>(&mut conn)
                .await
                .is_err()
            {
                break;
            }
        }
    }
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .unwrap();
    let used = info
        .lines()
        .find(|l| l.starts_with("used_memory:"))
        .unwrap_or_default()
        .to_owned();
    assert_redis_unavailable(&app, &user, &format!("OOM ({used})")).await;
    drop(app);

    // A replica whose master is gone: writes answer READONLY ...
    // (Nothing listens on port 1.)
    let dead_port = "1".to_owned();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &dead_port]).await;
    let app = app_on(TestRedis::standalone(replica.url()), &[]).await;
    assert_redis_unavailable(&app, &TestUser::random(), "READONLY").await;
    drop(app);

    // ... and with stale reads refused, everything answers MASTERDOWN.
    let stale = RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &dead_port,
        "--replica-serve-stale-data",
        "no",
    ])
    .await;
    let app = app_on(TestRedis::standalone(stale.url()), &[]).await;
    assert_redis_unavailable(&app, &TestUser::random(), "MASTERDOWN").await;
    let ready = expect(
        app.browser().get("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(ready["checks"]["redis"], "down");
    drop(app);

    // A cluster node that serves no slot: CLUSTERDOWN.
    let lonely = RedisServer::start_with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &format!(
            "/tmp/mbpanel-lonely-{}.conf",
            crate::helpers::app::unique("")
        ),
    ])
    .await;
    let app = app_on(TestRedis::standalone(lonely.url()), &[]).await;
    assert_redis_unavailable(&app, &TestUser::random(), "CLUSTERDOWN").await;
}

/// Traffic that needs Redis on every step: a login (pre-auth key, counters), the session's
/// `/me` and a refresh. Returns the statuses seen.
async fn traffic(app: &TestApp, user: &TestUser, b: &Browser, until: Instant) -> Vec<StatusCode> {
    let mut seen = Vec::new();
    while Instant::now() < until {
        let r = b
            .post(
                "/api/v1/auth/login",
                json!({ "email": user.email, "password": user.password }),
            )
            .await;
        seen.push(r.status());
        seen.push(b.me().await.status());
        seen.push(b.post_csrf("/api/v1/auth/refresh").await.status());
        let _ = app;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

fn assert_no_5xx(seen: &[StatusCode], what: &str) {
    let bad: Vec<_> = seen.iter().filter(|s| s.is_server_error()).collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} answers were 5xx: {bad:?}",
        bad.len(),
        seen.len()
    );
    assert!(seen.len() > 10, "{what}: enough traffic ({})", seen.len());
}

/// An app on the shape, with a signed-in user whose repeated logins the limits let through.
async fn signed_in_for_traffic(servers: &RedisShapeServers) -> (TestApp, TestUser, Browser) {
    let settings = [
        ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "100000"),
        ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "100000"),
    ];
    let app = app_on(servers.test_redis(), &settings).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    expect(b.me().await, StatusCode::OK).await;
    (app, user, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_mid_traffic_logs_nobody_out() {
    let servers = RedisShapeServers::start("sentinel");
    let (app, user, b) = signed_in_for_traffic(&servers).await;
    let sentinel_port = servers.env["TEST_REDIS_SENTINELS"]
        .split(',')
        .next()
        .and_then(|u| u.rsplit(':').next())
        .unwrap()
        .to_owned();
    let master_before = redis_cli(&[
        "-p",
        &sentinel_port,
        "sentinel",
        "get-master-addr-by-name",
        "mymaster",
    ]);

    let traffic_until = Instant::now() + Duration::from_secs(12);
    let load = traffic(&app, &user, &b, traffic_until);
    let failover = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let answer = redis_cli(&["-p", &sentinel_port, "sentinel", "failover", "mymaster"]);
        assert!(answer.contains("OK"), "SENTINEL FAILOVER: {answer}");
    };
    let (seen, ()) = tokio::join!(load, failover);
    let master_after = redis_cli(&[
        "-p",
        &sentinel_port,
        "sentinel",
        "get-master-addr-by-name",
        "mymaster",
    ]);
    assert_ne!(master_before, master_after, "the failover happened");
    assert_no_5xx(&seen, "Sentinel failover");
    // Nobody was logged out; new sign-ins work on the new master.
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let (status, body) = login_status(&app, &user).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_slot_migration_mid_traffic_logs_nobody_out() {
    let servers = RedisShapeServers::start("cluster");
    let (app, user, b) = signed_in_for_traffic(&servers).await;
    let ports = servers.ports();
    let node_id = |port: u16| {
        redis_cli(&["-p", &port.to_string(), "cluster", "myid"])
            .trim()
            .to_owned()
    };
    let (from, to) = (node_id(ports[0]), node_id(ports[1]));
    let entry = format!("127.0.0.1:{}", ports[0]);

    let traffic_until = Instant::now() + Duration::from_secs(12);
    let load = traffic(&app, &user, &b, traffic_until);
    let reshard = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let out = tokio::process::Command::new("redis-cli")
            .args([
                "--cluster",
                "reshard",
                &entry,
                "--cluster-from",
                &from,
                "--cluster-to",
                &to,
                "--cluster-slots",
                "3000",
                "--cluster-yes",
                "--cluster-pipeline",
                "10",
            ])
            .output()
            .await
            .expect("redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "reshard: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (seen, ()) = tokio::join!(load, reshard);
    assert_no_5xx(&seen, "slot migration");
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let ready = expect(b.get("/readyz").await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["redis"], "ok");
}

/// A Redis that speaks only TLS, with a certificate from a CA made for the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let servers = RedisShapeServers::start("tls");
    let redis = servers.test_redis();
    let app = app_on(redis.clone(), &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    expect(b.me().await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    // Without the CA the server's certificate is not trusted: Redis is unavailable (503).
    let TestRedis::Url { url, .. } = redis else {
        unreachable!()
    };
    let untrusting = app_on(TestRedis::standalone(url), &[]).await;
    assert_redis_unavailable(&untrusting, &user, "untrusted certificate").await;
}
