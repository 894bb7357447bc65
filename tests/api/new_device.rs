//! New-device alerts: a sign-in from a device (user agent + IP) not seen before emails the
//! user; the first sign-in of an account does not; the "this wasn't me" link's page changes
//! nothing on GET, and its POST ends every session, distrusts every device, emails a reset link
//! and is audited. The link works once and expires.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::cookie::Jar;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::smtp::link_token;
use crate::helpers::{Mode, TestApp, TestUser};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const ALERT: &str = "New sign-in to your mbpanel account";

/// A browser that presents itself with `user_agent`.
fn browser_as(app: &TestApp, user_agent: &str) -> Browser {
    let jar = Arc::new(Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .timeout(Duration::from_secs(30))
        .user_agent(user_agent)
        .build()
        .unwrap();
    Browser {
        http,
        jar,
        base: app.base.clone(),
    }
}

/// Signs `b` in; when `existing` is signed in already, it approves the new sign-in.
async fn sign_in_approved(app: &TestApp, b: &Browser, user: &TestUser, existing: Option<&Browser>) {
    let preauth = app.login_verified(b, user).await;
    let exchange = || {
        b.post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
    };
    let r = exchange().await;
    if let Some(existing) = existing {
        let pending = expect(r, StatusCode::LOCKED).await;
        let token = pending["token"].as_str().unwrap();
        let r = existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
            .await;
        expect(r, StatusCode::OK).await;
        expect(exchange().await, StatusCode::OK).await;
    } else {
        expect(r, StatusCode::OK).await;
    }
}

fn alerts(app: &TestApp, user: &TestUser) -> usize {
    app.mail
        .all()
        .iter()
        .filter(|m| m.to.eq_ignore_ascii_case(&user.email) && m.data.contains(ALERT))
        .count()
}

async fn logout(b: &Browser) {
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
}

async fn only_a_device_not_seen_before_alerts(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    // The first sign-in of the account: no device known yet, no alert.
    let first = app.browser();
    sign_in_approved(&app, &first, &user, None).await;
    logout(&first).await;

    // Another device: an alert naming it, its IP and the time, with a link.
    let before = app.mail.count_to(&user.email);
    let firefox = browser_as(&app, FIREFOX);
    sign_in_approved(&app, &firefox, &user, None).await;
    let alert = app
        .mail
        .wait_for_containing(&user.email, before, ALERT)
        .await;
    assert!(
        alert.data.contains("Device: Firefox on Linux"),
        "{}",
        alert.data
    );
    assert!(
        alert.data.contains("IP address: 127.0.0.1"),
        "{}",
        alert.data
    );
    assert!(alert.data.contains("Time: 20"), "{}", alert.data);
    assert!(
        alert
            .data
            .contains(&format!("{}/new-device?token=", app.base)),
        "{}",
        alert.data
    );
    logout(&firefox).await;

    // Both devices again (fresh cookie jars, so codes are emailed again): no further alert.
    let again = app.browser();
    sign_in_approved(&app, &again, &user, None).await;
    logout(&again).await;
    sign_in_approved(&app, &browser_as(&app, FIREFOX), &user, None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(alerts(&app, &user), 1);
}

async fn this_wasnt_me_secures_the_account(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let mine = app.browser();
    sign_in_approved(&app, &mine, &user, None).await;
    let intruder = browser_as(&app, FIREFOX);
    sign_in_approved(&app, &intruder, &user, Some(&mine)).await;
    let alert = app.mail.wait_for_containing(&user.email, 0, ALERT).await;
    let token = link_token(&alert);
    // Hashed at rest.
    let stored = app
        .storage
        .sql_rows("SELECT token_hash FROM new_device_alerts")
        .await;
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0][0], token);

    // Opening the page (a mail scanner, or the user) changes nothing.
    let page = reqwest::get(app.url(&format!("/new-device?token={token}")))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"new-device-go\""), "{html}");
    // The page is the app; its button POSTs to the API (links.js).
    let script = reqwest::get(app.url("/ui/links.js"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("'/auth/new-device/not-me'"), "{script}");
    expect(mine.me().await, StatusCode::OK).await;
    expect(intruder.me().await, StatusCode::OK).await;
    // My device is trusted: a sign-in from it needs no code.
    assert_eq!(app.login(&mine, &user).await["otp_required"], json!(false));

    let before = app.mail.count_to(&user.email);
    let r = app
        .browser()
        .post("/api/v1/auth/new-device/not-me", json!({ "token": token }))
        .await;
    let done = expect(r, StatusCode::OK).await;
    assert_eq!(done["sessions_ended"], 2, "{done}");
    // Every session ended, every device distrusted, a reset link sent, an audit event.
    expect(mine.me().await, StatusCode::UNAUTHORIZED).await;
    expect(intruder.me().await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(app.login(&mine, &user).await["otp_required"], json!(true));
    let reset = app
        .mail
        .wait_for_containing(&user.email, before, "Reset your mbpanel password")
        .await;
    assert!(reset.data.contains("/reset-password?token="));
    let audited = app
        .storage
        .sql_rows("SELECT count(*) FROM audit_log WHERE event = 'new_device_reported'")
        .await;
    assert_eq!(audited[0][0], "1");

    // Single use.
    let r = app
        .browser()
        .post("/api/v1/auth/new-device/not-me", json!({ "token": token }))
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["code"],
        "token_invalid"
    );
}

async fn the_link_expires_and_bad_input_is_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let mine = app.browser();
    sign_in_approved(&app, &mine, &user, None).await;
    sign_in_approved(&app, &browser_as(&app, FIREFOX), &user, Some(&mine)).await;
    let token = link_token(&app.mail.wait_for_containing(&user.email, 0, ALERT).await);
    app.storage
        .sql("UPDATE new_device_alerts SET expires_at = 1")
        .await;
    let b = app.browser();
    let r = b
        .post("/api/v1/auth/new-device/not-me", json!({ "token": token }))
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["code"],
        "token_invalid"
    );
    expect(mine.me().await, StatusCode::OK).await;
    for bad in [json!({}), json!({ "token": 5 }), json!([])] {
        let r = b.post("/api/v1/auth/new-device/not-me", bad).await;
        let e = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(e["detail"].is_string(), "{e}");
    }
    let long = "x".repeat(500);
    for token in ["", long.as_str()] {
        let r = b
            .post("/api/v1/auth/new-device/not-me", json!({ "token": token }))
            .await;
        assert_eq!(
            expect(r, StatusCode::BAD_REQUEST).await["code"],
            "token_invalid"
        );
    }
}

async fn alerts_can_be_switched_off(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("NEW_DEVICE_ALERTS", "false")]).await;
    let user = app.verified_user().await;
    let mine = app.browser();
    sign_in_approved(&app, &mine, &user, None).await;
    sign_in_approved(&app, &browser_as(&app, FIREFOX), &user, Some(&mine)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(alerts(&app, &user), 0);
}

async fn doctor_says_whether_alerts_are_on(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    for (value, word) in [("true", "on:"), ("false", "off")] {
        let env = [("EMAIL_BACKEND", "log"), ("NEW_DEVICE_ALERTS", value)];
        let (_, said) = crate::cli::cli(&app, &env, &["doctor"]);
        assert!(
            said.lines().any(|l| l.starts_with("PASS")
                && l.contains("new-device alerts")
                && l.contains(word)),
            "{value}: {said}"
        );
    }
}

both_modes!(
    doctor_says_whether_alerts_are_on,
    only_a_device_not_seen_before_alerts,
    this_wasnt_me_secures_the_account,
    the_link_expires_and_bad_input_is_refused,
    alerts_can_be_switched_off,
);
