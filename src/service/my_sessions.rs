//! A user's own sessions: list them, end one, end all.

use super::ports::SessionRecord;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::claims::AccessClaims;
use crate::domain::time::ms;
use crate::domain::{SessionId, UserId};

impl Auth {
    /// Active sessions: not revoked, not expired, not idle past the idle timeout.
    pub async fn list_sessions(&self, claims: &AccessClaims) -> Result<Vec<SessionRecord>> {
        let now = self.now_ms();
        let idle_since = now - ms(self.settings.refresh_idle_timeout);
        Ok(self
            .repo
            .active_sessions(claims.sub, now, idle_since)
            .await?)
    }

    /// Ends one of the caller's sessions at once (404 for anyone else's).
    pub async fn end_session(
        &self,
        claims: &AccessClaims,
        sid: SessionId,
        client: &ClientInfo,
    ) -> Result<()> {
        let user_id = claims.sub;
        let session = self
            .repo
            .session(sid)
            .await?
            .filter(|s| s.user_id == user_id && s.revoked_at.is_none());
        if session.is_none() {
            return Err(Error::SessionNotFound);
        }
        self.revoke_session(sid, "revoked_by_user", &[]).await?;
        self.audit(
            "session_revoked",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "session_id": sid, "by_session": claims.sid }),
        )
        .await;
        Ok(())
    }

    /// An operator ends a session (admin CLI).
    pub async fn revoke_session_by_admin(&self, sid: SessionId, client: &ClientInfo) -> Result<()> {
        let session = self
            .repo
            .session(sid)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or(Error::SessionNotFound)?;
        self.revoke_session(sid, "revoked_by_admin", &[]).await?;
        self.audit(
            "session_revoked",
            Some(session.user_id),
            Some(session.team_id),
            client,
            serde_json::json!({ "session_id": sid, "by": "admin" }),
        )
        .await;
        Ok(())
    }

    /// Ends every session of the user, except `keep`. Returns how many ended.
    pub(crate) async fn end_all_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        reason: &str,
    ) -> Result<usize> {
        let now = self.now_ms();
        let sessions = self.repo.active_sessions(user_id, now, 0).await?;
        let mut ended = 0;
        for session in sessions.iter().filter(|s| Some(s.id) != keep) {
            self.revoke_session(session.id, reason, &[]).await?;
            ended += 1;
        }
        Ok(ended)
    }

    pub async fn logout_all(&self, claims: &AccessClaims, client: &ClientInfo) -> Result<usize> {
        let user_id = claims.sub;
        let ended = self.end_all_sessions(user_id, None, "logout_all").await?;
        self.audit(
            "logout_all",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "sessions": ended }),
        )
        .await;
        Ok(ended)
    }
}
