//! What operators ask when something fails: what a token says and whether the service would
//! accept it (by the very rules the server applies), and which instances are running, where,
//! with which JWT key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

use super::session::SessionRefusal;
use super::tokens::TokenError;
use super::{Auth, Error, Result, keys};
use crate::domain::time::{Millis, ms, rfc3339};

/// Instances announce themselves this often; an announcement lives three times as long.
pub const INSTANCE_ANNOUNCE_EVERY: Duration = Duration::from_secs(20);
const INSTANCE_TTL: Duration = Duration::from_secs(60);

/// The guide's quick fixes, word for word where the guide has one.
pub mod fixes {
    pub const RELOGIN: &str = "User must re-login";
    pub const KEY_MISMATCH: &str = "Check JWT_SECRET_KEY is consistent between services (`mbpanel-auth doctor` names each running instance's key)";
    pub const EXPIRED_ACCESS: &str =
        "Client should call /auth/refresh automatically; if refresh also fails, user must re-login";
    pub const IDLE: &str =
        "User must re-login; check the REFRESH_IDLE_TIMEOUT_MINUTES setting if this happens often";
    pub const TEAM: &str = "Add user to team via invite, or sign in to one of their teams (`mbpanel-auth team list <email>`)";
    pub const MISSING_SESSION: &str = "User must re-login; check DATABASE_URL points at this service's database (correct database?)";
    pub const DELETED: &str =
        "Check user is not soft-deleted (`mbpanel-auth user restore <email>`)";
}

/// What the service would answer to a token, and why: the same rules as `Auth::authenticate`
/// (access tokens) and `Auth::refresh` (refresh tokens), read from SQL, the record.
pub struct TokenDiagnosis {
    pub header: Value,
    pub claims: Value,
    pub configured_kid: String,
    /// What was found, in order: (label, text).
    pub findings: Vec<(&'static str, String)>,
    pub accepted: bool,
    /// For a refusal, its cause in plain words; for an acceptance, what the token grants.
    pub cause: String,
    /// What to do about a refusal.
    pub fix: Option<&'static str>,
}

impl TokenDiagnosis {
    fn refuse(&mut self, cause: impl Into<String>, fix: &'static str) {
        self.accepted = false;
        self.cause = cause.into();
        self.fix = Some(fix);
    }

    fn note(&mut self, label: &'static str, text: impl Into<String>) {
        self.findings.push((label, text.into()));
    }
}

pub struct RunningInstance {
    pub id: String,
    pub kid: String,
    pub started_at: Millis,
    /// The host name and listen address the instance announced (empty for an old instance).
    pub host: String,
    pub address: String,
}

impl RunningInstance {
    /// How an operator finds it: host and address, with its start time.
    pub fn describe(&self) -> String {
        let host = if self.host.is_empty() {
            "unknown host"
        } else {
            &self.host
        };
        let address = if self.address.is_empty() {
            "unknown address"
        } else {
            &self.address
        };
        format!(
            "{host} ({address}, started {}, id {})",
            rfc3339(self.started_at),
            self.id
        )
    }
}

/// Who announces itself: this instance's identity in `instance:<id>`.
pub struct InstanceIdentity<'a> {
    pub id: &'a str,
    pub host: &'a str,
    pub address: &'a str,
    pub started_at: Millis,
}

