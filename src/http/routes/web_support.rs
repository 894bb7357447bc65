//! Endpoints the web UI needs beyond the guide's flows: a new emailed code for a waiting
//! login, the signed-in user's pending approval requests (so a reloaded page lists them), and
//! the preview of an invite link (team, role, inviter; nothing else).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::time::{ms, rfc3339};
use crate::http::AppState;
use crate::http::extract::{ApiJson, AuthSession, Client};
use crate::http::openapi::{errors, tags};
use crate::service::Result;

#[derive(Deserialize, ToSchema)]
pub struct PreauthBody {
    /// From `/auth/login`.
    preauth_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeResent {
    detail: &'static str,
}

/// A new emailed code for a waiting login; the old code stops working, the wrong-code count
/// stays.
#[utoipa::path(
    post,
    path = "/auth/otp/resend",
    tag = tags::AUTH,
    request_body = PreauthBody,
    responses(
        (status = 202, description = "A new code is emailed", body = CodeResent),
        errors::JsonBody,
        errors::Unauthorized,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn resend_otp(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<PreauthBody>,
) -> Result<impl IntoResponse> {
    s.auth.resend_otp(&b.preauth_token, &client).await?;
    let body = CodeResent {
        detail: "We have sent a new code. The previous one no longer works.",
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// One sign-in waiting for this session's decision.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingApproval {
    /// For `POST /auth/concurrent-login/{token}/{decision}`.
    token: String,
    /// The new sign-in's user agent.
    device: Option<String>,
    ip_address: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingApprovals {
    pending: Vec<PendingApproval>,
}

/// The undecided approval requests this session may decide (requests older than the session
/// itself are the ones it was asked about), oldest first.
#[utoipa::path(
    get,
    path = "/auth/concurrent-login/pending",
    tag = tags::CONCURRENT,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The pending requests", body = PendingApprovals),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn pending_approvals(
    State(s): State<AppState>,
    session: AuthSession,
) -> Result<Json<PendingApprovals>> {
    let now = s.auth.now_ms();
    let pending = s
        .auth
        .pending_approvals(session.claims.sub)
        .await?
        .into_iter()
        .filter(|p| p.request.requested_at > session.session.created_at)
        .map(|p| PendingApproval {
            expires_at: p.expires_in.map(|left| rfc3339(now + ms(left))),
            token: p.token,
            device: p.request.user_agent,
            ip_address: p.request.ip,
            created_at: rfc3339(p.request.requested_at),
        })
        .collect();
    Ok(Json(PendingApprovals { pending }))
}

#[derive(Deserialize, ToSchema)]
pub struct TokenBody {
    /// The emailed invitation token.
    token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Named {
    name: String,
}

/// What the invite page shows before sign-in, and nothing else (no address).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitePreview {
    team: Named,
    role: Named,
    inviter: Named,
    /// RFC 3339.
    expires_at: String,
}

/// An invitation's team, role and inviter, by its emailed token.
#[utoipa::path(
    post,
    path = "/invites/preview",
    tag = tags::INVITES,
    request_body = TokenBody,
    responses(
        (status = 200, description = "The invitation", body = InvitePreview),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn invite_preview(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<TokenBody>,
) -> Result<Json<InvitePreview>> {
    let p = s.auth.invite_preview(&b.token).await?;
    Ok(Json(InvitePreview {
        team: Named { name: p.team_name },
        role: Named { name: p.role_name },
        inviter: Named {
            name: p.inviter_name,
        },
        expires_at: rfc3339(p.expires_at),
    }))
}
