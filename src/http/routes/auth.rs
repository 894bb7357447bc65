//! The login lifecycle endpoints (`/api/v1/auth/...`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::domain::{SessionId, TeamId, UserId};
use crate::http::AppState;
use crate::http::cookies::DEVICE_COOKIE;
use crate::http::extract::{ApiJson, AuthSession, Client, Credentials, csrf_ok};
use crate::service::ports::Membership;
use crate::service::registration::Registration;
use crate::service::session::IssuedTokens;
use crate::service::{Error, Result};

#[derive(Deserialize)]
pub struct RegisterBody {
    email: String,
    password: String,
    name: String,
}

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
    let body = json!({ "detail": "If this address can be registered, we have sent a verification link to it." });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[derive(Deserialize)]
pub struct TokenBody {
    token: String,
}

pub async fn verify_email(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<TokenBody>,
) -> Result<Json<Value>> {
    s.auth.verify_email(&b.token, &client).await?;
    Ok(Json(json!({ "detail": "Email verified" })))
}

#[derive(Deserialize)]
pub struct EmailBody {
    email: String,
}

pub async fn resend_verification(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<EmailBody>,
) -> Result<impl IntoResponse> {
    s.auth.resend_verification(&b.email, &client).await?;
    let body = json!({ "detail": "If this address has an unverified account, we have sent a new link to it." });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

fn team_json(m: &Membership) -> Value {
    json!({ "id": m.team_id, "name": m.team_name, "role": m.role_name })
}

#[derive(Deserialize)]
pub struct LoginBody {
    email: String,
    password: String,
}

pub async fn login(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<LoginBody>,
) -> Result<Json<Value>> {
    let device = jar.get(DEVICE_COOKIE).map(|c| c.value().to_owned());
    let outcome = s
        .auth
        .login(&b.email, &b.password, device.as_deref(), &client)
        .await?;
    Ok(Json(json!({
        "preauth_token": outcome.preauth_token,
        "otp_required": outcome.otp_required,
        "mfa_required": !outcome.mfa_methods.is_empty(),
        "mfa_methods": outcome.mfa_methods,
        "expires_in": outcome.expires_in,
        "teams": outcome.teams.iter().map(team_json).collect::<Vec<_>>(),
    })))
}

#[derive(Deserialize)]
pub struct OtpBody {
    preauth_token: String,
    code: String,
}

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
    let jar = s.cookies.device(
        jar,
        &outcome.device_token,
        s.auth.settings().trusted_device_ttl.as_secs(),
    );
    Ok((
        jar,
        Json(json!({ "detail": "Code verified", "otp_verified": true })),
    ))
}

#[derive(Deserialize)]
pub struct ExchangeBody {
    preauth_token: String,
    #[serde(default)]
    team_id: Option<TeamId>,
}

fn tokens_json(t: &IssuedTokens) -> Value {
    json!({
        "session": { "id": t.session_id },
        "csrf_token": t.csrf_token,
        "access_expires_in": t.access_expires_in,
        "refresh_expires_in": t.refresh_expires_in,
    })
}

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
    let mut body = tokens_json(&outcome.tokens);
    body["team"] =
        json!({ "id": outcome.membership.team_id, "name": outcome.membership.team_name });
    body["role"] =
        json!({ "id": outcome.membership.role_id, "name": outcome.membership.role_name });
    Ok((s.cookies.session(jar, &outcome.tokens), Json(body)))
}

/// `GET /auth/me`, serialised straight from the cached facts (the hot path).
#[derive(Serialize)]
pub struct MeResponse<'a> {
    user: MeUser<'a>,
    team: IdName<'a>,
    role: IdName<'a>,
    permissions: &'a [String],
    session: MeSession<'a>,
    /// When the team starts refusing this user without a second factor (team policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_setup_required_by: Option<String>,
}

#[derive(Serialize)]
struct MeUser<'a> {
    id: UserId,
    email: &'a str,
    name: &'a str,
    email_verified_at: Option<String>,
}

#[derive(Serialize)]
struct IdName<'a> {
    id: i64,
    name: &'a str,
}

#[derive(Serialize)]
struct MeSession<'a> {
    id: SessionId,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    ip_address: Option<&'a str>,
    user_agent: Option<&'a str>,
}

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
            id: p.access.team_id,
            name: &p.access.team_name,
        },
        role: IdName {
            id: p.access.role_id,
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

/// Rotates the refresh cookie. Always cookie-authenticated, so always CSRF-checked.
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
    Ok((s.cookies.session(jar, &tokens), Json(tokens_json(&tokens))))
}

/// Ends the current session. Identified by the access token or, when that has expired, the
/// refresh cookie; CSRF-checked unless the caller authenticates with a bearer token.
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
    Ok((
        s.cookies.clear_session(jar),
        Json(json!({ "detail": "Logged out" })),
    ))
}
