//! Session core (SPEC §11): a token is only as good as the live session it names; refresh mints
//! the current role; losing Redis logs nobody out and revives nothing; sessions that cannot be
//! refreshed never gate a login; event streams are bounded; revocation crosses instances at once.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Browser, JWT_SECRET, Storage, expect};
use crate::helpers::sse::EventStream;
use crate::helpers::tokens::{parts, sign_hs256};
use crate::helpers::{Mode, TestApp};

const ADMIN_ROLE: i64 = 2;
const VIEWER_ROLE: i64 = 4;

/// An access token signed with the shared key (as another mbpanel service could), with the
/// claims of `template` changed by `edit`.
fn forged_from(template: &str, edit: impl FnOnce(&mut Value)) -> String {
    let (header, mut claims, _) = parts(template);
    edit(&mut claims);
    sign_hs256(&header, &claims, JWT_SECRET.as_bytes())
}

/// Every authenticated route a token could be tried on, with a body where one is needed.
fn authenticated_routes(team: i64) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/auth/me".into(), None),
        (Method::GET, "/api/v1/auth/sessions".into(), None),
        (Method::GET, "/api/v1/auth/audit".into(), None),
        (Method::GET, "/api/v1/auth/events".into(), None),
        (Method::GET, "/api/v1/teams".into(), None),
        (
            Method::POST,
            "/api/v1/teams".into(),
            Some(json!({ "name": "forged" })),
        ),
        (Method::GET, format!("/api/v1/teams/{team}/members"), None),
        (Method::GET, format!("/api/v1/teams/{team}/roles"), None),
        (
            Method::POST,
            format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "forged", "permissions": [] })),
        ),
        (Method::GET, format!("/api/v1/teams/{team}/audit"), None),
        (Method::GET, format!("/api/v1/teams/{team}/virtuozzo"), None),
        (
            Method::POST,
            "/api/v1/auth/switch-team".into(),
            Some(json!({ "team_id": team })),
        ),
        (Method::POST, "/api/v1/auth/logout-all".into(), None),
    ]
}

