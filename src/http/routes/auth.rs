//! The login lifecycle endpoints (`/api/v1/auth/...`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bodies::{Detail, IdName, TeamSummary};
use crate::domain::time::rfc3339;
use crate::domain::{SessionId, TeamId, UserId};
use crate::http::AppState;
use crate::http::cookies::DEVICE_COOKIE;
use crate::http::extract::{ApiJson, AuthSession, Client, Credentials, csrf_ok};
use crate::http::openapi::{errors, tags};
use crate::service::registration::Registration;
use crate::service::session::IssuedTokens;
use crate::service::{Error, Result};

#[derive(Deserialize, ToSchema)]
pub struct RegisterBody {
    /// Trimmed and lower-cased before use.
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    password: String,
    /// Trimmed; no control characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// Create an account and its personal team.
///
/// The same answer for a taken address (whose owner gets a notice), so sign-up does not
/// reveal accounts.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = tags::AUTH,
    request_body = RegisterBody,
    responses(
        (status = 202, description = "Accepted; a verification link is emailed", body = Detail),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn register(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<RegisterBody>,
) -> Result<impl IntoResponse> {
    s.auth
        .register(
            Registration {
                email: b.email,
                password: b.password,
                name: b.name,
            },
            &client,
        )
        .await?;
    let body =
        Detail::new("If this address can be registered, we have sent a verification link to it.");
    Ok((StatusCode::ACCEPTED, body))
}

/// An emailed token (the `token=` of the link).
#[derive(Deserialize, ToSchema)]
pub struct TokenBody {
    token: String,
}

/// Verify an email address with the emailed token (single use).
#[utoipa::path(
    post,
    path = "/auth/verify-email",
    tag = tags::AUTH,
    request_body = TokenBody,
    responses(
        (status = 200, description = "Verified", body = Detail),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn verify_email(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<TokenBody>,
) -> Result<Json<Detail>> {
    s.auth.verify_email(&b.token, &client).await?;
    Ok(Detail::new("Email verified"))
}

#[derive(Deserialize, ToSchema)]
pub struct EmailBody {
    /// Trimmed and lower-cased before use.
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// Send a new verification link (the same answer for every address).
#[utoipa::path(
    post,
    path = "/auth/verify-email/resend",
    tag = tags::AUTH,
    request_body = EmailBody,
    responses(
        (status = 202, description = "Accepted", body = Detail),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn resend_verification(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<EmailBody>,
) -> Result<impl IntoResponse> {
    s.auth.resend_verification(&b.email, &client).await?;
    let body =
        Detail::new("If this address has an unverified account, we have sent a new link to it.");
    Ok((StatusCode::ACCEPTED, body))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    password: String,
}

/// A checked password: the pre-auth token for the next step.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginResponse<'a> {
    /// For `/auth/otp/verify` and `/auth/session-exchange` (single use).
    preauth_token: &'a str,
    /// An unknown device: a 6-digit code was emailed.
    otp_required: bool,
    /// An unknown device of a user with a second factor: pass it at `/auth/mfa/verify`
    /// (no code is emailed).
    mfa_required: bool,
    /// The second factors the user can pass: `totp`, `webauthn`, `recovery_code`.
    #[schema(value_type = Vec<String>)]
    mfa_methods: Vec<&'static str>,
    /// Seconds the pre-auth token lives.
    expires_in: u64,
    teams: Vec<TeamSummary<'a>>,
}

/// Check the password; get a pre-auth token.
///
/// 401 "Invalid email or password" for an unknown email and a wrong password alike.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = tags::AUTH,
    request_body = LoginBody,
    responses(
        (status = 200, description = "Password accepted", body = LoginResponse),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn login(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<Response> {
    let device = jar.get(DEVICE_COOKIE).map(|c| c.value().to_owned());
    let outcome = s
        .auth
        .login(&b.email, &b.password, device.as_deref(), &client)
        .await?;
    let body = LoginResponse {
        preauth_token: &outcome.preauth_token,
        otp_required: outcome.otp_required,
        mfa_required: !outcome.mfa_methods.is_empty(),
        mfa_methods: outcome.mfa_methods.clone(),
        expires_in: outcome.expires_in,
        teams: outcome.teams.iter().map(TeamSummary::from).collect(),
    };
    Ok(Json(body).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct OtpBody {
    preauth_token: String,
    /// The emailed code.
    #[schema(pattern = "^[0-9]{6}$", min_length = 6, max_length = 6)]
    code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerified {
    detail: &'static str,
    otp_verified: bool,
}

/// Verify the emailed 6-digit code; the device becomes trusted.
#[utoipa::path(
    post,
    path = "/auth/otp/verify",
    tag = tags::AUTH,
    request_body = OtpBody,
    responses(
        (status = 200, description = "Code verified; the `mbpanel_device` cookie is set", body = OtpVerified,
            headers(("Set-Cookie" = String, description = "`mbpanel_device` (HttpOnly, SameSite=Strict, Path=/api/v1/auth)"))),
        errors::JsonBody,
        errors::Unauthorized,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn verify_otp(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<OtpBody>,
) -> Result<impl IntoResponse> {
    let outcome = s
        .auth
        .verify_otp(&b.preauth_token, &b.code, &client)
        .await?;
    let jar = s.trust_device(jar, &outcome);
    Ok((
        jar,
        Json(OtpVerified {
            detail: "Code verified",
            otp_verified: true,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct ExchangeBody {
    preauth_token: String,
    /// The team to sign in to (default: the first of `/auth/login`'s `teams`).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1)]
    team_id: Option<TeamId>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRef {
    #[schema(value_type = i64)]
    id: SessionId,
}

/// New session tokens (the tokens themselves are in the cookies).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tokens<'a> {
    session: SessionRef,
    /// Also the `mbpanel_csrf` cookie: send it back as `X-CSRF-Token`.
    csrf_token: &'a str,
    /// Seconds.
    access_expires_in: u64,
    /// Seconds.
    refresh_expires_in: u64,
}

impl<'a> From<&'a IssuedTokens> for Tokens<'a> {
    fn from(t: &'a IssuedTokens) -> Self {
        Self {
            session: SessionRef { id: t.session_id },
            csrf_token: &t.csrf_token,
            access_expires_in: t.access_expires_in,
            refresh_expires_in: t.refresh_expires_in,
        }
    }
}

/// A new session, in a team, with a role.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Exchanged<'a> {
    session: SessionRef,
    csrf_token: &'a str,
    access_expires_in: u64,
    refresh_expires_in: u64,
    team: IdName<'a>,
    role: IdName<'a>,
}

/// Trade a pre-auth token for the session cookies.
///
/// 423 while another active session of the user must approve (`status: pending`, `token`);
/// repeat the exchange, or watch `GET /auth/concurrent-login/{token}`.
#[utoipa::path(
    post,
    path = "/auth/session-exchange",
    tag = tags::AUTH,
    request_body = ExchangeBody,
    responses(
        (status = 200, description = "Signed in", body = Exchanged,
            headers(("Set-Cookie" = String, description = "`mbpanel_access`, `mbpanel_refresh` and `mbpanel_csrf`"))),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Locked,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn session_exchange(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<ExchangeBody>,
) -> Result<impl IntoResponse> {
    let outcome = s
        .auth
        .exchange(&b.preauth_token, b.team_id, &client)
        .await?;
    let t = &outcome.tokens;
    let m = &outcome.membership;
    let body = Exchanged {
        session: SessionRef { id: t.session_id },
        csrf_token: &t.csrf_token,
        access_expires_in: t.access_expires_in,
        refresh_expires_in: t.refresh_expires_in,
        team: IdName {
            id: m.team_id.get(),
            name: &m.team_name,
        },
        role: IdName {
            id: m.role_id.get(),
            name: &m.role_name,
        },
    };
    let body = Json(body).into_response();
    Ok((s.cookies.session(jar, &outcome.tokens), body))
}

/// `GET /auth/me`, serialised straight from the cached facts (the hot path).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MeResponse<'a> {
    user: MeUser<'a>,
    team: IdName<'a>,
    role: IdName<'a>,
    /// Permission slugs of the role.
    #[schema(value_type = Vec<String>)]
    permissions: &'a [String],
    session: MeSession<'a>,
    /// When the team starts refusing this user without a second factor (team policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_setup_required_by: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MeUser<'a> {
    #[schema(value_type = i64)]
    id: UserId,
    #[schema(format = Email)]
    email: &'a str,
    name: &'a str,
    #[schema(format = DateTime, required = true)]
    email_verified_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MeSession<'a> {
    #[schema(value_type = i64)]
    id: SessionId,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_seen_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(required = true)]
    ip_address: Option<&'a str>,
    #[schema(required = true)]
    user_agent: Option<&'a str>,
}

/// The caller: user, current team, role, permission slugs, session.
#[utoipa::path(
    get,
    path = "/auth/me",
    tag = tags::AUTH,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn me(State(s): State<AppState>, session: AuthSession) -> Result<Response> {
    let p = s
        .auth
        .profile(&session.claims, &session.session, &session.access)
        .await?;
    let body = MeResponse {
        user: MeUser {
            id: p.user.id,
            email: &p.user.email,
            name: &p.user.name,
            email_verified_at: p.user.email_verified_at.map(rfc3339),
        },
        team: IdName {
            id: p.access.team_id.get(),
            name: &p.access.team_name,
        },
        role: IdName {
            id: p.access.role_id.get(),
            name: &p.access.role_name,
        },
        permissions: &p.access.permissions,
        session: MeSession {
            id: p.session.id,
            created_at: rfc3339(p.session.created_at),
            last_seen_at: rfc3339(p.last_seen_at),
            expires_at: rfc3339(p.session.expires_at),
            ip_address: p.session.ip_address.as_deref(),
            user_agent: p.session.user_agent.as_deref(),
        },
        mfa_setup_required_by: s
            .auth
            .mfa_setup_required_by(p.user.id, p.access.team_id)
            .await?
            .map(rfc3339),
    };
    Ok(Json(body).into_response())
}

/// Rotate the refresh token: new cookies. Always cookie-authenticated, so always CSRF-checked.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = tags::AUTH,
    security(("refreshCookie" = [], "csrf" = [])),
    responses(
        (status = 200, description = "Rotated", body = Tokens,
            headers(("Set-Cookie" = String, description = "`mbpanel_access`, `mbpanel_refresh` and `mbpanel_csrf`"))),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn refresh(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    parts: axum::http::request::Parts,
) -> Result<impl IntoResponse> {
    let credentials = Credentials::from_parts(&parts);
    let token = credentials
        .refresh_cookie
        .as_deref()
        .ok_or(Error::NotAuthenticated)?;
    let claims = s.auth.decode_refresh(token)?;
    if !csrf_ok(&s.auth, &credentials, claims.sid) {
        return Err(Error::CsrfMismatch);
    }
    let tokens = s.auth.refresh(&claims, &client).await?;
    let body = Json(Tokens::from(&tokens)).into_response();
    Ok((s.cookies.session(jar, &tokens), body))
}

/// End this session.
///
/// Identified by the access token or, when that has expired, the refresh cookie;
/// CSRF-checked unless the caller authenticates with a bearer token.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = tags::AUTH,
    security(("accessCookie" = [], "csrf" = []), ("refreshCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Logged out; cookies cleared", body = Detail,
            headers(("Set-Cookie" = String, description = "The session cookies, expired"))),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn logout(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    parts: axum::http::request::Parts,
) -> Result<impl IntoResponse> {
    let credentials = Credentials::from_parts(&parts);
    let access = match credentials.access_token() {
        Some((token, via_cookie)) => s
            .auth
            .authenticate(token)
            .await
            .ok()
            .map(|a| (a.claims, via_cookie)),
        None => None,
    };
    let refresh = credentials
        .refresh_cookie
        .as_deref()
        .and_then(|t| s.auth.decode_refresh(t).ok());
    let (sid, user_id, via_cookie) = match (&access, &refresh) {
        (Some((c, via_cookie)), _) => (c.sid, c.sub, *via_cookie),
        (None, Some(r)) => (r.sid, r.sub, true),
        (None, None) => return Err(Error::NotAuthenticated),
    };
    if via_cookie && !csrf_ok(&s.auth, &credentials, sid) {
        return Err(Error::CsrfMismatch);
    }
    let mut token_ids: Vec<(&str, i64)> = Vec::new();
    if let Some((c, _)) = &access {
        token_ids.push((&c.jti, c.exp));
    }
    if let Some(r) = refresh.as_ref().filter(|r| r.sid == sid) {
        token_ids.push((&r.jti, r.exp));
    }
    s.auth.logout(sid, user_id, &token_ids, &client).await?;
    Ok((s.cookies.clear_session(jar), Detail::new("Logged out")))
}
