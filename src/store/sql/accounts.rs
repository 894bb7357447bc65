//! Users, email verification tokens, trusted devices.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::permissions::OWNER_ROLE;
use crate::domain::time::Millis;
use crate::domain::{TeamId, TokenHash, UserId};
use crate::service::ports::{
    DeviceRepo, StoreResult, TrustedDeviceRecord, UserRecord, UserRepo, VerificationRepo,
};

/// One `users` row, as `USER_COLUMNS` selects it.
#[derive(sqlx::FromRow)]
struct UserRow {
    id: UserId,
    email: String,
    name: String,
    password_hash: String,
    email_verified_at: Option<Millis>,
    deleted_at: Option<Millis>,
}

fn user(row: UserRow) -> UserRecord {
    let UserRow {
        id,
        email,
        name,
        password_hash,
        email_verified_at,
        deleted_at,
    } = row;
    UserRecord {
        id,
        email,
        name,
        password_hash,
        email_verified_at,
        deleted_at,
    }
}

const USER_COLUMNS: &str = "id, email, name, password_hash, email_verified_at, deleted_at";

#[async_trait]
impl UserRepo for SqlStore {
    async fn create_user_with_team(
        &self,
        email: &str,
        name: &str,
        password_hash: &str,
        team_name: &str,
        now: Millis,
    ) -> StoreResult<Option<UserId>> {
        const INSERT_USER: &str =
            "INSERT INTO users (email, name, password_hash, created_at, updated_at)
            VALUES ($1, $2, $3, $4, $4) ON CONFLICT (email) DO NOTHING RETURNING id";
        const INSERT_TEAM: &str =
            "INSERT INTO teams (name, owner_user_id, created_at) VALUES ($1, $2, $3) RETURNING id";
        const INSERT_OWNER: &str =
            "INSERT INTO team_members (user_id, team_id, role_id, created_at)
            SELECT $1, $2, id, $3 FROM roles WHERE team_id IS NULL AND name = $4";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let id: Option<(UserId,)> = sqlx::query_as(INSERT_USER)
                .bind(email)
                .bind(name)
                .bind(password_hash)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some((user_id,)) = id else {
                return Ok(None);
            };
            let (team_id,): (TeamId,) = sqlx::query_as(INSERT_TEAM)
                .bind(team_name)
                .bind(user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(INSERT_OWNER)
                .bind(user_id)
                .bind(team_id)
                .bind(now)
                .bind(OWNER_ROLE)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(Some(user_id))
        })
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1"));
        let row: Option<UserRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(email)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(user))
    }

    async fn set_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str = "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(password_hash)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_user_deleted(&self, id: UserId, deleted_at: Option<Millis>) -> StoreResult<bool> {
        const DELETE: &str = "UPDATE users SET deleted_at = $1, updated_at = $1 WHERE id = $2 AND deleted_at IS NULL";
        const RESTORE: &str =
            "UPDATE users SET deleted_at = NULL WHERE id = $1 AND deleted_at IS NOT NULL";
        let changed = match deleted_at {
            Some(at) => on_db!(&self.db, |pool| sqlx::query(DELETE)
                .bind(at)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
            None => on_db!(&self.db, |pool| sqlx::query(RESTORE)
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
        }
        .map_err(db_err)?;
        Ok(changed == 1)
    }

    async fn set_user_name(&self, id: UserId, name: &str, now: Millis) -> StoreResult<bool> {
        const SQL: &str =
            "UPDATE users SET name = $1, updated_at = $2 WHERE id = $3 AND deleted_at IS NULL";
        let changed = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(name)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(changed == 1)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"));
        let row: Option<UserRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(user))
    }
}

