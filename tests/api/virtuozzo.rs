//! The team's Virtuozzo account, against a local fake of Virtuozzo's sign-in endpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Storage, expect};
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{Mode, TestApp};

const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

/// 0 = accept the right password, 1 = refuse everything, 2 = hang.
#[derive(Clone, Default)]
struct FakeVirtuozzo {
    mode: Arc<AtomicU8>,
    calls: Arc<Mutex<Vec<HashMap<String, String>>>>,
}

async fn signin(
    State(fake): State<FakeVirtuozzo>,
    Form(form): Form<HashMap<String, String>>,
) -> axum::Json<Value> {
    fake.calls.lock().unwrap().push(form.clone());
    match fake.mode.load(Ordering::SeqCst) {
        2 => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            axum::Json(json!({ "result": 0, "session": "late" }))
        }
        1 => axum::Json(json!({ "result": 701, "error": "service unavailable" })),
        _ if form.get("password").map(String::as_str) == Some("vz-secret-pass") => axum::Json(
            json!({ "result": 0, "session": format!("session-{}", fake.calls.lock().unwrap().len()) }),
        ),
        _ => axum::Json(json!({ "result": 702, "error": "invalid credentials" })),
    }
}

impl FakeVirtuozzo {
    async fn start() -> (Self, String) {
        let fake = FakeVirtuozzo::default();
        let router = axum::Router::new()
            .route("/signin", axum::routing::post(signin))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/signin", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, url)
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

async fn spawn(mode: Mode, url: &str) -> TestApp {
    let storage = Arc::new(Storage::new(mode).await);
    let (sink, port) = SmtpSink::start_on(0).await;
    let settings = [
        ("VZ_VIRTUOZZO_SIGNIN_URL", url),
        ("VZ_CREDENTIALS_KEY", KEY_B64),
        ("VZ_TIMEOUT_SECONDS", "1"),
    ];
    TestApp::spawn_on(storage, sink, port, &settings).await
}

async fn owner_stores_credentials_and_refreshes(mode: Mode) {
    let (fake, url) = FakeVirtuozzo::start().await;
    let app = spawn(mode, &url).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let path = format!("/api/v1/teams/{team}/virtuozzo");

    let status = expect(owner.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["status"], "not_configured");
    let body = json!({ "email": "Ops@Example.com", "password": "vz-secret-pass" });
    expect(
        owner.send(reqwest::Method::PUT, &path, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    let status = expect(owner.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["vz_email"], "ops@example.com");
    assert_eq!(status["status"], "no_session");
    assert!(!status.to_string().contains("vz-secret-pass"));
    // Sealed at rest.
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT vz_password_encrypted FROM teams WHERE id = {team}"
        ))
        .await;
    assert!(!rows[0][0].contains("vz-secret-pass") && rows[0][0].len() > 20);

    let r = owner
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    let refreshed = expect(r, StatusCode::OK).await;
    assert!(refreshed["session_key_expires_at"].is_string());
    assert_eq!(
        fake.calls.lock().unwrap()[0]
            .get("email")
            .map(String::as_str),
        Some("ops@example.com")
    );
    assert_eq!(
        fake.calls.lock().unwrap()[0]
            .get("password")
            .map(String::as_str),
        Some("vz-secret-pass")
    );
    let status = expect(owner.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["status"], "active");
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT vz_email, session_key_expires_at FROM teams WHERE id = {team};"
        ))
        .await;
    assert_eq!(rows[0][0], "ops@example.com");
    assert_ne!(rows[0][1], "NULL");
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT vz_session_key_encrypted FROM teams WHERE id = {team}"
        ))
        .await;
    assert!(!rows[0][0].contains("session-1"));

    // Saving credentials clears the session key.
    let body = json!({ "email": "ops@example.com", "password": "vz-secret-pass" });
    expect(
        owner.send(reqwest::Method::PUT, &path, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        expect(owner.get(&path).await, StatusCode::OK).await["status"],
        "no_session"
    );
}

async fn only_the_owner_refreshes(mode: Mode) {
    let (_fake, url) = FakeVirtuozzo::start().await;
    let app = spawn(mode, &url).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    // A custom role holding both Virtuozzo permissions, given to a non-Owner.
    let r = owner.send( reqwest::Method::POST, &format!("/api/v1/teams/{team}/roles"),
        Some(json!({ "name": "Ops", "permissions": ["virtuozzo.session.refresh", "virtuozzo.credentials.manage", "environments.read"] }))).await;
    let ops = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let (_, m) = app.join_team(&owner, team, ops).await;

    let path = format!("/api/v1/teams/{team}/virtuozzo");
    let r = m
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    assert_eq!(expect(r, StatusCode::FORBIDDEN).await["code"], "owner_only");
    let r = m
        .send(
            reqwest::Method::PUT,
            &path,
            Some(json!({ "email": "a@example.com", "password": "x" })),
        )
        .await;
    assert_eq!(expect(r, StatusCode::FORBIDDEN).await["code"], "owner_only");
    expect(m.get(&path).await, StatusCode::OK).await;
    // A Viewer lacks the permission outright; a stranger is not a member.
    let stranger = app.signed_in(&app.verified_user().await).await;
    let r = stranger
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["detail"],
        "Not a member of team"
    );
}

