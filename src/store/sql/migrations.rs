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

pub const SQLITE: &[Migration] =
    migrations!("sqlite": 1 "0001_init", 2 "0002_seed_rbac", 3 "0003_session_core");
pub const POSTGRES: &[Migration] =
    migrations!("postgres": 1 "0001_init", 2 "0002_seed_rbac", 3 "0003_session_core");

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
const APPLIED: &str = "SELECT version FROM schema_migrations ORDER BY version";
const RECORD: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)";
/// Serialises concurrent start-ups of several instances on one PostgreSQL.
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7262838461)";

/// Applies the pending migrations, each in its own transaction. Returns how many ran.
pub async fn run(db: &Db) -> anyhow::Result<usize> {
    // SQLite takes the write lock up front; PostgreSQL serialises on an advisory lock.
    let (migrations, begin, lock) = match db {
        Db::Postgres(_) => (POSTGRES, "BEGIN", Some(PG_LOCK)),
        Db::Sqlite(_) => (SQLITE, "BEGIN IMMEDIATE", None),
    };
    let mut applied_now = 0;
    on_db!(db, |pool| {
        let mut conn = pool.acquire().await?;
        for m in migrations {
            let mut tx = conn.begin_with(begin).await?;
            if let Some(lock) = lock {
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
    });
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
