//! The email outbox, the audit log and the database health check.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{TeamId, UserId};
use crate::service::ports::{
    AuditEntry, AuditRecord, AuditRepo, HealthRepo, LinkTokenState, OutboxMessage, OutboxRepo,
    OutboxState, StoreResult,
};

#[async_trait]
impl OutboxRepo for SqlStore {
    async fn recent_emails(&self, to: &str, limit: i64) -> StoreResult<Vec<OutboxState>> {
        const SQL: &str = "SELECT kind, status, attempts, last_error, created_at, sent_at
            FROM email_outbox WHERE to_address = $1 ORDER BY id DESC LIMIT $2";
        #[derive(sqlx::FromRow)]
        struct Row {
            kind: String,
            status: String,
            attempts: i64,
            last_error: Option<String>,
            created_at: Millis,
            sent_at: Option<Millis>,
        }
        let rows: Vec<Row> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(to)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| OutboxState {
                kind: r.kind,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                created_at: r.created_at,
                sent_at: r.sent_at,
            })
            .collect())
    }

    async fn recent_link_tokens(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> StoreResult<Vec<LinkTokenState>> {
        const SQL: &str = "SELECT 'verification', created_at, expires_at, used_at
                FROM email_verification_tokens WHERE user_id = $1
            UNION ALL SELECT 'password_reset', created_at, expires_at, used_at
                FROM password_reset_tokens WHERE user_id = $1
            ORDER BY 2 DESC LIMIT $2";
        let rows: Vec<(String, Millis, Millis, Option<Millis>)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(user_id)
                .bind(limit)
                .fetch_all(pool)
                .await)
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(kind, created_at, expires_at, used_at)| LinkTokenState {
                kind: if kind == "verification" {
                    "verification"
                } else {
                    "password_reset"
                },
                created_at,
                expires_at,
                used_at,
            })
            .collect())
    }

    async fn enqueue_email(
        &self,
        to: &str,
        kind: &str,
        payload: &str,
        now: Millis,
    ) -> StoreResult<i64> {
        const SQL: &str = "INSERT INTO email_outbox (to_address, kind, payload, status, attempts, next_attempt_at, created_at)
            VALUES ($1, $2, $3, 'pending', 0, $4, $4) RETURNING id";
        let (id,): (i64,) = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(to)
            .bind(kind)
            .bind(payload)
            .bind(now)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        Ok(id)
    }

    async fn claim_due_emails(
        &self,
        now: Millis,
        lease_until: Millis,
        limit: i64,
    ) -> StoreResult<Vec<OutboxMessage>> {
        // A 'sending' row whose lease ran out belongs to a sender that died: claim it again.
        const DUE: &str = "SELECT id FROM email_outbox
            WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2";
        const CLAIM: &str = "UPDATE email_outbox SET status = 'sending', next_attempt_at = $1, attempts = attempts + 1
            WHERE id = $2 AND status IN ('pending', 'sending') AND next_attempt_at <= $3
            RETURNING id, to_address, kind, payload, attempts";
        let due: Vec<(i64,)> = on_db!(&self.db, |pool| sqlx::query_as(DUE)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        let mut claimed = Vec::with_capacity(due.len());
        for (id,) in due {
            let row: Option<(i64, String, String, String, i64)> =
                on_db!(&self.db, |pool| sqlx::query_as(CLAIM)
                    .bind(lease_until)
                    .bind(id)
                    .bind(now)
                    .fetch_optional(pool)
                    .await)
                .map_err(db_err)?;
            if let Some((id, to_address, kind, payload, attempts)) = row {
                claimed.push(OutboxMessage {
                    id,
                    to_address,
                    kind,
                    payload,
                    attempts,
                });
            }
        }
        Ok(claimed)
    }

    /// A sent message keeps only a redacted summary (its kind stays in `kind`): its links and
    /// codes must not stay usable at rest.
    async fn mark_email_sent(&self, id: i64, now: Millis) -> StoreResult<()> {
        const SQL: &str =
            "UPDATE email_outbox SET status = 'sent', sent_at = $1, last_error = NULL,
            payload = '{\"redacted\":true}' WHERE id = $2";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn mark_email_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<Millis>,
    ) -> StoreResult<()> {
        const RETRY: &str = "UPDATE email_outbox SET status = 'pending', last_error = $1, next_attempt_at = $2 WHERE id = $3";
        const GIVE_UP: &str = "UPDATE email_outbox SET status = 'failed', last_error = $1,
            payload = '{\"redacted\":true}' WHERE id = $2";
        match retry_at {
            Some(at) => on_db!(&self.db, |pool| sqlx::query(RETRY)
                .bind(error)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
            None => on_db!(&self.db, |pool| sqlx::query(GIVE_UP)
                .bind(error)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
        }
        .map_err(db_err)?;
        Ok(())
    }
}

/// One `audit_log` row with its actor's email (`actor_email`).
#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: Millis,
    event: String,
    actor_user_id: Option<UserId>,
    actor_email: Option<String>,
    user_id: Option<UserId>,
    team_id: Option<TeamId>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    details: String,
}

fn audit_record(row: AuditRow) -> AuditRecord {
    let AuditRow {
        id,
        at,
        event,
        actor_user_id,
        actor_email,
        user_id,
        team_id,
        ip_address,
        user_agent,
        details,
    } = row;
    AuditRecord {
        id,
        at,
        event,
        actor_user_id,
        actor_email,
        user_id,
        team_id,
        ip_address,
        user_agent,
        details,
    }
}

#[async_trait]
impl AuditRepo for SqlStore {
    async fn user_audit(
        &self,
        user_id: UserId,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        const SQL: &str = "SELECT a.id, a.at, a.event, a.actor_user_id, u.email AS actor_email, a.user_id, a.team_id, a.ip_address, a.user_agent, a.details
            FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id
            WHERE a.user_id = $1 AND a.id < $2 ORDER BY a.id DESC LIMIT $3";
        let before = before_id.unwrap_or(i64::MAX);
        let rows: Vec<AuditRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(audit_record).collect())
    }

    async fn team_audit(
        &self,
        team_id: TeamId,
        before_id: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        const SQL: &str = "SELECT a.id, a.at, a.event, a.actor_user_id, u.email AS actor_email, a.user_id, a.team_id, a.ip_address, a.user_agent, a.details
            FROM audit_log a LEFT JOIN users u ON u.id = a.actor_user_id
            WHERE (a.team_id = $1 OR (a.team_id IS NULL AND a.event IN ('login_failed', 'login_rate_limited', 'refresh_token_reuse', 'user_deleted', 'user_restored')
                   AND EXISTS (SELECT 1 FROM team_members tm WHERE tm.team_id = $1 AND tm.user_id = a.user_id AND tm.created_at <= a.at)))
              AND a.id < $2
            ORDER BY a.id DESC LIMIT $3";
        let before = before_id.unwrap_or(i64::MAX);
        let rows: Vec<AuditRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(team_id)
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(audit_record).collect())
    }

    async fn append_audit(&self, e: &AuditEntry, at: Millis) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO audit_log (at, event, actor_user_id, user_id, team_id, ip_address, user_agent, details)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let details = if e.details.is_null() {
            "{}".to_owned()
        } else {
            e.details.to_string()
        };
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(at)
            .bind(e.event)
            .bind(e.actor_user_id)
            .bind(e.user_id)
            .bind(e.team_id)
            .bind(&e.ip_address)
            .bind(&e.user_agent)
            .bind(&details)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl HealthRepo for SqlStore {
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        let rows: Vec<(i64,)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await).map_err(db_err)?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    async fn index_names(&self) -> StoreResult<Vec<String>> {
        const PG: &str = "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname";
        const SQLITE: &str = "SELECT name FROM sqlite_master WHERE type = 'index' ORDER BY name";
        let sql = match &self.db {
            super::Db::Postgres(_) => PG,
            super::Db::Sqlite(_) => SQLITE,
        };
        let rows: Vec<(String,)> =
            on_db!(&self.db, |pool| sqlx::query_as(sql).fetch_all(pool).await).map_err(db_err)?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    async fn ping_db(&self) -> StoreResult<()> {
        const SQL: &str = "SELECT 1";
        let _: (i32,) =
            on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_one(pool).await).map_err(db_err)?;
        Ok(())
    }
}
