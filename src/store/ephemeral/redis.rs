//! The Redis ephemeral store. Keys are exactly the guide's (behind an optional
//! `REDIS_KEY_PREFIX`), every write carries a TTL, and the read-modify-write operations are
//! single commands (GETDEL, SET NX) or Lua scripts, atomic across instances.
//!
//! The connection manager reconnects by itself; every call is bounded by a timeout, so a hung
//! or stopped Redis makes requests fail fast (503) instead of hanging, and the service
//! recovers when Redis returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use redis::{Cmd, FromRedisValue, RedisError, Script};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::redis_shape::{Conn, RedisConnector};
use crate::config::RedisShape;
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
/// How many timeouts a command may spend following a Sentinel failover.
const FAILOVER_PATIENCE: u32 = 5;
const FAILOVER_RETRY_DELAY: Duration = Duration::from_millis(200);
/// How often a listener's subscription connection is pinged.
const LISTEN_PING_EVERY: Duration = Duration::from_secs(2);
const UNAVAILABLE_LOG_INTERVAL_MS: i64 = 5_000;

pub struct RedisStore {
    connector: Arc<RedisConnector>,
    prefix: String,
    timeout: Duration,
    cas: Script,
    incr: Script,
    slots_acquire: Script,
    last_unavailable_log: AtomicI64,
    clock: Arc<dyn crate::service::clock::Clock>,
}

impl RedisStore {
    /// A standalone Redis at `url` (`redis://` or `rediss://`). Connects lazily: the service
    /// starts (and answers 503) while Redis is down.
    pub fn connect(url: &str, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let shape = RedisShape::Standalone {
            url: secrecy::SecretString::from(url.to_owned()),
        };
        Self::connect_shape(&shape, None, prefix, timeout)
    }