/// Stale credentials never lock the Owner out: the exchange succeeds, the team's status says
/// the sign-in failed (so the Owner can fix the credentials), and the explicit refresh keeps
/// the guide's 503 "Virtuozzo session refresh failed".
async fn owner_exchange_survives_a_failed_virtuozzo_sign_in(mode: Mode) {
    let (fake, url) = FakeVirtuozzo::start().await;
    let app = spawn(mode, &url).await;
    let user = app.verified_user().await;
    let owner = app.signed_in(&user).await;
    let team = owner.team_id().await;
    let path = format!("/api/v1/teams/{team}/virtuozzo");
    let body = json!({ "email": "ops@example.com", "password": "vz-secret-pass" });
    expect(
        owner.send(reqwest::Method::PUT, &path, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    expect(owner.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;

    // Virtuozzo refuses: the Owner still gets in, and sees why the key is missing.
    fake.mode.store(1, Ordering::SeqCst);
    let b = app.browser();
    let preauth = app.login_verified(&b, &user).await;
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let status = expect(b.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["status"], "refresh_failed");
    assert!(status["refresh_failed_at"].is_string(), "{status}");
    let r = b
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    let e = expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(e["detail"], "Virtuozzo session refresh failed");
    // Virtuozzo hangs: bounded by VZ_TIMEOUT_SECONDS.
    fake.mode.store(2, Ordering::SeqCst);
    let started = Instant::now();
    let r = b
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Virtuozzo works again: the refresh stores the key and the failure is no longer shown.
    fake.mode.store(0, Ordering::SeqCst);
    let before = fake.calls();
    let r = b
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    expect(r, StatusCode::OK).await;
    assert_eq!(fake.calls(), before + 1);
    let status = expect(b.get(&path).await, StatusCode::OK).await;
    assert_eq!(status["status"], "active");
    assert!(status["refresh_failed_at"].is_null());
    let rows = app.storage.sql_rows(&format!("SELECT COUNT(*) FROM audit_log WHERE event = 'virtuozzo_session_refresh_failed' AND team_id = {team}")).await;
    assert_eq!(rows[0][0], "3");
}

async fn a_changed_credentials_key_is_a_failed_refresh_not_a_crash(mode: Mode) {
    let (_fake, url) = FakeVirtuozzo::start().await;
    let app = spawn(mode, &url).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let path = format!("/api/v1/teams/{team}/virtuozzo");
    let body = json!({ "email": "ops@example.com", "password": "vz-secret-pass" });
    expect(
        owner.send(reqwest::Method::PUT, &path, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    let storage = Arc::clone(&app.storage);
    drop(app);
    // Restarted with another key: the stored password no longer opens.
    let (sink, port) = SmtpSink::start_on(0).await;
    let other_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 other bytes
    let settings = [
        ("VZ_VIRTUOZZO_SIGNIN_URL", url.as_str()),
        ("VZ_CREDENTIALS_KEY", other_key),
        ("VZ_TIMEOUT_SECONDS", "1"),
    ];
    let app = TestApp::spawn_on(storage, sink, port, &settings).await;
    let r = reqwest::Client::new()
        .post(app.url(&format!("{path}/refresh")))
        .bearer_auth(owner.access())
        .send()
        .await
        .unwrap();
    let e = expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(e["detail"], "Virtuozzo session refresh failed");
}

both_modes!(
    a_changed_credentials_key_is_a_failed_refresh_not_a_crash,
    owner_stores_credentials_and_refreshes,
    only_the_owner_refreshes,
    owner_exchange_survives_a_failed_virtuozzo_sign_in,
    why_and_doctor_explain_a_failed_refresh,
);

/// The guide's "Session key refresh fails": `why <owner>` shows the failed refresh with
/// Virtuozzo's reason and the fix; `doctor` names an unreachable Virtuozzo.
async fn why_and_doctor_explain_a_failed_refresh(mode: Mode) {
    let (fake, url) = FakeVirtuozzo::start().await;
    let app = spawn(mode, &url).await;
    let user = app.verified_user().await;
    let owner = app.signed_in(&user).await;
    let team = owner.team_id().await;
    let path = format!("/api/v1/teams/{team}/virtuozzo");
    let body = json!({ "email": "ops@example.com", "password": "a-wrong-password" });
    expect(
        owner.send(reqwest::Method::PUT, &path, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    let r = owner
        .send(reqwest::Method::POST, &format!("{path}/refresh"), None)
        .await;
    expect(r, StatusCode::SERVICE_UNAVAILABLE).await;
    let (ok, said) = crate::cli::cli(&app, &[], &["why", &user.email]);
    assert!(ok, "{said}");
    assert!(
        said.contains(&format!(
            "team {team}: the team's Virtuozzo session key refresh failed"
        )) && said.contains("Check VZ credentials are correct"),
        "{said}"
    );
    let (_, said) = crate::cli::cli(&app, &[], &["doctor"]);
    assert!(
        said.contains("virtuozzo") && said.contains("reachable"),
        "{said}"
    );
    assert_eq!(fake.calls(), 1);

    // Virtuozzo's address does not answer.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/signin", closed.local_addr().unwrap());
    drop(closed);
    let (ok, said) = crate::cli::cli(&app, &[("VZ_VIRTUOZZO_SIGNIN_URL", &dead)], &["doctor"]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("unreachable") && said.contains("Check VZ API is accessible"),
        "{said}"
    );
}
