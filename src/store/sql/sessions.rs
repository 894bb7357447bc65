//! `active_sessions`: the record of every session and its revocation.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{SessionId, TeamId, UserId};
use crate::service::ports::{NewSession, RefreshRotation, SessionRecord, SessionRepo, StoreResult};

/// One `active_sessions` row, as `session_columns!` selects it.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: SessionId,
    user_id: UserId,
    team_id: TeamId,
    refresh_token_jti: String,
    refresh_generation: i64,
    ip_address: Option<String>,
    user_agent: Option<String>,
    created_at: Millis,
    last_seen_at: Millis,
    expires_at: Millis,
    revoked_at: Option<Millis>,
    previous_refresh_jti: Option<String>,
    rotated_at: Option<Millis>,
    next_access_jti: Option<String>,
}

/// A `SessionRow` and why the session was revoked.
#[derive(sqlx::FromRow)]
struct HistoryRow {
    #[sqlx(flatten)]
    session: SessionRow,
    revoked_reason: Option<String>,
}

fn session(row: SessionRow) -> SessionRecord {
    let SessionRow {
        id,
        user_id,
        team_id,
        refresh_token_jti,
        refresh_generation,
        ip_address,
        user_agent,
        created_at,
        last_seen_at,
        expires_at,
        revoked_at,
        previous_refresh_jti,
        rotated_at,
        next_access_jti,
    } = row;
    SessionRecord {
        id,
        user_id,
        team_id,
        refresh_token_jti,
        refresh_generation,
        ip_address,
        user_agent,
        created_at,
        last_seen_at,
        expires_at,
        revoked_at,
        previous_refresh_jti,
        rotated_at,
        next_access_jti,
    }
}

/// The columns of `SessionRow` (read by name).
macro_rules! session_columns {
    () => {
        "id, user_id, team_id, refresh_token_jti, refresh_generation, ip_address, user_agent,
        created_at, last_seen_at, expires_at, revoked_at, previous_refresh_jti, rotated_at,
        next_access_jti"
    };
}

#[async_trait]
impl SessionRepo for SqlStore {
    async fn create_session(&self, s: &NewSession) -> StoreResult<SessionId> {
        const SQL: &str = "INSERT INTO active_sessions
            (user_id, team_id, refresh_token_jti, device_id, ip_address, user_agent, created_at, last_seen_at, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) RETURNING id";
        let (id,): (SessionId,) = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(s.user_id)
            .bind(s.team_id)
            .bind(&s.refresh_token_jti)
            .bind(&s.device_id)
            .bind(&s.ip_address)
            .bind(&s.user_agent)
            .bind(s.created_at)
            .bind(s.expires_at)
            .fetch_one(pool)
            .await)
        .map_err(db_err)?;
        Ok(id)
    }

    async fn session(&self, id: SessionId) -> StoreResult<Option<SessionRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM active_sessions WHERE id = $1"
        );
        let row: Option<SessionRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(session))
    }

    async fn rotate_refresh(&self, r: &RefreshRotation<'_>) -> StoreResult<Option<SessionRecord>> {
        // One statement: the compare (current jti, live, unexpired, not idle) and the swap.
        const SQL: &str = concat!(
            "UPDATE active_sessions SET previous_refresh_jti = refresh_token_jti,
                refresh_token_jti = $1, next_access_jti = $2, rotated_at = $3, last_seen_at = $3,
                refresh_generation = refresh_generation + 1
            WHERE id = $4 AND refresh_token_jti = $5 AND revoked_at IS NULL
                AND expires_at > $3 AND last_seen_at > $6
            RETURNING ",
            session_columns!()
        );
        let row: Option<SessionRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(r.next_jti)
            .bind(r.next_access_jti)
            .bind(r.now)
            .bind(r.session_id)
            .bind(r.current_jti)
            .bind(r.active_since)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(session))
    }

    async fn set_session_team(&self, id: SessionId, team_id: TeamId) -> StoreResult<()> {
        const SQL: &str = "UPDATE active_sessions SET team_id = $1 WHERE id = $2";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(team_id)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn revoke_session(&self, id: SessionId, reason: &str, now: Millis) -> StoreResult<bool> {
        const SQL: &str = "UPDATE active_sessions SET revoked_at = $1, revoked_reason = $2 WHERE id = $3 AND revoked_at IS NULL";
        let done = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(now)
            .bind(reason)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(done == 1)
    }

    async fn active_sessions(
        &self,
        user_id: UserId,
        now: Millis,
        idle_since: Millis,
    ) -> StoreResult<Vec<SessionRecord>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            " FROM active_sessions s
             WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND last_seen_at > $3
               AND EXISTS (SELECT 1 FROM team_members tm
                           WHERE tm.user_id = s.user_id AND tm.team_id = s.team_id)
             ORDER BY id"
        );
        let rows: Vec<SessionRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(now)
            .bind(idle_since)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(session).collect())
    }

    async fn sessions_revoked_since(
        &self,
        since: Millis,
        now: Millis,
    ) -> StoreResult<Vec<(SessionId, Millis, Millis)>> {
        const SQL: &str = "SELECT id, expires_at, revoked_at FROM active_sessions
            WHERE revoked_at > $1 AND expires_at > $2 ORDER BY revoked_at";
        on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(since)
            .bind(now)
            .fetch_all(pool)
            .await)
        .map_err(db_err)
    }

    async fn recent_sessions(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> StoreResult<Vec<(SessionRecord, Option<String>)>> {
        const SQL: &str = concat!(
            "SELECT ",
            session_columns!(),
            ", revoked_reason FROM active_sessions WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        );
        let rows: Vec<HistoryRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(limit)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|r| (session(r.session), r.revoked_reason))
            .collect())
    }

    async fn revoked_reason(&self, id: SessionId) -> StoreResult<Option<String>> {
        const SQL: &str = "SELECT revoked_reason FROM active_sessions WHERE id = $1";
        let row: Option<(Option<String>,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.and_then(|(reason,)| reason))
    }

    async fn team_sessions(&self, user_id: UserId, team_id: TeamId) -> StoreResult<Vec<SessionId>> {
        const SQL: &str = "SELECT id FROM active_sessions
            WHERE user_id = $1 AND team_id = $2 AND revoked_at IS NULL ORDER BY id";
        let rows: Vec<(SessionId,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(user_id)
            .bind(team_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
