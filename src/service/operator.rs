//! What an operator does from the command line: look at and clear rate limits, list and decide
//! pending approvals, take a CSRF pair apart, and tell why a user was logged out or cannot log
//! in. Every change is audited.

use std::time::Duration;

use serde_json::Value;

use super::diagnostics::{relative, revoked_reason_words};
use super::ports::{LinkTokenState, OutboxState, SessionRecord};
use super::{Auth, ClientInfo, Error, Result, keys, tokens};
use crate::domain::email::Email;
use crate::domain::time::{Millis, ms, rfc3339};
use crate::domain::{SessionId, TeamId, UserId};

/// Whose counters: an account (by its normalised email) or a client address.
pub enum RateLimitSubject {
    Account { email: Email },
    Address { ip: String },
}

impl RateLimitSubject {
    /// An IP address (v4 or v6), or else an email address.
    pub fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.parse::<std::net::IpAddr>().is_ok() {
            return Ok(RateLimitSubject::Address { ip: raw.to_owned() });
        }
        let email = Email::parse(raw).map_err(|e| Error::validation("email", e.0))?;
        Ok(RateLimitSubject::Account { email })
    }

    fn describe(&self) -> String {
        match self {
            RateLimitSubject::Account { email } => email.as_str().to_owned(),
            RateLimitSubject::Address { ip } => keys::ip_bucket(ip),
        }
    }
}

/// One counter of a subject, as it is now.
pub struct RateLimitCounter {
    pub key: String,
    /// What it counts, in words.
    pub counts: &'static str,
    /// The count; `None` when the key holds something else than a number.
    pub value: Option<i64>,
    /// The most the window allows, when it is a setting.
    pub limit: Option<u32>,
    pub ttl: Option<Duration>,
}

impl RateLimitCounter {
    pub fn blocking(&self) -> bool {
        matches!((self.value, self.limit), (Some(v), Some(l)) if v >= i64::from(l))
    }
}

/// A CSRF pair explained, with the session it is bound to.
pub struct CsrfReport {
    pub explanation: super::tokens::CsrfExplanation,
    pub session: Option<SessionRecord>,
    /// `verify_csrf`'s verdict for the session the token names.
    pub accepted: bool,
    /// The cause of a refusal and the fix, in words.
    pub cause: String,
    pub fix: &'static str,
}

/// One line of a user's story: when, what happened, why, and what to do.
pub struct WhyEntry {
    pub at: Millis,
    pub what: String,
    pub fix: Option<&'static str>,
}

/// The answer to "why was I logged out / why can't I log in".
pub struct WhyReport {
    pub user_id: UserId,
    pub email: String,
    /// Standing problems of the account (deleted, unverified), each with its fix.
    pub standing: Vec<(String, &'static str)>,
    /// Each team of the user with the role held and that role's permissions (what a 403
    /// "Missing permission" is decided on).
    pub teams: Vec<TeamStanding>,
    pub entries: Vec<WhyEntry>,
}

pub struct TeamStanding {
    pub team_id: TeamId,
    pub team_name: String,
    pub role_name: String,
    pub permissions: Vec<String>,
}

const FIX_WAIT: &str = "Wait for the window to pass (LOGIN_RATE_LIMIT_WINDOW_SECONDS, 5 minutes by default), or `mbpanel-auth ratelimit clear <email|ip>`";
const FIX_APPROVE: &str = "Approve from existing session (or the emailed link), or `mbpanel-auth approvals decide <token> approve`; `mbpanel-auth approvals list <email>` shows the requests";
const FIX_RELOGIN: &str = "User must re-login";

impl Auth {
    fn counter_keys(&self, subject: &RateLimitSubject) -> Vec<(String, &'static str, Option<u32>)> {
        let s = &self.settings;
        match subject {
            RateLimitSubject::Account { email } => {
                let hash = tokens::hash_token(email.as_str());
                vec![
                    (
                        keys::login_failures_account(&hash),
                        "failed sign-ins of the account",
                        Some(s.login_rate_limit_attempts),
                    ),
                    (
                        keys::password_reset_requests(&hash),
                        "password-reset requests",
                        None,
                    ),
                    (
                        keys::verification_resend(&hash),
                        "verification emails resent",
                        None,
                    ),
                    (
                        keys::registered_notices(&hash),
                        "\"already registered\" notices",
                        Some(s.registered_notice_limit_per_day),
                    ),
                    (
                        keys::invites_address(&hash),
                        "invites to the address",
                        Some(s.invite_rate_limit_per_address),
                    ),
                ]
            }
            RateLimitSubject::Address { ip } => vec![
                (
                    keys::login_failures_ip(ip),
                    "failed sign-ins from the address",
                    Some(s.login_rate_limit_ip_attempts),
                ),
                (
                    keys::login_verifications_ip(ip),
                    "password checks from the address",
                    Some(s.login_rate_limit_ip_verifications),
                ),
                (
                    keys::email_requests_ip(ip),
                    "email-sending requests from the address",
                    Some(s.email_request_rate_limit_ip),
                ),
                (
                    keys::expensive_requests_ip(ip),
                    "sign-ups and reset confirmations from the address",
                    None,
                ),
            ],
        }
    }

