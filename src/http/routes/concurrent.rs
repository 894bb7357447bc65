//! Concurrent-login approval endpoints.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client};
use crate::http::openapi::{errors, tags};
use crate::service::concurrent::{ApprovalStatus, Decision};
use crate::service::{Error, Result};

/// Where an approval request stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
}

impl From<ApprovalStatus> for ApprovalState {
    fn from(status: ApprovalStatus) -> Self {
        match status {
            ApprovalStatus::Pending => Self::Pending,
            ApprovalStatus::Approved => Self::Approved,
            ApprovalStatus::Denied => Self::Denied,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    status: ApprovalState,
}

/// The waiting client watches its request (the token is its proof; no session yet).
#[utoipa::path(
    get,
    path = "/auth/concurrent-login/{token}",
    tag = tags::CONCURRENT,
    params(("token" = String, Path, description = "The `token` of the 423 answer")),
    responses(
        (status = 200, description = "The request's state", body = Approval),
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn status(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Approval>> {
    let status = s.auth.approval_status(&token).await?;
    Ok(Json(Approval {
        status: status.into(),
    }))
}

fn decision(action: &str) -> Option<Decision> {
    match action {
        "approve" => Some(Decision::Approve),
        "deny" => Some(Decision::Deny),
        _ => None,
    }
}

/// What the decision made of the request.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decided {
    Approved,
    Denied,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionMade {
    status: Decided,
}

fn decided(decision: Decision) -> Json<DecisionMade> {
    let status = match decision {
        Decision::Approve => Decided::Approved,
        Decision::Deny => Decided::Denied,
    };
    Json(DecisionMade { status })
}

/// The two decisions, as the path and the emailed links spell them (only described: the
/// handlers read them as text, so anything else gets the handler's own answer).
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Deny,
}

/// Approve or deny a pending login: an existing session of the same user decides.
///
/// Another user's token is 404; a session younger than the request 403
/// `self_approval_forbidden`; a second decision 409 `already_decided`.
#[utoipa::path(
    post,
    path = "/auth/concurrent-login/{token}/{decision}",
    tag = tags::CONCURRENT,
    params(
        ("token" = String, Path, description = "The approval request's token"),
        ("decision" = Action, Path, description = "`approve` or `deny` (anything else is 404)"),
    ),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Decided", body = DecisionMade),
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn decide(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath((token, action)): ApiPath<(String, String)>,
) -> Result<Json<DecisionMade>> {
    let decision = decision(&action).ok_or(Error::NotFound)?;
    s.auth
        .decide(&token, decision, &session.claims, &client)
        .await?;
    Ok(decided(decision))
}

#[derive(Deserialize, ToSchema)]
pub struct LinkDecision {
    /// The emailed link's token.
    token: String,
    #[schema(value_type = Action)]
    action: String,
}

/// Decide with the emailed link's token (the POST behind the link's confirmation page;
/// single use).
#[utoipa::path(
    post,
    path = "/auth/concurrent-login/email-decision",
    tag = tags::CONCURRENT,
    request_body = LinkDecision,
    responses(
        (status = 200, description = "Decided", body = DecisionMade),
        errors::JsonBody,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn decide_by_link(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<LinkDecision>,
) -> Result<Json<DecisionMade>> {
    let decision = decision(&b.action)
        .ok_or_else(|| Error::validation("action", "action must be approve or deny"))?;
    s.auth.decide_by_link(&b.token, decision, &client).await?;
    Ok(decided(decision))
}
