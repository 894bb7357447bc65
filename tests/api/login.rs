//! Password checks, enumeration resistance and rate limiting.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::{Mode, TestApp};

async fn wrong_password_and_unknown_email_look_the_same(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let wrong = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": "wrong password" }),
        )
        .await;
    let unknown = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": "ghost@example.com", "password": "wrong password" }),
        )
        .await;
    let (ws, wb) = (wrong.status(), body(wrong).await);
    let (us, ub) = (unknown.status(), body(unknown).await);
    assert_eq!(ws, StatusCode::UNAUTHORIZED);
    assert_eq!((ws, &wb), (us, &ub));
    assert_eq!(wb["code"], "invalid_credentials");
    // Case and surrounding space in the email do not matter; the password is exact.
    let r = b.post("/api/v1/auth/login", json!({ "email": format!("  {}  ", user.email.to_uppercase()), "password": user.password })).await;
    expect(r, StatusCode::OK).await;
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password.to_uppercase() }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": format!("{} ", user.password) }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    // The audit log records the failures.
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM audit_log WHERE event = 'login_failed'")
        .await;
    assert_eq!(rows[0][0], "4");
}

async fn account_lock_holds_even_for_the_right_password(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    for _ in 0..5 {
        let r = b
            .post(
                "/api/v1/auth/login",
                json!({ "email": user.email, "password": "guess" }),
            )
            .await;
        expect(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry_after), "{retry_after}");
    let e = expect(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(e["code"], "rate_limited");
    // Another account from the same IP is not locked.
    let other = app.verified_user().await;
    app.login(&b, &other).await;
}

async fn unknown_emails_are_limited_the_same_way(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.browser();
    for _ in 0..5 {
        let r = b
            .post(
                "/api/v1/auth/login",
                json!({ "email": "ghost@example.com", "password": "guess" }),
            )
            .await;
        expect(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": "GHOST@example.com", "password": "guess" }),
        )
        .await;
    expect(r, StatusCode::TOO_MANY_REQUESTS).await;
}

async fn parallel_guesses_cannot_pass_the_limit(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let guesses = (0..12).map(|i| {
        b.post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": format!("guess {i}") }),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.status())
        .collect();
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(checked, 5, "exactly the limit was checked: {statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        7
    );
}

async fn per_ip_limit_uses_forwarded_for_only_behind_trusted_proxies(mode: Mode) {
    // Untrusted peer: X-Forwarded-For is ignored, so rotating it does not escape the IP limit.
    let app = TestApp::spawn_with(mode, &[("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "3")]).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = http
            .post(app.url("/api/v1/auth/login"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({ "email": format!("u{i}@example.com"), "password": "guess" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");

    // Behind a trusted proxy, each forwarded client has its own budget.
    let app = TestApp::spawn_with(
        mode,
        &[
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "3"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    for i in 0..4 {
        let r = http
            .post(app.url("/api/v1/auth/login"))
            .header("X-Forwarded-For", format!("198.51.100.{i}"))
            .json(&json!({ "email": format!("u{i}@example.com"), "password": "guess" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let rows = app
        .storage
        .sql_rows("SELECT ip_address FROM audit_log WHERE event = 'login_failed' ORDER BY id")
        .await;
    assert_eq!(
        rows.last().unwrap()[0],
        "198.51.100.3",
        "the forwarded client is recorded"
    );
}

async fn long_unicode_password_is_verified_exactly(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut user = crate::helpers::TestUser::random();
    user.password = "Zürich → 東京 🦀 correct horse battery staple, with punctuation!? ".repeat(2);
    assert!(user.password.chars().count() > 64);
    app.register_and_verify(&user).await;
    let b = app.browser();
    app.login(&b, &user).await;
    let mut altered = user.clone();
    altered.password = user.password.replace('ü', "u");
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": altered.password }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let mut truncated = user.clone();
    truncated.password = user.password.chars().take(64).collect();
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": truncated.password }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
}

both_modes!(
    wrong_password_and_unknown_email_look_the_same,
    account_lock_holds_even_for_the_right_password,
    unknown_emails_are_limited_the_same_way,
    parallel_guesses_cannot_pass_the_limit,
    per_ip_limit_uses_forwarded_for_only_behind_trusted_proxies,
    long_unicode_password_is_verified_exactly,
);
