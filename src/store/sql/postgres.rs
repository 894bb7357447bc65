//! PostgreSQL beyond one server: libpq multi-host targets (`postgres://a:5432,b:5433/db?
//! target_session_attrs=read-write` or `host=a,b port=5432,5433 dbname=db …`), finding the
//! primary, following a failover by swapping the pool without a restart, and the mode for a
//! transaction pooler (PgBouncer < 1.21) in front of the database.
//!
//! sqlx connects to one host, so the host list is ours: at start-up, and whenever a statement
//! fails because the database is unreachable or read-only (`25006` after a promotion
//! elsewhere), a supervisor walks the hosts in order and points the pool at the first one that
//! accepts and satisfies `target_session_attrs`. Requests fail with 503 meanwhile.
//!
//! Behind a transaction pooler a server connection is ours only inside a transaction, and sqlx
//! parses a statement and binds it in two separate round trips (each ending in `Sync`): outside
//! a transaction they can reach two different servers, so even unnamed statements are unsafe.
//! With `DATABASE_STATEMENT_CACHE_CAPACITY=0` every pooled use therefore runs inside its own
//! transaction (begun with `DEALLOCATE ALL`, which drops statements other clients left on that
//! server so that sqlx's statement names never collide), and nothing is cached.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgSslMode};
use sqlx::{Connection, Row};
use tokio::sync::Notify;

use crate::service::ports::StoreError;

/// What a host must be to be used (libpq's `target_session_attrs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    /// `SHOW transaction_read_only` is off.
    ReadWrite,
    /// Not in recovery.
    Primary,
}

/// A parsed `DATABASE_URL` for PostgreSQL: one or more hosts and the options shared by all.
#[derive(Clone)]
pub struct PgTarget {
    pub hosts: Vec<(String, u16)>,
    pub attrs: SessionAttrs,
    /// From the URL (`statement_cache_capacity` / `statement-cache-capacity`), if given.
    pub statement_cache_capacity: Option<usize>,
    base: PgConnectOptions,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No credentials: hosts and attributes only.
        f.debug_struct("PgTarget")
            .field("hosts", &self.hosts)
            .field("attrs", &self.attrs)
            .finish_non_exhaustive()
    }
}

fn attrs(value: &str) -> Result<SessionAttrs, String> {
    match value {
        "any" => Ok(SessionAttrs::Any),
        "read-write" => Ok(SessionAttrs::ReadWrite),
        "primary" => Ok(SessionAttrs::Primary),
        other => Err(format!(
            "target_session_attrs={other} is not supported (use any, read-write or primary)"
        )),
    }
}

/// `host[:port]` or `[v6]:port`.
fn host_port(item: &str, default_port: u16) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed [ in host {item:?}"))?;
        (h, after.strip_prefix(':'))
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (item, None),
        }
    };
    if host.is_empty() {
        return Err("an empty host in the host list".into());
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("bad port {p:?}"))?,
        None => default_port,
    };
    Ok((host.to_owned(), port))
}

