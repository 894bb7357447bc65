//! argon2id hashing on a bounded blocking pool, never on the async threads.

use std::sync::Arc;

use anyhow::anyhow;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use tokio::sync::{OnceCell, Semaphore};

/// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password: unknown users are verified against it, so the time a
    /// login takes does not tell whether the account exists.
    dummy_hash: Arc<OnceCell<String>>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| anyhow!("password hasher closed"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| anyhow!("password hashing task failed: {e}"))
    }

    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        self.run(move || {
            argon2()
                .hash_password(&password)
                .map(|h| h.to_string())
                .map_err(|e| anyhow!("argon2: {e}"))
        })
        .await?
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user,
    /// returning false then: the same work either way.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> anyhow::Result<bool> {
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash().await?, false),
        };
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let ok = self
            .run(move || argon2().verify_password(&password, hash.as_str()).is_ok())
            .await?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> anyhow::Result<String> {
        self.dummy_hash
            .get_or_try_init(|| async { self.hash(&super::tokens::random_token()).await })
            .await
            .cloned()
    }

    /// Computes the dummy hash ahead of the first login.
    pub async fn warm_up(&self) -> anyhow::Result<()> {
        self.dummy_hash().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_exactly_what_was_hashed() {
        let h = PasswordHasher::new(2);
        let pw =
            "Ünïcødé pässwörd — with spaces and 🦀 that is longer than sixty-four characters!!";
        let hash = h.hash(pw).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(h.verify(pw, Some(&hash)).await.unwrap());
        assert!(!h.verify(&pw.to_uppercase(), Some(&hash)).await.unwrap());
        assert!(
            !h.verify(pw.trim_end_matches('!'), Some(&hash))
                .await
                .unwrap()
        );
        assert!(!h.verify(pw, None).await.unwrap());
    }
}
