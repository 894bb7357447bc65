//! Concurrent-login approval: a second login while the user has an active session waits (423)
//! until an existing session approves or denies it — live over server-sent events, or by the
//! emailed links. The decision is stored in `concurrent_login:state:<token>`; pub/sub only
//! tells sessions to look.

use serde::{Deserialize, Serialize};

use super::login::PreauthState;
use super::{Auth, ClientInfo, Error, Result, emails, keys, tokens};
use crate::domain::claims::AccessClaims;
use crate::domain::time::{Millis, ms, rfc3339};
use crate::domain::{SessionId, TokenHash, UserId};

/// Undecided requests one user may have at a time; more logins answer 429 (no prompt flood).
pub const MAX_PENDING_REQUESTS: u32 = 3;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalStatus {
    Pending,
    Approved,
    Denied,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Denied => "denied",
        }
    }
}

/// What `concurrent_login:state:<token>` holds (readable with `redis-cli GET`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub status: ApprovalStatus,
    pub user_id: UserId,
    pub requested_at: Millis,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by_session: Option<SessionId>,
    /// The pending slot of the user this request holds while undecided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// The hash of the requesting device when it is (or just became) trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_hash: Option<TokenHash>,
}

/// An undecided request, by the token that names it (for `mbpanel-auth approvals list`).
#[derive(Debug, Clone)]
pub struct PendingApproval {
    pub token: String,
    pub request: ApprovalRequest,
    /// Time left before the request expires.
    pub expires_in: Option<std::time::Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// Who decides: an existing session, the holder of the emailed link, or an operator
/// (`mbpanel-auth approvals decide`).
enum Decider<'a> {
    Session(&'a AccessClaims),
    EmailLink,
    Operator,
}

impl Auth {
    /// Called by the exchange before it consumes the pre-auth token. `Ok` lets it proceed.
    /// A decision binds: once denied, the login is refused even if every other session ended
    /// since; while pending, it proceeds only if no active session is left to decide.
    pub(crate) async fn concurrent_login_gate(
        &self,
        preauth_token: &str,
        raw_state: &str,
        state: &PreauthState,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.now_ms();
        let idle_since = now - ms(self.settings.refresh_idle_timeout);
        let nobody_to_ask = self
            .repo
            .active_sessions(state.user_id, now, idle_since)
            .await?
            .is_empty();
        let decision = self
            .gate_decision(preauth_token, raw_state, state, nobody_to_ask, client)
            .await;
        if decision.is_ok() {
            self.trust_verified_device(state, client).await?;
        }
        decision
    }

    async fn gate_decision(
        &self,
        preauth_token: &str,
        raw_state: &str,
        state: &PreauthState,
        nobody_to_ask: bool,
        client: &ClientInfo,
    ) -> Result<()> {
        let now = self.now_ms();
        match &state.approval_token {
            Some(token) => match self.approval(token).await? {
                None => Err(Error::PreauthExpired),
                Some((_, request)) => match request.status {
                    ApprovalStatus::Denied => {
                        self.store.delete(&keys::preauth(preauth_token)).await?;
                        if let Some(device) = &state.device_hash {
                            self.repo
                                .distrust_devices(state.user_id, Some(device), now)
                                .await?;
                        }
                        Err(Error::ConcurrentLoginDenied)
                    }
                    ApprovalStatus::Approved => Ok(()),
                    ApprovalStatus::Pending if nobody_to_ask => {
                        self.close_moot_request(token).await
                    }
                    ApprovalStatus::Pending => Err(Error::ConcurrentLoginPending {
                        token: token.clone(),
                    }),
                },
            },
            None if nobody_to_ask => Ok(()),
            None => {
                self.request_approval(preauth_token, raw_state, state, client)
                    .await
            }
        }
    }

