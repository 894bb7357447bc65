//! Step 1 and 2 of the login flow: password → pre-auth token (+ an emailed code for an unknown
//! device) → code verification.

use serde::{Deserialize, Serialize};

use super::ports::Membership;
use super::{Auth, ClientInfo, Error, Result, emails, keys, tokens};
use crate::domain::email::Email;
use crate::domain::password::MAX_PASSWORD_CHARS;
use crate::domain::time::{Millis, ms};
use crate::domain::{TokenHash, UserId};

/// What `preauth:<token>` holds: a login that passed the password check and may still need
/// its emailed code. Readable with `redis-cli GET`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PreauthState {
    pub user_id: UserId,
    pub otp_required: bool,
    pub otp_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_digest: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: Millis,
    /// A fingerprint of the password hash the login was checked against: after a password
    /// change or reset, pending logins with the old password are void.
    #[serde(default)]
    pub credential: String,
    /// The second step is the user's own second factor (TOTP, recovery code) instead of an
    /// emailed code: `otp_required` then means "second step required", passed by
    /// `verify_mfa` the way `verify_otp` passes an emailed code.
    #[serde(default)]
    pub mfa_required: bool,
    /// The concurrent-login approval this login waits for, once it has asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_token: Option<String>,
    /// The hash of the trusted device this login came from (or was trusted by its code): a
    /// denied approval ends that trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<TokenHash>,
}

impl PreauthState {
    pub fn ready_for_exchange(&self) -> bool {
        !self.otp_required || self.otp_verified
    }
}

pub struct LoginOutcome {
    pub preauth_token: String,
    /// An emailed code is required (unknown device, no second factor).
    pub otp_required: bool,
    /// The user's second factor is required instead (unknown device): these methods.
    pub mfa_methods: Vec<&'static str>,
    pub expires_in: u64,
    pub teams: Vec<Membership>,
}

pub struct OtpOutcome {
    /// A new trusted-device id for the device cookie.
    pub device_token: String,
}

/// Enough of the password hash to notice that it changed (the hash itself stays in SQL).
pub(crate) fn credential_fingerprint(password_hash: &str) -> String {
    tokens::hash_token(password_hash)[..16].to_owned()
}

impl Auth {
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<LoginOutcome> {
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        if password.is_empty() || password.chars().count() > MAX_PASSWORD_CHARS {
            return Err(Error::validation("password", "password is required"));
        }
        let attempt = self.begin_login_attempt(email.as_str(), client).await?;

        let user = self
            .repo
            .user_by_email(email.as_str())
            .await?
            .filter(|u| u.deleted_at.is_none());
        let share = self.hash_shares.acquire(client).await;
        let valid = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        drop(share);
        let user = match user {
            Some(user) if valid => user,
            user => {
                self.audit(
                    "login_failed",
                    user.as_ref().map(|u| u.id),
                    None,
                    client,
                    serde_json::json!({ "reason": "invalid_credentials" }),
                )
                .await;
                return Err(Error::InvalidCredentials);
            }
        };
        // An unverified account's correct password clears nothing: otherwise such accounts
        // would give unlimited password verifications.
        if user.email_verified_at.is_none() {
            return Err(Error::EmailNotVerified);
        }
        self.login_attempt_succeeded(attempt).await?;

        let now = self.now_ms();
        let presented_device = device_token
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .map(TokenHash::of);
        let trusted = match &presented_device {
            Some(hash) => self.repo.is_trusted_device(user.id, hash, now).await?,
            None => false,
        };
        // An unknown device of a user with a second factor: that factor, not an emailed code.
        let mfa_methods = if trusted {
            Vec::new()
        } else {
            let (record, passkeys) = self.second_factors(user.id).await?;
            super::second_factor::methods(&record, passkeys.len())
        };
        let preauth_token = tokens::random_token();
        let ttl = self.settings.preauth_token_ttl;
        let mut state = PreauthState {
            user_id: user.id,
            otp_required: !trusted,
            otp_verified: false,
            otp_digest: None,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            created_at: now,
            credential: credential_fingerprint(&user.password_hash),
            mfa_required: !mfa_methods.is_empty(),
            approval_token: None,
            device_hash: presented_device.filter(|_| trusted),
        };
        if state.mfa_required {
            // Refused while the account has seen too many wrong codes (as for emailed codes).
            self.check_otp_failures(user.id).await?;
        } else if state.otp_required {
            self.allow_otp_email(user.id).await?;
            let code = tokens::random_otp_code();
            state.otp_digest = Some(self.keys.otp_digest(&preauth_token, &code));
            let device = client.user_agent.as_deref().unwrap_or("unknown device");
            let ip = client.ip.as_deref().unwrap_or("unknown");
            let email = emails::login_code(
                &user.email,
                &user.name,
                &code,
                device,
                ip,
                ttl.as_secs().div_ceil(60),
            );
            self.queue_email(email).await?;
        }
        let value = serde_json::to_string(&state).map_err(anyhow::Error::from)?;
        self.store
            .set(&keys::preauth(&preauth_token), &value, ttl)
            .await?;
        let teams = self.repo.memberships(user.id).await?;
        self.audit(
            "login_password_verified",
            Some(user.id),
            None,
            client,
            serde_json::json!({
                "otp_required": state.otp_required && !state.mfa_required,
                "mfa_required": state.mfa_required,
            }),
        )
        .await;
        Ok(LoginOutcome {
            preauth_token,
            otp_required: state.otp_required && !state.mfa_required,
            mfa_methods,
            expires_in: ttl.as_secs(),
            teams,
        })
    }

