//! The Redis ephemeral store. Keys are exactly the guide's (behind an optional
//! `REDIS_KEY_PREFIX`), every write carries a TTL, and the read-modify-write operations are
//! single commands (GETDEL, SET NX) or Lua scripts, atomic across instances.
//!
//! The connection manager reconnects by itself; every call is bounded by a timeout, so a hung
//! or stopped Redis makes requests fail fast (503) instead of hanging, and the service
//! recovers when Redis returns.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, FromRedisValue, RedisError, Script};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::domain::time::now_ms;
use crate::service::ports::{BusEvent, EphemeralStore, StoreError, StoreResult};

/// KEYS[1] = key, ARGV[1] = expected, ARGV[2] = new value, ARGV[3] = TTL in ms.
const COMPARE_AND_SWAP: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// KEYS[1] = counter, ARGV[1] = increment, ARGV[2] = TTL in ms for a new counter.
/// Returns {count, ms left}.
const INCREMENT_WITH_EXPIRY: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  left = tonumber(ARGV[2])
end
return {n, left}";

/// KEYS = bounded sets (sorted sets: member → held until, ms); ARGV[1] = member, ARGV[2] = now
/// (ms), ARGV[3] = TTL (ms), ARGV[4..] = each set's limit. 1 when a place was taken in all.
const ACQUIRE_SLOTS: &str = r"
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if not redis.call('ZSCORE', key, ARGV[1]) and redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('PEXPIRE', key, ttl)
end
return 1";

const SUBSCRIBE_RETRY: Duration = Duration::from_secs(1);
/// How often a listener's subscription connection is pinged.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(2);
const UNAVAILABLE_LOG_INTERVAL_MS: i64 = 5_000;

pub struct RedisStore {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    cas: Script,
    incr: Script,
    slots_acquire: Script,
    last_unavailable_log: AtomicI64,
}

impl RedisStore {
    /// Connects lazily: the service starts (and answers 503) while Redis is down.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            timeout,
            cas: Script::new(COMPARE_AND_SWAP),
            incr: Script::new(INCREMENT_WITH_EXPIRY),
            slots_acquire: Script::new(ACQUIRE_SLOTS),
            last_unavailable_log: AtomicI64::new(0),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn unavailable(&self, reason: String, refused: bool) -> StoreError {
        let now = now_ms();
        let last = self.last_unavailable_log.load(Ordering::Relaxed);
        if now - last > UNAVAILABLE_LOG_INTERVAL_MS
            && self
                .last_unavailable_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            if refused {
                tracing::error!(event = "redis_unavailable", %reason, "Redis connection refused");
            } else {
                tracing::error!(event = "redis_unavailable", %reason, "Redis unavailable");
            }
        }
        StoreError::Unavailable {
            dependency: "redis",
            reason,
        }
    }

    fn map_err(&self, e: RedisError) -> StoreError {
        // A server that is loading, failing over or read-only is unavailable too (503, retried).
        let transient_server_state = matches!(
            e.code(),
            Some("LOADING" | "MASTERDOWN" | "READONLY" | "TRYAGAIN" | "CLUSTERDOWN" | "BUSY")
        );
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
            || transient_server_state
        {
            let refused = e.is_connection_refusal();
            self.unavailable(e.to_string(), refused)
        } else {
            StoreError::Other(anyhow::anyhow!("redis: {e}"))
        }
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        metrics::counter!("redis_round_trips_total").increment(1);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_err(e)),
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.timeout), false)),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> StoreResult<T> {
        let mut conn = self.conn.clone();
        self.bounded(async move { cmd.query_async::<T>(&mut conn).await })
            .await
    }
}

