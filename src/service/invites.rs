//! Team invites: emailed single-use links (stored hashed, 7 days), accepted only by a user
//! signed in with the invited address; the role comes from the invite row alone.

use super::ports::{InviteRecord, NewInvite};
use super::rbac::TeamAccess;
use std::time::Duration;

use super::{Auth, ClientInfo, Error, Result, emails, keys, tokens};
use crate::domain::claims::AccessClaims;
use crate::domain::email::Email;
use crate::domain::permissions::TEAM_MEMBERS_INVITE;
use crate::domain::{RoleId, TeamId, TokenHash};

const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

impl Auth {
    pub async fn create_invite(
        &self,
        inviter: &TeamAccess,
        email: &str,
        role_id: RoleId,
        client: &ClientInfo,
    ) -> Result<i64> {
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        let role = self.assignable_role(inviter.team_id, role_id).await?;
        // An invite cannot hand out more than the inviter holds.
        inviter.ensure_can_grant(&self.repo.role_permissions(role.id).await?)?;
        if let Some(user) = self.repo.user_by_email(email.as_str()).await?
            && self
                .repo
                .membership(user.id, inviter.team_id)
                .await?
                .is_some()
        {
            return Err(Error::Conflict {
                code: "already_member",
                detail: "This person is already a member of the team",
            });
        }
        self.limit_invites(inviter, email.as_str()).await?;
        let token = tokens::random_token();
        let now = self.now_ms();
        let id = self
            .repo
            .create_invite(&NewInvite {
                team_id: inviter.team_id,
                email: email.as_str(),
                role_id: role.id,
                token_hash: &TokenHash::of(&token),
                invited_by_user_id: inviter.user_id,
                created_at: now,
                expires_at: now + INVITE_TTL_MS,
            })
            .await?;
        let link = self.link("/invite", &token);
        self.queue_email(emails::team_invite(
            email.as_str(),
            &inviter.team_name,
            &role.name,
            &link,
        ))
        .await?;
        let details =
            serde_json::json!({ "invite_id": id, "email": email.as_str(), "role": role.name });
        self.audit_team(
            "invite_created",
            inviter.user_id,
            None,
            inviter.team_id,
            client,
            details,
        )
        .await;
        Ok(id)
    }

    pub async fn team_invites(&self, access: &TeamAccess) -> Result<Vec<InviteRecord>> {
        Ok(self.repo.team_invites(access.team_id).await?)
    }

    pub async fn revoke_invite(
        &self,
        editor: &TeamAccess,
        invite_id: i64,
        client: &ClientInfo,
    ) -> Result<()> {
        if !self
            .repo
            .revoke_invite(editor.team_id, invite_id, self.now_ms())
            .await?
        {
            return Err(Error::InviteNotFound);
        }
        self.audit_team(
            "invite_revoked",
            editor.user_id,
            None,
            editor.team_id,
            client,
            serde_json::json!({ "invite_id": invite_id }),
        )
        .await;
        Ok(())
    }

    /// Joins the caller to the invite's team with the invite's role. Only the invited address,
    /// only once, only before it expires or is revoked.
    pub async fn accept_invite(
        &self,
        claims: &AccessClaims,
        token: &str,
        client: &ClientInfo,
    ) -> Result<(TeamId, RoleId)> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let invite = self
            .repo
            .invite_by_token_hash(&TokenHash::of(token))
            .await?
            .ok_or(Error::TokenInvalid)?;
        let user_id = claims.sub;
        let user = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        if user.email != invite.email {
            return Err(Error::InviteEmailMismatch);
        }
        // An invite is only as good as its inviter's rights now: one removed, or no longer
        // allowed to invite or to grant this role, has left nothing behind that still works.
        if !self.inviter_still_entitled(&invite).await? {
            return Err(Error::TokenInvalid);
        }
        if self
            .repo
            .membership(user_id, invite.team_id)
            .await?
            .is_some()
        {
            return Err(Error::Conflict {
                code: "already_member",
                detail: "You are already a member of the team",
            });
        }
        self.rbac_changed(invite.team_id).await?;
        let Some((team_id, role_id)) = self
            .repo
            .accept_invite(invite.id, user_id, self.now_ms())
            .await?
        else {
            // Another invite of this address was accepted at the same moment.
            if self
                .repo
                .membership(user_id, invite.team_id)
                .await?
                .is_some()
            {
                return Err(Error::Conflict {
                    code: "already_member",
                    detail: "You are already a member of the team",
                });
            }
            return Err(Error::TokenInvalid);
        };
        self.rbac_changed(team_id).await?;
        self.audit_team(
            "invite_accepted",
            user_id,
            Some(user_id),
            team_id,
            client,
            serde_json::json!({ "invite_id": invite.id }),
        )
        .await;
        Ok((team_id, role_id))
    }
}

