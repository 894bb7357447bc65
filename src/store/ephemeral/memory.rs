//! The in-process ephemeral store: a TTL map with the same atomic operations as the Redis
//! adapter (each operation holds the lock for its whole read-modify-write) and an in-process
//! pub/sub. Memory is bounded: expired keys are swept every second, and when the key limit is
//! reached new keys are refused (the service answers 503) rather than growing without bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

use crate::domain::time::{Millis, ms, until};
use crate::service::clock::Clock;
use crate::service::ports::{BusEvent, EphemeralStore, StoreError, StoreResult};

const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const BUS_CAPACITY: usize = 1024;

struct Entry {
    value: String,
    /// Epoch milliseconds by the store's clock.
    expires_at: Millis,
}

/// Bounded sets (`acquire_slots`): key → member → held until.
type Slots = HashMap<String, HashMap<String, Millis>>;

pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    slots: Mutex<Slots>,
    max_keys: usize,
    /// The service's clock: TTLs move with it (tests advance it instead of sleeping).
    clock: Arc<dyn Clock>,
    bus: broadcast::Sender<(String, String)>,
}

impl MemoryStore {
    /// Creates the store and starts its sweeper (which stops when the store is dropped).
    pub fn start(max_keys: usize, clock: Arc<dyn Clock>) -> Arc<Self> {
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let store = Arc::new(Self {
            entries: Mutex::new(HashMap::new()),
            slots: Mutex::new(HashMap::new()),
            max_keys,
            clock,
            bus,
        });
        let weak: Weak<Self> = Arc::downgrade(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tick.tick().await;
                let Some(store) = weak.upgrade() else { break };
                store.sweep();
            }
        });
        store
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written: recover the map.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sweep(&self) {
        let now = self.clock.now_ms();
        self.lock().retain(|_, e| e.expires_at > now);
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.retain(|_, set| {
            set.retain(|_, until| *until > now);
            !set.is_empty()
        });
    }

    /// A live value, dropping it if expired.
    fn live<'a>(
        map: &'a mut HashMap<String, Entry>,
        key: &str,
        now: Millis,
    ) -> Option<&'a mut Entry> {
        if map.get(key).is_some_and(|e| e.expires_at <= now) {
            map.remove(key);
        }
        map.get_mut(key)
    }

    fn insert(
        &self,
        map: &mut HashMap<String, Entry>,
        key: &str,
        value: String,
        ttl: Duration,
    ) -> StoreResult<()> {
        let now = self.clock.now_ms();
        if !map.contains_key(key) && map.len() >= self.max_keys {
            map.retain(|_, e| e.expires_at > now);
            if map.len() >= self.max_keys {
                return Err(StoreError::Unavailable {
                    dependency: "ephemeral store",
                    reason: format!("in-process store is full ({} keys)", self.max_keys),
                });
            }
        }
        map.insert(
            key.to_owned(),
            Entry {
                value,
                expires_at: now + ms(ttl),
            },
        );
        Ok(())
    }
}

/// Time left until `at` (zero once passed).
fn left(at: Millis, now: Millis) -> Duration {
    until(at, now).unwrap_or_default()
}

