//! The caller's sessions, live events and passwords.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum_extra::extract::cookie::CookieJar;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::SessionId;
use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client, StepUp};
use crate::service::Result;

const HEARTBEAT: Duration = Duration::from_secs(15);

pub async fn list_sessions(State(s): State<AppState>, session: AuthSession) -> Result<Json<Value>> {
    let sessions = s.auth.list_sessions(&session.claims).await?;
    let list: Vec<Value> = sessions
        .iter()
        .map(|x| {
            json!({
                "id": x.id,
                "current": x.id == session.claims.sid,
                "device": x.user_agent.as_deref().unwrap_or("unknown device"),
                "ip_address": x.ip_address,
                "user_agent": x.user_agent,
                "team_id": x.team_id,
                "created_at": rfc3339(x.created_at),
                "last_seen_at": rfc3339(x.last_seen_at),
                "expires_at": rfc3339(x.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

pub async fn end_session(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath(id): ApiPath<SessionId>,
) -> Result<StatusCode> {
    s.auth.end_session(&session.claims, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn logout_all(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    session: AuthSession,
) -> Result<impl IntoResponse> {
    let ended = s.auth.logout_all(&session.claims, &client).await?;
    Ok((
        s.cookies.clear_session(jar),
        Json(json!({ "detail": "Logged out everywhere", "sessions_ended": ended })),
    ))
}

/// Server-sent events for this session; heartbeats keep proxies from closing it.
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

#[derive(Deserialize)]
pub struct ResetRequest {
    email: String,
}

pub async fn request_password_reset(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<ResetRequest>,
) -> Result<impl IntoResponse> {
    s.auth.request_password_reset(&b.email, &client).await?;
    let body =
        json!({ "detail": "If this address has an account, we have sent a reset link to it." });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

#[derive(Deserialize)]
pub struct ResetConfirm {
    token: String,
    password: String,
}

pub async fn confirm_password_reset(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<ResetConfirm>,
) -> Result<Json<Value>> {
    s.auth
        .confirm_password_reset(&b.token, &b.password, &client)
        .await?;
    Ok(Json(
        json!({ "detail": "Password changed; every session was signed out" }),
    ))
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub async fn change_password(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiJson(b): ApiJson<PasswordChange>,
) -> Result<Json<Value>> {
    s.auth
        .change_password(
            &session.claims,
            &b.current_password,
            &b.new_password,
            &client,
        )
        .await?;
    Ok(Json(
        json!({ "detail": "Password changed; other sessions were signed out" }),
    ))
}