impl PgTarget {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Self::parse_url(s)
        } else if s.contains('=') {
            Self::parse_keywords(s)
        } else {
            Err("must be a postgres:// URL or a libpq keyword string (host=… dbname=…)".into())
        }
    }

    fn parse_url(s: &str) -> Result<Self, String> {
        let (scheme, rest) = s.split_once("://").unwrap_or(("postgres", s));
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let (userinfo, host_list) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, q),
            None => (tail, ""),
        };
        let mut attrs_value = SessionAttrs::Any;
        let mut cache = None;
        let mut default_port = 5432;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "target_session_attrs" => attrs_value = attrs(v)?,
                "statement_cache_capacity" | "statement-cache-capacity" => {
                    cache = Some(v.parse().map_err(|_| format!("bad {k} {v:?}"))?);
                }
                "port" => {
                    default_port = v.parse().map_err(|_| format!("bad port {v:?}"))?;
                }
                _ => kept.push(pair),
            }
        }
        let hosts = if host_list.is_empty() {
            vec![("localhost".to_owned(), default_port)]
        } else {
            host_list
                .split(',')
                .map(|h| host_port(h, default_port))
                .collect::<Result<Vec<_>, _>>()?
        };
        let single = format!(
            "{scheme}://{}{}{path}{}{}",
            userinfo.map(|u| format!("{u}@")).unwrap_or_default(),
            "placeholder",
            if kept.is_empty() { "" } else { "?" },
            kept.join("&")
        );
        let base = PgConnectOptions::from_str(&single).map_err(|e| e.to_string())?;
        Ok(Self {
            hosts,
            attrs: attrs_value,
            statement_cache_capacity: cache,
            base,
        })
    }

    fn parse_keywords(s: &str) -> Result<Self, String> {
        let pairs = keyword_pairs(s)?;
        let mut base = PgConnectOptions::new_without_pgpass();
        let (mut host_list, mut port_list) = (None, None);
        let mut attrs_value = SessionAttrs::Any;
        let mut cache = None;
        for (k, v) in pairs {
            match k.as_str() {
                "host" | "hostaddr" => host_list = Some(v),
                "port" => port_list = Some(v),
                "dbname" => base = base.database(&v),
                "user" => base = base.username(&v),
                "password" => base = base.password(&v),
                "application_name" => base = base.application_name(&v),
                "sslmode" => {
                    base = base.ssl_mode(
                        PgSslMode::from_str(&v).map_err(|_| format!("bad sslmode {v:?}"))?,
                    )
                }
                "sslrootcert" => base = base.ssl_root_cert(v.as_str()),
                "target_session_attrs" => attrs_value = attrs(&v)?,
                "statement_cache_capacity" => {
                    cache = Some(v.parse().map_err(|_| format!("bad {k} {v:?}"))?);
                }
                "connect_timeout" => {}
                other => return Err(format!("unsupported keyword {other:?}")),
            }
        }
        let names: Vec<String> = host_list
            .unwrap_or_else(|| "localhost".into())
            .split(',')
            .map(str::to_owned)
            .collect();
        let ports: Vec<u16> = port_list
            .unwrap_or_else(|| "5432".into())
            .split(',')
            .map(|p| p.parse().map_err(|_| format!("bad port {p:?}")))
            .collect::<Result<_, _>>()?;
        if ports.len() != 1 && ports.len() != names.len() {
            return Err(format!(
                "{} hosts but {} ports (give one port, or one per host)",
                names.len(),
                ports.len()
            ));
        }
        let hosts = names
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                if h.is_empty() {
                    return Err("an empty host in the host list".to_owned());
                }
                Ok((h, ports[if ports.len() == 1 { 0 } else { i }]))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            hosts,
            attrs: attrs_value,
            statement_cache_capacity: cache,
            base,
        })
    }

    pub fn options_for(&self, host: usize) -> PgConnectOptions {
        let (h, p) = &self.hosts[host];
        self.base.clone().host(h).port(*p)
    }

    pub fn is_multi_host(&self) -> bool {
        self.hosts.len() > 1
    }

    fn describe(&self, host: usize) -> String {
        let (h, p) = &self.hosts[host];
        format!("{h}:{p}")
    }
}

/// `key=value key2='quoted value'` (libpq's keyword/value connection string).
fn keyword_pairs(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("expected = after {key:?}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quote in {key}")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
}

/// Pool settings carried over to every pool the handle builds.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// `None`: sqlx's default. `Some(0)`: transaction-pooler mode (see the module doc).
    pub statement_cache_capacity: Option<usize>,
}

/// The PostgreSQL side of `Db`: the current pool, and what is needed to replace it.
pub struct PgHandle {
    pool: RwLock<PgPool>,
    current_host: AtomicUsize,
    target: PgTarget,
    settings: PoolSettings,
    suspect: Arc<Notify>,
}

impl fmt::Debug for PgHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgHandle")
            .field("target", &self.target)
            .field("current_host", &self.current_host)
            .finish_non_exhaustive()
    }
}

impl Drop for PgHandle {
    fn drop(&mut self) {
        // Lets the supervisor see that the handle is gone.
        self.suspect.notify_one();
    }
}

/// Transaction-pooler mode: the statement that begins every pinned transaction.
pub const PINNED_BEGIN: &str = "BEGIN; DEALLOCATE ALL";

