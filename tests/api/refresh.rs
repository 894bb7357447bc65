//! Refresh rotation, the grace window for racing tabs, and reuse detection.

use std::time::Duration;

use reqwest::StatusCode;

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::tokens::parts;
use crate::helpers::{Mode, TestApp};

fn set_cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            c.strip_prefix(&format!("{name}="))
                .map(|rest| rest.split(';').next().unwrap().to_owned())
        })
        .unwrap_or_default()
}

async fn reuse_after_grace_revokes_the_session(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("REFRESH_REUSE_GRACE_SECONDS", "1")]).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (stolen, csrf) = (b.refresh_token(), b.csrf());
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    let access_after_rotation = b.access();
    expect(b.me().await, StatusCode::OK).await;

    // The grace window is checked against our clock (SQL `rotated_at`): move it.
    app.advance(Duration::from_millis(1600));
    let r = app.refresh_with(&stolen, &csrf).await;
    let e = expect(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(e["code"], "refresh_token_reused");

    // The whole session is gone: its access token and its current refresh token.
    expect(b.me().await, StatusCode::UNAUTHORIZED).await;
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&access_after_rotation)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
    expect(
        b.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let rows = app
        .storage
        .sql_rows("SELECT revoked_reason FROM active_sessions")
        .await;
    assert_eq!(rows, vec![vec!["refresh_token_reuse".to_owned()]]);
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM audit_log WHERE event = 'refresh_token_reuse'")
        .await;
    assert_eq!(rows[0][0], "1");
}

async fn repeat_within_grace_gets_the_same_tokens(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (refresh, csrf) = (b.refresh_token(), b.csrf());
    let first = app.refresh_with(&refresh, &csrf).await;
    let second = app.refresh_with(&refresh, &csrf).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    for name in ["mbpanel_access", "mbpanel_refresh", "mbpanel_csrf"] {
        let (a, b) = (set_cookie(&first, name), set_cookie(&second, name));
        assert!(!a.is_empty());
        assert_eq!(a, b, "{name} is the same successor, not a new branch");
    }
    let next = set_cookie(&first, "mbpanel_refresh");
    assert_ne!(next, refresh);
    let next_csrf = set_cookie(&first, "mbpanel_csrf");
    expect(app.refresh_with(&next, &next_csrf).await, StatusCode::OK).await;
}

async fn parallel_refreshes_keep_the_user_logged_in(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (refresh, csrf) = (b.refresh_token(), b.csrf());
    let answers =
        futures::future::join_all((0..4).map(|_| app.refresh_with(&refresh, &csrf))).await;
    let mut successors = Vec::new();
    for r in &answers {
        assert_eq!(r.status(), StatusCode::OK);
        successors.push((
            set_cookie(r, "mbpanel_refresh"),
            set_cookie(r, "mbpanel_csrf"),
            set_cookie(r, "mbpanel_access"),
        ));
    }
    assert!(
        successors.windows(2).all(|w| w[0] == w[1]),
        "one successor for all tabs"
    );
    let (next, next_csrf, next_access) = successors[0].clone();
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&next_access)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    expect(app.refresh_with(&next, &next_csrf).await, StatusCode::OK).await;
    let rows = app
        .storage
        .sql_rows("SELECT revoked_at FROM active_sessions")
        .await;
    assert_eq!(rows[0][0], "NULL");
}

async fn refresh_after_logout_fails(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let (refresh, csrf) = (b.refresh_token(), b.csrf());
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    expect(
        app.refresh_with(&refresh, &csrf).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Without any refresh cookie.
    let nobody = app.browser();
    expect(
        nobody.post_csrf("/api/v1/auth/refresh").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    expect(
        nobody.post_csrf("/api/v1/auth/logout").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn logout_works_with_only_the_refresh_cookie(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b: Browser = app.signed_in(&user).await;
    let (refresh, csrf, access) = (b.refresh_token(), b.csrf(), b.access());
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/logout"))
        .header(
            "Cookie",
            format!("mbpanel_refresh={refresh}; mbpanel_csrf={csrf}"),
        )
        .header("X-CSRF-Token", &csrf)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    let r = reqwest::Client::new()
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
    let sid = parts(&access).1["sid"].as_i64().unwrap();
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT revoked_reason FROM active_sessions WHERE id = {sid}"
        ))
        .await;
    assert_eq!(rows[0][0], "logout");
}

both_modes!(
    reuse_after_grace_revokes_the_session,
    repeat_within_grace_gets_the_same_tokens,
    parallel_refreshes_keep_the_user_logged_in,
    refresh_after_logout_fails,
    logout_works_with_only_the_refresh_cookie,
);
