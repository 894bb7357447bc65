//! Embedded migrations by `sqlx::migrate!`, one folder per dialect with identical version
//! numbers (a test checks): a new `NNNN_name.sql` in both folders is picked up at the next
//! build, with its checksum recorded in `_sqlx_migrations`.
//!
//! What sqlx's migrator does not do by itself, and this module adds:
//! - no DDL when nothing is pending: `pending` looks with read-only queries first (a server on
//!   a read-only standby, or with a role that cannot create tables, starts);
//! - PgBouncer transaction pooling: sqlx's session-level lock is off; the whole run is one
//!   transaction holding our transaction-level advisory lock (sqlx's per-migration
//!   transactions become savepoints inside it), so concurrent start-ups serialise;
//! - adoption of databases migrated by the former runner (`schema_migrations`): its versions
//!   are recorded into `_sqlx_migrations` with their checksums, without re-running them.

use std::collections::HashMap;

use sqlx::Connection;
use sqlx::migrate::Migrator;

use super::{Db, on_db};

pub static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
pub static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Serialises concurrent start-ups of several instances on one PostgreSQL. A transaction-level
/// lock, so that it also holds through a transaction pooler (PgBouncer).
const PG_LOCK: &str = "SELECT pg_advisory_xact_lock(7262838461)";
const PG_HAS_TABLE: &str = "SELECT count(*) FROM pg_catalog.pg_tables
    WHERE schemaname = current_schema() AND tablename = $1";
const SQLITE_HAS_TABLE: &str =
    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1";
const APPLIED: &str =
    "SELECT version, checksum FROM _sqlx_migrations WHERE success ORDER BY version";
const LEGACY_APPLIED: &str = "SELECT version FROM schema_migrations ORDER BY version";

/// The migrations of this database's dialect.
pub fn migrator(db: &Db) -> &'static Migrator {
    match db {
        Db::Postgres(_) => &POSTGRES,
        Db::Sqlite(_) => &SQLITE,
    }
}

async fn has_table(db: &Db, name: &str) -> anyhow::Result<bool> {
    let sql = match db {
        Db::Postgres(_) => PG_HAS_TABLE,
        Db::Sqlite(_) => SQLITE_HAS_TABLE,
    };
    let (n,): (i64,) = on_db!(db, |pool| sqlx::query_as(sql)
        .bind(name)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// The versions recorded as applied (by sqlx's migrator), read-only; empty when never migrated.
pub async fn applied(db: &Db) -> anyhow::Result<Vec<i64>> {
    Ok(applied_checksums(db)
        .await?
        .into_keys()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect())
}

async fn applied_checksums(db: &Db) -> anyhow::Result<HashMap<i64, Vec<u8>>> {
    if !has_table(db, "_sqlx_migrations").await? {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Vec<u8>)> =
        on_db!(db, |pool| sqlx::query_as(APPLIED).fetch_all(pool).await)?;
    Ok(rows.into_iter().collect())
}

/// The versions not applied yet (or applied with another checksum), found with read-only
/// queries.
pub async fn pending(db: &Db) -> anyhow::Result<Vec<i64>> {
    let applied = applied_checksums(db).await?;
    Ok(migrator(db)
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .filter(|m| applied.get(&m.version).is_none_or(|c| **c != *m.checksum))
        .map(|m| m.version)
        .collect())
}

/// The versions the former runner recorded in `schema_migrations`, if that table exists.
async fn legacy_versions(db: &Db) -> anyhow::Result<Vec<i64>> {
    if !has_table(db, "schema_migrations").await? {
        return Ok(Vec::new());
    }
    let rows: Vec<(i64,)> = on_db!(db, |pool| sqlx::query_as(LEGACY_APPLIED)
        .fetch_all(pool)
        .await)?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}

/// Applies the pending migrations in one transaction. Returns how many ran (adopted ones not
/// counted). Does no DDL (and takes no lock) when none is pending.
pub async fn run(db: &Db) -> anyhow::Result<usize> {
    let pending = pending(db).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    // A database of the former runner: what it applied is recorded, not run again.
    let adopt = match applied_checksums(db).await?.is_empty() {
        true => legacy_versions(db).await?.into_iter().max(),
        false => None,
    };
    let mut migrator = Migrator {
        migrations: migrator(db).migrations.clone(),
        ..Migrator::DEFAULT
    };
    migrator.set_locking(false);
    match db {
        Db::Postgres(pg) => {
            let begin = if pg.pins_statements() {
                super::postgres::PINNED_BEGIN
            } else {
                "BEGIN"
            };
            let mut conn = pg.pool().acquire().await?;
            let mut tx = conn.begin_with(begin).await?;
            sqlx::raw_sql(PG_LOCK).execute(&mut *tx).await?;
            if let Some(version) = adopt {
                migrator.skip(&mut *tx, Some(version)).await?;
            }
            migrator.run(&mut *tx).await?;
            tx.commit().await?;
        }
        Db::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            // SQLite takes the write lock up front.
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            if let Some(version) = adopt {
                migrator.skip(&mut *tx, Some(version)).await?;
            }
            migrator.run(&mut *tx).await?;
            tx.commit().await?;
        }
    }
    let left = self::pending(db).await?;
    let adopted = adopt.map_or(0, |v| pending.iter().filter(|p| **p <= v).count());
    Ok(pending.len() - left.len() - adopted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_have_the_same_versions() {
        let v = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(v(&SQLITE), v(&POSTGRES));
        assert!(SQLITE.iter().count() >= 5);
    }
}
