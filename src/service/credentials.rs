//! Password reset (emailed link) and password change. Both end the other sessions.

use std::sync::Arc;
use std::time::Duration;

use super::{Auth, ClientInfo, Error, Result, emails, keys, password_strength, tokens};
use crate::domain::claims::AccessClaims;
use crate::domain::email::Email;
use crate::domain::password::check_policy;
use crate::domain::time::ms;
use crate::domain::{TokenHash, UserId};

/// Reset emails one address may receive per hour.
const RESET_EMAILS_PER_HOUR: i64 = 5;

impl Auth {
    /// Emails a single-use reset link (stored hashed). The answer never depends on whether the
    /// address has an account: the request path does the same work for every address (the
    /// client and address counters), and the account lookup and email run off it, afterwards.
    pub async fn request_password_reset(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        self.limit_email_request(client).await?;
        // Counted for every address, so the answer (and an outage) looks the same for all.
        let limit_key = keys::password_reset_requests(&tokens::hash_token(email.as_str()));
        let (count, _) = self
            .store
            .increment(&limit_key, 1, Duration::from_secs(3600))
            .await?;
        if count > RESET_EMAILS_PER_HOUR {
            return Ok(());
        }
        let auth = Arc::clone(self);
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(e) = auth.send_password_reset(email.as_str(), &client).await {
                tracing::warn!(event = "password_reset_email_failed", error = %e);
            }
        });
        Ok(())
    }

    pub(crate) async fn send_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        let user = self
            .repo
            .user_by_email(email)
            .await?
            .filter(|u| u.deleted_at.is_none());
        let Some(user) = user else {
            return Ok(());
        };
        let token = tokens::random_token();
        let now = self.now_ms();
        let ttl = self.settings.password_reset_ttl;
        self.repo
            .insert_password_reset(&TokenHash::of(&token), user.id, now + ms(ttl), now)
            .await?;
        let link = self.link("/reset-password", &token);
        self.queue_email(emails::password_reset(
            &user.email,
            &user.name,
            &link,
            ttl.as_secs() / 60,
        ))
        .await?;
        self.audit(
            "password_reset_requested",
            Some(user.id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    /// Sets the new password and ends every session of the user.
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        check_policy(new_password).map_err(|e| Error::validation("password", e.0))?;
        if token.is_empty() || token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        // Judged with the account's own email and name when the link is valid (read only: a
        // refused password does not burn the link).
        let inputs = match self
            .repo
            .password_reset_user(&TokenHash::of(token), self.now_ms())
            .await?
        {
            Some(user_id) => match self.repo.user_by_id(user_id).await? {
                Some(u) => password_strength::user_inputs(&u.email, &u.name),
                None => Vec::new(),
            },
            None => Vec::new(),
        };
        self.check_new_password("password", new_password, inputs)
            .await?;
        self.limit_expensive_request(client).await?;
        // Hash first: a busy hasher (503) must not burn the link. The hashing is bounded per
        // client by the limit above, whether or not the token is valid.
        let share = self.hash_shares.acquire(client).await;
        let hash = self.hasher.hash(new_password).await?;
        drop(share);
        let now = self.now_ms();
        let user_id = self
            .repo
            .consume_password_reset(&TokenHash::of(token), now)
            .await?
            .ok_or(Error::TokenInvalid)?;
        self.repo.set_password_hash(user_id, &hash, now).await?;
        self.credentials_replaced(user_id, now).await?;
        let ended = self
            .end_all_sessions(user_id, None, "password_reset")
            .await?;
        self.audit(
            "password_reset",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "sessions_ended": ended }),
        )
        .await;
        Ok(())
    }

    /// After a new password: outstanding reset links and every trusted device are void (the
    /// next sign-in anywhere needs the emailed code again).
    async fn credentials_replaced(&self, user_id: UserId, now: i64) -> Result<()> {
        self.repo.void_password_resets(user_id, now).await?;
        self.repo.distrust_devices(user_id, None, now).await?;
        Ok(())
    }

    /// Needs the current password (attempts count against the account's login limit); ends
    /// every other session.
    pub async fn change_password(
        &self,
        claims: &AccessClaims,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        check_policy(new_password).map_err(|e| Error::validation("new_password", e.0))?;
        let user_id = claims.sub;
        let user = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        let inputs = password_strength::user_inputs(&user.email, &user.name);
        self.check_new_password("new_password", new_password, inputs)
            .await?;
        let attempt = self.begin_login_attempt(&user.email, client).await?;
        let share = self.hash_shares.acquire(client).await;
        let valid = self
            .hasher
            .verify(current_password, Some(&user.password_hash))
            .await?;
        if !valid {
            self.audit(
                "password_change_failed",
                Some(user_id),
                None,
                client,
                serde_json::json!({}),
            )
            .await;
            return Err(Error::validation(
                "current_password",
                "current password is incorrect",
            ));
        }
        self.login_attempt_succeeded(attempt).await?;
        let hash = self.hasher.hash(new_password).await?;
        drop(share);
        let now = self.now_ms();
        self.repo.set_password_hash(user_id, &hash, now).await?;
        self.credentials_replaced(user_id, now).await?;
        let ended = self
            .end_all_sessions(user_id, Some(claims.sid), "password_changed")
            .await?;
        self.audit(
            "password_changed",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "sessions_ended": ended }),
        )
        .await;
        Ok(())
    }
}
