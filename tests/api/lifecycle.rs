//! The guide's token lifecycle end to end: register → verify → login → OTP → exchange → me →
//! refresh → logout.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::smtp;
use crate::helpers::{Mode, TestApp, TestUser};

async fn full_lifecycle(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = TestUser::random();
    let b = app.browser();

    let r = b.post("/api/v1/auth/register", json!({ "email": user.email.to_uppercase(), "password": user.password, "name": "Alice" })).await;
    expect(r, StatusCode::ACCEPTED).await;
    let mail = app.mail.wait_for_nth(&user.email, 0).await;
    assert!(
        mail.data
            .contains(&format!("{}/verify-email?token=", app.base)),
        "link built from BASE_URL: {}",
        mail.data
    );
    let token = smtp::link_token(&mail);
    assert!(token.len() >= 43, "256-bit token");

    // Unverified: the right password still cannot log in.
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    let e = expect(r, StatusCode::FORBIDDEN).await;
    assert_eq!(e["code"], "email_not_verified");

    // The link's page changes nothing; the POST verifies.
    let page = b.get(&format!("/verify-email?token={token}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let rows = app.storage.sql_rows(&format!("SELECT used_at FROM email_verification_tokens WHERE token = '{token}' AND used_at IS NULL")).await;
    assert_eq!(rows.len(), 1, "GET must not consume the token");
    expect(
        b.post("/api/v1/auth/verify-email", json!({ "token": token }))
            .await,
        StatusCode::OK,
    )
    .await;

    // Login: unknown device → OTP.
    let login = app.login(&b, &user).await;
    assert_eq!(login["otp_required"], true);
    assert_eq!(login["expires_in"], 300);
    let teams = login["teams"].as_array().unwrap();
    assert_eq!(teams.len(), 1);
    assert_eq!(teams[0]["role"], "Owner");
    assert!(teams[0]["id"].is_i64());
    let preauth = login["preauth_token"].as_str().unwrap().to_owned();

    // The exchange waits for the code.
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "otp_required"
    );

    let otp_mail = app.mail.wait_for_nth(&user.email, 1).await;
    let code = smtp::otp_code(&otp_mail);
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": code }),
        )
        .await;
    let device_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("mbpanel_device="));
    expect(r, StatusCode::OK).await;
    let device_cookie = device_cookie.expect("a trusted-device cookie");
    assert!(
        device_cookie.contains("HttpOnly") && device_cookie.contains("Path=/api/v1/auth"),
        "{device_cookie}"
    );

    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let exchanged = expect(r, StatusCode::OK).await;
    let find = |name: &str| {
        cookies
            .iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .cloned()
            .unwrap_or_else(|| panic!("{name} cookie in {cookies:?}"))
    };
    let access = find("mbpanel_access");
    assert!(
        access.contains("HttpOnly") && access.contains("SameSite=Lax") && access.contains("Path=/"),
        "{access}"
    );
    let refresh = find("mbpanel_refresh");
    assert!(
        refresh.contains("HttpOnly")
            && refresh.contains("SameSite=Strict")
            && refresh.contains("Path=/api/v1/auth"),
        "{refresh}"
    );
    let csrf = find("mbpanel_csrf");
    assert!(
        !csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    assert!(
        !access.contains("Secure"),
        "plain-http localhost BASE_URL: no Secure attribute"
    );
    let sid = exchanged["session"]["id"].as_i64().unwrap();

    // The guide's records exist.
    let jti = crate::helpers::tokens::parts(&b.refresh_token()).1["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT id, revoked_at FROM active_sessions WHERE refresh_token_jti = '{jti}'"
        ))
        .await;
    assert_eq!(rows, vec![vec![sid.to_string(), "NULL".to_string()]]);

    // /auth/me with the cookie, and with a bearer token.
    let me = expect(b.me().await, StatusCode::OK).await;
    assert_eq!(me["user"]["email"], user.email);
    assert_eq!(me["user"]["name"], "Alice");
    assert_eq!(me["role"]["name"], "Owner");
    assert_eq!(me["session"]["id"], sid);
    assert_eq!(me["team"]["id"], teams[0]["id"]);
    assert_eq!(
        me["permissions"].as_array().unwrap().len(),
        9,
        "Owner has the whole catalogue"
    );
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(b.access())
        .send()
        .await
        .unwrap();
    assert_eq!(expect(r, StatusCode::OK).await["user"]["email"], user.email);

    // Refresh rotates both tokens.
    let old_access = b.access();
    let old_refresh = b.refresh_token();
    let r = b.post_csrf("/api/v1/auth/refresh").await;
    expect(r, StatusCode::OK).await;
    assert_ne!(b.access(), old_access);
    assert_ne!(b.refresh_token(), old_refresh);
    expect(b.me().await, StatusCode::OK).await;

    // Logout: cookies cleared, every access token of the session dead at once.
    let current_access = b.access();
    let r = b.post_csrf("/api/v1/auth/logout").await;
    expect(r, StatusCode::OK).await;
    assert!(
        b.cookie("/", "mbpanel_access").is_none(),
        "access cookie cleared"
    );
    for token in [&old_access, &current_access] {
        let r = reqwest::Client::new()
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            expect(r, StatusCode::UNAUTHORIZED).await["detail"],
            "Not authenticated"
        );
    }
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT revoked_at FROM active_sessions WHERE id = {sid}"
        ))
        .await;
    assert_ne!(rows[0][0], "NULL", "revoked_at set");

    // The device is now trusted: the next login needs no code.
    let second = app.login(&b, &user).await;
    assert_eq!(second["otp_required"], false);
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": second["preauth_token"] }),
        )
        .await;
    expect(r, StatusCode::OK).await;
}

