//! Passkeys in a real browser: headless Chromium with a WebDriver virtual authenticator
//! (CTAP2, internal, resident keys, user verification), `navigator.credentials.create/get`
//! called in a page served by the server (the origin of `BASE_URL`, here `localhost`), the
//! results fed to the API: register, list, rename, sign in with the passkey as the second
//! factor (device trusted as with the code), a wrong assertion counted, delete.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_modes;
use crate::browser::Driver;
use crate::helpers::app::{Browser, expect};
use crate::helpers::{Mode, TestApp, TestUser};

/// base64url <-> ArrayBuffer, and the JSON shape of a credential the API takes.
const JS_HELPERS: &str = r#"
const b64u = buf => btoa(String.fromCharCode(...new Uint8Array(buf))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const unb64u = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0));
"#;

const CREATE: &str = r#"
const [options, done] = arguments;
const pk = options.publicKey;
pk.challenge = unb64u(pk.challenge);
pk.user.id = unb64u(pk.user.id);
(pk.excludeCredentials || []).forEach(c => c.id = unb64u(c.id));
navigator.credentials.create({publicKey: pk}).then(c => done({
  id: c.id, rawId: b64u(c.rawId), type: c.type, extensions: {},
  response: {attestationObject: b64u(c.response.attestationObject), clientDataJSON: b64u(c.response.clientDataJSON)},
}), e => done({error: String(e)}));
"#;

const GET: &str = r#"
const [options, done] = arguments;
const pk = options.publicKey;
pk.challenge = unb64u(pk.challenge);
(pk.allowCredentials || []).forEach(c => c.id = unb64u(c.id));
navigator.credentials.get({publicKey: pk}).then(c => done({
  id: c.id, rawId: b64u(c.rawId), type: c.type, extensions: {},
  response: {authenticatorData: b64u(c.response.authenticatorData), clientDataJSON: b64u(c.response.clientDataJSON),
             signature: b64u(c.response.signature), userHandle: c.response.userHandle ? b64u(c.response.userHandle) : null},
}), e => done({error: String(e)}));
"#;

impl Driver {
    async fn run_async(&self, body: &str, options: &Value) -> Value {
        let script = format!("{JS_HELPERS}{body}");
        self.cmd(
            Method::POST,
            "/execute/async",
            json!({ "script": script, "args": [options] }),
        )
        .await
    }

    pub(crate) async fn add_virtual_authenticator(&self) {
        let r = self
            .cmd(
                Method::POST,
                "/webauthn/authenticator",
                json!({
                    "protocol": "ctap2", "transport": "internal", "hasResidentKey": true,
                    "hasUserVerification": true, "isUserVerified": true,
                }),
            )
            .await;
        assert!(r.is_string(), "virtual authenticator: {r}");
    }
}

/// An app whose `BASE_URL` host is `localhost` (an IP address cannot be a WebAuthn RP id).
async fn spawn_on_localhost(mode: Mode) -> TestApp {
    TestApp::spawn_with(
        mode,
        &[
            ("BASE_URL", "http://localhost:{port}"),
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "1000"),
            ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "1000"),
        ],
    )
    .await
}