    /// Every counter of the subject (by the very key names the limits use), with its count
    /// and time left; for an account also its emailed-code counters.
    pub async fn rate_limit_counters(
        &self,
        subject: &RateLimitSubject,
    ) -> Result<Vec<RateLimitCounter>> {
        let mut wanted = self.counter_keys(subject);
        if let RateLimitSubject::Account { email } = subject
            && let Some(user) = self.repo.user_by_email(email.as_str()).await?
        {
            wanted.push((
                keys::otp_failures(user.id),
                "wrong emailed codes (10 per 15 minutes)",
                Some(10),
            ));
            wanted.push((
                keys::otp_emails(user.id),
                "emailed codes sent (10 per 15 minutes)",
                Some(10),
            ));
        }
        let mut found = Vec::new();
        for (key, counts, limit) in wanted {
            if let Some(raw) = self.store.get(&key).await? {
                found.push(RateLimitCounter {
                    ttl: self.store.ttl(&key).await?,
                    value: raw.parse().ok(),
                    key,
                    counts,
                    limit,
                });
            }
        }
        Ok(found)
    }

    /// Deletes every counter of the subject (and its "already audited" marker); audited.
    pub async fn clear_rate_limits(
        &self,
        subject: &RateLimitSubject,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        let counters = self.rate_limit_counters(subject).await?;
        let mut cleared = Vec::new();
        for c in &counters {
            if self.store.delete(&c.key).await? {
                cleared.push(c.key.clone());
            }
            self.store.delete(&keys::rate_limit_audited(&c.key)).await?;
        }
        let user_id = match subject {
            RateLimitSubject::Account { email } => {
                self.repo.user_by_email(email.as_str()).await?.map(|u| u.id)
            }
            RateLimitSubject::Address { .. } => None,
        };
        self.audit(
            "rate_limit_cleared",
            user_id,
            None,
            client,
            serde_json::json!({ "subject": subject.describe(), "counters": cleared.len(), "by": "operator" }),
        )
        .await;
        Ok(cleared)
    }

