//! The one place where service errors become HTTP answers: a status, a stable `code`, the
//! human `detail`, and the fields a case needs. Internal errors are logged with their cause and
//! answered opaquely.

use std::any::Any;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::service::Error;

/// The stable code of an error answer, carried to the refusal log (`http::log_refusals`).
#[derive(Debug, Clone, Copy)]
pub struct RefusalCode(pub &'static str);

/// Every error answer: `detail` and `code`, plus the fields the case needs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// A human message (the guide quotes some verbatim).
    pub detail: String,
    /// The stable machine code, e.g. `not_authenticated`, `validation_error`.
    pub code: &'static str,
    /// The invalid request field (422 `validation_error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    /// Wrong codes left before the pre-auth token is burned (401 `otp_invalid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_remaining: Option<u32>,
    /// The dependency that is down (503).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<&'static str>,
    /// The permission the caller lacks or may not grant (403).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// `pending` (423 `concurrent_login_pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PendingStatus>)]
    pub status: Option<&'static str>,
    /// The approval request to watch (423 `concurrent_login_pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// The state of a login that waits for approval.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum PendingStatus {
    Pending,
}

impl ErrorBody {
    pub fn new(detail: impl Into<String>, code: &'static str) -> Self {
        Self {
            detail: detail.into(),
            code,
            field: None,
            attempts_remaining: None,
            dependency: None,
            permission: None,
            status: None,
            token: None,
        }
    }
}

/// Seconds a client should wait before retrying when a dependency is down.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

