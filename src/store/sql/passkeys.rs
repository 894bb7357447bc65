//! Registered passkeys (WebAuthn credentials).

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::UserId;
use crate::domain::time::Millis;
use crate::service::ports::{PasskeyRecord, PasskeyRepo, StoreResult};

#[async_trait]
impl PasskeyRepo for SqlStore {
    async fn passkeys(&self, user_id: UserId) -> StoreResult<Vec<PasskeyRecord>> {
        const SQL: &str = "SELECT id, name, passkey, created_at, last_used_at FROM passkeys
            WHERE user_id = $1 ORDER BY id";
        let rows: Vec<(i64, String, String, i64, Option<i64>)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(user_id)
                .fetch_all(pool)
                .await)
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, name, passkey, created_at, last_used_at)| PasskeyRecord {
                    id,
                    name,
                    passkey,
                    created_at,
                    last_used_at,
                },
            )
            .collect())
    }

    async fn insert_passkey(
        &self,
        user_id: UserId,
        credential_id: &str,
        name: &str,
        passkey: &str,
        now: Millis,
    ) -> StoreResult<Option<i64>> {
        const SQL: &str = "INSERT INTO passkeys (user_id, credential_id, name, passkey, created_at)
            VALUES ($1, $2, $3, $4, $5) ON CONFLICT (credential_id) DO NOTHING RETURNING id";
        let row: Option<(i64,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(credential_id)
            .bind(name)
            .bind(passkey)
            .bind(now)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(|(id,)| id))
    }

    async fn rename_passkey(&self, user_id: UserId, id: i64, name: &str) -> StoreResult<bool> {
        const SQL: &str = "UPDATE passkeys SET name = $1 WHERE id = $2 AND user_id = $3";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn delete_passkey(&self, user_id: UserId, id: i64) -> StoreResult<bool> {
        const SQL: &str = "DELETE FROM passkeys WHERE id = $1 AND user_id = $2";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n > 0)
    }

    async fn passkey_used(
        &self,
        user_id: UserId,
        id: i64,
        passkey: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str =
            "UPDATE passkeys SET passkey = $1, last_used_at = $2 WHERE id = $3 AND user_id = $4";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(passkey)
            .bind(now)
            .bind(id)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }
}
