//! The web UI, served from the binary: one page (`index.html`) for every app route — the
//! emailed links' pages included — and its script modules and style sheet. Opening a page
//! changes nothing (mail scanners follow links); the page's buttons POST to the API.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::extract::ApiPath;
use crate::service::Error;

/// External script and style only (no inline code), so the policy is strict everywhere.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The app's addressable pages (history API routes); `/teams/...` is routed as well.
pub const APP_ROUTES: [&str; 10] = [
    "/",
    "/register",
    "/forgot-password",
    "/reset-password",
    "/verify-email",
    "/concurrent-login",
    "/invite",
    "/account",
    "/security",
    "/teams",
];

const JS: &str = "text/javascript; charset=utf-8";

/// The script modules under `/ui/`, embedded at build time.
const MODULES: [(&str, &str); 7] = [
    ("api.js", include_str!("../../web/api.js")),
    ("dom.js", include_str!("../../web/dom.js")),
    ("device.js", include_str!("../../web/device.js")),
    ("getting_in.js", include_str!("../../web/getting_in.js")),
    ("account.js", include_str!("../../web/account.js")),
    ("teams.js", include_str!("../../web/teams.js")),
    ("links.js", include_str!("../../web/links.js")),
];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, UI_CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub async fn ui_index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    )
}

pub async fn ui_script() -> Response {
    asset(JS, include_str!("../../web/app.js"))
}

pub async fn ui_style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../web/app.css"))
}

pub async fn ui_module(ApiPath(file): ApiPath<String>) -> Response {
    match MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(JS, body),
        None => Error::NotFound.into_response(),
    }
}
