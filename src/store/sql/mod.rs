//! The SQL repository on SQLite (embedded) or PostgreSQL (production), one codebase.
//!
//! Each query is written once with `$N` placeholders (numbered in order of first use, which
//! SQLite binds positionally) and run against whichever pool is configured by `on_db!`, so every
//! body type-checks against both drivers. Only integers and text cross the boundary.

mod accounts;
mod events;
mod invites;
pub mod migrations;
mod sessions;
mod teams;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::config::{Config, SqlBackend};
use crate::service::ports::StoreError;

#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs the same body against the configured pool.
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::store::sql::Db::Postgres($pool) => $body,
            $crate::store::sql::Db::Sqlite($pool) => $body,
        }
    };
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
                let options = PgConnectOptions::from_str(url.expose_secret())?;
                let pool = PgPoolOptions::new()
                    .max_connections(config.db_max_connections)
                    .acquire_timeout(config.db_acquire_timeout)
                    .connect_with(options)
                    .await?;
                Db::Postgres(pool)
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
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::BeginFailed => StoreError::Unavailable {
            dependency: "database",
            reason: e.to_string(),
        },
        sqlx::Error::Database(ref d) if is_transient(d.code().as_deref()) => {
            StoreError::Unavailable {
                dependency: "database",
                reason: e.to_string(),
            }
        }
        other => StoreError::Other(other.into()),
    }
}

/// SQLite busy/locked, PostgreSQL admin shutdown / cannot connect now / too many connections.
fn is_transient(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "5" | "6" | "517" | "57P01" | "57P02" | "57P03" | "53300" | "08006" | "08001" | "08004"
        )
    )
}
