//! The documented error answers, one type per status, all with the shared [`ErrorBody`]
//! schema. An operation lists the ones it can really return:
//! `responses((status = 200, body = X), errors::Unauthorized, errors::Unavailable)`.

use utoipa::IntoResponses;

use crate::http::error::ErrorBody;

/// Malformed request: invalid JSON, a bad path or query parameter (`bad_request`), or an
/// emailed token that is expired, used or unknown (`token_invalid`).
#[derive(IntoResponses)]
#[response(status = 400)]
pub struct BadRequest(pub ErrorBody);

/// Not authenticated or wrong credentials: `not_authenticated`, `invalid_credentials`,
/// `session_expired`, `refresh_token_reused`, `preauth_expired`, `otp_invalid`
/// (with `attempts_remaining`), `otp_attempts_exceeded`.
#[derive(IntoResponses)]
#[response(status = 401)]
pub struct Unauthorized(pub ErrorBody);

/// Refused: `csrf_mismatch`, `not_member`, `missing_permission` / `privilege_escalation`
/// (with `permission`), `owner_only`, `email_not_verified`, `otp_required`,
/// `concurrent_login_denied`, `self_approval_forbidden`, `invite_email_mismatch`,
/// `reauth_required` (a sensitive action needs `POST /auth/reauth` first).
#[derive(IntoResponses)]
#[response(status = 403)]
pub struct Forbidden(pub ErrorBody);

/// Not found: `not_found`, `user_not_found`, `member_not_found`, `role_not_found`,
/// `invite_not_found`, `approval_not_found`, `session_not_found`.
#[derive(IntoResponses)]
#[response(status = 404)]
pub struct NotFound(pub ErrorBody);

/// Conflict: `already_decided`, `last_owner`, `already_member`, `role_name_taken`,
/// `builtin_role_immutable`.
#[derive(IntoResponses)]
#[response(status = 409)]
pub struct Conflict(pub ErrorBody);

/// The request body is larger than 16 KiB (`payload_too_large`).
#[derive(IntoResponses)]
#[response(status = 413)]
pub struct PayloadTooLarge(pub ErrorBody);

/// The body is not `application/json` (`unsupported_media_type`).
#[derive(IntoResponses)]
#[response(status = 415)]
pub struct UnsupportedMediaType(pub ErrorBody);

/// A field is missing, mistyped or invalid (`validation_error`, with `field`; `body` when the
/// JSON does not have the request's shape); `password_too_weak` (with `field`).
#[derive(IntoResponses)]
#[response(status = 422)]
pub struct Unprocessable(pub ErrorBody);

/// Another session must approve this login first (`concurrent_login_pending`, with
/// `status: pending` and the approval `token` to watch).
#[derive(IntoResponses)]
#[response(status = 423)]
pub struct Locked(pub ErrorBody);

/// Too many attempts (`rate_limited`, `too_many_streams`); wait `Retry-After` seconds.
#[derive(IntoResponses)]
#[response(
    status = 429,
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub struct TooManyRequests(pub ErrorBody);

/// A dependency is down (`service_unavailable`, `virtuozzo_refresh_failed`,
/// `virtuozzo_not_configured`, with `dependency`); retry after `Retry-After` seconds.
#[derive(IntoResponses)]
#[response(
    status = 503,
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(pub ErrorBody);

/// Every refusal of a JSON body: invalid JSON (400), too large (413), not JSON (415),
/// wrong shape or invalid field (422).
#[derive(IntoResponses)]
pub enum JsonBody {
    /// Invalid JSON (`bad_request`) or an emailed token that is expired, used or unknown
    /// (`token_invalid`).
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// The request body is larger than 16 KiB (`payload_too_large`).
    #[response(status = 413)]
    PayloadTooLarge(ErrorBody),
    /// The body is not `application/json` (`unsupported_media_type`).
    #[response(status = 415)]
    UnsupportedMediaType(ErrorBody),
    /// A field is missing, mistyped or invalid (`validation_error`, with `field`; `body` when
    /// the JSON does not have the request's shape).
    #[response(status = 422)]
    Unprocessable(ErrorBody),
}
