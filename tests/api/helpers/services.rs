//! Real dependencies a test can break: a private `redis-server` it can stop, flush and restart,
//! and a TCP proxy in front of PostgreSQL it can cut and restore.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A private Redis (no persistence, like the guide's restart-without-persistence case).
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl RedisServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// With extra `redis-server` arguments (e.g. `--maxmemory`).
    pub async fn start_with(extra: &[&str]) -> Self {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH");
        self.child = Some(child);
        for _ in 0..100 {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                // INFO answers even where PING does not (a replica refusing stale data).
                && redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn connection(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Forwards a local port to `target` until cut; a cut also drops every open connection.
pub struct TcpProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl TcpProxy {
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let target = target.to_owned();
        let (up2, gen2) = (Arc::clone(&up), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let target = target.clone();
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        TcpProxy {
            port,
            up,
            generation,
        }
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A Redis deployment of one shape (`tls`, `sentinel`, `cluster`), started by
/// `scripts/redis-shape.sh` (the same script `scripts/test.sh` uses for whole-suite runs) and
/// stopped on drop.
pub struct RedisShapeServers {
    pub dir: std::path::PathBuf,
    pub env: std::collections::HashMap<String, String>,
}

impl RedisShapeServers {
    pub fn start(shape: &str) -> Self {
        let dir = std::env::temp_dir().join(super::app::unique("mbpanel-redis-"));
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/redis-shape.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(["start", shape])
            .arg(&dir)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "redis-shape.sh start {shape}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        RedisShapeServers { dir, env }
    }

    pub fn test_redis(&self) -> super::app::TestRedis {
        use super::app::TestRedis;
        let var = |k: &str| self.env.get(k).cloned().unwrap_or_default();
        match var("TEST_REDIS_SHAPE").as_str() {
            "sentinel" => TestRedis::Sentinel {
                sentinels: var("TEST_REDIS_SENTINELS"),
                master: var("TEST_REDIS_SENTINEL_MASTER"),
            },
            "cluster" => TestRedis::Cluster {
                nodes: var("TEST_REDIS_CLUSTER_NODES"),
            },
            _ => TestRedis::Url {
                url: var("TEST_REDIS_URL"),
                ca_cert: self.env.get("TEST_REDIS_CA_CERT").cloned(),
            },
        }
    }

    /// Ports of the servers (from their pid files' names), for redis-cli.
    pub fn ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = std::fs::read_dir(&self.dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        name.strip_prefix("redis-")?
                            .strip_suffix(".pid")?
                            .parse()
                            .ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        ports.sort_unstable();
        ports
    }
}

impl Drop for RedisShapeServers {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/redis-shape.sh");
        let _ = Command::new("bash")
            .arg(script)
            .arg("stop")
            .arg(&self.dir)
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `redis-cli` and returns its output.
pub fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(args)
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