    /// Any of the three shapes of SPEC §12.
    pub fn connect_shape(
        shape: &RedisShape,
        ca_cert: Option<&std::path::Path>,
        prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            connector: Arc::new(RedisConnector::new(shape, ca_cert, timeout)?),
            prefix: prefix.to_owned(),
            timeout,
            cas: Script::new(COMPARE_AND_SWAP),
            incr: Script::new(INCREMENT_WITH_EXPIRY),
            slots_acquire: Script::new(ACQUIRE_SLOTS),
            last_unavailable_log: AtomicI64::new(0),
            clock: crate::service::clock::system(),
        })
    }

    /// Uses `clock` for the expiry of bounded-set members (`acquire_slots`), whose scores our
    /// script compares; key TTLs remain Redis's own clock.
    pub fn with_clock(mut self, clock: Arc<dyn crate::service::clock::Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn shape_name(&self) -> &'static str {
        self.connector.shape_name
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

    /// Every Redis error is a dependency that cannot serve right now (503, retried by
    /// clients): down, loading, read-only, failing over, out of memory, cluster down, MOVED
    /// past the retries. Never a 500.
    fn map_err(&self, e: &RedisError) -> StoreError {
        self.unavailable(e.to_string(), e.is_connection_refusal())
    }

    /// Runs one operation on the current connection, bounded by the timeout. On a Sentinel
    /// set, a failure a failover explains is retried on the newly named master for a few
    /// timeouts, so a failover costs latency, not errors.
    async fn run<T, F, Fut>(&self, bus: bool, op: F) -> StoreResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        metrics::counter!("redis_round_trips_total").increment(1);
        let give_up = tokio::time::Instant::now() + self.timeout * FAILOVER_PATIENCE;
        loop {
            let attempt = async {
                let conn = if bus {
                    self.connector.bus_commands().await?
                } else {
                    self.connector.commands().await?
                };
                op(conn).await
            };
            let error = match tokio::time::timeout(self.timeout, attempt).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => e,
                Err(_) => RedisError::from((
                    redis::ErrorKind::Io,
                    "no answer in time",
                    format!("{:?}", self.timeout),
                )),
            };
            self.connector.failed(&error).await;
            if self.connector.retries_after_failover(&error)
                && tokio::time::Instant::now() + FAILOVER_RETRY_DELAY < give_up
            {
                tokio::time::sleep(FAILOVER_RETRY_DELAY).await;
                continue;
            }
            return Err(self.map_err(&error));
        }
    }

    /// One operation on a given connection, bounded by the timeout.
    async fn bounded_on<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> StoreResult<T> {
        metrics::counter!("redis_round_trips_total").increment(1);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_err(&e)),
            Err(_) => Err(self.unavailable(format!("no answer within {:?}", self.timeout), false)),
        }
    }

    async fn query<T: FromRedisValue>(&self, cmd: Cmd) -> StoreResult<T> {
        let cmd = &cmd;
        self.run(false, |mut conn| async move {
            cmd.query_async::<T>(&mut conn).await
        })
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
        let mut invocation = self.incr.key(self.key(key));
        invocation.arg(by).arg(px(ttl));
        let invocation = &invocation;
        let (n, left): (i64, i64) = self
            .run(false, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
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
        let mut invocation = self.cas.key(self.key(key));
        invocation.arg(expected).arg(new).arg(px(ttl));
        let invocation = &invocation;
        let swapped: i64 = self
            .run(false, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
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
        let cmd = &cmd;
        let receivers: i64 = self
            .run(
                true,
                |mut conn| async move { cmd.query_async(&mut conn).await },
            )
            .await?;
        Ok(usize::try_from(receivers).unwrap_or(0))
    }

    /// One task holds one subscription connection (PSUBSCRIBE `<prefix>*`) for the caller, and
    /// pings it: a connection that stops answering is dropped, reported `Down`, and replaced.
    fn listen(&self, prefix: &str) -> BoxStream<'static, BusEvent> {
        let (tx, rx) = mpsc::channel::<BusEvent>(1024);
        let connector = Arc::clone(&self.connector);
        let pattern = format!("{}*", self.key(prefix));
        let key_prefix = self.prefix.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            while !tx.is_closed() {
                let connected = tokio::time::timeout(timeout, async {
                    let client = connector.bus_client().await?;
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
                                let answered = tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await;
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
                } else if let Ok(Err(e)) = &connected {
                    connector.failed(e).await;
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
        let mut invocation = self.slots_acquire.prepare_invoke();
        for (key, _) in sets {
            invocation.key(self.key(key));
        }
        invocation.arg(member).arg(self.clock.now_ms()).arg(px(ttl));
        for (_, limit) in sets {
            invocation.arg(*limit);
        }
        let invocation = &invocation;
        let taken: i64 = self
            .run(false, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok(taken == 1)
    }

    async fn release_slots(&self, sets: &[String], member: &str) -> StoreResult<()> {
        // One command per set (they share a hash tag, but a pipeline is not needed for that).
        for key in sets {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(self.key(key)).arg(member);
            self.query::<i64>(cmd).await?;
        }
        Ok(())
    }

    async fn scan(
        &self,
        pattern: &str,
        limit: usize,
    ) -> StoreResult<Vec<(String, Option<Duration>)>> {
        let mut found = Vec::new();
        // SCAN walks one node: in a cluster, walk every master.
        let masters = self
            .connector
            .masters()
            .await
            .map_err(|e| self.map_err(&e))?;
        for master in masters {
            let mut cursor: u64 = 0;
            loop {
                let mut cmd = redis::cmd("SCAN");
                cmd.arg(cursor)
                    .arg("MATCH")
                    .arg(self.key(pattern))
                    .arg("COUNT")
                    .arg(1000);
                let mut conn = master.clone();
                let (next, keys): (u64, Vec<String>) = self
                    .bounded_on(async move { cmd.query_async(&mut conn).await })
                    .await?;
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
                    break;
                }
            }
        }
        Ok(found)
    }

    /// A cluster answers only when it can serve every slot (`cluster_state:ok`).
    async fn ping(&self) -> StoreResult<()> {
        if self.connector.shape_name == "cluster" {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("INFO");
            let info: String = self.query(cmd).await?;
            if !info.contains("cluster_state:ok") {
                return Err(self.unavailable("the cluster cannot serve every slot".into(), false));
            }
            return Ok(());
        }
        self.query::<String>(redis::cmd("PING")).await.map(|_| ())
    }
}
