//! Hostile and malformed input: always a clear 4xx, never a 500, and the server stays up.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::{Mode, TestApp};

const ENDPOINTS: [&str; 6] = [
    "/api/v1/auth/register",
    "/api/v1/auth/verify-email",
    "/api/v1/auth/verify-email/resend",
    "/api/v1/auth/login",
    "/api/v1/auth/otp/verify",
    "/api/v1/auth/session-exchange",
];

async fn send_raw(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    raw: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new().post(app.url(path)).body(raw);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    req.send().await.unwrap()
}

fn assert_error_shape(status: StatusCode, b: &Value, what: &str) {
    assert!(status.is_client_error(), "{what}: {status} {b}");
    assert!(
        b["detail"].is_string() && b["code"].is_string(),
        "{what}: {b}"
    );
}

async fn malformed_bodies_get_clear_4xx(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    // Nested inside an ignored field, so that serde's recursion limit (not a type error) answers.
    let deep = format!(
        r#"{{"email":"a@b.co","password":"x","name":"n","token":"t","extra":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    type Case = (
        &'static str,
        Option<&'static str>,
        Vec<u8>,
        Option<StatusCode>,
    );
    let cases: Vec<Case> = vec![
        (
            "broken json",
            Some("application/json"),
            b"{\"email\": ".to_vec(),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            "not json",
            Some("application/json"),
            b"hello".to_vec(),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            "empty body",
            Some("application/json"),
            Vec::new(),
            Some(StatusCode::BAD_REQUEST),
        ),
        (
            "wrong types",
            Some("application/json"),
            br#"{"email": 5, "password": [], "name": {}}"#.to_vec(),
            Some(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            "array",
            Some("application/json"),
            b"[1,2,3]".to_vec(),
            Some(StatusCode::UNPROCESSABLE_ENTITY),
        ),
        (
            "no content type",
            None,
            br#"{"email":"a@b.co"}"#.to_vec(),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            b"email=a".to_vec(),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ),
        (
            "deeply nested",
            Some("application/json"),
            deep.into_bytes(),
            None,
        ),
        (
            "oversized",
            Some("application/json"),
            format!("{{\"email\":\"{}\"}}", "a".repeat(100_000)).into_bytes(),
            Some(StatusCode::PAYLOAD_TOO_LARGE),
        ),
        (
            "invalid utf-8",
            Some("application/json"),
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            Some(StatusCode::BAD_REQUEST),
        ),
    ];
    for path in ENDPOINTS {
        for (what, ct, raw, expected) in &cases {
            let r = send_raw(&app, path, *ct, raw.clone()).await;
            let status = r.status();
            let b = body(r).await;
            match expected {
                Some(expected) => {
                    assert_error_shape(status, &b, &format!("{path} {what}"));
                    assert_eq!(status, *expected, "{path} {what}: {b}");
                }
                // Valid once the deep part is ignored: any answer but a server error.
                None => assert!(!status.is_server_error(), "{path} {what}: {status} {b}"),
            }
        }
    }
    expect(app.browser().get("/healthz").await, StatusCode::OK).await;
}

async fn sql_metacharacters_in_every_field_are_harmless(mode: Mode) {
    let limits = [
        ("LOGIN_RATE_LIMIT_ATTEMPTS", "1000"),
        ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
    ];
    let app = TestApp::spawn_with(mode, &limits).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let nasty = [
        "' OR '1'='1",
        "'; DROP TABLE users; --",
        "\" OR \"\"=\"",
        "1; SELECT pg_sleep(5)",
        "admin'--@example.com",
        "%_\\'\0",
        "$1 $2 ?1 :name @p",
        "𝕒𝕓𝕔'\u{202e}",
    ];
    for s in nasty {
        let email = format!("{s}@example.com");
        for (path, body) in [
            (
                "/api/v1/auth/register",
                json!({ "email": email, "password": format!("{s}{s}pw"), "name": s }),
            ),
            (
                "/api/v1/auth/login",
                json!({ "email": email, "password": s }),
            ),
            (
                "/api/v1/auth/login",
                json!({ "email": user.email, "password": s }),
            ),
            ("/api/v1/auth/verify-email", json!({ "token": s })),
            ("/api/v1/auth/verify-email/resend", json!({ "email": s })),
            (
                "/api/v1/auth/otp/verify",
                json!({ "preauth_token": s, "code": s }),
            ),
            (
                "/api/v1/auth/otp/verify",
                json!({ "preauth_token": s, "code": "123456" }),
            ),
            (
                "/api/v1/auth/session-exchange",
                json!({ "preauth_token": s }),
            ),
        ] {
            let r = b.post(path, body.clone()).await;
            let status = r.status();
            let answer = crate::helpers::app::body(r).await;
            assert!(
                status.is_client_error() || status == StatusCode::ACCEPTED,
                "{path} {body}: {status} {answer}"
            );
        }
    }
    // Nothing was dropped or bypassed: the user still exists and logs in normally.
    let rows = app.storage.sql_rows("SELECT COUNT(*) FROM users").await;
    assert!(rows[0][0].parse::<i64>().unwrap() >= 1);
    app.sign_in(&app.browser(), &user).await;
    // Cookies and headers carrying junk are refused cleanly too.
    for junk in ["'; --", "\u{7f}", "a.b.c.d.e", &"x".repeat(8000)] {
        let r = reqwest::Client::new()
            .get(app.url("/api/v1/auth/me"))
            .header("Authorization", format!("Bearer {junk}"))
            .send()
            .await;
        if let Ok(r) = r {
            assert!(r.status().is_client_error(), "{junk:?}");
        }
    }
}

both_modes!(
    malformed_bodies_get_clear_4xx,
    sql_metacharacters_in_every_field_are_harmless
);
