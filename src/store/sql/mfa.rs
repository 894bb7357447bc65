//! Second factors (TOTP, recovery codes) and the sessions' step-up time.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{SessionId, TokenHash, UserId};
use crate::service::ports::{MfaRecord, MfaRepo, StepUpRepo, StoreResult};

const DELETE_CODES: &str = "DELETE FROM mfa_recovery_codes WHERE user_id = $1";
const INSERT_CODE: &str =
    "INSERT INTO mfa_recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)";

/// Inside a transaction: every old code is deleted (a new set voids the old), the new inserted.
macro_rules! replace_codes {
    ($tx:expr, $user_id:expr, $hashes:expr, $now:expr) => {{
        sqlx::query(DELETE_CODES)
            .bind($user_id)
            .execute(&mut *$tx)
            .await
            .map_err(db_err)?;
        for hash in $hashes {
            sqlx::query(INSERT_CODE)
                .bind($user_id)
                .bind(hash.as_str())
                .bind($now)
                .execute(&mut *$tx)
                .await
                .map_err(db_err)?;
        }
    }};
}

/// A user's `user_mfa` row (all null when there is none) and their unused recovery codes.
#[derive(sqlx::FromRow)]
struct MfaRow {
    recovery_codes_left: i64,
    totp_secret_sealed: Option<String>,
    totp_confirmed_at: Option<Millis>,
    totp_last_step: Option<i64>,
    totp_pending_sealed: Option<String>,
    totp_pending_at: Option<Millis>,
}

#[async_trait]
impl MfaRepo for SqlStore {
    async fn mfa(&self, user_id: UserId) -> StoreResult<MfaRecord> {
        // One round trip, a row whether or not the user ever enrolled.
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM mfa_recovery_codes
                WHERE user_id = $1 AND used_at IS NULL) AS recovery_codes_left,
            m.totp_secret_sealed, m.totp_confirmed_at, m.totp_last_step,
            m.totp_pending_sealed, m.totp_pending_at
            FROM (SELECT 1 AS one) AS one LEFT JOIN user_mfa m ON m.user_id = $1";
        let row: MfaRow = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        let MfaRow {
            recovery_codes_left,
            totp_secret_sealed,
            totp_confirmed_at,
            totp_last_step,
            totp_pending_sealed,
            totp_pending_at,
        } = row;
        Ok(MfaRecord {
            totp_secret_sealed,
            totp_confirmed_at,
            totp_last_step,
            totp_pending_sealed,
            totp_pending_at,
            recovery_codes_left,
        })
    }

    async fn set_pending_totp(
        &self,
        user_id: UserId,
        sealed: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str =
            "INSERT INTO user_mfa (user_id, totp_pending_sealed, totp_pending_at, updated_at)
            VALUES ($1, $2, $3, $3) ON CONFLICT (user_id) DO UPDATE
            SET totp_pending_sealed = $2, totp_pending_at = $3, updated_at = $3";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user_id)
            .bind(sealed)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn confirm_totp(
        &self,
        user_id: UserId,
        pending_sealed: &str,
        step: i64,
        recovery_code_hashes: &[TokenHash],
        now: Millis,
    ) -> StoreResult<bool> {
        const CONFIRM: &str = "UPDATE user_mfa SET totp_secret_sealed = totp_pending_sealed,
            totp_confirmed_at = $1, totp_last_step = $2, totp_pending_sealed = NULL,
            totp_pending_at = NULL, updated_at = $1
            WHERE user_id = $3 AND totp_pending_sealed = $4";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let confirmed = sqlx::query(CONFIRM)
                .bind(now)
                .bind(step)
                .bind(user_id)
                .bind(pending_sealed)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
            if !confirmed {
                return Ok(false);
            }
            replace_codes!(tx, user_id, recovery_code_hashes, now);
            tx.commit().await.map_err(db_err)?;
            Ok(true)
        })
    }

    async fn use_totp_step(&self, user_id: UserId, step: i64, now: Millis) -> StoreResult<bool> {
        const SQL: &str = "UPDATE user_mfa SET totp_last_step = $1, updated_at = $2
            WHERE user_id = $3 AND totp_confirmed_at IS NOT NULL
            AND (totp_last_step IS NULL OR totp_last_step < $1)";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(step)
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn remove_totp(&self, user_id: UserId, now: Millis) -> StoreResult<bool> {
        const SQL: &str = "UPDATE user_mfa SET totp_secret_sealed = NULL, totp_confirmed_at = NULL,
            totp_last_step = NULL, totp_pending_sealed = NULL, totp_pending_at = NULL,
            updated_at = $1 WHERE user_id = $2 AND totp_confirmed_at IS NOT NULL";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: &[TokenHash],
        now: Millis,
    ) -> StoreResult<()> {
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            replace_codes!(tx, user_id, code_hashes, now);
            tx.commit().await.map_err(db_err)
        })
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE mfa_recovery_codes SET used_at = $1
            WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(user_id)
            .bind(code_hash.as_str())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n == 1)
    }
}

#[async_trait]
impl StepUpRepo for SqlStore {
    async fn session_authenticated_at(&self, id: SessionId) -> StoreResult<Option<Millis>> {
        const SQL: &str =
            "SELECT COALESCE(authenticated_at, created_at) FROM active_sessions WHERE id = $1";
        let row: Option<(i64,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(|(at,)| at))
    }

    async fn set_session_authenticated_at(&self, id: SessionId, at: Millis) -> StoreResult<()> {
        const SQL: &str = "UPDATE active_sessions SET authenticated_at = $1 WHERE id = $2";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(at)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }
}
