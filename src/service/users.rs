//! Administration of accounts: soft delete and restore.

use super::cache::Fact;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::UserId;
use crate::domain::email::Email;

impl Auth {
    pub async fn find_user_id(&self, email: &str) -> Result<UserId> {
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        Ok(self
            .repo
            .user_by_email(email.as_str())
            .await?
            .ok_or(Error::UserNotFound)?
            .id)
    }

    /// A deleted user cannot log in; their sessions end at once; operations on them answer
    /// 404 "User not found".
    pub async fn delete_user(&self, user_id: UserId, client: &ClientInfo) -> Result<usize> {
        if !self
            .repo
            .set_user_deleted(user_id, Some(self.now_ms()))
            .await?
        {
            return Err(Error::UserNotFound);
        }
        self.facts_changed(&[Fact::User(user_id)]).await?;
        let ended = self.end_all_sessions(user_id, None, "user_deleted").await?;
        for team in self.repo.memberships(user_id).await? {
            self.rbac_changed(team.team_id).await?;
        }
        self.audit(
            "user_deleted",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "sessions_ended": ended }),
        )
        .await;
        Ok(ended)
    }

    pub async fn restore_user(&self, user_id: UserId, client: &ClientInfo) -> Result<()> {
        if !self.repo.set_user_deleted(user_id, None).await? {
            return Err(Error::UserNotFound);
        }
        self.facts_changed(&[Fact::User(user_id)]).await?;
        for team in self.repo.memberships(user_id).await? {
            self.rbac_changed(team.team_id).await?;
        }
        self.audit(
            "user_restored",
            Some(user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }
}
