//! Team security policy: `PUT/GET /teams/<id>/security`. The Owner must hold a second factor
//! to switch it on; the dry run lists who would be blocked; after the grace period a member
//! without a second factor cannot exchange or switch into the team; until then `/auth/me`
//! carries `mfa_setup_required_by`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::{Mode, TestApp};
use crate::teams::role_id;

async fn put_policy(b: &Browser, team: i64, body: Value) -> reqwest::Response {
    b.send(
        Method::PUT,
        &format!("/api/v1/teams/{team}/security"),
        Some(body),
    )
    .await
}

async fn user_id(b: &Browser) -> i64 {
    expect(b.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap()
}

async fn switch(b: &Browser, team: i64) -> reqwest::Response {
    b.send(
        Method::POST,
        "/api/v1/auth/switch-team",
        Some(json!({ "team_id": team })),
    )
    .await
}

/// Gives the user a second factor the way a passkey registration stores it.
async fn give_passkey(app: &TestApp, user_id: i64) {
    app.storage
        .sql(&format!(
            "INSERT INTO passkeys (user_id, credential_id, name, passkey, created_at)
             VALUES ({user_id}, 'cred-{user_id}', 'test key', '{{}}', 1)"
        ))
        .await;
}

async fn only_an_owner_with_a_second_factor_can_require_one(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member_role = role_id(&owner, team, "Admin").await;
    let (member_user, member) = app.join_team(&owner, team, member_role).await;

    let policy = expect(
        owner.get(&format!("/api/v1/teams/{team}/security")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(policy["require_mfa"], false, "{policy}");
    let blocked: Vec<&str> = policy["members_without_mfa"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(blocked.len(), 2, "{policy}");
    assert!(blocked.contains(&member_user.email.as_str()));

    // Not the Owner: refused, even with team permissions.
    for r in [
        member.get(&format!("/api/v1/teams/{team}/security")).await,
        put_policy(
            &member,
            team,
            json!({ "require_mfa": false, "grace_days": 1 }),
        )
        .await,
    ] {
        assert_eq!(expect(r, StatusCode::FORBIDDEN).await["code"], "owner_only");
    }
    // The Owner without a second factor would lock themself out: refused.
    let r = put_policy(
        &owner,
        team,
        json!({ "require_mfa": true, "grace_days": 7 }),
    )
    .await;
    let e = expect(r, StatusCode::CONFLICT).await;
    assert_eq!(e["code"], "owner_mfa_required", "{e}");
    // Bad input: 422 with the field.
    for bad in [
        json!({ "require_mfa": true, "grace_days": -1 }),
        json!({ "require_mfa": true, "grace_days": 366 }),
        json!({ "require_mfa": "yes" }),
        json!({ "grace_days": 3 }),
        json!({ "require_mfa": true, "grace_days": 1, "extra": 1 }),
    ] {
        let r = put_policy(&owner, team, bad.clone()).await;
        let e = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(e["detail"].is_string(), "{bad} → {e}");
    }
    // Step-up: without a recent authentication, policy and passkey changes are refused.
    app.storage
        .sql("UPDATE active_sessions SET authenticated_at = 1")
        .await;
    let r = put_policy(
        &owner,
        team,
        json!({ "require_mfa": false, "grace_days": 0 }),
    )
    .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "reauth_required"
    );
    let r = owner
        .send(
            Method::POST,
            "/api/v1/auth/mfa/passkeys/register/begin",
            None,
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "reauth_required"
    );
    // Another team's policy is not ours to read.
    let other = app.signed_in(&app.verified_user().await).await;
    let r = other.get(&format!("/api/v1/teams/{team}/security")).await;
    assert_eq!(expect(r, StatusCode::FORBIDDEN).await["code"], "not_member");
}

async fn members_without_a_second_factor_are_refused_after_the_grace(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
            ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
        ],
    )
    .await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    let role = role_id(&owner, team, "Member").await;
    let (member_user, member) = app.join_team(&owner, team, role).await;
    let member_id = user_id(&member).await;
    give_passkey(&app, user_id(&owner).await).await;

    // On, with a grace of 7 days: nobody is refused yet; the member is told by when.
    let r = put_policy(
        &owner,
        team,
        json!({ "require_mfa": true, "grace_days": 7 }),
    )
    .await;
    let policy = expect(r, StatusCode::OK).await;
    assert_eq!(policy["require_mfa"], true);
    assert_eq!(policy["grace_days"], 7);
    let enforced_at = policy["enforced_at"].as_str().unwrap().to_owned();
    let policy = expect(
        owner.get(&format!("/api/v1/teams/{team}/security")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        policy["members_without_mfa"],
        json!([{ "id": member_id, "email": member_user.email }])
    );
    let me = expect(member.me().await, StatusCode::OK).await;
    assert_eq!(me["mfa_setup_required_by"], json!(enforced_at), "{me}");
    let me = expect(owner.me().await, StatusCode::OK).await;
    assert!(me.get("mfa_setup_required_by").is_none(), "{me}");
    expect(switch(&member, team).await, StatusCode::OK).await;

    // The grace is over: the member cannot switch or exchange into the team.
    let r = put_policy(
        &owner,
        team,
        json!({ "require_mfa": true, "grace_days": 0 }),
    )
    .await;
    expect(r, StatusCode::OK).await;
    let r = switch(&member, team).await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "mfa_required_by_team"
    );
    let fresh = app.browser();
    let preauth = app.login_verified(&fresh, &member_user).await;
    let r = fresh
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth, "team_id": team }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "mfa_required_by_team"
    );
    // The owner is not locked out.
    expect(switch(&owner, team).await, StatusCode::OK).await;

    // With a second factor the member gets in again; switched off, so would anyone.
    give_passkey(&app, member_id).await;
    expect(switch(&member, team).await, StatusCode::OK).await;
    let r = put_policy(
        &owner,
        team,
        json!({ "require_mfa": false, "grace_days": 0 }),
    )
    .await;
    let off = expect(r, StatusCode::OK).await;
    assert_eq!(off["require_mfa"], false);
    assert!(off["enforced_at"].is_null());
    let audited = app
        .storage
        .sql_rows("SELECT count(*) FROM audit_log WHERE event = 'team_security_policy_changed'")
        .await;
    assert_eq!(audited[0][0], "3");
}

both_modes!(
    only_an_owner_with_a_second_factor_can_require_one,
    members_without_a_second_factor_are_refused_after_the_grace,
);
