//! The Postmark backend against a local fake of Postmark's HTTP API that checks each request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use reqwest::StatusCode as Status;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Storage, expect};
use crate::helpers::smtp::SmtpSink;
use crate::helpers::{Mode, TestApp, TestUser};

#[derive(Clone, Debug)]
struct Received {
    path: String,
    token: Option<String>,
    body: Value,
}

#[derive(Clone, Default)]
struct FakePostmark {
    received: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<AtomicUsize>,
}

async fn accept(
    State(fake): State<FakePostmark>,
    uri: Uri,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let token = headers
        .get("x-postmark-server-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    fake.received.lock().unwrap().push(Received {
        path: uri.path().to_owned(),
        token: token.clone(),
        body,
    });
    if fake.failures_left.load(Ordering::SeqCst) > 0 {
        fake.failures_left.fetch_sub(1, Ordering::SeqCst);
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "ErrorCode": 500, "Message": "temporarily broken" })),
        );
    }
    if token.as_deref() != Some("server-token-123") {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "ErrorCode": 10, "Message": "Bad or missing Server API token." })),
        );
    }
    (
        StatusCode::OK,
        Json(json!({ "ErrorCode": 0, "Message": "OK", "MessageID": "b7bc2f4a" })),
    )
}

impl FakePostmark {
    async fn start(failures: usize) -> (Self, String) {
        let fake = FakePostmark::default();
        fake.failures_left.store(failures, Ordering::SeqCst);
        let router = axum::Router::new()
            .route("/email", axum::routing::post(accept))
            .route("/email/withTemplate", axum::routing::post(accept))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        (fake, url)
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    async fn wait_for(&self, path: &str, to: &str, ok_only: bool) -> Received {
        for _ in 0..400 {
            let found: Vec<Received> = self
                .all()
                .into_iter()
                .filter(|r| r.path == path && r.body["To"] == to)
                .collect();
            if let Some(r) = if ok_only { found.last() } else { found.first() }
                && (!ok_only || self.failures_left.load(Ordering::SeqCst) == 0)
            {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no Postmark request {path} to {to}: {:?}", self.all());
    }
}

async fn spawn_with_postmark(mode: Mode, api_url: &str) -> TestApp {
    let storage = Arc::new(Storage::new(mode).await);
    let (sink, port) = SmtpSink::start_on(0).await;
    let settings = [
        ("EMAIL_BACKEND", "postmark"),
        ("POSTMARK_API_URL", api_url),
        ("POSTMARK_SERVER_TOKEN", "server-token-123"),
        ("POSTMARK_DEVICE_APPROVAL_TEMPLATE_ID", "4242"),
        ("EMAIL_FROM", "mbpanel <auth@example.com>"),
    ];
    TestApp::spawn_on(storage, sink, port, &settings).await
}

async fn device_approval_uses_the_template(mode: Mode) {
    let (fake, url) = FakePostmark::start(0).await;
    let app = spawn_with_postmark(mode, &url).await;
    let user = TestUser::random();
    let b = app.browser();
    let r = b
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": "Pat" }),
        )
        .await;
    expect(r, Status::ACCEPTED).await;

    // The verification email has no template configured: a plain /email with the text.
    let verification = fake.wait_for("/email", &user.email, true).await;
    assert_eq!(verification.token.as_deref(), Some("server-token-123"));
    assert_eq!(verification.body["From"], "mbpanel <auth@example.com>");
    let text = verification.body["TextBody"].as_str().unwrap();
    let start = text.find("token=").unwrap() + 6;
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    expect(
        b.post("/api/v1/auth/verify-email", json!({ "token": token }))
            .await,
        Status::OK,
    )
    .await;

    // The sign-in code goes through the device-approval template with its model.
    let login = app.login(&b, &user).await;
    let sent = fake
        .wait_for("/email/withTemplate", &user.email, true)
        .await;
    assert_eq!(sent.token.as_deref(), Some("server-token-123"));
    assert_eq!(sent.body["TemplateId"], 4242);
    assert_eq!(sent.body["From"], "mbpanel <auth@example.com>");
    let model = &sent.body["TemplateModel"];
    assert_eq!(model["name"], "Pat");
    let code = model["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    let r = b
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": login["preauth_token"], "code": code }),
        )
        .await;
    expect(r, Status::OK).await;
    let r = b
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": login["preauth_token"] }),
        )
        .await;
    expect(r, Status::OK).await;

    // A concurrent login: the same template, with approve and deny links in the model.
    let newcomer = app.browser();
    let second = app.login(&newcomer, &user).await;
    assert_eq!(second["otp_required"], true, "a new device");
    let code_mail = {
        let mut found = None;
        for _ in 0..200 {
            let templated: Vec<Received> = fake
                .all()
                .into_iter()
                .filter(|r| r.path == "/email/withTemplate")
                .collect();
            if templated.len() >= 2 {
                found = Some(templated[1].clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        found.expect("a second code email")
    };
    let code = code_mail.body["TemplateModel"]["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = newcomer
        .post(
            "/api/v1/auth/otp/verify",
            json!({ "preauth_token": second["preauth_token"], "code": code }),
        )
        .await;
    expect(r, Status::OK).await;
    let r = newcomer
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": second["preauth_token"] }),
        )
        .await;
    expect(r, Status::LOCKED).await;
    let mut approval = None;
    for _ in 0..200 {
        approval = fake
            .all()
            .into_iter()
            .find(|r| r.body["TemplateModel"]["kind"] == "concurrent_login");
        if approval.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let approval = approval.expect("an approval email");
    assert_eq!(approval.path, "/email/withTemplate");
    assert_eq!(approval.body["TemplateId"], 4242);
    let approve_url = approval.body["TemplateModel"]["approve_url"]
        .as_str()
        .unwrap();
    assert!(
        approve_url.starts_with(&format!("{}/concurrent-login?token=", app.base))
            && approve_url.ends_with("action=approve")
    );
}

async fn failed_sends_are_retried_from_the_outbox(mode: Mode) {
    let (fake, url) = FakePostmark::start(2).await;
    let app = spawn_with_postmark(mode, &url).await;
    let user = TestUser::random();
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": "R" }),
        )
        .await;
    expect(r, Status::ACCEPTED).await;
    // Two failures (2 s, then 4 s backoff), then delivery.
    let mut delivered = false;
    for _ in 0..200 {
        let rows = app
            .storage
            .sql_rows("SELECT status, attempts, last_error FROM email_outbox")
            .await;
        if rows[0][0] == "sent" {
            assert_eq!(rows[0][1], "3");
            delivered = true;
            break;
        }
        if rows[0][1] != "0" && rows[0][0] == "pending" {
            assert!(
                rows[0][2].contains("ErrorCode 500"),
                "the reason is recorded: {}",
                rows[0][2]
            );
            assert!(
                !rows[0][2].contains("token="),
                "no message body in the error"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(delivered, "delivered after retries: {:?}", fake.all().len());
    assert_eq!(fake.all().len(), 3);
}

both_modes!(
    device_approval_uses_the_template,
    failed_sends_are_retried_from_the_outbox
);
