//! The retention job's SQL: bounded batches inside one transaction per run.
//!
//! `audit_log` refuses every UPDATE and DELETE (triggers, migration 0004) except a DELETE of
//! rows older than a cutoff that this transaction announces: on PostgreSQL with
//! `set_config('mbpanel.audit_purge_before', …, true)` (transaction-local), on SQLite with a
//! `retention_guard` row inserted and removed inside the same transaction.

use async_trait::async_trait;

use super::{Db, SqlStore, db_err};
use crate::service::ports::{RetentionCounts, RetentionCutoffs, RetentionRepo, StoreResult};

/// One run at a time across instances (released at commit; works through a transaction pooler).
const PG_TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock(7262838462)";
const PG_ALLOW_AUDIT: &str = "SELECT set_config('mbpanel.audit_purge_before', $1, true)";
const SQLITE_ALLOW_AUDIT: &str = "INSERT INTO retention_guard (id, audit_before) VALUES (1, $1)";
const SQLITE_END_AUDIT: &str = "DELETE FROM retention_guard";

const SESSIONS: &str = "DELETE FROM active_sessions WHERE id IN (SELECT id FROM active_sessions
    WHERE expires_at < $1 OR revoked_at < $1 LIMIT $2)";
const VERIFICATION: &str = "DELETE FROM email_verification_tokens WHERE token IN (
    SELECT token FROM email_verification_tokens WHERE used_at < $1 OR expires_at < $1 LIMIT $2)";
const RESET: &str = "DELETE FROM password_reset_tokens WHERE token_hash IN (
    SELECT token_hash FROM password_reset_tokens WHERE used_at < $1 OR expires_at < $1 LIMIT $2)";
const INVITES: &str = "DELETE FROM team_invites WHERE id IN (SELECT id FROM team_invites
    WHERE accepted_at < $1 OR revoked_at < $1 OR expires_at < $1 LIMIT $2)";
/// "This wasn't me" links of new-device alerts, once used or expired.
const NEW_DEVICE_ALERTS: &str = "DELETE FROM new_device_alerts WHERE token_hash IN (
    SELECT token_hash FROM new_device_alerts WHERE used_at < $1 OR expires_at < $1 LIMIT $2)";
/// Trusted devices expired or forgotten (forgetting expires them): their user agent and the
/// hash of their cookie go once they can no longer skip the emailed code.
const TRUSTED_DEVICES: &str = "DELETE FROM trusted_devices WHERE id IN (
    SELECT id FROM trusted_devices WHERE expires_at < $1 LIMIT $2)";
/// A sent message's payload holds its links and codes: blanked as soon as the job sees it.
const OUTBOX_BLANK: &str = "UPDATE email_outbox SET payload = '{}' WHERE id IN (
    SELECT id FROM email_outbox WHERE status = 'sent' AND payload <> '{}' LIMIT $1)";
const OUTBOX_DELETE: &str = "DELETE FROM email_outbox WHERE id IN (SELECT id FROM email_outbox
    WHERE status IN ('sent', 'failed') AND created_at < $1 LIMIT $2)";
const AUDIT: &str = "DELETE FROM audit_log WHERE id IN (
    SELECT id FROM audit_log WHERE at < $1 ORDER BY id LIMIT $2)";

#[async_trait]
impl RetentionRepo for SqlStore {
    async fn purge_expired(&self, c: &RetentionCutoffs) -> StoreResult<Option<RetentionCounts>> {
        let batch = c.batch_size.max(1);
        // Runs `sql` (bound with `cutoff` if any, then the batch size) until a batch comes back
        // short, at most `max_batches` times.
        macro_rules! batches {
            ($tx:expr, $sql:expr, $cutoff:expr) => {{
                let mut total = 0u64;
                for _ in 0..c.max_batches.max(1) {
                    let q = sqlx::query($sql);
                    let q = match $cutoff {
                        Some(cutoff) => q.bind(cutoff),
                        None => q,
                    };
                    let n = q
                        .bind(batch)
                        .execute(&mut *$tx)
                        .await
                        .map_err(db_err)?
                        .rows_affected();
                    ::metrics::counter!("sql_calls_total").increment(1);
                    total += n;
                    if n < batch as u64 {
                        break;
                    }
                }
                total
            }};
        }
        macro_rules! purge {
            ($tx:expr) => {
                RetentionCounts {
                    sessions: batches!($tx, SESSIONS, Some(c.sessions_before)),
                    email_verification_tokens: batches!($tx, VERIFICATION, Some(c.tokens_before)),
                    password_reset_tokens: batches!($tx, RESET, Some(c.tokens_before)),
                    team_invites: batches!($tx, INVITES, Some(c.tokens_before)),
                    new_device_alerts: batches!($tx, NEW_DEVICE_ALERTS, Some(c.tokens_before)),
                    trusted_devices: batches!($tx, TRUSTED_DEVICES, Some(c.tokens_before)),
                    outbox_payloads: batches!($tx, OUTBOX_BLANK, None::<i64>),
                    outbox_messages: batches!($tx, OUTBOX_DELETE, Some(c.outbox_before)),
                    audit_entries: batches!($tx, AUDIT, Some(c.audit_before)),
                }
            };
        }
        match &self.db {
            Db::Postgres(pg) => {
                let begin = if pg.pins_statements() {
                    super::postgres::PINNED_BEGIN
                } else {
                    "BEGIN"
                };
                let pool = pg.pool();
                let mut tx = pool.begin_with(begin).await.map_err(db_err)?;
                let (locked,): (bool,) = sqlx::query_as(PG_TRY_LOCK)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if !locked {
                    return Ok(None);
                }
                sqlx::query(PG_ALLOW_AUDIT)
                    .bind(c.audit_before.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let counts = purge!(tx);
                tx.commit().await.map_err(db_err)?;
                Ok(Some(counts))
            }
            Db::Sqlite(pool) => {
                // SQLite has one writer: the write lock taken up front is the run's lock.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
                sqlx::query(SQLITE_ALLOW_AUDIT)
                    .bind(c.audit_before)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                let counts = purge!(tx);
                sqlx::query(SQLITE_END_AUDIT)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                tx.commit().await.map_err(db_err)?;
                Ok(Some(counts))
            }
        }
    }
}
