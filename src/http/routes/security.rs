//! New-device reports ("this wasn't me") and team security policies.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, Client, TeamGuard};
use crate::service::Result;
use crate::service::team_policy::TeamPolicy;

#[derive(Deserialize)]
pub struct NotMe {
    token: String,
}

/// `POST /auth/new-device/not-me {token}`: the button of the alert's page.
pub async fn not_me(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<NotMe>,
) -> Result<Json<Value>> {
    let outcome = s.auth.report_not_me(&b.token, &client).await?;
    Ok(Json(json!({
        "status": "secured",
        "sessions_ended": outcome.sessions_ended,
        "password_reset_sent": true,
    })))
}

fn policy_json(p: &TeamPolicy) -> Value {
    json!({
        "require_mfa": p.require_mfa,
        "grace_days": p.grace_days,
        "enforced_from": p.enforced_from.map(rfc3339),
        "enforced_at": p.enforced_at.map(rfc3339),
    })
}

/// `GET /teams/<id>/security` (Owner): the policy and a dry run of whom it blocks.
pub async fn get_policy(State(s): State<AppState>, guard: TeamGuard) -> Result<Json<Value>> {
    let (policy, without) = s.auth.team_security(&guard.access).await?;
    let mut body = policy_json(&policy);
    body["members_without_mfa"] = without
        .iter()
        .map(|(id, email)| json!({ "id": id, "email": email }))
        .collect();
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyChange {
    require_mfa: bool,
    #[serde(default)]
    grace_days: i64,
}

/// `PUT /teams/<id>/security {require_mfa, grace_days}` (Owner).
pub async fn put_policy(
    State(s): State<AppState>,
    Client(client): Client,
    guard: TeamGuard,
    ApiJson(b): ApiJson<PolicyChange>,
) -> Result<Json<Value>> {
    // Step-up: a policy change needs a recent authentication (403 `reauth_required`).
    s.auth.require_recent_auth(guard.session.claims.sid).await?;
    let policy = s
        .auth
        .set_team_security(&guard.access, b.require_mfa, b.grace_days, &client)
        .await?;
    Ok(Json(policy_json(&policy)))
}
