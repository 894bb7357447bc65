//! Endpoints the web UI needs beyond the guide's flows: a new emailed code for a waiting
//! login, the signed-in user's pending approval requests (so a reloaded page lists them), and
//! the preview of an invite link (team, role, inviter; nothing else).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::{ms, now_ms, rfc3339};
use crate::http::AppState;
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::service::Result;

#[derive(Deserialize)]
pub struct PreauthBody {
    preauth_token: String,
}

/// `POST /auth/otp/resend {preauth_token}` → 202; the old code stops working.
pub async fn resend_otp(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<PreauthBody>,
) -> Result<impl IntoResponse> {
    s.auth.resend_otp(&b.preauth_token, &client).await?;
    let body = json!({ "detail": "We have sent a new code. The previous one no longer works." });
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// `GET /auth/concurrent-login/pending`: the undecided requests this session may decide
/// (requests older than the session itself are the ones it was asked about).
pub async fn pending_approvals(
    State(s): State<AppState>,
    session: AuthSession,
) -> Result<Json<Value>> {
    let now = now_ms();
    let list: Vec<Value> = s
        .auth
        .pending_approvals(session.claims.sub)
        .await?
        .into_iter()
        .filter(|p| p.request.requested_at > session.session.created_at)
        .map(|p| {
            let expires_at = p.expires_in.map(|left| rfc3339(now + ms(left)));
            json!({
                "token": p.token,
                "device": p.request.user_agent,
                "ip_address": p.request.ip,
                "created_at": rfc3339(p.request.requested_at),
                "expires_at": expires_at,
            })
        })
        .collect();
    Ok(Json(json!({ "pending": list })))
}

#[derive(Deserialize)]
pub struct TokenBody {
    token: String,
}

/// `POST /invites/preview {token}`: what the invite page shows before sign-in.
pub async fn invite_preview(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<TokenBody>,
) -> Result<Json<Value>> {
    let p = s.auth.invite_preview(&b.token).await?;
    Ok(Json(json!({
        "team": { "name": p.team_name },
        "role": { "name": p.role_name },
        "inviter": { "name": p.inviter_name },
        "expires_at": rfc3339(p.expires_at),
    })))
}
