//! The web UI end to end in headless Chromium, in both modes: every control is found by its
//! accessible name (label or button text), every step is photographed (see README, "Web UI"),
//! axe-core runs on each page (no serious or critical violation) and no page scrolls sideways
//! at 390 px or 1440 px.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_modes;
use crate::browser::Driver;
use crate::helpers::app::{Browser, expect};
use crate::helpers::{Mode, TestApp, TestUser};
use crate::helpers::{smtp, totp};

fn label(mode: Mode, test: &str) -> String {
    format!("{}-{test}", format!("{mode:?}").to_lowercase())
}

/// Many sign-ins from one address within a test.
const SETTINGS: &[(&str, &str)] = &[
    ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
    ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
];

/// Email and password, then the emailed code; ends on the account page.
async fn sign_in(d: &Driver, app: &TestApp, user: &TestUser, password: &str) {
    let before = app.mail.count_to(&user.email);
    d.fill("Email", &user.email).await;
    d.fill("Password", password).await;
    d.press("Sign in").await;
    d.wait_text("We sent a 6-digit code").await;
    let code = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, before, "verification code")
            .await,
    );
    d.fill("Code", &code).await;
    d.press("Verify").await;
}

async fn on_account_page(d: &Driver, user: &TestUser) {
    d.wait_text(&format!("{} · {}", user.name, user.email))
        .await;
    d.wait_text("This device").await;
}

async fn sign_up_verify_sign_in_and_sign_out(mode: Mode) {
    let app = TestApp::spawn_with(mode, SETTINGS).await;
    let d = Driver::start_named(&label(mode, "sign-up")).await;
    let user = TestUser::random();
    d.goto(&app.url("/register")).await;
    d.wait_text("Create an account").await;
    d.check_page("register").await;
    d.shot("register").await;
    d.press("Create account").await;
    d.wait_text("Enter your name.").await; // the error beside its field
    d.shot("register-error").await;
    d.fill("Your name", &user.name).await;
    d.fill("Email", "not an email").await;
    d.fill("Password", &user.password).await;
    d.press("Create account").await;
    // In words, not the server's "email contains characters that are not allowed".
    d.wait_text("Enter a valid email address, such as name@example.com.")
        .await;
    d.fill("Email", &user.email).await;
    d.fill("Password", &user.password).await;
    d.press("Create account").await;
    d.wait_text(&format!("We have sent a link to {}", user.email))
        .await;
    d.shot("check-email").await;
    d.press("Send the link again").await;
    d.wait_text("we have sent a new link").await;

    let mail = app
        .mail
        .wait_for_containing(&user.email, 0, "Verify your email")
        .await;
    d.goto(&app.url(&format!("/verify-email?token={}", smtp::link_token(&mail))))
        .await;
    d.wait_text("Confirm the email address").await;
    d.check_page("verify-email").await;
    d.shot("verify-email").await;
    d.press("Verify my email").await;
    d.wait_text("Your email is verified").await;
    d.shot("verified").await;

    // A wrong code says how many attempts are left; a new code replaces the old one.
    let before = app.mail.count_to(&user.email);
    d.fill("Email", &user.email).await;
    d.fill("Password", &user.password).await;
    d.press("Sign in").await;
    d.wait_text("We sent a 6-digit code").await;
    let first = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, before, "verification code")
            .await,
    );
    d.check_page("code").await;
    d.shot("code").await;
    let wrong = if first == "000000" {
        "111111"
    } else {
        "000000"
    };
    d.fill("Code", wrong).await;
    d.press("Verify").await;
    d.wait_text("That code is not right. 4 attempts left.")
        .await;
    d.shot("wrong-code").await;
    let before = app.mail.count_to(&user.email);
    d.press("Send a new code").await;
    d.wait_text("We have sent a new code").await;
    let code = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, before, "verification code")
            .await,
    );
    d.fill("Code", &code).await;
    d.press("Verify").await;
    on_account_page(&d, &user).await;
    d.wait_text("Chrome on Linux").await;
    d.check_page("account").await;
    d.shot("account").await;

    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    // The person's name (in the team switcher and the team title) goes too.
    d.assert_forgotten(&[&user.password, &code, wrong, &user.name])
        .await;
    d.shot("signed-out").await;
    d.quit().await;
}

