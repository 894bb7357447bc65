//! A new emailed sign-in code for a login that waits for one. The new code replaces the old
//! one; the wrong-code count of the login stays (a resend never buys more guesses), and the
//! per-account code-email limit applies.

use super::login::PreauthState;
use super::{Auth, ClientInfo, Error, Result, emails, keys, tokens};

impl Auth {
    pub async fn resend_otp(&self, preauth_token: &str, client: &ClientInfo) -> Result<()> {
        let (raw, state) = self
            .load_preauth(preauth_token)
            .await?
            .ok_or(Error::PreauthExpired)?;
        if !state.otp_required || state.otp_verified || state.otp_digest.is_none() {
            return Err(Error::OtpNotPending);
        }
        let key = keys::preauth(preauth_token);
        let ttl = self.store.ttl(&key).await?.ok_or(Error::PreauthExpired)?;
        self.allow_otp_email(state.user_id).await?;
        let code = tokens::random_otp_code();
        let renewed = PreauthState {
            otp_digest: Some(self.keys.otp_digest(preauth_token, &code)),
            ..state.clone()
        };
        let value = serde_json::to_string(&renewed).map_err(anyhow::Error::from)?;
        if !self.store.compare_and_swap(&key, &raw, &value, ttl).await? {
            return Err(Error::PreauthExpired);
        }
        let user = self
            .repo
            .user_by_id(state.user_id)
            .await?
            .ok_or(Error::PreauthExpired)?;
        let device = client.user_agent.as_deref().unwrap_or("unknown device");
        let ip = client.ip.as_deref().unwrap_or("unknown");
        self.queue_email(emails::login_code(
            &user.email,
            &user.name,
            &code,
            device,
            ip,
            ttl.as_secs().div_ceil(60),
        ))
        .await?;
        self.audit(
            "otp_resent",
            Some(state.user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }
}
