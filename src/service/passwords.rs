//! argon2id hashing on a small pool of dedicated threads, never on the async threads.
//!
//! A fixed set of threads (not tokio's growing blocking pool) bounds both the CPU spent on
//! hashing and the memory: each hash needs 19 MiB, and the allocator keeps that per thread.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use argon2::{Algorithm, Argon2, Block, Params, PasswordVerifier as _, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use tokio::sync::{OnceCell, oneshot};

use super::{Error, Result, tokens};

/// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const SALT_BYTES: usize = 16;
const HASH_BYTES: usize = 32;
/// The PHC prefix of every hash we write.
const PHC_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

fn params() -> Params {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(HASH_BYTES))
        .expect("static argon2 parameters are valid")
}

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params())
}

/// The hashing thread's own 19 MiB of argon2 memory, reused by every job: the allocator never
/// sees the large blocks come and go (which otherwise grows the process by hundreds of MiB).
type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Jobs waiting per hashing thread before new ones are refused (503): a flood cannot queue
/// unbounded work ahead of real logins.
const QUEUE_PER_THREAD: usize = 32;

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::SyncSender<Job>,
    /// A real hash of a random password: unknown users are verified against it, so the time a
    /// login takes does not tell whether the account exists.
    dummy_hash: Arc<OnceCell<String>>,
}

fn hash_with(
    memory: &mut Vec<Block>,
    password: &[u8],
    salt: &[u8],
) -> anyhow::Result<[u8; HASH_BYTES]> {
    if memory.is_empty() {
        memory.resize(params().block_count(), Block::default());
    }
    let mut out = [0u8; HASH_BYTES];
    argon2()
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
        .map_err(|e| anyhow!("argon2: {e}"))?;
    Ok(out)
}

/// Verifies against a PHC string. Hashes with our parameters use the thread's memory; any
/// other argon2 hash (older parameters) is verified by the library.
fn verify_with(memory: &mut Vec<Block>, password: &[u8], phc: &str) -> bool {
    let ours = phc
        .strip_prefix(PHC_PREFIX)
        .and_then(|rest| rest.split_once('$'))
        .and_then(|(salt, hash)| Some((B64.decode(salt).ok()?, B64.decode(hash).ok()?)));
    match ours {
        Some((salt, expected)) if expected.len() == HASH_BYTES => {
            hash_with(memory, password, &salt)
                .is_ok_and(|got| tokens::constant_time_eq(&got, &expected))
        }
        _ => argon2().verify_password(password, phc).is_ok(),
    }
}

impl PasswordHasher {
    /// Starts `threads` hashing threads; they end when the last clone of the hasher is dropped.
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(threads.max(1) * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    let mut memory: Vec<Block> = Vec::new();
                    loop {
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(event = "hasher_thread_failed", error = %e);
            }
        }
        Self {
            jobs,
            dummy_hash: Arc::new(OnceCell::new()),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move |memory: &mut Vec<Block>| {
            // The request went away while queued: skip the work.
            if !done.is_closed() {
                let _ = done.send(work(memory));
            }
        });
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => Error::Unavailable("password hasher"),
            mpsc::TrySendError::Disconnected(_) => {
                Error::Internal(anyhow!("password hasher stopped"))
            }
        })?;
        result
            .await
            .map_err(|_| Error::Internal(anyhow!("password hashing job failed")))
    }

    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let salt: [u8; SALT_BYTES] = tokens::random_bytes();
        let hash = self
            .run(move |memory| hash_with(memory, &password, &salt))
            .await??;
        Ok(format!(
            "{PHC_PREFIX}{}${}",
            B64.encode(salt),
            B64.encode(hash)
        ))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is no user,
    /// returning false then: the same work either way.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> Result<bool> {
        let (hash, real) = match hash {
            Some(h) => (h.to_owned(), true),
            None => (self.dummy_hash().await?, false),
        };
        let password = zeroize::Zeroizing::new(password.as_bytes().to_vec());
        let ok = self
            .run(move |memory| verify_with(memory, &password, &hash))
            .await?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> Result<String> {
        self.dummy_hash
            .get_or_try_init(|| async { self.hash(&super::tokens::random_token()).await })
            .await
            .cloned()
    }

    /// Computes the dummy hash ahead of the first login.
    pub async fn warm_up(&self) -> Result<()> {
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

    #[tokio::test]
    async fn verifies_hashes_written_by_the_library_too() {
        use argon2::PasswordHasher as _;
        let library_hash = argon2()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        let h = PasswordHasher::new(1);
        assert!(
            h.verify("correct horse", Some(&library_hash))
                .await
                .unwrap()
        );
        assert!(!h.verify("wrong horse", Some(&library_hash)).await.unwrap());
        // Other parameters (an older hash) still verify.
        let old = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        );
        let old_hash = old.hash_password(b"correct horse").unwrap().to_string();
        assert!(h.verify("correct horse", Some(&old_hash)).await.unwrap());
    }
}
