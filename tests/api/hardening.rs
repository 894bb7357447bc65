//! Issue 10: hostile clients cannot exhaust, enumerate, flood or outlive their rights.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::smtp::link_token;
use crate::helpers::{Mode, TestApp, TestUser};
use crate::teams::role_id;

fn random_email() -> String {
    TestUser::random().email
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.storage.sql_rows(sql).await[0][0].parse().unwrap()
}

async fn register_only(app: &TestApp, user: &TestUser) {
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": user.name }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
}

async fn login_status(b: &Browser, email: &str, password: &str) -> StatusCode {
    b.post(
        "/api/v1/auth/login",
        json!({ "email": email, "password": password }),
    )
    .await
    .status()
}

async fn reset_link(app: &TestApp, user: &TestUser, nth_reset: usize) -> String {
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/request",
            json!({ "email": user.email }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let mut from = 0;
    let mut mail = None;
    for _ in 0..nth_reset {
        let m = app
            .mail
            .wait_for_containing(&user.email, from, "Reset your mbpanel password")
            .await;
        from = app
            .mail
            .all()
            .iter()
            .position(|x| x.data == m.data)
            .unwrap()
            + 1;
        mail = Some(m);
    }
    link_token(&mail.unwrap())
}

// Row 1: one client cannot create unbounded per-address keys.
async fn email_requests_are_limited_per_client(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("EMAIL_REQUEST_RATE_LIMIT_IP", "4")]).await;
    let b = app.browser();
    for path in ["password-reset/request", "verify-email/resend"] {
        for _ in 0..2 {
            let r = b
                .post(
                    &format!("/api/v1/auth/{path}"),
                    json!({ "email": random_email() }),
                )
                .await;
            expect(r, StatusCode::ACCEPTED).await;
        }
    }
    for path in ["password-reset/request", "verify-email/resend"] {
        let r = b
            .post(
                &format!("/api/v1/auth/{path}"),
                json!({ "email": random_email() }),
            )
            .await;
        assert!(r.headers().contains_key("retry-after"));
        expect(r, StatusCode::TOO_MANY_REQUESTS).await;
    }
}

