//! Team invites: the token is stored only as its hash.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{RoleId, TeamId, TokenHash, UserId};
use crate::service::ports::{InviteRecord, InviteRepo, NewInvite, StoreResult};

/// One `team_invites` row, as `INVITE_COLUMNS` selects it.
#[derive(sqlx::FromRow)]
struct InviteRow {
    id: i64,
    team_id: TeamId,
    email: String,
    role_id: RoleId,
    invited_by_user_id: UserId,
    created_at: Millis,
    expires_at: Millis,
    accepted_at: Option<Millis>,
    revoked_at: Option<Millis>,
}

fn invite(row: InviteRow) -> InviteRecord {
    let InviteRow {
        id,
        team_id,
        email,
        role_id,
        invited_by_user_id,
        created_at,
        expires_at,
        accepted_at,
        revoked_at,
    } = row;
    InviteRecord {
        id,
        team_id,
        email,
        role_id,
        invited_by_user_id,
        created_at,
        expires_at,
        accepted_at,
        revoked_at,
    }
}

const INVITE_COLUMNS: &str = "id, team_id, email, role_id, invited_by_user_id, created_at, expires_at, accepted_at, revoked_at";

#[async_trait]
impl InviteRepo for SqlStore {
    async fn create_invite(&self, i: &NewInvite<'_>) -> StoreResult<i64> {
        const SQL: &str = "INSERT INTO team_invites (team_id, email, role_id, token_hash, invited_by_user_id, created_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";
        let (id,): (i64,) = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(i.team_id)
            .bind(i.email)
            .bind(i.role_id)
            .bind(i.token_hash.as_str())
            .bind(i.invited_by_user_id)
            .bind(i.created_at)
            .bind(i.expires_at)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        Ok(id)
    }

    async fn invite_by_token_hash(
        &self,
        token_hash: &TokenHash,
    ) -> StoreResult<Option<InviteRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {INVITE_COLUMNS} FROM team_invites WHERE token_hash = $1"
        ));
        let row: Option<InviteRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(token_hash.as_str())
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(invite))
    }

    async fn team_invites(&self, team_id: TeamId) -> StoreResult<Vec<InviteRecord>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {INVITE_COLUMNS} FROM team_invites WHERE team_id = $1 ORDER BY id DESC"
        ));
        let rows: Vec<InviteRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(team_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(invite).collect())
    }

    async fn accept_invite(
        &self,
        invite_id: i64,
        user_id: UserId,
        now: Millis,
    ) -> StoreResult<Option<(TeamId, RoleId)>> {
        const USE: &str = "UPDATE team_invites SET accepted_at = $1, accepted_by_user_id = $2
            WHERE id = $3 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING team_id, role_id";
        // Two invites of one address accepted at once: the second finds the membership and
        // changes nothing (no unique violation).
        const JOIN: &str = "INSERT INTO team_members (user_id, team_id, role_id, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, team_id) DO NOTHING";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let used: Option<(TeamId, RoleId)> = sqlx::query_as(USE)
                .bind(now)
                .bind(user_id)
                .bind(invite_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some((team_id, role_id)) = used else {
                return Ok(None);
            };
            let joined = sqlx::query(JOIN)
                .bind(user_id)
                .bind(team_id)
                .bind(role_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if joined == 0 {
                tx.rollback().await.map_err(db_err)?;
                return Ok(None);
            }
            tx.commit().await.map_err(db_err)?;
            Ok(Some((team_id, role_id)))
        })
    }

    async fn revoke_invite(
        &self,
        team_id: TeamId,
        invite_id: i64,
        now: Millis,
    ) -> StoreResult<bool> {
        const SQL: &str = "UPDATE team_invites SET revoked_at = $1
            WHERE id = $2 AND team_id = $3 AND accepted_at IS NULL AND revoked_at IS NULL";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(invite_id)
            .bind(team_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n == 1)
    }
}
