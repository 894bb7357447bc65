//! Second factors (`/auth/mfa/...`), the login's MFA step and step-up reauth (SPEC §13).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, AuthSession, Client, StepUp};
use crate::service::step_up::ReauthProof;
use crate::service::{Error, Result};

pub async fn overview(State(s): State<AppState>, session: AuthSession) -> Result<Json<Value>> {
    let o = s.auth.mfa_overview(session.claims.sub).await?;
    let passkeys: Vec<Value> = o
        .passkeys
        .iter()
        .map(|p| {
            json!({
                "id": p.id,
                "name": p.name,
                "created_at": rfc3339(p.created_at),
                "last_used_at": p.last_used_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({
        "totp": o.totp,
        "passkeys": passkeys,
        "recovery_codes_left": o.recovery_codes_left,
        "methods": o.methods,
    })))
}

pub async fn enroll_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<Value>> {
    let e = s.auth.enroll_totp(session.claims.sub, &client).await?;
    Ok(Json(
        json!({ "secret": e.secret, "otpauth_uri": e.otpauth_uri }),
    ))
}

#[derive(Deserialize)]
pub struct CodeBody {
    code: String,
}

pub async fn confirm_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiJson(b): ApiJson<CodeBody>,
) -> Result<Json<Value>> {
    let codes = s
        .auth
        .confirm_totp(session.claims.sub, &b.code, &client)
        .await?;
    Ok(Json(json!({ "totp": true, "recovery_codes": codes })))
}

pub async fn disable_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<Value>> {
    s.auth.disable_totp(session.claims.sub, &client).await?;
    Ok(Json(json!({ "detail": "TOTP removed", "totp": false })))
}

pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<Value>> {
    let codes = s
        .auth
        .regenerate_recovery_codes(session.claims.sub, &client)
        .await?;
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
pub struct VerifyBody {
    preauth_token: String,
    method: String,
    code: String,
}

/// The login's second step with the user's own factor; sets the device cookie as
/// `/auth/otp/verify` does.
pub async fn verify(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<VerifyBody>,
) -> Result<impl IntoResponse> {
    let outcome = s
        .auth
        .verify_mfa(&b.preauth_token, &b.method, &b.code, &client)
        .await?;
    let jar = s.cookies.device(
        jar,
        &outcome.device_token,
        s.auth.settings().trusted_device_ttl.as_secs(),
    );
    Ok((
        jar,
        Json(json!({ "detail": "Second factor verified", "mfa_verified": true })),
    ))
}

#[derive(Deserialize)]
pub struct ReauthBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

pub async fn reauth(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<ReauthBody>,
) -> Result<Json<Value>> {
    let proof = match (&b.password, &b.method, &b.code) {
        (Some(password), None, None) => ReauthProof::Password(password),
        (None, Some(method), Some(code)) => ReauthProof::SecondFactor { method, code },
        _ => {
            return Err(Error::BadRequest(
                "Send either {password} or {method, code}".into(),
            ));
        }
    };
    s.auth.reauth(&session.claims, proof, &client).await?;
    let max_age = s.auth.settings().step_up_max_age.as_secs();
    Ok(Json(
        json!({ "detail": "Authentication renewed", "expires_in": max_age }),
    ))
}
