//! The three Redis deployments of SPEC §12 behind one connection type, each through the
//! `redis` crate's own support:
//! - standalone (`redis://`, or `rediss://` with rustls and an optional private CA): one
//!   `ConnectionManager`, which reconnects by itself;
//! - Sentinel: the crate's `SentinelClient` names the current master; when a command fails in
//!   a way a failover explains (connection lost, `READONLY`, `MASTERDOWN`, `LOADING`), the
//!   master is forgotten and asked for again, so the service follows a failover without a
//!   restart;
//! - Cluster: the crate's async `ClusterConnection`, which routes by slot and follows
//!   MOVED/ASK. Pub/sub is cluster-wide in Redis Cluster, so every instance listens (and
//!   publishes its bus messages) on the first seed node that answers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelServerType};
use redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, TlsCertificates, Value};
use secrecy::ExposeSecret;
use tokio::sync::{Mutex, OnceCell, RwLock};

use crate::config::RedisShape;

/// A connection commands run on, whatever the shape (cheap to clone).
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

enum Kind {
    Standalone {
        client: Client,
        conn: ConnectionManager,
    },
    Sentinel {
        sentinel: Mutex<SentinelClient>,
        master: RwLock<Option<(Client, ConnectionManager)>>,
    },
    Cluster {
        client: ClusterClient,
        conn: OnceCell<ClusterConnection>,
        seeds: Vec<Client>,
        bus: RwLock<Option<(Client, ConnectionManager)>>,
        /// Whether the seeds are `rediss://`, and the private CA, for per-node connections.
        tls: bool,
        ca: Option<Arc<Vec<u8>>>,
    },
}

pub struct RedisConnector {
    kind: Kind,
    config: ConnectionManagerConfig,
    timeout: Duration,
    /// A short name for logs and `/readyz`.
    pub shape_name: &'static str,
}

fn client(url: &str, ca: Option<&Arc<Vec<u8>>>) -> RedisResult<Client> {
    match ca {
        Some(pem) if url.starts_with("rediss://") => Client::build_with_tls(
            url,
            TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.as_ref().clone()),
            },
        ),
        _ => Client::open(url),
    }
}

