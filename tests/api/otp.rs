//! The emailed code and the single-use pre-auth token.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::expect;
use crate::helpers::smtp;
use crate::helpers::{Mode, TestApp};

async fn wrong_codes_burn_the_preauth_token(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let login = app.login(&b, &user).await;
    let preauth = login["preauth_token"].as_str().unwrap();
    let code = smtp::otp_code(&app.mail.wait_for_nth(&user.email, 1).await);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for remaining in (1..5).rev() {
        let r = b
            .post(
                "/api/v1/auth/otp/verify",
                json!({ "preauth_token": preauth, "code": wrong }),
            )
            .await;
        let e = expect(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(e["code"], "otp_invalid");
        assert_eq!(e["attempts_remaining"], remaining);
    }
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": wrong }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["code"],
        "otp_attempts_exceeded"
    );
    // Burned: even the right code is refused now, and so is the exchange.
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": code }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["detail"],
        "Pre-auth token expired"
    );
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["detail"],
        "Pre-auth token expired"
    );
}

async fn parallel_code_guesses_are_bounded(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let login = app.login(&b, &user).await;
    let preauth = login["preauth_token"].as_str().unwrap().to_owned();
    let code = smtp::otp_code(&app.mail.wait_for_nth(&user.email, 1).await);
    let guesses: Vec<String> = (0..40)
        .map(|i| format!("{:06}", (i * 7919 + 13) % 1_000_000))
        .filter(|g| *g != code)
        .take(30)
        .collect();
    let calls = guesses.iter().map(|g| {
        b.post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": g }),
        )
    });
    let results = futures::future::join_all(calls).await;
    let invalid = results
        .iter()
        .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(invalid, 30);
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": code }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
}

async fn code_is_bound_to_its_own_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let first = app.login(&b, &user).await;
    let first_code = smtp::otp_code(&app.mail.wait_for_nth(&user.email, 1).await);
    let second = app.login(&b, &user).await;
    let second_code = smtp::otp_code(&app.mail.wait_for_nth(&user.email, 2).await);
    if first_code != second_code {
        let r = b
            .post(
                "/api/v1/auth/otp/verify",
                json!({ "preauth_token": second["preauth_token"], "code": first_code }),
            )
            .await;
        expect(r, StatusCode::UNAUTHORIZED).await;
    }
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": first["preauth_token"], "code": first_code }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    // Verified once: a second verification has nothing to verify.
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": first["preauth_token"], "code": first_code }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["code"],
        "otp_not_pending"
    );
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": first["preauth_token"], "code": "12345" }),
        )
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn preauth_token_is_single_use_under_parallel_exchanges(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let preauth = app.login_verified(&b, &user).await;
    let calls = (0..8).map(|_| {
        let client = reqwest::Client::new();
        let url = app.url("/api/v1/auth/session-exchange");
        let body = json!({ "preauth_token": preauth });
        async move { client.post(url).json(&body).send().await.unwrap().status() }
    });
    let statuses = futures::future::join_all(calls).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        7,
        "{statuses:?}"
    );
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM active_sessions")
        .await;
    assert_eq!(rows[0][0], "1");
}

async fn preauth_token_expires(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("PREAUTH_TOKEN_TTL_SECONDS", "1")]).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let preauth = app.login_verified(&b, &user).await;
    // The pre-auth token lives as long as its store key.
    app.outlive_ttl(Duration::from_millis(1300)).await;
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["detail"],
        "Pre-auth token expired"
    );
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": "never-issued" }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["detail"],
        "Pre-auth token expired"
    );
}

async fn exchange_into_a_foreign_team_is_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = app.verified_user().await;
    let bob = app.verified_user().await;
    let bob_team = app.login(&app.browser(), &bob).await["teams"][0]["id"]
        .as_i64()
        .unwrap();
    let b = app.browser();
    let preauth = app.login_verified(&b, &alice).await;
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth, "team_id": bob_team }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["detail"],
        "Not a member of team"
    );
    // The refusal did not consume the token: the own team still works.
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
}

async fn wrong_codes_are_limited_per_account_across_logins(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    for round in 0..2 {
        let login = app.login(&b, &user).await;
        let code = smtp::otp_code(&app.mail.wait_for_nth(&user.email, round + 1).await);
        let wrong = if code == "000000" { "111111" } else { "000000" };
        for _ in 0..5 {
            let r = b
                .post(
                    "/api/v1/auth/otp/verify",
                    json!({ "preauth_token": login["preauth_token"], "code": wrong }),
                )
                .await;
            expect(r, StatusCode::UNAUTHORIZED).await;
        }
    }
    // Ten wrong codes across two logins: no more codes for this account for a while.
    let r = b
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    assert!(r.headers().contains_key("retry-after"));
    expect(r, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(
        app.mail.count_to(&user.email),
        3,
        "no further code was emailed"
    );
}

both_modes!(
    wrong_codes_are_limited_per_account_across_logins,
    wrong_codes_burn_the_preauth_token,
    parallel_code_guesses_are_bounded,
    code_is_bound_to_its_own_login,
    preauth_token_is_single_use_under_parallel_exchanges,
    preauth_token_expires,
    exchange_into_a_foreign_team_is_refused,
);
