//! New-device alerts. A device is the pair (user agent, client IP); a completed sign-in from a
//! pair the user has not signed in from before, without a trusted-device cookie, emails the
//! user with a single-use "this wasn't me" link. The very first sign-in of an account (no
//! device known yet) alerts nobody. The link's POST ends every session, distrusts every
//! device, sends a password reset link and writes an audit event.

use std::time::Duration;

use super::login::PreauthState;
use super::{Auth, ClientInfo, Error, Result, emails, tokens};
use crate::domain::device::device_name;
use crate::domain::time::{ms, rfc3339};
use crate::domain::{TokenHash, UserId};

/// How long a "this wasn't me" link works: long enough for an email read the next day.
pub const NOT_ME_LINK_TTL: Duration = Duration::from_secs(72 * 3600);

/// The stored name of a device: a hash of its user agent and client IP.
pub fn device_fingerprint(client: &ClientInfo) -> String {
    let ua = client.user_agent.as_deref().unwrap_or("");
    let ip = client.ip.as_deref().unwrap_or("");
    tokens::hash_token(&format!("device\n{ua}\n{ip}"))
}

/// What the "this wasn't me" link did.
pub struct NotMeOutcome {
    pub sessions_ended: usize,
}

impl Auth {
    /// After a completed sign-in: remembers the device, and emails an alert when it is new.
    /// Best effort: the session exists already, so a failure here is logged, not returned.
    pub(crate) async fn note_sign_in_device(&self, state: &PreauthState, client: &ClientInfo) {
        if let Err(e) = self.check_sign_in_device(state, client).await {
            tracing::warn!(event = "new_device_check_failed", user_id = state.user_id.get(), error = %e);
        }
    }

    async fn check_sign_in_device(&self, state: &PreauthState, client: &ClientInfo) -> Result<()> {
        let fingerprint = device_fingerprint(client);
        let history = self
            .repo
            .device_history(state.user_id, &fingerprint)
            .await?;
        let now = self.now_ms();
        self.repo
            .remember_device(state.user_id, &fingerprint, now)
            .await?;
        // A trusted-device cookie (no code was needed) is a device the user approved before.
        let from_trusted_device = !state.otp_required;
        if !self.settings.new_device_alerts
            || from_trusted_device
            || history.this_known
            || !history.any_known
        {
            return Ok(());
        }
        self.send_new_device_alert(state.user_id, &fingerprint, client, now)
            .await
    }

    async fn send_new_device_alert(
        &self,
        user_id: UserId,
        fingerprint: &str,
        client: &ClientInfo,
        now: i64,
    ) -> Result<()> {
        let Some(user) = self.repo.user_by_id(user_id).await? else {
            return Ok(());
        };
        let token = tokens::random_token();
        self.repo
            .insert_device_alert(
                &TokenHash::of(&token),
                user_id,
                fingerprint,
                now,
                now + ms(NOT_ME_LINK_TTL),
            )
            .await?;
        let device = emails::name_for_email(&device_name(client.user_agent.as_deref()));
        let link = self.link("/new-device", &token);
        let email = emails::new_device(
            &user.email,
            &user.name,
            &emails::NewDeviceAlert {
                device: &device,
                ip: client.ip.as_deref().unwrap_or("unknown"),
                at: &rfc3339(now),
                not_me_url: &link,
                ttl_hours: NOT_ME_LINK_TTL.as_secs() / 3600,
            },
        );
        self.queue_email(email).await?;
        metrics::counter!("new_device_alerts_total").increment(1);
        self.audit(
            "new_device_alert_sent",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "device": device }),
        )
        .await;
        Ok(())
    }

    /// The POST behind the alert's "this wasn't me" page.
    pub async fn report_not_me(&self, token: &str, client: &ClientInfo) -> Result<NotMeOutcome> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let now = self.now_ms();
        let (user_id, fingerprint) = self
            .repo
            .consume_device_alert(&TokenHash::of(token), now)
            .await?
            .ok_or(Error::TokenInvalid)?;
        let sessions_ended = self.end_all_sessions(user_id, None, "not_me").await?;
        self.repo.distrust_devices(user_id, None, now).await?;
        // That device alerts again next time.
        self.repo.forget_device(user_id, &fingerprint).await?;
        if let Some(user) = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
        {
            self.send_password_reset(&user.email, client).await?;
        }
        metrics::counter!("new_device_reports_total").increment(1);
        self.audit(
            "new_device_reported",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "sessions_ended": sessions_ended }),
        )
        .await;
        Ok(NotMeOutcome { sessions_ended })
    }
}
