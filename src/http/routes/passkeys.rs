//! Passkeys: registration, list, rename, delete, and the login's WebAuthn second factor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::domain::time::rfc3339;
use crate::http::AppState;
use crate::http::extract::{ApiJson, ApiPath, AuthSession, Client, StepUp};
use crate::http::openapi::{errors, tags};
use crate::service::Result;
use crate::service::ports::PasskeyRecord;

/// A registered passkey.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Passkey {
    #[schema(minimum = 1)]
    id: i64,
    name: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339; null until first used.
    last_used_at: Option<String>,
}

impl From<&crate::service::mfa::PasskeySummary> for Passkey {
    fn from(p: &crate::service::mfa::PasskeySummary) -> Self {
        Passkey {
            id: p.id,
            name: p.name.clone(),
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
        }
    }
}

impl From<&PasskeyRecord> for Passkey {
    fn from(p: &PasskeyRecord) -> Self {
        Passkey {
            id: p.id,
            name: p.name.clone(),
            created_at: rfc3339(p.created_at),
            last_used_at: p.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Passkeys {
    passkeys: Vec<Passkey>,
}

/// The user's passkeys.
#[utoipa::path(
    get,
    path = "/auth/mfa/passkeys",
    tag = tags::MFA,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The passkeys", body = Passkeys),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn list(State(s): State<AppState>, session: AuthSession) -> Result<Json<Passkeys>> {
    let passkeys = s.auth.list_passkeys(&session.claims).await?;
    Ok(Json(Passkeys {
        passkeys: passkeys.iter().map(Passkey::from).collect(),
    }))
}

/// A registration ceremony: its id and the options for `navigator.credentials.create`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationOptions {
    /// For `register/finish`; lives 5 minutes, works once.
    ceremony: String,
    /// `{publicKey: …}` for `navigator.credentials.create` (binary fields base64url).
    #[schema(value_type = Object)]
    options: Value,
}

/// Begin registering a passkey (step-up).
#[utoipa::path(
    post,
    path = "/auth/mfa/passkeys/register/begin",
    tag = tags::MFA,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The ceremony", body = RegistrationOptions),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn register_begin(
    State(s): State<AppState>,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<RegistrationOptions>> {
    let (ceremony, options) = s.auth.begin_passkey_registration(&session.claims).await?;
    Ok(Json(RegistrationOptions { ceremony, options }))
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterFinish {
    /// From `register/begin`.
    ceremony: String,
    /// 1–64 printable characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
    /// The `PublicKeyCredential` from `navigator.credentials.create`, binary fields base64url.
    #[schema(value_type = Object)]
    credential: Value,
}

/// Finish registering a passkey (step-up).
#[utoipa::path(
    post,
    path = "/auth/mfa/passkeys/register/finish",
    tag = tags::MFA,
    request_body = RegisterFinish,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Registered", body = Passkey),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
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
    Ok((StatusCode::CREATED, Json(Passkey::from(&passkey))))
}

#[derive(Deserialize, ToSchema)]
pub struct Rename {
    /// 1–64 printable characters.
    #[schema(min_length = 1, max_length = 64)]
    name: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Renamed {
    id: i64,
    name: String,
}

/// Rename a passkey (step-up).
#[utoipa::path(
    patch,
    path = "/auth/mfa/passkeys/{id}",
    tag = tags::MFA,
    params(("id" = i64, Path, minimum = 1, description = "A passkey id from `GET /auth/mfa/passkeys`")),
    request_body = Rename,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Renamed", body = Renamed),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn rename(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(b): ApiJson<Rename>,
) -> Result<Json<Renamed>> {
    s.auth
        .rename_passkey(&session.claims, id, &b.name, &client)
        .await?;
    Ok(Json(Renamed {
        id,
        name: b.name.trim().to_owned(),
    }))
}

/// Delete a passkey (step-up).
#[utoipa::path(
    delete,
    path = "/auth/mfa/passkeys/{id}",
    tag = tags::MFA,
    params(("id" = i64, Path, minimum = 1, description = "A passkey id from `GET /auth/mfa/passkeys`")),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn delete(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode> {
    s.auth.delete_passkey(&session.claims, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBegin {
    /// From `/auth/login`.
    preauth_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionOptions {
    /// `{publicKey: …}` for `navigator.credentials.get` (binary fields base64url).
    #[schema(value_type = Object)]
    options: Value,
}

/// The login's passkey challenge, for a login waiting for its second factor.
#[utoipa::path(
    post,
    path = "/auth/mfa/webauthn/begin",
    tag = tags::MFA,
    request_body = LoginBegin,
    responses(
        (status = 200, description = "The challenge", body = AssertionOptions),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Conflict,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn login_begin(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<LoginBegin>,
) -> Result<Json<AssertionOptions>> {
    let options = s.auth.begin_passkey_login(&b.preauth_token).await?;
    Ok(Json(AssertionOptions { options }))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginFinish {
    /// From `/auth/login`.
    preauth_token: String,
    /// The `PublicKeyCredential` from `navigator.credentials.get`, binary fields base64url.
    #[schema(value_type = Object)]
    credential: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyVerified {
    detail: &'static str,
    otp_verified: bool,
}

/// The login's passkey answer: as a right emailed code (wrong ones count against its limits).
#[utoipa::path(
    post,
    path = "/auth/mfa/webauthn/finish",
    tag = tags::MFA,
    request_body = LoginFinish,
    responses(
        (status = 200, description = "Passed; continue with /auth/session-exchange", body = PasskeyVerified,
            headers(("Set-Cookie" = String, description = "The trusted-device cookie"))),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Locked,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
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
    let jar = s.trust_device(jar, &outcome);
    Ok((
        jar,
        Json(PasskeyVerified {
            detail: "Passkey verified",
            otp_verified: true,
        }),
    ))
}
