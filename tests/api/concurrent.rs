//! Concurrent-login approval: 423 while an existing session decides.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Browser, Storage, expect};
use crate::helpers::smtp::{Mail, SmtpSink};
use crate::helpers::sse::EventStream;
use crate::helpers::{Mode, TestApp, TestUser};

async fn exchange(b: &Browser, preauth: &str) -> reqwest::Response {
    b.post(
        "/api/v1/auth/session-exchange",
        json!({ "preauth_token": preauth }),
    )
    .await
}

/// A second device logs in; returns its browser, pre-auth token and the pending approval token.
async fn second_login(app: &TestApp, user: &TestUser) -> (Browser, String, String) {
    let b = app.browser();
    let preauth = app.login_verified(&b, user).await;
    let pending = expect(exchange(&b, &preauth).await, StatusCode::LOCKED).await;
    assert_eq!(pending["status"], "pending");
    assert_eq!(pending["code"], "concurrent_login_pending");
    let token = pending["token"].as_str().unwrap().to_owned();
    (b, preauth, token)
}

fn links(mail: &Mail) -> (String, String) {
    let find = |label: &str| {
        let start = mail
            .data
            .find(label)
            .unwrap_or_else(|| panic!("{label} link in {}", mail.data))
            + label.len();
        mail.data[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    (find("Approve: "), find("Deny: "))
}

fn query_token(link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned()
}

async fn approve_then_exchange(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let mut events = EventStream::open(&existing.http, &app.url("/api/v1/auth/events")).await;

    let asked = std::time::Instant::now();
    let (newcomer, preauth, token) = second_login(&app, &user).await;
    let event = events
        .wait_for("concurrent_login_requested", Duration::from_secs(1))
        .await
        .expect("the event within a second");
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert_eq!(event["token"], token);
    assert_eq!(event["device"]["user_agent"], "mbpanel-tests/1.0");

    // The waiting client sees pending; repeating the exchange answers the same token.
    let status = expect(
        newcomer
            .get(&format!("/api/v1/auth/concurrent-login/{token}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "pending");
    let again = expect(exchange(&newcomer, &preauth).await, StatusCode::LOCKED).await;
    assert_eq!(again["token"], token);

    // Approval needs CSRF like any cookie-authenticated unsafe request.
    let r = existing
        .http
        .post(app.url(&format!("/api/v1/auth/concurrent-login/{token}/approve")))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::FORBIDDEN).await;
    expect(
        existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
            .await,
        StatusCode::OK,
    )
    .await;
    let status = expect(
        newcomer
            .get(&format!("/api/v1/auth/concurrent-login/{token}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "approved");

    // Cookies are issued once.
    expect(exchange(&newcomer, &preauth).await, StatusCode::OK).await;
    expect(newcomer.me().await, StatusCode::OK).await;
    let r = exchange(&newcomer, &preauth).await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["detail"],
        "Pre-auth token expired"
    );
    // Approving did not end the approving session.
    expect(existing.me().await, StatusCode::OK).await;
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM active_sessions WHERE revoked_at IS NULL")
        .await;
    assert_eq!(rows[0][0], "2");
}

async fn deny_refuses_the_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let (newcomer, preauth, token) = second_login(&app, &user).await;
    expect(
        existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/deny"))
            .await,
        StatusCode::OK,
    )
    .await;
    let e = expect(exchange(&newcomer, &preauth).await, StatusCode::FORBIDDEN).await;
    assert_eq!(e["code"], "concurrent_login_denied");
    // The pre-auth token is burned.
    expect(
        exchange(&newcomer, &preauth).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // A decision is final.
    let r = existing
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    assert_eq!(
        expect(r, StatusCode::CONFLICT).await["code"],
        "already_decided"
    );
}

async fn only_an_older_session_of_the_same_user_decides(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let (_, _, token) = second_login(&app, &user).await;

    // Another user's session: 404, as if the request did not exist.
    let stranger = app.verified_user().await;
    let s = app.signed_in(&stranger).await;
    let r = s
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    expect(
        s.get(&format!(
            "/api/v1/auth/concurrent-login/{}",
            "unknown-token"
        ))
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // A session that appeared after the request (here: a third device the user approved)
    // cannot decide it: the requester never approves itself.
    let third = app.second_session(&user, &existing).await;
    let r = third
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "self_approval_forbidden"
    );
    // Unauthenticated: 401.
    let r = app
        .browser()
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
}

async fn logout_of_the_old_session_unblocks(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let (newcomer, preauth, _) = second_login(&app, &user).await;
    expect(
        existing.post_csrf("/api/v1/auth/logout").await,
        StatusCode::OK,
    )
    .await;
    expect(exchange(&newcomer, &preauth).await, StatusCode::OK).await;
}

async fn racing_decisions_have_one_winner(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let (_, _, token) = second_login(&app, &user).await;
    let (approve_path, deny_path) = (
        format!("/api/v1/auth/concurrent-login/{token}/approve"),
        format!("/api/v1/auth/concurrent-login/{token}/deny"),
    );
    let approve = existing.post_csrf(&approve_path);
    let deny = existing.post_csrf(&deny_path);
    let (a, d) = tokio::join!(approve, deny);
    let mut statuses = [a.status(), d.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
}

async fn pending_requests_are_bounded(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let _existing = app.signed_in(&user).await;
    for _ in 0..3 {
        second_login(&app, &user).await;
    }
    let b = app.browser();
    let preauth = app.login_verified(&b, &user).await;
    let r = exchange(&b, &preauth).await;
    assert!(r.headers().contains_key("retry-after"));
    expect(r, StatusCode::TOO_MANY_REQUESTS).await;
    // Three approval emails, not four.
    let approvals = app
        .mail
        .all()
        .iter()
        .filter(|m| m.data.contains("Approve a new sign-in"))
        .count();
    assert_eq!(approvals, 3);
}

async fn emailed_links_decide_only_by_post(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let _existing = app.signed_in(&user).await;
    let before = app.mail.count_to(&user.email);
    let (newcomer, preauth, token) = second_login(&app, &user).await;
    let mut mail = None;
    for n in before..before + 3 {
        let m = app.mail.wait_for_nth(&user.email, n).await;
        if m.data.contains("Approve a new sign-in") {
            mail = Some(m);
            break;
        }
    }
    let (approve, deny) = links(&mail.expect("an approval email"));
    assert!(approve.starts_with(&format!("{}/concurrent-login?", app.base)));
    assert_eq!(query_token(&approve), query_token(&deny));
    assert!(
        !approve.contains(&token),
        "the link is not the requester's token"
    );

    // A mail scanner following both links decides nothing.
    for link in [&approve, &deny] {
        let r = reqwest::get(link).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.text().await.unwrap().contains("<button"));
    }
    let status = expect(
        newcomer
            .get(&format!("/api/v1/auth/concurrent-login/{token}"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["status"], "pending");

    // The page's POST decides, once.
    let body = json!({ "token": query_token(&approve), "action": "approve" });
    expect(
        newcomer
            .post("/api/v1/auth/concurrent-login/email-decision", body.clone())
            .await,
        StatusCode::OK,
    )
    .await;
    let again = expect(
        newcomer
            .post("/api/v1/auth/concurrent-login/email-decision", body)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(again["detail"], "Token expired or invalid");
    expect(exchange(&newcomer, &preauth).await, StatusCode::OK).await;
}

async fn approval_requests_expire(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("CONCURRENT_LOGIN_TTL_SECONDS", "1")]).await;
    let user = app.verified_user().await;
    let _existing = app.signed_in(&user).await;
    let (newcomer, preauth, token) = second_login(&app, &user).await;
    // The request and the waiting pre-auth token live as long as their store keys.
    app.outlive_ttl(Duration::from_millis(1400)).await;
    expect(
        newcomer
            .get(&format!("/api/v1/auth/concurrent-login/{token}"))
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let e = expect(
        exchange(&newcomer, &preauth).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(e["detail"], "Pre-auth token expired");
}

/// The request is made on instance B; the existing session listens and approves on A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_crosses_instances() {
    let storage = std::sync::Arc::new(Storage::new(Mode::Production).await);
    let (sink, port) = SmtpSink::start_on(0).await;
    let a = TestApp::spawn_on(std::sync::Arc::clone(&storage), sink.clone(), port, &[]).await;
    let b_instance = TestApp::spawn_on(std::sync::Arc::clone(&storage), sink, port, &[]).await;
    let user = a.verified_user().await;
    let existing = a.signed_in(&user).await;
    let mut events = EventStream::open(&existing.http, &a.url("/api/v1/auth/events")).await;

    let (newcomer, preauth, token) = second_login(&b_instance, &user).await;
    let event: Value = events
        .wait_for("concurrent_login_requested", Duration::from_secs(2))
        .await
        .expect("event on A");
    assert_eq!(event["token"], token);
    expect(
        existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
            .await,
        StatusCode::OK,
    )
    .await;
    expect(exchange(&newcomer, &preauth).await, StatusCode::OK).await;
}

async fn a_denial_holds_after_every_session_ends(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    let (newcomer, preauth, token) = second_login(&app, &user).await;
    expect(
        existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/deny"))
            .await,
        StatusCode::OK,
    )
    .await;
    expect(
        existing.post_csrf("/api/v1/auth/logout-all").await,
        StatusCode::OK,
    )
    .await;
    let e = expect(exchange(&newcomer, &preauth).await, StatusCode::FORBIDDEN).await;
    assert_eq!(e["code"], "concurrent_login_denied");
    expect(
        exchange(&newcomer, &preauth).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn a_password_reset_voids_pending_logins(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let _existing = app.signed_in(&user).await;
    let (newcomer, preauth, _) = second_login(&app, &user).await;
    let b = app.browser();
    let before = app.mail.count_to(&user.email);
    expect(
        b.post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": user.email }),
        )
        .await,
        StatusCode::ACCEPTED,
    )
    .await;
    let mail = app
        .mail
        .wait_for_containing(&user.email, before, "Reset your mbpanel password")
        .await;
    let body = json!({ "token": crate::helpers::smtp::link_token(&mail), "password": "a completely new one" });
    expect(
        b.post("/api/v1/auth/password-reset/confirm", body).await,
        StatusCode::OK,
    )
    .await;
    // Every session ended, but the login made with the old password does not slip through.
    let e = expect(
        exchange(&newcomer, &preauth).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(e["detail"], "Pre-auth token expired");
}

both_modes!(
    a_denial_holds_after_every_session_ends,
    a_password_reset_voids_pending_logins,
    approve_then_exchange,
    deny_refuses_the_login,
    only_an_older_session_of_the_same_user_decides,
    logout_of_the_old_session_unblocks,
    racing_decisions_have_one_winner,
    pending_requests_are_bounded,
    emailed_links_decide_only_by_post,
    approval_requests_expire,
);
