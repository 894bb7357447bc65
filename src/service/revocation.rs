//! Revocation. `active_sessions.revoked_at` is the record, and every instance checks it through
//! its coherent cache (`service::cache`), so a revoked session is refused everywhere on the next
//! request, and losing the ephemeral store can never bring it back. The `blacklist:<jti>` keys
//! are written too, for the operators' guide (`redis-cli KEYS "blacklist:*"`): a mirror, not
//! the check.

use super::cache::Fact;
use super::{Auth, Result, keys};
use crate::domain::SessionId;
use crate::domain::time::{Millis, until};

impl Auth {
    /// Drops the cached state of sessions revoked in SQL since `since` by any process — the
    /// backstop for a lost invalidation, and how this server learns of revocations by the admin
    /// CLI in embedded mode (whose in-process bus it cannot hear). Returns the new high-water
    /// mark. The server runs this every second: one indexed query.
    pub async fn sync_revocations(&self, since: Millis) -> Result<Millis> {
        let now = self.now_ms();
        let mut high = since;
        for (sid, _expires_at, revoked_at) in self.repo.sessions_revoked_since(since, now).await? {
            self.cache.invalidate(Fact::Session(sid));
            high = high.max(revoked_at);
        }
        Ok(high)
    }

    /// Ends a session everywhere at once: the SQL record first (the truth every instance
    /// checks), then every instance's cache, then the guide's mirror keys (best effort).
    pub(crate) async fn revoke_session(
        &self,
        sid: SessionId,
        reason: &str,
        extra_jtis: &[(&str, i64)],
    ) -> Result<()> {
        let now = self.now_ms();
        let Some(session) = self.repo.session(sid).await? else {
            return Ok(());
        };
        self.repo.revoke_session(sid, reason, now).await?;
        // Not fatal: the revocation is in SQL; an instance whose bus is down reads SQL, and
        // one that missed the message drops its copy within a second (`sync_revocations`).
        if let Err(e) = self.facts_changed(&[Fact::Session(sid)]).await {
            tracing::warn!(event = "revocation_publish_failed", session_id = sid.get(), error = %e);
        }
        let mut mirror: Vec<(String, std::time::Duration)> = extra_jtis
            .iter()
            .filter_map(|(jti, exp_seconds)| {
                until(exp_seconds * 1000, now).map(|ttl| (keys::blacklist(jti), ttl))
            })
            .collect();
        if let Some(ttl) = until(session.expires_at, now) {
            mirror.push((keys::blacklist(&session.refresh_token_jti), ttl));
        }
        for (key, ttl) in mirror {
            if let Err(e) = self.store.set(&key, reason, ttl).await {
                tracing::debug!(event = "blacklist_mirror_failed", error = %e);
            }
        }
        if let Err(e) = self
            .store
            .delete(&keys::refresh(&session.refresh_token_jti))
            .await
        {
            tracing::debug!(event = "refresh_mirror_failed", error = %e);
        }
        let event = serde_json::json!({ "event": "session_revoked", "session_id": sid });
        self.publish_user_event(session.user_id, &event).await;
        Ok(())
    }
}
