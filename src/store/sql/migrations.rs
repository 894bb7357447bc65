//! Embedded migrations, one folder per dialect with identical version numbers (a test checks).

use sqlx::{Connection, Executor};

use super::{Db, on_db};
use crate::domain::time::now_ms;

pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/", $dir, "/", $name, ".sql")),
        }),*]
    };
}

pub const SQLITE: &[Migration] = migrations!("sqlite":
    1 "0001_init", 2 "0002_seed_rbac", 3 "0003_session_core", 4 "0004_retention",
    5 "0005_hot_refresh", 6 "0006_mfa",
    7 "0007_strong_auth_devices_policy");
pub const POSTGRES: &[Migration] = migrations!("postgres":
    1 "0001_init", 2 "0002_seed_rbac", 3 "0003_session_core", 4 "0004_retention",
    5 "0005_hot_refresh", 6 "0006_mfa",
    7 "0007_strong_auth_devices_policy");

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
const APPLIED: &str = "SELECT version FROM schema_migrations ORDER BY version";
const RECORD: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
/// Serialises concurrent start-ups of several instances on one PostgreSQL. A transaction-level
/// lock, so that it also holds through a transaction pooler (PgBouncer).
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7262838461)";
const PG_HAS_TABLE: &str = "SELECT count(*) FROM pg_catalog.pg_tables
    WHERE schemaname = current_schema() AND tablename = 'schema_migrations'";
const SQLITE_HAS_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'";

/// The versions of `migrations` not applied yet, found with read-only queries (so that a
/// server on a read-only standby, or with a role that cannot create tables, starts when the
/// schema is up to date).
pub async fn pending(db: &Db) -> anyhow::Result<Vec<i64>> {
    let (migrations, has_table) = match db {
        Db::Postgres(_) => (POSTGRES, PG_HAS_TABLE),
        Db::Sqlite(_) => (SQLITE, SQLITE_HAS_TABLE),
    };
    let (tables,): (i64,) = on_db!(db, |pool| sqlx::query_as(has_table).fetch_one(pool).await)?;
    let applied: Vec<(i64,)> = if tables == 0 {
        Vec::new()
    } else {
        on_db!(db, |pool| sqlx::query_as(APPLIED).fetch_all(pool).await)?
    };
    Ok(migrations
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.iter().any(|(a,)| a == v))
        .collect())
}

/// Applies the pending migrations, each in its own transaction. Returns how many ran. Does no
/// DDL (and takes no lock) when none is pending.
pub async fn run(db: &Db) -> anyhow::Result<usize> {
    if pending(db).await?.is_empty() {
        return Ok(0);
    }
    let mut applied_now = 0;
    // SQLite takes the write lock up front; PostgreSQL serialises on an advisory lock.
    macro_rules! apply {
        ($conn:expr, $migrations:expr, $begin:expr, $lock:expr) => {
            for m in $migrations {
                let mut tx = $conn.begin_with($begin).await?;
                if let Some(lock) = $lock {
                    (&mut *tx).execute(lock).await?;
                }
                (&mut *tx).execute(CREATE_TABLE).await?;
                let done: Vec<(i64,)> = sqlx::query_as(APPLIED).fetch_all(&mut *tx).await?;
                if done.iter().any(|(v,)| *v == m.version) {
                    continue;
                }
                (&mut *tx)
                    .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(m.sql)))
                    .await?;
                sqlx::query(RECORD)
                    .bind(m.version)
                    .bind(m.name)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                applied_now += 1;
            }
        };
    }
    match db {
        Db::Postgres(pg) => {
            let begin = if pg.pins_statements() {
                super::postgres::PINNED_BEGIN
            } else {
                "BEGIN"
            };
            let mut conn = pg.pool().acquire().await?;
            apply!(conn, POSTGRES, begin, Some(PG_LOCK));
        }
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            apply!(conn, SQLITE, "BEGIN IMMEDIATE", None::<&str>);
        }
    }
    Ok(applied_now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_have_the_same_versions() {
        let v = |ms: &[Migration]| ms.iter().map(|m| (m.version, m.name)).collect::<Vec<_>>();
        assert_eq!(v(SQLITE), v(POSTGRES));
    }
}
