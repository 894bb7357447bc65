//! Each client's share of the password hasher. The per-IP budgets bound how many hashes a
//! client gets per window, but a burst of them could still occupy every hashing thread at once
//! and make everyone else's login wait. Here a client (IP, IPv6 by /64) has at most
//! `PASSWORD_HASH_CLIENT_CONCURRENCY` hashes in flight on this instance; its further requests
//! wait for their turn (bounded by the request timeout), so other clients keep the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ClientInfo;
use super::keys::ip_bucket;

type Slots = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

pub struct HashShares {
    per_client: usize,
    slots: Slots,
}

/// A client's turn at the hasher; ends when dropped.
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
    key: String,
    slots: Slots,
}

impl HashShares {
    pub fn new(per_client: usize) -> Self {
        Self {
            per_client: per_client.max(1),
            slots: Arc::default(),
        }
    }

    /// Waits for the client's turn. A request without a client address is not limited here.
    pub async fn acquire(&self, client: &ClientInfo) -> Option<Share> {
        let key = ip_bucket(client.ip.as_deref()?);
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                slots
                    .entry(key.clone())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_client))),
            )
        };
        let permit = semaphore.acquire_owned().await.ok()?;
        Some(Share {
            permit: Some(permit),
            key,
            slots: Arc::clone(&self.slots),
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Nobody holds or awaits this client's semaphore any more: forget the client.
        if slots
            .get(&self.key)
            .is_some_and(|s| Arc::strong_count(s) == 1)
        {
            slots.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_client_waits_others_do_not() {
        let shares = HashShares::new(1);
        let a = ClientInfo {
            ip: Some("2001:db8::1".into()),
            user_agent: None,
        };
        let same_64 = ClientInfo {
            ip: Some("2001:db8::2".into()),
            user_agent: None,
        };
        let b = ClientInfo {
            ip: Some("203.0.113.9".into()),
            user_agent: None,
        };
        let first = shares.acquire(&a).await;
        assert!(first.is_some());
        let wait = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            shares.acquire(&same_64),
        );
        assert!(wait.await.is_err(), "the same /64 waits for its turn");
        assert!(shares.acquire(&b).await.is_some());
        drop(first);
        assert!(shares.acquire(&same_64).await.is_some());
        assert!(shares.slots.lock().unwrap().is_empty());
    }
}
