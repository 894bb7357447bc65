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
        // The port was free when asked; another process may have taken it since: then
        // redis-server exits at once, and another free port is tried.
        for _ in 0..5 {
            if server.try_start().await {
                return server;
            }
            server.port = free_port();
        }
        panic!("redis-server did not start on five free ports");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port.
    pub async fn restart(&mut self) {
        assert!(
            self.try_start().await,
            "redis-server did not start on port {}",
            self.port
        );
    }

    async fn try_start(&mut self) -> bool {
        let mut child = Command::new("redis-server")
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
        for _ in 0..100 {
            if child.try_wait().ok().flatten().is_some() {
                return false;
            }
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                // INFO answers even where PING does not (a replica refusing stale data).
                && redis::cmd("INFO")
                    .arg("server")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                self.child = Some(child);
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
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
        super::app::TestRedis::from_vars(|k| self.env.get(k).cloned())
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
/// The newest PostgreSQL server binaries installed (`/usr/lib/postgresql/<v>/bin`).
fn pg_bin(name: &str) -> std::path::PathBuf {
    let mut dirs: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("bin").join(name).exists())
        .collect();
    dirs.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    dirs.last()
        .unwrap_or_else(|| panic!("{name} under /usr/lib/postgresql/*/bin"))
        .join("bin")
        .join(name)
}

/// PostgreSQL, initdb and PgBouncer refuse to run as root: as root, run them as `postgres`.
fn unprivileged(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn postgres_ids() -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    // Root owns /proc/self; any other user runs the servers as itself.
    if std::fs::metadata("/proc/self").ok()?.uid() != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields[2].parse().ok()?, fields[3].parse().ok()?))
}

/// A private directory the servers (possibly running as `postgres`) can write.
fn private_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(super::app::unique(prefix));
    std::fs::create_dir_all(&dir).unwrap();
    if let Some((uid, gid)) = postgres_ids() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
    }
    dir
}

fn run_ok(cmd: &mut Command) {
    let out = unprivileged(cmd).output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private PostgreSQL cluster on a free port in a temporary directory (trust auth, user
/// `postgres`): a primary, or a streaming standby of one.
pub struct PgCluster {
    pub port: u16,
    root: std::path::PathBuf,
    child: Option<Child>,
}

impl PgCluster {
    fn data(&self) -> std::path::PathBuf {
        self.root.join("data")
    }

    /// A fresh primary.
    pub async fn primary() -> Self {
        let root = private_dir("mbpanel-pg-");
        let cluster = PgCluster {
            port: free_port(),
            root,
            child: None,
        };
        run_ok(
            Command::new(pg_bin("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
                .arg(cluster.data()),
        );
        cluster.started().await
    }

    /// A streaming standby of `primary` (pg_basebackup -R).
    pub async fn standby_of(primary: &PgCluster) -> Self {
        let root = private_dir("mbpanel-pg-");
        let cluster = PgCluster {
            port: free_port(),
            root,
            child: None,
        };
        run_ok(
            Command::new(pg_bin("pg_basebackup"))
                .args(["-h", "127.0.0.1", "-p", &primary.port.to_string()])
                .args(["-U", "postgres", "-R", "-X", "stream", "-c", "fast", "-D"])
                .arg(cluster.data()),
        );
        cluster.started().await
    }

    async fn started(mut self) -> Self {
        let child = unprivileged(
            Command::new(pg_bin("postgres"))
                .arg("-D")
                .arg(self.data())
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-c",
                    "listen_addresses=127.0.0.1",
                ])
                .arg("-c")
                .arg(format!("unix_socket_directories={}", self.root.display()))
                .args(["-c", "fsync=off", "-c", "wal_level=replica"]),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres starts");
        self.child = Some(child);
        for _ in 0..200 {
            if self.try_sql("SELECT 1").await.is_ok() {
                return self;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("postgres did not start on port {}", self.port);
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL on database `postgres`; each row's cells as text.
    pub async fn try_sql(&self, sql: &str) -> Result<Vec<Vec<String>>, sqlx::Error> {
        self.try_sql_on("postgres", sql).await
    }

    pub async fn try_sql_on(
        &self,
        database: &str,
        sql: &str,
    ) -> Result<Vec<Vec<String>>, sqlx::Error> {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&self.url(database)).await?;
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<String, _>(i).unwrap_or_else(|_| "NULL".into()))
                    .collect()
            })
            .collect())
    }

    /// Fast shutdown (like `pg_ctl stop -m fast`); waits until the server is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A private PgBouncer in transaction pooling mode in front of `target` (host:port), trust
/// auth for user `postgres`.
pub struct PgBouncer {
    pub port: u16,
    dir: std::path::PathBuf,
    child: Option<Child>,
}

impl PgBouncer {
    pub async fn start(target: &str, pool_size: u32) -> Self {
        let (host, port) = target.rsplit_once(':').unwrap();
        let dir = private_dir("mbpanel-pgbouncer-");
        let listen = free_port();
        std::fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").unwrap();
        let ini = format!(
            "[databases]\n* = host={host} port={port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {listen}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
             pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 200\n\
             logfile = {log}\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        std::fs::write(dir.join("pgbouncer.ini"), ini).unwrap();
        if let Some((uid, gid)) = postgres_ids() {
            for f in ["users.txt", "pgbouncer.ini"] {
                std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).unwrap();
            }
        }
        let child = unprivileged(
            Command::new(std::env::var("PGBOUNCER").unwrap_or_else(|_| {
                // Debian installs it outside a non-root user's PATH.
                if std::path::Path::new("/usr/sbin/pgbouncer").exists() {
                    "/usr/sbin/pgbouncer".into()
                } else {
                    "pgbouncer".into()
                }
            }))
            .arg(dir.join("pgbouncer.ini")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbouncer on PATH (Debian package pgbouncer)");
        let bouncer = PgBouncer {
            port: listen,
            dir,
            child: Some(child),
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", listen)).await.is_ok() {
                return bouncer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pgbouncer did not start: {}", bouncer.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
