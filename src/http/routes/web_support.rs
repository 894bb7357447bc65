//! Endpoints the web UI needs beyond the guide's flows: a new emailed code for a waiting
//! login, the signed-in user's pending approval requests (so a reloaded page lists them), the
//! waiting sign-in's cancel, the preview of an invite link (team, role, inviter; nothing
//! else), the display name, and the user's trusted devices (list, forget one or all).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::UserId;
use crate::domain::time::{ms, rfc3339};
use crate::http::AppState;
use crate::http::cookies::DEVICE_COOKIE;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client};
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

#[derive(Deserialize, ToSchema)]
pub struct CancelBody {
    /// The `token` of the 423 answer.
    token: String,
    /// The waiting login's pre-auth token: given, it is void afterwards.
    #[serde(default)]
    preauth_token: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Cancelled {
    /// `cancelled`.
    status: &'static str,
}

/// The waiting sign-in withdraws its approval request (the token is its proof; no session
/// yet): it leaves the pending list, a decision on it is 404, and it no longer counts toward
/// the pending limit. An unknown or expired token is 404, a decided request 409.
#[utoipa::path(
    post,
    path = "/auth/concurrent-login/cancel",
    tag = tags::CONCURRENT,
    request_body = CancelBody,
    responses(
        (status = 200, description = "Withdrawn", body = Cancelled),
        errors::JsonBody,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn cancel_approval(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<CancelBody>,
) -> Result<Json<Cancelled>> {
    s.auth
        .cancel_approval(&b.token, b.preauth_token.as_deref(), &client)
        .await?;
    Ok(Json(Cancelled {
        status: "cancelled",
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileChange {
    /// 1–100 printable characters once trimmed.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUser {
    #[schema(value_type = i64)]
    id: UserId,
    email: String,
    name: String,
}

/// Change the caller's display name (422 `field: name` when empty or too long).
#[utoipa::path(
    patch,
    path = "/auth/me",
    tag = tags::AUTH,
    request_body = ProfileChange,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The changed profile", body = ProfileUser),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn update_profile(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<ProfileChange>,
) -> Result<Json<ProfileUser>> {
    let name = s
        .auth
        .rename_user(&session.claims, &b.name, &client)
        .await?;
    let user = s
        .auth
        .profile(&session.claims, &session.session, &session.access)
        .await?
        .user;
    Ok(Json(ProfileUser {
        id: user.id,
        email: user.email.clone(),
        name,
    }))
}

/// A device that signs in without the emailed code.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedDevice {
    #[schema(minimum = 1)]
    id: i64,
    /// The user agent it was trusted with.
    #[schema(required = true)]
    user_agent: Option<String>,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339: its last sign-in without a code.
    last_used_at: String,
    /// RFC 3339: when the trust ends by itself.
    expires_at: String,
    /// This request came from it (its device cookie).
    current: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedDevices {
    devices: Vec<TrustedDevice>,
}

/// The caller's trusted devices, most recently used first.
#[utoipa::path(
    get,
    path = "/auth/devices",
    tag = tags::AUTH,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The trusted devices", body = TrustedDevices),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn trusted_devices(
    State(s): State<AppState>,
    session: AuthSession,
    jar: CookieJar,
) -> Result<Json<TrustedDevices>> {
    let own = jar.get(DEVICE_COOKIE).map(|c| c.value().to_owned());
    let devices = s
        .auth
        .trusted_devices(&session.claims, own.as_deref())
        .await?
        .into_iter()
        .map(|d| TrustedDevice {
            id: d.record.id,
            user_agent: d.record.user_agent,
            created_at: rfc3339(d.record.created_at),
            last_used_at: rfc3339(d.record.last_used_at),
            expires_at: rfc3339(d.record.expires_at),
            current: d.current,
        })
        .collect();
    Ok(Json(TrustedDevices { devices }))
}

/// Forget every trusted device of the caller (this one included): each next sign-in asks
/// for the emailed code again.
#[utoipa::path(
    delete,
    path = "/auth/devices",
    tag = tags::AUTH,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Forgotten"),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn forget_all_devices(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
) -> Result<StatusCode> {
    s.auth
        .forget_all_trusted_devices(&session.claims, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forget one trusted device: its next sign-in asks for the emailed code again.
#[utoipa::path(
    delete,
    path = "/auth/devices/{id}",
    tag = tags::AUTH,
    params(("id" = i64, Path, minimum = 1, description = "A device id from `GET /auth/devices`")),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Forgotten"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn forget_device(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    s.auth
        .forget_trusted_device(&session.claims, id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
