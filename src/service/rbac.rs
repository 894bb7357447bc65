//! Authorisation: the permissions of (user, team), resolved from SQL through the coherent
//! per-instance cache (`service::cache`). Any change to a role, its permissions or a membership
//! is published to every instance, so a revoked permission bites on the very next request,
//! everywhere. Claims in the JWT are never used for authorisation.

use std::sync::Arc;

use super::cache::Fact;
use super::{Auth, Error, Result};
use crate::domain::{RoleId, TeamId, UserId};

/// A member's standing in one team.
#[derive(Debug, Clone)]
pub struct TeamAccess {
    pub user_id: UserId,
    pub team_id: TeamId,
    pub team_name: String,
    pub role_id: RoleId,
    pub role_name: String,
    pub permissions: Vec<String>,
}

impl TeamAccess {
    pub fn has(&self, slug: &str) -> bool {
        self.permissions.iter().any(|p| p == slug)
    }

    /// 403 "Missing permission: <slug>".
    pub fn require(&self, slug: &str) -> Result<()> {
        if self.has(slug) {
            Ok(())
        } else {
            Err(Error::MissingPermission(slug.to_owned()))
        }
    }

    /// Nobody grants what they do not hold: every slug must be among the editor's own.
    pub fn ensure_can_grant<'a>(&self, slugs: impl IntoIterator<Item = &'a String>) -> Result<()> {
        match slugs.into_iter().find(|s| !self.has(s)) {
            Some(missing) => Err(Error::PrivilegeEscalation(missing.clone())),
            None => Ok(()),
        }
    }
}

impl Auth {
    /// Tells every instance that the team's roles or memberships changed. Called before the
    /// SQL change (so a store outage refuses the change) and after it (so nothing cached in
    /// between survives).
    pub(crate) async fn rbac_changed(&self, team_id: TeamId) -> Result<()> {
        self.facts_changed(&[Fact::Team(team_id)]).await
    }

    /// Membership first (403 "Not a member of team"), with the role's permissions.
    pub async fn team_access(&self, user_id: UserId, team_id: TeamId) -> Result<Arc<TeamAccess>> {
        self.cache
            .access(user_id, team_id, || async {
                Ok(match self.repo.membership(user_id, team_id).await? {
                    None => None,
                    Some(m) => Some(TeamAccess {
                        user_id,
                        team_id,
                        team_name: m.team_name,
                        role_id: m.role_id,
                        permissions: self.repo.role_permissions(m.role_id).await?,
                        role_name: m.role_name,
                    }),
                })
            })
            .await?
            .ok_or(Error::NotMember)
    }
}