    /// Called when the exchange of a login may proceed (no approval needed, or approved):
    /// trusts the device whose code this login verified.
    pub(crate) async fn trust_verified_device(
        &self,
        state: &PreauthState,
        client: &ClientInfo,
    ) -> Result<()> {
        let (true, true, Some(device_hash)) =
            (state.otp_required, state.otp_verified, &state.device_hash)
        else {
            return Ok(());
        };
        let now = self.now_ms();
        let expires_at = now + ms(self.settings.trusted_device_ttl);
        self.repo
            .trust_device(
                state.user_id,
                device_hash,
                client.user_agent.as_deref(),
                now,
                expires_at,
            )
            .await?;
        Ok(())
    }

    pub(crate) async fn load_preauth(&self, token: &str) -> Result<Option<(String, PreauthState)>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some(raw) = self.store.get(&keys::preauth(token)).await? else {
            return Ok(None);
        };
        let state = serde_json::from_str(&raw).map_err(anyhow::Error::from)?;
        Ok(Some((raw, state)))
    }

    /// Checks the emailed code. Each wrong code counts; the last allowed one burns the
    /// pre-auth token, so the code cannot be brute-forced.
    pub async fn verify_otp(
        &self,
        preauth_token: &str,
        code: &str,
        client: &ClientInfo,
    ) -> Result<OtpOutcome> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::validation("code", "code must be 6 digits"));
        }
        let (raw, state) = self
            .load_preauth(preauth_token)
            .await?
            .ok_or(Error::PreauthExpired)?;
        let Some(expected) = state
            .otp_digest
            .as_deref()
            .filter(|_| state.otp_required && !state.otp_verified)
        else {
            return Err(Error::OtpNotPending);
        };
        let attempts = self.count_second_step_attempt(preauth_token).await?;
        // Counted against the account before the comparison (given back if right), so
        // parallel guesses across several logins stay within the per-account cap.
        self.reserve_otp_attempt(state.user_id).await?;
        let given = self.keys.otp_digest(preauth_token, code);
        if !tokens::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            self.audit(
                "otp_failed",
                Some(state.user_id),
                None,
                client,
                serde_json::json!({ "attempt": attempts }),
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
            "otp_verified",
            serde_json::json!({}),
        )
        .await
    }

    /// Counts one attempt at the second step of this login (emailed code or second factor);
    /// past the limit the pre-auth token is burnt.
    pub(crate) async fn count_second_step_attempt(&self, preauth_token: &str) -> Result<u32> {
        let (attempts, _) = self
            .store
            .increment(
                &keys::otp_attempts(preauth_token),
                1,
                self.settings.preauth_token_ttl,
            )
            .await?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts > self.settings.otp_max_attempts {
            self.store.delete(&keys::preauth(preauth_token)).await?;
            return Err(Error::OtpAttemptsExceeded);
        }
        Ok(attempts)
    }

    /// The answer to a wrong code: the attempts left, or (the last one) the login is burnt.
    pub(crate) async fn second_step_failed(
        &self,
        preauth_token: &str,
        attempts: u32,
    ) -> Result<Error> {
        let max = self.settings.otp_max_attempts;
        if attempts >= max {
            self.store.delete(&keys::preauth(preauth_token)).await?;
            return Ok(Error::OtpAttemptsExceeded);
        }
        Ok(Error::OtpInvalid {
            attempts_remaining: max - attempts,
        })
    }

    /// The second step passed: the login may be exchanged, and its device gets a new
    /// trusted-device id (trusted once the exchange may proceed).
    pub(crate) async fn second_step_passed(
        &self,
        preauth_token: &str,
        raw: &str,
        state: &PreauthState,
        client: &ClientInfo,
        event: &'static str,
        details: serde_json::Value,
    ) -> Result<OtpOutcome> {
        let device_token = tokens::random_token();
        let device_hash = TokenHash::of(&device_token);
        let verified = PreauthState {
            otp_verified: true,
            otp_digest: None,
            device_hash: Some(device_hash.clone()),
            ..state.clone()
        };
        let ttl = self
            .store
            .ttl(&keys::preauth(preauth_token))
            .await?
            .ok_or(Error::PreauthExpired)?;
        let new_value = serde_json::to_string(&verified).map_err(anyhow::Error::from)?;
        if !self
            .store
            .compare_and_swap(&keys::preauth(preauth_token), raw, &new_value, ttl)
            .await?
        {
            return Err(Error::PreauthExpired);
        }
        self.store
            .delete(&keys::otp_attempts(preauth_token))
            .await?;
        // The device cookie is handed out now, but the device becomes trusted only once this
        // login may become a session (see `trust_verified_device`): a login that is denied or
        // never completed leaves nothing trusted behind.
        self.audit(event, Some(state.user_id), None, client, details)
            .await;
        Ok(OtpOutcome { device_token })
    }
}
