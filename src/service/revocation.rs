//! Revocation: blacklisted token ids, revoked-session markers, and the epoch marker that tells
//! whether those markers are complete. SQL (`active_sessions.revoked_at`) is the record; the
//! ephemeral markers make the per-request check one round trip. If the store was flushed, the
//! epoch marker is gone, checks consult SQL, and the markers are rebuilt from SQL.

use std::sync::Arc;
use std::time::Duration;

use super::{Auth, Result, keys};
use crate::domain::SessionId;
use crate::domain::time::{Millis, ms, now_ms, until};

/// How long the epoch marker lives before a routine rebuild (every key has a TTL).
const EPOCH_TTL: Duration = Duration::from_secs(24 * 3600);
const REBUILD_LOCK_TTL: Duration = Duration::from_secs(60);

impl Auth {
    /// True when the token id is blacklisted or its session is revoked. Never fails open: a
    /// store error is an error, and missing markers send the question to SQL.
    pub(crate) async fn is_revoked(self: &Arc<Self>, jti: &str, sid: SessionId) -> Result<bool> {
        let found = self
            .store
            .get_many(&[
                keys::blacklist(jti),
                keys::session_revoked(sid),
                keys::REVOCATION_EPOCH.to_owned(),
            ])
            .await?;
        if found.first().is_some_and(Option::is_some) || found.get(1).is_some_and(Option::is_some) {
            return Ok(true);
        }
        if found.get(2).is_some_and(Option::is_some) {
            return Ok(false);
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = this.rebuild_revocation_markers().await {
                tracing::warn!(event = "revocation_rebuild_failed", error = %e);
            }
        });
        let session = self.repo.session(sid).await?;
        Ok(session.is_none_or(|s| s.revoked_at.is_some()))
    }

    /// Writes a marker for every revoked, unexpired session, then the epoch marker. Runs at
    /// start-up and whenever the epoch marker is found missing; one instance at a time.
    pub async fn rebuild_revocation_markers(&self) -> Result<()> {
        if !self
            .store
            .set_if_absent(keys::REVOCATION_REBUILD_LOCK, "1", REBUILD_LOCK_TTL)
            .await?
        {
            return Ok(());
        }
        let result = async {
            let now = now_ms();
            let revoked = self.repo.revoked_unexpired_sessions(now).await?;
            for (sid, expires_at) in &revoked {
                if let Some(ttl) = until(*expires_at + ms(self.settings.access_token_ttl), now) {
                    self.store
                        .set(&keys::session_revoked(*sid), "revoked", ttl)
                        .await?;
                }
            }
            self.store
                .set(keys::REVOCATION_EPOCH, &now.to_string(), EPOCH_TTL)
                .await?;
            tracing::info!(
                event = "revocation_markers_rebuilt",
                sessions = revoked.len()
            );
            Ok(())
        }
        .await;
        let _ = self.store.delete(keys::REVOCATION_REBUILD_LOCK).await;
        result
    }

    /// Writes markers for sessions revoked in SQL since `since` by another process (the admin
    /// CLI, whose in-process store this server cannot see in embedded mode). Returns the new
    /// high-water mark. The server runs this every second.
    pub async fn sync_revocations(&self, since: Millis) -> Result<Millis> {
        let now = now_ms();
        let mut high = since;
        for (sid, expires_at, revoked_at) in self.repo.sessions_revoked_since(since, now).await? {
            if let Some(ttl) = until(expires_at + ms(self.settings.access_token_ttl), now) {
                self.store
                    .set(&keys::session_revoked(sid), "revoked", ttl)
                    .await?;
            }
            high = high.max(revoked_at);
        }
        Ok(high)
    }

    /// Ends a session everywhere at once: markers first (so a store outage fails before SQL
    /// says revoked while tokens still pass), then the SQL record.
    pub(crate) async fn revoke_session(
        &self,
        sid: SessionId,
        reason: &str,
        extra_jtis: &[(&str, i64)],
    ) -> Result<()> {
        let now = now_ms();
        let Some(session) = self.repo.session(sid).await? else {
            return Ok(());
        };
        let marker_ttl = until(session.expires_at + ms(self.settings.access_token_ttl), now);
        if let Some(ttl) = marker_ttl {
            self.store
                .set(&keys::session_revoked(sid), reason, ttl)
                .await?;
        }
        for (jti, exp_seconds) in extra_jtis {
            if let Some(ttl) = until(exp_seconds * 1000, now) {
                self.store.set(&keys::blacklist(jti), reason, ttl).await?;
            }
        }
        if let Some(ttl) = until(session.expires_at, now) {
            self.store
                .set(&keys::blacklist(&session.refresh_token_jti), reason, ttl)
                .await?;
        }
        self.store
            .delete(&keys::refresh(&session.refresh_token_jti))
            .await?;
        self.repo.revoke_session(sid, reason, now).await?;
        let event =
            serde_json::json!({ "event": "session_revoked", "session_id": sid }).to_string();
        if let Err(e) = self
            .store
            .publish(&user_channel(session.user_id), &event)
            .await
        {
            tracing::warn!(event = "publish_failed", error = %e);
        }
        Ok(())
    }
}

/// The pub/sub channel of one user's live events.
pub fn user_channel(user_id: i64) -> String {
    format!("events:user:{user_id}")
}
