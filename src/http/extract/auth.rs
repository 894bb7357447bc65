//! Authentication as an extractor. `AuthSession` accepts `Authorization: Bearer` (scripts; no
//! CSRF needed) or the access cookie — and for a cookie on an unsafe method it checks the
//! signed, session-bound CSRF token, so no handler can forget it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum_extra::extract::cookie::CookieJar;

use crate::domain::SessionId;
use crate::domain::claims::AccessClaims;
use crate::http::AppState;
use crate::http::cookies::{ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE};
use crate::service::ports::SessionRecord;
use crate::service::rbac::TeamAccess;
use crate::service::session::Authenticated;
use crate::service::{Auth, Error};

/// The credentials a request carries, before any verification.
pub struct Credentials {
    pub bearer: Option<String>,
    pub access_cookie: Option<String>,
    pub refresh_cookie: Option<String>,
    pub csrf_cookie: Option<String>,
    pub csrf_header: Option<String>,
    pub unsafe_method: bool,
}

impl Credentials {
    pub fn from_parts(parts: &Parts) -> Self {
        let jar = CookieJar::from_headers(&parts.headers);
        let cookie = |name: &str| {
            jar.get(name)
                .map(|c| c.value().to_owned())
                .filter(|v| !v.is_empty())
        };
        Self {
            bearer: bearer_token(&parts.headers),
            access_cookie: cookie(ACCESS_COOKIE),
            refresh_cookie: cookie(REFRESH_COOKIE),
            csrf_cookie: cookie(CSRF_COOKIE),
            csrf_header: parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            unsafe_method: !matches!(
                parts.method,
                Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
            ),
        }
    }

    /// The access token and whether it came from a cookie.
    pub fn access_token(&self) -> Option<(&str, bool)> {
        match (&self.bearer, &self.access_cookie) {
            (Some(t), _) => Some((t.as_str(), false)),
            (None, Some(t)) => Some((t.as_str(), true)),
            (None, None) => None,
        }
    }
}

fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The double-submit check: header equals cookie, and the token is ours, unexpired and bound
/// to this session.
pub fn csrf_ok(auth: &Auth, credentials: &Credentials, sid: SessionId) -> bool {
    match (&credentials.csrf_cookie, &credentials.csrf_header) {
        (Some(cookie), Some(header)) => auth.keys().verify_csrf(cookie, header, sid, auth.now_ms()),
        _ => false,
    }
}

/// An access token bound to a live session of its subject, in a team the subject still
/// belongs to (CSRF-checked when cookie-authenticated and unsafe).
pub struct AuthSession {
    pub claims: AccessClaims,
    pub session: Arc<SessionRecord>,
    /// The subject's current access in the token's team.
    pub access: Arc<TeamAccess>,
    pub credentials: Credentials,
}

impl FromRequestParts<AppState> for AuthSession {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credentials = Credentials::from_parts(parts);
        let (token, via_cookie) = credentials.access_token().ok_or(Error::NotAuthenticated)?;
        let Authenticated {
            claims,
            session,
            access,
        } = state.auth.authenticate(token).await?;
        if via_cookie
            && credentials.unsafe_method
            && !csrf_ok(&state.auth, &credentials, claims.sid)
        {
            return Err(Error::CsrfMismatch);
        }
        Ok(AuthSession {
            claims,
            session,
            access,
            credentials,
        })
    }
}
