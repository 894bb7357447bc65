//! The login's second step for a user with a second factor: `POST /auth/mfa/verify`. The same
//! attempt limits as the emailed code (per pre-auth token and per account), and a pass leads to
//! exactly what a passed emailed code leads to (device trust, the approval gate, the exchange).

use super::login::OtpOutcome;
use super::second_factor::SecondFactor;
use super::{Auth, ClientInfo, Error, Result};

/// Longer than any code of any method (bounds the work on junk).
const MAX_CODE_CHARS: usize = 64;

impl Auth {
    pub async fn verify_mfa(
        &self,
        preauth_token: &str,
        method: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<OtpOutcome> {
        let method = SecondFactor::parse(method)?;
        if code.trim().is_empty() || code.chars().count() > MAX_CODE_CHARS {
            return Err(Error::validation("code", "code is required"));
        }
        let (raw, state) = self
            .load_preauth(preauth_token)
            .await?
            .ok_or(Error::PreauthExpired)?;
        if !(state.mfa_required && state.otp_required && !state.otp_verified) {
            return Err(Error::MfaNotPending);
        }
        let attempts = self.count_second_step_attempt(preauth_token).await?;
        self.reserve_otp_attempt(state.user_id).await?;
        if !self
            .check_second_factor(state.user_id, method, code, client)
            .await?
        {
            self.audit(
                "mfa_verify_failed",
                Some(state.user_id),
                None,
                client,
                serde_json::json!({ "method": method.as_str(), "attempt": attempts }),
            )
            .await;
            return Err(self.second_step_failed(preauth_token, attempts).await?);
        }
        self.release_otp_attempt(state.user_id).await?;
        self.second_step_passed(
            preauth_token,
            &raw,
            &state,
            client,
            "mfa_verified",
            serde_json::json!({ "method": method.as_str() }),
        )
        .await
    }
}
