//! The SQL repository on SQLite (embedded) or PostgreSQL (production), one codebase.
//!
//! Each query is written once with `$N` placeholders (numbered in order of first use, which
//! SQLite binds positionally) and run against whichever pool is configured by `on_db!`, so every
//! body type-checks against both drivers. Only integers and text cross the boundary.

mod accounts;
mod events;
mod invites;
mod mfa;
pub mod migrations;
mod passkeys;
#[cfg(test)]
mod placeholders;
pub mod postgres;
mod retention;
mod security;
mod sessions;
mod teams;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::{Config, SqlBackend};
use crate::service::ports::StoreError;

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(Arc<postgres::PgHandle>),
    Sqlite(SqlitePool),
}

/// Runs the same body against the configured pool, counting it (`sql_calls_total`: one per
/// statement, or per transaction, sent to the database).
///
/// On PostgreSQL the body gets the pool in use now (a failover may swap it; see
/// `postgres.rs`), and its outcome is reported back so that an unreachable or read-only
/// primary is noticed. Behind a transaction pooler (`DATABASE_STATEMENT_CACHE_CAPACITY=0`)
/// the body runs on one connection inside its own transaction instead.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {{
        ::metrics::counter!("sql_calls_total").increment(1);
        match $db {
            $crate::store::sql::Db::Postgres(pg) => {
                let current = pg.pool();
                let outcome = if pg.pins_statements() {
                    #[allow(unused_imports)]
                    use ::sqlx::Connection as _;
                    match current
                        .begin_with($crate::store::sql::postgres::PINNED_BEGIN)
                        .await
                    {
                        Ok(mut tx) => {
                            let r = {
                                let $pool = &mut *tx;
                                $body
                            };
                            $crate::store::sql::postgres::finish(tx, r).await
                        }
                        Err(e) => $crate::store::sql::postgres::Outcome::from_sql_error(e),
                    }
                } else {
                    let $pool = &current;
                    $body
                };
                pg.observe(&outcome);
                outcome
            }
            $crate::store::sql::Db::Sqlite($pool) => $body,
        }
    }};
}
pub(crate) use on_db;

/// The SQL repository: implements the service's repository ports.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(crate) db: Db,
}

impl SqlStore {
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        let db = match &config.sql {
            SqlBackend::Sqlite { path } => Db::Sqlite(connect_sqlite(path).await?),
            SqlBackend::Postgres { url } => {
                let target =
                    postgres::PgTarget::parse(url.expose_secret()).map_err(anyhow::Error::msg)?;
                let settings = postgres::PoolSettings {
                    max_connections: config.db_max_connections,
                    acquire_timeout: config.db_acquire_timeout,
                    statement_cache_capacity: config.db_statement_cache_capacity,
                };
                Db::Postgres(postgres::PgHandle::connect(target, settings).await?)
            }
        };
        Ok(Self { db })
    }

    pub async fn migrate(&self) -> anyhow::Result<usize> {
        migrations::run(&self.db).await
    }
}

async fn connect_sqlite(path: &Path) -> anyhow::Result<SqlitePool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::config::create_private_dir(dir)?;
    }
    owner_only_file(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?)
}

/// The database file is created (or tightened) to 0600 before SQLite opens it; SQLite gives its
/// `-wal` and `-shm` files the database file's permissions.
fn owner_only_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    drop(file);
    Ok(())
}

/// A database that is down or saturated is `Unavailable` (503, retried by clients); anything
/// else is a bug and becomes an opaque 500.
pub(crate) fn db_err(e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable {
            dependency: "database",
            reason: e.to_string(),
        }
    } else {
        StoreError::Other(e.into())
    }
}

/// Down, saturated, or (after a failover) read-only: worth a retry, and a reason to look for
/// the primary again.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(d) => is_transient(d.code().as_deref()),
        _ => false,
    }
}

/// SQLite busy/locked; PostgreSQL admin shutdown / cannot connect now / too many connections /
/// connection failures / a write refused by a read-only server (a standby, or a primary that
/// was demoted).
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "5" | "6"
                | "517"
                | "57P01"
                | "57P02"
                | "57P03"
                | "53300"
                | "08006"
                | "08001"
                | "08004"
                | "25006"
        )
    )
}