async fn register(driver: &Driver, b: &Browser, name: &str) -> Value {
    let begin = expect(
        b.send(
            Method::POST,
            "/api/v1/auth/mfa/passkeys/register/begin",
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        begin["options"]["publicKey"]["authenticatorSelection"]["userVerification"], "required",
        "{begin}"
    );
    let credential = driver.run_async(CREATE, &begin["options"]).await;
    assert!(credential.get("error").is_none(), "create: {credential}");
    let r = b
        .send(
            Method::POST,
            "/api/v1/auth/mfa/passkeys/register/finish",
            Some(json!({ "ceremony": begin["ceremony"], "name": name, "credential": credential })),
        )
        .await;
    expect(r, StatusCode::CREATED).await
}

/// Password step of a fresh login; the pre-auth token. A user with a passkey is asked for it
/// instead of an emailed code (SPEC §13); without one, the guide's emailed code.
async fn password_step(app: &TestApp, b: &Browser, user: &TestUser, passkey: bool) -> String {
    let login = app.login(b, user).await;
    let methods = login["mfa_methods"].as_array().cloned().unwrap_or_default();
    assert_eq!(login["mfa_required"], passkey, "{login}");
    assert_eq!(methods.contains(&json!("webauthn")), passkey, "{login}");
    assert_eq!(login["otp_required"], !passkey, "{login}");
    login["preauth_token"].as_str().unwrap().to_owned()
}

async fn passkey_assertion(driver: &Driver, b: &Browser, preauth: &str) -> Value {
    let begin = expect(
        b.post(
            "/api/v1/auth/mfa/webauthn/begin",
            json!({ "preauth_token": preauth }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        begin["options"]["publicKey"]["userVerification"], "required",
        "{begin}"
    );
    let assertion = driver.run_async(GET, &begin["options"]).await;
    assert!(assertion.get("error").is_none(), "get: {assertion}");
    assertion
}

async fn passkeys_register_and_sign_in_in_a_browser(mode: Mode) {
    let app = spawn_on_localhost(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let driver = Driver::start().await;
    driver
        .goto(&format!("{}/verify-email", app.settings["BASE_URL"]))
        .await;
    driver.add_virtual_authenticator().await;

    // Register, list, rename.
    let key = register(&driver, &b, "Laptop").await;
    assert_eq!(key["name"], "Laptop");
    let id = key["id"].as_i64().unwrap();
    let list = expect(b.get("/api/v1/auth/mfa/passkeys").await, StatusCode::OK).await;
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 1, "{list}");
    let r = b
        .send(
            Method::PATCH,
            &format!("/api/v1/auth/mfa/passkeys/{id}"),
            Some(json!({ "name": "Work laptop" })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let list = expect(b.get("/api/v1/auth/mfa/passkeys").await, StatusCode::OK).await;
    assert_eq!(list["passkeys"][0]["name"], "Work laptop");
    assert!(list["passkeys"][0]["last_used_at"].is_null());
    let r = b
        .send(
            Method::PATCH,
            &format!("/api/v1/auth/mfa/passkeys/{id}"),
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "name"
    );
    // Someone else's passkey is not found.
    let other = app.signed_in(&app.verified_user().await).await;
    let r = other
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/mfa/passkeys/{id}"),
            None,
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;

    // A wrong assertion (for another login's challenge) counts as a wrong code.
    let fresh = app.browser();
    let preauth = password_step(&app, &fresh, &user, true).await;
    let elsewhere = password_step(&app, &app.browser(), &user, true).await;
    let stale = passkey_assertion(&driver, &fresh, &elsewhere).await;
    let _ = passkey_assertion(&driver, &fresh, &preauth).await;
    let r = fresh
        .post(
            "/api/v1/auth/mfa/webauthn/finish",
            json!({ "preauth_token": preauth, "credential": stale }),
        )
        .await;
    let e = expect(r, StatusCode::UNAUTHORIZED).await;
    assert_eq!(e["code"], "passkey_invalid", "{e}");
    assert_eq!(e["attempts_remaining"], 4, "{e}");
    // Malformed credential: 422.
    let r = fresh
        .post(
            "/api/v1/auth/mfa/webauthn/finish",
            json!({ "preauth_token": preauth, "credential": { "id": 1 } }),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "credential"
    );

    // The passkey as the second factor: the login becomes a session, the device trusted.
    let assertion = passkey_assertion(&driver, &fresh, &preauth).await;
    let r = fresh
        .post(
            "/api/v1/auth/mfa/webauthn/finish",
            json!({ "preauth_token": preauth, "credential": assertion }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let r = fresh
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    expect(fresh.me().await, StatusCode::OK).await;
    // Replaying the assertion on the used login: refused.
    let r = fresh
        .post(
            "/api/v1/auth/mfa/webauthn/finish",
            json!({ "preauth_token": preauth, "credential": assertion }),
        )
        .await;
    assert!(r.status().is_client_error());
    let list = expect(fresh.get("/api/v1/auth/mfa/passkeys").await, StatusCode::OK).await;
    assert!(list["passkeys"][0]["last_used_at"].is_string(), "{list}");
    let audited = app
        .storage
        .sql_rows("SELECT count(*) FROM audit_log WHERE event IN ('passkey_registered', 'passkey_login_verified', 'passkey_login_failed')")
        .await;
    assert_eq!(audited[0][0], "3");

    // Delete: gone, and a login can no longer ask for it.
    let r = fresh
        .send(
            Method::DELETE,
            &format!("/api/v1/auth/mfa/passkeys/{id}"),
            None,
        )
        .await;
    expect(r, StatusCode::NO_CONTENT).await;
    expect(fresh.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let preauth = password_step(&app, &app.browser(), &user, false).await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/mfa/webauthn/begin",
            json!({ "preauth_token": preauth }),
        )
        .await;
    assert_eq!(expect(r, StatusCode::CONFLICT).await["code"], "no_passkeys");
}

async fn passkeys_need_a_domain_name(mode: Mode) {
    // The default test BASE_URL is http://127.0.0.1:<port>.
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let r = b
        .send(
            Method::POST,
            "/api/v1/auth/mfa/passkeys/register/begin",
            None,
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::CONFLICT).await["code"],
        "passkeys_unavailable"
    );
    let r = app
        .browser()
        .post(
            "/api/v1/auth/mfa/webauthn/begin",
            json!({ "preauth_token": "nope" }),
        )
        .await;
    assert!(r.status().is_client_error());
}

both_modes!(
    passkeys_register_and_sign_in_in_a_browser,
    passkeys_need_a_domain_name,
);
