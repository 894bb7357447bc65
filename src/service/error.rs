//! The one error type of the service layer. `http::error` maps it to status codes and the
//! `{"detail","code"}` body in one place.

use std::time::Duration;

use super::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Not authenticated")]
    NotAuthenticated,
    #[error("Invalid email or password")]
    InvalidCredentials,
    #[error("Email address not verified")]
    EmailNotVerified,
    #[error("Too many attempts")]
    RateLimited { retry_after: Duration },
    #[error("Too many open event streams; close another tab or window")]
    TooManyStreams,
    #[error("Request timed out")]
    RequestTimeout,
    #[error("Pre-auth token expired")]
    PreauthExpired,
    #[error("Email verification code required")]
    OtpRequired,
    #[error("No verification code is pending for this sign-in")]
    OtpNotPending,
    #[error("Invalid verification code")]
    OtpInvalid { attempts_remaining: u32 },
    #[error("The passkey was not accepted")]
    PasskeyInvalid { attempts_remaining: Option<u32> },
    #[error("Too many invalid codes; sign in again")]
    OtpAttemptsExceeded,
    #[error("Second factor required")]
    MfaRequired,
    #[error("No second-factor check is pending for this sign-in")]
    MfaNotPending,
    #[error("Recent authentication required: confirm your password or a second factor")]
    ReauthRequired,
    #[error("Password or code is incorrect")]
    ReauthFailed,
    #[error("Second factors are not configured (MFA_SECRET_KEY)")]
    MfaNotConfigured,
    #[error("Concurrent login approval pending")]
    ConcurrentLoginPending { token: String },
    #[error("Login denied by an existing session")]
    ConcurrentLoginDenied,
    #[error("The request was already decided")]
    AlreadyDecided,
    #[error("Only a session that existed before the request can decide it")]
    SelfApproval,
    #[error("Token expired or invalid")]
    TokenInvalid,
    #[error("Session expired or revoked")]
    SessionExpired,
    #[error("Session revoked: refresh token reuse detected")]
    RefreshTokenReused,
    #[error("CSRF token mismatch")]
    CsrfMismatch,
    #[error("Not a member of team")]
    NotMember,
    #[error("Missing permission: {0}")]
    MissingPermission(String),
    #[error("User not found")]
    UserNotFound,
    #[error("Member not found")]
    MemberNotFound,
    #[error("Role not found")]
    RoleNotFound,
    #[error("Invite not found")]
    InviteNotFound,
    #[error("Approval request not found or expired")]
    ApprovalNotFound,
    #[error("Session not found")]
    SessionNotFound,
    #[error("Cannot grant a permission you do not hold: {0}")]
    PrivilegeEscalation(String),
    #[error("This invite is for another email address")]
    InviteEmailMismatch,
    #[error("{detail}")]
    Conflict {
        code: &'static str,
        detail: &'static str,
    },
    #[error("{message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// A new password that is easy to guess or known from breaches.
    #[error("{message}")]
    WeakPassword {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("Not found")]
    NotFound,
    #[error("Method not allowed")]
    MethodNotAllowed,
    #[error("Request body too large")]
    PayloadTooLarge,
    #[error("Expected a JSON body (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("Virtuozzo session refresh failed")]
    VirtuozzoRefreshFailed,
    #[error("Virtuozzo is not configured (VZ_CREDENTIALS_KEY)")]
    VirtuozzoNotConfigured,
    #[error("This team requires a second factor (TOTP or a passkey); set one up first")]
    MfaRequiredByTeam,
    #[error("Only the team Owner can do this")]
    OwnerOnly,
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        Error::Validation {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable { dependency, .. } => Error::Unavailable(dependency),
            StoreError::Other(e) => Error::Internal(e),
        }
    }
}
