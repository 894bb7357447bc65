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

/// The live event streams of one user, and of one of their sessions (bounded sets; one hash
/// tag, so both live in one Redis Cluster slot).
pub fn event_streams_of_user(user_id: i64) -> String {
    format!("events:streams:{{user:{user_id}}}")
}

pub fn event_streams_of_session(user_id: i64, sid: SessionId) -> String {
    format!("events:streams:{{user:{user_id}}}:session:{sid}")
}

/// A running instance and the fingerprint of its JWT key (for `doctor`).
pub fn instance(id: &str) -> String {
    format!("instance:{id}")
}

/// Held while one instance signs a team in to Virtuozzo.
pub fn virtuozzo_signin_lock(team_id: i64) -> String {
    format!("virtuozzo:signin_lock:{team_id}")
}
