//! The instance's one subscription to the ephemeral store's pub/sub (one connection per
//! instance, however many event streams are open), fanned out in process:
//! - `bus:user:<id>`: a user's live events (a login asking for approval, a decision, a revoked
//!   session), handed to that user's open event streams on this instance;
//! - `bus:invalidate`: facts that changed (`service::cache`); every other instance drops its
//!   copy and acknowledges on `bus:ack:<origin>`, and the origin waits (briefly) for those
//!   acknowledgements, so a logout answered here is refused by every instance's next request.
//!
//! While the subscription is down the cache trusts nothing (every request reads SQL), so a
//! lost message can delay nothing but an event; the truth is always in SQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, broadcast};

use super::cache::Fact;
use super::ports::BusEvent;
use super::{Auth, Result};
use crate::domain::UserId;
use crate::shutdown::CancelSignal;

/// Every channel of the bus starts with this.
pub const PREFIX: &str = "bus:";
const INVALIDATE: &str = "bus:invalidate";
/// How long a change waits for the other instances to acknowledge it.
const ACK_WAIT: Duration = Duration::from_millis(500);
/// Events buffered per user for a slow stream; a stream that falls further behind skips some.
const USER_EVENTS_BUFFER: usize = 64;

pub fn user_channel(user_id: UserId) -> String {
    format!("bus:user:{user_id}")
}

fn ack_channel(instance: &str) -> String {
    format!("bus:ack:{instance}")
}

#[derive(Default)]
struct AckWaiter {
    received: AtomicUsize,
    notify: Notify,
}

pub struct Bus {
    instance: String,
    listening: AtomicBool,
    users: Mutex<HashMap<UserId, broadcast::Sender<String>>>,
    acks: Mutex<HashMap<u64, Arc<AckWaiter>>>,
    seq: AtomicU64,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            instance: super::tokens::random_jti(),
            listening: AtomicBool::new(false),
            users: Mutex::new(HashMap::new()),
            acks: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
        }
    }
}

impl Bus {
    /// A receiver of the user's events on this instance.
    pub fn subscribe_user(&self, user_id: UserId) -> broadcast::Receiver<String> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users
            .entry(user_id)
            .or_insert_with(|| broadcast::channel(USER_EVENTS_BUFFER).0)
            .subscribe()
    }

    /// Forgets the user's channel once no stream listens to it.
    pub fn release_user(&self, user_id: UserId) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if users
            .get(&user_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            users.remove(&user_id);
        }
    }

    fn deliver_user_event(&self, user_id: UserId, payload: String) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = users.get(&user_id) {
            let _ = tx.send(payload);
        }
    }

    fn acknowledged(&self, seq: u64) {
        let acks = self.acks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiter) = acks.get(&seq) {
            waiter.received.fetch_add(1, Ordering::SeqCst);
            waiter.notify.notify_waiters();
        }
    }
}

impl Auth {
    /// Whether this instance's bus subscription is up.
    pub fn bus_listening(&self) -> bool {
        self.bus.listening.load(Ordering::SeqCst)
    }

    /// Runs this instance's listener until `stop`: the cache is trusted only while it is up.
    pub async fn run_bus(self: Arc<Self>, stop: CancelSignal) {
        let mut events = self.store.listen(PREFIX);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(BusEvent::Up) => {
                        self.bus.listening.store(true, Ordering::SeqCst);
                        self.cache.set_coherent(true);
                        tracing::debug!(event = "bus_up");
                    }
                    Some(BusEvent::Down) => {
                        self.bus.listening.store(false, Ordering::SeqCst);
                        self.cache.set_coherent(false);
                        tracing::warn!(event = "bus_down", "pub/sub lost: the cache is off until it is back");
                    }
                    Some(BusEvent::Message { channel, payload }) => self.on_bus_message(&channel, payload),
                    None => break,
                },
                () = stop.cancelled() => break,
            }
        }
        self.bus.listening.store(false, Ordering::SeqCst);
        self.cache.set_coherent(false);
    }

    fn on_bus_message(self: &Arc<Self>, channel: &str, payload: String) {
        if channel == INVALIDATE {
            let mut parts = payload.splitn(3, ' ');
            let (Some(origin), Some(seq), Some(facts)) = (parts.next(), parts.next(), parts.next())
            else {
                return;
            };
            if origin == self.bus.instance {
                return; // applied before it was published
            }
            for fact in facts.split(',').filter_map(Fact::decode) {
                self.cache.invalidate(fact);
            }
            let this = Arc::clone(self);
            let (ack, seq) = (ack_channel(origin), seq.to_owned());
            tokio::spawn(async move {
                if let Err(e) = this.store.publish(&ack, &seq).await {
                    tracing::debug!(event = "bus_ack_failed", error = %e);
                }
            });
        } else if let Some(seq) = channel
            .strip_prefix("bus:ack:")
            .filter(|instance| *instance == self.bus.instance)
            .and(payload.parse::<u64>().ok())
        {
            self.bus.acknowledged(seq);
        } else if let Some(user_id) = channel
            .strip_prefix("bus:user:")
            .and_then(|id| id.parse::<UserId>().ok())
        {
            self.bus.deliver_user_event(user_id, payload);
        }
    }

    /// Tells every instance that facts changed: dropped here at once, then published, then
    /// acknowledged by the other listening instances (waiting at most `ACK_WAIT`). A store
    /// outage is an error: the caller fails closed.
    pub(crate) async fn facts_changed(&self, facts: &[Fact]) -> Result<()> {
        for fact in facts {
            self.cache.invalidate(*fact);
        }
        let seq = self.bus.seq.fetch_add(1, Ordering::SeqCst);
        let waiter = Arc::new(AckWaiter::default());
        self.bus
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq, Arc::clone(&waiter));
        let encoded: Vec<String> = facts.iter().map(|f| f.encode()).collect();
        let message = format!("{} {seq} {}", self.bus.instance, encoded.join(","));
        let published = self.store.publish(INVALIDATE, &message).await;
        let result = match published {
            Ok(receivers) => {
                // Acknowledgements reach us through our own listener: without it (an admin
                // command, or the bus down) there is nothing to wait for.
                let listening = self.bus.listening.load(Ordering::SeqCst);
                let expected = if listening {
                    receivers.saturating_sub(1)
                } else {
                    0
                };
                let waited = tokio::time::timeout(ACK_WAIT, async {
                    loop {
                        let notified = waiter.notify.notified();
                        if waiter.received.load(Ordering::SeqCst) >= expected {
                            return;
                        }
                        notified.await;
                    }
                })
                .await;
                if waited.is_err() {
                    tracing::warn!(
                        event = "bus_ack_timeout",
                        expected,
                        received = waiter.received.load(Ordering::SeqCst),
                        "an instance did not acknowledge a change in time"
                    );
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        };
        self.bus
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&seq);
        result
    }

    /// Publishes a live event to the user's streams on every instance (best effort: a hint).
    pub(crate) async fn publish_user_event(&self, user_id: UserId, event: &serde_json::Value) {
        if let Err(e) = self
            .store
            .publish(&user_channel(user_id), &event.to_string())
            .await
        {
            tracing::warn!(event = "publish_failed", error = %e);
        }
    }
}
