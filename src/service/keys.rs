//! Names of the ephemeral keys. The guide's operators look for the first four exactly so.

use crate::domain::SessionId;

pub fn preauth(token: &str) -> String {
    format!("preauth:{token}")
}

pub fn refresh(jti: &str) -> String {
    format!("refresh:{jti}")
}

pub fn blacklist(jti: &str) -> String {
    format!("blacklist:{jti}")
}

pub fn concurrent_login_state(token: &str) -> String {
    format!("concurrent_login:state:{token}")
}

/// An emailed approve/deny link, by the hash of its token: names the approval request.
pub fn concurrent_login_link(link_hash: &str) -> String {
    format!("concurrent_login:link:{link_hash}")
}

/// Pending approval requests of one user (bounded: no prompt or email flood).
pub fn concurrent_login_pending(user_id: i64) -> String {
    format!("concurrent_login:pending:{user_id}")
}

pub fn password_reset_requests(email_hash: &str) -> String {
    format!("ratelimit:password_reset:{email_hash}")
}

/// Set when a session is revoked: kills every access token of the session at once, including
/// ones issued before its last refresh.
pub fn session_revoked(sid: SessionId) -> String {
    format!("session_revoked:{sid}")
}

/// Present while the revocation markers are complete. Its absence (Redis flushed or restarted
/// empty) makes revocation checks consult SQL until the markers are rebuilt.
pub const REVOCATION_EPOCH: &str = "revocation:epoch";
pub const REVOCATION_REBUILD_LOCK: &str = "revocation:rebuild_lock";

pub fn otp_attempts(preauth_token: &str) -> String {
    format!("otp_attempts:{preauth_token}")
}

/// Failed-login counters. The account is keyed by a hash, so emails do not sit in key names.
pub fn login_failures_account(email_hash: &str) -> String {
    format!("ratelimit:login:account:{email_hash}")
}

pub fn login_failures_ip(ip: &str) -> String {
    format!("ratelimit:login:ip:{ip}")
}

/// Wrong emailed codes of one account, across its logins.
pub fn otp_failures(user_id: i64) -> String {
    format!("ratelimit:otp_failures:{user_id}")
}

/// Emailed codes sent to one account.
pub fn otp_emails(user_id: i64) -> String {
    format!("ratelimit:otp_emails:{user_id}")
}

/// Unauthenticated requests that cost password hashing (sign-up, reset confirmation), per IP.
pub fn expensive_requests_ip(ip: &str) -> String {
    format!("ratelimit:expensive:ip:{ip}")
}

pub fn verification_resend(email_hash: &str) -> String {
    format!("ratelimit:verify_resend:{email_hash}")
}

/// A team's authorisation version: changed whenever a role, its permissions or a membership of
/// the team changes. Every instance compares it on each request before trusting its cache.
pub fn rbac_version(team_id: i64) -> String {
    format!("rbac:version:{team_id}")
}

/// A running instance and the fingerprint of its JWT key (for `doctor`).
pub fn instance(id: &str) -> String {
    format!("instance:{id}")
}

/// Held while one instance signs a team in to Virtuozzo.
pub fn virtuozzo_signin_lock(team_id: i64) -> String {
    format!("virtuozzo:signin_lock:{team_id}")
}
