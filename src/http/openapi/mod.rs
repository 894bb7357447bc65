//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` declarations and
//! the very router that serves them (`routes::all`), so a route cannot exist undocumented and
//! the document cannot describe a route that does not exist. Served at
//! `GET /api/v1/openapi.json`; `docs/openapi.json` is its committed snapshot.

pub mod errors;

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::cookies::{ACCESS_COOKIE, REFRESH_COOKIE};

/// Tag names, one per area of the API.
pub mod tags {
    pub const AUTH: &str = "auth";
    pub const SESSIONS: &str = "sessions";
    pub const PASSWORDS: &str = "passwords";
    pub const MFA: &str = "mfa";
    pub const CONCURRENT: &str = "concurrent-login";
    pub const TEAMS: &str = "teams";
    pub const ROLES: &str = "roles";
    pub const INVITES: &str = "invites";
    pub const AUDIT: &str = "audit";
    pub const VIRTUOZZO: &str = "virtuozzo";
    pub const OPS: &str = "ops";
    pub const PAGES: &str = "pages";
}

/// Security scheme names used by the operations' `security(...)`.
pub mod schemes {
    /// The `mbpanel_access` cookie.
    pub const ACCESS_COOKIE: &str = "accessCookie";
    /// The `mbpanel_refresh` cookie (sent only to `/api/v1/auth`).
    pub const REFRESH_COOKIE: &str = "refreshCookie";
    /// `X-CSRF-Token`, equal to the `mbpanel_csrf` cookie: on every cookie-authenticated
    /// unsafe request.
    pub const CSRF: &str = "csrf";
    /// `Authorization: Bearer <access token>` (scripts; no CSRF needed).
    pub const BEARER: &str = "bearer";
}

/// What the handlers cannot say about themselves: title, description, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "mbpanel-auth",
        description = "Authentication and session service of mbpanel. Every error is \
            `{\"detail\", \"code\"}` plus the fields the case needs (`field`, \
            `attempts_remaining`, `dependency`, `permission`, `status` and `token`). \
            Request bodies are JSON of at most 16 KiB; unknown fields are ignored."
    ),
    components(schemas(crate::http::error::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let api_key = |key: ApiKey| SecurityScheme::ApiKey(key);
        components.add_security_scheme(
            schemes::ACCESS_COOKIE,
            api_key(ApiKey::Cookie(ApiKeyValue::with_description(
                ACCESS_COOKIE,
                "The access token cookie (HttpOnly, SameSite=Lax)",
            ))),
        );
        components.add_security_scheme(
            schemes::REFRESH_COOKIE,
            api_key(ApiKey::Cookie(ApiKeyValue::with_description(
                REFRESH_COOKIE,
                "The refresh token cookie (HttpOnly, SameSite=Strict, Path=/api/v1/auth)",
            ))),
        );
        components.add_security_scheme(
            schemes::CSRF,
            api_key(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "The value of the mbpanel_csrf cookie; required on cookie-authenticated \
                 POST, PUT, PATCH and DELETE",
            ))),
        );
        components.add_security_scheme(
            schemes::BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("The access token, for scripts (no CSRF needed)"))
                    .build(),
            ),
        );
    }
}

/// The document, built once from the route declarations.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> =
        LazyLock::new(|| crate::http::routes::all().split_for_parts().1);
    &DOCUMENT
}

/// The document as served: pretty JSON, the same bytes as `docs/openapi.json`.
pub fn document_json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = document()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    });
    &JSON
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tags::OPS,
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object))
)]
pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
}
