//! The page behind the emailed verification link. Opening it changes nothing (mail scanners
//! follow links); its button POSTs the token to the API.

use axum::http::header;
use axum::response::IntoResponse;

const VERIFY_EMAIL_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verify your email · mbpanel</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}</style>
</head><body>
<h1>Verify your email</h1>
<p>Confirm the email address of your mbpanel account.</p>
<button id="verify">Verify my email</button>
<p id="result" role="status"></p>
<script>
document.getElementById('verify').addEventListener('click', async () => {
  const token = new URLSearchParams(location.search).get('token') || '';
  const r = await fetch('/api/v1/auth/verify-email', {
    method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({token})
  });
  const body = await r.json().catch(() => ({}));
  document.getElementById('result').textContent = r.ok ? 'Your email is verified. You can sign in now.' : (body.detail || 'Verification failed');
});
</script>
</body></html>"#;

pub async fn verify_email() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
            ),
        ],
        VERIFY_EMAIL_PAGE,
    )
}
