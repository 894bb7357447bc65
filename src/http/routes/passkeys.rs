//! Passkeys: registration, list, rename, delete, and the login's WebAuthn second factor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client, StepUp};
use crate::service::Result;
use crate::service::ports::PasskeyRecord;

fn passkey_json(p: &PasskeyRecord) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "created_at": rfc3339(p.created_at),
        "last_used_at": p.last_used_at.map(rfc3339),
    })
}

/// `GET /auth/mfa/passkeys`.
pub async fn list(State(s): State<AppState>, session: AuthSession) -> Result<Json<Value>> {
    let passkeys = s.auth.list_passkeys(&session.claims).await?;
    let list: Vec<Value> = passkeys.iter().map(passkey_json).collect();
    Ok(Json(json!({ "passkeys": list })))
}

/// `POST /auth/mfa/passkeys/register/begin`: `ceremony` and the `options` for
/// `navigator.credentials.create` (`{publicKey: …}`, binary fields base64url).
pub async fn register_begin(
    State(s): State<AppState>,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<Value>> {
    let (ceremony, options) = s.auth.begin_passkey_registration(&session.claims).await?;
    Ok(Json(json!({ "ceremony": ceremony, "options": options })))
}

#[derive(Deserialize)]
pub struct RegisterFinish {
    ceremony: String,
    name: String,
    credential: Value,
}

pub async fn register_finish(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiJson(b): ApiJson<RegisterFinish>,
) -> Result<impl IntoResponse> {
    let passkey = s
        .auth
        .finish_passkey_registration(&session.claims, &b.ceremony, &b.name, b.credential, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(passkey_json(&passkey))))
}

#[derive(Deserialize)]
pub struct Rename {
    name: String,
}

pub async fn rename(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<Rename>,
) -> Result<Json<Value>> {
    s.auth
        .rename_passkey(&session.claims, id, &b.name, &client)
        .await?;
    Ok(Json(json!({ "id": id, "name": b.name.trim() })))
}

pub async fn delete(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    s.auth.delete_passkey(&session.claims, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct LoginBegin {
    preauth_token: String,
}

/// `POST /auth/mfa/webauthn/begin {preauth_token}`: the options for `navigator.credentials.get`.
pub async fn login_begin(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<LoginBegin>,
) -> Result<Json<Value>> {
    let options = s.auth.begin_passkey_login(&b.preauth_token).await?;
    Ok(Json(json!({ "options": options })))
}

#[derive(Deserialize)]
pub struct LoginFinish {
    preauth_token: String,
    credential: Value,
}

/// `POST /auth/mfa/webauthn/finish {preauth_token, credential}`: as a right emailed code.
pub async fn login_finish(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(b): ApiJson<LoginFinish>,
) -> Result<impl IntoResponse> {
    let outcome = s
        .auth
        .finish_passkey_login(&b.preauth_token, b.credential, &client)
        .await?;
    let jar = s.cookies.device(
        jar,
        &outcome.device_token,
        s.auth.settings().trusted_device_ttl.as_secs(),
    );
    Ok((
        jar,
        Json(json!({ "detail": "Passkey verified", "otp_verified": true })),
    ))
}
