//! Attacks on the access token and the CSRF defence.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{JWT_SECRET, expect};
use crate::helpers::tokens::{encode_unsigned, parts, sign_hs256};
use crate::helpers::{Mode, TestApp};

async fn tampered_tokens_are_refused(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let access = b.access();
    assert_eq!(app.bearer_me(&access).await, StatusCode::OK);
    let (header, claims, signature) = parts(&access);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    let mut forged: Vec<(&str, String)> = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = json!({ "alg": alg, "typ": "JWT" });
        forged.push(("alg none", format!("{}.", encode_unsigned(&h, &claims))));
        forged.push((
            "alg none with signature",
            format!("{}.{signature}", encode_unsigned(&h, &claims)),
        ));
    }
    forged.push((
        "stripped signature",
        format!("{}.", encode_unsigned(&header, &claims)),
    ));
    forged.push(("no signature part", encode_unsigned(&header, &claims)));
    let mut flipped = access.clone().into_bytes();
    let i = flipped.len() - 5;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    forged.push(("flipped signature", String::from_utf8(flipped).unwrap()));
    forged.push((
        "wrong key",
        sign_hs256(&header, &claims, b"another-secret-key-of-enough-length!!"),
    ));
    let wrong_key_no_kid = json!({ "alg": "HS256", "typ": "JWT" });
    forged.push((
        "wrong key without kid",
        sign_hs256(
            &wrong_key_no_kid,
            &claims,
            b"another-secret-key-of-enough-length!!",
        ),
    ));
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 120);
    expired["iat"] = json!(now - 1000);
    forged.push((
        "expired",
        sign_hs256(&header, &expired, JWT_SECRET.as_bytes()),
    ));
    let mut edited = claims.clone();
    edited["sub"] = json!("999");
    forged.push((
        "edited claim, old signature",
        format!("{}.{signature}", encode_unsigned(&header, &edited)),
    ));
    forged.push(("refresh token as access", b.refresh_token()));
    let mut hs512 = header.clone();
    hs512["alg"] = json!("HS512");
    forged.push((
        "other algorithm",
        sign_hs256(&hs512, &claims, JWT_SECRET.as_bytes()),
    ));
    let mut crit = header.clone();
    crit["crit"] = json!(["exp"]);
    forged.push((
        "crit header",
        sign_hs256(&crit, &claims, JWT_SECRET.as_bytes()),
    ));
    let mut jku = header.clone();
    jku["jku"] = json!("http://attacker.invalid/keys");
    forged.push((
        "jku header",
        sign_hs256(&jku, &claims, JWT_SECRET.as_bytes()),
    ));
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    forged.push((
        "no exp",
        sign_hs256(&header, &no_exp, JWT_SECRET.as_bytes()),
    ));
    let mut string_exp = claims.clone();
    string_exp["exp"] = json!((now + 600).to_string());
    forged.push((
        "exp as string",
        sign_hs256(&header, &string_exp, JWT_SECRET.as_bytes()),
    ));
    forged.push(("garbage", "not.a.jwt".to_owned()));
    forged.push(("empty", String::new()));

    for (what, token) in forged {
        let r = reqwest::Client::new()
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let e = expect(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(e["detail"], "Not authenticated", "{what}");
        // The same token as a cookie is refused too.
        let r = reqwest::Client::new()
            .get(app.url("/api/v1/auth/me"))
            .header("Cookie", format!("mbpanel_access={token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what} as cookie");
    }
    // A correctly re-signed token with our key is accepted: the checks above are not blanket refusals.
    let resigned = sign_hs256(&header, &claims, JWT_SECRET.as_bytes());
    assert_eq!(app.bearer_me(&resigned).await, StatusCode::OK);
}

async fn missing_token_is_not_authenticated(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let e = expect(app.browser().me().await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        e,
        json!({ "detail": "Not authenticated", "code": "not_authenticated" })
    );
}

async fn csrf_is_required_on_cookie_authenticated_unsafe_requests(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let refresh_before = b.refresh_token();
    let url = app.url("/api/v1/auth/refresh");

    // Missing header, mismatched header, and a forged pair the server never issued.
    let missing = b.http.post(&url).send().await.unwrap();
    let mismatched = b
        .http
        .post(&url)
        .header("X-CSRF-Token", "something-else")
        .send()
        .await
        .unwrap();
    let forged = "1.99999999999999.abc.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let raw = reqwest::Client::new()
        .post(&url)
        .header(
            "Cookie",
            format!("mbpanel_refresh={refresh_before}; mbpanel_csrf={forged}"),
        )
        .header("X-CSRF-Token", forged)
        .send()
        .await
        .unwrap();
    for r in [missing, mismatched, raw] {
        let e = expect(r, StatusCode::FORBIDDEN).await;
        assert_eq!(e["detail"], "CSRF token mismatch");
    }
    assert_eq!(b.refresh_token(), refresh_before, "nothing rotated");

    // Another session's genuine CSRF token does not fit this session.
    let other = app.second_session(&user, &b).await;
    let r = b
        .http
        .post(&url)
        .header("X-CSRF-Token", other.csrf())
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::FORBIDDEN).await;

    // Logout without CSRF changes nothing.
    let r = b
        .http
        .post(app.url("/api/v1/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["detail"],
        "CSRF token mismatch"
    );
    expect(b.me().await, StatusCode::OK).await;
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM active_sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(rows[0][0], "0");

    // With the header, both work.
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
}

async fn bearer_clients_need_no_csrf(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let token = b.access();
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    assert_eq!(app.bearer_me(&token).await, StatusCode::UNAUTHORIZED);
    // The guide's blacklist key names the token id.
    let jti = parts(&token).1["jti"].as_str().unwrap().to_owned();
    if mode == Mode::Production {
        let mut redis = app.storage.redis().await;
        let exists: i64 = redis::cmd("EXISTS")
            .arg(format!("{}blacklist:{jti}", app.storage.redis_prefix))
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(exists, 1);
    }
}

both_modes!(
    tampered_tokens_are_refused,
    missing_token_is_not_authenticated,
    csrf_is_required_on_cookie_authenticated_unsafe_requests,
    bearer_clients_need_no_csrf,
);
