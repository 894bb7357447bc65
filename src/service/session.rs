//! Step 3 onwards: session exchange, authentication of access tokens, refresh with rotation and
//! reuse detection, logout.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ports::{Membership, NewSession};
use super::{Auth, ClientInfo, Error, Result, keys, tokens};
use crate::domain::claims::{AccessClaims, RefreshClaims, TokenType};
use crate::domain::time::{Millis, ms, now_ms, until};
use crate::domain::{SessionId, TeamId, UserId};

/// What `refresh:<jti>` holds. `live` until rotated; then `rotated` for the grace window, naming
/// the successor so a racing tab gets the very same tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshState {
    pub state: RefreshPhase,
    pub sid: SessionId,
    pub user_id: UserId,
    pub team_id: TeamId,
    pub role: String,
    pub generation: i64,
    pub session_expires_at: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RefreshPhase {
    Live,
    Rotated,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rotation {
    pub at: Millis,
    pub next_jti: String,
    pub next_access_jti: String,
}

/// Everything that determines a set of tokens: minting is deterministic, so the same grant
/// always yields the same strings.
pub(crate) struct Grant<'a> {
    pub user_id: UserId,
    pub sid: SessionId,
    pub team_id: TeamId,
    pub role: &'a str,
    pub refresh_jti: &'a str,
    pub access_jti: &'a str,
    pub issued_at: Millis,
    pub session_expires_at: Millis,
}

fn seconds_left(at: Millis) -> u64 {
    u64::try_from((at - now_ms()).max(0) / 1000).unwrap_or(0)
}

/// The tokens handed to a client, with what the cookies need.
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub session_id: SessionId,
    pub access_token: String,
    pub access_expires_in: u64,
    pub refresh_token: String,
    pub refresh_expires_in: u64,
    pub csrf_token: String,
    pub csrf_expires_in: u64,
}

pub struct ExchangeOutcome {
    pub tokens: IssuedTokens,
    pub membership: Membership,
}

impl Auth {
    /// A signed access token and its lifetime in seconds.
    pub(crate) fn mint_access(&self, g: &Grant<'_>) -> (String, u64) {
        let exp =
            (g.issued_at + ms(self.settings.access_token_ttl)).min(g.session_expires_at) / 1000;
        let claims = AccessClaims {
            sub: g.user_id,
            team_id: g.team_id,
            role: g.role.to_owned(),
            sid: g.sid,
            jti: g.access_jti.to_owned(),
            iat: g.issued_at / 1000,
            exp,
            token_type: TokenType::Access,
        };
        (self.keys.sign_access(&claims), seconds_left(exp * 1000))
    }

    fn mint(&self, g: &Grant<'_>) -> IssuedTokens {
        let (access_token, access_expires_in) = self.mint_access(g);
        let refresh = RefreshClaims {
            sub: g.user_id,
            sid: g.sid,
            jti: g.refresh_jti.to_owned(),
            iat: g.issued_at / 1000,
            exp: g.session_expires_at / 1000,
            token_type: TokenType::Refresh,
        };
        let csrf_expires_at =
            (g.issued_at + ms(self.settings.csrf_token_ttl)).min(g.session_expires_at);
        IssuedTokens {
            session_id: g.sid,
            access_token,
            access_expires_in,
            refresh_token: self.keys.sign_refresh(&refresh),
            refresh_expires_in: seconds_left(g.session_expires_at),
            csrf_token: self.keys.csrf_token(g.sid, csrf_expires_at, g.access_jti),
            csrf_expires_in: seconds_left(csrf_expires_at),
        }
    }

    fn refresh_ttl(&self, session_expires_at: Millis, now: Millis) -> Option<std::time::Duration> {
        until(session_expires_at, now).map(|left| left.min(self.settings.refresh_idle_timeout))
    }

