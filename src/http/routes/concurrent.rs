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

pub async fn approve(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Value>> {
    s.auth
        .decide(&token, Decision::Approve, &session.claims, &client)
        .await?;
    Ok(Json(json!({ "status": "approved" })))
}

pub async fn deny(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<Value>> {
    s.auth
        .decide(&token, Decision::Deny, &session.claims, &client)
        .await?;
    Ok(Json(json!({ "status": "denied" })))
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
    let decision = match b.action.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => {
            return Err(Error::validation(
                "action",
                "action must be approve or deny",
            ));
        }
    };
    s.auth.decide_by_link(&b.token, decision, &client).await?;
    let status = if decision == Decision::Approve {
        "approved"
    } else {
        "denied"
    };
    Ok(Json(json!({ "status": status })))
}