    /// Takes a CSRF cookie/header pair apart and judges it for the session it names, as the
    /// server's CSRF guard would.
    pub async fn explain_csrf(&self, cookie: &str, header: &str) -> Result<CsrfReport> {
        let (cookie, header) = (cookie.trim(), header.trim());
        let explanation = self.keys.explain_csrf(cookie, header);
        let session = match explanation.session_id {
            Some(sid) if explanation.signature_ok => self.repo.session(sid).await?,
            _ => None,
        };
        let now = self.now_ms();
        let (cause, fix): (String, &'static str) = if cookie.is_empty() {
            (
                "the mbpanel_csrf cookie is not sent".into(),
                "Ensure cookies are sent: credentials: 'include'; check cookie domain/path settings (COOKIE_DOMAIN)",
            )
        } else if header.is_empty() {
            (
                "the X-CSRF-Token header is not sent".into(),
                "Set CSRF header: headers: {'X-CSRF-Token': csrfCookie}",
            )
        } else if !explanation.equal {
            (
                "the X-CSRF-Token header differs from the mbpanel_csrf cookie".into(),
                "Set CSRF header from the current cookie (after a refresh the cookie changes): headers: {'X-CSRF-Token': csrfCookie}",
            )
        } else if explanation.session_id.is_none() {
            (
                "not a CSRF token of this service (expected <session>.<expiry>.<nonce>.<signature>)".into(),
                "Re-login to get fresh CSRF token",
            )
        } else if !explanation.signature_ok {
            (
                "the token's signature does not match this service's key (JWT_SECRET_KEY changed, or another service's token)".into(),
                "Re-login to get fresh CSRF token; check JWT_SECRET_KEY is consistent",
            )
        } else if explanation.expires_at.is_some_and(|at| at <= now) {
            (
                "the CSRF token has expired".into(),
                "Re-login to get fresh CSRF token (a refresh renews it)",
            )
        } else {
            match &session {
                None => (
                    "the session the token is bound to does not exist".into(),
                    "Re-login to get fresh CSRF token",
                ),
                Some(s) if s.revoked_at.is_some() || s.expires_at <= now => (
                    format!(
                        "session {} has ended: the access token is refused before CSRF matters",
                        s.id
                    ),
                    FIX_RELOGIN,
                ),
                Some(_) => (String::new(), ""),
            }
        };
        let accepted = match explanation.session_id {
            Some(sid) => self.keys.verify_csrf(cookie, header, sid, now) && cause.is_empty(),
            None => false,
        };
        Ok(CsrfReport {
            explanation,
            session,
            accepted,
            cause,
            fix,
        })
    }

    /// A user's recent story from the audit log and their sessions, newest first.
    pub async fn why(&self, email: &str) -> Result<WhyReport> {
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        let user = self
            .repo
            .user_by_email(email.as_str())
            .await?
            .ok_or(Error::UserNotFound)?;
        let mut standing = Vec::new();
        if let Some(at) = user.deleted_at {
            standing.push((
                format!("the user was deleted at {}: sign-in is refused and the API answers 404 User not found", rfc3339(at)),
                "Check user is not soft-deleted: `mbpanel-auth user restore <email>`",
            ));
        }
        if user.email_verified_at.is_none() {
            standing.push((
                "the email address is not verified: sign-in answers 403 \"Email address not verified\"".into(),
                "Request new verification email (the sign-in page offers it); check EMAIL_BACKEND and BASE_URL",
            ));
        }
        let mut teams = Vec::new();
        for m in self.repo.memberships(user.id).await? {
            let access = self.team_access(user.id, m.team_id).await?;
            teams.push(TeamStanding {
                team_id: m.team_id,
                team_name: m.team_name,
                role_name: m.role_name,
                permissions: access.permissions.clone(),
            });
        }
        let mut entries = Vec::new();
        for email in self.repo.recent_emails(&user.email, 10).await? {
            entries.push(email_words(&email));
        }
        let now = self.now_ms();
        for link in self.repo.recent_link_tokens(user.id, 10).await? {
            entries.push(link_words(&link, now));
        }
        // The Owner answers for the team's Virtuozzo account: its refreshes and failures.
        for t in teams.iter().filter(|t| t.role_name == "Owner") {
            for record in self.repo.team_audit(t.team_id, None, 50).await? {
                if !record.event.starts_with("virtuozzo_") {
                    continue;
                }
                let details: Value = serde_json::from_str(&record.details).unwrap_or(Value::Null);
                if let Some((what, fix)) = audit_words(&record.event, &details, None) {
                    entries.push(WhyEntry {
                        at: record.at,
                        what: format!("team {}: {what}", t.team_id),
                        fix,
                    });
                }
            }
        }
        for record in self.repo.user_audit(user.id, None, 100).await? {
            let details: Value = serde_json::from_str(&record.details).unwrap_or(Value::Null);
            if let Some((what, fix)) =
                audit_words(&record.event, &details, record.ip_address.as_deref())
            {
                entries.push(WhyEntry {
                    at: record.at,
                    what,
                    fix,
                });
            }
        }
        let idle = ms(self.settings.refresh_idle_timeout);
        for (s, reason) in self.repo.recent_sessions(user.id, 20).await? {
            entries.push(session_words(&s, reason.as_deref(), now, idle));
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.at));
        Ok(WhyReport {
            user_id: user.id,
            email: user.email,
            standing,
            teams,
            entries,
        })
    }
}

