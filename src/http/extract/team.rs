//! Team-scoped authorisation as an extractor: `TeamGuard<MembersInvite>` in a handler's
//! signature means "authenticated, a member of the team in the path (403 "Not a member of
//! team"), holding `team.members.invite` (403 "Missing permission: team.members.invite")".

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::AuthSession;
use crate::domain::TeamId;
use crate::domain::permissions as slug;
use crate::http::AppState;
use crate::service::Error;
use crate::service::rbac::TeamAccess;

/// What a route requires beyond membership.
pub trait Requirement {
    const PERMISSION: Option<&'static str>;
}

/// Membership alone.
pub struct AnyMember;
impl Requirement for AnyMember {
    const PERMISSION: Option<&'static str> = None;
}

macro_rules! permissions {
    ($($marker:ident => $slug:expr),* $(,)?) => {
        $(
            pub struct $marker;
            impl Requirement for $marker {
                const PERMISSION: Option<&'static str> = Some($slug);
            }
        )*
    };
}

permissions!(
    MembersRead => slug::TEAM_MEMBERS_READ,
    MembersInvite => slug::TEAM_MEMBERS_INVITE,
    MembersManage => slug::TEAM_MEMBERS_MANAGE,
    RolesManage => slug::TEAM_ROLES_MANAGE,
    AuditRead => slug::AUDIT_READ,
    EnvironmentsRead => slug::ENVIRONMENTS_READ,
    VirtuozzoCredentialsManage => slug::VIRTUOZZO_CREDENTIALS_MANAGE,
    VirtuozzoSessionRefresh => slug::VIRTUOZZO_SESSION_REFRESH,
);

pub struct TeamGuard<R: Requirement = AnyMember> {
    pub session: AuthSession,
    pub access: std::sync::Arc<TeamAccess>,
    _requirement: PhantomData<R>,
}

impl<R: Requirement> FromRequestParts<AppState> for TeamGuard<R> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let session = AuthSession::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::BadRequest(format!("Invalid path parameter: {}", e.body_text())))?;
        let team_id = params
            .get("team_id")
            .and_then(|t| t.parse::<TeamId>().ok())
            .ok_or_else(|| {
                Error::BadRequest("Invalid path parameter: team id must be an integer".into())
            })?;
        let access = state.auth.team_access(session.claims.sub, team_id).await?;
        if let Some(permission) = R::PERMISSION
            && let Err(refused) = access.require(permission)
        {
            let super::Client(client) = super::Client::from_request_parts(parts, state).await?;
            state
                .auth
                .permission_refused(&access, permission, &client)
                .await;
            return Err(refused);
        }
        Ok(TeamGuard {
            session,
            access,
            _requirement: PhantomData,
        })
    }
}
