//! What operators ask when something fails: what a token says and why it is refused, and which
//! instances are running with which JWT key.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;

use super::ports::SessionRecord;
use super::tokens::TokenError;
use super::{Auth, Result, keys};
use crate::domain::time::{Millis, ms, now_ms};

/// Instances announce themselves this often; an announcement lives three times as long.
pub const INSTANCE_ANNOUNCE_EVERY: Duration = Duration::from_secs(20);
const INSTANCE_TTL: Duration = Duration::from_secs(60);

pub struct TokenReport {
    pub header: Value,
    pub claims: Value,
    pub signature: std::result::Result<String, TokenError>,
    pub configured_kid: String,
    /// `None` when the store could not be asked.
    pub blacklisted: Option<bool>,
    pub session: Option<SessionRecord>,
    pub idle_timeout_ms: Millis,
    /// For a refresh token: its `refresh:<jti>` state (`live`, `rotated`), or `missing`.
    pub refresh_state: Option<String>,
}

pub struct RunningInstance {
    pub id: String,
    pub kid: String,
    pub started_at: Millis,
}

fn segment(token: &str, i: usize) -> Value {
    token
        .split('.')
        .nth(i)
        .and_then(|s| B64.decode(s).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

impl Auth {
    /// Decodes a token without trusting it, and checks it against the key, the blacklist and
    /// its session.
    pub async fn inspect_token(&self, token: &str) -> Result<TokenReport> {
        let token = token.trim();
        let header = segment(token, 0);
        let claims = segment(token, 1);
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sid = claims.get("sid").and_then(Value::as_i64);
        let blacklisted = if jti.is_empty() {
            None
        } else {
            self.store
                .get(&keys::blacklist(&jti))
                .await
                .ok()
                .map(|found| found.is_some())
        };
        let session = match sid {
            Some(sid) => self.repo.session(sid).await?,
            None => None,
        };
        let refresh_state = match claims.get("type").and_then(Value::as_str) {
            Some("refresh") if !jti.is_empty() => {
                Some(match self.store.get(&keys::refresh(&jti)).await {
                    Ok(Some(raw)) => serde_json::from_str::<Value>(&raw)
                        .ok()
                        .and_then(|v| v.get("state").and_then(Value::as_str).map(str::to_owned))
                        .unwrap_or_else(|| "unreadable".into()),
                    Ok(None) => "missing".into(),
                    Err(_) => "unknown (store unreachable)".into(),
                })
            }
            _ => None,
        };
        Ok(TokenReport {
            signature: self.keys.check_signature(token),
            configured_kid: self.keys.kid().to_owned(),
            header,
            claims,
            blacklisted,
            session,
            idle_timeout_ms: ms(self.settings.refresh_idle_timeout),
            refresh_state,
        })
    }

    /// Tells the other instances (and `doctor`) that this one runs, and with which key.
    pub async fn announce_instance(&self, id: &str, started_at: Millis) -> Result<()> {
        let value =
            serde_json::json!({ "kid": self.keys.kid(), "started_at": started_at }).to_string();
        self.store
            .set(&keys::instance(id), &value, INSTANCE_TTL)
            .await?;
        Ok(())
    }

    pub async fn running_instances(&self) -> Result<Vec<RunningInstance>> {
        let mut found = Vec::new();
        for (key, _) in self.store.scan(&keys::instance("*"), 1000).await? {
            let id = key.trim_start_matches(&keys::instance("")).to_owned();
            if let Some(raw) = self.store.get(&key).await?
                && let Ok(v) = serde_json::from_str::<Value>(&raw)
            {
                let kid = v
                    .get("kid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let started_at = v
                    .get("started_at")
                    .and_then(Value::as_i64)
                    .unwrap_or_default();
                found.push(RunningInstance {
                    id,
                    kid,
                    started_at,
                });
            }
        }
        Ok(found)
    }
}

impl TokenReport {
    /// The session's state in words.
    pub fn session_state(&self) -> String {
        let Some(s) = &self.session else {
            return "no such session".into();
        };
        let now = now_ms();
        match s.revoked_at {
            Some(at) => format!("revoked at {}", crate::domain::time::rfc3339(at)),
            None if s.expires_at <= now => {
                format!("expired at {}", crate::domain::time::rfc3339(s.expires_at))
            }
            None if s.last_seen_at + self.idle_timeout_ms <= now => {
                format!(
                    "idle since {} (past REFRESH_IDLE_TIMEOUT_MINUTES)",
                    crate::domain::time::rfc3339(s.last_seen_at)
                )
            }
            None => "active".into(),
        }
    }
}