/// An email to the user and whether it left: the answer to "OTP not received".
fn email_words(e: &OutboxState) -> WhyEntry {
    use super::emails::{
        TEMPLATE_ALREADY_REGISTERED, TEMPLATE_CONCURRENT_LOGIN, TEMPLATE_EMAIL_VERIFICATION,
        TEMPLATE_LOGIN_CODE, TEMPLATE_PASSWORD_RESET, TEMPLATE_TEAM_INVITE,
    };
    let what = match e.kind.as_str() {
        TEMPLATE_LOGIN_CODE => "a sign-in code (OTP) email",
        TEMPLATE_EMAIL_VERIFICATION => "a verification email",
        TEMPLATE_PASSWORD_RESET => "a password-reset email",
        TEMPLATE_CONCURRENT_LOGIN => "a concurrent-login approval email",
        TEMPLATE_TEAM_INVITE => "an invitation email",
        TEMPLATE_ALREADY_REGISTERED => "an \"already registered\" notice",
        _ => "an email",
    };
    let kind = &e.kind;
    match e.status.as_str() {
        "sent" => WhyEntry {
            at: e.sent_at.unwrap_or(e.created_at),
            what: format!("{what} ({kind}) was handed to the email provider"),
            fix: Some(
                "If it did not arrive: check spam folder; check email address is valid; the provider's activity log has it",
            ),
        },
        "failed" => WhyEntry {
            at: e.created_at,
            what: format!(
                "{what} ({kind}) was NOT sent: gave up after {} attempts ({})",
                e.attempts,
                e.last_error.as_deref().unwrap_or("no error kept")
            ),
            fix: Some(FIX_EMAIL),
        },
        _ if e.last_error.is_some() => WhyEntry {
            at: e.created_at,
            what: format!(
                "{what} ({kind}) is not sent yet: {} failed attempts, last error {} (retried by itself)",
                e.attempts,
                e.last_error.as_deref().unwrap_or_default()
            ),
            fix: Some(FIX_EMAIL),
        },
        _ => WhyEntry {
            at: e.created_at,
            what: format!("{what} ({kind}) is queued, not sent yet"),
            fix: Some("Wait a few seconds; `mbpanel-auth doctor` checks the email backend"),
        },
    }
}

const FIX_EMAIL: &str = "Check Postmark API key is valid (POSTMARK_SERVER_TOKEN) and template ID is correct, or SMTP_URL; `mbpanel-auth doctor` checks the backend; grep email_send_failed in the logs";

/// An emailed link's state: the answer to "Token expired or invalid".
fn link_words(l: &LinkTokenState, now: Millis) -> WhyEntry {
    let (what, setting) = match l.kind {
        "verification" => ("verification link", "EMAIL_VERIFICATION_TOKEN_TTL_HOURS"),
        _ => ("password-reset link", "PASSWORD_RESET_TOKEN_TTL_MINUTES"),
    };
    let (state, fix) = match l.used_at {
        Some(at) => (
            format!(
                "used at {}: it cannot be used again (\"Token expired or invalid\")",
                rfc3339(at)
            ),
            Some(if l.kind == "verification" {
                "Request new verification email if the address is still unverified"
            } else {
                "Request a new reset link (\"Forgot password\")"
            }),
        ),
        None if l.expires_at <= now => (
            format!(
                "expired at {} unused (\"Token expired or invalid\"; lifetime {setting})",
                rfc3339(l.expires_at)
            ),
            Some(if l.kind == "verification" {
                "Request new verification email; check BASE_URL setting and that the link is not truncated"
            } else {
                "Request a new reset link (\"Forgot password\")"
            }),
        ),
        None => (
            format!(
                "valid until {} ({})",
                rfc3339(l.expires_at),
                relative(l.expires_at, now)
            ),
            None,
        ),
    };
    WhyEntry {
        at: l.created_at,
        what: format!("a {what} was issued; {state}"),
        fix,
    }
}