impl PgHandle {
    pub async fn connect(
        target: PgTarget,
        mut settings: PoolSettings,
    ) -> anyhow::Result<Arc<Self>> {
        if settings.statement_cache_capacity.is_none() {
            settings.statement_cache_capacity = target.statement_cache_capacity;
        }
        let host = if target.is_multi_host() || target.attrs != SessionAttrs::Any {
            find_host(&target, 0, &settings).await.map_err(|tried| {
                anyhow::anyhow!("no host of DATABASE_URL is usable: {}", tried.join("; "))
            })?
        } else {
            0
        };
        let pool = build_pool(&settings)
            .connect_with(pool_options(&target, host, &settings))
            .await?;
        let handle = Arc::new(Self {
            pool: RwLock::new(pool),
            current_host: AtomicUsize::new(host),
            target,
            settings,
            suspect: Arc::new(Notify::new()),
        });
        if handle.target.is_multi_host() {
            tokio::spawn(supervise(
                Arc::downgrade(&handle),
                Arc::clone(&handle.suspect),
            ));
        }
        Ok(handle)
    }

    /// The pool in use now (a cheap clone).
    pub fn pool(&self) -> PgPool {
        self.pool.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True in transaction-pooler mode: each pooled use runs in its own transaction.
    pub fn pins_statements(&self) -> bool {
        self.settings.statement_cache_capacity == Some(0)
    }

    /// Called with the outcome of every statement: an unreachable or read-only database wakes
    /// the supervisor, which checks the hosts again.
    pub fn observe<R: Outcome>(&self, outcome: &R) {
        if self.target.is_multi_host() && outcome.unavailable() {
            self.suspect.notify_one();
        }
    }

    /// Index of the host the pool points at.
    pub fn current_host(&self) -> usize {
        self.current_host.load(Ordering::SeqCst)
    }
}

fn pool_options(target: &PgTarget, host: usize, settings: &PoolSettings) -> PgConnectOptions {
    let mut options = target.options_for(host);
    if let Some(capacity) = settings.statement_cache_capacity {
        options = options.statement_cache_capacity(capacity);
    }
    if settings.statement_cache_capacity == Some(0) {
        // PgBouncer refuses start-up parameters it does not know.
        options = options.extra_float_digits(None);
    }
    options
}

fn build_pool(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        // One round trip per statement: no ping before each use. A dead connection fails its
        // statement (503) and is replaced.
        .test_before_acquire(false)
}

/// What a host is now: `Ok(())` when it satisfies the target's attributes.
async fn check_host(target: &PgTarget, host: usize, settings: &PoolSettings) -> Result<(), String> {
    const STATE: &str = "SELECT CASE WHEN pg_is_in_recovery() THEN 'standby'
        WHEN current_setting('transaction_read_only') = 'on' THEN 'read-only' ELSE 'read-write' END";
    let options = pool_options(target, host, settings);
    let connect = PgConnection::connect_with(&options);
    let mut conn = tokio::time::timeout(settings.acquire_timeout, connect)
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    // Simple protocol: no prepared statement is left behind (a pooler may be in between).
    let row = sqlx::raw_sql(STATE)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| e.to_string());
    let _ = conn.close().await;
    let state: String = row?.try_get(0).map_err(|e| e.to_string())?;
    let ok = match target.attrs {
        SessionAttrs::Any => true,
        SessionAttrs::ReadWrite => state == "read-write",
        SessionAttrs::Primary => state != "standby",
    };
    if ok { Ok(()) } else { Err(state) }
}

/// The first usable host, trying `start` first and then the others in order; or what each
/// answered.
async fn find_host(
    target: &PgTarget,
    start: usize,
    settings: &PoolSettings,
) -> Result<usize, Vec<String>> {
    let n = target.hosts.len();
    let mut tried = Vec::with_capacity(n);
    for i in 0..n {
        let host = (start + i) % n;
        match check_host(target, host, settings).await {
            Ok(()) => return Ok(host),
            Err(why) => tried.push(format!("{}: {why}", target.describe(host))),
        }
    }
    Err(tried)
}

