//! `GET /auth/me`: who the caller is, in which team, with which role and permissions — resolved
//! from SQL on every request, never from claims in the token.

use super::ports::{Membership, SessionRecord, UserRecord};
use super::{Auth, Error, Result};
use crate::domain::claims::AccessClaims;

pub struct Profile {
    pub user: UserRecord,
    pub membership: Membership,
    pub permissions: Vec<String>,
    pub session: SessionRecord,
}

impl Auth {
    pub async fn profile(&self, claims: &AccessClaims) -> Result<Profile> {
        let user_id: i64 = claims.sub.parse().map_err(|_| Error::NotAuthenticated)?;
        let user = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        let membership = self
            .repo
            .membership(user_id, claims.team_id)
            .await?
            .ok_or(Error::NotMember)?;
        let permissions = self.repo.role_permissions(membership.role_id).await?;
        let session = self
            .repo
            .session(claims.sid)
            .await?
            .ok_or(Error::NotAuthenticated)?;
        Ok(Profile {
            user,
            membership,
            permissions,
            session,
        })
    }
}