fn session_words(s: &SessionRecord, reason: Option<&str>, now: Millis, idle: Millis) -> WhyEntry {
    let device = s.user_agent.as_deref().unwrap_or("unknown device");
    let ip = s.ip_address.as_deref().unwrap_or("unknown address");
    let name = |id: SessionId| format!("session {id} ({device}, {ip})");
    match s.revoked_at {
        Some(at) => WhyEntry {
            at,
            what: format!(
                "{} revoked ({}): {}",
                name(s.id),
                reason.unwrap_or("no reason recorded"),
                reason.map_or("see the events around it", revoked_reason_words)
            ),
            fix: Some(FIX_RELOGIN),
        },
        None if s.expires_at <= now => WhyEntry {
            at: s.expires_at,
            what: format!(
                "{} expired: it reached its absolute lifetime (REFRESH_TOKEN_TTL_DAYS)",
                name(s.id)
            ),
            fix: Some(FIX_RELOGIN),
        },
        None if s.last_seen_at + idle <= now => WhyEntry {
            at: s.last_seen_at + idle,
            what: format!(
                "{} timed out: unused for REFRESH_IDLE_TIMEOUT_MINUTES since {}",
                name(s.id),
                rfc3339(s.last_seen_at)
            ),
            fix: Some(
                "User must re-login; check REFRESH_IDLE_TIMEOUT_MINUTES if this happens often",
            ),
        },
        None => WhyEntry {
            at: s.last_seen_at,
            what: format!(
                "{} is active (team {}, last seen {}, {})",
                name(s.id),
                s.team_id,
                rfc3339(s.last_seen_at),
                relative(s.last_seen_at, now)
            ),
            fix: None,
        },
    }
}

