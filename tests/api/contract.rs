//! The contract: every answer of the real server matches the OpenAPI document it serves.
//!
//! For every documented operation the test drives valid input (a tour that reaches each
//! operation's success answer) and input generated from the document to be wrong (no
//! credentials, bad path ids, invalid JSON, another content type, an oversize body, missing,
//! extra, mistyped and out-of-limit fields), and checks each answer: its status is documented
//! for that operation, its content type is the documented one, and its body is valid against
//! the documented schema (`#/components/schemas` references resolved). A request that reaches
//! no documented operation fails the test, as does an operation the tour never succeeds at.

use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::smtp::{link_token, otp_code};
use crate::helpers::{Mode, TestApp, TestUser};

/// A bigger body than the server accepts (16 KiB).
const OVERSIZE: usize = 17 * 1024;

/// The document and what the test saw of each operation.
struct Contract {
    doc: Value,
    /// (method, path template) → statuses answered.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
    failures: Vec<String>,
    /// Answers checked.
    checked: usize,
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    /// Cookies and `X-CSRF-Token`.
    Session(&'a Browser),
    /// A browser's cookies, without the CSRF header.
    NoCsrf(&'a Browser),
}

/// A request body.
#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

/// What came back.
struct Answer {
    status: u16,
    json: Value,
    text: String,
}

impl Contract {
    fn new(doc: Value) -> Self {
        Self {
            doc,
            seen: BTreeMap::new(),
            failures: Vec::new(),
            checked: 0,
        }
    }

    fn operations(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    out.push((method.clone(), path.clone()));
                }
            }
        }
        out
    }

    fn operation(&self, method: &str, template: &str) -> Option<&Value> {
        self.doc["paths"].get(template)?.get(method)
    }

    /// `#/components/...` → the value it names.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = self
                .doc
                .pointer(r.trim_start_matches('#'))
                .unwrap_or(&Value::Null);
        }
        v
    }

    /// Sends one request to `template` with `params` filled in, checks the answer against the
    /// document, and returns it.
    async fn send(
        &mut self,
        app: &TestApp,
        who: As<'_>,
        method: &str,
        template: &str,
        params: &[(&str, String)],
        body: Body,
    ) -> Answer {
        let mut path = template.to_owned();
        for (name, value) in params {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        let (http, csrf) = match who {
            As::Nobody => (reqwest::Client::new(), None),
            As::Session(b) => (b.http.clone(), Some(b.csrf())),
            As::NoCsrf(b) => (b.http.clone(), None),
        };
        let mut req = http.request(
            Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
            app.url(&path),
        );
        if let Some(csrf) = csrf {
            req = req.header("X-CSRF-Token", csrf);
        }
        req = match body.clone() {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::Raw(content_type, bytes) => req.header("Content-Type", content_type).body(bytes),
        };
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_owned());
        let is_stream = content_type.as_deref() == Some("text/event-stream");
        let headers = r.headers().clone();
        let text = if is_stream {
            String::new() // an endless stream: its headers are its answer
        } else {
            r.text().await.unwrap()
        };
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let what = format!("{} {path} ({template})", method.to_uppercase());
        // A query string is not part of the operation's path.
        let template = template.split('?').next().unwrap_or(template);
        self.seen
            .entry((method.to_owned(), template.to_owned()))
            .or_default()
            .insert(status);
        self.checked += 1;
        if let Err(e) = self.check(
            method,
            template,
            status,
            content_type.as_deref(),
            &headers,
            &text,
            &json,
        ) {
            self.failures
                .push(format!("{what} -> {status}: {e}; body {text}"));
        }
        Answer { status, json, text }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        method: &str,
        template: &str,
        status: u16,
        content_type: Option<&str>,
        headers: &reqwest::header::HeaderMap,
        text: &str,
        json: &Value,
    ) -> Result<(), String> {
        let op = self
            .operation(method, template)
            .ok_or("the operation is not documented")?;
        let response = op["responses"]
            .get(status.to_string())
            .map(|r| self.resolve(r))
            .ok_or("the status is not documented for this operation")?;
        for header in response
            .get("headers")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|h| h.keys())
        {
            if header.eq_ignore_ascii_case("Retry-After") && headers.get("retry-after").is_none() {
                return Err("the documented Retry-After header is missing".into());
            }
        }
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            return if text.is_empty() {
                Ok(())
            } else {
                Err("a body where the document has none".into())
            };
        };
        let content_type = content_type.ok_or("no Content-Type")?;
        let media = content
            .iter()
            .find(|(k, _)| k.split(';').next().unwrap_or("").trim() == content_type)
            .map(|(_, v)| v)
            .ok_or_else(|| format!("content type {content_type} is not documented"))?;
        if content_type != "application/json" {
            return Ok(());
        }
        if json.is_null() && text.trim() != "null" {
            return Err("not JSON".into());
        }
        let Some(schema) = media.get("schema") else {
            return Ok(());
        };
        let mut root = schema.as_object().cloned().unwrap_or_default();
        root.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        root.insert("components".into(), self.doc["components"].clone());
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map_err(|e| format!("the documented schema does not compile: {e}"))?;
        let errors: Vec<String> = validator
            .iter_errors(json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "body does not match the schema: {}",
                errors.join("; ")
            ))
        }
    }

    /// A body valid against `schema` as far as types and limits go (what the values mean —
    /// which token, which role — is up to the server).
    fn example(&self, schema: &Value, name: &str, ids: &BTreeMap<&str, i64>) -> Value {
        let schema = self.resolve(schema);
        if let Some(choices) = schema.get("oneOf").and_then(Value::as_array) {
            let first = choices
                .iter()
                .find(|c| c.get("type") != Some(&json!("null")))
                .unwrap_or(&Value::Null);
            return self.example(first, name, ids);
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values[0].clone();
        }
        let kind = match &schema["type"] {
            Value::Array(kinds) => kinds
                .iter()
                .find(|k| *k != "null")
                .cloned()
                .unwrap_or(Value::Null),
            other => other.clone(),
        };
        match kind.as_str().unwrap_or("object") {
            "object" => {
                let mut out = Map::new();
                for (field, sub) in schema["properties"].as_object().into_iter().flatten() {
                    out.insert(field.clone(), self.example(sub, field, ids));
                }
                Value::Object(out)
            }
            "array" => json!([]),
            "integer" => json!(ids.get(name).copied().unwrap_or(1)),
            "boolean" => json!(true),
            _ => match schema["format"].as_str() {
                Some("email") => json!(format!("{}@example.com", crate::helpers::app::unique("c"))),
                Some("password") => json!("generated password 1"),
                _ if schema["pattern"] == "^[0-9]{6}$" => json!("000000"),
                _ => json!("x".repeat(schema["minLength"].as_u64().unwrap_or(1) as usize)),
            },
        }
    }

    /// Bodies that break the request schema, each with what it breaks.
    fn invalid_bodies(&self, schema: &Value, valid: &Value) -> Vec<(String, Body)> {
        let schema = self.resolve(schema);
        let json_body = |v: Value| Body::Json(v);
        let mut out = vec![
            (
                "invalid JSON".to_owned(),
                Body::Raw("application/json", b"{\"a\":".to_vec()),
            ),
            (
                "wrong content type".to_owned(),
                Body::Raw("text/plain", valid.to_string().into_bytes()),
            ),
            ("no body".to_owned(), Body::None),
            (
                "oversize body".to_owned(),
                json_body(json!({ "pad": "x".repeat(OVERSIZE) })),
            ),
            ("an array".to_owned(), json_body(json!([]))),
            ("null".to_owned(), json_body(Value::Null)),
            ("a NUL character".to_owned(), {
                let mut v = valid.clone();
                if let Some((k, _)) = v
                    .as_object()
                    .and_then(|o| o.iter().find(|(_, x)| x.is_string()))
                {
                    let k = k.clone();
                    v[k] = json!("a\u{0}b");
                }
                json_body(v)
            }),
        ];
        let mut extra = valid.clone();
        extra["unexpected_field"] = json!(1);
        out.push(("an extra field".into(), json_body(extra)));
        for required in schema["required"].as_array().into_iter().flatten() {
            let mut v = valid.clone();
            v.as_object_mut()
                .unwrap()
                .remove(required.as_str().unwrap());
            out.push((format!("{required} missing"), json_body(v)));
        }
        for (field, sub) in schema["properties"].as_object().into_iter().flatten() {
            let sub = self.resolve(sub);
            let is_string = valid[field].is_string();
            let mistyped = if is_string {
                json!(12345)
            } else {
                json!("not a number")
            };
            let mut v = valid.clone();
            v[field] = mistyped;
            out.push((format!("{field} mistyped"), json_body(v)));
            let mut v = valid.clone();
            v[field] = json!({ "nested": [1, 2] });
            out.push((format!("{field} an object"), json_body(v)));
            let mut breaking = Vec::new();
            if let Some(n) = sub["minLength"].as_u64().filter(|n| *n > 0) {
                breaking.push(("too short", json!("x".repeat(n as usize - 1))));
            }
            if let Some(n) = sub["maxLength"].as_u64() {
                breaking.push(("too long", json!("x".repeat(n as usize + 1))));
            }
            if sub.get("pattern").is_some() {
                breaking.push(("not matching its pattern", json!("12a45b")));
            }
            if sub["format"] == "email" {
                breaking.push(("not an email", json!("not-an-email")));
            }
            if sub.get("minimum").is_some() {
                breaking.push(("below its minimum", json!(0)));
                breaking.push(("negative", json!(-1)));
            }
            if sub.get("enum").is_some() {
                breaking.push(("not one of its values", json!("neither")));
            }
            if sub["type"] == "array" {
                breaking.push(("with unknown items", json!(["no.such.permission"])));
                breaking.push(("with mistyped items", json!([1, true])));
            }
            for (how, value) in breaking {
                let mut v = valid.clone();
                v[field] = value;
                out.push((format!("{field} {how}"), json_body(v)));
            }
        }
        out
    }
}