// Row 2: correct passwords of unverified accounts spend the client's verification budget and
// clear no counter.
async fn password_verifications_are_budgeted_per_client(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "3")]).await;
    let user = TestUser::random();
    register_only(&app, &user).await;
    let b = app.browser();
    for _ in 0..3 {
        assert_eq!(
            login_status(&b, &user.email, &user.password).await,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        login_status(&b, &user.email, &user.password).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn unverified_logins_do_not_clear_the_account_counter(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = TestUser::random();
    register_only(&app, &user).await;
    let b = app.browser();
    for _ in 0..4 {
        assert_eq!(
            login_status(&b, &user.email, "wrong password!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login_status(&b, &user.email, &user.password).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        login_status(&b, &user.email, "wrong password!").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// Row 3: a denied sign-in keeps no trusted device; a password change distrusts them all.
async fn a_denied_sign_in_keeps_no_trusted_device(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let owner = app.signed_in(&user).await;
    let (intruder, _, token) = app.waiting_sign_in(&user).await;
    let r = owner
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/deny"))
        .await;
    expect(r, StatusCode::OK).await;
    expect(owner.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    // Nobody is left to ask: without the fix the password alone would now be enough.
    let login = app.login(&intruder, &user).await;
    assert_eq!(login["otp_required"], true);
}

async fn a_code_alone_does_not_trust_the_device(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.browser();
    // The code is right, but the login never becomes a session.
    app.login_verified(&b, &user).await;
    assert_eq!(app.login(&b, &user).await["otp_required"], true);
}

async fn a_password_change_distrusts_every_device(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    assert_eq!(app.login(&b, &user).await["otp_required"], false);
    let new_password = "a brand new passphrase";
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": new_password })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let changed = TestUser {
        password: new_password.into(),
        ..user
    };
    assert_eq!(app.login(&b, &changed).await["otp_required"], true);
}

// Row 4: the answer takes as long for an unknown address as for a known one.
async fn reset_requests_take_as_long_for_unknown_addresses(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("EMAIL_REQUEST_RATE_LIMIT_IP", "1000")]).await;
    let mut known = Vec::new();
    for _ in 0..12 {
        let user = TestUser::random();
        register_only(&app, &user).await;
        known.push(user.email);
    }
    let b = app.browser();
    let mut timings = (Vec::new(), Vec::new());
    for round in 0..3 {
        for email in &known {
            for (is_known, address) in [(true, email.clone()), (false, random_email())] {
                let started = Instant::now();
                let r = b
                    .post(
                        "/api/v1/auth/password-reset/request",
                        json!({ "email": address }),
                    )
                    .await;
                let took = started.elapsed();
                expect(r, StatusCode::ACCEPTED).await;
                // The first round warms connections and caches up.
                if round > 0 {
                    if is_known {
                        &mut timings.0
                    } else {
                        &mut timings.1
                    }
                    .push(took);
                }
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (known, unknown) = (median(&mut timings.0), median(&mut timings.1));
    assert!(
        known.as_secs_f64() <= unknown.as_secs_f64() * 1.3 + 0.000_3,
        "known {known:?} vs unknown {unknown:?}"
    );
}

// Row 5: one audit row per blocked client and window; user agents bounded.
async fn rate_limit_refusals_are_audited_once_per_window(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.browser();
    let email = random_email();
    for _ in 0..5 {
        assert_eq!(
            login_status(&b, &email, "wrong password!").await,
            StatusCode::UNAUTHORIZED
        );
    }
    for _ in 0..10 {
        assert_eq!(
            login_status(&b, &email, "wrong password!").await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let rows = count(
        &app,
        "SELECT COUNT(*) FROM audit_log WHERE event = 'login_rate_limited'",
    )
    .await;
    assert_eq!(rows, 1);
}

async fn stored_user_agents_are_bounded(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let agent = "Mozilla/5.0 ".repeat(200);
    let r = reqwest::Client::new()
        .post(app.url("/api/v1/auth/login"))
        .header("User-Agent", agent.as_str())
        .json(&json!({ "email": random_email(), "password": "wrong password!" }))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::UNAUTHORIZED).await;
    let rows = app
        .storage
        .sql_rows("SELECT user_agent FROM audit_log WHERE event = 'login_failed'")
        .await;
    let stored = &rows[0][0];
    assert!(stored.chars().count() <= 256, "{}", stored.chars().count());
    assert!(agent.starts_with(stored.as_str()));
}

// Row 6: sent emails keep no usable link or code.
async fn sent_emails_keep_no_usable_secret(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let token = reset_link(&app, &user, 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app
            .storage
            .sql_rows("SELECT status, payload FROM email_outbox WHERE kind = 'password-reset'")
            .await;
        if rows[0][0] == "sent" {
            assert!(!rows[0][1].contains(&token), "{}", rows[0][1]);
            break;
        }
        assert!(Instant::now() < deadline, "never marked sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let leaked = count(
        &app,
        &format!(
            "SELECT COUNT(*) FROM email_outbox WHERE status = 'sent' AND payload LIKE '%{token}%'"
        ),
    )
    .await;
    assert_eq!(leaked, 0);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_data_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir()
        .join(crate::helpers::app::unique("mbpanel-perm-"))
        .join("data");
    let path = dir.display().to_string();
    let app = TestApp::spawn_with(Mode::Embedded, &[("DATA_DIR", path.as_str())]).await;
    app.verified_user().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for file in ["mbpanel.db", "mbpanel.db-wal"] {
        let p = dir.join(file);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{file}");
        }
    }
    assert!(dir.join("mbpanel.db").exists());
}

// Row 7: a removed inviter's pending invites stop working.
async fn a_removed_inviters_invites_stop_working(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let admin_role = role_id(&owner, team, "Admin").await;
    let (_admin, admin) = app.join_team(&owner, team, admin_role).await;
    let admin_id = expect(admin.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let puppet = TestUser::random();
    let r = admin
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": puppet.email, "role_id": admin_role })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let invite = app
        .mail
        .wait_for_containing(&puppet.email, 0, "invited to join")
        .await;
    let r = owner
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/teams/{team}/members/{admin_id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.register_and_verify(&puppet).await;
    let b = app.signed_in(&puppet).await;
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": link_token(&invite) })),
        )
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;
}

// Row 8: half-open connections neither stay open nor lock others out.
async fn slow_clients_cannot_exhaust_the_server(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("HTTP_HEADER_READ_TIMEOUT_SECONDS", "1"),
            ("HTTP_MAX_CONNECTIONS", "20"),
        ],
    )
    .await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = tokio::net::TcpStream::connect(&address).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    let started = Instant::now();
    let r = reqwest::Client::builder()
        .timeout(Duration::from_secs(8))
        .build()
        .unwrap()
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("/healthz answers while slow clients hold connections");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(6));
    let mut first = slow.swap_remove(0);
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(3), first.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "a half-open connection stays open"
    );
}

// Row 9: invites and "already registered" notices are capped; names in subjects are bounded.
async fn invites_are_capped(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("INVITE_RATE_LIMIT_PER_HOUR", "4"),
            ("INVITE_RATE_LIMIT_PER_ADDRESS", "2"),
        ],
    )
    .await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member = role_id(&owner, team, "Member").await;
    let path = format!("/api/v1/teams/{team}/invites");
    let invite = |email: String| {
        owner.send(
            reqwest::Method::POST,
            &path,
            Some(json!({ "email": email, "role_id": member })),
        )
    };
    let target = random_email();
    expect(invite(target.clone()).await, StatusCode::CREATED).await;
    expect(invite(target.clone()).await, StatusCode::CREATED).await;
    expect(invite(target.clone()).await, StatusCode::TOO_MANY_REQUESTS).await;
    expect(invite(random_email()).await, StatusCode::CREATED).await;
    let r = invite(random_email()).await;
    assert!(r.headers().contains_key("retry-after"));
    expect(r, StatusCode::TOO_MANY_REQUESTS).await;
}

async fn invite_subjects_carry_a_bounded_team_name(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let r = owner
        .send(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": "Pay\u{202E}won" })),
        )
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let name = format!("Pay now at evil.example {}", "x".repeat(70));
    let r = owner
        .send(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": name })),
        )
        .await;
    let team = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let r = owner
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/switch-team",
            Some(json!({ "team_id": team })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let member = role_id(&owner, team, "Member").await;
    let to = random_email();
    let r = owner
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": to, "role_id": member })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let mail = app
        .mail
        .wait_for_containing(&to, 0, "invited to join")
        .await;
    // The Subject header, unfolded.
    let mut subject = String::new();
    let mut lines = mail.data.lines().skip_while(|l| !l.starts_with("Subject:"));
    if let Some(first) = lines.next() {
        subject.push_str(first);
        for more in lines.take_while(|l| l.starts_with(' ') || l.starts_with('\t')) {
            subject.push_str(more.trim_start());
        }
    }
    assert!(subject.contains("Pay now at evil.example"), "{subject}");
    let xs = subject.chars().filter(|c| *c == 'x').count();
    assert!(xs < 40, "{subject}");
}

async fn already_registered_notices_are_capped(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = TestUser::random();
    for _ in 0..6 {
        register_only(&app, &user).await;
    }
    let notices = count(
        &app,
        "SELECT COUNT(*) FROM email_outbox WHERE kind = 'already-registered'",
    )
    .await;
    assert_eq!(notices, 3);
}

// Row 10: the per-account cap on wrong codes holds across parallel logins.
async fn wrong_codes_are_capped_per_account(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let mut logins = Vec::new();
    for _ in 0..3 {
        let b = app.browser();
        let login = app.login(&b, &user).await;
        logins.push((b, login["preauth_token"].as_str().unwrap().to_owned()));
    }
    let mut statuses = Vec::new();
    for (b, preauth) in &logins {
        for _ in 0..5 {
            let r = b
                .post(
                    "/api/v1/auth/otp/verify",
                    json!({ "preauth_token": preauth, "code": "000000" }),
                )
                .await;
            statuses.push(r.status());
        }
    }
    let checked = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(checked <= 10, "{checked} wrong codes checked: {statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

// Row 11: concurrent writes answer 2xx/4xx, never 500.
async fn concurrent_invite_accepts_do_not_fail(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member = role_id(&owner, team, "Member").await;
    let user = TestUser::random();
    for _ in 0..2 {
        let r = owner
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/teams/{team}/invites"),
                Some(json!({ "email": user.email, "role_id": member })),
            )
            .await;
        expect(r, StatusCode::CREATED).await;
    }
    let first = app
        .mail
        .wait_for_containing(&user.email, 0, "invited to join")
        .await;
    let second = app
        .mail
        .wait_for_containing(&user.email, 1, "invited to join")
        .await;
    app.register_and_verify(&user).await;
    let b = app.signed_in(&user).await;
    let accept = |mail: &crate::helpers::smtp::Mail| {
        b.send(
            reqwest::Method::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": link_token(mail) })),
        )
    };
    let (a, c) = tokio::join!(accept(&first), accept(&second));
    let mut statuses = [a.status(), c.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT]);
}

async fn parallel_role_edits_do_not_fail(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let r = owner
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "Deployer", "permissions": ["environments.read"] })),
        )
        .await;
    let role = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let sets = [
        vec!["environments.read", "environments.manage"],
        vec!["environments.read", "audit.read"],
        vec!["environments.manage", "audit.read", "team.members.read"],
        vec!["environments.read"],
    ];
    let path = format!("/api/v1/teams/{team}/roles/{role}/permissions");
    let edits = (0..12).map(|i| {
        owner.send(
            reqwest::Method::PUT,
            &path,
            Some(json!({ "permissions": sets[i % sets.len()] })),
        )
    });
    for r in futures::future::join_all(edits).await {
        assert_eq!(r.status(), StatusCode::OK);
    }
}