/// Errors a Sentinel failover explains: ask the sentinels for the master again.
fn failover_symptom(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_timeout()
        || matches!(e.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl RedisConnector {
    /// Builds the connector; nothing is connected yet (the service starts, and answers 503,
    /// while Redis is down).
    pub fn new(
        shape: &RedisShape,
        ca_cert: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let ca = ca_cert
            .map(std::fs::read)
            .transpose()
            .map_err(|e| anyhow::anyhow!("REDIS_CA_CERT: {e}"))?
            .map(Arc::new);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let (kind, shape_name) = match shape {
            RedisShape::Standalone { url } => {
                let client = client(url.expose_secret(), ca.as_ref())?;
                let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
                (Kind::Standalone { client, conn }, "standalone")
            }
            RedisShape::Sentinel {
                sentinels,
                master,
                sentinel_password,
            } => {
                let urls: Vec<String> = sentinels
                    .iter()
                    .map(|u| {
                        let mut url = url::Url::parse(u.expose_secret())?;
                        if let Some(p) = sentinel_password {
                            url.set_password(Some(p.expose_secret()))
                                .map_err(|()| anyhow::anyhow!("REDIS_SENTINELS: bad URL"))?;
                        }
                        Ok(url.to_string())
                    })
                    .collect::<anyhow::Result<_>>()?;
                let sentinel =
                    SentinelClient::build(urls, master.clone(), None, SentinelServerType::Master)?;
                (
                    Kind::Sentinel {
                        sentinel: Mutex::new(sentinel),
                        master: RwLock::new(None),
                    },
                    "sentinel",
                )
            }
            RedisShape::Cluster { nodes } => {
                let urls: Vec<String> =
                    nodes.iter().map(|n| n.expose_secret().to_owned()).collect();
                let mut builder = ClusterClient::builder(urls.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(3);
                if let Some(pem) = &ca {
                    builder = builder.certs(TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.as_ref().clone()),
                    });
                }
                let seeds = urls
                    .iter()
                    .map(|u| client(u, ca.as_ref()))
                    .collect::<RedisResult<Vec<_>>>()?;
                (
                    Kind::Cluster {
                        client: builder.build()?,
                        conn: OnceCell::new(),
                        seeds,
                        bus: RwLock::new(None),
                        tls: urls.iter().any(|u| u.starts_with("rediss://")),
                        ca: ca.clone(),
                    },
                    "cluster",
                )
            }
        };
        Ok(Self {
            kind,
            config,
            timeout,
            shape_name,
        })
    }

    /// Whether a failed command may be retried after `failed` (a Sentinel failover).
    pub fn retries_after_failover(&self, e: &RedisError) -> bool {
        matches!(self.kind, Kind::Sentinel { .. }) && failover_symptom(e)
    }

    /// The connection for commands.
    pub async fn commands(&self) -> RedisResult<Conn> {
        match &self.kind {
            Kind::Standalone { conn, .. } => Ok(Conn::Single(conn.clone())),
            Kind::Sentinel { .. } => Ok(Conn::Single(self.sentinel_master().await?.1)),
            Kind::Cluster { client, conn, .. } => {
                let conn = conn
                    .get_or_try_init(|| client.get_async_connection())
                    .await?;
                Ok(Conn::Cluster(conn.clone()))
            }
        }
    }

    /// A command failed with `e`: a Sentinel set forgets a master that a failover may have
    /// replaced; a cluster forgets its bus node if that one is gone.
    pub async fn failed(&self, e: &RedisError) {
        if !failover_symptom(e) {
            return;
        }
        match &self.kind {
            Kind::Sentinel { master, .. } => *master.write().await = None,
            Kind::Cluster { bus, .. } => *bus.write().await = None,
            Kind::Standalone { .. } => {}
        }
    }

    async fn sentinel_master(&self) -> RedisResult<(Client, ConnectionManager)> {
        let Kind::Sentinel { sentinel, master } = &self.kind else {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "not a sentinel set",
            )));
        };
        if let Some(current) = master.read().await.as_ref() {
            return Ok(current.clone());
        }
        let mut slot = master.write().await;
        if let Some(current) = slot.as_ref() {
            return Ok(current.clone());
        }
        let client = sentinel.lock().await.async_get_client().await?;
        let conn = ConnectionManager::new_with_config(client.clone(), self.config.clone()).await?;
        tracing::info!(
            event = "redis_master_resolved",
            "Redis Sentinel named the master"
        );
        *slot = Some((client.clone(), conn.clone()));
        Ok((client, conn))
    }

    async fn cluster_bus_node(&self) -> RedisResult<(Client, ConnectionManager)> {
        let Kind::Cluster { seeds, bus, .. } = &self.kind else {
            return Err(RedisError::from((
                redis::ErrorKind::Client,
                "not a cluster",
            )));
        };
        if let Some(current) = bus.read().await.as_ref() {
            return Ok(current.clone());
        }
        let mut slot = bus.write().await;
        if let Some(current) = slot.as_ref() {
            return Ok(current.clone());
        }
        let mut last = None;
        for seed in seeds {
            match ConnectionManager::new_with_config(seed.clone(), self.config.clone()).await {
                Ok(conn) => {
                    *slot = Some((seed.clone(), conn.clone()));
                    return Ok((seed.clone(), conn));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| RedisError::from((redis::ErrorKind::Io, "no seed node"))))
    }

    /// The client the bus listener subscribes with.
    pub async fn bus_client(&self) -> RedisResult<Client> {
        match &self.kind {
            Kind::Standalone { client, .. } => Ok(client.clone()),
            Kind::Sentinel { .. } => Ok(self.sentinel_master().await?.0),
            Kind::Cluster { .. } => Ok(self.cluster_bus_node().await?.0),
        }
    }

    /// The connection bus messages are published on: in a cluster the node the listeners use,
    /// so PUBLISH counts every listening instance.
    pub async fn bus_commands(&self) -> RedisResult<Conn> {
        match &self.kind {
            Kind::Cluster { .. } => Ok(Conn::Single(self.cluster_bus_node().await?.1)),
            _ => self.commands().await,
        }
    }

    /// One connection per master (for SCAN, which is per node).
    pub async fn masters(&self) -> RedisResult<Vec<Conn>> {
        let Kind::Cluster { tls, ca, .. } = &self.kind else {
            return Ok(vec![self.commands().await?]);
        };
        let mut any = self.commands().await?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut any)
            .await?;
        let scheme = if *tls { "rediss" } else { "redis" };
        let mut masters = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            if !flags.contains("master") || flags.contains("fail") {
                continue;
            }
            let host_port = addr.split('@').next().unwrap_or(addr);
            let client = client(&format!("{scheme}://{host_port}"), ca.as_ref())?;
            let conn = ConnectionManager::new_with_config(client, self.config.clone()).await?;
            masters.push(Conn::Single(conn));
        }
        Ok(masters)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}