    /// Trades a pre-auth token for a session. Single use: of any number of parallel exchanges
    /// of one token, exactly one succeeds.
    pub async fn exchange(
        &self,
        preauth_token: &str,
        team_id: Option<TeamId>,
        client: &ClientInfo,
    ) -> Result<ExchangeOutcome> {
        let (raw_state, state) = self
            .load_preauth(preauth_token)
            .await?
            .ok_or(Error::PreauthExpired)?;
        if !state.ready_for_exchange() {
            return Err(Error::OtpRequired);
        }
        let membership = match team_id {
            Some(team_id) => self.repo.membership(state.user_id, team_id).await?,
            None => self
                .repo
                .memberships(state.user_id)
                .await?
                .into_iter()
                .next(),
        }
        .ok_or(Error::NotMember)?;
        let user = self
            .repo
            .user_by_id(state.user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        if super::login::credential_fingerprint(&user.password_hash) != state.credential {
            // The password changed since this login was checked: it is void.
            self.store.delete(&keys::preauth(preauth_token)).await?;
            return Err(Error::PreauthExpired);
        }

        // A user with an active session must have this login approved first (423 until then).
        self.concurrent_login_gate(preauth_token, &raw_state, &state, client)
            .await?;

        // A team Owner needs a live Virtuozzo session key (503 if the sign-in fails).
        self.ensure_virtuozzo_session(state.user_id, &membership, client)
            .await?;

        // The single-use gate: whoever takes the key owns the exchange.
        let taken = self
            .store
            .take(&keys::preauth(preauth_token))
            .await?
            .ok_or(Error::PreauthExpired)?;
        let taken: super::login::PreauthState =
            serde_json::from_str(&taken).map_err(anyhow::Error::from)?;
        if !taken.ready_for_exchange() || taken.user_id != state.user_id {
            return Err(Error::PreauthExpired);
        }

        let now = now_ms();
        let session_expires_at = now + ms(self.settings.refresh_token_ttl);
        let refresh_jti = tokens::random_jti();
        let sid = self
            .repo
            .create_session(&NewSession {
                user_id: state.user_id,
                team_id: membership.team_id,
                refresh_token_jti: refresh_jti.clone(),
                device_id: None,
                ip_address: client.ip.clone(),
                user_agent: client.user_agent.clone(),
                created_at: now,
                expires_at: session_expires_at,
            })
            .await?;
        let record = RefreshState {
            state: RefreshPhase::Live,
            sid,
            user_id: state.user_id,
            team_id: membership.team_id,
            role: membership.role_name.clone(),
            generation: 1,
            session_expires_at,
            rotation: None,
        };
        let ttl = self
            .refresh_ttl(session_expires_at, now)
            .ok_or(Error::SessionExpired)?;
        self.store
            .set(
                &keys::refresh(&refresh_jti),
                &serde_json::to_string(&record).map_err(anyhow::Error::from)?,
                ttl,
            )
            .await?;
        let access_jti = tokens::random_jti();
        let tokens = self.mint(&Grant {
            user_id: state.user_id,
            sid,
            team_id: membership.team_id,
            role: &membership.role_name,
            refresh_jti: &refresh_jti,
            access_jti: &access_jti,
            issued_at: now,
            session_expires_at,
        });
        let event =
            serde_json::json!({ "event": "session_created", "session_id": sid }).to_string();
        if let Err(e) = self
            .store
            .publish(&super::revocation::user_channel(state.user_id), &event)
            .await
        {
            tracing::warn!(event = "publish_failed", error = %e);
        }
        self.audit(
            "login_succeeded",
            Some(state.user_id),
            Some(membership.team_id),
            client,
            serde_json::json!({ "session_id": sid }),
        )
        .await;
        Ok(ExchangeOutcome { tokens, membership })
    }

    /// Verifies an access token: signature, expiry, type, then blacklist and session revocation.
    pub async fn authenticate(self: &Arc<Self>, access_token: &str) -> Result<AccessClaims> {
        let claims = self
            .keys
            .verify_access(access_token)
            .map_err(|_| Error::NotAuthenticated)?;
        if self.is_revoked(&claims.jti, claims.sid).await? {
            return Err(Error::NotAuthenticated);
        }
        Ok(claims)
    }

    /// Verifies a refresh token's signature, expiry and type (not its state).
    pub fn decode_refresh(&self, refresh_token: &str) -> Result<RefreshClaims> {
        self.keys
            .verify_refresh(refresh_token)
            .map_err(|_| Error::SessionExpired)
    }

    /// Rotates the refresh token. A repeat of the just-rotated token within the grace window
    /// gets the same successor tokens; any later reuse is theft and revokes the session.
    pub async fn refresh(
        self: &Arc<Self>,
        claims: &RefreshClaims,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        if self.is_revoked(&claims.jti, claims.sid).await? {
            return Err(Error::SessionExpired);
        }
        let key = keys::refresh(&claims.jti);
        // A lost compare-and-swap means a racing request rotated first: read again.
        for _ in 0..3 {
            let Some(raw) = self.store.get(&key).await? else {
                return self.refresh_without_state(claims, client).await;
            };
            let record: RefreshState = serde_json::from_str(&raw).map_err(anyhow::Error::from)?;
            if record.sid != claims.sid {
                return Err(Error::SessionExpired);
            }
            match (&record.state, &record.rotation) {
                (RefreshPhase::Rotated, Some(rotation)) => {
                    let grace = ms(self.settings.refresh_reuse_grace);
                    if now_ms() - rotation.at > grace {
                        return self.refresh_token_reused(claims, client).await;
                    }
                    return Ok(self.mint(&Grant {
                        user_id: record.user_id,
                        sid: record.sid,
                        team_id: record.team_id,
                        role: &record.role,
                        refresh_jti: &rotation.next_jti,
                        access_jti: &rotation.next_access_jti,
                        issued_at: rotation.at,
                        session_expires_at: record.session_expires_at,
                    }));
                }
                (RefreshPhase::Live, _) => {
                    if let Some(tokens) = self.rotate(&key, &raw, &record).await? {
                        return Ok(tokens);
                    }
                }
                (RefreshPhase::Rotated, None) => return Err(Error::SessionExpired),
            }
        }
        Err(Error::SessionExpired)
    }

    /// One rotation attempt; `None` when a racing request won the swap.
    async fn rotate(
        &self,
        key: &str,
        raw: &str,
        record: &RefreshState,
    ) -> Result<Option<IssuedTokens>> {
        let now = now_ms();
        let ttl = self
            .refresh_ttl(record.session_expires_at, now)
            .ok_or(Error::SessionExpired)?;
        let next_jti = tokens::random_jti();
        let next_access_jti = tokens::random_jti();
        let generation = record.generation + 1;
        let successor = RefreshState {
            generation,
            rotation: None,
            ..record.clone()
        };
        let next_key = keys::refresh(&next_jti);
        // The successor exists before anyone can learn its name.
        self.store
            .set(
                &next_key,
                &serde_json::to_string(&successor).map_err(anyhow::Error::from)?,
                ttl,
            )
            .await?;
        let rotated = RefreshState {
            state: RefreshPhase::Rotated,
            generation,
            rotation: Some(Rotation {
                at: now,
                next_jti: next_jti.clone(),
                next_access_jti: next_access_jti.clone(),
            }),
            ..record.clone()
        };
        let rotated_raw = serde_json::to_string(&rotated).map_err(anyhow::Error::from)?;
        if !self
            .store
            .compare_and_swap(key, raw, &rotated_raw, self.settings.refresh_reuse_grace)
            .await?
        {
            self.store.delete(&next_key).await?;
            return Ok(None);
        }
        if !self
            .repo
            .rotate_session(record.sid, &next_jti, generation, now)
            .await?
        {
            // Either a later generation already landed (fine) or the session was revoked.
            let revoked = self
                .repo
                .session(record.sid)
                .await?
                .is_none_or(|s| s.revoked_at.is_some());
            if revoked {
                self.store.delete(&next_key).await?;
                return Err(Error::SessionExpired);
            }
        }
        Ok(Some(self.mint(&Grant {
            user_id: record.user_id,
            sid: record.sid,
            team_id: record.team_id,
            role: &record.role,
            refresh_jti: &next_jti,
            access_jti: &next_access_jti,
            issued_at: now,
            session_expires_at: record.session_expires_at,
        })))
    }

    /// No ephemeral state for this token: SQL decides. A token that is not the session's
    /// current one was rotated away long ago — reuse. Otherwise the session idled out (or the
    /// store lost its state): log in again.
    async fn refresh_without_state(
        self: &Arc<Self>,
        claims: &RefreshClaims,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let session = self
            .repo
            .session(claims.sid)
            .await?
            .ok_or(Error::SessionExpired)?;
        if session.revoked_at.is_some() {
            return Err(Error::SessionExpired);
        }
        if session.refresh_token_jti != claims.jti {
            return self.refresh_token_reused(claims, client).await;
        }
        Err(Error::SessionExpired)
    }

    async fn refresh_token_reused(
        self: &Arc<Self>,
        claims: &RefreshClaims,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        tracing::warn!(event = "refresh_token_reuse", session_id = claims.sid);
        self.revoke_session(
            claims.sid,
            "refresh_token_reuse",
            &[(&claims.jti, claims.exp)],
        )
        .await?;
        let user_id = Some(claims.sub);
        self.audit(
            "refresh_token_reuse",
            user_id,
            None,
            client,
            serde_json::json!({ "session_id": claims.sid }),
        )
        .await;
        Err(Error::RefreshTokenReused)
    }

    /// Ends the session: its access and refresh token ids are blacklisted, every other token
    /// of the session dies with the session marker, and `revoked_at` is set.
    pub async fn logout(
        &self,
        sid: SessionId,
        user_id: UserId,
        token_ids: &[(&str, i64)],
        client: &ClientInfo,
    ) -> Result<()> {
        self.revoke_session(sid, "logout", token_ids).await?;
        self.audit(
            "logout",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "session_id": sid }),
        )
        .await;
        Ok(())
    }
}
