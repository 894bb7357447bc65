//! `GET /auth/me`: who the caller is, in which team, with which role and permissions — resolved
//! from SQL (through the version-checked cache) on every request, never from the token's claims.

use super::ports::{SessionRecord, UserRecord};
use super::rbac::TeamAccess;
use super::{Auth, Error, Result};
use crate::domain::claims::AccessClaims;

pub struct Profile {
    pub user: UserRecord,
    pub access: TeamAccess,
    pub session: SessionRecord,
}

impl Auth {
    pub async fn profile(&self, claims: &AccessClaims) -> Result<Profile> {
        let user_id = claims.sub;
        let user = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        let access = self.team_access(user_id, claims.team_id).await?;
        let session = self
            .repo
            .session(claims.sid)
            .await?
            .ok_or(Error::NotAuthenticated)?;
        Ok(Profile {
            user,
            access,
            session,
        })
    }
}
