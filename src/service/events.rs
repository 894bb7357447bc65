//! Live events for an authenticated session (served as server-sent events): a new login asking
//! for approval, a decision, a revoked session. Events come from this instance's one bus
//! subscription (`service::bus`), fanned out in process. Pub/sub is only a hint: the stream
//! also re-checks its session, and ends when the session is revoked or its access token
//! expires (the client refreshes, then reconnects).
//!
//! Streams are bounded across instances: at most `MAX_STREAMS_PER_SESSION` per session and
//! `MAX_STREAMS_PER_USER` per user (429 beyond), held as leases in the ephemeral store that a
//! live stream renews and a crashed instance's streams let expire.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::{Auth, Error, Result, keys, tokens};
use crate::domain::claims::AccessClaims;

/// How often a stream re-checks that its session is still alive.
const REVOCATION_CHECK: Duration = Duration::from_secs(5);
pub const MAX_STREAMS_PER_SESSION: usize = 5;
pub const MAX_STREAMS_PER_USER: usize = 20;
/// A stream's lease lives this long and is renewed at a third of it.
const STREAM_LEASE: Duration = Duration::from_secs(60);

/// One event: its name and its JSON data.
pub type LiveEvent = (String, String);

impl Auth {
    pub async fn session_events(
        self: &Arc<Self>,
        claims: AccessClaims,
    ) -> Result<BoxStream<'static, LiveEvent>> {
        let user_id = claims.sub;
        let sets = [
            (keys::event_streams_of_user(user_id), MAX_STREAMS_PER_USER),
            (
                keys::event_streams_of_session(user_id, claims.sid),
                MAX_STREAMS_PER_SESSION,
            ),
        ];
        let lease = tokens::random_jti();
        if !self
            .store
            .acquire_slots(&sets, &lease, STREAM_LEASE)
            .await?
        {
            return Err(Error::TooManyStreams);
        }
        // Subscribed before "ready" is sent: nothing published after it is missed.
        let mut messages = self.bus.subscribe_user(user_id);
        let (tx, rx) = mpsc::channel::<LiveEvent>(32);
        let this = Arc::clone(self);
        let ready = serde_json::json!({ "session_id": claims.sid }).to_string();
        tokio::spawn(async move {
            let set_names: Vec<String> = sets.iter().map(|(k, _)| k.clone()).collect();
            if tx.send(("ready".to_owned(), ready)).await.is_ok() {
                let revoked =
                    serde_json::json!({ "event": "session_revoked", "session_id": claims.sid })
                        .to_string();
                let mut check = tokio::time::interval(REVOCATION_CHECK);
                check.tick().await;
                let mut renew = tokio::time::interval(STREAM_LEASE / 3);
                renew.tick().await;
                loop {
                    tokio::select! {
                        message = messages.recv() => {
                            let message = match message {
                                Ok(m) => m,
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => break,
                            };
                            let Ok(value) = serde_json::from_str::<serde_json::Value>(&message) else { continue };
                            let name = value.get("event").and_then(|e| e.as_str()).unwrap_or("message").to_owned();
                            let ends_this_session = name == "session_revoked" && value.get("session_id").and_then(|s| s.as_i64()) == Some(claims.sid.get());
                            if tx.send((name, message)).await.is_err() || ends_this_session {
                                break;
                            }
                        }
                        _ = check.tick() => {
                            if claims.exp * 1000 <= this.now_ms() {
                                break;
                            }
                            if this.live_session(claims.sid, claims.sub, claims.iat * 1000).await.is_err() {
                                let _ = tx.send(("session_revoked".to_owned(), revoked.clone())).await;
                                break;
                            }
                        }
                        _ = renew.tick() => {
                            if let Err(e) = this.store.acquire_slots(&sets, &lease, STREAM_LEASE).await {
                                tracing::debug!(event = "stream_lease_renew_failed", error = %e);
                            }
                        }
                        () = tx.closed() => break,
                    }
                }
            }
            drop(messages);
            this.bus.release_user(user_id);
            if let Err(e) = this.store.release_slots(&set_names, &lease).await {
                tracing::debug!(event = "stream_lease_release_failed", error = %e);
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }
}
