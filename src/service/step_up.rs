//! Step-up: sensitive actions need an authentication of the session's user within
//! `STEP_UP_MAX_AGE_MINUTES` — the sign-in that created the session, or a later reauth with the
//! password or a second factor (`POST /auth/reauth`). Read from SQL (`active_sessions.
//! authenticated_at`), so every instance agrees; only sensitive actions pay for the read.

use super::second_factor::SecondFactor;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::SessionId;
use crate::domain::claims::AccessClaims;
use crate::domain::time::{ms, now_ms};

/// What the user presents to renew the session's authentication.
pub enum ReauthProof<'a> {
    Password(&'a str),
    SecondFactor { method: &'a str, code: &'a str },
}

impl Auth {
    /// 403 `reauth_required` unless the session authenticated recently enough.
    pub async fn require_recent_auth(&self, sid: SessionId) -> Result<()> {
        let at = self
            .repo
            .session_authenticated_at(sid)
            .await?
            .ok_or(Error::NotAuthenticated)?;
        if now_ms() - at > ms(self.settings.step_up_max_age) {
            return Err(Error::ReauthRequired);
        }
        Ok(())
    }

    /// Renews the session's authentication. Wrong passwords count against the account's login
    /// limits; wrong codes against its code limits.
    pub async fn reauth(
        &self,
        claims: &AccessClaims,
        proof: ReauthProof<'_>,
        client: &ClientInfo,
    ) -> Result<()> {
        let user_id = claims.sub;
        let via = match proof {
            ReauthProof::Password(password) => {
                if password.is_empty()
                    || password.chars().count() > crate::domain::password::MAX_PASSWORD_CHARS
                {
                    return Err(Error::validation("password", "password is required"));
                }
                let user = self
                    .repo
                    .user_by_id(user_id)
                    .await?
                    .filter(|u| u.deleted_at.is_none())
                    .ok_or(Error::UserNotFound)?;
                let attempt = self.begin_login_attempt(&user.email, client).await?;
                let share = self.hash_shares.acquire(client).await;
                let valid = self
                    .hasher
                    .verify(password, Some(&user.password_hash))
                    .await?;
                drop(share);
                if !valid {
                    self.audit(
                        "reauth_failed",
                        Some(user_id),
                        None,
                        client,
                        serde_json::json!({ "via": "password", "session_id": claims.sid }),
                    )
                    .await;
                    return Err(Error::ReauthFailed);
                }
                self.login_attempt_succeeded(attempt).await?;
                "password"
            }
            ReauthProof::SecondFactor { method, code } => {
                let method = SecondFactor::parse(method)?;
                if code.trim().is_empty() || code.chars().count() > 64 {
                    return Err(Error::validation("code", "code is required"));
                }
                self.reserve_otp_attempt(user_id).await?;
                if !self
                    .check_second_factor(user_id, method, code, client)
                    .await?
                {
                    self.audit(
                        "mfa_verify_failed",
                        Some(user_id),
                        None,
                        client,
                        serde_json::json!({ "method": method.as_str(), "during": "reauth" }),
                    )
                    .await;
                    return Err(Error::ReauthFailed);
                }
                self.release_otp_attempt(user_id).await?;
                method.as_str()
            }
        };
        self.repo
            .set_session_authenticated_at(claims.sid, now_ms())
            .await?;
        self.audit(
            "reauth",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "via": via, "session_id": claims.sid }),
        )
        .await;
        Ok(())
    }
}