fn px(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl EphemeralStore for RedisStore {
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(value).arg("PX").arg(px(ttl));
        self.query::<()>(cmd).await
    }

    async fn set_if_absent(&self, key: &str, value: &str, ttl: Duration) -> StoreResult<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key))
            .arg(value)
            .arg("NX")
            .arg("PX")
            .arg(px(ttl));
        Ok(self.query::<Option<String>>(cmd).await?.is_some())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(key));
        self.query(cmd).await
    }

    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<String>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(self.key(k));
        }
        self.query(cmd).await
    }

    async fn take(&self, key: &str) -> StoreResult<Option<String>> {
        let mut cmd = redis::cmd("GETDEL");
        cmd.arg(self.key(key));
        self.query(cmd).await
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(key));
        Ok(self.query::<i64>(cmd).await? > 0)
    }

    async fn increment(&self, key: &str, by: i64, ttl: Duration) -> StoreResult<(i64, Duration)> {
        let mut conn = self.conn.clone();
        let mut invocation = self.incr.key(self.key(key));
        invocation.arg(by).arg(px(ttl));
        let (n, left): (i64, i64) = self
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok((n, Duration::from_millis(left.max(0) as u64)))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &str,
        new: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = self.cas.key(self.key(key));
        invocation.arg(expected).arg(new).arg(px(ttl));
        let swapped: i64 = self
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(swapped == 1)
    }

    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>> {
        let mut cmd = redis::cmd("PTTL");
        cmd.arg(self.key(key));
        let left: i64 = self.query(cmd).await?;
        Ok((left > 0).then(|| Duration::from_millis(left as u64)))
    }

    async fn publish(&self, channel: &str, message: &str) -> StoreResult<usize> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.key(channel)).arg(message);
        let receivers: i64 = self.query(cmd).await?;
        Ok(usize::try_from(receivers).unwrap_or(0))
    }

    /// One task holds one subscription connection (PSUBSCRIBE `<prefix>*`) for the caller, and
    /// pings it: a connection that stops answering is dropped, reported `Down`, and replaced.
    fn listen(&self, prefix: &str) -> BoxStream<'static, BusEvent> {
        let (tx, rx) = mpsc::channel::<BusEvent>(1024);
        let client = self.client.clone();
        let pattern = format!("{}*", self.key(prefix));
        let key_prefix = self.prefix.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            while !tx.is_closed() {
                let connected = tokio::time::timeout(timeout, async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.psubscribe(&pattern).await?;
                    Ok::<_, RedisError>(pubsub)
                })
                .await;
                if let Ok(Ok(pubsub)) = connected {
                    if tx.send(BusEvent::Up).await.is_err() {
                        return;
                    }
                    let (mut sink, mut messages) = pubsub.split();
                    let mut ping = tokio::time::interval(LISTEN_PING_EVERY);
                    ping.tick().await;
                    loop {
                        tokio::select! {
                            msg = messages.next() => match msg {
                                Some(msg) => {
                                    let channel = msg.get_channel_name();
                                    let channel = channel.strip_prefix(&key_prefix).unwrap_or(channel).to_owned();
                                    if let Ok(payload) = msg.get_payload::<String>()
                                        && tx.send(BusEvent::Message { channel, payload }).await.is_err() {
                                        return;
                                    }
                                }
                                None => break,
                            },
                            _ = ping.tick() => {
                                let answered = tokio::time::timeout(timeout, sink.ping::<String>()).await;
                                if !matches!(answered, Ok(Ok(_))) {
                                    break;
                                }
                            }
                            () = tx.closed() => return,
                        }
                    }
                    if tx.send(BusEvent::Down).await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(SUBSCRIBE_RETRY).await;
            }
        });
        ReceiverStream::new(rx).boxed()
    }

    async fn acquire_slots(
        &self,
        sets: &[(String, usize)],
        member: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let mut invocation = self.slots_acquire.prepare_invoke();
        for (key, _) in sets {
            invocation.key(self.key(key));
        }
        invocation.arg(member).arg(now_ms()).arg(px(ttl));
        for (_, limit) in sets {
            invocation.arg(*limit);
        }
        let taken: i64 = self
            .bounded(async move { invocation.invoke_async(&mut conn).await })
            .await?;
        Ok(taken == 1)
    }

    async fn release_slots(&self, sets: &[String], member: &str) -> StoreResult<()> {
        let mut pipe = redis::pipe();
        for key in sets {
            pipe.cmd("ZREM").arg(self.key(key)).arg(member).ignore();
        }
        let mut conn = self.conn.clone();
        self.bounded(async move { pipe.query_async::<()>(&mut conn).await })
            .await
    }

    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
    ) -> StoreResult<Vec<(String, Option<Duration>)>> {
        let mut found = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let mut cmd = redis::cmd("SCAN");
            cmd.arg(cursor)
                .arg("MATCH")
                .arg(self.key(pattern))
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self.query(cmd).await?;
            for key in keys {
                let mut ttl = redis::cmd("PTTL");
                ttl.arg(&key);
                let left: i64 = self.query(ttl).await?;
                if left == -2 {
                    continue; // gone meanwhile
                }
                let name = key.strip_prefix(&self.prefix).unwrap_or(&key).to_owned();
                found.push((
                    name,
                    (left >= 0).then(|| Duration::from_millis(left as u64)),
                ));
                if found.len() >= limit {
                    return Ok(found);
                }
            }
            cursor = next;
            if cursor == 0 {
                return Ok(found);
            }
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        self.query::<String>(redis::cmd("PING")).await.map(|_| ())
    }
}
