//! Operability: each diagnosis command says what the server does and why, with the guide's fix;
//! refusals are logged with their code and request id; transport headers.

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::cli::cli;
use crate::helpers::app::{JWT_SECRET, expect};
use crate::helpers::tokens::{parts, sign_hs256};
use crate::helpers::{Mode, TestApp};

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `token decode`'s verdict must be `/auth/me`'s: returns what the CLI said.
async fn decode_agrees(app: &TestApp, token: &str, accepted: bool) -> String {
    let (ok, said) = cli(app, &[], &["token", "decode", token]);
    let status = app.bearer_me(token).await;
    assert_eq!(
        status == StatusCode::OK,
        accepted,
        "server said {status}; cli said {said}"
    );
    assert_eq!(ok, accepted, "{said}");
    let verdict = if accepted {
        "verdict:   accepted"
    } else {
        "verdict:   refused"
    };
    assert!(said.contains(verdict), "{said}");
    if !accepted {
        assert!(said.contains("fix:"), "a refusal names its fix: {said}");
    }
    said
}

/// A token for the session of `access` with some claims changed, signed with the server's key.
fn resigned(access: &str, change: impl FnOnce(&mut Value)) -> String {
    let (header, mut claims, _) = parts(access);
    claims["jti"] = json!(format!("{}x", claims["jti"].as_str().unwrap()));
    change(&mut claims);
    sign_hs256(&header, &claims, JWT_SECRET.as_bytes())
}

async fn me_ids(b: &crate::helpers::app::Browser) -> (i64, i64, i64) {
    let me = expect(b.me().await, StatusCode::OK).await;
    (
        me["user"]["id"].as_i64().unwrap(),
        me["session"]["id"].as_i64().unwrap(),
        me["team"]["id"].as_i64().unwrap(),
    )
}

