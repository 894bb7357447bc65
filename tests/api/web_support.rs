//! The endpoints the web UI needs beyond the guide: a new emailed code, the pending approval
//! requests of the signed-in user, the waiting sign-in's cancel, the invite preview, the
//! display name and the trusted devices.

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

    let (_second, _, token) = app.waiting_sign_in(&user).await;
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

/// Many sign-ins from one address within a test.
const MANY_LOGINS: &[(&str, &str)] = &[
    ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
    ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
];

fn pending_tokens(list: &serde_json::Value) -> Vec<String> {
    list["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["token"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_cancelled_wait_is_gone_and_frees_its_slot(mode: Mode) {
    let app = TestApp::spawn_with(mode, MANY_LOGINS).await;
    let user = app.verified_user().await;
    let existing = app.signed_in(&user).await;
    // More cancelled waits than the pending limit (3): none is left counting against it.
    for round in 0..5 {
        let (waiting, preauth, token) = app.waiting_sign_in(&user).await;
        let list = expect(
            existing.get("/api/v1/auth/concurrent-login/pending").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(pending_tokens(&list), vec![token.clone()], "round {round}");

        let r = waiting
            .post(
                "/api/v1/auth/concurrent-login/cancel",
                json!({ "token": token, "preauth_token": preauth }),
            )
            .await;
        assert_eq!(expect(r, StatusCode::OK).await["status"], "cancelled");
        let list = expect(
            existing.get("/api/v1/auth/concurrent-login/pending").await,
            StatusCode::OK,
        )
        .await;
        assert!(pending_tokens(&list).is_empty(), "round {round}: {list}");
        let r = existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
            .await;
        assert_eq!(
            expect(r, StatusCode::NOT_FOUND).await["code"],
            "approval_not_found"
        );
        let r = waiting
            .get(&format!("/api/v1/auth/concurrent-login/{token}"))
            .await;
        expect(r, StatusCode::NOT_FOUND).await;
        // The pre-auth token that waited is void: no exchange, no second cancel.
        let r = waiting
            .post(
                "/api/v1/auth/session-exchange",
                json!({ "preauth_token": preauth }),
            )
            .await;
        assert_eq!(
            expect(r, StatusCode::UNAUTHORIZED).await["code"],
            "preauth_expired"
        );
        let r = waiting
            .post(
                "/api/v1/auth/concurrent-login/cancel",
                json!({ "token": token }),
            )
            .await;
        expect(r, StatusCode::NOT_FOUND).await;
    }
    let audited = app
        .storage
        .sql_rows("SELECT count(*) FROM audit_log WHERE event = 'concurrent_login_cancelled'")
        .await;
    assert_eq!(audited[0][0], "5");

    // A decided request stays decided; unknown tokens and bad bodies are refused.
    let (waiting, preauth, token) = app.waiting_sign_in(&user).await;
    let r = existing
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::OK).await;
    let r = waiting
        .post(
            "/api/v1/auth/concurrent-login/cancel",
            json!({ "token": token, "preauth_token": preauth }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::CONFLICT).await["code"],
        "already_decided"
    );
    let r = waiting
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/concurrent-login/cancel",
            json!({ "token": "no-such-request" }),
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let r = app
        .browser()
        .post("/api/v1/auth/concurrent-login/cancel", json!({}))
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn the_display_name_changes_within_limits(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let r = b
        .send(
            Method::PATCH,
            "/api/v1/auth/me",
            Some(json!({ "name": "  Ada Lovelace  " })),
        )
        .await;
    let changed = expect(r, StatusCode::OK).await;
    assert_eq!(changed["name"], "Ada Lovelace");
    assert_eq!(changed["email"], user.email.as_str());
    let me = expect(b.me().await, StatusCode::OK).await;
    assert_eq!(me["user"]["name"], "Ada Lovelace");
    for bad in [
        json!(""),
        json!("   "),
        json!("x".repeat(101)),
        json!("a\u{7}b"),
        // Invisible or text-reversing characters: an empty-looking name, or one that reads
        // as something else in the member list and the invite page (team names refuse them).
        json!("\u{200B}"),
        json!("\u{FEFF}"),
        json!("Pay\u{202E}won"),
        json!("\u{200D}"),
    ] {
        let r = b
            .send(
                Method::PATCH,
                "/api/v1/auth/me",
                Some(json!({ "name": bad })),
            )
            .await;
        let e = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], "name", "{bad}: {e}");
    }
    let r = b
        .send(
            Method::PATCH,
            "/api/v1/auth/me",
            Some(json!({ "name": "y".repeat(100) })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    // Without the CSRF header a cookie session changes nothing.
    let r = b
        .http
        .patch(app.url("/api/v1/auth/me"))
        .json(&json!({ "name": "Mallory" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "csrf_mismatch"
    );
    let r = app
        .browser()
        .send(
            Method::PATCH,
            "/api/v1/auth/me",
            Some(json!({ "name": "Nobody" })),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let me = expect(b.me().await, StatusCode::OK).await;
    assert_eq!(me["user"]["name"], "y".repeat(100));
}

async fn devices(b: &crate::helpers::app::Browser) -> Vec<serde_json::Value> {
    let list = expect(b.get("/api/v1/auth/devices").await, StatusCode::OK).await;
    list["devices"].as_array().unwrap().clone()
}

fn current_id(devices: &[serde_json::Value]) -> i64 {
    let current: Vec<_> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1, "{devices:?}");
    current[0]["id"].as_i64().unwrap()
}

async fn trusted_devices_are_listed_and_forgotten(mode: Mode) {
    let app = TestApp::spawn_with(mode, MANY_LOGINS).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let second = app.second_session(&user, &first).await;
    let seen_by_first = devices(&first).await;
    assert_eq!(seen_by_first.len(), 2, "{seen_by_first:?}");
    for d in &seen_by_first {
        assert!(
            d["created_at"].is_string() && d["last_used_at"].is_string(),
            "{d}"
        );
        assert!(
            d["expires_at"].is_string() && d["user_agent"].is_string(),
            "{d}"
        );
    }
    let first_device = current_id(&seen_by_first);
    let second_device = current_id(&devices(&second).await);
    assert_ne!(first_device, second_device);
    // Trusted: a new login from the first browser needs no emailed code.
    assert_eq!(app.login(&first, &user).await["otp_required"], false);

    // Another user cannot forget it; a cookie session needs the CSRF header.
    let stranger = app.signed_in(&app.verified_user().await).await;
    let r = stranger
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/devices/{second_device}"),
            None,
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let r = first
        .http
        .delete(app.url(&format!("/api/v1/auth/devices/{second_device}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "csrf_mismatch"
    );
    let r = first
        .send(Method::DELETE, "/api/v1/auth/devices/abc", None)
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;

    // Forget one: gone from the list, and its next sign-in asks for the code again.
    let r = first
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/devices/{second_device}"),
            None,
        )
        .await;
    expect(r, StatusCode::NO_CONTENT).await;
    let left = devices(&first).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], first_device);
    let r = first
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/devices/{second_device}"),
            None,
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    assert_eq!(app.login(&second, &user).await["otp_required"], true);
    assert_eq!(app.login(&first, &user).await["otp_required"], false);

    // Forget all: this device too.
    let r = first
        .send(Method::DELETE, "/api/v1/auth/devices", None)
        .await;
    expect(r, StatusCode::NO_CONTENT).await;
    assert!(devices(&first).await.is_empty());
    assert_eq!(app.login(&first, &user).await["otp_required"], true);
    let audited = app
        .storage
        .sql_rows("SELECT event FROM audit_log WHERE event LIKE 'trusted_device%' ORDER BY id")
        .await;
    assert_eq!(
        audited,
        [["trusted_device_forgotten"], ["trusted_devices_forgotten"]]
    );
}

/// A login that skipped the emailed code because its device was trusted is void once that
/// trust is withdrawn before its exchange (as a password change voids it): "forget all
/// devices" then "sign out everywhere" must not let a sign-in already under way through.
async fn a_forgotten_device_voids_its_login_under_way(mode: Mode) {
    let app = TestApp::spawn_with(mode, MANY_LOGINS).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let second = app.second_session(&user, &first).await;
    let under_way = app.login(&second, &user).await;
    assert_eq!(under_way["otp_required"], false, "{under_way}");
    let preauth = under_way["preauth_token"].as_str().unwrap().to_owned();

    let r = first
        .send(Method::DELETE, "/api/v1/auth/devices", None)
        .await;
    expect(r, StatusCode::NO_CONTENT).await;
    for b in [&first, &second] {
        expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    }

    let r = second
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    let e = expect(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(e["code"], "preauth_expired", "{e}");
    assert_eq!(app.login(&second, &user).await["otp_required"], true);
}

/// A new display name is what every instance answers at once: another instance that had the
/// user cached (its `/auth/me` needs no SQL in the steady state) hears of the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_name_is_seen_at_once_by_every_instance() {
    let app = TestApp::spawn(Mode::Production).await;
    let other = TestApp::instance(&app.storage, &[]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let access = b.access();
    let name_on = |at: &TestApp| {
        let url = at.url("/api/v1/auth/me");
        let access = access.clone();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(access)
                .send()
                .await
                .unwrap();
            expect(r, StatusCode::OK).await["user"]["name"].clone()
        }
    };
    assert_eq!(name_on(&other).await, user.name.as_str());
    let r = b
        .send(
            Method::PATCH,
            "/api/v1/auth/me",
            Some(json!({ "name": "Grace Hopper" })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    assert_eq!(name_on(&other).await, "Grace Hopper");
    assert_eq!(name_on(&app).await, "Grace Hopper");
}

both_modes!(
    a_new_code_replaces_the_old_and_keeps_the_count,
    pending_approvals_are_listed_for_the_deciding_session,
    an_invite_preview_names_team_role_and_inviter_only,
    a_cancelled_wait_is_gone_and_frees_its_slot,
    the_display_name_changes_within_limits,
    trusted_devices_are_listed_and_forgotten,
    a_forgotten_device_voids_its_login_under_way,
);
