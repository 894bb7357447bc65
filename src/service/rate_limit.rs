//! Login throttling: fixed windows counted atomically in the ephemeral store, per normalised
//! account and per client IP (IPv6 by /64). Attempts are counted *before* any password work, so parallel
//! guesses cannot slip past the limit, and a correct password does not pass an active lock.

use std::time::Duration;

use super::{Auth, ClientInfo, Error, Result, keys, tokens};
use crate::domain::UserId;

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
const EXPENSIVE_REQUESTS_PER_IP: u32 = 30;

impl Auth {
    /// Counts a login attempt before any password work. The IP is checked first, so a blocked
    /// client cannot create account counters (or fill the store) with random emails. Every
    /// attempt also spends one password verification of the client's separate budget, which a
    /// correct password does not give back: argon2 work per client stays bounded.
    pub(crate) async fn begin_login_attempt(
        &self,
        email: &str,
        client: &ClientInfo,
    ) -> Result<LoginAttempt> {
        let window = self.settings.login_rate_limit_window;
        let ip = client.ip.as_deref();
        let attempt = LoginAttempt {
            account_key: keys::login_failures_account(&tokens::hash_token(email)),
            ip_key: ip.map(keys::login_failures_ip),
        };
        if let Some(ip_key) = &attempt.ip_key {
            let limit = self.settings.login_rate_limit_ip_attempts;
            self.count_or_refuse(ip_key, limit, window, None, client)
                .await?;
        }
        if let Some(ip) = ip {
            let limit = self.settings.login_rate_limit_ip_verifications;
            self.count_or_refuse(
                &keys::login_verifications_ip(ip),
                limit,
                window,
                None,
                client,
            )
            .await?;
        }
        let limit = self.settings.login_rate_limit_attempts;
        self.count_or_refuse(&attempt.account_key, limit, window, Some(email), client)
            .await?;
        Ok(attempt)
    }

    /// Increments `key` in its window; past `limit` the answer is 429, and the first refusal
    /// of the window (only the first) is audited, so a blocked client cannot flood the log.
    /// `account` is the normalised email an account's counter is for: its audit row names the
    /// user (for `mbpanel-auth why`).
    async fn count_or_refuse(
        &self,
        key: &str,
        limit: u32,
        window: Duration,
        account: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let (count, left) = self.store.increment(key, 1, window).await?;
        if count > i64::from(limit) {
            self.audit_rate_limited(key, left, account, client).await?;
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(())
    }

    /// One `login_rate_limited` audit row per blocked counter and window.
    pub(crate) async fn audit_rate_limited(
        &self,
        limit_key: &str,
        left: Duration,
        account: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let marker = keys::rate_limit_audited(limit_key);
        if self
            .store
            .set_if_absent(&marker, "1", left.max(Duration::from_secs(1)))
            .await?
        {
            // Once per window: the lookup costs nothing a blocked client can repeat.
            let user_id = match account {
                Some(email) => self.repo.user_by_email(email).await?.map(|u| u.id),
                None => None,
            };
            let scope = limit_key.split(':').nth(1).unwrap_or("unknown");
            let event = if scope.starts_with("login") {
                "login_rate_limited"
            } else {
                "rate_limited"
            };
            self.audit(
                event,
                user_id,
                None,
                client,
                serde_json::json!({ "limit": scope }),
            )
            .await;
        }
        Ok(())
    }

    /// A successful, verified login clears the account's failures and gives its failure back
    /// to the IP (not its verification). If the IP window ended meanwhile, the decrement hit a
    /// fresh counter: it is undone, so the counter never goes below zero.
    pub(crate) async fn login_attempt_succeeded(&self, attempt: LoginAttempt) -> Result<()> {
        self.store.delete(&attempt.account_key).await?;
        if let Some(ip_key) = attempt.ip_key {
            let window = self.settings.login_rate_limit_window;
            let (count, _) = self.store.increment(&ip_key, -1, window).await?;
            if count < 0 {
                self.store.increment(&ip_key, 1, window).await?;
            }
        }
        Ok(())
    }

    /// Unauthenticated requests that email an address (reset, verification resend): bounded
    /// per client, before any per-address state is created.
    pub(crate) async fn limit_email_request(&self, client: &ClientInfo) -> Result<()> {
        let Some(ip) = client.ip.as_deref() else {
            return Ok(());
        };
        let limit = self.settings.email_request_rate_limit_ip;
        let window = self.settings.login_rate_limit_window;
        self.count_or_refuse(&keys::email_requests_ip(ip), limit, window, None, client)
            .await
    }

    /// The per-account cap on wrong codes, checked before a code is verified (a pre-auth
    /// token's own attempts are not enough: several logins could be opened in parallel).
    pub(crate) async fn check_otp_failures(&self, user_id: UserId) -> Result<()> {
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
        Ok(())
    }

    /// Before emailing a code: refuse while the account has seen too many wrong codes or been
    /// sent too many codes in the window (brute force across fresh logins, email floods).
    pub(crate) async fn allow_otp_email(&self, user_id: UserId) -> Result<()> {
        self.check_otp_failures(user_id).await?;
        let (sent, left) = self
            .store
            .increment(&keys::otp_emails(user_id), 1, OTP_WINDOW)
            .await?;
        if sent > OTP_EMAILS_PER_ACCOUNT {
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(())
    }

    /// Takes one code attempt from the account's window before the code is compared; past
    /// the cap the answer is 429 without looking at the code.
    pub(crate) async fn reserve_otp_attempt(&self, user_id: UserId) -> Result<()> {
        let key = keys::otp_failures(user_id);
        let (count, left) = self.store.increment(&key, 1, OTP_WINDOW).await?;
        if count > OTP_FAILURES_PER_ACCOUNT {
            self.store.increment(&key, -1, OTP_WINDOW).await?;
            return Err(Error::RateLimited { retry_after: left });
        }
        Ok(())
    }

    /// A right code gives its reserved attempt back (never below zero).
    pub(crate) async fn release_otp_attempt(&self, user_id: UserId) -> Result<()> {
        let key = keys::otp_failures(user_id);
        let (count, _) = self.store.increment(&key, -1, OTP_WINDOW).await?;
        if count < 0 {
            self.store.increment(&key, 1, OTP_WINDOW).await?;
        }
        Ok(())
    }

    /// Bounds password-hashing work that needs no account (sign-up, reset confirmation).
    pub(crate) async fn limit_expensive_request(&self, client: &ClientInfo) -> Result<()> {
        let Some(ip) = client.ip.as_deref() else {
            return Ok(());
        };
        let window = self.settings.login_rate_limit_window;
        self.count_or_refuse(
            &keys::expensive_requests_ip(ip),
            EXPENSIVE_REQUESTS_PER_IP,
            window,
            None,
            client,
        )
        .await
    }
}
