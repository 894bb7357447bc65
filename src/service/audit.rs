//! The append-only audit log. A failed audit write is logged loudly but does not undo or block
//! the action it describes (a logout must still log out).

use super::ports::AuditEntry;
use super::{Auth, ClientInfo};
use crate::domain::{TeamId, UserId};

/// The longest user agent stored anywhere (sessions, devices, audit, approvals), in chars.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// A user agent cut to `MAX_USER_AGENT_CHARS` characters (on a character boundary).
pub fn bounded_user_agent(ua: &str) -> String {
    ua.chars().take(MAX_USER_AGENT_CHARS).collect()
}

impl Auth {
    /// An event about `subject` done by `actor` within a team.
    pub(crate) async fn audit_team(
        &self,
        event: &'static str,
        actor: UserId,
        subject: Option<UserId>,
        team_id: TeamId,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        self.record(event, Some(actor), subject, Some(team_id), client, details)
            .await;
    }

    /// An event a user did to their own account.
    pub(crate) async fn audit(
        &self,
        event: &'static str,
        user_id: Option<UserId>,
        team_id: Option<TeamId>,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        self.record(event, user_id, user_id, team_id, client, details)
            .await;
    }

    async fn record(
        &self,
        event: &'static str,
        actor_user_id: Option<UserId>,
        user_id: Option<UserId>,
        team_id: Option<TeamId>,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        let entry = AuditEntry {
            event,
            actor_user_id,
            user_id,
            team_id,
            ip_address: client.ip.clone(),
            user_agent: client.user_agent.as_deref().map(bounded_user_agent),
            details,
        };
        metrics::counter!("auth_events_total", "event" => event).increment(1);
        if let Err(e) = self.repo.append_audit(&entry, self.now_ms()).await {
            tracing::error!(event = "audit_write_failed", audit_event = event, error = %e);
        }
    }
}

impl Auth {
    /// The team's audit log, newest first; `before` pages backwards by entry id.
    pub async fn team_audit(
        &self,
        access: &super::rbac::TeamAccess,
        before: Option<i64>,
        limit: i64,
    ) -> super::Result<Vec<super::ports::AuditRecord>> {
        Ok(self
            .repo
            .team_audit(access.team_id, before, limit.clamp(1, 200))
            .await?)
    }
}

impl Auth {
    /// The caller's own security events (logins, failures, sessions, password changes). The
    /// IP address and user agent are shown only for what the caller did: an admin's acting on
    /// them stays the admin's.
    pub async fn my_audit(
        &self,
        claims: &crate::domain::claims::AccessClaims,
        before: Option<i64>,
        limit: i64,
    ) -> super::Result<Vec<super::ports::AuditRecord>> {
        let mut entries = self
            .repo
            .user_audit(claims.sub, before, limit.clamp(1, 200))
            .await?;
        for entry in &mut entries {
            if entry.actor_user_id != Some(claims.sub) {
                entry.ip_address = None;
                entry.user_agent = None;
            }
        }
        Ok(entries)
    }
}
