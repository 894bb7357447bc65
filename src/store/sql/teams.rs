//! Memberships, roles and their permissions.

use async_trait::async_trait;

use super::{SqlStore, db_err, on_db};
use crate::domain::{RoleId, TeamId, UserId};
use crate::service::ports::{Membership, StoreResult, TeamRepo};

type MembershipRow = (i64, String, i64, String);

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
}
