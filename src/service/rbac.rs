//! Authorisation: the permissions of (user, team), resolved from SQL through the coherent
//! per-instance cache (`service::cache`). Any change to a role, its permissions or a membership
//! is published to every instance, so a revoked permission bites on the very next request,
//! everywhere. Claims in the JWT are never used for authorisation.

use std::sync::Arc;

use super::cache::Fact;
use super::{Auth, ClientInfo, Error, Result, keys};
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

/// A repeated 403 for the same user, team and permission is audited once per this window.
const PERMISSION_REFUSAL_AUDIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

impl Auth {
    /// Audits a 403 "Missing permission" (what `mbpanel-auth why` explains), at most once per
    /// user, team and permission in `PERMISSION_REFUSAL_AUDIT_WINDOW`, so that repeating the
    /// request cannot grow the audit log. Best effort: the refusal stands either way.
    pub async fn permission_refused(
        &self,
        access: &TeamAccess,
        permission: &str,
        client: &ClientInfo,
    ) {
        let key = keys::permission_refusal_audited(access.user_id, access.team_id, permission);
        if let Ok(true) = self
            .store
            .set_if_absent(&key, "1", PERMISSION_REFUSAL_AUDIT_WINDOW)
            .await
        {
            let details = serde_json::json!({
                "team_id": access.team_id,
                "permission": permission,
                "role": access.role_name,
            });
            self.audit_team(
                "permission_denied",
                access.user_id,
                Some(access.user_id),
                access.team_id,
                client,
                details,
            )
            .await;
        }
    }

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