async fn forgot_password_then_a_new_one(mode: Mode) {
    let app = TestApp::spawn_with(mode, SETTINGS).await;
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "forgot-password")).await;
    d.goto(&app.url("/")).await;
    d.press("Forgot your password?").await;
    d.wait_text("we will send you a link").await;
    d.check_page("forgot-password").await;
    d.fill("Email", &user.email).await;
    d.press("Send reset link").await;
    d.wait_text("we have sent a link to choose a new password")
        .await;
    d.shot("forgot-password").await;
    let mail = app
        .mail
        .wait_for_containing(&user.email, 0, "Reset your mbpanel password")
        .await;
    d.goto(&app.url(&format!(
        "/reset-password?token={}",
        smtp::link_token(&mail)
    )))
    .await;
    d.wait_text("Choose a new password").await;
    d.check_page("reset-password").await;
    let new_password = "a fresh and long passphrase";
    d.fill("New password", new_password).await;
    d.fill("Repeat the new password", "something else entirely")
        .await;
    d.press("Set new password").await;
    d.wait_text("The two passwords are not the same.").await;
    d.shot("reset-mismatch").await;
    d.fill("Repeat the new password", new_password).await;
    d.press("Set new password").await;
    d.wait_text("Your password was changed").await;
    d.assert_forgotten(&[new_password]).await;
    d.shot("reset-done").await;
    sign_in(&d, &app, &user, new_password).await;
    on_account_page(&d, &user).await;
    d.quit().await;
}

async fn approval_listed_after_a_reload_then_revoke(mode: Mode) {
    let app = TestApp::spawn_with(mode, SETTINGS).await;
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "approval")).await;
    d.goto(&app.url("/")).await;
    sign_in(&d, &app, &user, &user.password).await;
    on_account_page(&d, &user).await;

    let other = app.browser();
    let preauth = app.login_verified(&other, &user).await;
    let exchange = json!({ "preauth_token": preauth });
    let r = other
        .post("/api/v1/auth/session-exchange", exchange.clone())
        .await;
    expect(r, StatusCode::LOCKED).await;
    d.wait_text("New sign-in from").await; // live
    d.shot("approval-live").await;
    // A reload lists it from the server.
    d.goto(&app.url("/account")).await;
    d.wait_text("New sign-in from Unknown device").await;
    d.check_page("approval").await;
    d.shot("approval").await;
    d.press("Approve").await;
    d.wait_text("Sign-in approved.").await;
    d.wait_for(
        "the decided card without buttons",
        "return document.querySelectorAll('#approvals button').length === 0",
    )
    .await;
    let r = other.post("/api/v1/auth/session-exchange", exchange).await;
    expect(r, StatusCode::OK).await;
    d.wait_for(
        "two sessions",
        "return document.querySelectorAll('#sessions li').length === 2",
    )
    .await;
    d.press("Revoke Unknown device").await;
    d.wait_text("That device will have to sign in again.").await;
    d.shot("revoke-confirmation").await;
    d.press("Revoke").await;
    d.wait_text("Unknown device was signed out.").await;
    d.wait_for(
        "one session",
        "return document.querySelectorAll('#sessions li').length === 1",
    )
    .await;
    expect(other.me().await, StatusCode::UNAUTHORIZED).await;
    d.shot("revoked").await;
    d.quit().await;
}

async fn team_role_id(b: &Browser, team: i64, name: &str) -> i64 {
    let roles = expect(
        b.get(&format!("/api/v1/teams/{team}/roles")).await,
        StatusCode::OK,
    )
    .await;
    roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["id"]
        .as_i64()
        .unwrap()
}

