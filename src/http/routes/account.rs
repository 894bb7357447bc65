//! The caller's sessions, live events and passwords.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::bodies::Detail;
use crate::domain::time::rfc3339;
use crate::domain::{SessionId, TeamId};
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client, StepUp};
use crate::http::openapi::{errors, tags};
use crate::service::Result;

const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionList<'a> {
    sessions: Vec<SessionInfo<'a>>,
}

/// One active session of the caller.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionInfo<'a> {
    #[schema(value_type = i64)]
    id: SessionId,
    /// The session of this request.
    current: bool,
    /// The user agent, or `unknown device`.
    device: &'a str,
    #[schema(required = true)]
    ip_address: Option<&'a str>,
    #[schema(required = true)]
    user_agent: Option<&'a str>,
    #[schema(value_type = i64)]
    team_id: TeamId,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_seen_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The caller's active sessions.
#[utoipa::path(
    get,
    path = "/auth/sessions",
    tag = tags::SESSIONS,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Active sessions", body = SessionList),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn list_sessions(State(s): State<AppState>, session: AuthSession) -> Result<Response> {
    let sessions = s.auth.list_sessions(&session.claims).await?;
    let sessions = sessions
        .iter()
        .map(|x| SessionInfo {
            id: x.id,
            current: x.id == session.claims.sid,
            device: x.user_agent.as_deref().unwrap_or("unknown device"),
            ip_address: x.ip_address.as_deref(),
            user_agent: x.user_agent.as_deref(),
            team_id: x.team_id,
            created_at: rfc3339(x.created_at),
            last_seen_at: rfc3339(x.last_seen_at),
            expires_at: rfc3339(x.expires_at),
        })
        .collect();
    Ok(Json(SessionList { sessions }).into_response())
}

/// End one of the caller's sessions (404 if it is not the caller's).
#[utoipa::path(
    delete,
    path = "/auth/sessions/{id}",
    tag = tags::SESSIONS,
    params(("id" = i64, Path, minimum = 1, description = "A session id from `GET /auth/sessions`")),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Ended"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn end_session(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath(id): ApiPath<SessionId>,
) -> Result<StatusCode> {
    s.auth.end_session(&session.claims, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoggedOutEverywhere {
    detail: &'static str,
    /// How many sessions ended (this one included).
    sessions_ended: usize,
}

/// End every session of the caller; cookies cleared.
#[utoipa::path(
    post,
    path = "/auth/logout-all",
    tag = tags::SESSIONS,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every session ended", body = LoggedOutEverywhere,
            headers(("Set-Cookie" = String, description = "The session cookies, expired"))),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn logout_all(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    session: AuthSession,
) -> Result<impl IntoResponse> {
    let ended = s.auth.logout_all(&session.claims, &client).await?;
    Ok((
        s.cookies.clear_session(jar),
        Json(LoggedOutEverywhere {
            detail: "Logged out everywhere",
            sessions_ended: ended,
        }),
    ))
}

/// Server-sent events for this session; heartbeats keep proxies from closing it.
///
/// Events: `ready`, `concurrent_login_requested` (`token`, `device`),
/// `concurrent_login_decided`, `session_created`, `session_revoked`; a `heartbeat` comment
/// every 15 s. The stream closes when the session ends.
#[utoipa::path(
    get,
    path = "/auth/events",
    tag = tags::SESSIONS,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        errors::Unauthorized,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn events(State(s): State<AppState>, session: AuthSession) -> Result<impl IntoResponse> {
    let stream = s.auth.session_events(session.claims).await?;
    let events =
        stream.map(|(name, data)| Ok::<_, Infallible>(Event::default().event(name).data(data)));
    // `no-store` as every other answer (axum's default for SSE is `no-cache`).
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Sse::new(events).keep_alive(KeepAlive::new().interval(HEARTBEAT).text("heartbeat")),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    #[schema(format = Email, max_length = 254)]
    email: String,
}

/// Email a password-reset link (the same answer for every address).
#[utoipa::path(
    post,
    path = "/auth/password-reset/request",
    tag = tags::PASSWORDS,
    request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted", body = Detail),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn request_password_reset(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<ResetRequest>,
) -> Result<impl IntoResponse> {
    s.auth.request_password_reset(&b.email, &client).await?;
    let body = Detail::new("If this address has an account, we have sent a reset link to it.");
    Ok((StatusCode::ACCEPTED, body))
}

#[derive(Deserialize, ToSchema)]
pub struct ResetConfirm {
    /// The emailed token.
    token: String,
    /// The new password.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    password: String,
}

/// Set a new password with the emailed token; every session ends.
#[utoipa::path(
    post,
    path = "/auth/password-reset/confirm",
    tag = tags::PASSWORDS,
    request_body = ResetConfirm,
    responses(
        (status = 200, description = "Password changed", body = Detail),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn confirm_password_reset(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<ResetConfirm>,
) -> Result<Json<Detail>> {
    s.auth
        .confirm_password_reset(&b.token, &b.password, &client)
        .await?;
    Ok(Detail::new(
        "Password changed; every session was signed out",
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    #[schema(format = Password, max_length = 1024)]
    current_password: String,
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    new_password: String,
}

/// Change the password (the current one is required); every other session ends.
///
/// A wrong current password is 422 `field: current_password` and counts like a failed login.
#[utoipa::path(
    post,
    path = "/auth/password/change",
    tag = tags::PASSWORDS,
    request_body = PasswordChange,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Password changed", body = Detail),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn change_password(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiJson(b): ApiJson<PasswordChange>,
) -> Result<Json<Detail>> {
    s.auth
        .change_password(
            &session.claims,
            &b.current_password,
            &b.new_password,
            &client,
        )
        .await?;
    Ok(Detail::new(
        "Password changed; other sessions were signed out",
    ))
}
