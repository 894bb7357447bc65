//! Second factors (SPEC §13): TOTP enrolment, the login's MFA step, replay refusal, attempt
//! limits, recovery codes, and step-up with reauth. Codes are computed from the returned
//! secret by the tests' own RFC 6238 (`helpers::totp`).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::totp::{code_at, now_seconds, wrong_code};
use crate::helpers::{Mode, TestApp, TestUser};

const MFA_KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

/// Embedded mode generates its MFA key under the data directory; production is given one.
async fn spawn(mode: Mode) -> TestApp {
    let mut overrides = vec![
        ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
        ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
    ];
    if mode == Mode::Production {
        overrides.push(("MFA_SECRET_KEY", MFA_KEY_B64));
    }
    TestApp::spawn_with(mode, &overrides).await
}

/// The code of the step after the current one: later than any step used so far in the test
/// (the server accepts one step of skew).
fn next_code(secret: &str) -> String {
    code_at(secret, now_seconds() + 30)
}

async fn overview(b: &Browser) -> Value {
    expect(b.get("/api/v1/auth/mfa").await, StatusCode::OK).await
}

/// Enrols and confirms TOTP (using the current step); the secret and the recovery codes.
async fn enable_totp(b: &Browser) -> (String, Vec<String>) {
    let e = expect(
        b.post_csrf("/api/v1/auth/mfa/totp/enroll").await,
        StatusCode::OK,
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    let confirmed = expect(
        b.send(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(json!({ "code": code_at(&secret, now_seconds()) })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}

async fn verify(b: &Browser, preauth: &str, method: &str, code: &str) -> reqwest::Response {
    b.post(
        "/api/v1/auth/mfa/verify",
        json!({ "preauth_token": preauth, "method": method, "code": code }),
    )
    .await
}

/// A password step that must ask for the second factor; its pre-auth token.
async fn mfa_login(app: &TestApp, b: &Browser, user: &TestUser) -> String {
    let login = app.login(b, user).await;
    assert_eq!(login["mfa_required"], true, "{login}");
    assert_eq!(login["otp_required"], false, "{login}");
    login["preauth_token"].as_str().unwrap().to_owned()
}

async fn events(b: &Browser) -> Vec<String> {
    let audit = expect(b.get("/api/v1/auth/audit").await, StatusCode::OK).await;
    audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

async fn totp_enrolment_login_replay_and_device_trust(mode: Mode) {
    let app = spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let none = overview(&b).await;
    assert_eq!(
        none,
        json!({ "totp": false, "passkeys": [], "recovery_codes_left": 0, "methods": [] })
    );

    let e = expect(
        b.post_csrf("/api/v1/auth/mfa/totp/enroll").await,
        StatusCode::OK,
    )
    .await;
    let secret = e["secret"].as_str().unwrap().to_owned();
    let uri = e["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/mbpanel:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    // Pending until confirmed, and sealed at rest.
    assert_eq!(overview(&b).await["totp"], false);
    let rows = app
        .storage
        .sql_rows("SELECT totp_pending_sealed, totp_secret_sealed FROM user_mfa")
        .await;
    assert_eq!(rows.len(), 1);
    assert!(
        !rows[0][0].is_empty() && !rows[0][0].contains(&secret),
        "{rows:?}"
    );
    // A wrong code does not confirm it.
    let r = b
        .send(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(json!({ "code": wrong_code(&secret) })),
        )
        .await;
    let refused = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(refused["field"], "code", "{refused}");
    let confirmed = expect(
        b.send(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Some(json!({ "code": code_at(&secret, now_seconds()) })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let codes = confirmed["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let distinct: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(distinct.len(), 10);
    let on = overview(&b).await;
    assert_eq!(on["totp"], true);
    assert_eq!(on["recovery_codes_left"], 10);
    let stored = app
        .storage
        .sql_rows("SELECT code_hash FROM mfa_recovery_codes")
        .await;
    assert_eq!(stored.len(), 10);
    assert!(
        stored
            .iter()
            .all(|r| !codes.iter().any(|c| r[0] == c.as_str().unwrap()))
    );

    // A new device: the second factor instead of an emailed code.
    let n = app.browser();
    let mails = app.mail.count_to(&user.email);
    let login = app.login(&n, &user).await;
    assert_eq!(login["mfa_required"], true, "{login}");
    assert_eq!(login["otp_required"], false, "{login}");
    assert_eq!(
        login["mfa_methods"],
        json!(["totp", "recovery_code"]),
        "{login}"
    );
    let preauth = login["preauth_token"].as_str().unwrap().to_owned();
    assert_eq!(app.mail.count_to(&user.email), mails, "no code was emailed");
    let r = n
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": "123456" }),
        )
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;
    let r = n
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "mfa_required"
    );
    let code = next_code(&secret);
    let ok = expect(verify(&n, &preauth, "totp", &code).await, StatusCode::OK).await;
    assert_eq!(ok["mfa_verified"], true);

    // The same code on another login is a replay.
    let m = app.browser();
    let other = mfa_login(&app, &m, &user).await;
    let replay = expect(
        verify(&m, &other, "totp", &code).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(replay["code"], "otp_invalid", "{replay}");
    assert_eq!(replay["attempts_remaining"], 4, "{replay}");

    // What a passed emailed code leads to: the approval gate, then the session.
    let r = n
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    let pending = expect(r, StatusCode::LOCKED).await;
    let token = pending["token"].as_str().unwrap();
    let r = b
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::OK).await;
    let r = n
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    expect(n.me().await, StatusCode::OK).await;
    // The device is trusted now: no second step there.
    let again = app.login(&n, &user).await;
    assert_eq!(again["mfa_required"], false, "{again}");
    assert_eq!(again["otp_required"], false, "{again}");
    let seen = events(&b).await;
    for event in [
        "mfa_totp_enrolment_started",
        "mfa_totp_enabled",
        "mfa_verified",
        "mfa_verify_failed",
    ] {
        assert!(seen.iter().any(|e| e == event), "{event} in {seen:?}");
    }
}

async fn wrong_codes_count_against_the_emailed_codes_limits(mode: Mode) {
    let app = spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (secret, _) = enable_totp(&b).await;
    let n = app.browser();
    let preauth = mfa_login(&app, &n, &user).await;
    let wrong = wrong_code(&secret);
    for (i, method, code) in [
        (4, "totp", wrong.as_str()),
        (3, "recovery_code", "aaaa-bbbb-cccc-dddd"),
        (2, "totp", wrong.as_str()),
        (1, "recovery_code", "not even a code"),
    ] {
        let r = expect(
            verify(&n, &preauth, method, code).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert_eq!(r["code"], "otp_invalid", "{r}");
        assert_eq!(r["attempts_remaining"], i, "{r}");
    }
    let last = expect(
        verify(&n, &preauth, "totp", &wrong).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(last["code"], "otp_attempts_exceeded", "{last}");
    // The login is burnt: even the right code does not pass it now.
    let burnt = expect(
        verify(&n, &preauth, "totp", &next_code(&secret)).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(burnt["code"], "preauth_expired", "{burnt}");
    // An unknown method is refused before anything is counted.
    let fresh = mfa_login(&app, &n, &user).await;
    let r = expect(
        verify(&n, &fresh, "sms", "123456").await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(r["field"], "method", "{r}");
}

async fn recovery_codes_work_once_and_a_new_set_voids_the_old(mode: Mode) {
    let app = spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (_, codes) = enable_totp(&b).await;
    let n = app.browser();
    let first = mfa_login(&app, &n, &user).await;
    // Case and dashes do not matter when typing a code.
    let typed = codes[0].to_uppercase().replace('-', " ");
    expect(
        verify(&n, &first, "recovery_code", &typed).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(overview(&b).await["recovery_codes_left"], 9);
    let second = mfa_login(&app, &app.browser(), &user).await;
    let reused = expect(
        verify(&n, &second, "recovery_code", &codes[0]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(reused["code"], "otp_invalid", "{reused}");

    let fresh = expect(
        b.post_csrf("/api/v1/auth/mfa/recovery-codes").await,
        StatusCode::OK,
    )
    .await;
    let fresh: Vec<String> = fresh["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(fresh.len(), 10);
    assert!(fresh.iter().all(|c| !codes.contains(c)));
    assert_eq!(overview(&b).await["recovery_codes_left"], 10);
    let third = mfa_login(&app, &app.browser(), &user).await;
    let old = expect(
        verify(&n, &third, "recovery_code", &codes[1]).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(old["code"], "otp_invalid", "{old}");
    expect(
        verify(&n, &third, "recovery_code", &fresh[0]).await,
        StatusCode::OK,
    )
    .await;
    let seen = events(&b).await;
    for event in ["mfa_recovery_code_used", "mfa_recovery_codes_regenerated"] {
        assert!(seen.iter().any(|e| e == event), "{event} in {seen:?}");
    }
}

/// Moves the session's last authentication out of the step-up window (as if it were old).
async fn age_sessions(app: &TestApp) {
    app.storage
        .sql("UPDATE active_sessions SET authenticated_at = 1")
        .await;
}

async fn step_up_refusal_and_renewal(mode: Mode) {
    let app = spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let me = expect(b.me().await, StatusCode::OK).await;
    let (team, uid) = (
        me["team"]["id"].as_i64().unwrap(),
        me["user"]["id"].as_i64().unwrap(),
    );
    let admin = crate::teams::role_id(&b, team, "Admin").await;
    let member = crate::teams::role_id(&b, team, "Member").await;
    age_sessions(&app).await;

    let sensitive = [
        (
            Method::POST,
            "/api/v1/auth/mfa/totp/enroll".to_owned(),
            None,
        ),
        (
            Method::POST,
            "/api/v1/auth/password/change".to_owned(),
            Some(
                json!({ "current_password": user.password, "new_password": "a brand new passphrase" }),
            ),
        ),
        (
            Method::PUT,
            format!("/api/v1/teams/{team}/roles/{admin}/permissions"),
            Some(json!({ "permissions": ["audit.read"] })),
        ),
        (
            Method::PATCH,
            format!("/api/v1/teams/{team}/members/{uid}"),
            Some(json!({ "role_id": member })),
        ),
        (
            Method::DELETE,
            format!("/api/v1/teams/{team}/members/{uid}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/teams/{team}/virtuozzo"),
            Some(json!({ "email": "vz@example.com", "password": "vz-secret-pass" })),
        ),
        (
            Method::POST,
            format!("/api/v1/teams/{team}/virtuozzo/refresh"),
            None,
        ),
    ];
    for (method, path, body) in &sensitive {
        let r = b.send(method.clone(), path, body.clone()).await;
        let refused = expect(r, StatusCode::FORBIDDEN).await;
        assert_eq!(
            refused["code"], "reauth_required",
            "{method} {path}: {refused}"
        );
        assert!(refused["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    // Reading is not sensitive.
    overview(&b).await;

    let reauth = |body: Value| b.send(Method::POST, "/api/v1/auth/reauth", Some(body));
    let r = expect(
        reauth(json!({ "password": "not my password" })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(r["code"], "reauth_failed", "{r}");
    expect(reauth(json!({})).await, StatusCode::BAD_REQUEST).await;
    expect(
        reauth(json!({ "password": user.password })).await,
        StatusCode::OK,
    )
    .await;
    // Renewed: the actions run (and meet their own rules: built-in roles, the last Owner).
    for (method, path, body) in &sensitive[2..5] {
        let r = b.send(method.clone(), path, body.clone()).await;
        assert_eq!(r.status(), StatusCode::CONFLICT, "{method} {path}");
    }
    let (secret, codes) = enable_totp(&b).await;

    // With a second factor: reauth by TOTP or recovery code, each code once.
    age_sessions(&app).await;
    let r = b.post_csrf("/api/v1/auth/mfa/recovery-codes").await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "reauth_required"
    );
    let code = next_code(&secret);
    expect(
        reauth(json!({ "method": "totp", "code": code })).await,
        StatusCode::OK,
    )
    .await;
    age_sessions(&app).await;
    let replay = expect(
        reauth(json!({ "method": "totp", "code": code })).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(replay["code"], "reauth_failed", "{replay}");
    expect(
        reauth(json!({ "method": "recovery_code", "code": codes[3] })).await,
        StatusCode::OK,
    )
    .await;
    let r = b.send(Method::DELETE, "/api/v1/auth/mfa/totp", None).await;
    expect(r, StatusCode::OK).await;
    assert_eq!(
        overview(&b).await,
        json!({ "totp": false, "passkeys": [], "recovery_codes_left": 0, "methods": [] })
    );
    // Without a second factor the sign-in is the guide's again: an emailed code.
    let login = app.login(&app.browser(), &user).await;
    assert_eq!(login["otp_required"], true, "{login}");
    assert_eq!(login["mfa_required"], false, "{login}");
    let seen = events(&b).await;
    for event in ["reauth", "reauth_failed", "mfa_totp_disabled"] {
        assert!(seen.iter().any(|e| e == event), "{event} in {seen:?}");
    }
}

both_modes!(
    totp_enrolment_login_replay_and_device_trust,
    wrong_codes_count_against_the_emailed_codes_limits,
    recovery_codes_work_once_and_a_new_set_voids_the_old,
    step_up_refusal_and_renewal,
);