async fn invite_accepted_by_a_new_user(mode: Mode) {
    let app = TestApp::spawn_with(mode, SETTINGS).await;
    let owner = TestUser {
        name: "Olivia Owner".into(),
        ..TestUser::random()
    };
    app.register_and_verify(&owner).await;
    let owner_b = app.signed_in(&owner).await;
    let team = owner_b.team_id().await;
    let member_role = team_role_id(&owner_b, team, "Member").await;
    let newcomer = TestUser {
        name: "Nina Newcomer".into(),
        ..TestUser::random()
    };
    let r = owner_b
        .send(
            Method::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": newcomer.email, "role_id": member_role })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let invite = app
        .mail
        .wait_for_containing(&newcomer.email, 0, "invited to join")
        .await;
    let token = smtp::link_token(&invite);

    let d = Driver::start_named(&label(mode, "invite")).await;
    d.goto(&app.url(&format!("/invite?token={token}"))).await;
    d.wait_text("Olivia Owner invited you to join Olivia Owner's team as Member")
        .await;
    d.check_page("invite").await;
    d.shot("invite").await;
    d.press("Create an account to accept").await;
    d.fill("Your name", &newcomer.name).await;
    d.fill("Email", &newcomer.email).await;
    d.fill("Password", &newcomer.password).await;
    d.press("Create account").await;
    d.wait_text("We have sent a link to").await;
    let mail = app
        .mail
        .wait_for_containing(&newcomer.email, 0, "Verify your email")
        .await;
    d.goto(&app.url(&format!("/verify-email?token={}", smtp::link_token(&mail))))
        .await;
    d.press("Verify my email").await;
    d.wait_text("Your email is verified").await;
    sign_in(&d, &app, &newcomer, &newcomer.password).await;
    // Signed in, the invitation shows again to be accepted.
    d.wait_text("Olivia Owner invited you to join").await;
    d.press("Accept invitation").await;
    d.wait_text("You joined the team.").await;
    d.wait_text("Your role: Member").await;
    d.shot("joined").await;
    let members = expect(
        owner_b.get(&format!("/api/v1/teams/{team}/members")).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == newcomer.email.as_str() && m["role"]["name"] == "Member"),
        "{members}"
    );
    d.quit().await;
}

