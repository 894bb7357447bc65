//! Teams and their members; switching the session's team.

use super::ports::{MemberChange, MemberRecord, Membership};
use super::rbac::TeamAccess;
use super::session::Grant;
use super::{Auth, ClientInfo, Error, Result, tokens};
use crate::domain::claims::AccessClaims;
use crate::domain::{RoleId, TeamId, UserId};

const MAX_TEAM_NAME_CHARS: usize = 100;

impl Auth {
    pub async fn my_teams(&self, claims: &AccessClaims) -> Result<Vec<Membership>> {
        Ok(self.repo.memberships(claims.sub).await?)
    }

    /// Creates a team whose Owner is the caller.
    pub async fn create_team(
        &self,
        claims: &AccessClaims,
        name: &str,
        client: &ClientInfo,
    ) -> Result<(TeamId, String)> {
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_TEAM_NAME_CHARS
            || name
                .chars()
                .any(|c| c.is_control() || crate::domain::text::is_format_char(c))
        {
            return Err(Error::validation(
                "name",
                format!("name must be 1 to {MAX_TEAM_NAME_CHARS} printable characters"),
            ));
        }
        let user_id = claims.sub;
        let team_id = self.repo.create_team(name, user_id, self.now_ms()).await?;
        self.audit_team(
            "team_created",
            user_id,
            Some(user_id),
            team_id,
            client,
            serde_json::json!({ "name": name }),
        )
        .await;
        Ok((team_id, name.to_owned()))
    }

    /// Re-issues the session's access token for another team of the caller.
    /// Returns the new access token and its lifetime in seconds.
    pub async fn switch_team(
        &self,
        claims: &AccessClaims,
        team_id: TeamId,
        client: &ClientInfo,
    ) -> Result<(String, u64)> {
        let user_id = claims.sub;
        let access = self.team_access(user_id, team_id).await?;
        self.check_team_mfa(user_id, team_id).await?;
        let session = self
            .repo
            .session(claims.sid)
            .await?
            .filter(|s| s.revoked_at.is_none())
            .ok_or(Error::NotAuthenticated)?;
        // The session moves: its next refresh mints for this team.
        self.repo.set_session_team(session.id, team_id).await?;
        let access_jti = tokens::random_jti();
        let token = self.mint_access(&Grant {
            user_id,
            sid: session.id,
            team_id,
            role: &access.role_name,
            refresh_jti: &session.refresh_token_jti,
            access_jti: &access_jti,
            issued_at: self.now_ms(),
            session_expires_at: session.expires_at,
        });
        self.audit_team(
            "team_switched",
            user_id,
            Some(user_id),
            team_id,
            client,
            serde_json::json!({ "session_id": session.id }),
        )
        .await;
        Ok(token)
    }

    pub async fn team_members(&self, access: &TeamAccess) -> Result<Vec<MemberRecord>> {
        Ok(self.repo.team_members(access.team_id).await?)
    }

    /// The editor must hold every permission of the member's current role and of the new
    /// one; the last Owner cannot be demoted (409).
    pub async fn change_member_role(
        &self,
        editor: &TeamAccess,
        member: UserId,
        role_id: RoleId,
        client: &ClientInfo,
    ) -> Result<()> {
        let target = self.member_of(editor.team_id, member).await?;
        let role = self.assignable_role(editor.team_id, role_id).await?;
        editor.ensure_can_grant(&self.repo.role_permissions(target.role_id).await?)?;
        editor.ensure_can_grant(&self.repo.role_permissions(role.id).await?)?;
        self.rbac_changed(editor.team_id).await?;
        match self
            .repo
            .set_member_role(editor.team_id, member, role.id)
            .await?
        {
            MemberChange::Done => {}
            MemberChange::NotAMember => return Err(Error::MemberNotFound),
            MemberChange::LastOwner => return Err(last_owner()),
        }
        self.rbac_changed(editor.team_id).await?;
        let details = serde_json::json!({ "from_role": target.role_name, "to_role": role.name });
        self.audit_team(
            "member_role_changed",
            editor.user_id,
            Some(member),
            editor.team_id,
            client,
            details,
        )
        .await;
        Ok(())
    }

    pub async fn remove_member(
        &self,
        editor: &TeamAccess,
        member: UserId,
        client: &ClientInfo,
    ) -> Result<()> {
        let target = self.member_of(editor.team_id, member).await?;
        editor.ensure_can_grant(&self.repo.role_permissions(target.role_id).await?)?;
        self.rbac_changed(editor.team_id).await?;
        match self.repo.remove_member(editor.team_id, member).await? {
            MemberChange::Done => {}
            MemberChange::NotAMember => return Err(Error::MemberNotFound),
            MemberChange::LastOwner => return Err(last_owner()),
        }
        self.rbac_changed(editor.team_id).await?;
        // A session in a team the user left is over (it could never be refreshed again).
        for sid in self.repo.team_sessions(member, editor.team_id).await? {
            self.revoke_session(sid, "removed_from_team", &[]).await?;
        }
        let details = serde_json::json!({ "role": target.role_name });
        self.audit_team(
            "member_removed",
            editor.user_id,
            Some(member),
            editor.team_id,
            client,
            details,
        )
        .await;
        Ok(())
    }

    /// A member of the team; a deleted user answers 404 "User not found".
    async fn member_of(&self, team_id: TeamId, user_id: UserId) -> Result<Membership> {
        let user = self.repo.user_by_id(user_id).await?;
        if user.as_ref().is_some_and(|u| u.deleted_at.is_some()) {
            return Err(Error::UserNotFound);
        }
        self.repo
            .membership(user_id, team_id)
            .await?
            .ok_or(Error::MemberNotFound)
    }

    /// A built-in role or one of this team's own (another team's role is "not found").
    pub(crate) async fn assignable_role(
        &self,
        team_id: TeamId,
        role_id: RoleId,
    ) -> Result<super::ports::RoleRecord> {
        self.repo
            .role(role_id)
            .await?
            .filter(|r| r.team_id.is_none_or(|t| t == team_id))
            .ok_or(Error::RoleNotFound)
    }
}

fn last_owner() -> Error {
    Error::Conflict {
        code: "last_owner",
        detail: "A team must keep at least one Owner",
    }
}