fn segment(token: &str, i: usize) -> Value {
    token
        .split('.')
        .nth(i)
        .and_then(|s| B64.decode(s).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// A moment relative to now, in words.
pub fn relative(at_ms: Millis, now: Millis) -> String {
    let delta = (at_ms - now) / 1000;
    let (amount, unit) = match delta.abs() {
        s if s < 120 => (s, "seconds"),
        s if s < 7200 => (s / 60, "minutes"),
        s if s < 172_800 => (s / 3600, "hours"),
        s => (s / 86_400, "days"),
    };
    if delta >= 0 {
        format!("in {amount} {unit}")
    } else {
        format!("{amount} {unit} ago")
    }
}

/// A `revoked_reason` in plain words.
pub fn revoked_reason_words(reason: &str) -> &'static str {
    match reason {
        "logout" => "the user signed out",
        "logout_all" => "the user signed out everywhere",
        "revoked_by_user" => "the user ended this session from another one",
        "revoked_by_admin" => "an operator ended it (`mbpanel-auth session revoke`)",
        "refresh_token_reuse" => {
            "an old refresh token was used again (possible token theft), so the whole session was ended"
        }
        "membership_ended" | "removed_from_team" => "the user left or was removed from the team",
        "user_deleted" => "the user was deleted",
        "password_changed" | "password_reset" => "the password was changed or reset",
        "not_me" => "the user reported a sign-in as not theirs",
        _ => "see the audit log (`mbpanel-auth why <email>`)",
    }
}

impl Auth {
    /// Decides a token as the server would, and explains the decision. Reads SQL directly (the
    /// record): no cache of this process can disagree with the server's.
    pub async fn diagnose_token(&self, token: &str) -> Result<TokenDiagnosis> {
        let token = token.trim();
        let mut d = TokenDiagnosis {
            header: segment(token, 0),
            claims: segment(token, 1),
            configured_kid: self.keys.kid().to_owned(),
            findings: Vec::new(),
            accepted: true,
            cause: String::new(),
            fix: None,
        };
        if d.claims.get("type").and_then(Value::as_str) == Some("refresh") {
            self.diagnose_refresh(token, &mut d).await?;
        } else {
            self.diagnose_access(token, &mut d).await?;
        }
        Ok(d)
    }

    /// The signature, with the hint each failure deserves. True when it verifies.
    fn diagnose_signature(&self, token: &str, d: &mut TokenDiagnosis) -> bool {
        let token_kid = d
            .header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match self.keys.check_signature(token) {
            Ok(kid) => {
                d.note(
                    "signature",
                    format!("valid (signed with the key whose kid is {kid})"),
                );
                true
            }
            Err(TokenError::UnknownKey) => {
                let kid = token_kid.unwrap_or_default();
                d.note(
                    "signature",
                    format!(
                        "UNKNOWN KEY: the token's kid is {kid}, this service's key has kid {}",
                        d.configured_kid
                    ),
                );
                d.refuse(
                    format!(
                        "signed with another key (kid {kid}) than this service's JWT_SECRET_KEY (kid {}): JWT_SECRET_KEY mismatch between services",
                        d.configured_kid
                    ),
                    fixes::KEY_MISMATCH,
                );
                false
            }
            Err(TokenError::Signature) if token_kid.is_none() => {
                d.note(
                    "signature",
                    format!(
                        "INVALID, and the token has no kid header (PyJWT's default): signed with a different JWT_SECRET_KEY? This service's key has kid {}",
                        d.configured_kid
                    ),
                );
                d.refuse(
                    "the signature does not match this service's JWT_SECRET_KEY (the token carries no kid, as PyJWT signs by default): signed with a different JWT_SECRET_KEY?",
                    fixes::KEY_MISMATCH,
                );
                false
            }
            Err(TokenError::Signature) => {
                d.note(
                    "signature",
                    "INVALID: the kid is this service's, but the signature does not verify (altered or truncated token?)",
                );
                d.refuse("the signature does not verify", fixes::RELOGIN);
                false
            }
            Err(TokenError::Header) => {
                d.note(
                    "signature",
                    "REFUSED: only HS256 without crit/jku/x5u/jwk/x5c headers is accepted",
                );
                d.refuse(
                    "the header asks for another algorithm or an outside key",
                    fixes::KEY_MISMATCH,
                );
                false
            }
            Err(_) => {
                d.note("signature", "not a JWT (three base64url parts expected)");
                d.refuse("the token is malformed (not a JWT)", fixes::RELOGIN);
                false
            }
        }
    }

    async fn diagnose_access(&self, token: &str, d: &mut TokenDiagnosis) -> Result<()> {
        if !self.diagnose_signature(token, d) {
            // A token we did not sign says nothing about our sessions: none is looked up.
            return Ok(());
        }
        let claims = match self.keys.verify_access(token, self.now_ms() / 1000) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                let exp = d.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
                let at = exp.clamp(0, i64::MAX / 1000) * 1000;
                d.refuse(
                    format!(
                        "the access token expired at {} ({})",
                        rfc3339(at),
                        relative(at, self.now_ms())
                    ),
                    fixes::EXPIRED_ACCESS,
                );
                return Ok(());
            }
            Err(TokenError::WrongType) => {
                d.refuse("not an access token", fixes::RELOGIN);
                return Ok(());
            }
            Err(_) => {
                d.refuse(
                    "its claims are missing or malformed (sub, team_id, sid, jti, iat, exp, type)",
                    fixes::RELOGIN,
                );
                return Ok(());
            }
        };
        d.note(
            "expires",
            format!(
                "{} ({})",
                rfc3339(claims.exp * 1000),
                relative(claims.exp * 1000, self.now_ms())
            ),
        );
        let Some(session) = self.repo.session(claims.sid).await? else {
            d.note("session", format!("{}: no such session", claims.sid));
            d.refuse(
                format!(
                    "the token names session {}, which does not exist in this database (minted against another database, or by another service sharing JWT_SECRET_KEY)",
                    claims.sid
                ),
                fixes::MISSING_SESSION,
            );
            return Ok(());
        };
        match self.session_refusal(&session, claims.sub, claims.iat * 1000, self.now_ms()) {
            Some(SessionRefusal::OtherUser { owner }) => {
                // Someone else's session: its state is not this token's business.
                d.note(
                    "session",
                    format!("{}: belongs to another user", session.id),
                );
                d.refuse(
                    format!(
                        "session {} belongs to user {owner}, not to the token's user {}: the token was not minted by this service for this session",
                        session.id, claims.sub
                    ),
                    fixes::RELOGIN,
                );
                return Ok(());
            }
            Some(SessionRefusal::Revoked { at }) => {
                let reason = self.repo.revoked_reason(session.id).await?;
                let why = reason
                    .as_deref()
                    .map_or("no reason recorded", revoked_reason_words);
                d.note(
                    "session",
                    format!(
                        "{}: revoked at {} ({}), reason {}",
                        session.id,
                        rfc3339(at),
                        relative(at, self.now_ms()),
                        reason.as_deref().unwrap_or("unknown")
                    ),
                );
                d.refuse(
                    format!("session {} was revoked: {why}", session.id),
                    fixes::RELOGIN,
                );
                return Ok(());
            }
            Some(SessionRefusal::Expired { at }) => {
                d.note(
                    "session",
                    format!(
                        "{}: expired at {} ({})",
                        session.id,
                        rfc3339(at),
                        relative(at, self.now_ms())
                    ),
                );
                d.refuse(
                    format!(
                        "session {} reached its absolute lifetime (REFRESH_TOKEN_TTL_DAYS)",
                        session.id
                    ),
                    fixes::RELOGIN,
                );
                return Ok(());
            }
            Some(SessionRefusal::Idle { since }) => {
                d.note(
                    "session",
                    format!(
                        "{}: idle since {} ({})",
                        session.id,
                        rfc3339(since),
                        relative(since, self.now_ms())
                    ),
                );
                d.refuse(
                    format!(
                        "session {} was not used within REFRESH_IDLE_TIMEOUT_MINUTES ({} minutes)",
                        session.id,
                        self.settings.refresh_idle_timeout.as_secs() / 60
                    ),
                    fixes::IDLE,
                );
                return Ok(());
            }
            None => d.note(
                "session",
                format!(
                    "{}: active (last seen {}, expires {})",
                    session.id,
                    rfc3339(session.last_seen_at.max(claims.iat * 1000)),
                    rfc3339(session.expires_at)
                ),
            ),
        }
        let access = match self.team_access(claims.sub, claims.team_id).await {
            Ok(access) => access,
            Err(Error::NotMember) => {
                d.note(
                    "team",
                    format!(
                        "user {} is not a member of team {}",
                        claims.sub, claims.team_id
                    ),
                );
                d.refuse(
                    format!(
                        "user {} is no longer a member of the token's team {}",
                        claims.sub, claims.team_id
                    ),
                    fixes::TEAM,
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        d.note(
            "team",
            format!(
                "{} ({}), role {} with {} permission(s)",
                access.team_id,
                access.team_name,
                access.role_name,
                access.permissions.len()
            ),
        );
        match self.repo.user_by_id(claims.sub).await? {
            Some(user) if user.deleted_at.is_none() => {
                d.accepted = true;
                d.cause = format!(
                    "live session {} of {} (user {}) in team {} as {}",
                    session.id, user.email, user.id, access.team_name, access.role_name
                );
            }
            _ => d.refuse(
                format!(
                    "user {} is deleted: /auth/me answers 404 User not found",
                    claims.sub
                ),
                fixes::DELETED,
            ),
        }
        Ok(())
    }

    /// A refresh token: what `POST /auth/refresh` would do with it (without doing it).
    async fn diagnose_refresh(&self, token: &str, d: &mut TokenDiagnosis) -> Result<()> {
        if !self.diagnose_signature(token, d) {
            return Ok(());
        }
        let claims = match self.keys.verify_refresh(token, self.now_ms() / 1000) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => {
                d.refuse(
                    "the refresh token expired (the session's absolute lifetime, REFRESH_TOKEN_TTL_DAYS)",
                    fixes::RELOGIN,
                );
                return Ok(());
            }
            Err(_) => {
                d.refuse("its claims are missing or malformed", fixes::RELOGIN);
                return Ok(());
            }
        };
        let Some(session) = self.repo.session(claims.sid).await? else {
            d.note("session", format!("{}: no such session", claims.sid));
            d.refuse(
                format!(
                    "the token names session {}, which does not exist in this database",
                    claims.sid
                ),
                fixes::MISSING_SESSION,
            );
            return Ok(());
        };
        // Refresh judges idleness by the session's last use alone (no access token's iat).
        match self.session_refusal(&session, claims.sub, session.last_seen_at, self.now_ms()) {
            Some(SessionRefusal::OtherUser { .. }) => {
                d.note(
                    "session",
                    format!("{}: belongs to another user", session.id),
                );
                d.refuse(
                    format!("session {} belongs to another user", session.id),
                    fixes::RELOGIN,
                );
            }
            Some(SessionRefusal::Revoked { at }) => {
                let reason = self.repo.revoked_reason(session.id).await?;
                let why = reason
                    .as_deref()
                    .map_or("no reason recorded", revoked_reason_words);
                d.note(
                    "session",
                    format!("{}: revoked at {}", session.id, rfc3339(at)),
                );
                d.refuse(
                    format!("session {} was revoked: {why}", session.id),
                    fixes::RELOGIN,
                );
            }
            Some(SessionRefusal::Expired { at }) => {
                d.note(
                    "session",
                    format!("{}: expired at {}", session.id, rfc3339(at)),
                );
                d.refuse(format!("session {} expired", session.id), fixes::RELOGIN);
            }
            Some(SessionRefusal::Idle { since }) => {
                d.note(
                    "session",
                    format!("{}: idle since {}", session.id, rfc3339(since)),
                );
                d.refuse(
                    format!(
                        "session {} was not used within REFRESH_IDLE_TIMEOUT_MINUTES",
                        session.id
                    ),
                    fixes::IDLE,
                );
            }
            None if session.refresh_token_jti == claims.jti => {
                d.note(
                    "session",
                    format!("{}: active; this is its current refresh token", session.id),
                );
                d.cause = format!("a refresh would rotate session {}", session.id);
            }
            None => {
                let in_grace = session.previous_refresh_jti.as_deref() == Some(claims.jti.as_str())
                    && session.rotated_at.is_some_and(|at| {
                        self.now_ms() - at <= ms(self.settings.refresh_reuse_grace)
                    });
                if in_grace {
                    d.note(
                        "session",
                        format!("{}: active; this token was rotated moments ago", session.id),
                    );
                    d.cause = "within REFRESH_REUSE_GRACE_SECONDS: a refresh gets the same successor tokens".into();
                } else {
                    d.note(
                        "session",
                        format!(
                            "{}: active, but this refresh token was already rotated",
                            session.id
                        ),
                    );
                    d.refuse(
                        format!(
                            "an old refresh token of session {}: presenting it counts as theft and ends the session",
                            session.id
                        ),
                        fixes::RELOGIN,
                    );
                }
            }
        }
        Ok(())
    }

    /// Tells the other instances (and `doctor`) that this one runs, where, and with which key.
    pub async fn announce_instance(&self, me: &InstanceIdentity<'_>) -> Result<()> {
        let value = serde_json::json!({
            "kid": self.keys.kid(),
            "started_at": me.started_at,
            "host": me.host,
            "address": me.address,
        })
        .to_string();
        self.store
            .set(&keys::instance(me.id), &value, INSTANCE_TTL)
            .await?;
        Ok(())
    }

    /// A clean shutdown withdraws the announcement at once (doctor does not wait for its TTL).
    pub async fn withdraw_instance(&self, id: &str) -> Result<()> {
        self.store.delete(&keys::instance(id)).await?;
        Ok(())
    }

    pub async fn running_instances(&self) -> Result<Vec<RunningInstance>> {
        let mut found = Vec::new();
        for (key, _) in self.store.scan(&keys::instance("*"), 1000).await? {
            let id = key.trim_start_matches(&keys::instance("")).to_owned();
            if let Some(raw) = self.store.get(&key).await?
                && let Ok(v) = serde_json::from_str::<Value>(&raw)
            {
                let text = |name: &str| {
                    v.get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                found.push(RunningInstance {
                    id,
                    kid: text("kid"),
                    host: text("host"),
                    address: text("address"),
                    started_at: v
                        .get("started_at")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                });
            }
        }
        found.sort_by_key(|i| i.started_at);
        Ok(found)
    }
}