    /// Every session that could decide has ended: the request counts as approved (so a retry
    /// of this exchange proceeds) and no longer counts against the pending limit.
    async fn close_moot_request(&self, token: &str) -> Result<()> {
        let Some((raw, request)) = self.approval(token).await? else {
            return Err(Error::PreauthExpired);
        };
        let key = keys::concurrent_login_state(token);
        let closed = ApprovalRequest {
            status: ApprovalStatus::Approved,
            decided_at: Some(self.now_ms()),
            ..request.clone()
        };
        let ttl = self
            .store
            .ttl(&key)
            .await?
            .unwrap_or(self.settings.concurrent_login_ttl);
        if self
            .store
            .compare_and_swap(&key, &raw, &to_json(&closed)?, ttl)
            .await?
        {
            self.release_pending_slot(&request, token).await?;
            return Ok(());
        }
        // Decided meanwhile: that decision binds.
        match self.approval(token).await?.map(|(_, r)| r.status) {
            Some(ApprovalStatus::Approved) => Ok(()),
            Some(ApprovalStatus::Denied) => Err(Error::ConcurrentLoginDenied),
            _ => Err(Error::PreauthExpired),
        }
    }

    async fn request_approval(
        &self,
        preauth_token: &str,
        raw_state: &str,
        state: &PreauthState,
        client: &ClientInfo,
    ) -> Result<()> {
        let ttl = self.settings.concurrent_login_ttl;
        let now = self.now_ms();
        let token = tokens::random_token();
        let link_token = tokens::random_token();
        let request = ApprovalRequest {
            status: ApprovalStatus::Pending,
            user_id: state.user_id,
            requested_at: now,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            decided_at: None,
            decided_by_session: None,
            slot: None,
            device_hash: state.device_hash.clone(),
        };
        let state_key = keys::concurrent_login_state(&token);
        let link_key = keys::concurrent_login_link(&TokenHash::of(&link_token));
        let unslotted = to_json(&request)?;
        self.store.set(&state_key, &unslotted, ttl).await?;
        // The pre-auth token now waits as long as the request. A racing exchange of the same
        // pre-auth token that got here first wins; this one answers as it does.
        let preauth_key = keys::preauth(preauth_token);
        let waiting_raw = to_json(&PreauthState {
            approval_token: Some(token.clone()),
            ..state.clone()
        })?;
        if !self
            .store
            .compare_and_swap(&preauth_key, raw_state, &waiting_raw, ttl)
            .await?
        {
            self.store.delete(&state_key).await?;
            let (_, current) = self
                .load_preauth(preauth_token)
                .await?
                .ok_or(Error::PreauthExpired)?;
            return match current.approval_token {
                Some(token) => Err(Error::ConcurrentLoginPending { token }),
                None => Err(Error::PreauthExpired),
            };
        }
        // One of the user's few pending slots; each expires with its own request, so the bound
        // holds at every instant (a counter with one window let a window edge double it).
        let Some(slot) = self.take_pending_slot(state.user_id, &token, ttl).await? else {
            self.store.delete(&state_key).await?;
            let left = self
                .store
                .ttl(&preauth_key)
                .await?
                .unwrap_or(self.settings.preauth_token_ttl);
            self.store
                .compare_and_swap(&preauth_key, &waiting_raw, raw_state, left)
                .await?;
            let retry_after = self.earliest_slot_expiry(state.user_id, ttl).await?;
            return Err(Error::RateLimited { retry_after });
        };
        let slotted = ApprovalRequest {
            slot: Some(slot),
            ..request
        };
        if !self
            .store
            .compare_and_swap(&state_key, &unslotted, &to_json(&slotted)?, ttl)
            .await?
        {
            // Expired or closed in the meantime: the slot is not needed.
            self.release_pending_slot(&slotted, &token).await?;
        }
        self.store.set(&link_key, &token, ttl).await?;

        let device = serde_json::json!({
            "user_agent": client.user_agent, "ip": client.ip, "requested_at": rfc3339(now),
        });
        let event = serde_json::json!({ "event": "concurrent_login_requested", "token": token, "device": device });
        self.publish_user_event(state.user_id, &event).await;
        if let Some(user) = self.repo.user_by_id(state.user_id).await? {
            let approve = self.link_with("/concurrent-login", &link_token, "approve");
            let deny = self.link_with("/concurrent-login", &link_token, "deny");
            let device_name = client.user_agent.as_deref().unwrap_or("unknown device");
            let ip = client.ip.as_deref().unwrap_or("unknown");
            self.queue_email(emails::concurrent_login(
                &user.email,
                &user.name,
                device_name,
                ip,
                &approve,
                &deny,
                ttl.as_secs() / 60,
            ))
            .await?;
        }
        self.audit(
            "concurrent_login_requested",
            Some(state.user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Err(Error::ConcurrentLoginPending { token })
    }

    async fn approval(&self, token: &str) -> Result<Option<(String, ApprovalRequest)>> {
        if token.is_empty() || token.len() > 128 {
            return Ok(None);
        }
        let Some(raw) = self.store.get(&keys::concurrent_login_state(token)).await? else {
            return Ok(None);
        };
        let request = serde_json::from_str(&raw).map_err(anyhow::Error::from)?;
        Ok(Some((raw, request)))
    }

    /// The waiting client's view: pending, approved or denied (404 once expired).
    pub async fn approval_status(&self, token: &str) -> Result<ApprovalStatus> {
        self.approval(token)
            .await?
            .map(|(_, r)| r.status)
            .ok_or(Error::ApprovalNotFound)
    }

    /// An existing session of the same user decides. Another user's session gets 404, a
    /// session younger than the request (the requester itself) 403, a second decision 409.
    pub async fn decide(
        &self,
        token: &str,
        decision: Decision,
        session: &AccessClaims,
        client: &ClientInfo,
    ) -> Result<()> {
        self.decide_as(token, decision, Decider::Session(session), client)
            .await
    }

    /// The emailed link decides: single use, expiring with the request.
    pub async fn decide_by_link(
        &self,
        link_token: &str,
        decision: Decision,
        client: &ClientInfo,
    ) -> Result<()> {
        if link_token.is_empty() || link_token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let key = keys::concurrent_login_link(&TokenHash::of(link_token));
        let token = self.store.take(&key).await?.ok_or(Error::TokenInvalid)?;
        self.decide_as(&token, decision, Decider::EmailLink, client)
            .await
    }

    /// An operator decides from the command line (audited with `via: operator`).
    pub async fn decide_by_operator(
        &self,
        token: &str,
        decision: Decision,
        client: &ClientInfo,
    ) -> Result<()> {
        self.decide_as(token, decision, Decider::Operator, client)
            .await
    }

    /// The waiting sign-in withdraws its undecided request: the request is gone (its status
    /// and decisions answer 404), its pending slot is free again, the pre-auth token that
    /// waited on it (when given and still waiting on it) is void, and the user's sessions are
    /// told (`concurrent_login_decided` with status `cancelled`). A decided request stays.
    pub async fn cancel_approval(
        &self,
        token: &str,
        preauth_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<()> {
        let (_, request) = self.approval(token).await?.ok_or(Error::ApprovalNotFound)?;
        if request.status != ApprovalStatus::Pending {
            return Err(Error::AlreadyDecided);
        }
        // Atomic: of a racing decision and this cancel, one finds the request gone. A decision
        // that landed between the read above and the take is put back: it binds.
        let key = keys::concurrent_login_state(token);
        let ttl = self.store.ttl(&key).await?;
        let raw = self
            .store
            .take(&key)
            .await?
            .ok_or(Error::ApprovalNotFound)?;
        let taken: ApprovalRequest = serde_json::from_str(&raw).map_err(anyhow::Error::from)?;
        if taken.status != ApprovalStatus::Pending {
            let ttl = ttl.unwrap_or(self.settings.concurrent_login_ttl);
            self.store.set(&key, &raw, ttl).await?;
            return Err(Error::AlreadyDecided);
        }
        self.release_pending_slot(&taken, token).await?;
        if let Some(preauth) = preauth_token.filter(|t| !t.is_empty() && t.len() <= 128)
            && let Some((_, state)) = self.load_preauth(preauth).await?
            && state.approval_token.as_deref() == Some(token)
        {
            self.store.delete(&keys::preauth(preauth)).await?;
        }
        let event = serde_json::json!({ "event": "concurrent_login_decided", "token": token, "status": "cancelled" });
        self.publish_user_event(taken.user_id, &event).await;
        self.audit(
            "concurrent_login_cancelled",
            Some(taken.user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    /// The user's undecided approval requests (one per pending slot), oldest first, with the
    /// token that names each.
    pub async fn pending_approvals(&self, user_id: UserId) -> Result<Vec<PendingApproval>> {
        let mut found = Vec::new();
        for slot in 0..MAX_PENDING_REQUESTS {
            let Some(token) = self
                .store
                .get(&keys::concurrent_login_pending(user_id, slot))
                .await?
            else {
                continue;
            };
            if let Some((_, request)) = self.approval(&token).await?
                && request.status == ApprovalStatus::Pending
            {
                let expires_in = self
                    .store
                    .ttl(&keys::concurrent_login_state(&token))
                    .await?;
                found.push(PendingApproval {
                    token,
                    request,
                    expires_in,
                });
            }
        }
        found.sort_by_key(|p| p.request.requested_at);
        Ok(found)
    }

    async fn decide_as(
        &self,
        token: &str,
        decision: Decision,
        decider: Decider<'_>,
        client: &ClientInfo,
    ) -> Result<()> {
        let (raw, request) = self.approval(token).await?.ok_or(Error::ApprovalNotFound)?;
        let via = match &decider {
            Decider::Session(_) => "session",
            Decider::EmailLink => "email",
            Decider::Operator => "operator",
        };
        let decided_by_session = match decider {
            Decider::Session(claims) => {
                let user_id = claims.sub;
                if user_id != request.user_id {
                    return Err(Error::ApprovalNotFound);
                }
                let session = self
                    .repo
                    .session(claims.sid)
                    .await?
                    .ok_or(Error::NotAuthenticated)?;
                if session.created_at >= request.requested_at {
                    return Err(Error::SelfApproval);
                }
                Some(claims.sid)
            }
            Decider::EmailLink | Decider::Operator => None,
        };
        if request.status != ApprovalStatus::Pending {
            return Err(Error::AlreadyDecided);
        }
        let status = match decision {
            Decision::Approve => ApprovalStatus::Approved,
            Decision::Deny => ApprovalStatus::Denied,
        };
        let decided = ApprovalRequest {
            status,
            decided_at: Some(self.now_ms()),
            decided_by_session,
            ..request.clone()
        };
        let key = keys::concurrent_login_state(token);
        let ttl = self.store.ttl(&key).await?.ok_or(Error::ApprovalNotFound)?;
        if !self
            .store
            .compare_and_swap(&key, &raw, &to_json(&decided)?, ttl)
            .await?
        {
            return Err(Error::AlreadyDecided);
        }
        self.release_pending_slot(&request, token).await?;
        if decision == Decision::Deny
            && let Some(device) = &request.device_hash
        {
            // A denied sign-in keeps nothing: the device it came from (or that its code
            // trusted) needs the emailed code again.
            self.repo
                .distrust_devices(request.user_id, Some(device), self.now_ms())
                .await?;
        }
        let event = serde_json::json!({ "event": "concurrent_login_decided", "token": token, "status": status.as_str() });
        self.publish_user_event(request.user_id, &event).await;
        let audit_event = match decision {
            Decision::Approve => "concurrent_login_approved",
            Decision::Deny => "concurrent_login_denied",
        };
        let details = serde_json::json!({ "decided_by_session": decided_by_session, "via": via });
        self.audit(audit_event, Some(request.user_id), None, client, details)
            .await;
        Ok(())
    }

    /// Takes a free pending slot for `token`, or `None` when all are held.
    async fn take_pending_slot(
        &self,
        user_id: UserId,
        token: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u32>> {
        for slot in 0..MAX_PENDING_REQUESTS {
            let key = keys::concurrent_login_pending(user_id, slot);
            if self.store.set_if_absent(&key, token, ttl).await? {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    async fn earliest_slot_expiry(
        &self,
        user_id: UserId,
        ttl: std::time::Duration,
    ) -> Result<std::time::Duration> {
        let mut earliest = ttl;
        for slot in 0..MAX_PENDING_REQUESTS {
            let key = keys::concurrent_login_pending(user_id, slot);
            if let Some(left) = self.store.ttl(&key).await? {
                earliest = earliest.min(left);
            }
        }
        Ok(earliest)
    }

    /// Frees the request's slot if it still holds it.
    async fn release_pending_slot(&self, request: &ApprovalRequest, token: &str) -> Result<()> {
        let Some(slot) = request.slot else {
            return Ok(());
        };
        let key = keys::concurrent_login_pending(request.user_id, slot);
        if self.store.get(&key).await?.as_deref() == Some(token) {
            self.store.delete(&key).await?;
        }
        Ok(())
    }

    pub(crate) fn link_with(&self, path: &str, token: &str, action: &str) -> String {
        let mut url = self.settings.base_url.clone();
        url.set_path(path);
        url.query_pairs_mut()
            .clear()
            .append_pair("token", token)
            .append_pair("action", action);
        url.to_string()
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.into()))
}
