//! The append-only audit log. A failed audit write is logged loudly but does not undo or block
//! the action it describes (a logout must still log out).

use super::ports::AuditEntry;
use super::{Auth, ClientInfo};
use crate::domain::time::now_ms;
use crate::domain::{TeamId, UserId};

impl Auth {
    pub(crate) async fn audit(
        &self,
        event: &'static str,
        user_id: Option<UserId>,
        team_id: Option<TeamId>,
        client: &ClientInfo,
        details: serde_json::Value,
    ) {
        let entry = AuditEntry {
            event,
            actor_user_id: user_id,
            user_id,
            team_id,
            ip_address: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            details,
        };
        if let Err(e) = self.repo.append_audit(&entry, now_ms()).await {
            tracing::error!(event = "audit_write_failed", audit_event = event, error = %e);
        }
    }
}
