//! The one cookie factory: every cookie the service sets is built here, with its attributes.

use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};

use crate::service::session::IssuedTokens;

pub const ACCESS_COOKIE: &str = "mbpanel_access";
pub const REFRESH_COOKIE: &str = "mbpanel_refresh";
pub const CSRF_COOKIE: &str = "mbpanel_csrf";
pub const DEVICE_COOKIE: &str = "mbpanel_device";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The refresh and device cookies are only sent to the auth endpoints.
const AUTH_PATH: &str = "/api/v1/auth";

#[derive(Clone, Debug)]
pub struct CookieFactory {
    secure: bool,
    domain: Option<String>,
}

impl CookieFactory {
    pub fn new(secure: bool, domain: Option<String>) -> Self {
        Self { secure, domain }
    }

    fn build(
        &self,
        name: &'static str,
        value: String,
        path: &'static str,
        http_only: bool,
        same_site: SameSite,
        max_age_secs: u64,
    ) -> Cookie<'static> {
        let mut cookie = Cookie::build((name, value))
            .path(path)
            .http_only(http_only)
            .same_site(same_site)
            .secure(self.secure)
            .max_age(time::Duration::seconds(
                i64::try_from(max_age_secs).unwrap_or(i64::MAX),
            ));
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        cookie.build()
    }

    /// Access (HttpOnly, Lax, /), refresh (HttpOnly, Strict, /api/v1/auth) and CSRF (readable by
    /// scripts, Strict, /) cookies for a session.
    pub fn session(&self, jar: CookieJar, tokens: &IssuedTokens) -> CookieJar {
        jar.add(self.build(
            ACCESS_COOKIE,
            tokens.access_token.clone(),
            "/",
            true,
            SameSite::Lax,
            tokens.access_expires_in,
        ))
        .add(self.build(
            REFRESH_COOKIE,
            tokens.refresh_token.clone(),
            AUTH_PATH,
            true,
            SameSite::Strict,
            tokens.refresh_expires_in,
        ))
        .add(self.build(
            CSRF_COOKIE,
            tokens.csrf_token.clone(),
            "/",
            false,
            SameSite::Strict,
            tokens.csrf_expires_in,
        ))
    }

    /// A new access cookie alone (after a team switch).
    pub fn access(&self, jar: CookieJar, token: &str, max_age_secs: u64) -> CookieJar {
        jar.add(self.build(
            ACCESS_COOKIE,
            token.to_owned(),
            "/",
            true,
            SameSite::Lax,
            max_age_secs,
        ))
    }

    /// The long-lived trusted-device cookie.
    pub fn device(&self, jar: CookieJar, device_token: &str, max_age_secs: u64) -> CookieJar {
        jar.add(self.build(
            DEVICE_COOKIE,
            device_token.to_owned(),
            AUTH_PATH,
            true,
            SameSite::Strict,
            max_age_secs,
        ))
    }

    /// Expires the session cookies (the device cookie stays: the device remains trusted).
    pub fn clear_session(&self, jar: CookieJar) -> CookieJar {
        jar.add(self.build(ACCESS_COOKIE, String::new(), "/", true, SameSite::Lax, 0))
            .add(self.build(
                REFRESH_COOKIE,
                String::new(),
                AUTH_PATH,
                true,
                SameSite::Strict,
                0,
            ))
            .add(self.build(CSRF_COOKIE, String::new(), "/", false, SameSite::Strict, 0))
    }
}