/// The owner signs in in the browser while signed in elsewhere: the page waits for approval,
/// given from the other session through the pending list.
async fn sign_in_with_approval(d: &Driver, app: &TestApp, user: &TestUser, existing: &Browser) {
    d.goto(&app.url("/")).await;
    sign_in(d, app, user, &user.password).await;
    d.wait_text("Waiting for approval").await;
    d.check_page("waiting").await;
    d.shot("waiting").await;
    let pending: Value = expect(
        existing.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    let token = pending["pending"][0]["token"].as_str().unwrap().to_owned();
    let r = existing
        .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
        .await;
    expect(r, StatusCode::OK).await;
    on_account_page(d, user).await;
}

async fn member_role_change_and_audit(mode: Mode) {
    let app = TestApp::spawn_with(mode, SETTINGS).await;
    let owner = app.verified_user().await;
    let owner_b = app.signed_in(&owner).await;
    let team = owner_b.team_id().await;
    let member_role = team_role_id(&owner_b, team, "Member").await;
    let (member, _member_b) = app.join_team(&owner_b, team, member_role).await;

    let d = Driver::start_named(&label(mode, "team")).await;
    sign_in_with_approval(&d, &app, &owner, &owner_b).await;
    d.wait_text("Your recent activity").await;
    d.wait_text("Password accepted at sign-in").await; // the own audit, in words
    d.press("Team").await;
    d.wait_text(&member.email).await;
    d.wait_text("Team audit log").await;
    d.check_page("team").await;
    d.shot("team").await;
    d.choose(&format!("Role for {}", member.email), "Admin")
        .await;
    // The last authentication is old: the change asks for the password first (step-up).
    app.storage
        .sql("UPDATE active_sessions SET authenticated_at = 1")
        .await;
    d.press(&format!("Change role of {}", member.email)).await;
    d.wait_text("This change needs your password again.").await;
    d.shot("step-up").await;
    d.fill("Password", "not the password").await;
    d.press("Confirm").await;
    d.wait_text("That password is not right.").await;
    d.fill("Password", &owner.password).await;
    d.press("Confirm").await;
    d.wait_text(&format!("{} is now Admin.", member.email))
        .await;
    d.wait_text("Member role changed").await; // the team audit
    d.shot("role-changed").await;
    let members = expect(
        owner_b.get(&format!("/api/v1/teams/{team}/members")).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        members["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["email"] == member.email.as_str() && m["role"]["name"] == "Admin"),
        "{members}"
    );

    // The switcher is labelled and switches only on its button, never on an arrow key; a long
    // team name does not widen the page.
    let long_name = "The Extraordinarily Long-Named Operations And Infrastructure Team Of Examples";
    let r = owner_b
        .send(
            Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": long_name })),
        )
        .await;
    let other_team = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    d.press("Account").await;
    d.wait_text("Your sessions").await;
    d.wait_for(
        "the new team in the switcher",
        "return document.getElementById('team-switcher').options.length === 2",
    )
    .await;
    d.keys("Team", "\u{E015}").await;
    d.keys("Team", "\u{E013}").await;
    d.keys("Team", "\u{E015}").await;
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    assert_eq!(
        ui_session_team(&owner_b).await,
        team,
        "an arrow key switched the team"
    );
    d.choose("Team", long_name).await;
    d.press("Switch team").await;
    d.wait_text(&format!("You are now working in {long_name}."))
        .await;
    assert_eq!(ui_session_team(&owner_b).await, other_team);
    d.check_page("long-team-name").await;
    d.shot("switched").await;
    d.quit().await;
}

/// The team of the browser's session, as the other session's list shows it.
async fn ui_session_team(existing: &Browser) -> i64 {
    let list = expect(existing.get("/api/v1/auth/sessions").await, StatusCode::OK).await;
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["team_id"]
        .as_i64()
        .unwrap()
}

/// The event stream ends when the access token expires; the page refreshes it and listens
/// again, so an approval request made after the expiry still shows live.
async fn live_approvals_outlive_the_access_token(mode: Mode) {
    let mut settings = SETTINGS.to_vec();
    settings.push(("ACCESS_TOKEN_TTL_MINUTES", "1"));
    let app = TestApp::spawn_with(mode, &settings).await;
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "expiry")).await;
    d.goto(&app.url("/")).await;
    sign_in(&d, &app, &user, &user.password).await;
    on_account_page(&d, &user).await;
    // One access-token lifetime passes on the server's clock: the stream ends at its next
    // check, and the page refreshes (a new refresh generation) and listens again.
    let generation = "SELECT max(refresh_generation) FROM active_sessions";
    let before = app.storage.sql_rows(generation).await[0][0].clone();
    app.advance(std::time::Duration::from_secs(61));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while app.storage.sql_rows(generation).await[0][0] == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not refresh after its access token expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let other = app.browser();
    let preauth = app.login_verified(&other, &user).await;
    let exchange = json!({ "preauth_token": preauth });
    let r = other
        .post("/api/v1/auth/session-exchange", exchange.clone())
        .await;
    expect(r, StatusCode::LOCKED).await;
    d.wait_text("New sign-in from Unknown device").await;
    d.press("Approve").await;
    d.wait_text("Sign-in approved.").await;
    let r = other.post("/api/v1/auth/session-exchange", exchange).await;
    expect(r, StatusCode::OK).await;
    d.shot("approved-after-expiry").await;

    // Signed out from the other device: the page says so and keeps nothing.
    let r = expect(
        other.post_csrf("/api/v1/auth/logout-all").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["sessions_ended"], 2);
    d.wait_for(
        "the sign-in form",
        "return !document.getElementById('signin').hidden && /signed out|session has ended/.test(document.getElementById('message').textContent)",
    )
    .await;
    d.assert_forgotten(&[&user.password]).await;
    d.quit().await;
}

