//! A team's Virtuozzo account. Secrets are accepted, never returned.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{
    ApiJson, Client, EnvironmentsRead, StepUp, TeamGuard, VirtuozzoCredentialsManage,
    VirtuozzoSessionRefresh,
};
use crate::http::openapi::{errors, tags};
use crate::service::Result;

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    /// The Virtuozzo account's email (trimmed and lower-cased).
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// Stored sealed (AES-256-GCM, bound to the team); never returned.
    #[schema(format = Password, min_length = 1, max_length = 1024)]
    password: String,
}

/// The state of a team's Virtuozzo account.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // only described: the service names the state
pub enum VirtuozzoState {
    NotConfigured,
    NoSession,
    Active,
    Expired,
    RefreshFailed,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSaved {
    #[schema(format = Email)]
    vz_email: String,
    /// `no_session`: the next Owner sign-in (or a refresh) signs in to Virtuozzo.
    #[schema(value_type = VirtuozzoState)]
    status: &'static str,
}

/// Set the team's Virtuozzo credentials (Owner + `virtuozzo.credentials.manage`); the
/// session key is cleared.
#[utoipa::path(
    put,
    path = "/teams/{team_id}/virtuozzo",
    tag = tags::VIRTUOZZO,
    params(("team_id" = i64, Path, minimum = 1)),
    request_body = Credentials,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Saved", body = CredentialsSaved),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn set_credentials(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<VirtuozzoCredentialsManage>>,
    ApiJson(b): ApiJson<Credentials>,
) -> Result<Json<CredentialsSaved>> {
    s.auth
        .set_virtuozzo_credentials(&guard.access, &b.email, &b.password, &client)
        .await?;
    Ok(Json(CredentialsSaved {
        vz_email: b.email.trim().to_lowercase(),
        status: "no_session",
    }))
}

/// Never the password or the session key.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VirtuozzoStatus {
    #[schema(format = Email, required = true)]
    vz_email: Option<String>,
    #[schema(format = DateTime, required = true)]
    session_key_expires_at: Option<String>,
    #[schema(value_type = VirtuozzoState)]
    status: &'static str,
    /// When the last sign-in failed, while there is no live key.
    #[schema(format = DateTime, required = true)]
    refresh_failed_at: Option<String>,
}

/// The team's Virtuozzo account status (`environments.read`).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/virtuozzo",
    tag = tags::VIRTUOZZO,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Status", body = VirtuozzoStatus),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn status(
    State(s): State<AppState>,
    guard: TeamGuard<EnvironmentsRead>,
) -> Result<Json<VirtuozzoStatus>> {
    let v = s.auth.virtuozzo_status(&guard.access).await?;
    Ok(Json(VirtuozzoStatus {
        vz_email: v.vz_email,
        session_key_expires_at: v.session_key_expires_at.map(rfc3339),
        status: v.status,
        refresh_failed_at: v.refresh_failed_at.map(rfc3339),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Refreshed {
    #[schema(format = DateTime)]
    session_key_expires_at: String,
    /// `active`.
    #[schema(value_type = VirtuozzoState)]
    status: &'static str,
}

/// Refresh the Virtuozzo session key (Owner + `virtuozzo.session.refresh`).
///
/// 503 "Virtuozzo session refresh failed" (`dependency: virtuozzo`).
#[utoipa::path(
    post,
    path = "/teams/{team_id}/virtuozzo/refresh",
    tag = tags::VIRTUOZZO,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A new session key", body = Refreshed),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn refresh(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<VirtuozzoSessionRefresh>>,
) -> Result<Json<Refreshed>> {
    let expires_at = s
        .auth
        .refresh_virtuozzo_session(&guard.access, &client)
        .await?;
    Ok(Json(Refreshed {
        session_key_expires_at: rfc3339(expires_at),
        status: "active",
    }))
}