async fn register_answers_the_same_for_a_taken_email(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let first = b
        .post(
            "/api/v1/auth/register",
            json!({ "email": "fresh@example.com", "password": "long enough pw", "name": "F" }),
        )
        .await;
    let (s1, b1) = (first.status(), body(first).await);
    let again = b
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": "another password", "name": "X" }),
        )
        .await;
    let (s2, b2) = (again.status(), body(again).await);
    assert_eq!(
        (s1, &b1),
        (s2, &b2),
        "no account enumeration through sign-up"
    );
    // The owner of the address hears about it; the password did not change.
    let notice = app.mail.wait_for_nth(&user.email, 1).await;
    assert!(notice.data.contains("already has one"), "{}", notice.data);
    app.sign_in(&b, &user).await;
}

async fn registration_validates_input(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.browser();
    for (body, field) in [
        (
            json!({ "email": "not-an-email", "password": "long enough pw", "name": "A" }),
            "email",
        ),
        (
            json!({ "email": "a@example.com", "password": "short", "name": "A" }),
            "password",
        ),
        (
            json!({ "email": "a@example.com", "password": "long enough pw", "name": "   " }),
            "name",
        ),
    ] {
        let r = b.post("/api/v1/auth/register", body).await;
        let e = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], field);
        assert_eq!(e["code"], "validation_error");
    }
}

async fn email_verification_is_single_use_and_expires(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = TestUser::random();
    let b = app.browser();
    b.post(
        "/api/v1/auth/register",
        json!({ "email": user.email, "password": user.password, "name": user.name }),
    )
    .await;
    let token = smtp::link_token(&app.mail.wait_for_nth(&user.email, 0).await);

    for bad in ["unknown-token", ""] {
        let e = expect(
            b.post("/api/v1/auth/verify-email", json!({ "token": bad }))
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(e["detail"], "Token expired or invalid");
    }
    // Expired: age the row past its TTL.
    app.storage
        .sql(&format!(
            "UPDATE email_verification_tokens SET expires_at = 1 WHERE token = '{token}'"
        ))
        .await;
    let e = expect(
        b.post("/api/v1/auth/verify-email", json!({ "token": token }))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["detail"], "Token expired or invalid");

    // Resend gives a new link; it works once.
    let r = b
        .post(
            "/api/v1/auth/verify-email/resend",
            json!({ "email": user.email }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let fresh = smtp::link_token(&app.mail.wait_for_nth(&user.email, 1).await);
    assert_ne!(fresh, token);
    expect(
        b.post("/api/v1/auth/verify-email", json!({ "token": fresh }))
            .await,
        StatusCode::OK,
    )
    .await;
    let e = expect(
        b.post("/api/v1/auth/verify-email", json!({ "token": fresh }))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(e["detail"], "Token expired or invalid");

    // The guide's diagnostic shows the token as used.
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT * FROM email_verification_tokens WHERE token = '{fresh}' AND used_at IS NULL;"
        ))
        .await;
    assert!(rows.is_empty());
    // Resend for unknown or verified addresses answers the same and sends nothing.
    let r = b
        .post(
            "/api/v1/auth/verify-email/resend",
            json!({ "email": "nobody@example.com" }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let r = b
        .post(
            "/api/v1/auth/verify-email/resend",
            json!({ "email": user.email }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.mail.count_to(&user.email), 2);
}

async fn health_and_readiness(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.browser();
    assert_eq!(
        expect(b.get("/healthz").await, StatusCode::OK).await["status"],
        "ok"
    );
    let ready = expect(b.get("/readyz").await, StatusCode::OK).await;
    assert_eq!(ready["checks"]["database"], "ok");
    let unknown = expect(b.get("/api/v1/nope").await, StatusCode::NOT_FOUND).await;
    assert_eq!(unknown["code"], "not_found");
    let wrong_method = expect(
        b.get("/api/v1/auth/login").await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    assert_eq!(wrong_method["code"], "method_not_allowed");
}

async fn metrics_count_requests_and_auth_events(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.browser();
    expect(
        b.post(
            "/api/v1/auth/login",
            json!({ "email": "nobody@example.com", "password": "whatever1" }),
        )
        .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect(b.me().await, StatusCode::UNAUTHORIZED).await;
    let r = b.get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"route="/api/v1/auth/login""#) && text.contains(r#"status="401""#),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "histograms, not summaries"
    );
    assert!(
        text.contains(r#"auth_events_total{event="login_failed"}"#),
        "{text}"
    );
}

both_modes!(
    metrics_count_requests_and_auth_events,
    full_lifecycle,
    register_answers_the_same_for_a_taken_email,
    registration_validates_input,
    email_verification_is_single_use_and_expires,
    health_and_readiness,
);
