//! New-device reports ("this wasn't me") and team security policies.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::UserId;
use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Client, TeamGuard};
use crate::http::openapi::{errors, tags};
use crate::service::Result;
use crate::service::team_policy::TeamPolicy;

#[derive(Deserialize, ToSchema)]
pub struct NotMe {
    /// The alert email's token.
    token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Secured {
    /// `secured`.
    status: &'static str,
    sessions_ended: u64,
    password_reset_sent: bool,
}

/// The button of the new-device alert's page: every session ends, every device is
/// distrusted, a reset link is emailed.
#[utoipa::path(
    post,
    path = "/auth/new-device/not-me",
    tag = tags::MFA,
    request_body = NotMe,
    responses(
        (status = 200, description = "The account is secured", body = Secured),
        errors::JsonBody,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn not_me(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<NotMe>,
) -> Result<Json<Secured>> {
    let outcome = s.auth.report_not_me(&b.token, &client).await?;
    Ok(Json(Secured {
        status: "secured",
        sessions_ended: outcome.sessions_ended as u64,
        password_reset_sent: true,
    }))
}

/// A member the policy would block.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberWithoutMfa {
    #[schema(value_type = i64)]
    id: UserId,
    email: String,
}

/// The team's security policy.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    require_mfa: bool,
    grace_days: i64,
    /// RFC 3339: when it was switched on.
    enforced_from: Option<String>,
    /// RFC 3339: from when members without a second factor are refused.
    enforced_at: Option<String>,
    /// Only in `GET`: a dry run of whom the policy blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    members_without_mfa: Option<Vec<MemberWithoutMfa>>,
}

fn policy(p: &TeamPolicy) -> Policy {
    Policy {
        require_mfa: p.require_mfa,
        grace_days: p.grace_days,
        enforced_from: p.enforced_from.map(rfc3339),
        enforced_at: p.enforced_at.map(rfc3339),
        members_without_mfa: None,
    }
}

/// The policy and a dry run of whom it blocks (Owner).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/security",
    tag = tags::TEAMS,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The policy", body = Policy),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn get_policy(State(s): State<AppState>, guard: TeamGuard) -> Result<Json<Policy>> {
    let (p, without) = s.auth.team_security(&guard.access).await?;
    let mut body = policy(&p);
    body.members_without_mfa = Some(
        without
            .into_iter()
            .map(|(id, email)| MemberWithoutMfa { id, email })
            .collect(),
    );
    Ok(Json(body))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    require_mfa: bool,
    /// Days members have to set up a second factor.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 365)]
    grace_days: i64,
}

/// Set the policy (Owner, step-up); the Owner must hold a second factor to switch it on.
#[utoipa::path(
    put,
    path = "/teams/{team_id}/security",
    tag = tags::TEAMS,
    params(("team_id" = i64, Path, minimum = 1)),
    request_body = PolicyChange,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The policy", body = Policy),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn put_policy(
    State(s): State<AppState>,
    Client(client): Client,
    guard: TeamGuard,
    ApiJson(b): ApiJson<PolicyChange>,
) -> Result<Json<Policy>> {
    // Step-up: a policy change needs a recent authentication (403 `reauth_required`).
    s.auth.require_recent_auth(guard.session.claims.sid).await?;
    let p = s
        .auth
        .set_team_security(&guard.access, b.require_mfa, b.grace_days, &client)
        .await?;
    Ok(Json(policy(&p)))
}