/// A wrong password is named in plain words in the page message; past the limit
/// the page says how long to wait, and the password field is empty each time.
async fn too_many_attempts_say_how_long_to_wait(mode: Mode) {
    let mut settings = SETTINGS.to_vec();
    settings.push(("LOGIN_RATE_LIMIT_ATTEMPTS", "2"));
    let app = TestApp::spawn_with(mode, &settings).await;
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "rate-limit")).await;
    d.goto(&app.url("/")).await;
    for _ in 0..2 {
        d.fill("Email", &user.email).await;
        d.fill("Password", "a wrong password").await;
        d.press("Sign in").await;
        d.wait_text("The email or password is not right.").await;
        d.assert_forgotten(&["a wrong password"]).await;
        d.script("document.getElementById('message').textContent = ''")
            .await;
    }
    d.fill("Email", &user.email).await;
    d.fill("Password", "a wrong password").await;
    d.press("Sign in").await;
    d.wait_text("Too many attempts. Try again in 5 minutes.")
        .await;
    d.check_page("rate-limited").await;
    d.shot("rate-limited").await;
    d.quit().await;
}

/// Production mode is given its MFA sealing key; embedded mode makes its own.
const MFA_KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Enrolment shows the key and the otpauth link as text, the recovery codes once; the next
/// sign-in from a new device asks for the authenticator code instead of an emailed one.
async fn totp_enrolment_then_sign_in_with_it(mode: Mode) {
    let mut settings = SETTINGS.to_vec();
    if mode == Mode::Production {
        settings.push(("MFA_SECRET_KEY", MFA_KEY_B64));
    }
    let app = TestApp::spawn_with(mode, &settings).await;
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "totp")).await;
    d.goto(&app.url("/")).await;
    sign_in(&d, &app, &user, &user.password).await;
    on_account_page(&d, &user).await;
    d.press("Set up an authenticator app").await;
    d.wait_text("Add this account to your authenticator app")
        .await;
    // A change of mind is not a dead end: the set-up can be left, then started again.
    d.press("Cancel set-up").await;
    d.wait_text("With an authenticator app, a stolen password is not enough")
        .await;
    d.press("Set up an authenticator app").await;
    d.wait_text("Add this account to your authenticator app")
        .await;
    let secret = d
        .script("return document.getElementById('totp-secret').textContent")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let uri = d
        .script("return document.getElementById('totp-uri').textContent")
        .await;
    assert!(
        uri.as_str().unwrap().starts_with("otpauth://totp/"),
        "{uri}"
    );
    d.check_page("totp-enrolment").await;
    d.shot("totp-enrolment").await;
    let now = totp::now_seconds();
    d.fill("Code from the app", &totp::code_at(&secret, now))
        .await;
    d.press("Turn on").await;
    d.wait_text("Keep these recovery codes somewhere safe")
        .await;
    let codes = d
        .script("return [...document.querySelectorAll('#recovery-codes li')].map((li) => li.textContent)")
        .await;
    let codes: Vec<String> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.len(), 10);
    d.shot("recovery-codes").await;
    d.press("I have saved them").await;
    d.wait_text("Two-step sign-in is on (authenticator app). Recovery codes left: 10.")
        .await;
    let mut secrets: Vec<&str> = codes.iter().map(String::as_str).collect();
    secrets.push(&secret);
    d.assert_forgotten(&secrets).await;

    // A new device: the second step is the authenticator code, not an emailed one.
    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    // The device cookie lives under /api/v1/auth: forget it there.
    d.goto(&app.url("/api/v1/auth/me")).await;
    d.cmd(Method::DELETE, "/cookie", json!({})).await;
    d.goto(&app.url("/")).await;
    let mails = app.mail.count_to(&user.email);
    d.fill("Email", &user.email).await;
    d.fill("Password", &user.password).await;
    d.press("Sign in").await;
    d.wait_text("How do you want to confirm it is you?").await;
    d.check_page("second-step").await;
    d.shot("second-step").await;
    d.fill("Code", "12").await; // too short: said at once, and no attempt is spent
    d.press("Continue").await;
    d.wait_text("Enter the 6 digits from your authenticator app.")
        .await;
    let code = totp::code_at(&secret, now + 30);
    d.fill("Code", &code).await;
    d.press("Continue").await;
    on_account_page(&d, &user).await;
    d.wait_text("Two-step sign-in is on").await;
    assert_eq!(app.mail.count_to(&user.email), mails, "no emailed code");
    d.shot("signed-in-with-totp").await;
    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    d.assert_forgotten(&[&user.password, &code, &secret]).await;
    d.quit().await;
}

