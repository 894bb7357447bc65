//! The caller's sessions, and password reset and change.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::smtp::link_token;
use crate::helpers::sse::EventStream;
use crate::helpers::{Mode, TestApp};

async fn list_and_revoke_sessions(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let second = app.second_session(&user, &first).await;
    let mut second_events = EventStream::open(&second.http, &app.url("/api/v1/auth/events")).await;

    let list = expect(first.get("/api/v1/auth/sessions").await, StatusCode::OK).await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let me = expect(first.me().await, StatusCode::OK).await["session"]["id"]
        .as_i64()
        .unwrap();
    for s in sessions {
        assert_eq!(s["current"], s["id"].as_i64() == Some(me));
        assert_eq!(s["ip_address"], "127.0.0.1");
        assert_eq!(s["user_agent"], "mbpanel-tests/1.0");
        assert!(s["created_at"].is_string() && s["last_seen_at"].is_string());
    }
    let other = sessions
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .find(|id| *id != me)
        .unwrap();

    // Someone else cannot end it.
    let stranger = app.verified_user().await;
    let s = app.signed_in(&stranger).await;
    let r = s
        .http
        .delete(app.url(&format!("/api/v1/auth/sessions/{other}")))
        .header("X-CSRF-Token", s.csrf())
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::NOT_FOUND).await;
    let r = s
        .http
        .delete(app.url("/api/v1/auth/sessions/not-a-number"))
        .header("X-CSRF-Token", s.csrf())
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::BAD_REQUEST).await;

    // The owner ends it: its access token dies at once, its event stream hears it and closes.
    let second_access = second.access();
    let r = first
        .http
        .delete(app.url(&format!("/api/v1/auth/sessions/{other}")))
        .header("X-CSRF-Token", first.csrf())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.bearer_me(&second_access).await,
        StatusCode::UNAUTHORIZED
    );
    let revoked = second_events
        .wait_for("session_revoked", Duration::from_secs(2))
        .await
        .expect("session_revoked event");
    assert_eq!(revoked["session_id"], other);
    assert!(
        second_events.closes_within(Duration::from_secs(2)).await,
        "the stream closes"
    );
    expect(first.me().await, StatusCode::OK).await;
    let list = expect(first.get("/api/v1/auth/sessions").await, StatusCode::OK).await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 1);
}

async fn logout_all_ends_every_session(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let second = app.second_session(&user, &first).await;
    let tokens = [first.access(), second.access()];
    let r = second.post_csrf("/api/v1/auth/logout-all").await;
    assert_eq!(expect(r, StatusCode::OK).await["sessions_ended"], 2);
    for t in &tokens {
        assert_eq!(app.bearer_me(t).await, StatusCode::UNAUTHORIZED);
    }
    assert!(second.cookie("/", "mbpanel_access").is_none());
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM active_sessions WHERE revoked_at IS NULL")
        .await;
    assert_eq!(rows[0][0], "0");
}

async fn password_reset_revokes_every_session(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut user = app.verified_user().await;
    let signed_in = app.signed_in(&user).await;
    let access = signed_in.access();
    let b = app.browser();

    // Known and unknown addresses get the same answer; only the known one gets mail.
    let known = b
        .post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": user.email }),
        )
        .await;
    let unknown = b
        .post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    let (ks, kb) = (known.status(), body(known).await);
    let (us, ub) = (unknown.status(), body(unknown).await);
    assert_eq!((ks, &kb), (us, &ub));
    assert_eq!(ks, StatusCode::ACCEPTED);
    let mail = app
        .mail
        .wait_for_containing(&user.email, 0, "Reset your mbpanel password")
        .await;
    assert!(
        mail.data
            .contains(&format!("{}/reset-password?token=", app.base))
    );
    let token = link_token(&mail);
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT COUNT(*) FROM password_reset_tokens WHERE token_hash = '{token}'"
        ))
        .await;
    assert_eq!(rows[0][0], "0", "stored hashed, never as sent");

    // The page behind the link changes nothing; the POST does.
    assert_eq!(
        reqwest::get(app.url(&format!("/reset-password?token={token}")))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = b
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": "short" }),
        )
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = b
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": "a brand new passphrase" }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    assert_eq!(
        app.bearer_me(&access).await,
        StatusCode::UNAUTHORIZED,
        "every session ended"
    );
    let r = b
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": "yet another passphrase" }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["detail"],
        "Token expired or invalid"
    );

    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    user.password = "a brand new passphrase".into();
    app.sign_in(&app.browser(), &user).await;

    // An expired link is refused.
    b.post(
        "/api/v1/auth/password-reset/request",
        json!({ "email": user.email }),
    )
    .await;
    let mail = app
        .mail
        .wait_for_containing(
            &user.email,
            app.mail.count_to(&user.email) - 1,
            "Reset your mbpanel password",
        )
        .await;
    let expired = link_token(&mail);
    assert_ne!(expired, token);
    app.storage
        .sql("UPDATE password_reset_tokens SET expires_at = 1 WHERE used_at IS NULL")
        .await;
    let r = b
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": expired, "password": "one more passphrase" }),
        )
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;
}

async fn password_change_keeps_only_the_current_session(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let mut user = app.verified_user().await;
    let current = app.signed_in(&user).await;
    let other = app.second_session(&user, &current).await;
    let other_access = other.access();

    let r = current.http.post(app.url("/api/v1/auth/password/change")).header("X-CSRF-Token", current.csrf())
        .json(&json!({ "current_password": "wrong password", "new_password": "a brand new passphrase" })).send().await.unwrap();
    assert_eq!(
        expect(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "current_password"
    );
    assert_eq!(
        app.bearer_me(&other_access).await,
        StatusCode::OK,
        "nothing changed"
    );

    let r = current
        .http
        .post(app.url("/api/v1/auth/password/change"))
        .json(
            &json!({ "current_password": user.password, "new_password": "a brand new passphrase" }),
        )
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::FORBIDDEN).await; // no CSRF header
    let r = current
        .http
        .post(app.url("/api/v1/auth/password/change"))
        .header("X-CSRF-Token", current.csrf())
        .json(
            &json!({ "current_password": user.password, "new_password": "a brand new passphrase" }),
        )
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    assert_eq!(app.bearer_me(&other_access).await, StatusCode::UNAUTHORIZED);
    expect(current.me().await, StatusCode::OK).await;
    user.password = "a brand new passphrase".into();
    app.login(&app.browser(), &user).await;
}

both_modes!(
    list_and_revoke_sessions,
    logout_all_ends_every_session,
    password_reset_revokes_every_session,
    password_change_keeps_only_the_current_session,
);
