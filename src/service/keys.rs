//! Names of the ephemeral keys. The guide's operators look for the first four exactly so.

use crate::domain::{SessionId, TeamId, TokenHash, UserId};

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
pub fn concurrent_login_link(link_hash: &TokenHash) -> String {
    format!("concurrent_login:link:{}", link_hash.as_str())
}

/// One of a user's few pending-approval slots (bounded: no prompt or email flood); holds the
/// approval token and expires with its request.
pub fn concurrent_login_pending(user_id: UserId, slot: u32) -> String {
    format!("concurrent_login:pending:{user_id}:{slot}")
}

pub fn password_reset_requests(email_hash: &str) -> String {
    format!("ratelimit:password_reset:{email_hash}")
}

/// A passkey registration ceremony in progress (webauthn-rs state, 5 min).
pub fn passkey_registration(ceremony: &str) -> String {
    format!("passkey:registration:{ceremony}")
}

/// The WebAuthn challenge of a login's second factor (expires with the pre-auth token).
pub fn passkey_login(preauth_token: &str) -> String {
    format!("passkey:login:{preauth_token}")
}

pub fn otp_attempts(preauth_token: &str) -> String {
    format!("otp_attempts:{preauth_token}")
}

/// Failed-login counters. The account is keyed by a hash, so emails do not sit in key names.
pub fn login_failures_account(email_hash: &str) -> String {
    format!("ratelimit:login:account:{email_hash}")
}

pub fn login_failures_ip(ip: &str) -> String {
    format!("ratelimit:login:ip:{}", ip_bucket(ip))
}

/// Password verifications (right or wrong) per client network: bounds argon2 work per client.
pub fn login_verifications_ip(ip: &str) -> String {
    format!("ratelimit:login_verify:ip:{}", ip_bucket(ip))
}

/// Unauthenticated requests that email an address (reset, verification resend), per client.
pub fn email_requests_ip(ip: &str) -> String {
    format!("ratelimit:email_requests:ip:{}", ip_bucket(ip))
}

/// Set while a rate-limit audit row for `limit_key` has been written in its window.
pub fn rate_limit_audited(limit_key: &str) -> String {
    format!("ratelimit:audited:{limit_key}")
}

/// Invites created per team, per inviter and per invited address.
pub fn invites_team(team_id: TeamId) -> String {
    format!("ratelimit:invites:team:{team_id}")
}

pub fn invites_inviter(user_id: UserId) -> String {
    format!("ratelimit:invites:inviter:{user_id}")
}

pub fn invites_address(email_hash: &str) -> String {
    format!("ratelimit:invites:address:{email_hash}")
}

/// "Already registered" notices sent to one address.
pub fn registered_notices(email_hash: &str) -> String {
    format!("ratelimit:registered_notice:{email_hash}")
}

/// The last failed Virtuozzo sign-in of a team (epoch ms), shown by its status.
/// Present while a 403 "Missing permission" of this user, team and permission was audited
/// recently: one audit row per window, however often the request is repeated.
pub fn permission_refusal_audited(user_id: UserId, team_id: TeamId, permission: &str) -> String {
    format!("audit:permission_denied:{user_id}:{team_id}:{permission}")
}

pub fn virtuozzo_refresh_failed(team_id: TeamId) -> String {
    format!("virtuozzo:refresh_failed:{team_id}")
}

/// The network a client address counts for: an IPv4 address itself, an IPv6 address by its
/// /64 (one subscriber usually holds a whole /64, so per-address keys would be unlimited).
pub fn ip_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        },
        Ok(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// Wrong emailed codes of one account, across its logins.
pub fn otp_failures(user_id: UserId) -> String {
    format!("ratelimit:otp_failures:{user_id}")
}

/// Emailed codes sent to one account.
pub fn otp_emails(user_id: UserId) -> String {
    format!("ratelimit:otp_emails:{user_id}")
}

/// Unauthenticated requests that cost password hashing (sign-up, reset confirmation), per IP.
pub fn expensive_requests_ip(ip: &str) -> String {
    format!("ratelimit:expensive:ip:{}", ip_bucket(ip))
}

pub fn verification_resend(email_hash: &str) -> String {
    format!("ratelimit:verify_resend:{email_hash}")
}

/// The live event streams of one user, and of one of their sessions (bounded sets; one hash
/// tag, so both live in one Redis Cluster slot).
pub fn event_streams_of_user(user_id: UserId) -> String {
    format!("events:streams:{{user:{user_id}}}")
}

pub fn event_streams_of_session(user_id: UserId, sid: SessionId) -> String {
    format!("events:streams:{{user:{user_id}}}:session:{sid}")
}

/// A running instance and the fingerprint of its JWT key (for `doctor`).
pub fn instance(id: &str) -> String {
    format!("instance:{id}")
}

/// Held while one instance signs a team in to Virtuozzo.
pub fn virtuozzo_signin_lock(team_id: TeamId) -> String {
    format!("virtuozzo:signin_lock:{team_id}")
}

#[cfg(test)]
mod tests {
    use super::ip_bucket;

    #[test]
    fn ipv6_counts_by_its_64() {
        assert_eq!(ip_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            ip_bucket("2001:db8:1:2:ffff::9"),
            ip_bucket("2001:db8:1:2::1")
        );
        assert_ne!(ip_bucket("2001:db8:1:3::1"), ip_bucket("2001:db8:1:2::1"));
        assert_eq!(ip_bucket("203.0.113.7"), "203.0.113.7");
        assert_eq!(ip_bucket("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