/// Email and password at the sign-in form, for a user whose next step is not the emailed code.
async fn password_step(d: &Driver, user: &TestUser) {
    d.fill("Email", &user.email).await;
    d.fill("Password", &user.password).await;
    d.press("Sign in").await;
    d.wait_text("How do you want to confirm it is you?").await;
}

/// A passkey added on the security screen (a WebDriver virtual authenticator), renamed; every
/// trusted device forgotten, so the next sign-in asks for the second factor: the passkey, then
/// a recovery code; the team security policy switched on; the passkey deleted after step-up.
async fn passkey_recovery_code_and_team_policy(mode: Mode) {
    let mut settings = SETTINGS.to_vec();
    settings.push(("BASE_URL", "http://localhost:{port}"));
    if mode == Mode::Production {
        settings.push(("MFA_SECRET_KEY", MFA_KEY_B64));
    }
    let app = TestApp::spawn_with(mode, &settings).await;
    let base = app.settings["BASE_URL"].clone();
    assert!(base.starts_with("http://localhost:"), "{base}");
    let user = app.verified_user().await;
    let d = Driver::start_named(&label(mode, "passkey")).await;
    d.goto(&format!("{base}/")).await;
    d.add_virtual_authenticator().await;
    sign_in(&d, &app, &user, &user.password).await;
    on_account_page(&d, &user).await;
    d.wait_text("Two-step sign-in is off.").await;
    let security = d
        .script("return document.getElementById('security').textContent")
        .await;
    assert!(
        !security.as_str().unwrap().contains("null"),
        "the security panel shows internal placeholders: {security}"
    );

    // Add and rename.
    d.press("Add a passkey").await;
    d.wait_text("Name the passkey (1 to 64 characters).").await;
    d.fill("Passkey name", "Laptop").await;
    d.press("Add a passkey").await;
    d.wait_text("The passkey Laptop was added.").await;
    d.wait_text("Two-step sign-in is on (1 passkey)").await;
    d.wait_text("not used yet").await;
    d.check_page("passkey-added").await;
    d.script("document.getElementById('security').scrollIntoView()")
        .await;
    d.shot("passkey-added").await;
    d.fill("New name for Laptop", "Work laptop").await;
    d.press("Rename Laptop").await;
    d.wait_text("The passkey is now called Work laptop.").await;

    // Recovery codes for the passkey.
    d.press("Make new recovery codes").await;
    d.press("Make new codes").await;
    d.wait_text("Keep these recovery codes somewhere safe")
        .await;
    let codes = d
        .script("return [...document.querySelectorAll('#recovery-codes li')].map((li) => li.textContent)")
        .await;
    let codes: Vec<String> = serde_json::from_value(codes).unwrap();
    assert_eq!(codes.len(), 10);
    d.press("I have saved them").await;
    d.wait_text("Recovery codes left: 10.").await;

    // The team policy: the Owner holds a second factor, so it can be switched on.
    d.press("Team").await;
    d.wait_text("Security policy").await;
    d.wait_text("Members may sign in without two-step sign-in.")
        .await;
    d.tick("Require two-step sign-in for every member").await;
    d.fill("Days members have to set it up", "400").await;
    d.press("Save security policy").await;
    d.wait_text("Enter a whole number of days from 0 to 365.")
        .await;
    d.fill("Days members have to set it up", "14").await;
    // The last authentication is old: the change asks for the password first (step-up).
    app.storage
        .sql("UPDATE active_sessions SET authenticated_at = 1")
        .await;
    d.press("Save security policy").await;
    d.wait_text("This change needs your password again.").await;
    d.fill("Password", &user.password).await;
    d.press("Confirm").await;
    d.wait_text("The team now requires two-step sign-in.").await;
    d.wait_text("Members without it are refused from").await;
    d.check_page("team-policy").await;
    d.script("document.getElementById('team-security').scrollIntoView()")
        .await;
    d.shot("team-policy").await;
    let policy = app
        .storage
        .sql_rows("SELECT grace_days FROM team_security_policies WHERE enforced_from IS NOT NULL")
        .await;
    assert_eq!(policy, [["14"]]);

    // Forget every trusted device: the next sign-in asks for the second factor.
    d.press("Account").await;
    d.wait_text("Trusted devices").await;
    d.press("Forget all devices").await;
    d.press("Forget all").await;
    d.wait_text("No device is trusted any more.").await;
    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    let mails = app.mail.count_to(&user.email);
    password_step(&d, &user).await;
    d.wait_text("Use a passkey").await;
    d.check_page("second-step-passkey").await;
    d.shot("second-step-passkey").await;
    d.press("Use a passkey").await;
    on_account_page(&d, &user).await;
    d.wait_text("last used").await;
    assert_eq!(app.mail.count_to(&user.email), mails, "no emailed code");
    d.shot("signed-in-with-passkey").await;

    // Again, with a recovery code.
    d.press("Forget all devices").await;
    d.press("Forget all").await;
    d.wait_text("No device is trusted any more.").await;
    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    password_step(&d, &user).await;
    d.tick("A recovery code").await;
    d.fill("Code", "wrong-code").await;
    d.press("Continue").await;
    d.wait_text("attempts left").await;
    d.fill("Code", &codes[0]).await;
    d.press("Continue").await;
    on_account_page(&d, &user).await;
    d.wait_text("Recovery codes left: 9.").await;
    d.shot("signed-in-with-recovery-code").await;

    // Delete the passkey (step-up again).
    app.storage
        .sql("UPDATE active_sessions SET authenticated_at = 1")
        .await;
    d.press("Delete Work laptop").await;
    d.press("Delete passkey").await;
    d.wait_text("This change needs your password again.").await;
    d.fill("Password", &user.password).await;
    d.press("Confirm").await;
    d.wait_text("The passkey Work laptop was deleted.").await;
    d.wait_text("No passkeys yet.").await;
    // Its button went with the redrawn panel: the focus is on the panel's summary.
    d.wait_for(
        "the focus on the security summary",
        "return document.activeElement && document.activeElement.id === 'mfa-summary'",
    )
    .await;
    d.press("Sign out").await;
    d.wait_text("You were signed out.").await;
    let mut secrets: Vec<&str> = codes.iter().map(String::as_str).collect();
    secrets.push(&user.password);
    d.assert_forgotten(&secrets).await;
    d.quit().await;
}

