//! The endpoints the web UI needs beyond the guide: a new emailed code, the pending approval
//! requests of the signed-in user, and the invite preview.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::expect;
use crate::helpers::smtp;
use crate::helpers::{Mode, TestApp};

async fn a_new_code_replaces_the_old_and_keeps_the_count(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    let before = app.mail.count_to(&user.email);
    let login = app.login(&b, &user).await;
    let preauth = login["preauth_token"].as_str().unwrap().to_owned();
    let old = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, before, "verification code")
            .await,
    );
    let wrong = if old == "000000" { "111111" } else { "000000" };
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": wrong }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["attempts_remaining"],
        4
    );

    let before = app.mail.count_to(&user.email);
    let r = b
        .post(
            "/api/v1/auth/otp/resend",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let new = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, before, "verification code")
            .await,
    );
    if new != old {
        let r = b
            .post(
                "/api/v1/auth/otp/verify",
                json!({ "preauth_token": preauth, "code": old }),
            )
            .await;
        let body = expect(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["code"], "otp_invalid");
        assert_eq!(body["attempts_remaining"], 3, "a resend buys no guesses");
    }
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": preauth, "code": new }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    // Nothing waits for a code any more; unknown tokens and bad bodies are refused plainly.
    let r = b
        .post(
            "/api/v1/auth/otp/resend",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["code"],
        "otp_not_pending"
    );
    let r = b
        .post(
            "/api/v1/auth/otp/resend",
            json!({ "preauth_token": "nope" }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNAUTHORIZED).await["code"],
        "preauth_expired"
    );
    let r = b.post("/api/v1/auth/otp/resend", json!({})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn pending_approvals_are_listed_for_the_deciding_session(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let empty = expect(
        first.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(empty["pending"], json!([]));
    let r = app
        .browser()
        .get("/api/v1/auth/concurrent-login/pending")
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;

    let second = app.browser();
    let preauth = app.login_verified(&second, &user).await;
    let r = second
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    let token = expect(r, StatusCode::LOCKED).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = expect(
        first.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    let pending = listed["pending"].as_array().unwrap();
    assert_eq!(pending.len(), 1, "{listed}");
    assert_eq!(pending[0]["token"], token.as_str());
    assert!(pending[0]["device"].is_string(), "{listed}");
    assert_eq!(pending[0]["ip_address"], "127.0.0.1");
    for field in ["created_at", "expires_at"] {
        let at = pending[0][field].as_str().unwrap();
        assert!(
            at.len() >= 20 && &at[4..5] == "-" && &at[10..11] == "T",
            "{field} is an RFC 3339 time: {at}"
        );
    }
    assert!(pending[0]["expires_at"].as_str() > pending[0]["created_at"].as_str());

    // Another user sees none of it.
    let stranger = app.verified_user().await;
    let other = app.signed_in(&stranger).await;
    let theirs = expect(
        other.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(theirs["pending"], json!([]));

    let r = first
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::OK).await;
    let after = expect(
        first.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        after["pending"],
        json!([]),
        "a decided request is not pending"
    );
}

async fn an_invite_preview_names_team_role_and_inviter_only(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.verified_user().await;
    let b = app.signed_in(&owner).await;
    let team = b.team_id().await;
    let roles = expect(
        b.get(&format!("/api/v1/teams/{team}/roles")).await,
        StatusCode::OK,
    )
    .await;
    let admin = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Admin")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let invited = format!("{}@example.com", crate::helpers::app::unique("invited"));
    let r = b
        .send(
            Method::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": invited, "role_id": admin })),
        )
        .await;
    let id = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let token = smtp::link_token(
        &app.mail
            .wait_for_containing(&invited, 0, "invited to join")
            .await,
    );

    let anyone = app.browser();
    let preview = expect(
        anyone
            .post("/api/v1/invites/preview", json!({ "token": token }))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        preview["team"],
        json!({ "name": format!("{}'s team", owner.name) })
    );
    assert_eq!(preview["role"], json!({ "name": "Admin" }));
    assert_eq!(preview["inviter"], json!({ "name": owner.name }));
    assert!(preview["expires_at"].is_string());
    let text = preview.to_string();
    assert!(
        !text.contains(&invited) && !text.contains(&owner.email),
        "no address in the preview: {text}"
    );

    for bad in [json!({ "token": "nope" }), json!({ "token": "" })] {
        let r = anyone.post("/api/v1/invites/preview", bad).await;
        assert_eq!(
            expect(r, StatusCode::BAD_REQUEST).await["code"],
            "token_invalid"
        );
    }
    let r = anyone.post("/api/v1/invites/preview", json!({})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let r = b
        .send(
            Method::DELETE,
            &format!("/api/v1/teams/{team}/invites/{id}"),
            None,
        )
        .await;
    assert!(r.status().is_success());
    let r = anyone
        .post("/api/v1/invites/preview", json!({ "token": token }))
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["code"],
        "token_invalid",
        "a revoked invite shows nothing"
    );
}

both_modes!(
    a_new_code_replaces_the_old_and_keeps_the_count,
    pending_approvals_are_listed_for_the_deciding_session,
    an_invite_preview_names_team_role_and_inviter_only,
);