/// What an invite's link may show before sign-in: the team, the role and who invited.
#[derive(Debug, Clone)]
pub struct InvitePreview {
    pub team_name: String,
    pub role_name: String,
    pub inviter_name: String,
    pub expires_at: crate::domain::time::Millis,
}

impl Auth {
    /// The page behind an invite link names the team, role and inviter; an unknown, used,
    /// revoked or expired invite (or one whose inviter lost the right) answers "Token expired
    /// or invalid" and reveals nothing.
    pub async fn invite_preview(&self, token: &str) -> Result<InvitePreview> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let invite = self
            .repo
            .invite_by_token_hash(&TokenHash::of(token))
            .await?
            .filter(|i| {
                i.accepted_at.is_none() && i.revoked_at.is_none() && i.expires_at > self.now_ms()
            })
            .ok_or(Error::TokenInvalid)?;
        if !self.inviter_still_entitled(&invite).await? {
            return Err(Error::TokenInvalid);
        }
        let team = self
            .repo
            .membership(invite.invited_by_user_id, invite.team_id)
            .await?
            .ok_or(Error::TokenInvalid)?;
        let role = self
            .repo
            .role(invite.role_id)
            .await?
            .ok_or(Error::TokenInvalid)?;
        let inviter = self
            .repo
            .user_by_id(invite.invited_by_user_id)
            .await?
            .ok_or(Error::TokenInvalid)?;
        Ok(InvitePreview {
            team_name: team.team_name,
            role_name: role.name,
            inviter_name: inviter.name,
            expires_at: invite.expires_at,
        })
    }

    /// Invites per team and per inviter per hour, and per invited address per day: a team
    /// cannot be used to mail arbitrary addresses in bulk, nor one address repeatedly.
    async fn limit_invites(&self, inviter: &TeamAccess, email: &str) -> Result<()> {
        const HOUR: Duration = Duration::from_secs(3600);
        const DAY: Duration = Duration::from_secs(86_400);
        let per_hour = i64::from(self.settings.invite_rate_limit_per_hour);
        let per_address = i64::from(self.settings.invite_rate_limit_per_address);
        let limits = [
            (keys::invites_team(inviter.team_id), per_hour, HOUR),
            (keys::invites_inviter(inviter.user_id), per_hour, HOUR),
            (
                keys::invites_address(&tokens::hash_token(email)),
                per_address,
                DAY,
            ),
        ];
        for (key, limit, window) in limits {
            let (count, left) = self.store.increment(&key, 1, window).await?;
            if count > limit {
                return Err(Error::RateLimited { retry_after: left });
            }
        }
        Ok(())
    }

    /// The inviter is still a member holding `team.members.invite` and every permission of the
    /// invite's role.
    async fn inviter_still_entitled(&self, invite: &InviteRecord) -> Result<bool> {
        let Some(membership) = self
            .repo
            .membership(invite.invited_by_user_id, invite.team_id)
            .await?
        else {
            return Ok(false);
        };
        let held = self.repo.role_permissions(membership.role_id).await?;
        if !held.iter().any(|p| p == TEAM_MEMBERS_INVITE) {
            return Ok(false);
        }
        let granted = self.repo.role_permissions(invite.role_id).await?;
        Ok(granted.iter().all(|p| held.contains(p)))
    }
}
