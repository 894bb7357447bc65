//! Login throttling: fixed windows counted atomically in the ephemeral store, per normalised
//! account and per client IP. Attempts are counted *before* any password work, so parallel
//! guesses cannot slip past the limit, and a correct password does not pass an active lock.

use std::time::Duration;

use super::{Auth, Error, Result, keys, tokens};

pub struct LoginAttempt {
    account_key: String,
    ip_key: Option<String>,
}

impl Auth {
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
        let (count, left) = self
            .store
            .increment(&attempt.account_key, 1, window)
            .await?;
        let mut retry_after: Option<Duration> =
            (count > i64::from(self.settings.login_rate_limit_attempts)).then_some(left);
        if let Some(ip_key) = &attempt.ip_key {
            let (count, left) = self.store.increment(ip_key, 1, window).await?;
            if count > i64::from(self.settings.login_rate_limit_ip_attempts) {
                retry_after = Some(retry_after.map_or(left, |r| r.max(left)));
            }
        }
        match retry_after {
            Some(retry_after) => Err(Error::RateLimited { retry_after }),
            None => Ok(attempt),
        }
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
}
