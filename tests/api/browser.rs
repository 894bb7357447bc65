//! The web UI in a real headless Chromium, driven over WebDriver (chromedriver): sign in with
//! the emailed code, approve a second sign-in live, sign out. The `Driver` here also serves the
//! flow tests in `ui_flows.rs`: it finds controls by their accessible names (labels and button
//! texts), writes a screenshot of every step and runs axe-core in the page.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::app::expect;
use crate::helpers::smtp;
use crate::helpers::{Mode, TestApp};

pub(crate) const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: std::path::PathBuf,
    /// Where this test's screenshots go, and how many were taken.
    pub(crate) shots: Option<(std::path::PathBuf, std::sync::atomic::AtomicUsize)>,
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
            shots: None,
        }
    }

    pub(crate) async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if !body.is_null() {
            request = request.json(&body);
        }
        let r: Value = request.send().await.unwrap().json().await.unwrap();
        r["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub(crate) async fn script(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// Waits until the script returns true.
    pub(crate) async fn wait_for(&self, what: &str, script: &str) {
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

/// Finds a visible control by its label's text (exactly).
const BY_LABEL: &str = r#"
const want = arguments[0];
for (const l of document.querySelectorAll('label')) {
  if (l.textContent.trim() !== want) continue;
  const c = l.control;
  if (c && c.checkVisibility() && !c.disabled) return c;
}
return null;"#;

/// Finds a visible, enabled button or link by its accessible name: exactly, else by prefix.
const BY_NAME: &str = r#"
const want = arguments[0];
const all = [...document.querySelectorAll('button, a')].filter((b) => b.checkVisibility() && !b.disabled);
const name = (b) => (b.getAttribute('aria-label') || b.textContent).trim().replace(/\s+/g, ' ');
return all.find((b) => name(b) === want) || all.find((b) => name(b).startsWith(want)) || null;"#;

impl Driver {
    /// A driver whose screenshots go to `<target dir>/ui-screenshots/<label>/`.
    pub(crate) async fn start_named(label: &str) -> Driver {
        let mut driver = Driver::start().await;
        let dir = screenshot_dir().join(label);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        driver.shots = Some((dir, std::sync::atomic::AtomicUsize::new(0)));
        driver.window(1280, 900).await;
        driver
    }

    pub(crate) async fn window(&self, width: u32, height: u32) {
        self.cmd(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": width, "height": height }),
        )
        .await;
    }

    async fn script_with(&self, script: &str, args: Value) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Waits (up to 10 s) for the element the script finds; its WebDriver id.
    async fn find(&self, what: &str, script: &str, arg: &str) -> String {
        for _ in 0..100 {
            if let Some(id) = self.script_with(script, json!([arg])).await[ELEMENT].as_str() {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = self.script("return document.body.innerText").await;
        panic!("no {what} named {arg:?}; page: {page}");
    }

    /// Types into the field labelled `label` (emptied first).
    pub(crate) async fn fill(&self, label: &str, text: &str) {
        let id = self.find("field", BY_LABEL, label).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            json!({}),
        )
        .await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// Sends keys to the control labelled `label` as they are (e.g. "\u{E015}", arrow down).
    pub(crate) async fn keys(&self, label: &str, keys: &str) {
        let id = self.find("field", BY_LABEL, label).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": keys }),
        )
        .await;
    }

    /// Clicks the control labelled `label` (a checkbox or a radio button).
    pub(crate) async fn tick(&self, label: &str) {
        let id = self.find("field", BY_LABEL, label).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Picks the option whose text starts with `option` in the select labelled `label`.
    pub(crate) async fn choose(&self, label: &str, option: &str) {
        let id = self.find("select", BY_LABEL, label).await;
        let el = json!({ ELEMENT: id });
        let done = self
            .script_with(
                "const [s, want] = arguments; const o = [...s.options].find((o) => o.text.startsWith(want));\
                 if (!o) return false; s.value = o.value; s.dispatchEvent(new Event('change', {bubbles: true})); return true;",
                json!([el, option]),
            )
            .await;
        assert_eq!(done, json!(true), "no option {option:?} in {label:?}");
    }

    /// Clicks the button or link with this accessible name.
    pub(crate) async fn press(&self, name: &str) {
        let id = self.find("button", BY_NAME, name).await;
        self.cmd(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// Waits until the visible page text contains `text`.
    pub(crate) async fn wait_text(&self, text: &str) {
        let script = format!(
            "return document.body.innerText.includes({})",
            serde_json::to_string(text).unwrap()
        );
        self.wait_for(&format!("the text {text:?}"), &script).await;
    }

    /// Writes a screenshot of the step.
    pub(crate) async fn shot(&self, step: &str) {
        let Some((dir, count)) = &self.shots else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let png = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a screenshot"))
            .unwrap();
        std::fs::write(dir.join(format!("{n:02}-{step}.png")), bytes).unwrap();
    }

    /// axe-core finds no serious or critical violation, and the page does not scroll
    /// sideways at 390 px nor at 1440 px.
    pub(crate) async fn check_page(&self, step: &str) {
        let axe = std::fs::read_to_string(axe_path()).unwrap_or_else(|e| {
            panic!(
                "axe-core at {} ({e}); scripts/test.sh installs it with \
                 `npm install --prefix /var/tmp/mbpanel-npm axe-core`",
                axe_path().display()
            )
        });
        self.script(&format!("{axe}\n;return typeof window.axe;"))
            .await;
        let found = self
            .cmd(
                reqwest::Method::POST,
                "/execute/async",
                json!({ "script": AXE_RUN, "args": [] }),
            )
            .await;
        assert_eq!(found, json!([]), "{step}: axe-core violations");
        for width in [390, 1440] {
            self.window(width, 900).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let sideways = self
                .script(
                    "const d = document.documentElement; return [d.scrollWidth, d.clientWidth, \
                     [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > d.clientWidth + 1 && e.checkVisibility()).slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className)]",
                )
                .await;
            assert!(
                sideways[0].as_i64() <= sideways[1].as_i64(),
                "{step}: horizontal overflow at {width} px: {sideways}"
            );
            if width == 390 {
                self.shot(&format!("{step}-390px")).await;
            }
        }
        self.window(1280, 900).await;
    }

    /// None of these strings is anywhere in the page (markup or field values).
    pub(crate) async fn assert_forgotten(&self, secrets: &[&str]) {
        let left = self
            .script_with(
                "const html = document.documentElement.outerHTML;\
                 const values = [...document.querySelectorAll('input, textarea, select')].map((i) => i.value);\
                 return arguments[0].filter((s) => html.includes(s) || values.some((v) => v.includes(s)));",
                json!([secrets]),
            )
            .await;
        assert_eq!(left, json!([]), "secrets left in the page");
    }

    pub(crate) async fn quit(&self) {
        self.cmd(reqwest::Method::DELETE, "", json!({})).await;
    }
}

const AXE_RUN: &str = r#"
const done = arguments[arguments.length - 1];
axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } })
  .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)))
  .catch((e) => done([`axe failed: ${e}`]));"#;

/// `MBPANEL_AXE` or the copy scripts/test.sh installs (never in the repository).
fn axe_path() -> std::path::PathBuf {
    std::env::var_os("MBPANEL_AXE").map_or_else(
        || "/var/tmp/mbpanel-npm/node_modules/axe-core/axe.min.js".into(),
        Into::into,
    )
}

/// `MBPANEL_UI_SCREENSHOTS`, else `$CARGO_TARGET_DIR/ui-screenshots` (or
/// `target/ui-screenshots`). scripts/test.sh gives each Redis shape run its own, since those
/// runs go side by side with the same test names.
pub(crate) fn screenshot_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("MBPANEL_UI_SCREENSHOTS") {
        return dir.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
            Into::into,
        )
        .join("ui-screenshots")
}