/// Waits for a suspicious failure, then makes sure the pool points at a usable host: keeps the
/// current one if it is still fine, else swaps in a pool on the first usable host (retrying
/// until one is).
async fn supervise(handle: Weak<PgHandle>, suspect: Arc<Notify>) {
    const RETRY: Duration = Duration::from_millis(250);
    loop {
        suspect.notified().await;
        let Some(h) = handle.upgrade() else { return };
        let started = Instant::now();
        let current = h.current_host();
        if check_host(&h.target, current, &h.settings).await.is_ok() {
            continue; // a blip: the pool reconnects by itself
        }
        tracing::warn!(
            event = "database_failover_started",
            host = %h.target.describe(current)
        );
        drop(h);
        loop {
            let Some(h) = handle.upgrade() else { return };
            match find_host(&h.target, current, &h.settings).await {
                Ok(host) => {
                    let pool = build_pool(&h.settings).connect_lazy_with(pool_options(
                        &h.target,
                        host,
                        &h.settings,
                    ));
                    let old = std::mem::replace(
                        &mut *h.pool.write().unwrap_or_else(|e| e.into_inner()),
                        pool,
                    );
                    h.current_host.store(host, Ordering::SeqCst);
                    tokio::spawn(async move { old.close().await });
                    metrics::counter!("database_failovers_total").increment(1);
                    tracing::warn!(
                        event = "database_failover_done",
                        host = %h.target.describe(host),
                        ms = started.elapsed().as_millis() as u64
                    );
                    break;
                }
                Err(tried) => {
                    tracing::debug!(event = "database_failover_waiting", tried = ?tried);
                }
            }
            drop(h);
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// The result of one use of the database, as `on_db!` sees it.
pub trait Outcome: Sized {
    fn from_sql_error(e: sqlx::Error) -> Self;
    fn is_ok(&self) -> bool;
    /// The database was unreachable, or refused a write as read-only.
    fn unavailable(&self) -> bool;
}

impl<T> Outcome for Result<T, sqlx::Error> {
    fn from_sql_error(e: sqlx::Error) -> Self {
        Err(e)
    }
    fn is_ok(&self) -> bool {
        self.is_ok()
    }
    fn unavailable(&self) -> bool {
        matches!(self, Err(e) if super::is_unavailable(e))
    }
}

impl<T> Outcome for Result<T, StoreError> {
    fn from_sql_error(e: sqlx::Error) -> Self {
        Err(super::db_err(e))
    }
    fn is_ok(&self) -> bool {
        self.is_ok()
    }
    fn unavailable(&self) -> bool {
        matches!(
            self,
            Err(StoreError::Unavailable {
                dependency: "database",
                ..
            })
        )
    }
}

/// Ends a pinned transaction: commits when the body succeeded, else rolls back.
pub async fn finish<R: Outcome>(tx: sqlx::Transaction<'static, sqlx::Postgres>, r: R) -> R {
    if r.is_ok() {
        match tx.commit().await {
            Ok(()) => r,
            Err(e) => R::from_sql_error(e),
        }
    } else {
        let _ = tx.rollback().await;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_host_urls() {
        let t = PgTarget::parse(
            "postgres://u:p@a:5432,b:5433,[::1]/mbpanel?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        assert_eq!(
            t.hosts,
            vec![
                ("a".to_owned(), 5432),
                ("b".to_owned(), 5433),
                ("::1".to_owned(), 5432)
            ]
        );
        assert_eq!(t.attrs, SessionAttrs::ReadWrite);
        let o = t.options_for(1);
        assert_eq!(o.get_host(), "b");
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_database(), Some("mbpanel"));
        assert_eq!(o.get_username(), "u");
        assert!(!format!("{t:?}").contains("u:p@"));
    }

    #[test]
    fn keyword_strings() {
        let t = PgTarget::parse(
            "host=a,b port=5432,5433 dbname=mbpanel user=postgres password='x y' target_session_attrs=primary",
        )
        .unwrap();
        assert_eq!(
            t.hosts,
            vec![("a".to_owned(), 5432), ("b".to_owned(), 5433)]
        );
        assert_eq!(t.attrs, SessionAttrs::Primary);
        assert_eq!(t.options_for(0).get_database(), Some("mbpanel"));
        let one_port = PgTarget::parse("host=a,b port=6000 dbname=d").unwrap();
        assert_eq!(one_port.hosts[1], ("b".to_owned(), 6000));
    }

    #[test]
    fn bad_targets_are_refused() {
        assert!(PgTarget::parse("postgres://a,b/db?target_session_attrs=standby").is_err());
        assert!(PgTarget::parse("host=a,b,c port=1,2 dbname=d").is_err());
        assert!(PgTarget::parse("postgres://a:notaport/db").is_err());
        assert!(PgTarget::parse("host=a dbname='open").is_err());
        assert!(PgTarget::parse("mysql://x").is_err());
    }

    #[test]
    fn cache_capacity_from_the_url() {
        let t = PgTarget::parse("postgres://h:6432/db?statement_cache_capacity=0").unwrap();
        assert_eq!(t.statement_cache_capacity, Some(0));
    }
}