/// An audit event in plain words, with what to do about it; `None` for events that do not
/// explain a sign-in or a sign-out.
fn audit_words(event: &str, d: &Value, ip: Option<&str>) -> Option<(String, Option<&'static str>)> {
    let from = ip.map(|ip| format!(" from {ip}")).unwrap_or_default();
    let sid = d
        .get("session_id")
        .and_then(Value::as_i64)
        .map(|s| format!(" (session {s})"))
        .unwrap_or_default();
    Some(match event {
        "login_succeeded" => (format!("signed in{from}{sid}"), None),
        "login_password_verified" => {
            let code = if d.get("otp_required") == Some(&Value::Bool(true)) {
                ": unknown device, an emailed code was required"
            } else if d.get("mfa_required") == Some(&Value::Bool(true)) {
                ": unknown device, the second factor (TOTP or a recovery code) was required"
            } else {
                ": trusted device, no code needed"
            };
            (format!("password accepted{from}{code}"), None)
        }
        "login_failed" => (
            format!("sign-in refused{from}: wrong email or password"),
            Some(
                "Check the password (a reset link: \"Forgot password\"); repeated failures block the account for the rate-limit window",
            ),
        ),
        "login_rate_limited" | "rate_limited" => {
            let limit = d.get("limit").and_then(Value::as_str).unwrap_or("a limit");
            (
                format!("sign-in blocked{from} with 429: too many attempts (limit {limit})"),
                Some(FIX_WAIT),
            )
        }
        "otp_failed" => (
            format!("wrong emailed code entered{from}"),
            Some("Use the latest emailed code; check spam folder"),
        ),
        "otp_verified" => (format!("emailed code accepted{from}"), None),
        "mfa_verified" => {
            let method = d
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or("a second factor");
            (format!("second factor accepted{from} ({method})"), None)
        }
        "mfa_verify_failed" => (
            format!("wrong second-factor code entered{from}"),
            Some(
                "Use the current code of the authenticator app (check the device's clock) or an unused recovery code",
            ),
        ),
        "mfa_recovery_code_used" => (
            format!("a recovery code was used{from}"),
            Some("Few codes left? Generate a new set (POST /auth/mfa/recovery-codes)"),
        ),
        "mfa_totp_enabled" => ("TOTP turned on".into(), None),
        "mfa_totp_disabled" => (
            "TOTP turned off: sign-ins from new devices need the emailed code again".into(),
            None,
        ),
        "reauth_failed" => (
            format!("a sensitive action's re-authentication failed{from}"),
            None,
        ),
        "logout" => (format!("signed out{from}{sid}"), None),
        "logout_all" => (format!("signed out everywhere{from}"), Some(FIX_RELOGIN)),
        "session_revoked" => {
            let by = d
                .get("by")
                .and_then(Value::as_str)
                .unwrap_or("another session");
            (
                format!("a session was ended by {by}{sid}"),
                Some(FIX_RELOGIN),
            )
        }
        "refresh_token_reuse" => (
            format!(
                "an old refresh token was used again{from}{sid}: the whole session was revoked (possible token theft)"
            ),
            Some("User must re-login; if it was not them, change the password"),
        ),
        "concurrent_login_requested" => (
            format!("a new sign-in{from} waits (423) for approval by an existing session"),
            Some(FIX_APPROVE),
        ),
        "concurrent_login_approved" | "concurrent_login_denied" => {
            let via = d.get("via").and_then(Value::as_str).unwrap_or("session");
            let verb = if event.ends_with("approved") {
                "approved"
            } else {
                "denied: that sign-in is refused (403)"
            };
            (format!("a pending sign-in was {verb} (via {via})"), None)
        }
        "password_changed" => (
            "password changed: the other sessions were ended".into(),
            Some(FIX_RELOGIN),
        ),
        "password_reset" => (
            "password reset: every session was ended".into(),
            Some(FIX_RELOGIN),
        ),
        "user_deleted" => (
            "the user was deleted: every session was ended".into(),
            Some("`mbpanel-auth user restore <email>`"),
        ),
        "user_restored" => ("the user was restored".into(), None),
        "member_removed" => (
            "removed from a team: sessions in that team were ended".into(),
            Some("Add user to team via invite"),
        ),
        "rate_limit_cleared" => ("an operator cleared the rate limits".into(), None),
        "permission_denied" => {
            let permission = d.get("permission").and_then(Value::as_str).unwrap_or("?");
            let team = d.get("team_id").and_then(Value::as_i64).unwrap_or_default();
            let role = d.get("role").and_then(Value::as_str).unwrap_or("?");
            (
                format!(
                    "refused with 403 \"Missing permission: {permission}\" in team {team}: the role {role} lacks it{from}"
                ),
                Some(
                    "Check user's role/permissions (`mbpanel-auth role list <team_id>`): change the member's role, or give the role that permission; check the user is on the right team",
                ),
            )
        }
        "virtuozzo_session_refresh_failed" => {
            let reason = d.get("reason").and_then(Value::as_str).unwrap_or("unknown");
            (
                format!("the team's Virtuozzo session key refresh failed: {reason}"),
                Some(
                    "Check VZ credentials are correct (the Owner saves them again), check the Virtuozzo API is accessible (`mbpanel-auth doctor`)",
                ),
            )
        }
        "virtuozzo_session_refreshed" => (
            "the team's Virtuozzo session key was refreshed".into(),
            None,
        ),
        "virtuozzo_credentials_changed" => {
            ("the team's Virtuozzo credentials were saved".into(), None)
        }
        "email_verified" => ("email address verified".into(), None),
        "user_registered" => ("account created".into(), None),
        _ => return None,
    })
}