/// A stand-in for Virtuozzo's sign-in endpoint that accepts every account.
async fn fake_virtuozzo() -> String {
    let router = axum::Router::new().route(
        "/signin",
        axum::routing::post(|| async { axum::Json(json!({ "result": 0, "session": "s" })) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/signin", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

/// Register, verify, log in with the emailed code, exchange — every step through the
/// contract. Returns the signed-in browser.
async fn sign_up_and_in(c: &mut Contract, app: &TestApp, user: &TestUser) -> Browser {
    let b = app.browser();
    let body = json!({ "email": user.email, "password": user.password, "name": user.name });
    let r = c
        .send(
            app,
            As::Nobody,
            "post",
            "/api/v1/auth/register",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let mail = app
        .mail
        .wait_for_containing(&user.email, 0, "Verify your email")
        .await;
    let body = json!({ "token": link_token(&mail) });
    let r = c
        .send(
            app,
            As::Nobody,
            "post",
            "/api/v1/auth/verify-email",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    sign_in(c, app, &b, user).await;
    b
}

async fn sign_in(c: &mut Contract, app: &TestApp, b: &Browser, user: &TestUser) -> Answer {
    let preauth = log_in(c, app, b, user).await;
    exchange(c, app, b, &preauth).await
}

/// Password and emailed code: the pre-auth token.
async fn log_in(c: &mut Contract, app: &TestApp, b: &Browser, user: &TestUser) -> String {
    let before = app.mail.count_to(&user.email);
    let body = json!({ "email": user.email, "password": user.password });
    let login = c
        .send(
            app,
            As::NoCsrf(b),
            "post",
            "/api/v1/auth/login",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(login.status, 200, "{}", login.text);
    let preauth = login.json["preauth_token"].as_str().unwrap().to_owned();
    if login.json["otp_required"] == json!(true) {
        let mail = app
            .mail
            .wait_for_containing(&user.email, before, "verification code")
            .await;
        let body = json!({ "preauth_token": preauth, "code": otp_code(&mail) });
        let r = c
            .send(
                app,
                As::NoCsrf(b),
                "post",
                "/api/v1/auth/otp/verify",
                &[],
                Body::Json(body),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    preauth
}

async fn exchange(c: &mut Contract, app: &TestApp, b: &Browser, preauth: &str) -> Answer {
    let body = json!({ "preauth_token": preauth });
    c.send(
        app,
        As::NoCsrf(b),
        "post",
        "/api/v1/auth/session-exchange",
        &[],
        Body::Json(body),
    )
    .await
}

/// The second factor's operations, the pending approvals, a resent code and reauth.
async fn mfa_tour(c: &mut Contract, app: &TestApp, b: &Browser, user: &TestUser) {
    for path in ["/api/v1/auth/mfa", "/api/v1/auth/concurrent-login/pending"] {
        let r = c
            .send(app, As::Session(b), "get", path, &[], Body::None)
            .await;
        assert_eq!(r.status, 200, "{path} {}", r.text);
    }
    // A login waiting for its emailed code gets a new one.
    let other = app.browser();
    let body = json!({ "email": user.email, "password": user.password });
    let login = c
        .send(
            app,
            As::NoCsrf(&other),
            "post",
            "/api/v1/auth/login",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(login.json["otp_required"], json!(true), "{}", login.text);
    let body = json!({ "preauth_token": login.json["preauth_token"] });
    let r = c
        .send(
            app,
            As::NoCsrf(&other),
            "post",
            "/api/v1/auth/otp/resend",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let send = async |c: &mut Contract, method: &str, path: &str, body: Body| {
        let r = c.send(app, As::Session(b), method, path, &[], body).await;
        assert_eq!(r.status, 200, "{method} {path} {}", r.text);
        r
    };
    let body = Body::Json(json!({ "password": user.password }));
    send(c, "post", "/api/v1/auth/reauth", body).await;
    let e = send(c, "post", "/api/v1/auth/mfa/totp/enroll", Body::None).await;
    let secret = e.json["secret"].as_str().unwrap().to_owned();
    let code = crate::helpers::totp::code_at(&secret, crate::helpers::totp::now_seconds());
    let body = Body::Json(json!({ "code": code }));
    send(c, "post", "/api/v1/auth/mfa/totp/confirm", body).await;
    let codes = send(c, "post", "/api/v1/auth/mfa/recovery-codes", Body::None).await;
    let recovery = codes.json["recovery_codes"][0].as_str().unwrap().to_owned();
    // A login from a new device passes the second factor with a recovery code.
    let third = app.browser();
    let body = json!({ "email": user.email, "password": user.password });
    let login = c
        .send(
            app,
            As::NoCsrf(&third),
            "post",
            "/api/v1/auth/login",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(login.json["mfa_required"], json!(true), "{}", login.text);
    let body = json!({
        "preauth_token": login.json["preauth_token"],
        "method": "recovery_code",
        "code": recovery,
    });
    let r = c
        .send(
            app,
            As::NoCsrf(&third),
            "post",
            "/api/v1/auth/mfa/verify",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    send(c, "delete", "/api/v1/auth/mfa/totp", Body::None).await;
    // The team's security policy: the dry run, and a change (off needs no second factor).
    let team = [("team_id", b.team_id().await.to_string())];
    let path = "/api/v1/teams/{team_id}/security";
    let r = c
        .send(app, As::Session(b), "get", path, &team, Body::None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = Body::Json(json!({ "require_mfa": false, "grace_days": 7 }));
    let r = c.send(app, As::Session(b), "put", path, &team, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn every_answer_matches_the_document(mode: Mode) {
    let vz = fake_virtuozzo().await;
    let app = TestApp::spawn_with(
        mode,
        &[
            ("LOGIN_RATE_LIMIT_IP_ATTEMPTS", "100000"),
            ("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", "100000"),
            ("LOGIN_RATE_LIMIT_ATTEMPTS", "100000"),
            ("EMAIL_REQUEST_RATE_LIMIT_IP", "100000"),
            ("INVITE_RATE_LIMIT_PER_HOUR", "100000"),
            ("VZ_VIRTUOZZO_SIGNIN_URL", &vz),
            (
                "MFA_SECRET_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
            (
                "VZ_CREDENTIALS_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            ),
        ],
    )
    .await;
    let doc = expect(
        app.browser().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut c = Contract::new(doc);
    let c = &mut c;

    // The operator's and the pages' routes.
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.json",
        "/verify-email",
        "/reset-password",
        "/concurrent-login",
        "/invite",
        "/",
        "/app.js",
        "/app.css",
        "/api/v1/permissions",
    ] {
        let r = c.send(&app, As::Nobody, "get", path, &[], Body::None).await;
        assert_eq!(r.status, 200, "{path}");
    }
    let file = [("file", "api.js".to_owned())];
    let r = c
        .send(&app, As::Nobody, "get", "/ui/{file}", &file, Body::None)
        .await;
    assert_eq!(r.status, 200, "/ui/api.js");

    // The owner: sign-up, verification, login, code, exchange.
    let owner = TestUser::random();
    let b = sign_up_and_in(c, &app, &owner).await;
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/auth/verify-email/resend",
            &[],
            Body::Json(json!({ "email": owner.email })),
        )
        .await;
    assert_eq!(r.status, 202);
    for path in [
        "/api/v1/auth/me",
        "/api/v1/auth/sessions",
        "/api/v1/teams",
        "/api/v1/auth/audit",
    ] {
        let r = c
            .send(&app, As::Session(&b), "get", path, &[], Body::None)
            .await;
        assert_eq!(r.status, 200, "{path} {}", r.text);
    }
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/refresh",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A team of the owner's, with a custom role, an invite and a member.
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/teams",
            &[],
            Body::Json(json!({ "name": "Contract team" })),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let team = r.json["id"].as_i64().unwrap();
    let t = || vec![("team_id", team.to_string())];
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/switch-team",
            &[],
            Body::Json(json!({ "team_id": team })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for template in [
        "/api/v1/teams/{team_id}/members",
        "/api/v1/teams/{team_id}/roles",
        "/api/v1/teams/{team_id}/invites",
        "/api/v1/teams/{team_id}/audit",
        "/api/v1/teams/{team_id}/virtuozzo",
    ] {
        let r = c
            .send(&app, As::Session(&b), "get", template, &t(), Body::None)
            .await;
        assert_eq!(r.status, 200, "{template} {}", r.text);
    }
    let roles = c
        .send(
            &app,
            As::Session(&b),
            "get",
            "/api/v1/teams/{team_id}/roles",
            &t(),
            Body::None,
        )
        .await
        .json;
    let member_role = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Member")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let body = json!({ "name": "Auditor", "permissions": ["team.members.read"] });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/teams/{team_id}/roles",
            &t(),
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let custom_role = r.json["id"].as_i64().unwrap();
    let mut tr = t();
    tr.push(("role_id", custom_role.to_string()));
    let body = json!({ "permissions": ["team.members.read", "audit.read"] });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "put",
            "/api/v1/teams/{team_id}/roles/{role_id}/permissions",
            &tr,
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = json!({ "email": "ops@example.com", "password": "vz-secret-pass" });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "put",
            "/api/v1/teams/{team_id}/virtuozzo",
            &t(),
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/teams/{team_id}/virtuozzo/refresh",
            &t(),
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let member = TestUser::random();
    let body = json!({ "email": member.email, "role_id": member_role });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/teams/{team_id}/invites",
            &t(),
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let invite_mail = app
        .mail
        .wait_for_containing(&member.email, 0, "invited to join")
        .await;
    let body = json!({ "token": link_token(&invite_mail) });
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/invites/preview",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = sign_up_and_in(c, &app, &member).await;
    let body = json!({ "token": link_token(&invite_mail) });
    let r = c
        .send(
            &app,
            As::Session(&m),
            "post",
            "/api/v1/invites/accept",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let member_id = expect(m.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let mut tu = t();
    tu.push(("user_id", member_id.to_string()));
    let r = c
        .send(
            &app,
            As::Session(&b),
            "patch",
            "/api/v1/teams/{team_id}/members/{user_id}",
            &tu,
            Body::Json(json!({ "role_id": custom_role })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let spare = json!({ "email": TestUser::random().email, "role_id": member_role });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/teams/{team_id}/invites",
            &t(),
            Body::Json(spare),
        )
        .await;
    let invite_id = r.json["id"].as_i64().unwrap();

    // A second login of the owner waits for approval; the first session approves.
    let b2 = app.browser();
    let preauth = log_in(c, &app, &b2, &owner).await;
    let r = exchange(c, &app, &b2, &preauth).await;
    assert_eq!(r.status, 423, "{}", r.text);
    let token = r.json["token"].as_str().unwrap().to_owned();
    let tok = vec![("token", token.clone()), ("decision", "approve".to_owned())];
    let r = c
        .send(
            &app,
            As::Nobody,
            "get",
            "/api/v1/auth/concurrent-login/{token}",
            &tok,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/concurrent-login/{token}/{decision}",
            &tok,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = exchange(c, &app, &b2, &preauth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second_session = r.json["session"]["id"].as_i64().unwrap();

    // The event stream answers with its headers.
    let r = c
        .send(
            &app,
            As::Session(&b),
            "get",
            "/api/v1/auth/events",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200);

    // Generated wrong input, for every documented operation.
    let ids: BTreeMap<&str, i64> = [
        ("team_id", team),
        ("role_id", custom_role),
        ("user_id", member_id),
        ("invite_id", invite_id),
        ("id", second_session),
    ]
    .into_iter()
    .collect();
    let operations = c.operations();
    for (method, template) in &operations {
        if template == "/api/v1/auth/events" {
            continue; // an endless stream: its refusals are covered below
        }
        let op = c.operation(method, template).unwrap().clone();
        let secured = op
            .get("security")
            .is_some_and(|s| !s.as_array().unwrap().is_empty());
        let params: Vec<Value> = op["parameters"].as_array().cloned().unwrap_or_default();
        let path_params: Vec<&Value> = params.iter().filter(|p| p["in"] == "path").collect();
        let valid_params: Vec<(&str, String)> = path_params
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap();
                let value = match name {
                    "token" => "no-such-token".to_owned(),
                    "decision" => "approve".to_owned(),
                    n => ids.get(n).copied().unwrap_or(1).to_string(),
                };
                (name, value)
            })
            .collect();
        let schema = op["requestBody"]["content"]["application/json"]["schema"].clone();
        let valid = if schema.is_null() {
            Body::None
        } else {
            Body::Json(c.example(&schema, "", &ids))
        };
        // Destructive operations get only wrong input; the tour below does them for real.
        let destructive = matches!(method.as_str(), "delete")
            || template.ends_with("/logout")
            || template.ends_with("/logout-all")
            || template.ends_with("/password/change")
            || template.ends_with("/refresh") && !template.contains("virtuozzo");
        if secured {
            c.send(
                &app,
                As::Nobody,
                method,
                template,
                &valid_params,
                valid.clone(),
            )
            .await;
            if *method != "get" {
                c.send(
                    &app,
                    As::NoCsrf(&b),
                    method,
                    template,
                    &valid_params,
                    valid.clone(),
                )
                .await;
            }
        }
        if !destructive {
            c.send(
                &app,
                As::Session(&b),
                method,
                template,
                &valid_params,
                valid.clone(),
            )
            .await;
        }
        for p in &path_params {
            let name = p["name"].as_str().unwrap();
            let bad: &[&str] = if c.resolve(&p["schema"])["type"] == "integer" {
                &["abc", "0", "-1", "1.5", "99999999999999999999"]
            } else {
                &["%00", "x"]
            };
            for value in bad {
                let mut params = valid_params.clone();
                for (n, v) in params.iter_mut() {
                    if *n == name {
                        *v = (*value).to_owned();
                    }
                }
                c.send(
                    &app,
                    As::Session(&b),
                    method,
                    template,
                    &params,
                    valid.clone(),
                )
                .await;
            }
        }
        if params.iter().any(|p| p["in"] == "query") && *method == "get" {
            for query in [
                "?limit=abc",
                "?before=x",
                "?limit=-5",
                "?limit=100000&before=1",
            ] {
                let t = format!("{template}{query}");
                c.send(&app, As::Session(&b), method, &t, &valid_params, Body::None)
                    .await;
            }
        }
        if let Body::Json(valid) = &valid {
            for (how, body) in c.invalid_bodies(&schema, valid) {
                let r = c
                    .send(&app, As::Session(&b), method, template, &valid_params, body)
                    .await;
                if how == "invalid JSON" || how == "wrong content type" || how == "oversize body" {
                    let expected = match how.as_str() {
                        "invalid JSON" => [400, 401, 403],
                        "wrong content type" => [415, 401, 403],
                        _ => [413, 401, 403],
                    };
                    assert!(
                        expected.contains(&r.status),
                        "{method} {template} with {how}: {} {}",
                        r.status,
                        r.text
                    );
                }
            }
        }
    }
    // The event stream refuses without credentials.
    let r = c
        .send(
            &app,
            As::Nobody,
            "get",
            "/api/v1/auth/events",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 401);

    // The destructive operations, for real.
    let mut tr = t();
    tr.push(("invite_id", invite_id.to_string()));
    let r = c
        .send(
            &app,
            As::Session(&b),
            "delete",
            "/api/v1/teams/{team_id}/invites/{invite_id}",
            &tr,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "delete",
            "/api/v1/teams/{team_id}/members/{user_id}",
            &tu,
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "delete",
            "/api/v1/auth/sessions/{id}",
            &[("id", second_session.to_string())],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    // A third login waits; the emailed link denies it.
    let b3 = app.browser();
    let before = app.mail.count_to(&owner.email);
    let r = sign_in(c, &app, &b3, &owner).await;
    assert_eq!(r.status, 423, "{}", r.text);
    let approval = app
        .mail
        .wait_for_containing(&owner.email, before, "Approve a new sign-in")
        .await;
    let body = json!({ "token": link_token(&approval), "action": "deny" });
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/auth/concurrent-login/email-decision",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // A fourth login waits, then withdraws its request.
    let b4 = app.browser();
    let preauth = log_in(c, &app, &b4, &owner).await;
    let r = exchange(c, &app, &b4, &preauth).await;
    assert_eq!(r.status, 423, "{}", r.text);
    let body = json!({ "token": r.json["token"], "preauth_token": preauth });
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/auth/concurrent-login/cancel",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // The display name, and the trusted devices: one forgotten, then all.
    let r = c
        .send(
            &app,
            As::Session(&b),
            "patch",
            "/api/v1/auth/me",
            &[],
            Body::Json(json!({ "name": "Contract Owner" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "get",
            "/api/v1/auth/devices",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let device = r.json["devices"][0]["id"]
        .as_i64()
        .expect("a trusted device");
    let r = c
        .send(
            &app,
            As::Session(&b),
            "delete",
            "/api/v1/auth/devices/{id}",
            &[("id", device.to_string())],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "delete",
            "/api/v1/auth/devices",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);

    let new_password = "another horse battery";
    let body = json!({ "current_password": owner.password, "new_password": new_password });
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/password/change",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.mail.count_to(&owner.email);
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/auth/password-reset/request",
            &[],
            Body::Json(json!({ "email": owner.email })),
        )
        .await;
    assert_eq!(r.status, 202);
    let reset = app
        .mail
        .wait_for_containing(&owner.email, before, "Reset your mbpanel password")
        .await;
    let reset_password = "a third horse battery";
    let body = json!({ "token": link_token(&reset), "password": reset_password });
    let r = c
        .send(
            &app,
            As::Nobody,
            "post",
            "/api/v1/auth/password-reset/confirm",
            &[],
            Body::Json(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let owner = TestUser {
        password: reset_password.to_owned(),
        ..owner
    };
    let b = app.browser();
    assert_eq!(sign_in(c, &app, &b, &owner).await.status, 200);
    mfa_tour(c, &app, &b, &owner).await;
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/logout-all",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(sign_in(c, &app, &b, &owner).await.status, 200);
    let r = c
        .send(
            &app,
            As::Session(&b),
            "post",
            "/api/v1/auth/logout",
            &[],
            Body::None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // No method is routed on a documented path without being documented: the others are 405.
    for (path, item) in c.doc["paths"].as_object().unwrap().clone() {
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = b.send(method.clone(), &concrete, None).await;
            assert_eq!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is routed but not documented"
            );
        }
    }

    // Every documented operation answered, and succeeded at least once. The passkey
    // ceremonies need a WebAuthn relying party (this run's BASE_URL is an IP address: 409
    // `passkeys_unavailable`) and an authenticator, and the "not me" link needs a sign-in from
    // another device: their successes are driven in `passkeys.rs` (Chromium's virtual
    // authenticator) and `new_device.rs`; here their refusals are checked.
    const SUCCEED_ELSEWHERE: [(&str, &str); 7] = [
        ("post", "/api/v1/auth/mfa/passkeys/register/begin"),
        ("post", "/api/v1/auth/mfa/passkeys/register/finish"),
        ("patch", "/api/v1/auth/mfa/passkeys/{id}"),
        ("delete", "/api/v1/auth/mfa/passkeys/{id}"),
        ("post", "/api/v1/auth/mfa/webauthn/begin"),
        ("post", "/api/v1/auth/mfa/webauthn/finish"),
        ("post", "/api/v1/auth/new-device/not-me"),
    ];
    let mut never_succeeded = Vec::new();
    for (method, template) in &operations {
        if SUCCEED_ELSEWHERE.contains(&(method.as_str(), template.as_str())) {
            continue;
        }
        let seen = c.seen.get(&(method.clone(), template.clone()));
        if !seen.is_some_and(|s| s.iter().any(|st| (200..300).contains(st))) {
            never_succeeded.push(format!("{method} {template}: {seen:?}"));
        }
    }
    assert!(
        never_succeeded.is_empty(),
        "never succeeded: {never_succeeded:#?}"
    );
    // Each operation saw its success and several kinds of wrong input.
    assert!(
        c.checked >= 10 * operations.len(),
        "{} answers for {} operations",
        c.checked,
        operations.len()
    );
    eprintln!(
        "contract: {} answers checked over {} operations",
        c.checked,
        operations.len()
    );
    assert!(
        c.failures.is_empty(),
        "{} answers do not match the document:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
}

both_modes!(every_answer_matches_the_document);

/// PostgreSQL cut off: every answer is still one the document names (503 with `dependency`
/// and `Retry-After` wherever a route needs the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_during_a_database_outage_match_the_document() {
    use crate::helpers::app::Storage;
    use crate::helpers::services::TcpProxy;

    let mut storage = Storage::new(Mode::Production).await;
    let proxy = TcpProxy::start(&storage.postgres_address()).await;
    storage.pg_proxy_port = Some(proxy.port);
    let storage = std::sync::Arc::new(storage);
    let app = TestApp::instance(&storage, &[("DATABASE_ACQUIRE_TIMEOUT_MS", "500")]).await;
    let doc = expect(
        app.browser().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    let mut c = Contract::new(doc);
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let team = b.team_id().await;
    let ids: BTreeMap<&str, i64> = [("team_id", team)].into_iter().collect();

    proxy.cut();
    let mut operations = c.operations();
    // What could end the session goes last.
    operations.sort_by_key(|(_, path)| path.contains("logout") || path.contains("password"));
    for (method, template) in &operations {
        if template == "/api/v1/auth/events" {
            continue;
        }
        let op = c.operation(method, template).unwrap().clone();
        let params: Vec<(&str, String)> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                let name = p["name"].as_str().unwrap();
                let value = match name {
                    "token" => "no-such-token".to_owned(),
                    "decision" => "approve".to_owned(),
                    n => ids.get(n).copied().unwrap_or(1).to_string(),
                };
                (name, value)
            })
            .collect();
        let schema = &op["requestBody"]["content"]["application/json"]["schema"];
        let body = if schema.is_null() {
            Body::None
        } else {
            Body::Json(c.example(schema, "", &ids))
        };
        c.send(&app, As::Session(&b), method, template, &params, body)
            .await;
    }
    proxy.restore();
    let unavailable = c.seen.values().filter(|s| s.contains(&503)).count();
    assert!(unavailable >= 10, "{unavailable} operations answered 503");
    assert!(
        c.failures.is_empty(),
        "{} answers do not match the document:\n{}",
        c.failures.len(),
        c.failures.join("\n")
    );
}
