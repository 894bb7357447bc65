//! `GET /auth/me`: who the caller is, in which team, with which role and permissions — the
//! facts the authentication already bound (live session, current access), plus the user, all
//! from the coherent cache: no SQL in the steady state, never the token's claims.

use std::sync::Arc;

use super::ports::{SessionRecord, UserRecord};
use super::rbac::TeamAccess;
use super::{Auth, Error, Result};
use crate::domain::claims::AccessClaims;

pub struct Profile {
    pub user: Arc<UserRecord>,
    pub access: Arc<TeamAccess>,
    pub session: Arc<SessionRecord>,
    /// When the session was last active: its last refresh, or this token's issue if later (a
    /// refresh on another instance is newer than this instance's cached row).
    pub last_seen_at: crate::domain::time::Millis,
}

impl Auth {
    pub async fn profile(
        &self,
        claims: &AccessClaims,
        session: &Arc<SessionRecord>,
        access: &Arc<TeamAccess>,
    ) -> Result<Profile> {
        let user_id = claims.sub;
        let user = self
            .cache
            .user(user_id, || async {
                Ok(self.repo.user_by_id(user_id).await?)
            })
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        Ok(Profile {
            user,
            access: Arc::clone(access),
            last_seen_at: session.last_seen_at.max(claims.iat * 1000),
            session: Arc::clone(session),
        })
    }
}

impl Auth {
    /// Changes the display name (1–100 printable characters once trimmed, as at sign-up).
    pub async fn rename_user(
        &self,
        claims: &AccessClaims,
        name: &str,
        client: &super::ClientInfo,
    ) -> Result<String> {
        let name = super::registration::validate_name(name)?;
        let user_id = claims.sub;
        if !self
            .repo
            .set_user_name(user_id, &name, self.now_ms())
            .await?
        {
            return Err(Error::UserNotFound);
        }
        self.facts_changed(&[super::cache::Fact::User(user_id)])
            .await?;
        self.audit(
            "profile_name_changed",
            Some(user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(name)
    }
}