// Row 12: a password change or reset voids every other reset link.
async fn a_password_change_voids_reset_links(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let old_link = reset_link(&app, &user, 1).await;
    let b = app.signed_in(&user).await;
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/password/change",
            Some(json!({ "current_password": user.password, "new_password": "a brand new passphrase" })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": old_link, "password": "the attacker's passphrase" }),
        )
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;
}

async fn a_reset_voids_the_other_reset_links(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let first = reset_link(&app, &user, 1).await;
    let second = reset_link(&app, &user, 2).await;
    let b = app.browser();
    let confirm = |token: String, password: &'static str| {
        b.post(
            "/api/v1/auth/password-reset/confirm",
            json!({ "token": token, "password": password }),
        )
    };
    expect(
        confirm(second, "a brand new passphrase").await,
        StatusCode::OK,
    )
    .await;
    expect(
        confirm(first, "the attacker's passphrase").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

// Row 14: the member's own audit view does not show the admin's address or agent.
async fn own_audit_hides_who_acted_on_me(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member_role = role_id(&owner, team, "Member").await;
    let viewer_role = role_id(&owner, team, "Viewer").await;
    let (_member, member) = app.join_team(&owner, team, member_role).await;
    let member_id = expect(member.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let r = reqwest::Client::new()
        .patch(app.url(&format!("/api/v1/teams/{team}/members/{member_id}")))
        .bearer_auth(owner.access())
        .header("User-Agent", "admin-secret-agent/1.0")
        .json(&json!({ "role_id": viewer_role }))
        .send()
        .await
        .unwrap();
    expect(r, StatusCode::OK).await;
    let audit = expect(member.get("/api/v1/auth/audit").await, StatusCode::OK).await;
    let entries = audit["entries"].as_array().unwrap();
    let changed = entries
        .iter()
        .find(|e| e["event"] == "member_role_changed")
        .expect("the role change is in the member's audit");
    assert!(changed["user_agent"].is_null(), "{changed}");
    assert!(changed["ip_address"].is_null(), "{changed}");
    let own = entries
        .iter()
        .find(|e| e["event"] == "invite_accepted")
        .unwrap();
    assert_eq!(own["user_agent"], "mbpanel-tests/1.0");
}

// Row 15: role names that render as a built-in one are refused.
async fn role_names_cannot_pass_for_built_in_ones(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    for name in [
        "Own\u{200B}er",
        "Ｏｗｎｅｒ",
        "\u{41E}wner",
        "owner",
        "ADMIN",
    ] {
        let r = owner
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/teams/{team}/roles"),
                Some(json!({ "name": name, "permissions": [] })),
            )
            .await;
        let e = expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(e["field"], "name", "{name:?}");
    }
}

// Row 16: an IPv6 client counts by its /64; the pending-approval bound holds at every instant.
async fn ipv6_clients_count_by_their_64(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("TRUSTED_PROXIES", "127.0.0.1"),
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "3"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for i in 1..=4 {
        let r = client
            .post(app.url("/api/v1/auth/login"))
            .header("X-Forwarded-For", format!("2001:db8:1:2::{i:x}"))
            .json(&json!({ "email": random_email(), "password": "wrong password!" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
    }
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // Another /64 has its own budget.
    let r = client
        .post(app.url("/api/v1/auth/login"))
        .header("X-Forwarded-For", "2001:db8:1:3::1")
        .json(&json!({ "email": random_email(), "password": "wrong password!" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

async fn the_ip_counter_stays_whole_across_a_window_edge(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("LOGIN_RATE_LIMIT_WINDOW_SECONDS", "2"),
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "2"),
        ],
    )
    .await;
    let user = app.verified_user().await;
    let b = app.browser();
    // Real time, not `app.advance`: the race under test is argon2's run time straddling the
    // window edge, and in production mode the window is a Redis TTL (Redis's own clock).
    let opened = tokio::time::Instant::now();
    assert_eq!(
        login_status(&b, &random_email(), "wrong password!").await,
        StatusCode::UNAUTHORIZED
    );
    // A right login counted in this window and given back (after argon2) in the next one.
    tokio::time::sleep_until(opened + Duration::from_millis(1970)).await;
    assert_eq!(
        login_status(&b, &user.email, &user.password).await,
        StatusCode::OK
    );
    tokio::time::sleep_until(opened + Duration::from_millis(2100)).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(login_status(&b, &random_email(), "wrong password!").await);
    }
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

async fn pending_approvals_stay_bounded_across_a_window_edge(mode: Mode) {
    // The pending slots are store keys with the request's TTL. Embedded: the in-process store
    // runs on our clock, so a long TTL and moved time (the logins' own run time is then
    // negligible). Production: Redis's TTLs, so real waits, long enough for loaded machines.
    let unit = match mode {
        Mode::Embedded => 100,
        Mode::Production => 3,
    };
    let ttl = (3 * unit).to_string();
    let app = TestApp::spawn_with(mode, &[("CONCURRENT_LOGIN_TTL_SECONDS", &ttl)]).await;
    let user = app.verified_user().await;
    let _owner = app.signed_in(&user).await;
    let b = app.browser();
    let request = || async {
        let preauth = app.login_verified(&b, &user).await;
        b.post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await
        .status()
    };
    assert_eq!(request().await, StatusCode::LOCKED);
    app.outlive_ttl(Duration::from_millis(1800 * unit)).await;
    assert_eq!(request().await, StatusCode::LOCKED);
    assert_eq!(request().await, StatusCode::LOCKED);
    // The first request has expired; the other two are still pending.
    app.outlive_ttl(Duration::from_millis(1500 * unit)).await;
    assert_eq!(request().await, StatusCode::LOCKED);
    assert_eq!(request().await, StatusCode::TOO_MANY_REQUESTS);
}

// Row 17: a busy hasher does not burn the reset link.
async fn a_busy_hasher_does_not_burn_the_reset_link(mode: Mode) {
    let app = TestApp::spawn_with(
        mode,
        &[
            ("PASSWORD_HASH_CONCURRENCY", "1"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let user = app.verified_user().await;
    let token = reset_link(&app, &user, 1).await;
    let b = app.browser();
    // Fill the hashing queue (1 thread, 32 waiting) with logins from many clients (one
    // client only ever gets one hash at a time), then confirm meanwhile.
    let http = reqwest::Client::new();
    let flood = (0..80).map(|i| {
        let request = http
            .post(app.url("/api/v1/auth/login"))
            .header("X-Forwarded-For", format!("198.51.100.{}", i + 1))
            .json(&json!({ "email": random_email(), "password": "wrong password!" }));
        async move { request.send().await.unwrap().status() }
    });
    let confirm = b.post(
        "/api/v1/auth/password-reset/confirm",
        json!({ "token": token, "password": "a brand new passphrase" }),
    );
    let (statuses, confirmed) = tokio::join!(futures::future::join_all(flood), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        confirm.await.status()
    });
    assert!(
        statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the queue never filled"
    );
    if confirmed == StatusCode::SERVICE_UNAVAILABLE {
        let r = b
            .post(
                "/api/v1/auth/password-reset/confirm",
                json!({ "token": token, "password": "a brand new passphrase" }),
            )
            .await;
        expect(r, StatusCode::OK).await;
    } else {
        assert_eq!(confirmed, StatusCode::OK);
    }
}

both_modes!(
    email_requests_are_limited_per_client,
    password_verifications_are_budgeted_per_client,
    unverified_logins_do_not_clear_the_account_counter,
    a_denied_sign_in_keeps_no_trusted_device,
    a_code_alone_does_not_trust_the_device,
    a_password_change_distrusts_every_device,
    reset_requests_take_as_long_for_unknown_addresses,
    rate_limit_refusals_are_audited_once_per_window,
    stored_user_agents_are_bounded,
    sent_emails_keep_no_usable_secret,
    a_removed_inviters_invites_stop_working,
    slow_clients_cannot_exhaust_the_server,
    invites_are_capped,
    invite_subjects_carry_a_bounded_team_name,
    already_registered_notices_are_capped,
    wrong_codes_are_capped_per_account,
    concurrent_invite_accepts_do_not_fail,
    parallel_role_edits_do_not_fail,
    a_password_change_voids_reset_links,
    a_reset_voids_the_other_reset_links,
    own_audit_hides_who_acted_on_me,
    role_names_cannot_pass_for_built_in_ones,
    ipv6_clients_count_by_their_64,
    the_ip_counter_stays_whole_across_a_window_edge,
    pending_approvals_stay_bounded_across_a_window_edge,
    a_busy_hasher_does_not_burn_the_reset_link,
);
