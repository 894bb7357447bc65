//! A team's security policy: "every member needs a second factor", with a grace period from
//! when it was switched on. After it, a member without one cannot exchange or switch into the
//! team (403 `mfa_required_by_team`); until then `/auth/me` says by when
//! (`mfa_setup_required_by`). The Owner switching it on must have a second factor already
//! (409 `owner_mfa_required`), so the policy never locks out whoever enabled it.

use std::time::Duration;

use moka::sync::Cache;

use super::ports::TeamPolicyRecord;
use super::rbac::TeamAccess;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::permissions::OWNER_ROLE;
use crate::domain::time::Millis;
use crate::domain::{TeamId, UserId};

pub const MAX_GRACE_DAYS: i64 = 365;
const DAY_MS: i64 = 86_400_000;

/// How long an instance reuses what it computed for `/auth/me` (the hot path stays free of
/// SQL); the exchange and team switch always read SQL.
const SETUP_NOTICE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamPolicy {
    pub require_mfa: bool,
    pub grace_days: i64,
    pub enforced_from: Option<Millis>,
    /// From when members without a second factor are refused.
    pub enforced_at: Option<Millis>,
}

impl TeamPolicy {
    fn from_record(r: Option<TeamPolicyRecord>) -> Self {
        let r = r.unwrap_or(TeamPolicyRecord {
            require_mfa: false,
            grace_days: 0,
            enforced_from: None,
            updated_at: 0,
        });
        let enforced_from = r.enforced_from.filter(|_| r.require_mfa);
        Self {
            require_mfa: r.require_mfa,
            grace_days: r.grace_days,
            enforced_from,
            enforced_at: enforced_from.map(|from| from + r.grace_days * DAY_MS),
        }
    }
}

/// Per instance: `(user, team)` → the `mfa_setup_required_by` of `/auth/me`.
pub struct SetupNotices(Cache<(UserId, TeamId), Option<Millis>>);

impl Default for SetupNotices {
    fn default() -> Self {
        Self(
            Cache::builder()
                .max_capacity(100_000)
                .time_to_live(SETUP_NOTICE_TTL)
                .build(),
        )
    }
}

fn require_owner(access: &TeamAccess) -> Result<()> {
    if access.role_name == OWNER_ROLE {
        Ok(())
    } else {
        Err(Error::OwnerOnly)
    }
}

impl Auth {
    /// After a change of a policy or of someone's second factors (this instance at once,
    /// others within `SETUP_NOTICE_TTL`).
    pub(crate) fn invalidate_mfa_notices(&self) {
        self.mfa_notices.0.invalidate_all();
    }

    async fn policy_of(&self, team_id: TeamId) -> Result<TeamPolicy> {
        Ok(TeamPolicy::from_record(
            self.repo.team_policy(team_id).await?,
        ))
    }

    /// `GET /teams/<id>/security` (Owner): the policy and who it would block.
    pub async fn team_security(
        &self,
        access: &TeamAccess,
    ) -> Result<(TeamPolicy, Vec<(UserId, String)>)> {
        require_owner(access)?;
        let policy = self.policy_of(access.team_id).await?;
        let without = self.repo.members_without_mfa(access.team_id).await?;
        Ok((policy, without))
    }

    /// `PUT /teams/<id>/security` (Owner, step-up).
    pub async fn set_team_security(
        &self,
        access: &TeamAccess,
        require_mfa: bool,
        grace_days: i64,
        client: &ClientInfo,
    ) -> Result<TeamPolicy> {
        require_owner(access)?;
        if !(0..=MAX_GRACE_DAYS).contains(&grace_days) {
            return Err(Error::validation(
                "grace_days",
                format!("grace_days must be between 0 and {MAX_GRACE_DAYS}"),
            ));
        }
        if require_mfa && !self.repo.has_second_factor(access.user_id).await? {
            return Err(Error::Conflict {
                code: "owner_mfa_required",
                detail: "Set up a second factor (TOTP or a passkey) for yourself before requiring one from the team",
            });
        }
        let now = self.now_ms();
        let current = self.repo.team_policy(access.team_id).await?;
        // Switching on starts the grace period; changing the days of a policy that is on
        // keeps its start.
        let enforced_from = match current {
            Some(TeamPolicyRecord {
                require_mfa: true,
                enforced_from: Some(from),
                ..
            }) if require_mfa => Some(from),
            _ if require_mfa => Some(now),
            _ => None,
        };
        let record = TeamPolicyRecord {
            require_mfa,
            grace_days,
            enforced_from,
            updated_at: now,
        };
        self.repo
            .set_team_policy(access.team_id, &record, access.user_id)
            .await?;
        self.invalidate_mfa_notices();
        metrics::counter!("team_security_policy_changes_total").increment(1);
        self.audit_team(
            "team_security_policy_changed",
            access.user_id,
            None,
            access.team_id,
            client,
            serde_json::json!({ "require_mfa": require_mfa, "grace_days": grace_days }),
        )
        .await;
        Ok(TeamPolicy::from_record(Some(record)))
    }

    /// Refuses a member without a second factor entry into a team whose grace period is over.
    pub(crate) async fn check_team_mfa(&self, user_id: UserId, team_id: TeamId) -> Result<()> {
        let policy = self.policy_of(team_id).await?;
        let Some(enforced_at) = policy.enforced_at else {
            return Ok(());
        };
        if self.now_ms() >= enforced_at && !self.repo.has_second_factor(user_id).await? {
            metrics::counter!("team_mfa_refusals_total").increment(1);
            return Err(Error::MfaRequiredByTeam);
        }
        Ok(())
    }

    /// For `/auth/me`: by when the user must have a second factor to keep entering the team
    /// (`None`: no policy, or the user has one).
    pub async fn mfa_setup_required_by(
        &self,
        user_id: UserId,
        team_id: TeamId,
    ) -> Result<Option<Millis>> {
        if let Some(hit) = self.mfa_notices.0.get(&(user_id, team_id)) {
            return Ok(hit);
        }
        let policy = self.policy_of(team_id).await?;
        let value = match policy.enforced_at {
            Some(at) if !self.repo.has_second_factor(user_id).await? => Some(at),
            _ => None,
        };
        self.mfa_notices.0.insert((user_id, team_id), value);
        Ok(value)
    }
}