async fn refused_everywhere(app: &TestApp, token: &str, team: i64, what: &str) {
    let http = reqwest::Client::new();
    for (method, path, body) in authenticated_routes(team) {
        let mut request = http
            .request(method.clone(), app.url(&path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let e = expect(r, StatusCode::UNAUTHORIZED).await;
        assert_eq!(e["detail"], "Not authenticated", "{what}: {method} {path}");
    }
}

async fn a_token_needs_a_live_session_of_its_subject_in_one_of_its_teams(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let alice = app.verified_user().await;
    let bob = app.verified_user().await;
    let a = app.signed_in(&alice).await;
    let b = app.signed_in(&bob).await;
    let alice_team = a.team_id().await;
    let bob_team = b.team_id().await;
    let token = a.access();
    let (_, claims, _) = parts(&b.access());
    let bob_sid = claims["sid"].clone();

    let missing_session = forged_from(&token, |c| c["sid"] = json!(987_654_321));
    refused_everywhere(
        &app,
        &missing_session,
        alice_team,
        "a session that does not exist",
    )
    .await;
    let someone_elses = forged_from(&token, |c| c["sid"] = bob_sid.clone());
    refused_everywhere(
        &app,
        &someone_elses,
        alice_team,
        "another user's live session",
    )
    .await;
    let foreign_team = forged_from(&token, |c| c["team_id"] = json!(bob_team));
    refused_everywhere(&app, &foreign_team, bob_team, "a team of someone else").await;

    // The genuine tokens still work, and Bob's logout was never needed to stop the forgeries.
    assert_eq!(app.bearer_me(&token).await, StatusCode::OK);
    assert_eq!(app.bearer_me(&b.access()).await, StatusCode::OK);
}

async fn a_left_team_ends_its_sessions(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    let (member_user, member) = app.join_team(&owner, team, ADMIN_ROLE).await;
    let in_team = member.access();
    expect(member.me().await, StatusCode::OK).await;
    let (_, claims, _) = parts(&in_team);
    let member_id = claims["sub"].as_str().unwrap().parse::<i64>().unwrap();

    let r = owner
        .send(
            Method::DELETE,
            &format!("/api/v1/teams/{team}/members/{member_id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.bearer_me(&in_team).await, StatusCode::UNAUTHORIZED);
    refused_everywhere(&app, &in_team, team, "a team the user left").await;
    expect(
        member.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // That session no longer gates the member's next login (no 423).
    app.signed_in(&member_user).await;
}

async fn refresh_mints_the_current_role(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    let (_, member) = app.join_team(&owner, team, ADMIN_ROLE).await;
    let me = expect(member.me().await, StatusCode::OK).await;
    assert_eq!(me["role"]["name"], "Admin");
    let member_id = me["user"]["id"].as_i64().unwrap();

    let r = owner
        .send(
            Method::PATCH,
            &format!("/api/v1/teams/{team}/members/{member_id}"),
            Some(json!({ "role_id": VIEWER_ROLE })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    // At once, before any refresh: authorisation never trusts the token's claims.
    let me = expect(member.me().await, StatusCode::OK).await;
    assert_eq!(me["role"]["name"], "Viewer");
    expect(
        member.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::OK,
    )
    .await;
    let (_, claims, _) = parts(&member.access());
    assert_eq!(
        claims["role"], "Viewer",
        "the rotated token carries the new role"
    );
    assert_eq!(claims["team_id"], team);
}

/// Sessions that can no longer be refreshed (idle, expired) never make a login wait.
async fn sessions_that_cannot_be_refreshed_never_gate_a_login(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = app.signed_in(&user).await;
    let (_, claims, _) = parts(&first.access());
    let sid = claims["sid"].as_i64().unwrap();
    // Idle for longer than the idle timeout (60 minutes by default).
    let long_ago = mbpanel_auth::domain::time::now_ms() - 2 * 3600 * 1000;
    app.storage
        .sql(&format!(
            "UPDATE active_sessions SET last_seen_at = {long_ago} WHERE id = {sid}"
        ))
        .await;
    let second = app.signed_in(&user).await;
    expect(
        first.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Expired.
    let (_, claims, _) = parts(&second.access());
    let sid = claims["sid"].as_i64().unwrap();
    app.storage
        .sql(&format!(
            "UPDATE active_sessions SET expires_at = {long_ago} WHERE id = {sid}"
        ))
        .await;
    app.signed_in(&user).await;
}

async fn open_stream(app: &TestApp, b: &Browser) -> reqwest::Response {
    b.http
        .get(app.url("/api/v1/auth/events"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap()
}

async fn event_streams_are_bounded_per_session(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(EventStream::open(&b.http, &app.url("/api/v1/auth/events")).await);
    }
    let sixth = open_stream(&app, &b).await;
    let e = expect(sixth, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(e["code"], "too_many_streams");
    // Closing one frees its place.
    drop(open.pop());
    let mut reopened = false;
    for _ in 0..50 {
        let r = open_stream(&app, &b).await;
        if r.status() == StatusCode::OK {
            reopened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened, "a closed stream gives back its place");
}

both_modes!(
    a_token_needs_a_live_session_of_its_subject_in_one_of_its_teams,
    a_left_team_ends_its_sessions,
    refresh_mints_the_current_role,
    sessions_that_cannot_be_refreshed_never_gate_a_login,
    event_streams_are_bounded_per_session,
);

// ---------------------------------------------------------------------------------------------
// Production: losing Redis state, and several instances.
// ---------------------------------------------------------------------------------------------

/// The whole ephemeral state gone (as after FLUSHALL): nobody is logged out, nothing revoked
/// or rotated comes back, and logins are gated exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_redis_state_logs_nobody_out_and_revives_nothing() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let app = TestApp::instance(&storage, &[("REFRESH_REUSE_GRACE_SECONDS", "1")]).await;
    let user = app.verified_user().await;
    let live = app.signed_in(&user).await;
    let (rotated_away, csrf) = (live.refresh_token(), live.csrf());
    expect(live.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let other = app.verified_user().await;
    let gone = app.signed_in(&other).await;
    let (gone_access, gone_refresh, gone_csrf) = (gone.access(), gone.refresh_token(), gone.csrf());
    expect(gone.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;

    storage.flush_redis().await;
    expect(live.me().await, StatusCode::OK).await;
    expect(live.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    expect(live.me().await, StatusCode::OK).await;
    assert_eq!(app.bearer_me(&gone_access).await, StatusCode::UNAUTHORIZED);
    expect(
        app.refresh_with(&gone_refresh, &gone_csrf).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Past the reuse grace, which our code checks against its clock.
    app.advance(Duration::from_millis(1100));
    let e = expect(
        app.refresh_with(&rotated_away, &csrf).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(e["code"], "refresh_token_reused");
    // Reuse is theft: the session is gone, as before the flush.
    expect(live.me().await, StatusCode::UNAUTHORIZED).await;
    // The logged-out user signs in again without waiting for anyone (no 423).
    app.signed_in(&other).await;
}

/// Logout answered by one instance is refused by the other's very next request, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_is_refused_by_the_other_at_once() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let settings = [
        ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "100000"),
        ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "100000"),
    ];
    let a = TestApp::instance(&storage, &settings).await;
    let b = TestApp::instance(&storage, &settings).await;
    let user = a.verified_user().await;
    let http = reqwest::Client::new();
    // One browser: after the first code its device is trusted, so each round signs in with the
    // password alone.
    let browser = a.browser();
    for round in 0..200 {
        a.sign_in(&browser, &user).await;
        let access = browser.access();
        // B has seen the session live (and may cache it).
        assert_eq!(b.bearer_me(&access).await, StatusCode::OK, "round {round}");
        let r = http
            .post(a.url("/api/v1/auth/logout"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        expect(r, StatusCode::OK).await;
        assert_eq!(
            b.bearer_me(&access).await,
            StatusCode::UNAUTHORIZED,
            "round {round}: B honours A's logout at once"
        );
    }
}

/// Streams count across instances: 3 on one and 2 on the other fill the session's five.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_limits_are_shared_across_instances() {
    let storage = Arc::new(Storage::new(Mode::Production).await);
    let a = TestApp::instance(&storage, &[]).await;
    let b = TestApp::instance(&storage, &[]).await;
    let user = a.verified_user().await;
    let browser = a.signed_in(&user).await;
    let token = browser.access();
    let http = reqwest::Client::new();
    let open = |app: &TestApp| {
        http.get(app.url("/api/v1/auth/events"))
            .bearer_auth(&token)
            .send()
    };
    let mut streams = Vec::new();
    for app in [&a, &a, &a, &b, &b] {
        let r = open(app).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        streams.push(r);
    }
    for app in [&a, &b] {
        let e = expect(open(app).await.unwrap(), StatusCode::TOO_MANY_REQUESTS).await;
        assert_eq!(e["code"], "too_many_streams");
    }
}
