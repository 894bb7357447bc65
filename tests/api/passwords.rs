//! Weak and breached passwords are refused at sign-up, password change and reset (SPEC §13),
//! the breach check against a local fake of a k-anonymity range API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::{Mode, TestApp, TestUser, smtp};

/// Strong by zxcvbn's measure, but listed by the fake breach API.
const BREACHED: &str = "purple monkey dishwasher 42";

fn assert_too_weak(answer: &Value, field: &str) {
    assert_eq!(answer["code"], "password_too_weak", "{answer}");
    assert_eq!(answer["field"], field, "{answer}");
    assert!(
        answer["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{answer}"
    );
}

async fn register(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": email, "password": password, "name": "Alice Smith" }),
        )
        .await
}

async fn reset_link(app: &TestApp, user: &TestUser) -> String {
    let before = app.mail.count_to(&user.email);
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": user.email }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let mail = app
        .mail
        .wait_for_containing(&user.email, before, "Reset your mbpanel password")
        .await;
    smtp::link_token(&mail)
}

async fn weak_passwords_are_refused_at_register_change_and_reset(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    // Common passwords, and passwords made of the account's own email.
    for weak in ["password123", "Password1!", "qwertyuiop"] {
        let r = register(&app, "someone@example.com", weak).await;
        assert_too_weak(
            &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
            "password",
        );
    }
    let r = register(&app, "alicesmith@example.com", "alicesmith2024").await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "password",
    );
    // Nothing was created for the refused sign-ups: no verification email went out.
    assert_eq!(app.mail.count_to("someone@example.com"), 0);

    // Change: the weak new password is refused, the old one still works.
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": "iloveyou2024" })),
        )
        .await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "new_password",
    );
    expect(b.me().await, StatusCode::OK).await;
    let local = user.email.split('@').next().unwrap().to_owned();
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": format!("{local}!") })),
        )
        .await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "new_password",
    );

    // Reset: a weak password is refused without burning the link.
    let token = reset_link(&app, &user).await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": "letmein123" }),
        )
        .await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "password",
    );
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": "a brand new passphrase" }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let changed = TestUser {
        password: "a brand new passphrase".into(),
        ..user
    };
    app.sign_in(&app.browser(), &changed).await;
}

/// A fake range API: lists `BREACHED` under its prefix (with padding), records the paths asked.
#[derive(Clone, Default)]
struct FakeRange {
    asked: Arc<Mutex<Vec<String>>>,
    hang: Arc<AtomicBool>,
}

async fn range(State(fake): State<FakeRange>, Path(prefix): Path<String>) -> String {
    fake.asked.lock().unwrap().push(prefix.clone());
    if fake.hang.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let digest = hex::encode_upper(Sha1::digest(BREACHED.as_bytes()));
    let (p, suffix) = digest.split_at(5);
    let mut lines = vec![
        "0018A45C4D1DEF81644B54AB7F969B88D65:1".to_owned(),
        "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0".to_owned(),
    ];
    if prefix.eq_ignore_ascii_case(p) {
        lines.push(format!("{suffix}:2413"));
    }
    lines.join("\r\n")
}

impl FakeRange {
    async fn start() -> (Self, String) {
        let fake = FakeRange::default();
        let router = axum::Router::new()
            .route("/range/{prefix}", axum::routing::get(range))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/range", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, url)
    }
}

async fn breached_passwords_are_refused_by_the_range_api(mode: Mode) {
    let (fake, url) = FakeRange::start().await;
    let app = TestApp::spawn_with(mode, &[("PASSWORD_BREACH_API_URL", &url)]).await;
    let r = register(&app, "breached@example.com", BREACHED).await;
    let answer = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_too_weak(&answer, "password");
    assert!(
        answer["detail"].as_str().unwrap().contains("breach"),
        "{answer}"
    );
    // Only the first five hex digits of the SHA-1 left the service.
    let asked = fake.asked.lock().unwrap().clone();
    let full = hex::encode_upper(Sha1::digest(BREACHED.as_bytes()));
    assert_eq!(asked, vec![full[..5].to_owned()]);

    // A password the range does not list passes, at sign-up and at change.
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": BREACHED })),
        )
        .await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "new_password",
    );
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": "a brand new passphrase" })),
        )
        .await;
    expect(r, StatusCode::OK).await;

    // A hung range API fails open after its 2 s timeout.
    fake.hang.store(true, Ordering::SeqCst);
    let started = Instant::now();
    let r = register(&app, "patient@example.com", BREACHED).await;
    let status = r.status();
    let answer = body(r).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
}

async fn an_unreachable_range_api_fails_open(mode: Mode) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/range", closed.local_addr().unwrap());
    drop(closed);
    let app = TestApp::spawn_with(mode, &[("PASSWORD_BREACH_API_URL", &url)]).await;
    let r = register(&app, "open@example.com", BREACHED).await;
    expect(r, StatusCode::ACCEPTED).await;
    // The offline judgement still applies.
    let r = register(&app, "open2@example.com", "password123").await;
    assert_too_weak(
        &expect(r, StatusCode::UNPROCESSABLE_ENTITY).await,
        "password",
    );
}

both_modes!(
    weak_passwords_are_refused_at_register_change_and_reset,
    breached_passwords_are_refused_by_the_range_api,
    an_unreachable_range_api_fails_open,
);
