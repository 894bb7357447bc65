//! Step 3 onwards: session exchange, authentication of access tokens, refresh with rotation and
//! reuse detection, logout.
//!
//! One session model, authoritative in SQL (`active_sessions`: owner, team, current refresh jti
//! and generation, the last rotation, `revoked_at`), read the same way by every path:
//! - an access token is accepted only for a live session of its `sub`, in a team the user still
//!   belongs to (SPEC §11), checked through the coherent cache, so the hot path runs no SQL;
//! - a refresh is one atomic SQL statement (compare the presented jti, swap in the next), so a
//!   Redis flush or restart logs nobody out and never revives a rotated or revoked token.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::ports::{Membership, NewSession, RefreshRotation, SessionRecord};
use super::rbac::TeamAccess;
use super::{Auth, ClientInfo, Error, Result, keys, tokens};
use crate::domain::claims::{AccessClaims, RefreshClaims, TokenType};
use crate::domain::time::{Millis, ms, until};
use crate::domain::{SessionId, TeamId, UserId};

/// What `refresh:<jti>` holds: a mirror of the live session for the operators' guide
/// (`redis-cli GET refresh:<jti>`). SQL holds the truth; nothing reads this back.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefreshMirror {
    pub state: String,
    pub sid: SessionId,
    pub user_id: UserId,
    pub team_id: TeamId,
    pub generation: i64,
    pub session_expires_at: Millis,
}

/// An access token that names a live session of its subject, in a team the subject belongs
/// to — what every authenticated route needs, from the coherent cache (no SQL when warm).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub claims: AccessClaims,
    pub session: Arc<SessionRecord>,
    /// The subject's access in the token's team, as it is now.
    pub access: Arc<TeamAccess>,
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

fn seconds_left(at: Millis, now: Millis) -> u64 {
    u64::try_from((at - now).max(0) / 1000).unwrap_or(0)
}

