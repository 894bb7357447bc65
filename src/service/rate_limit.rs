//! Login throttling: fixed windows counted atomically in the ephemeral store, per normalised
//! account and per client IP. Attempts are counted *before* any password work, so parallel
//! guesses cannot slip past the limit, and a correct password does not pass an active lock.

use std::time::Duration;

use super::{Auth, Error, Result, keys, tokens};

pub struct LoginAttempt {
    account_key: String,
    ip_key: Option<String>,
}

/// Window of the per-account limits on emailed codes.
const OTP_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Wrong codes one account may see per window, across all its logins.
const OTP_FAILURES_PER_ACCOUNT: i64 = 10;
/// Codes emailed to one account per window (no email flood).
const OTP_EMAILS_PER_ACCOUNT: i64 = 10;
/// Unauthenticated requests that hash a password (sign-up, reset confirmation) per IP and window.
const EXPENSIVE_REQUESTS_PER_IP: i64 = 30;

impl Auth {
    /// Counts a login attempt before any password work. The IP is checked first, so a blocked
    /// client cannot create account counters (or fill the store) with random emails.
    pub(crate) async fn begin_login_attempt(
        &self,
        email: &str,
        ip: Option<&str>,
    ) -> Result<LoginAttempt> {
        let window = self.settings.login_rate_limit_window;
        let attempt = LoginAttempt {
            account_key: keys::login_failures_account(&tokens::hash_token(email)),
            ip_key: ip.map(keys::login_failures_ip),
        };
        if let Some(ip_key) = &attempt.ip_key {
            let (count, left) = self.store.increment(ip_key, 1, window).await?;
            if count > i64::from(self.settings.login_rate_limit_ip_attempts) {
                return Err(Error::RateLimited { retry_after: left });
            }
        }
        let (count, left) = self
            .store
            .increment(&attempt.account_key, 1, window)
            .await?;
        if count > i64::from(self.settings.login_rate_limit_attempts) {
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(attempt)
    }

    /// A successful login clears the account's failures and does not count against the IP.
    pub(crate) async fn login_attempt_succeeded(&self, attempt: LoginAttempt) -> Result<()> {
        self.store.delete(&attempt.account_key).await?;
        if let Some(ip_key) = attempt.ip_key {
            self.store
                .increment(&ip_key, -1, self.settings.login_rate_limit_window)
                .await?;
        }
        Ok(())
    }

    /// Before emailing a code: refuse while the account has seen too many wrong codes or been
    /// sent too many codes in the window (brute force across fresh logins, email floods).
    pub(crate) async fn allow_otp_email(&self, user_id: i64) -> Result<()> {
        if let Some(failures) = self.store.get(&keys::otp_failures(user_id)).await?
            && failures.parse::<i64>().unwrap_or(0) >= OTP_FAILURES_PER_ACCOUNT
        {
            let left = self
                .store
                .ttl(&keys::otp_failures(user_id))
                .await?
                .unwrap_or(OTP_WINDOW);
            return Err(Error::RateLimited { retry_after: left });
        }
        let (sent, left) = self
            .store
            .increment(&keys::otp_emails(user_id), 1, OTP_WINDOW)
            .await?;
        if sent > OTP_EMAILS_PER_ACCOUNT {
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(())
    }

    pub(crate) async fn otp_failed(&self, user_id: i64) -> Result<()> {
        self.store
            .increment(&keys::otp_failures(user_id), 1, OTP_WINDOW)
            .await?;
        Ok(())
    }

    /// Bounds password-hashing work that needs no account (sign-up, reset confirmation).
    pub(crate) async fn limit_expensive_request(&self, ip: Option<&str>) -> Result<()> {
        let Some(ip) = ip else { return Ok(()) };
        let (count, left) = self
            .store
            .increment(
                &keys::expensive_requests_ip(ip),
                1,
                self.settings.login_rate_limit_window,
            )
            .await?;
        if count > EXPENSIVE_REQUESTS_PER_IP {
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(())
    }
}
