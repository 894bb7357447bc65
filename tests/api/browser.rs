//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver): sign in with
//! the emailed code, approve a second sign-in live, sign out.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::app::expect;
use crate::helpers::smtp;
use crate::helpers::{Mode, TestApp};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: std::path::PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

impl Driver {
    pub(crate) async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver on PATH (scripts/test.sh installs chromium-driver)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if http
                .get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(crate::helpers::app::unique("mbpanel-chromium-"));
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ];
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        } } });
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Driver {
            child,
            base,
            session,
            http,
            profile,
        }
    }

    pub(crate) async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let r: Value = self
            .http
            .request(method, url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn script(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until the script returns true.
    async fn wait_for(&self, what: &str, script: &str) {
        for _ in 0..100 {
            if self.script(script).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.script("return document.body.innerText").await;
        panic!("timed out waiting for {what}; page: {page}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = el[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {el}"))
            .to_owned();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self
            .cmd(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        let id = el[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {el}"))
            .to_owned();
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_signs_in_approves_and_signs_out() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let user = app.verified_user().await;
    let driver = Driver::start().await;
    driver.goto(&app.url("/")).await;
    driver
        .wait_for(
            "the sign-in form",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    driver
        .type_into("#signin-form input[name=email]", &user.email)
        .await;
    driver
        .type_into("#signin-form input[name=password]", &user.password)
        .await;
    driver.click("#signin-form button").await;

    driver
        .wait_for(
            "the code form",
            "return !document.getElementById('otp').hidden",
        )
        .await;
    let code = smtp::otp_code(
        &app.mail
            .wait_for_containing(&user.email, 1, "verification code")
            .await,
    );
    driver.type_into("#otp-form input[name=code]", &code).await;
    driver.click("#otp-form button").await;

    let who = format!(
        "return document.getElementById('who').textContent.includes('{}')",
        user.email
    );
    driver.wait_for("the account page", &who).await;
    driver
        .wait_for(
            "the session list",
            "return document.querySelectorAll('#sessions li.current').length === 1",
        )
        .await;

    // A second device asks to sign in; the page shows it live and approves it.
    let other = app.browser();
    let preauth = app.login_verified(&other, &user).await;
    let r = other
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::LOCKED).await;
    driver
        .wait_for(
            "the approval request",
            "return document.querySelectorAll('#approvals .approval button').length === 2",
        )
        .await;
    driver.click("#approvals .approval button").await; // Approve comes first
    driver
        .wait_for(
            "the decision",
            "return document.getElementById('approvals').textContent.includes('approved')",
        )
        .await;
    let r = other
        .post(
            "/api/v1/auth/session-exchange",
            json!({ "preauth_token": preauth }),
        )
        .await;
    expect(r, StatusCode::OK).await;
    driver
        .wait_for(
            "two sessions",
            "return document.querySelectorAll('#sessions li').length === 2",
        )
        .await;

    driver.click("#logout").await;
    driver
        .wait_for(
            "the sign-in form again",
            "return !document.getElementById('signin').hidden",
        )
        .await;
    expect(other.me().await, StatusCode::OK).await;
    let rows = app
        .storage
        .sql_rows("SELECT COUNT(*) FROM active_sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(
        rows[0][0], "1",
        "the page's sign-out ended its own session only"
    );
    driver.cmd(reqwest::Method::DELETE, "", json!({})).await;
}
