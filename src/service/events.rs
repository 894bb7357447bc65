//! Live events for an authenticated session (served as server-sent events): a new login asking
//! for approval, a decision, a revoked session. Pub/sub is only a hint; the stream also checks
//! the store itself, and ends when its session is revoked or its access token expires.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::revocation::user_channel;
use super::{Auth, Result};
use crate::domain::claims::AccessClaims;
use crate::domain::time::now_ms;

/// How often a stream re-checks that its session is still alive.
const REVOCATION_CHECK: Duration = Duration::from_secs(5);

/// One event: its name and its JSON data.
pub type LiveEvent = (String, String);

impl Auth {
    pub async fn session_events(
        self: &Arc<Self>,
        claims: AccessClaims,
    ) -> Result<BoxStream<'static, LiveEvent>> {
        let user_id = claims.sub;
        let mut messages = self.store.subscribe(&user_channel(user_id)).await?;
        let (tx, rx) = mpsc::channel::<LiveEvent>(32);
        let this = Arc::clone(self);
        let ready = serde_json::json!({ "session_id": claims.sid }).to_string();
        tokio::spawn(async move {
            if tx.send(("ready".to_owned(), ready)).await.is_err() {
                return;
            }
            let revoked =
                serde_json::json!({ "event": "session_revoked", "session_id": claims.sid })
                    .to_string();
            let mut check = tokio::time::interval(REVOCATION_CHECK);
            check.tick().await;
            loop {
                tokio::select! {
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let Ok(value) = serde_json::from_str::<serde_json::Value>(&message) else { continue };
                        let name = value.get("event").and_then(|e| e.as_str()).unwrap_or("message").to_owned();
                        let ends_this_session = name == "session_revoked" && value.get("session_id").and_then(|s| s.as_i64()) == Some(claims.sid);
                        if tx.send((name, message)).await.is_err() || ends_this_session {
                            break;
                        }
                    }
                    _ = check.tick() => {
                        if claims.exp * 1000 <= now_ms() {
                            break;
                        }
                        if !matches!(this.is_revoked(&claims.jti, claims.sid).await, Ok(false)) {
                            let _ = tx.send(("session_revoked".to_owned(), revoked.clone())).await;
                            break;
                        }
                    }
                    () = tx.closed() => break,
                }
            }
        });
        Ok(ReceiverStream::new(rx).boxed())
    }
}
