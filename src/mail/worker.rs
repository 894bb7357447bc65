//! The outbox worker: sends queued messages with retries and exponential backoff. Messages are
//! leased, so a crash mid-send means a later retry, never a lost message.

use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::CancelSignal;
use tokio::sync::Notify;

use crate::service::clock::Clock;
use crate::service::emails::from_outbox;
use crate::service::ports::{EmailSender, Repository};

const BATCH: i64 = 20;
const LEASE_MS: i64 = 60_000;
const IDLE_POLL: Duration = Duration::from_secs(2);
const MAX_ATTEMPTS: i64 = 10;
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Delay before the next attempt after `attempts` failures: 2 s, 4 s, 8 s … capped at an hour.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) as u32;
    (1_000i64 << exp).min(MAX_BACKOFF_MS)
}

pub async fn run(
    repo: Arc<dyn Repository>,
    sender: Arc<dyn EmailSender>,
    wakeup: Arc<Notify>,
    clock: Arc<dyn Clock>,
    stop: CancelSignal,
) {
    loop {
        let sent_any = match deliver_due(&*repo, &*sender, &*clock).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(event = "outbox_poll_failed", error = %e);
                false
            }
        };
        if sent_any {
            continue;
        }
        tokio::select! {
            () = wakeup.notified() => {}
            () = tokio::time::sleep(IDLE_POLL) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Sends what is due now (by the service's clock, which also stamped the messages); returns
/// how many messages were handled.
pub async fn deliver_due(
    repo: &dyn Repository,
    sender: &dyn EmailSender,
    clock: &dyn Clock,
) -> anyhow::Result<usize> {
    let now = clock.now_ms();
    let batch = repo.claim_due_emails(now, now + LEASE_MS, BATCH).await?;
    let handled = batch.len();
    for message in batch {
        let result = match from_outbox(&message.to_address, &message.payload) {
            Some(email) => sender.send(&email).await,
            None => Err("unreadable outbox payload".to_owned()),
        };
        match result {
            Ok(()) => {
                metrics::counter!("email_sent_total", "kind" => message.kind.clone()).increment(1);
                repo.mark_email_sent(message.id, clock.now_ms()).await?
            }
            Err(reason) => {
                let give_up = message.attempts >= MAX_ATTEMPTS;
                metrics::counter!("email_send_failed_total", "kind" => message.kind.clone())
                    .increment(1);
                let retry_at = (!give_up).then(|| clock.now_ms() + backoff_ms(message.attempts));
                tracing::error!(
                    event = "email_send_failed",
                    outbox_id = message.id,
                    kind = %message.kind,
                    attempt = message.attempts,
                    will_retry = !give_up,
                    %reason,
                );
                repo.mark_email_failed(message.id, &reason, retry_at)
                    .await?;
            }
        }
    }
    Ok(handled)
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff_ms(1), 2_000);
        assert_eq!(backoff_ms(2), 4_000);
        assert_eq!(backoff_ms(30), 3_600_000);
    }
}