async fn token_decode_tells_the_servers_truth(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = app.signed_in(&app.verified_user().await).await;
    let access = alice.access();
    let said = decode_agrees(&app, &access, true).await;
    assert!(
        said.contains("signature: valid") && said.contains(": active (last seen"),
        "{said}"
    );
    let (alice_id, alice_sid, _) = me_ids(&alice).await;

    // A refresh token: what /auth/refresh would do with it.
    let refresh = alice.refresh_token();
    let (ok, said) = cli(&app, &[], &["token", "decode", &refresh]);
    assert!(ok && said.contains("its current refresh token"), "{said}");

    // A session that does not exist.
    let missing = resigned(&access, |c| c["sid"] = json!(alice_sid + 100_000));
    let said = decode_agrees(&app, &missing, false).await;
    assert!(said.contains("does not exist"), "{said}");

    // Another user's session: refused, and that session's state is not shown.
    let bob = app.signed_in(&app.verified_user().await).await;
    let (bob_id, _, _) = me_ids(&bob).await;
    let stolen = resigned(&access, |c| c["sub"] = json!(bob_id.to_string()));
    let said = decode_agrees(&app, &stolen, false).await;
    assert!(said.contains("belongs to another user"), "{said}");
    assert!(!said.contains(": active"), "{said}");

    // Another service's key, with its kid: named; no session of ours is looked up.
    let (mut header, claims, _) = parts(&access);
    header["kid"] = json!("0123456789abcdef");
    let foreign = sign_hs256(
        &header,
        &claims,
        b"another-service-key-of-at-least-32-bytes",
    );
    let said = decode_agrees(&app, &foreign, false).await;
    assert!(
        said.contains("UNKNOWN KEY") && said.contains("JWT_SECRET_KEY"),
        "{said}"
    );
    assert!(!said.contains("session:"), "{said}");

    // PyJWT's default: no kid at all, signed with a different secret.
    let pyjwt_header = json!({ "alg": "HS256", "typ": "JWT" });
    let pyjwt = sign_hs256(
        &pyjwt_header,
        &claims,
        b"another-service-key-of-at-least-32-bytes",
    );
    let said = decode_agrees(&app, &pyjwt, false).await;
    assert!(
        said.contains("signed with a different JWT_SECRET_KEY?"),
        "{said}"
    );
    assert!(!said.contains("session:"), "{said}");

    // Idle: not used within REFRESH_IDLE_TIMEOUT_MINUTES (the session is not cached yet).
    let carol = app.signed_in(&app.verified_user().await).await;
    let carol_access = carol.access();
    let (_, carol_claims, _) = parts(&carol_access);
    let carol_sid = carol_claims["sid"].as_i64().unwrap();
    let long_ago = (now_s() - 3 * 3600) * 1000;
    app.storage
        .sql(&format!(
            "UPDATE active_sessions SET last_seen_at = {long_ago}, created_at = {long_ago} WHERE id = {carol_sid}"
        ))
        .await;
    let idle = resigned(&carol_access, |c| c["iat"] = json!(now_s() - 3 * 3600));
    let said = decode_agrees(&app, &idle, false).await;
    assert!(said.contains("REFRESH_IDLE_TIMEOUT_MINUTES"), "{said}");

    // Expired: past its absolute lifetime.
    let dave = app.signed_in(&app.verified_user().await).await;
    let dave_access = dave.access();
    let dave_sid = parts(&dave_access).1["sid"].as_i64().unwrap();
    let past = (now_s() - 60) * 1000;
    app.storage
        .sql(&format!(
            "UPDATE active_sessions SET expires_at = {past} WHERE id = {dave_sid}"
        ))
        .await;
    let said = decode_agrees(&app, &dave_access, false).await;
    assert!(said.contains("absolute lifetime"), "{said}");

    // A team the user left.
    let erin = app.signed_in(&app.verified_user().await).await;
    let erin_access = erin.access();
    let (_, erin_claims, _) = parts(&erin_access);
    app.storage
        .sql(&format!(
            "DELETE FROM team_members WHERE user_id = {} AND team_id = {}",
            erin_claims["sub"].as_str().unwrap(),
            erin_claims["team_id"]
        ))
        .await;
    let said = decode_agrees(&app, &erin_access, false).await;
    assert!(said.contains("no longer a member"), "{said}");

    // Logged out: revoked, with the reason in words.
    expect(alice.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let mut said = String::new();
    for _ in 0..40 {
        let (ok, out) = cli(&app, &[], &["token", "decode", &access]);
        said = out;
        if !ok && app.bearer_me(&access).await == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        said.contains("revoked") && said.contains("the user signed out"),
        "{said}"
    );
    assert!(said.contains("User must re-login"), "{said}");
    assert!(alice_id > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_decode_says_redis_does_not_decide_access_tokens() {
    let app = TestApp::spawn(Mode::Production).await;
    if !app.settings.contains_key("REDIS_URL") {
        return; // Sentinel or Cluster shape: this test needs a plain URL to break.
    }
    let b = app.signed_in(&app.verified_user().await).await;
    let access = b.access();
    let (ok, said) = cli(
        &app,
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("REDIS_TIMEOUT_MS", "300"),
        ],
        &["token", "decode", &access],
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("UNREACHABLE") && said.contains("does not matter"),
        "{said}"
    );
    assert_eq!(app.bearer_me(&access).await, StatusCode::OK);
}

async fn why_tells_a_users_story(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": "wrong password entirely" }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let b = app.signed_in(&user).await;
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let (ok, said) = cli(&app, &[], &["why", &user.email]);
    assert!(ok, "{said}");
    let refused = said.find("sign-in refused").expect(&said);
    let revoked = said.find("revoked (logout)").expect(&said);
    assert!(revoked < refused, "newest first: {said}");
    assert!(
        said.contains("the user signed out") && said.contains("what to do"),
        "{said}"
    );
    assert!(said.contains("signed in"), "{said}");

    let (ok, said) = cli(&app, &[], &["why", "nobody@example.com"]);
    assert!(!ok && said.contains("User not found"), "{said}");
}

async fn csrf_check_explains_the_pair(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let csrf = b.csrf();
    let (ok, said) = cli(&app, &[], &["csrf", "check", &csrf, &csrf]);
    assert!(ok && said.contains("verdict:   accepted"), "{said}");

    let (ok, said) = cli(&app, &[], &["csrf", "check", &csrf, "something-else"]);
    assert!(!ok && said.contains("differs"), "{said}");

    let mut forged = csrf.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let (ok, said) = cli(&app, &[], &["csrf", "check", &forged, &forged]);
    assert!(!ok && said.contains("INVALID"), "{said}");

    let (ok, said) = cli(&app, &[], &["csrf", "check", "garbage", "garbage"]);
    assert!(!ok && said.contains("not a CSRF token"), "{said}");

    let (ok, said) = cli(&app, &[], &["csrf", "check", &csrf, ""]);
    assert!(
        !ok && said.contains("X-CSRF-Token header is not sent"),
        "{said}"
    );
}

async fn ratelimit_show_and_clear(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    if mode == Mode::Embedded {
        let (ok, said) = cli(&app, &[], &["ratelimit", "show", &user.email]);
        assert!(!ok && said.contains("embedded mode"), "{said}");
        return;
    }
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = app
            .browser()
            .post(
                "/api/v1/auth/login",
                json!({ "email": user.email.to_uppercase(), "password": "wrong password entirely" }),
            )
            .await
            .status();
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    let (ok, said) = cli(&app, &[], &["ratelimit", "show", &user.email]);
    assert!(ok, "{said}");
    assert!(
        said.contains("ratelimit:login:account:") && said.contains("BLOCKING (429)"),
        "{said}"
    );
    let (ok, said) = cli(&app, &[], &["why", &user.email]);
    assert!(ok && said.contains("sign-in is blocked (429)"), "{said}");
    assert!(
        said.contains("blocked") && said.contains("ratelimit clear"),
        "{said}"
    );

    let (ok, said) = cli(&app, &[], &["ratelimit", "clear", &user.email]);
    assert!(ok && said.contains("ratelimit:login:account:"), "{said}");
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let (_, said) = cli(&app, &[], &["why", &user.email]);
    assert!(
        said.contains("an operator cleared the rate limits"),
        "{said}"
    );

    let (ok, said) = cli(&app, &[], &["ratelimit", "show", "127.0.0.1"]);
    assert!(
        ok && said.contains("ratelimit:login:ip:127.0.0.1"),
        "{said}"
    );
}

async fn approvals_list_and_decide(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    if mode == Mode::Embedded {
        let (ok, said) = cli(&app, &[], &["approvals", "list", &user.email]);
        assert!(!ok && said.contains("embedded mode"), "{said}");
        return;
    }
    let second = app.browser();
    let preauth = app.login_verified(&second, &user).await;
    let exchange = json!({ "preauth_token": preauth });
    let pending = expect(
        second
            .post("/api/v1/auth/session-exchange", exchange.clone())
            .await,
        StatusCode::LOCKED,
    )
    .await;
    let token = pending["token"].as_str().unwrap().to_owned();
    let (ok, said) = cli(&app, &[], &["approvals", "list", &user.email]);
    assert!(ok && said.contains(&token), "{said}");
    let (ok, said) = cli(&app, &[], &["why", &user.email]);
    assert!(
        ok && said.contains("waits (423)") && said.contains(&token),
        "{said}"
    );

    let (ok, said) = cli(&app, &[], &["approvals", "decide", &token, "approve"]);
    assert!(ok && said.contains("approved"), "{said}");
    expect(
        second.post("/api/v1/auth/session-exchange", exchange).await,
        StatusCode::OK,
    )
    .await;
    let (ok, said) = cli(&app, &[], &["approvals", "decide", &token, "deny"]);
    assert!(
        !ok && (said.contains("already decided") || said.contains("not found")),
        "{said}"
    );
    let (_, said) = cli(&app, &[], &["why", &user.email]);
    assert!(said.contains("was approved (via operator)"), "{said}");
    drop(first);
}

async fn doctor_names_instances_and_the_servers_state(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let address = app.settings["BIND_ADDR"].clone();
    let (ok, said) = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]);
    assert!(ok, "{said}");
    if mode == Mode::Embedded {
        assert!(
            said.lines()
                .any(|l| l.starts_with("PASS") && l.contains("server") && l.contains(&address)),
            "{said}"
        );
        return;
    }
    // The instance is named by its address.
    assert!(said.contains(&address), "{said}");
    let other = [
        ("EMAIL_BACKEND", "log"),
        (
            "JWT_SECRET_KEY",
            "another-key-that-is-at-least-32-bytes-long",
        ),
    ];
    let (ok, said) = cli(&app, &other, &["doctor"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("FAIL  JWT key fingerprint") && said.contains(&address),
        "{said}"
    );

    // A second instance stopped cleanly is gone at once.
    let mut settings = app.settings.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let second_address = format!("127.0.0.1:{port}");
    settings.insert("BIND_ADDR".into(), second_address.clone());
    let config =
        mbpanel_auth::config::Config::from_env(&mbpanel_auth::config::Env::from_map(settings))
            .unwrap();
    let second = mbpanel_auth::app::Application::build_with(
        config,
        app.storage.clock.clone(),
        Some(listener),
    )
    .await
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(second.run_until(async move {
        let _ = stopped.await;
    }));
    let mut said = String::new();
    for _ in 0..50 {
        said = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]).1;
        if said.contains(&second_address) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(said.contains("2 running instance(s)"), "{said}");
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    let (ok, said) = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]);
    assert!(ok && said.contains("1 running instance(s)"), "{said}");
    assert!(!said.contains(&second_address), "{said}");

    // After a flush of the announcements, doctor does not pass on "0 running instances".
    let mut r = app.storage.redis().await;
    let pattern = format!("{}instance:*", app.storage.redis_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut r)
        .await
        .unwrap();
    for key in keys {
        redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut r)
            .await
            .unwrap();
    }
    let (ok, said) = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("FAIL  JWT key fingerprint") && said.contains("flushed"),
        "{said}"
    );
}

fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_echoed_only_when_well_formed() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let client = raw_client();
    let url = app.url("/healthz");
    let r = client
        .get(&url)
        .header("X-Request-Id", "abc-123_x.Y")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), "abc-123_x.Y");
    let exactly_64 = "a".repeat(64);
    let r = client
        .get(&url)
        .header("X-Request-Id", &exactly_64)
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r), exactly_64);
    for bad in [
        "a".repeat(65),
        "has spaces in it".into(),
        "x\"<script>".into(),
    ] {
        let r = client
            .get(&url)
            .header("X-Request-Id", &bad)
            .send()
            .await
            .unwrap();
        let echoed = id_of(&r);
        assert!(!echoed.is_empty() && echoed != bad, "{bad} → {echoed}");
        assert!(echoed.len() <= 64);
    }
    let r = client.get(&url).send().await.unwrap();
    assert!(!id_of(&r).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_logged_with_code_and_request_id_never_the_token() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mbpanel-auth"))
        .arg("serve")
        .env_clear()
        .envs(&app.settings)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
    }
    let base = format!("http://127.0.0.1:{port}");
    let client = raw_client();
    let mut up = false;
    for _ in 0..100 {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "{:?}", lines.lock().unwrap());
    let secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2VuLXRleHQ.c2lnbmF0dXJl";
    let r = client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(secret)
        .header("X-Request-Id", "refusal-test-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .get(format!("{base}/api/v1/no-such-thing?token={secret}"))
        .header("X-Request-Id", "refusal-test-2")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let ok = client
        .get(format!("{base}/healthz"))
        .header("X-Request-Id", "fine-request-3")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let mut found = (false, false);
    for _ in 0..50 {
        let all = lines.lock().unwrap().clone();
        let refused = |id: &str, code: &str| {
            all.iter()
                .any(|l| l.contains("request_refused") && l.contains(id) && l.contains(code))
        };
        found = (
            refused("refusal-test-1", "not_authenticated"),
            refused("refusal-test-2", "not_found"),
        );
        if found == (true, true) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let all = lines.lock().unwrap().clone();
    assert_eq!(found, (true, true), "{all:#?}");
    let refusals = all.iter().filter(|l| l.contains("request_refused")).count();
    assert_eq!(
        refusals, 2,
        "one line per refusal, none for a 200: {all:#?}"
    );
    assert!(
        !all.iter().any(|l| l.contains("c2VjcmV0LXRva2VuLXRleHQ")),
        "a token in the log: {all:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_only_over_https() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let r = raw_client().get(app.url("/healthz")).send().await.unwrap();
    assert!(r.headers().get("strict-transport-security").is_none());

    let app =
        TestApp::spawn_with(Mode::Embedded, &[("BASE_URL", "https://auth.example.com")]).await;
    let r = raw_client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        r.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_for_the_ui_and_json_never_for_the_event_stream() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let client = raw_client();
    let encoding = |r: &reqwest::Response| {
        r.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let r = client
        .get(app.url("/"))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(encoding(&r).as_deref(), Some("gzip"));
    let r = client
        .get(app.url("/api/v1/openapi.json"))
        .header("Accept-Encoding", "br")
        .send()
        .await
        .unwrap();
    assert_eq!(encoding(&r).as_deref(), Some("br"));
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Without Accept-Encoding: plain.
    let r = client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(encoding(&r), None);

    let b = app.signed_in(&app.verified_user().await).await;
    let r = client
        .get(app.url("/api/v1/auth/events"))
        .bearer_auth(b.access())
        .header("Accept-Encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(encoding(&r), None);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
}

both_modes!(
    token_decode_tells_the_servers_truth,
    why_tells_a_users_story,
    csrf_check_explains_the_pair,
    ratelimit_show_and_clear,
    approvals_list_and_decide,
    doctor_names_instances_and_the_servers_state,
    times_compare_with_now_in_psql,
    why_explains_a_missing_permission,
    why_explains_links_and_emails,
    why_explains_an_email_that_cannot_leave,
    token_decode_explains_refresh_failures,
    token_decode_explains_an_expired_access_token,
);

/// The guide's readers compare times with `now()`: the millisecond columns compare with a
/// timestamptz directly, and the `readable` schema shows them as timestamps, for every table
/// and column (a later migration that changes a table without rebuilding the views fails here).
async fn times_compare_with_now_in_psql(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (user_id, _, _) = me_ids(&b).await;
    let live = format!(
        "SELECT count(*) FROM active_sessions \
         WHERE user_id = {user_id} AND revoked_at IS NULL AND expires_at > {{now}}"
    );
    if mode == Mode::Embedded {
        // SQLite has no now(): the README gives this form.
        let rows = app
            .storage
            .sql_rows(&live.replace("{now}", "unixepoch('subsec') * 1000"))
            .await;
        assert_eq!(rows, vec![vec!["1".to_string()]]);
        return;
    }
    let rows = app.storage.sql_rows(&live.replace("{now}", "now()")).await;
    assert_eq!(rows, vec![vec!["1".to_string()]], "expires_at > now()");
    for (sql, expected) in [
        (
            format!(
                "SELECT count(*) FROM active_sessions WHERE user_id = {user_id} AND expires_at < now()"
            ),
            "0",
        ),
        (
            format!(
                "SELECT count(*) FROM active_sessions WHERE user_id = {user_id} AND now() < expires_at AND created_at >= now() - interval '5 minutes' AND created_at <= now()"
            ),
            "1",
        ),
        (
            format!(
                "SELECT count(*) FROM users WHERE id = {user_id} AND email_verified_at <> now() AND deleted_at IS NULL"
            ),
            "1",
        ),
    ] {
        assert_eq!(
            app.storage.sql_rows(&sql).await,
            vec![vec![expected.to_string()]],
            "{sql}"
        );
    }
    // The readable view: a timestamptz, for the same instant as the stored milliseconds.
    let kind = app
        .storage
        .sql_rows(&format!(
            "SELECT pg_typeof(expires_at)::text FROM readable.active_sessions \
             WHERE user_id = {user_id}"
        ))
        .await;
    assert_eq!(kind, vec![vec!["timestamp with time zone".to_string()]]);
    let same: Vec<Vec<String>> = app
        .storage
        .sql_rows(&format!(
            "SELECT ((extract(epoch FROM r.expires_at) * 1000)::bigint = s.expires_at)::text \
             FROM readable.active_sessions r JOIN public.active_sessions s USING (id) \
             WHERE r.user_id = {user_id}"
        ))
        .await;
    assert_eq!(same, vec![vec!["true".to_string()]]);
    // Every table has its view, with every column, and every *_at millisecond column shown as
    // a timestamp.
    let drift = app
        .storage
        .sql_rows(
            "SELECT c.table_name || '.' || c.column_name || ' ' || c.data_type || ' -> ' \
                    || coalesce(v.data_type, 'missing') \
             FROM information_schema.columns c \
             LEFT JOIN information_schema.columns v \
               ON v.table_schema = 'readable' AND v.table_name = c.table_name \
              AND v.column_name = c.column_name \
             WHERE c.table_schema = current_schema() \
               AND c.table_name NOT IN ('schema_migrations', '_sqlx_migrations') \
               AND (v.data_type IS NULL \
                    OR (c.data_type = 'bigint' AND c.column_name LIKE '%\\_at' \
                        AND v.data_type <> 'timestamp with time zone') \
                    OR (NOT (c.data_type = 'bigint' AND c.column_name LIKE '%\\_at') \
                        AND v.data_type <> c.data_type)) \
             ORDER BY 1",
        )
        .await;
    assert!(
        drift.is_empty(),
        "the readable views differ from the tables (end the migration with \
         `SELECT mbpanel_readable_views();`): {drift:?}"
    );
}

/// The guide's 403 "Missing permission": `why` names the permission, the team and the role
/// that lacks it, and lists the user's teams with their permissions. Repeating the refused
/// request adds no audit rows.
async fn why_explains_a_missing_permission(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
            ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
        ],
    )
    .await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member_role = crate::teams::role_id(&owner, team, "Member").await;
    let (member, b) = app.join_team(&owner, team, member_role).await;
    for _ in 0..3 {
        let r = b
            .send(
                reqwest::Method::PUT,
                &format!("/api/v1/teams/{team}/roles/{member_role}/permissions"),
                Some(json!({ "permissions": ["audit.read"] })),
            )
            .await;
        let e = expect(r, StatusCode::FORBIDDEN).await;
        assert_eq!(e["detail"], "Missing permission: team.roles.manage");
    }
    let (ok, said) = cli(&app, &[], &["why", &member.email]);
    assert!(ok, "{said}");
    assert!(
        said.contains("Missing permission: team.roles.manage")
            && said.contains(&format!("in team {team}: the role Member lacks it"))
            && said.contains("Check user's role/permissions"),
        "{said}"
    );
    let line = said
        .lines()
        .find(|l| l.starts_with(&format!("TEAM  {team} ")))
        .unwrap_or_else(|| panic!("no TEAM line for {team}: {said}"));
    assert!(
        line.contains("as Member") && line.contains("team.members.read"),
        "{line}"
    );
    assert!(!line.contains("team.roles.manage"), "{line}");
    let rows = app
        .storage
        .sql_rows("SELECT count(*) FROM audit_log WHERE event = 'permission_denied'")
        .await;
    assert_eq!(
        rows,
        vec![vec!["1".to_string()]],
        "one row for three refusals"
    );
}

/// The guide's email section: a link that was used or expired says so, with "Request new
/// verification email"; an email that cannot leave ("OTP not received") shows the provider's
/// error and the fix, and one that left says where to look.
async fn why_explains_links_and_emails(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = crate::helpers::TestUser::random();
    app.register_and_verify(&user).await;
    // The verification link is used: clicking it again is "Token expired or invalid".
    let (ok, said) = cli(&app, &[], &["why", &user.email]);
    assert!(ok, "{said}");
    assert!(
        said.contains("a verification link was issued; used at")
            && said.contains("cannot be used again"),
        "{said}"
    );
    assert!(
        said.contains("a verification email (email-verification) was handed to the email provider")
            && said.contains("check spam folder"),
        "{said}"
    );
    // A reset link left to expire.
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": user.email }),
        )
        .await;
    assert!(r.status().is_success(), "{}", r.status());
    app.mail.wait_for_containing(&user.email, 0, "reset").await;
    app.storage
        .sql("UPDATE password_reset_tokens SET expires_at = 1000")
        .await;
    let (_, said) = cli(&app, &[], &["why", &user.email]);
    assert!(
        said.contains("a password-reset link was issued; expired at")
            && said.contains("PASSWORD_RESET_TOKEN_TTL_MINUTES")
            && said.contains("Request a new reset link"),
        "{said}"
    );
}

async fn why_explains_an_email_that_cannot_leave(mode: Mode) {
    // The SMTP server is down: the code email stays in the outbox with its error.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let storage = Arc::new(crate::helpers::app::Storage::new(mode).await);
    let app = TestApp::spawn_on(
        Arc::clone(&storage),
        crate::helpers::smtp::SmtpSink::default(),
        port,
        &[],
    )
    .await;
    let user = crate::helpers::TestUser::random();
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": "N" }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let mut said = String::new();
    for _ in 0..100 {
        said = cli(&app, &[], &["why", &user.email]).1;
        if said.contains("failed attempts") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        said.contains("a verification email (email-verification) is not sent yet")
            && said.contains("Check Postmark API key is valid")
            && said.contains("SMTP_URL"),
        "{said}"
    );
}

/// The guide's "Slow login" and "High memory usage": doctor names a missing hot-path index and
/// keys left without a TTL, each with its fix.
async fn doctor_names_missing_indexes_and_keys_without_ttl() {
    let app = TestApp::spawn(Mode::Production).await;
    let (ok, said) = cli(&app, &[], &["doctor"]);
    assert!(ok, "{said}");
    app.storage
        .sql("DROP INDEX active_sessions_user_live")
        .await;
    let mut r = app.storage.redis().await;
    let key = format!("{}stray:forever", app.storage.redis_prefix);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("x")
        .query_async(&mut r)
        .await
        .unwrap();
    let (ok, said) = cli(&app, &[], &["doctor"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("missing: active_sessions_user_live")
            && said.contains("Add database indexes"),
        "{said}"
    );
    assert!(
        said.contains("stray:forever") && said.contains("Set appropriate TTLs"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_slow_login_and_memory_causes() {
    doctor_names_missing_indexes_and_keys_without_ttl().await;
}

/// The guide's "Token refresh fails" and "Refresh token not working": `token decode` of a
/// refresh token says current, just rotated (grace), rotated before (theft: the session ends),
/// or revoked — each with the fix, and agreeing with what `/auth/refresh` does.
async fn token_decode_explains_refresh_failures(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let first = b.refresh_token();
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let second = b.refresh_token();
    assert_ne!(first, second);
    let (ok, said) = cli(&app, &[], &["token", "decode", &first]);
    assert!(ok && said.contains("rotated moments ago"), "{said}");
    // One more rotation: the first token is no longer the one just replaced.
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let third = b.refresh_token();
    let (ok, said) = cli(&app, &[], &["token", "decode", &first]);
    assert!(
        !ok && said.contains("already rotated")
            && said.contains("counts as theft")
            && said.contains("User must re-login"),
        "{said}"
    );
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let (ok, said) = cli(&app, &[], &["token", "decode", &third]);
    assert!(
        !ok && said.contains("was revoked") && said.contains("User must re-login"),
        "{said}"
    );
}

/// The guide's "Redis connection refused": doctor says unreachable and "Check REDIS_URL".
async fn doctor_names_an_unreachable_redis() {
    let app = TestApp::spawn(Mode::Production).await;
    if !app.settings.contains_key("REDIS_URL") {
        return; // Sentinel or Cluster shape: this test needs a plain URL to break.
    }
    let (ok, said) = cli(
        &app,
        &[
            ("REDIS_URL", "redis://127.0.0.1:1"),
            ("REDIS_TIMEOUT_MS", "300"),
        ],
        &["doctor"],
    );
    assert!(!ok, "{said}");
    assert!(
        said.contains("unreachable") && said.contains("Check REDIS_URL"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_names_redis_connection_refused() {
    doctor_names_an_unreachable_redis().await;
}

/// The guide's "Access token expired": refused by the server (401) and by `token decode`,
/// which names the expiry and the fix.
async fn token_decode_explains_an_expired_access_token(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let expired = resigned(&b.access(), |c| {
        c["iat"] = json!(now_s() - 3600);
        c["exp"] = json!(now_s() - 60);
    });
    let said = decode_agrees(&app, &expired, false).await;
    assert!(
        said.contains("expired") && said.contains("Client should call /auth/refresh automatically"),
        "{said}"
    );
}
