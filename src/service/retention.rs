//! The retention job (SPEC §12): purges what stopped mattering — expired or revoked sessions,
//! used or expired tokens (verification, reset, new-device alert links), expired or forgotten
//! trusted devices and ended invites, sent outbox payloads and old outbox rows, and audit
//! entries older than `AUDIT_RETENTION_DAYS`. One instance at a time (the store takes the
//! lock); each run that purged anything leaves one `retention_purged` audit entry with counts.

use std::time::Duration;

use super::ports::{RetentionCounts, RetentionCutoffs};
use super::{Auth, ClientInfo};
use crate::domain::time::Millis;
use crate::shutdown::CancelSignal;

/// Statements per kind per run: a large backlog is worked off over several runs, so that one
/// run's transaction stays bounded.
const MAX_BATCHES_PER_RUN: u32 = 100;

/// The retention job's settings (`Config::retention`): how often it runs and how long what it
/// purges is kept after it stopped mattering.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    pub interval: Duration,
    /// Sessions expired, idle or revoked for longer than this are deleted.
    pub session_grace: Duration,
    /// Used or expired verification and reset tokens and new-device alert links, expired or
    /// forgotten trusted devices, and ended invites.
    pub token_grace: Duration,
    /// Sent or failed outbox rows (the payload of a sent message is blanked at once).
    pub outbox_grace: Duration,
    /// Audit entries older than this are deleted (`AUDIT_RETENTION_DAYS`).
    pub audit_retention: Duration,
    /// Rows per statement.
    pub batch_size: u64,
}

fn ms(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub fn cutoffs(s: &RetentionSettings, now: Millis) -> RetentionCutoffs {
    RetentionCutoffs {
        sessions_before: now.saturating_sub(ms(s.session_grace)),
        tokens_before: now.saturating_sub(ms(s.token_grace)),
        outbox_before: now.saturating_sub(ms(s.outbox_grace)),
        audit_before: now.saturating_sub(ms(s.audit_retention)),
        batch_size: i64::try_from(s.batch_size).unwrap_or(i64::MAX),
        max_batches: MAX_BATCHES_PER_RUN,
    }
}

impl Auth {
    /// One retention run. `None` when another instance was running it.
    pub async fn purge_expired(
        &self,
        settings: &RetentionSettings,
    ) -> super::Result<Option<RetentionCounts>> {
        let Some(counts) = self
            .repo
            .purge_expired(&cutoffs(settings, self.now_ms()))
            .await?
        else {
            return Ok(None);
        };
        for (kind, n) in counts.by_kind() {
            metrics::counter!("retention_purged_total", "kind" => kind).increment(n);
        }
        if counts.total() > 0 {
            let details = serde_json::Value::Object(
                counts
                    .by_kind()
                    .into_iter()
                    .map(|(k, n)| (k.to_owned(), n.into()))
                    .collect(),
            );
            self.audit(
                "retention_purged",
                None,
                None,
                &ClientInfo::default(),
                details,
            )
            .await;
        }
        Ok(Some(counts))
    }
}

/// Runs `purge_expired` every `settings.interval` (the first run one interval after start).
pub async fn run(auth: std::sync::Arc<Auth>, settings: RetentionSettings, stop: CancelSignal) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(settings.interval) => {}
            () = stop.cancelled() => return,
        }
        match auth.purge_expired(&settings).await {
            Ok(Some(counts)) => {
                tracing::info!(event = "retention_run", purged = counts.total(), counts = ?counts);
            }
            Ok(None) => tracing::debug!(
                event = "retention_skipped",
                "another instance is running it"
            ),
            Err(e) => tracing::warn!(event = "retention_failed", error = %e),
        }
    }
}
