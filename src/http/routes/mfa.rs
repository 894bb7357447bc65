//! Second factors (`/auth/mfa/...`), the login's MFA step and step-up reauth (SPEC §13).

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::extract::{ApiJson, AuthSession, Client, StepUp};
use crate::http::openapi::{errors, tags};
use crate::service::step_up::ReauthProof;
use crate::service::{Error, Result};

/// The user's second factors.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaOverviewBody {
    /// A confirmed authenticator app.
    totp: bool,
    passkeys: Vec<super::passkeys::Passkey>,
    /// Unused recovery codes.
    #[schema(minimum = 0)]
    recovery_codes_left: i64,
    /// The methods a sign-in can use: `totp`, `webauthn`, `recovery_code`.
    #[schema(value_type = Vec<String>)]
    methods: Vec<&'static str>,
}

/// The user's second factors.
#[utoipa::path(
    get,
    path = "/auth/mfa",
    tag = tags::MFA,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The second factors", body = MfaOverviewBody),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn overview(
    State(s): State<AppState>,
    session: AuthSession,
) -> Result<Json<MfaOverviewBody>> {
    let o = s.auth.mfa_overview(session.claims.sub).await?;
    let passkeys = o
        .passkeys
        .iter()
        .map(super::passkeys::Passkey::from)
        .collect();
    Ok(Json(MfaOverviewBody {
        totp: o.totp,
        passkeys,
        recovery_codes_left: o.recovery_codes_left,
        methods: o.methods,
    }))
}

/// A new authenticator secret, pending until confirmed with a code.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpEnrolment {
    /// Base32, for typing into the app.
    secret: String,
    /// `otpauth://totp/...`, for a QR code.
    otpauth_uri: String,
}

/// Start enrolling an authenticator app (step-up).
#[utoipa::path(
    post,
    path = "/auth/mfa/totp/enroll",
    tag = tags::MFA,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The secret to enter in the app", body = TotpEnrolment),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn enroll_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<TotpEnrolment>> {
    let e = s.auth.enroll_totp(session.claims.sub, &client).await?;
    Ok(Json(TotpEnrolment {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct CodeBody {
    /// The app's current 6-digit code.
    #[schema(pattern = "^[0-9]{6}$", min_length = 6, max_length = 6)]
    code: String,
}

/// TOTP on, with the recovery codes (shown once).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmed {
    totp: bool,
    /// Ten single-use codes, shown only now.
    recovery_codes: Vec<String>,
}

/// Confirm the authenticator with a code (step-up).
#[utoipa::path(
    post,
    path = "/auth/mfa/totp/confirm",
    tag = tags::MFA,
    request_body = CodeBody,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "TOTP is on", body = TotpConfirmed),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn confirm_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
    ApiJson(b): ApiJson<CodeBody>,
) -> Result<Json<TotpConfirmed>> {
    let recovery_codes = s
        .auth
        .confirm_totp(session.claims.sub, &b.code, &client)
        .await?;
    Ok(Json(TotpConfirmed {
        totp: true,
        recovery_codes,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpRemoved {
    detail: &'static str,
    totp: bool,
}

/// Remove the authenticator app (step-up).
#[utoipa::path(
    delete,
    path = "/auth/mfa/totp",
    tag = tags::MFA,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "TOTP removed", body = TotpRemoved),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn disable_totp(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<TotpRemoved>> {
    s.auth.disable_totp(session.claims.sub, &client).await?;
    Ok(Json(TotpRemoved {
        detail: "TOTP removed",
        totp: false,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown only now; the previous set no longer works.
    recovery_codes: Vec<String>,
}

/// A new set of recovery codes, voiding the old (step-up).
#[utoipa::path(
    post,
    path = "/auth/mfa/recovery-codes",
    tag = tags::MFA,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The new codes", body = RecoveryCodes),
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn regenerate_recovery_codes(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(session): StepUp<AuthSession>,
) -> Result<Json<RecoveryCodes>> {
    let recovery_codes = s
        .auth
        .regenerate_recovery_codes(session.claims.sub, &client)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyBody {
    /// From `/auth/login` (`mfa_required: true`).
    preauth_token: String,
    /// `totp` or `recovery_code`.
    #[schema(example = "totp")]
    method: String,
    /// The app's 6-digit code, or a recovery code.
    #[schema(min_length = 1, max_length = 64)]
    code: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerified {
    detail: &'static str,
    mfa_verified: bool,
}

/// The login's second step with the user's own factor; sets the device cookie as
/// `/auth/otp/verify` does. Wrong codes count against the emailed code's limits.
#[utoipa::path(
    post,
    path = "/auth/mfa/verify",
    tag = tags::MFA,
    request_body = VerifyBody,
    responses(
        (status = 200, description = "Passed; continue with /auth/session-exchange", body = MfaVerified,
            headers(("Set-Cookie" = String, description = "The trusted-device cookie"))),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Locked,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
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
    let jar = s.trust_device(jar, &outcome);
    Ok((
        jar,
        Json(MfaVerified {
            detail: "Second factor verified",
            mfa_verified: true,
        }),
    ))
}

/// Either `{password}` or `{method, code}`.
#[derive(Deserialize, ToSchema)]
pub struct ReauthBody {
    #[serde(default)]
    #[schema(max_length = 1024)]
    password: Option<String>,
    /// `totp` or `recovery_code`.
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    #[schema(max_length = 64)]
    code: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reauthenticated {
    detail: &'static str,
    /// Seconds the renewed authentication counts for sensitive actions
    /// (`STEP_UP_MAX_AGE_MINUTES`).
    expires_in: u64,
}

/// Renew the session's authentication for sensitive actions (after 403 `reauth_required`).
#[utoipa::path(
    post,
    path = "/auth/reauth",
    tag = tags::MFA,
    request_body = ReauthBody,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Renewed", body = Reauthenticated),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn reauth(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<ReauthBody>,
) -> Result<Json<Reauthenticated>> {
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
    let expires_in = s.auth.settings().step_up_max_age.as_secs();
    Ok(Json(Reauthenticated {
        detail: "Authentication renewed",
        expires_in,
    }))
}
