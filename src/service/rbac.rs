//! Authorisation: the permissions of (user, team), resolved from SQL through a per-instance
//! cache that is trusted only while the team's version key in the ephemeral store is unchanged.
//! Any change to a role, its permissions or a membership replaces the version, so a revoked
//! permission bites on the very next request, on every instance. Claims in the JWT are never
//! used for authorisation.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Auth, Error, Result, keys, tokens};
use crate::domain::{RoleId, TeamId, UserId};

const VERSION_TTL: Duration = Duration::from_secs(24 * 3600);
const CACHE_MAX_ENTRIES: usize = 10_000;
/// A backstop: even if a version change were lost, no entry is trusted for longer.
const CACHE_MAX_AGE: Duration = Duration::from_secs(30);

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

/// The version an entry was read at, when, and the access (`None` for a non-member).
type CacheEntry = (String, Instant, Option<TeamAccess>);

/// (user, team) → what was read from SQL, and at which version.
#[derive(Default)]
pub struct PermissionCache {
    entries: Mutex<HashMap<(UserId, TeamId), CacheEntry>>,
}

impl PermissionCache {
    fn get(&self, key: (UserId, TeamId), version: &str) -> Option<Option<TeamAccess>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&key)
            .filter(|(v, at, _)| v == version && at.elapsed() < CACHE_MAX_AGE)
            .map(|(_, _, access)| access.clone())
    }

    fn put(&self, key: (UserId, TeamId), version: String, access: Option<TeamAccess>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (version, Instant::now(), access));
    }
}

impl Auth {
    async fn rbac_version(&self, team_id: TeamId) -> Result<String> {
        let key = keys::rbac_version(team_id);
        if let Some(v) = self.store.get(&key).await? {
            return Ok(v);
        }
        // Missing (first use, expiry, or a flushed store): start a new version.
        self.store
            .set_if_absent(&key, &tokens::random_jti(), VERSION_TTL)
            .await?;
        Ok(self.store.get(&key).await?.unwrap_or_default())
    }

    /// Tells every instance that the team's roles or memberships changed. Called before the
    /// SQL change (so a store outage refuses the change) and after it (so nothing cached in
    /// between survives).
    pub(crate) async fn rbac_changed(&self, team_id: TeamId) -> Result<()> {
        self.store
            .set(
                &keys::rbac_version(team_id),
                &tokens::random_jti(),
                VERSION_TTL,
            )
            .await?;
        Ok(())
    }

    /// Membership first (403 "Not a member of team"), with the role's permissions.
    pub async fn team_access(&self, user_id: UserId, team_id: TeamId) -> Result<TeamAccess> {
        let version = self.rbac_version(team_id).await?;
        if let Some(cached) = self.permission_cache.get((user_id, team_id), &version) {
            return cached.ok_or(Error::NotMember);
        }
        let access = match self.repo.membership(user_id, team_id).await? {
            None => None,
            Some(m) => Some(TeamAccess {
                user_id,
                team_id,
                team_name: m.team_name,
                role_id: m.role_id,
                permissions: self.repo.role_permissions(m.role_id).await?,
                role_name: m.role_name,
            }),
        };
        self.permission_cache
            .put((user_id, team_id), version, access.clone());
        access.ok_or(Error::NotMember)
    }
}
