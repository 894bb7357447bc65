//! The web UI, served from the binary: one page (`index.html`) for every app route — the
//! emailed links' pages included — and its script modules and style sheet. Opening a page
//! changes nothing (mail scanners follow links); the page's buttons POST to the API.

use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::http::extract::ApiPath;
use crate::http::openapi::{errors, tags};
use crate::service::Error;

/// External script and style only (no inline code), so the policy is strict everywhere.
const UI_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// The script modules under `/ui/`, embedded at build time.
const MODULES: [(&str, &str); 8] = [
    ("api.js", include_str!("../../web/api.js")),
    ("dom.js", include_str!("../../web/dom.js")),
    ("device.js", include_str!("../../web/device.js")),
    ("getting_in.js", include_str!("../../web/getting_in.js")),
    ("account.js", include_str!("../../web/account.js")),
    ("teams.js", include_str!("../../web/teams.js")),
    ("links.js", include_str!("../../web/links.js")),
    ("webauthn.js", include_str!("../../web/webauthn.js")),
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

fn app_page() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("../../web/index.html"),
    )
}

/// One documented route per addressable page of the app (history API routes); each serves
/// the same `index.html`, whose script shows the page the path names.
macro_rules! app_pages {
    ($($name:ident $path:literal $what:literal),* $(,)?) => {
        $(
            #[doc = $what]
            #[utoipa::path(
                get,
                path = $path,
                tag = tags::PAGES,
                params(("token" = Option<String>, Query,
                    description = "On the emailed links' pages: the token (read by the page's script, never by the server)")),
                responses((status = 200, description = $what, content_type = "text/html", body = String))
            )]
            pub async fn $name() -> Response {
                app_page()
            }
        )*
    };
}

app_pages!(
    page_home "/" "The web UI: sign in (or the signed-in user's home).",
    page_register "/register" "Create an account.",
    page_forgot_password "/forgot-password" "Request a password-reset link.",
    page_reset_password "/reset-password" "The emailed reset link's page: choose a new password (the form POSTs; opening it changes nothing).",
    page_verify_email "/verify-email" "The emailed verification link's page (its button POSTs; opening it changes nothing).",
    page_concurrent_login "/concurrent-login" "The emailed approve/deny link's page (`?token=…&action=approve|deny`; its buttons POST).",
    page_invite "/invite" "The emailed invitation's page: names the team, role and inviter; leads through sign-in or sign-up.",
    page_new_device "/new-device" "The new-device alert's page: \"This wasn't me\" (its button POSTs; opening it changes nothing).",
    page_account "/account" "Account: profile, password, sessions, pending approvals, audit.",
    page_security "/security" "Security: authenticator app, passkeys, recovery codes.",
    page_teams "/teams" "Teams: switch, create.",
);

/// A team's page: members, roles, invites, audit, Virtuozzo.
#[utoipa::path(
    get,
    path = "/teams/{team_id}",
    tag = tags::PAGES,
    params(("team_id" = String, Path, description = "The team's id (read by the page's script)")),
    responses((status = 200, description = "A team's page", content_type = "text/html", body = String))
)]
pub async fn page_team(ApiPath(_team): ApiPath<String>) -> Response {
    app_page()
}

/// The web UI's entry script.
#[utoipa::path(
    get,
    path = "/app.js",
    tag = tags::PAGES,
    responses((status = 200, description = "The web UI's script", content_type = "text/javascript", body = String))
)]
pub async fn ui_script() -> Response {
    asset(JS, include_str!("../../web/app.js"))
}

/// The web UI's style sheet.
#[utoipa::path(
    get,
    path = "/app.css",
    tag = tags::PAGES,
    responses((status = 200, description = "The web UI's style sheet", content_type = "text/css", body = String))
)]
pub async fn ui_style() -> Response {
    asset("text/css; charset=utf-8", include_str!("../../web/app.css"))
}

/// One of the web UI's script modules (`api.js`, `dom.js`, `device.js`, `getting_in.js`,
/// `account.js`, `teams.js`, `links.js`, `webauthn.js`).
#[utoipa::path(
    get,
    path = "/ui/{file}",
    tag = tags::PAGES,
    params(("file" = String, Path, description = "The module's file name")),
    responses(
        (status = 200, description = "The module", content_type = "text/javascript", body = String),
        errors::NotFound,
    )
)]
pub async fn ui_module(ApiPath(file): ApiPath<String>) -> Response {
    match MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset(JS, body),
        None => Error::NotFound.into_response(),
    }
}
