//! A team's Virtuozzo account. Secrets are accepted, never returned.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{
    ApiJson, Client, EnvironmentsRead, StepUp, TeamGuard, VirtuozzoCredentialsManage,
    VirtuozzoSessionRefresh,
};
use crate::service::Result;

#[derive(Deserialize)]
pub struct Credentials {
    email: String,
    password: String,
}

pub async fn set_credentials(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<VirtuozzoCredentialsManage>>,
    ApiJson(b): ApiJson<Credentials>,
) -> Result<Json<Value>> {
    s.auth
        .set_virtuozzo_credentials(&guard.access, &b.email, &b.password, &client)
        .await?;
    Ok(Json(
        json!({ "vz_email": b.email.trim().to_lowercase(), "status": "no_session" }),
    ))
}

pub async fn status(
    State(s): State<AppState>,
    guard: TeamGuard<EnvironmentsRead>,
) -> Result<Json<Value>> {
    let v = s.auth.virtuozzo_status(&guard.access).await?;
    Ok(Json(json!({
        "vz_email": v.vz_email,
        "session_key_expires_at": v.session_key_expires_at.map(rfc3339),
        "status": v.status,
        "refresh_failed_at": v.refresh_failed_at.map(rfc3339),
    })))
}

pub async fn refresh(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<VirtuozzoSessionRefresh>>,
) -> Result<Json<Value>> {
    let expires_at = s
        .auth
        .refresh_virtuozzo_session(&guard.access, &client)
        .await?;
    Ok(Json(
        json!({ "session_key_expires_at": rfc3339(expires_at), "status": "active" }),
    ))
}
