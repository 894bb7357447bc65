//! Checking a second factor, whatever asks (the login's MFA step, a step-up reauth): one
//! function per method behind one dispatch. A method names what the user presents.

use super::ports::MfaRecord;
use super::{Auth, ClientInfo, Error, Result, recovery_codes, totp};
use crate::domain::UserId;

/// The field a TOTP secret is sealed under (bound to the user id as well).
pub(crate) const TOTP_SECRET_FIELD: &str = "totp_secret";

/// What a user can present as a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    Totp,
    RecoveryCode,
}

impl SecondFactor {
    pub fn parse(method: &str) -> Result<Self> {
        match method {
            "totp" => Ok(Self::Totp),
            "recovery_code" => Ok(Self::RecoveryCode),
            _ => Err(Error::validation(
                "method",
                "method must be one of: totp, recovery_code",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::RecoveryCode => "recovery_code",
        }
    }
}

/// Whether the user has a second factor: a confirmed TOTP or a passkey (recovery codes alone
/// are not one).
pub fn has_second_factor(record: &MfaRecord, passkeys: usize) -> bool {
    record.totp_enabled() || passkeys > 0
}

/// The methods a user with this record can sign in with, in the order clients offer them
/// (SPEC §13: `totp`, `webauthn`, `recovery_code`). Empty: the user has no second factor.
pub fn methods(record: &MfaRecord, passkeys: usize) -> Vec<&'static str> {
    let mut methods = Vec::new();
    if record.totp_enabled() {
        methods.push(SecondFactor::Totp.as_str());
    }
    // A passkey is passed at `/auth/mfa/webauthn/begin|finish`.
    if passkeys > 0 {
        methods.push("webauthn");
    }
    if has_second_factor(record, passkeys) && record.recovery_codes_left > 0 {
        methods.push(SecondFactor::RecoveryCode.as_str());
    }
    methods
}

impl Auth {
    /// The user's MFA record and passkeys: what `has_second_factor` and `methods` decide on.
    pub(crate) async fn second_factors(
        &self,
        user_id: UserId,
    ) -> Result<(MfaRecord, Vec<super::ports::PasskeyRecord>)> {
        let record = self.repo.mfa(user_id).await?;
        let passkeys = self.repo.passkeys(user_id).await?;
        Ok((record, passkeys))
    }

    /// Whether `code` passes `method` for the user. A passed factor is consumed (a TOTP step,
    /// a recovery code): the same code never passes twice.
    pub(crate) async fn check_second_factor(
        &self,
        user_id: UserId,
        method: SecondFactor,
        code: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        let passed = match method {
            SecondFactor::Totp => self.check_totp(user_id, code).await?,
            SecondFactor::RecoveryCode => self.check_recovery_code(user_id, code, client).await?,
        };
        let outcome = if passed { "passed" } else { "failed" };
        metrics::counter!("second_factor_checks_total", "method" => method.as_str(), "outcome" => outcome)
            .increment(1);
        Ok(passed)
    }

    /// A code of the confirmed TOTP secret, for a time step later than the last one used.
    async fn check_totp(&self, user_id: UserId, code: &str) -> Result<bool> {
        let record = self.repo.mfa(user_id).await?;
        let Some(sealed) = record
            .totp_secret_sealed
            .as_deref()
            .filter(|_| record.totp_enabled())
        else {
            return Ok(false);
        };
        let secret = zeroize::Zeroizing::new(self.mfa_vault.open_for_user(
            user_id,
            TOTP_SECRET_FIELD,
            sealed,
        )?);
        let now = self.now_ms();
        let unix_seconds = u64::try_from(now / 1000).unwrap_or(0);
        let Some(step) = totp::matching_step(&secret, code, unix_seconds) else {
            return Ok(false);
        };
        // Atomic: of two requests with the same code, one wins; an older step never passes.
        Ok(self.repo.use_totp_step(user_id, step, now).await?)
    }

    async fn check_recovery_code(
        &self,
        user_id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<bool> {
        if !recovery_codes::well_formed(code) {
            return Ok(false);
        }
        let hash = recovery_codes::hash(user_id, code);
        if !self
            .repo
            .use_recovery_code(user_id, &hash, self.now_ms())
            .await?
        {
            return Ok(false);
        }
        let left = self.repo.mfa(user_id).await?.recovery_codes_left;
        self.audit(
            "mfa_recovery_code_used",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "recovery_codes_left": left }),
        )
        .await;
        Ok(true)
    }
}