/// While another session exists: a sign-in that waits for approval is cancelled (and leaves
/// that session's pending list), the next one is approved; then the display name changes and
/// the other session's trusted device is forgotten.
async fn cancelled_wait_profile_name_and_forgotten_device(mode: Mode) {
    let mut settings = SETTINGS.to_vec();
    if mode == Mode::Production {
        settings.push(("MFA_SECRET_KEY", MFA_KEY_B64));
    }
    let app = TestApp::spawn_with(mode, &settings).await;
    let user = app.verified_user().await;
    // The user's team requires a second factor within 7 days: the account page says so.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    app.storage
        .sql(&format!(
            "INSERT INTO team_security_policies (team_id, require_mfa, grace_days, enforced_from, updated_at) \
             SELECT id, 1, 7, {now}, {now} FROM teams"
        ))
        .await;
    let existing = app.signed_in(&user).await;
    let d = Driver::start_named(&label(mode, "account-settings")).await;
    d.goto(&app.url("/")).await;
    sign_in(&d, &app, &user, &user.password).await;
    d.wait_text("Waiting for approval").await;
    let pending = expect(
        existing.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(pending["pending"].as_array().unwrap().len(), 1, "{pending}");
    d.press("Cancel").await;
    d.wait_text("The sign-in was cancelled.").await;
    let pending = expect(
        existing.get("/api/v1/auth/concurrent-login/pending").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        pending["pending"],
        json!([]),
        "the cancelled request is gone"
    );
    d.check_page("cancelled").await;
    d.shot("cancelled").await;

    // Signed in, with approval.
    sign_in_with_approval(&d, &app, &user, &existing).await;
    d.wait_text("requires two-step sign-in. Set up an authenticator app or a passkey below before")
        .await;

    // The display name. A name change leaves an authenticator set-up under way alone (its
    // key, like recovery codes, must not vanish from under the person).
    d.press("Set up an authenticator app").await;
    d.wait_text("Add this account to your authenticator app")
        .await;
    d.fill("Display name", "   ").await;
    d.press("Save name").await;
    d.wait_text("Enter your name.").await;
    d.fill("Display name", "Grace Hopper").await;
    d.press("Save name").await;
    d.wait_text("Your name was changed.").await;
    d.wait_text(&format!("Grace Hopper · {}", user.email)).await;
    let me = expect(existing.me().await, StatusCode::OK).await;
    assert_eq!(me["user"]["name"], "Grace Hopper");
    assert_eq!(
        d.script("return Boolean(document.getElementById('totp-secret'))")
            .await,
        json!(true),
        "the set-up under way is still shown"
    );
    d.check_page("profile").await;
    d.shot("profile").await;

    // `/security` opens the account page at its security panel, the focus there too.
    d.goto(&app.url("/security")).await;
    d.wait_for(
        "the focus on the security panel",
        "return document.activeElement && document.activeElement.id === 'security-h'",
    )
    .await;

    // Two trusted devices: this browser and the other session's; forget the other one.
    d.wait_for(
        "two trusted devices",
        "return document.querySelectorAll('#devices li').length === 2 \
         && document.querySelectorAll('#devices li.current').length === 1",
    )
    .await;
    let other = d
        .script("return document.querySelector('#devices li:not(.current) button').getAttribute('aria-label')")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    assert!(other.starts_with("Forget "), "{other}");
    d.press(&other).await;
    d.wait_text("Its next sign-in asks for the emailed code again.")
        .await;
    d.shot("forget-device-confirmation").await;
    d.press("Forget device").await;
    d.wait_text("is no longer trusted.").await;
    // Its button went with its row: the focus is on the panel, not lost to the page.
    d.wait_for(
        "the focus on the trusted devices",
        "return document.activeElement && document.activeElement.id === 'devices-h'",
    )
    .await;
    d.wait_for(
        "one trusted device",
        "return document.querySelectorAll('#devices li').length === 1 \
         && document.querySelectorAll('#devices li.current').length === 1",
    )
    .await;
    d.check_page("device-forgotten").await;
    d.shot("device-forgotten").await;
    assert_eq!(
        app.login(&existing, &user).await["otp_required"],
        true,
        "the forgotten device asks for the emailed code again"
    );
    let r = existing
        .send(Method::GET, "/api/v1/auth/devices", None)
        .await;
    let devices = expect(r, StatusCode::OK).await;
    assert!(
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["current"] == false),
        "{devices}"
    );
    d.quit().await;
}

both_modes!(
    cancelled_wait_profile_name_and_forgotten_device,
    passkey_recovery_code_and_team_policy,
    too_many_attempts_say_how_long_to_wait,
    totp_enrolment_then_sign_in_with_it,
    sign_up_verify_sign_in_and_sign_out,
    forgot_password_then_a_new_one,
    approval_listed_after_a_reload_then_revoke,
    invite_accepted_by_a_new_user,
    member_role_change_and_audit,
    live_approvals_outlive_the_access_token,
);