impl Error {
    /// Status and stable machine code of each error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Error::NotAuthenticated => (S::UNAUTHORIZED, "not_authenticated"),
            Error::InvalidCredentials => (S::UNAUTHORIZED, "invalid_credentials"),
            Error::EmailNotVerified => (S::FORBIDDEN, "email_not_verified"),
            Error::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "rate_limited"),
            Error::TooManyStreams => (S::TOO_MANY_REQUESTS, "too_many_streams"),
            Error::RequestTimeout => (S::REQUEST_TIMEOUT, "request_timeout"),
            Error::PreauthExpired => (S::UNAUTHORIZED, "preauth_expired"),
            Error::OtpRequired => (S::FORBIDDEN, "otp_required"),
            Error::OtpNotPending => (S::BAD_REQUEST, "otp_not_pending"),
            Error::OtpInvalid { .. } => (S::UNAUTHORIZED, "otp_invalid"),
            Error::PasskeyInvalid { .. } => (S::UNAUTHORIZED, "passkey_invalid"),
            Error::OtpAttemptsExceeded => (S::UNAUTHORIZED, "otp_attempts_exceeded"),
            Error::MfaRequired => (S::FORBIDDEN, "mfa_required"),
            Error::MfaNotPending => (S::BAD_REQUEST, "mfa_not_pending"),
            Error::ReauthRequired => (S::FORBIDDEN, "reauth_required"),
            Error::ReauthFailed => (S::FORBIDDEN, "reauth_failed"),
            Error::MfaNotConfigured => (S::SERVICE_UNAVAILABLE, "mfa_not_configured"),
            Error::ConcurrentLoginPending { .. } => (S::LOCKED, "concurrent_login_pending"),
            Error::ConcurrentLoginDenied => (S::FORBIDDEN, "concurrent_login_denied"),
            Error::AlreadyDecided => (S::CONFLICT, "already_decided"),
            Error::SelfApproval => (S::FORBIDDEN, "self_approval_forbidden"),
            Error::TokenInvalid => (S::BAD_REQUEST, "token_invalid"),
            Error::SessionExpired => (S::UNAUTHORIZED, "session_expired"),
            Error::RefreshTokenReused => (S::UNAUTHORIZED, "refresh_token_reused"),
            Error::CsrfMismatch => (S::FORBIDDEN, "csrf_mismatch"),
            Error::NotMember => (S::FORBIDDEN, "not_member"),
            Error::MissingPermission(_) => (S::FORBIDDEN, "missing_permission"),
            Error::UserNotFound => (S::NOT_FOUND, "user_not_found"),
            Error::MemberNotFound => (S::NOT_FOUND, "member_not_found"),
            Error::RoleNotFound => (S::NOT_FOUND, "role_not_found"),
            Error::InviteNotFound => (S::NOT_FOUND, "invite_not_found"),
            Error::ApprovalNotFound => (S::NOT_FOUND, "approval_not_found"),
            Error::SessionNotFound => (S::NOT_FOUND, "session_not_found"),
            Error::PrivilegeEscalation(_) => (S::FORBIDDEN, "privilege_escalation"),
            Error::InviteEmailMismatch => (S::FORBIDDEN, "invite_email_mismatch"),
            Error::MfaRequiredByTeam => (S::FORBIDDEN, "mfa_required_by_team"),
            Error::Conflict { code, .. } => (S::CONFLICT, code),
            Error::Validation { .. } => (S::UNPROCESSABLE_ENTITY, "validation_error"),
            Error::WeakPassword { .. } => (S::UNPROCESSABLE_ENTITY, "password_too_weak"),
            Error::BadRequest(_) => (S::BAD_REQUEST, "bad_request"),
            Error::NotFound => (S::NOT_FOUND, "not_found"),
            Error::MethodNotAllowed => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Error::PayloadTooLarge => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Error::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "service_unavailable"),
            Error::VirtuozzoRefreshFailed => (S::SERVICE_UNAVAILABLE, "virtuozzo_refresh_failed"),
            Error::VirtuozzoNotConfigured => (S::SERVICE_UNAVAILABLE, "virtuozzo_not_configured"),
            Error::OwnerOnly => (S::FORBIDDEN, "owner_only"),
            Error::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            Error::Internal(cause) => {
                tracing::error!(event = "internal_error", error = ?cause);
                "Internal server error".to_owned()
            }
            Error::Unavailable(dependency) => {
                tracing::warn!(event = "dependency_unavailable", dependency);
                "Service temporarily unavailable".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = ErrorBody::new(detail, code);
        let mut retry_after = None;
        match &self {
            Error::RateLimited { retry_after: wait } => {
                retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
            Error::Unavailable(dependency) => {
                body.dependency = Some(dependency);
                retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECS);
            }
            Error::VirtuozzoRefreshFailed | Error::VirtuozzoNotConfigured => {
                body.dependency = Some("virtuozzo");
                retry_after = Some(UNAVAILABLE_RETRY_AFTER_SECS);
            }
            Error::ConcurrentLoginPending { token } => {
                body.status = Some("pending");
                body.token = Some(token.clone());
            }
            Error::OtpInvalid { attempts_remaining } => {
                body.attempts_remaining = Some(*attempts_remaining)
            }
            Error::PasskeyInvalid {
                attempts_remaining: Some(n),
            } => body.attempts_remaining = Some(*n),
            Error::MissingPermission(slug) | Error::PrivilegeEscalation(slug) => {
                body.permission = Some(slug.clone())
            }
            Error::Validation { field, .. } | Error::WeakPassword { field, .. } => {
                body.field = Some(field)
            }
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(RefusalCode(code));
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub async fn not_found() -> Error {
    Error::NotFound
}

pub async fn method_not_allowed() -> Error {
    Error::MethodNotAllowed
}

/// A panic in a handler becomes an opaque 500 (the server keeps running).
pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!(event = "handler_panicked");
    let body = ErrorBody::new("Internal server error", "internal_error");
    (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_messages_and_codes() {
        let cases = [
            (Error::NotAuthenticated, 401, "Not authenticated"),
            (Error::CsrfMismatch, 403, "CSRF token mismatch"),
            (Error::NotMember, 403, "Not a member of team"),
            (
                Error::MissingPermission("audit.read".into()),
                403,
                "Missing permission: audit.read",
            ),
            (Error::UserNotFound, 404, "User not found"),
            (Error::PreauthExpired, 401, "Pre-auth token expired"),
            (Error::TokenInvalid, 400, "Token expired or invalid"),
        ];
        for (error, status, detail) in cases {
            assert_eq!(error.status_and_code().0.as_u16(), status);
            assert_eq!(error.to_string(), detail);
        }
    }

    #[test]
    fn internal_errors_are_opaque() {
        let response = Error::Internal(anyhow::anyhow!("password=hunter2 in SQL")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
