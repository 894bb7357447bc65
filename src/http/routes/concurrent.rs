//! Concurrent-login approval endpoints.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client};
use crate::service::concurrent::Decision;
use crate::service::{Error, Result};

/// The waiting client watches its request (the token is its proof; no session yet).
pub async fn status(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Value>> {
    let status = s.auth.approval_status(&token).await?;
    Ok(Json(json!({ "status": status.as_str() })))
}

fn decision(action: &str) -> Option<Decision> {
    match action {
        "approve" => Some(Decision::Approve),
        "deny" => Some(Decision::Deny),
        _ => None,
    }
}

/// `POST /auth/concurrent-login/<token>/approve|deny`: an existing session decides.
pub async fn decide(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath((token, action)): ApiPath<(String, String)>,
) -> Result<Json<Value>> {
    let decision = decision(&action).ok_or(Error::NotFound)?;
    s.auth
        .decide(&token, decision, &session.claims, &client)
        .await?;
    Ok(Json(json!({ "status": status_word(decision) })))
}

fn status_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approved",
        Decision::Deny => "denied",
    }
}

#[derive(Deserialize)]
pub struct LinkDecision {
    token: String,
    action: String,
}

/// The POST behind the emailed links' confirmation page.
pub async fn decide_by_link(
    State(s): State<AppState>,
    Client(client): Client,
    ApiJson(b): ApiJson<LinkDecision>,
) -> Result<Json<Value>> {
    let decision = decision(&b.action)
        .ok_or_else(|| Error::validation("action", "action must be approve or deny"))?;
    s.auth.decide_by_link(&b.token, decision, &client).await?;
    Ok(Json(json!({ "status": status_word(decision) })))
}