/// Why a session that exists cannot carry a token (see `Auth::session_refusal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRefusal {
    /// The session belongs to another user than the token's `sub`.
    OtherUser {
        owner: UserId,
    },
    Revoked {
        at: Millis,
    },
    Expired {
        at: Millis,
    },
    /// No use within `REFRESH_IDLE_TIMEOUT_MINUTES` since `since`.
    Idle {
        since: Millis,
    },
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
        (
            self.keys.sign_access(&claims),
            seconds_left(exp * 1000, self.now_ms()),
        )
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
            refresh_expires_in: seconds_left(g.session_expires_at, self.now_ms()),
            csrf_token: self.keys.csrf_token(g.sid, csrf_expires_at, g.access_jti),
            csrf_expires_in: seconds_left(csrf_expires_at, self.now_ms()),
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
            return Err(if state.mfa_required {
                Error::MfaRequired
            } else {
                Error::OtpRequired
            });
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

        // A team that requires a second factor refuses members without one after its grace.
        self.check_team_mfa(state.user_id, membership.team_id)
            .await?;

        // A user with an active session must have this login approved first (423 until then).
        self.concurrent_login_gate(preauth_token, &raw_state, &state, client)
            .await?;
        // A login that skipped the emailed code on a trust withdrawn since (the device was
        // forgotten, "this wasn't me") is void, as after a password change: the next login
        // asks for the code. (A denied approval has answered above.)
        if !state.otp_required
            && let Some(device) = &state.device_hash
            && !self
                .repo
                .is_trusted_device(state.user_id, device, self.now_ms())
                .await?
        {
            self.store.delete(&keys::preauth(preauth_token)).await?;
            return Err(Error::PreauthExpired);
        }

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

        let now = self.now_ms();
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
        self.mirror_refresh(
            &refresh_jti,
            sid,
            state.user_id,
            membership.team_id,
            1,
            session_expires_at,
            now,
        )
        .await;
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
        let event = serde_json::json!({ "event": "session_created", "session_id": sid });
        self.publish_user_event(state.user_id, &event).await;
        self.note_sign_in_device(&taken, client).await;
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

    /// Writes the guide's `refresh:<jti>` mirror (best effort: SQL is the record).
    #[allow(clippy::too_many_arguments)]
    async fn mirror_refresh(
        &self,
        jti: &str,
        sid: SessionId,
        user_id: UserId,
        team_id: TeamId,
        generation: i64,
        session_expires_at: Millis,
        now: Millis,
    ) {
        let Some(ttl) = self.refresh_ttl(session_expires_at, now) else {
            return;
        };
        let mirror = RefreshMirror {
            state: "live".to_owned(),
            sid,
            user_id,
            team_id,
            generation,
            session_expires_at,
        };
        let Ok(value) = serde_json::to_string(&mirror) else {
            return;
        };
        if let Err(e) = self.store.set(&keys::refresh(jti), &value, ttl).await {
            tracing::debug!(event = "refresh_mirror_failed", error = %e);
        }
    }

    /// The session a token names, if it is live for that subject: it exists, belongs to `sub`,
    /// is not revoked or expired, and has been active within the idle timeout. `active_since`
    /// is a moment the session is known to have been used (an access token's `iat`: it was
    /// minted by a refresh or the exchange), since the cached `last_seen_at` may predate a
    /// refresh on another instance.
    pub(crate) async fn live_session(
        &self,
        sid: SessionId,
        user_id: UserId,
        active_since: Millis,
    ) -> Result<Arc<SessionRecord>> {
        let session = self
            .cache
            .session(sid, || async { Ok(self.repo.session(sid).await?) })
            .await?
            .ok_or(Error::NotAuthenticated)?;
        if self
            .session_refusal(&session, user_id, active_since, self.now_ms())
            .is_some()
        {
            return Err(Error::NotAuthenticated);
        }
        Ok(session)
    }

    /// Why `session` cannot carry a token of `user_id` at `now` (`None`: it is live). The one
    /// rule `live_session` applies, shared with `token decode` so both always agree.
    pub(crate) fn session_refusal(
        &self,
        session: &SessionRecord,
        user_id: UserId,
        active_since: Millis,
        now: Millis,
    ) -> Option<SessionRefusal> {
        let last_active = session.last_seen_at.max(active_since);
        if session.user_id != user_id {
            Some(SessionRefusal::OtherUser {
                owner: session.user_id,
            })
        } else if let Some(at) = session.revoked_at {
            Some(SessionRefusal::Revoked { at })
        } else if session.expires_at <= now {
            Some(SessionRefusal::Expired {
                at: session.expires_at,
            })
        } else if now - last_active > ms(self.settings.refresh_idle_timeout) {
            Some(SessionRefusal::Idle { since: last_active })
        } else {
            None
        }
    }

    /// Verifies an access token (signature, expiry, type) and binds it to a live session of its
    /// subject in a team the subject still belongs to. Anything else is 401.
    pub async fn authenticate(&self, access_token: &str) -> Result<Authenticated> {
        let claims = self.verify_access_token(access_token)?;
        let session = self
            .live_session(claims.sid, claims.sub, claims.iat * 1000)
            .await?;
        let access = match self.team_access(claims.sub, claims.team_id).await {
            Ok(access) => access,
            Err(Error::NotMember) => return Err(Error::NotAuthenticated),
            Err(e) => return Err(e),
        };
        Ok(Authenticated {
            claims,
            session,
            access,
        })
    }

    /// Signature, header, type and expiry; a token verified before is not verified again.
    fn verify_access_token(&self, token: &str) -> Result<AccessClaims> {
        if let Some(claims) = self.verified_tokens.get(token, self.now_ms() / 1000) {
            return Ok(AccessClaims::clone(&claims));
        }
        let claims = self
            .keys
            .verify_access(token, self.now_ms() / 1000)
            .map_err(|_| Error::NotAuthenticated)?;
        self.verified_tokens.put(token, Arc::new(claims.clone()));
        Ok(claims)
    }

    /// Verifies a refresh token's signature, expiry and type (not its state).
    pub fn decode_refresh(&self, refresh_token: &str) -> Result<RefreshClaims> {
        self.keys
            .verify_refresh(refresh_token, self.now_ms() / 1000)
            .map_err(|_| Error::SessionExpired)
    }

    /// Rotates the refresh token in one SQL statement. A repeat of the just-rotated token
    /// within the grace window gets the same successor tokens; any other stale token is theft
    /// and revokes the session. The new access token carries the user's current role.
    pub async fn refresh(
        &self,
        claims: &RefreshClaims,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        let now = self.now_ms();
        let next_jti = tokens::random_jti();
        let next_access_jti = tokens::random_jti();
        let rotated = self
            .repo
            .rotate_refresh(&RefreshRotation {
                session_id: claims.sid,
                current_jti: &claims.jti,
                next_jti: &next_jti,
                next_access_jti: &next_access_jti,
                now,
                active_since: now - ms(self.settings.refresh_idle_timeout),
            })
            .await?;
        let Some(session) = rotated else {
            return self.refresh_not_current(claims, client, now).await;
        };
        if session.user_id != claims.sub {
            return Err(Error::SessionExpired);
        }
        let access = self.current_access(&session).await?;
        self.mirror_refresh(
            &session.refresh_token_jti,
            session.id,
            session.user_id,
            session.team_id,
            session.refresh_generation,
            session.expires_at,
            now,
        )
        .await;
        if let Err(e) = self.store.delete(&keys::refresh(&claims.jti)).await {
            tracing::debug!(event = "refresh_mirror_failed", error = %e);
        }
        Ok(self.mint(&Grant {
            user_id: session.user_id,
            sid: session.id,
            team_id: session.team_id,
            role: &access.role_name,
            refresh_jti: &session.refresh_token_jti,
            access_jti: &next_access_jti,
            issued_at: now,
            session_expires_at: session.expires_at,
        }))
    }

    /// The user's role in the session's team now; a session whose membership is gone is over.
    async fn current_access(&self, session: &SessionRecord) -> Result<Arc<TeamAccess>> {
        match self.team_access(session.user_id, session.team_id).await {
            Ok(access) => Ok(access),
            Err(Error::NotMember) => {
                self.revoke_session(session.id, "membership_ended", &[])
                    .await?;
                Err(Error::SessionExpired)
            }
            Err(e) => Err(e),
        }
    }

    /// The presented refresh token is not the session's current one (or the session is over).
    async fn refresh_not_current(
        &self,
        claims: &RefreshClaims,
        client: &ClientInfo,
        now: Millis,
    ) -> Result<IssuedTokens> {
        let session = self
            .repo
            .session(claims.sid)
            .await?
            .filter(|s| s.user_id == claims.sub)
            .ok_or(Error::SessionExpired)?;
        let idle_since = now - ms(self.settings.refresh_idle_timeout);
        if session.revoked_at.is_some()
            || session.expires_at <= now
            || session.last_seen_at <= idle_since
        {
            return Err(Error::SessionExpired);
        }
        let grace = ms(self.settings.refresh_reuse_grace);
        if let (Some(previous), Some(rotated_at), Some(access_jti)) = (
            &session.previous_refresh_jti,
            session.rotated_at,
            &session.next_access_jti,
        ) && *previous == claims.jti
        {
            if now - rotated_at > grace {
                return self.refresh_token_reused(claims, client).await;
            }
            // A racing tab: the very same successor, not a new branch.
            let access = self.current_access(&session).await?;
            return Ok(self.mint(&Grant {
                user_id: session.user_id,
                sid: session.id,
                team_id: session.team_id,
                role: &access.role_name,
                refresh_jti: &session.refresh_token_jti,
                access_jti,
                issued_at: rotated_at,
                session_expires_at: session.expires_at,
            }));
        }
        if session.refresh_token_jti == claims.jti {
            // Current but not rotated: the session ended between the two reads.
            return Err(Error::SessionExpired);
        }
        self.refresh_token_reused(claims, client).await
    }

    async fn refresh_token_reused(
        &self,
        claims: &RefreshClaims,
        client: &ClientInfo,
    ) -> Result<IssuedTokens> {
        tracing::warn!(event = "refresh_token_reuse", session_id = claims.sid.get());
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
