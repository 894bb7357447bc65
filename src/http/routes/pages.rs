//! The small pages that emailed links open. Opening one changes nothing (mail scanners follow
//! links); each page's button POSTs to the API.

use axum::http::header;
use axum::response::IntoResponse;

const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'";

fn page(title: &str, body: &str, script: &str) -> impl IntoResponse + use<> {
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · mbpanel</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}}button,input{{font-size:1rem;padding:.5rem 1rem;margin:.25rem 0}}</style>
</head><body>
<h1>{title}</h1>
{body}
<p id="result" role="status"></p>
<script>
const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
async function post(path, payload) {{
  const r = await fetch(path, {{method: 'POST', headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify(payload)}});
  const body = await r.json().catch(() => ({{}}));
  return [r.ok, body];
}}
function show(text) {{ document.getElementById('result').textContent = text; }}
{script}
</script>
</body></html>"#
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        html,
    )
}

pub async fn verify_email() -> impl IntoResponse {
    page(
        "Verify your email",
        r#"<p>Confirm the email address of your mbpanel account.</p><button id="go">Verify my email</button>"#,
        r#"document.getElementById('go').onclick = async () => {
  const [ok, body] = await post('/api/v1/auth/verify-email', {token});
  show(ok ? 'Your email is verified. You can sign in now.' : (body.detail || 'Verification failed'));
};"#,
    )
}

pub async fn reset_password() -> impl IntoResponse {
    page(
        "Choose a new password",
        r#"<label>New password <input id="pw" type="password" autocomplete="new-password" minlength="8"></label><br><button id="go">Set password</button>"#,
        r#"document.getElementById('go').onclick = async () => {
  const password = document.getElementById('pw').value;
  const [ok, body] = await post('/api/v1/auth/password-reset/confirm', {token, password});
  show(ok ? 'Your password was changed and every session signed out. Sign in again.' : (body.detail || 'Reset failed'));
};"#,
    )
}

pub async fn concurrent_login() -> impl IntoResponse {
    page(
        "New sign-in to your account",
        r#"<p>Someone is signing in to your mbpanel account while you are signed in elsewhere. Was it you?</p>
<button id="approve">Approve</button> <button id="deny">Deny</button>"#,
        r#"const suggested = params.get('action');
if (suggested === 'approve' || suggested === 'deny') document.getElementById(suggested).autofocus = true;
for (const action of ['approve', 'deny']) {
  document.getElementById(action).onclick = async () => {
    const [ok, body] = await post('/api/v1/auth/concurrent-login/email-decision', {token, action});
    show(ok ? (action === 'approve' ? 'The sign-in was approved.' : 'The sign-in was denied.') : (body.detail || 'Failed'));
  };
}"#,
    )
}

pub async fn invite() -> impl IntoResponse {
    page(
        "Join a team",
        r#"<p>Sign in with the invited email address first, then accept the invitation.</p><button id="go">Accept invitation</button>"#,
        r#"document.getElementById('go').onclick = async () => {
  const csrf = (document.cookie.split('; ').find(c => c.startsWith('mbpanel_csrf=')) || '').split('=')[1] || '';
  const r = await fetch('/api/v1/invites/accept', {method: 'POST', credentials: 'include',
    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}, body: JSON.stringify({token})});
  const body = await r.json().catch(() => ({}));
  show(r.ok ? 'You joined the team.' : (body.detail || 'Failed'));
};"#,
    )
}

pub async fn new_device() -> impl IntoResponse {
    page(
        "New sign-in to your account",
        r#"<p>Your account was signed in to from a new device. If this wasn't you, secure your account: every session is signed out, every trusted device forgotten, and a password reset link is emailed to you.</p>
<button id="go">This wasn't me</button>"#,
        r#"document.getElementById('go').onclick = async () => {
  const [ok, body] = await post('/api/v1/auth/new-device/not-me', {token});
  show(ok ? 'Done: you are signed out everywhere. Check your email to choose a new password.' : (body.detail || 'Failed'));
};"#,
    )
}

/// The web UI: external script and style only (no inline code), so its CSP is strict.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse + use<> {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, UI_CSP),
        ],
        body,
    )
}

pub async fn ui_index() -> impl IntoResponse {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    )
}

pub async fn ui_script() -> impl IntoResponse {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    )
}

pub async fn ui_style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", include_str!("../../web/app.css"))
}
