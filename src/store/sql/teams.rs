//! Memberships, roles and their permissions.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::time::Millis;
use crate::domain::{RoleId, TeamId, UserId};
use crate::service::ports::{
    MemberChange, MemberRecord, Membership, RoleRecord, StoreResult, TeamRepo, VirtuozzoRecord,
};

type MembershipRow = (TeamId, String, RoleId, String);

fn membership(row: MembershipRow) -> Membership {
    let (team_id, team_name, role_id, role_name) = row;
    Membership {
        team_id,
        team_name,
        role_id,
        role_name,
    }
}

const MEMBERSHIP_SELECT: &str = "SELECT t.id, t.name, r.id, r.name
    FROM team_members tm JOIN teams t ON t.id = tm.team_id JOIN roles r ON r.id = tm.role_id";

#[async_trait]
impl TeamRepo for SqlStore {
    async fn memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{MEMBERSHIP_SELECT} WHERE tm.user_id = $1 ORDER BY tm.created_at, t.id"
        ));
        let rows: Vec<MembershipRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(membership).collect())
    }

    async fn membership(
        &self,
        user_id: UserId,
        team_id: TeamId,
    ) -> StoreResult<Option<Membership>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{MEMBERSHIP_SELECT} WHERE tm.user_id = $1 AND tm.team_id = $2"
        ));
        let row: Option<MembershipRow> = on_db!(&self.db, |pool| sqlx::query_as(sql)
            .bind(user_id)
            .bind(team_id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(membership))
    }

    async fn role_permissions(&self, role_id: RoleId) -> StoreResult<Vec<String>> {
        const SQL: &str = "SELECT permission_slug FROM role_permissions WHERE role_id = $1 ORDER BY permission_slug";
        let rows: Vec<(String,)> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(role_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(rows.into_iter().map(|(s,)| s).collect())
    }

    async fn create_team(
        &self,
        name: &str,
        owner_user_id: UserId,
        now: Millis,
    ) -> StoreResult<TeamId> {
        const INSERT_TEAM: &str =
            "INSERT INTO teams (name, owner_user_id, created_at) VALUES ($1, $2, $3) RETURNING id";
        let insert_owner = sqlx::AssertSqlSafe(format!(
            "INSERT INTO team_members (user_id, team_id, role_id, created_at) VALUES ($1, $2, {OWNER_ROLE_ID}, $3)"
        ));
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            let (team_id,): (TeamId,) = sqlx::query_as(INSERT_TEAM)
                .bind(name)
                .bind(owner_user_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(insert_owner)
                .bind(owner_user_id)
                .bind(team_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(team_id)
        })
    }

    async fn team_members(&self, team_id: TeamId) -> StoreResult<Vec<MemberRecord>> {
        const SQL: &str = "SELECT u.id, u.email, u.name, r.id, r.name FROM team_members tm
            JOIN users u ON u.id = tm.user_id JOIN roles r ON r.id = tm.role_id
            WHERE tm.team_id = $1 AND u.deleted_at IS NULL ORDER BY tm.created_at, u.id";
        let rows: Vec<(UserId, String, String, RoleId, String)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(team_id)
                .fetch_all(pool)
                .await)
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(user_id, email, name, role_id, role_name)| MemberRecord {
                user_id,
                email,
                name,
                role_id,
                role_name,
            })
            .collect())
    }

    async fn role(&self, role_id: RoleId) -> StoreResult<Option<RoleRecord>> {
        const SQL: &str = "SELECT id, name, team_id, builtin FROM roles WHERE id = $1";
        let row: Option<RoleRow> = on_db!(&self.db, |pool| sqlx::query_as(SQL)
            .bind(role_id)
            .fetch_optional(pool)
            .await)
        .map_err(db_err)?;
        Ok(row.map(role))
    }

    async fn team_roles(&self, team_id: TeamId) -> StoreResult<Vec<(RoleRecord, Vec<String>)>> {
        const ROLES: &str = "SELECT id, name, team_id, builtin FROM roles WHERE team_id IS NULL OR team_id = $1 ORDER BY builtin DESC, id";
        const PERMS: &str = "SELECT rp.role_id, rp.permission_slug FROM role_permissions rp JOIN roles r ON r.id = rp.role_id
            WHERE r.team_id IS NULL OR r.team_id = $1 ORDER BY rp.permission_slug";
        let roles: Vec<RoleRow> = on_db!(&self.db, |pool| sqlx::query_as(ROLES)
            .bind(team_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        let perms: Vec<(RoleId, String)> = on_db!(&self.db, |pool| sqlx::query_as(PERMS)
            .bind(team_id)
            .fetch_all(pool)
            .await)
        .map_err(db_err)?;
        Ok(roles
            .into_iter()
            .map(|r| {
                let slugs = perms
                    .iter()
                    .filter(|(id, _)| *id == r.0)
                    .map(|(_, s)| s.clone())
                    .collect();
                (role(r), slugs)
            })
            .collect())
    }

    async fn create_role(
        &self,
        team_id: TeamId,
        name: &str,
        permissions: &[String],
        now: Millis,
    ) -> StoreResult<Option<RoleId>> {
        const TAKEN: &str = "SELECT COUNT(*) FROM roles WHERE (team_id IS NULL OR team_id = $1) AND LOWER(name) = LOWER($2)";
        const INSERT: &str = "INSERT INTO roles (name, team_id, builtin, created_at) VALUES ($1, $2, 0, $3) RETURNING id";
        const GRANT: &str =
            "INSERT INTO role_permissions (role_id, permission_slug) VALUES ($1, $2)";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            sqlx::query(LOCK_TEAM)
                .bind(team_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let (taken,): (i64,) = sqlx::query_as(TAKEN)
                .bind(team_id)
                .bind(name)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if taken > 0 {
                return Ok(None);
            }
            let (role_id,): (RoleId,) = sqlx::query_as(INSERT)
                .bind(name)
                .bind(team_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            for slug in permissions {
                sqlx::query(GRANT)
                    .bind(role_id)
                    .bind(slug)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(Some(role_id))
        })
    }

    async fn set_role_permissions(
        &self,
        role_id: RoleId,
        permissions: &[String],
    ) -> StoreResult<()> {
        // Row lock on the role first: parallel edits of one role run one after the other, so a
        // DELETE never misses rows another edit is inserting (no unique violation, last wins).
        const LOCK_ROLE: &str = "UPDATE roles SET name = name WHERE id = $1";
        const CLEAR: &str = "DELETE FROM role_permissions WHERE role_id = $1";
        const GRANT: &str =
            "INSERT INTO role_permissions (role_id, permission_slug) VALUES ($1, $2)";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            sqlx::query(LOCK_ROLE)
                .bind(role_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(CLEAR)
                .bind(role_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for slug in permissions {
                sqlx::query(GRANT)
                    .bind(role_id)
                    .bind(slug)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(())
        })
    }

    async fn set_member_role(
        &self,
        team_id: TeamId,
        user_id: UserId,
        role_id: RoleId,
    ) -> StoreResult<MemberChange> {
        self.change_member(team_id, user_id, Some(role_id)).await
    }

    async fn remove_member(&self, team_id: TeamId, user_id: UserId) -> StoreResult<MemberChange> {
        self.change_member(team_id, user_id, None).await
    }

    async fn add_member(
        &self,
        team_id: TeamId,
        user_id: UserId,
        role_id: RoleId,
        now: Millis,
    ) -> StoreResult<bool> {
        const SQL: &str = "INSERT INTO team_members (user_id, team_id, role_id, created_at) VALUES ($1, $2, $3, $4)
            ON CONFLICT (user_id, team_id) DO NOTHING";
        let added = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(user_id)
            .bind(team_id)
            .bind(role_id)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(added == 1)
    }

    async fn team_virtuozzo(&self, team_id: TeamId) -> StoreResult<Option<VirtuozzoRecord>> {
        const SQL: &str = "SELECT vz_email, vz_password_encrypted, vz_session_key_encrypted, session_key_expires_at FROM teams WHERE id = $1";
        let row: Option<(Option<String>, Option<String>, Option<String>, Option<i64>)> =
            on_db!(&self.db, |pool| sqlx::query_as(SQL)
                .bind(team_id)
                .fetch_optional(pool)
                .await)
            .map_err(db_err)?;
        Ok(row.map(
            |(vz_email, password_sealed, session_sealed, session_key_expires_at)| VirtuozzoRecord {
                vz_email,
                password_sealed,
                session_sealed,
                session_key_expires_at,
            },
        ))
    }

    async fn set_virtuozzo_credentials(
        &self,
        team_id: TeamId,
        email: &str,
        password_sealed: &str,
    ) -> StoreResult<()> {
        const SQL: &str = "UPDATE teams SET vz_email = $1, vz_password_encrypted = $2,
            vz_session_key_encrypted = NULL, session_key_expires_at = NULL WHERE id = $3";
        on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(email)
            .bind(password_sealed)
            .bind(team_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(())
    }

    async fn set_virtuozzo_session(
        &self,
        team_id: TeamId,
        session_sealed: &str,
        expires_at: Millis,
        password_sealed: &str,
    ) -> StoreResult<bool> {
        const SQL: &str =
            "UPDATE teams SET vz_session_key_encrypted = $1, session_key_expires_at = $2
            WHERE id = $3 AND vz_password_encrypted = $4";
        let n = on_db!(&self.db, |pool| sqlx::query(SQL)
            .bind(session_sealed)
            .bind(expires_at)
            .bind(team_id)
            .bind(password_sealed)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(db_err)?;
        Ok(n == 1)
    }

    async fn permission_catalogue(&self) -> StoreResult<Vec<(String, String)>> {
        const SQL: &str = "SELECT slug, description FROM permissions ORDER BY slug";
        on_db!(&self.db, |pool| sqlx::query_as(SQL).fetch_all(pool).await).map_err(db_err)
    }
}

const OWNER_ROLE_ID: &str = "(SELECT id FROM roles WHERE team_id IS NULL AND name = 'Owner')";

/// Inside a transaction: locks the team (a row lock on PostgreSQL, the write lock on SQLite),
/// so concurrent membership changes of one team are serialised.
const LOCK_TEAM: &str = "UPDATE teams SET name = name WHERE id = $1";

/// `id, name, team_id, builtin` of `roles`.
type RoleRow = (RoleId, String, Option<TeamId>, i64);

fn role(row: RoleRow) -> RoleRecord {
    let (id, name, team_id, builtin) = row;
    RoleRecord {
        id,
        name,
        team_id,
        builtin: builtin != 0,
    }
}

impl SqlStore {
    /// Keeps `teams.owner_user_id` naming one of the team's Owners after a change.
    fn fix_owner_sql() -> sqlx::AssertSqlSafe<String> {
        sqlx::AssertSqlSafe(format!(
            "UPDATE teams SET owner_user_id = (SELECT MIN(user_id) FROM team_members WHERE team_id = $1 AND role_id = {OWNER_ROLE_ID})
             WHERE id = $1 AND owner_user_id NOT IN (SELECT user_id FROM team_members WHERE team_id = $1 AND role_id = {OWNER_ROLE_ID})"
        ))
    }

    /// Applies `change` (`Some(role)` = new role, `None` = removal) under the team lock,
    /// refusing to remove the last Owner.
    async fn change_member(
        &self,
        team_id: TeamId,
        user_id: UserId,
        change: Option<RoleId>,
    ) -> StoreResult<MemberChange> {
        let current_sql = sqlx::AssertSqlSafe(format!(
            "SELECT tm.role_id, {OWNER_ROLE_ID}, (SELECT COUNT(*) FROM team_members o WHERE o.team_id = $1 AND o.role_id = {OWNER_ROLE_ID})
             FROM team_members tm WHERE tm.team_id = $1 AND tm.user_id = $2"
        ));
        const SET_ROLE: &str =
            "UPDATE team_members SET role_id = $1 WHERE team_id = $2 AND user_id = $3";
        const REMOVE: &str = "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2";
        on_db!(&self.db, |pool| {
            let mut tx = pool.begin().await.map_err(db_err)?;
            sqlx::query(LOCK_TEAM)
                .bind(team_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let current: Option<(RoleId, RoleId, i64)> = sqlx::query_as(current_sql)
                .bind(team_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some((role_id, owner_id, owners)) = current else {
                return Ok(MemberChange::NotAMember);
            };
            let stays_owner = change == Some(owner_id);
            if role_id == owner_id && !stays_owner && owners <= 1 {
                return Ok(MemberChange::LastOwner);
            }
            match change {
                Some(new_role) => {
                    sqlx::query(SET_ROLE)
                        .bind(new_role)
                        .bind(team_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                }
                None => {
                    sqlx::query(REMOVE)
                        .bind(team_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await
                }
            }
            .map_err(db_err)?;
            sqlx::query(Self::fix_owner_sql())
                .bind(team_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(MemberChange::Done)
        })
    }
}