#[async_trait]
impl VerificationRepo for SqlStore {
    async fn insert_password_reset(
        &self,
        token_hash: &TokenHash,
        user_id: UserId,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO password_reset_tokens (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(token_hash.as_str())
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn password_reset_user(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<UserId>> {
        const SQL: &str = "SELECT user_id FROM password_reset_tokens
            WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
        let row: Option<(UserId,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(token_hash.as_str())
            .bind(now)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(|(id,)| id))
    }

    async fn consume_password_reset(
        &self,
        token_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<Option<UserId>> {
        const SQL: &str = "UPDATE password_reset_tokens SET used_at = $1
            WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";
        let row: Option<(UserId,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(now)
            .bind(token_hash.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(|(id,)| id))
    }

    async fn insert_email_verification(
        &self,
        token: &str,
        user_id: UserId,
        expires_at: Millis,
        now: Millis,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO email_verification_tokens (token, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(token)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn consume_email_verification(
        &self,
        token: &str,
        now: Millis,
    ) -> StoreResult<Option<UserId>> {
        const USE_TOKEN: &str = "UPDATE email_verification_tokens SET used_at = $1
            WHERE token = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";
        const VERIFY_USER: &str = "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE id = $2";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let used: Option<(UserId,)> = sqlx::query_as(USE_TOKEN)
                .bind(now)
                .bind(token)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some((user_id,)) = used else {
                return Ok(None);
            };
            sqlx::query(VERIFY_USER)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(Some(user_id))
        })
    }

    async fn void_password_resets(&self, user_id: UserId, now: Millis) -> StoreResult<()> {
        const SQL: &str =
            "UPDATE password_reset_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(user_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }
}

#[async_trait]
impl DeviceRepo for SqlStore {
    async fn is_trusted_device(
        &self,
        user_id: UserId,
        device_hash: &TokenHash,
        now: Millis,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE trusted_devices SET last_used_at = $1
            WHERE user_id = $2 AND device_hash = $3 AND expires_at > $1 RETURNING id";
        let row: Option<(i64,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(now)
            .bind(user_id)
            .bind(device_hash.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.is_some())
    }

    async fn trust_device(
        &self,
        user_id: UserId,
        device_hash: &TokenHash,
        user_agent: Option<&str>,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()> {
        const SQL: &str = "INSERT INTO trusted_devices (user_id, device_hash, user_agent, created_at, last_used_at, expires_at)
            VALUES ($1, $2, $3, $4, $4, $5)
            ON CONFLICT (user_id, device_hash) DO UPDATE SET last_used_at = excluded.last_used_at, expires_at = excluded.expires_at";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user_id)
            .bind(device_hash.as_str())
            .bind(user_agent)
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn trusted_devices(
        &self,
        user_id: UserId,
        now: Millis,
    ) -> StoreResult<Vec<TrustedDeviceRecord>> {
        type Row = (i64, String, Option<String>, i64, i64, i64);
        const SQL: &str = "SELECT id, device_hash, user_agent, created_at, last_used_at, expires_at
            FROM trusted_devices WHERE user_id = $1 AND expires_at > $2
            ORDER BY last_used_at DESC, id DESC";
        let rows: Vec<Row> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(now)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(
                |(id, device_hash, user_agent, created_at, last_used_at, expires_at)| {
                    TrustedDeviceRecord {
                        id,
                        device_hash,
                        user_agent,
                        created_at,
                        last_used_at,
                        expires_at,
                    }
                },
            )
            .collect())
    }

    async fn distrust_device_by_id(
        &self,
        user_id: UserId,
        id: i64,
        now: Millis,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE trusted_devices SET expires_at = $1
            WHERE user_id = $2 AND id = $3 AND expires_at > $1";
        let changed = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(user_id)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(changed == 1)
    }

    async fn distrust_devices(
        &self,
        user_id: UserId,
        device_hash: Option<&TokenHash>,
        now: Millis,
    ) -> StoreResult<()> {
        const ONE: &str = "UPDATE trusted_devices SET expires_at = $1
            WHERE user_id = $2 AND device_hash = $3 AND expires_at > $1";
        const ALL: &str =
            "UPDATE trusted_devices SET expires_at = $1 WHERE user_id = $2 AND expires_at > $1";
        match device_hash {
            Some(hash) => on_db!(&self.db, |pool| sqlx::query(ONE)
                .bind(now)
                .bind(user_id)
                .bind(hash.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
            None => on_db!(&self.db, |pool| sqlx::query(ALL)
                .bind(now)
                .bind(user_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())),
        }
        .map_err(db_err)?;
        Ok(())
    }
}