#[async_trait]
impl EphemeralStore for MemoryStore {
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        let mut map = self.lock();
        self.insert(&mut map, key, value.to_owned(), ttl)
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        let mut map = self.lock();
        if Self::live(&mut map, key, self.clock.now_ms()).is_some() {
            return Ok(false);
        }
        self.insert(&mut map, key, value.to_owned(), ttl)?;
        Ok(true)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        let mut map = self.lock();
        Ok(Self::live(&mut map, key, self.clock.now_ms()).map(|e| e.value.clone()))
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        let mut map = self.lock();
        let now = self.clock.now_ms();
        Ok(map
            .remove(key)
            .filter(|e| e.expires_at > now)
            .map(|e| e.value))
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let mut map = self.lock();
        let now = self.clock.now_ms();
        Ok(map.remove(key).is_some_and(|e| e.expires_at > now))
    }

    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> StoreResult<(i64, Duration)> {
        let mut map = self.lock();
        let now = self.clock.now_ms();
        if let Some(entry) = Self::live(&mut map, key, now) {
            let n = entry
                .value
                .parse::<i64>()
                .map_err(|e| StoreError::Other(e.into()))?
                + by;
            entry.value = n.to_string();
            return Ok((n, left(entry.expires_at, now)));
        }
        self.insert(&mut map, key, by.to_string(), ttl)?;
        Ok((by, ttl))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut map = self.lock();
        match Self::live(&mut map, key, self.clock.now_ms()) {
            Some(entry) if entry.value == expected => {
                entry.value = new.to_owned();
                entry.expires_at = self.clock.now_ms() + ms(ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        let mut map = self.lock();
        let now = self.clock.now_ms();
        Ok(Self::live(&mut map, key, now).map(|e| left(e.expires_at, now)))
    }

    async fn publish(&self, channel: &str, message: &str) -> StoreResult<usize> {
        // No listener is not an error: pub/sub is a hint.
        Ok(self
            .bus
            .send((channel.to_owned(), message.to_owned()))
            .unwrap_or(0))
    }

    fn listen(&self, prefix: &str) -> BoxStream<'static, BusEvent> {
        let prefix = prefix.to_owned();
        let messages = BroadcastStream::new(self.bus.subscribe()).filter_map(move |msg| {
            let prefix = prefix.clone();
            async move {
                match msg {
                    Ok((channel, payload)) => channel
                        .starts_with(&prefix)
                        .then_some(vec![BusEvent::Message { channel, payload }]),
                    // A listener that fell behind lost messages: say so, then go on.
                    Err(_lagged) => Some(vec![BusEvent::Down, BusEvent::Up]),
                }
            }
        });
        futures::stream::once(async { BusEvent::Up })
            .chain(messages.flat_map(futures::stream::iter))
            .boxed()
    }

    async fn acquire_slots(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.now_ms();
        for (key, _) in sets {
            if let Some(set) = slots.get_mut(key) {
                set.retain(|_, until| *until > now);
            }
        }
        let full = sets.iter().any(|(key, limit)| {
            slots
                .get(key)
                .is_some_and(|set| !set.contains_key(member) && set.len() >= *limit)
        });
        if full {
            return Ok(false);
        }
        for (key, _) in sets {
            slots
                .entry(key.clone())
                .or_default()
                .insert(member.to_owned(), now + ms(ttl));
        }
        Ok(true)
    }

    async fn release_slots(&self, sets: &[String], member: &str) -> StoreResult<()> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        for key in sets {
            if let Some(set) = slots.get_mut(key) {
                set.remove(member);
                if set.is_empty() {
                    slots.remove(key);
                }
            }
        }
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
    ) -> StoreResult<Vec<(String, Option<Duration>)>> {
        let map = self.lock();
        let now = self.clock.now_ms();
        Ok(map
            .iter()
            .filter(|(k, e)| e.expires_at > now && glob_match(pattern, k))
            .take(limit)
            .map(|(k, e)| (k.clone(), Some(left(e.expires_at, now))))
            .collect())
    }
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ttl_take_cas_and_counters() {
        let s = MemoryStore::start(100, crate::service::clock::system());
        s.set("a", "1", Duration::from_millis(50)).await.unwrap();
        assert_eq!(s.get("a").await.unwrap().as_deref(), Some("1"));
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(s.get("a").await.unwrap(), None);

        s.set("t", "v", Duration::from_secs(5)).await.unwrap();
        assert_eq!(s.take("t").await.unwrap().as_deref(), Some("v"));
        assert_eq!(s.take("t").await.unwrap(), None);

        s.set("c", "x", Duration::from_secs(5)).await.unwrap();
        assert!(
            !s.compare_and_swap("c", "y", "z", Duration::from_secs(5))
                .await
                .unwrap()
        );
        assert!(
            s.compare_and_swap("c", "x", "z", Duration::from_secs(5))
                .await
                .unwrap()
        );

        assert_eq!(
            s.increment("n", 1, Duration::from_secs(5)).await.unwrap().0,
            1
        );
        assert_eq!(
            s.increment("n", 2, Duration::from_secs(5)).await.unwrap().0,
            3
        );
        assert!(
            s.set_if_absent("n", "0", Duration::from_secs(5))
                .await
                .is_ok_and(|set| !set)
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("refresh:*", "refresh:abc"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("refresh:*", "preauth:abc"));
    }

    #[tokio::test]
    async fn memory_is_bounded() {
        let s = MemoryStore::start(2, crate::service::clock::system());
        s.set("a", "1", Duration::from_secs(5)).await.unwrap();
        s.set("b", "1", Duration::from_secs(5)).await.unwrap();
        assert!(matches!(
            s.set("c", "1", Duration::from_secs(5)).await,
            Err(StoreError::Unavailable { .. })
        ));
        s.set("a", "2", Duration::from_secs(5)).await.unwrap();
    }
}
