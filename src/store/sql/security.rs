//! Devices signed in from, new-device alert links, and team security policies.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{TeamId, TokenHash, UserId};
use crate::service::ports::{
    DeviceHistory, DeviceHistoryRepo, StoreResult, TeamPolicyRecord, TeamPolicyRepo,
};

/// "Has a second factor": a confirmed TOTP or at least one passkey.
const HAS_FACTOR: &str = "(EXISTS (SELECT 1 FROM passkeys pk WHERE pk.user_id = u.id)
    OR EXISTS (SELECT 1 FROM user_mfa m WHERE m.user_id = u.id AND m.totp_confirmed_at IS NOT NULL))";

#[async_trait]
impl DeviceHistoryRepo for SqlStore {
    async fn device_history(
        &self,
        user_id: UserId,
        fingerprint: &str,
    ) -> StoreResult<DeviceHistory> {
        const SQL: &str = "SELECT count(*), count(CASE WHEN fingerprint = $2 THEN 1 END)
            FROM known_devices WHERE user_id = $1";
        let (any, this): (i64, i64) = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(fingerprint)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        Ok(DeviceHistory {
            any_known: any > 0,
            this_known: this > 0,
        })
    }

    async fn remember_device(
        &self,
        user_id: UserId,
        fingerprint: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str =
            "INSERT INTO known_devices (user_id, fingerprint, first_seen_at, last_seen_at)
            VALUES ($1, $2, $3, $3)
            ON CONFLICT (user_id, fingerprint) DO UPDATE SET last_seen_at = excluded.last_seen_at";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user_id)
            .bind(fingerprint)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn forget_device(&self, user_id: UserId, fingerprint: &str) -> StoreResult<()> {
        const SQL: &str = "DELETE FROM known_devices WHERE user_id = $1 AND fingerprint = $2";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user_id)
            .bind(fingerprint)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn insert_device_alert(
        &self,
        token_hash: &TokenHash,
        user_id: UserId,
        fingerprint: &str,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO new_device_alerts (token_hash, user_id, fingerprint, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5)";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(token_hash.as_str())
            .bind(user_id)
            .bind(fingerprint)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn consume_device_alert(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<(UserId, String)>> {
        const SQL: &str = "UPDATE new_device_alerts SET used_at = $1
            WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1
            RETURNING user_id, fingerprint";
        on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(now)
            .bind(token_hash.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(db_err)
    }
}

#[async_trait]
impl TeamPolicyRepo for SqlStore {
    async fn team_policy(&self, team_id: TeamId) -> StoreResult<Option<TeamPolicyRecord>> {
        const SQL: &str = "SELECT require_mfa, grace_days, enforced_from, updated_at
            FROM team_security_policies WHERE team_id = $1";
        let row: Option<(i64, i64, Option<i64>, i64)> = on_db!(&self.db, |pool| {
            sqlx::query_as(SQL).bind(team_id).fetch_optional(pool).await
        })
        .map_err(db_err)?;
        Ok(row.map(
            |(require_mfa, grace_days, enforced_from, updated_at)| TeamPolicyRecord {
                require_mfa: require_mfa != 0,
                grace_days,
                enforced_from,
                updated_at,
            },
        ))
    }

    async fn set_team_policy(
        &self,
        team_id: TeamId,
        p: &TeamPolicyRecord,
        updated_by: UserId,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO team_security_policies
            (team_id, require_mfa, grace_days, enforced_from, updated_at, updated_by)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (team_id) DO UPDATE SET require_mfa = excluded.require_mfa,
                grace_days = excluded.grace_days, enforced_from = excluded.enforced_from,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(team_id)
            .bind(i64::from(p.require_mfa))
            .bind(p.grace_days)
            .bind(p.enforced_from)
            .bind(p.updated_at)
            .bind(updated_by)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn members_without_mfa(&self, team_id: TeamId) -> StoreResult<Vec<(UserId, String)>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT u.id, u.email FROM team_members tm JOIN users u ON u.id = tm.user_id
             WHERE tm.team_id = $1 AND u.deleted_at IS NULL AND NOT {HAS_FACTOR} ORDER BY u.id"
        ));
        on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(team_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)
    }

    async fn has_second_factor(&self, user_id: UserId) -> StoreResult<bool> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM users u WHERE u.id = $1 AND {HAS_FACTOR}"
        ));
        let (n,): (i64,) = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        Ok(n > 0)
    }
}
