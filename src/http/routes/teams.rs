//! Teams, members, roles, invites, the permission catalogue and the audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::bodies::{IdName, TeamSummary};
use crate::domain::time::rfc3339;
use crate::domain::{RoleId, TeamId, UserId};
use crate::http::AppState;
use crate::http::extract::{
    ApiJson, ApiPath, AuditRead, AuthSession, Client, MembersInvite, MembersManage, MembersRead,
    RolesManage, StepUp, TeamGuard,
};
use crate::http::openapi::{errors, tags};
use crate::service::{Error, Result};

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamList<'a> {
    teams: Vec<TeamSummary<'a>>,
}

/// The caller's teams.
#[utoipa::path(
    get,
    path = "/teams",
    tag = tags::TEAMS,
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The caller's teams and roles", body = TeamList),
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn list_teams(State(s): State<AppState>, session: AuthSession) -> Result<Response> {
    let teams = s.auth.my_teams(&session.claims).await?;
    let teams = teams.iter().map(TeamSummary::from).collect();
    Ok(Json(TeamList { teams }).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct NewTeam {
    /// Trimmed; no control or invisible characters.
    #[schema(min_length = 1, max_length = 100)]
    name: String,
}

/// Create a team; the caller is its Owner.
#[utoipa::path(
    post,
    path = "/teams",
    tag = tags::TEAMS,
    request_body = NewTeam,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = TeamSummary),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn create_team(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<NewTeam>,
) -> Result<impl IntoResponse> {
    let (id, name) = s
        .auth
        .create_team(&session.claims, &b.name, &client)
        .await?;
    let body = TeamSummary {
        id,
        name: &name,
        role: "Owner",
    };
    Ok((StatusCode::CREATED, Json(body).into_response()))
}

#[derive(Deserialize, ToSchema)]
pub struct SwitchTeam {
    #[schema(value_type = i64, minimum = 1)]
    team_id: TeamId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Switched {
    #[schema(value_type = i64)]
    team_id: TeamId,
    /// Seconds.
    access_expires_in: u64,
}

/// Re-issue the access token for another team of the caller (the refresh stays in the
/// session's team).
#[utoipa::path(
    post,
    path = "/auth/switch-team",
    tag = tags::TEAMS,
    request_body = SwitchTeam,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A new access cookie for that team", body = Switched,
            headers(("Set-Cookie" = String, description = "`mbpanel_access`"))),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn switch_team(
    State(s): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    session: AuthSession,
    ApiJson(b): ApiJson<SwitchTeam>,
) -> Result<impl IntoResponse> {
    let (token, expires_in) = s
        .auth
        .switch_team(&session.claims, b.team_id, &client)
        .await?;
    Ok((
        s.cookies.access(jar, &token, expires_in),
        Json(Switched {
            team_id: b.team_id,
            access_expires_in: expires_in,
        }),
    ))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberList<'a> {
    members: Vec<Member<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Member<'a> {
    #[schema(value_type = i64)]
    user_id: UserId,
    #[schema(format = Email)]
    email: &'a str,
    name: &'a str,
    role: IdName<'a>,
}

/// The team's members (`team.members.read`).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/members",
    tag = tags::TEAMS,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Members and their roles", body = MemberList),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn list_members(
    State(s): State<AppState>,
    guard: TeamGuard<MembersRead>,
) -> Result<Response> {
    let members = s.auth.team_members(&guard.access).await?;
    let members = members
        .iter()
        .map(|m| Member {
            user_id: m.user_id,
            email: &m.email,
            name: &m.name,
            role: IdName {
                id: m.role_id.get(),
                name: &m.role_name,
            },
        })
        .collect();
    Ok(Json(MemberList { members }).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct RoleChange {
    #[schema(value_type = i64, minimum = 1)]
    role_id: RoleId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChanged {
    #[schema(value_type = i64)]
    user_id: UserId,
    #[schema(value_type = i64)]
    role_id: RoleId,
}

/// Change a member's role (`team.members.manage`).
///
/// 404 `member_not_found` / `user_not_found` / `role_not_found`; 409 `last_owner`;
/// 403 `privilege_escalation`.
#[utoipa::path(
    patch,
    path = "/teams/{team_id}/members/{user_id}",
    tag = tags::TEAMS,
    params(("team_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)),
    request_body = RoleChange,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = RoleChanged),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn change_member_role(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<MembersManage>>,
    ApiPath((_, user_id)): ApiPath<(TeamId, UserId)>,
    ApiJson(b): ApiJson<RoleChange>,
) -> Result<Json<RoleChanged>> {
    s.auth
        .change_member_role(&guard.access, user_id, b.role_id, &client)
        .await?;
    Ok(Json(RoleChanged {
        user_id,
        role_id: b.role_id,
    }))
}

/// Remove a member (`team.members.manage`); 409 `last_owner`.
#[utoipa::path(
    delete,
    path = "/teams/{team_id}/members/{user_id}",
    tag = tags::TEAMS,
    params(("team_id" = i64, Path, minimum = 1), ("user_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Removed"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn remove_member(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<MembersManage>>,
    ApiPath((_, user_id)): ApiPath<(TeamId, UserId)>,
) -> Result<StatusCode> {
    s.auth
        .remove_member(&guard.access, user_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleList<'a> {
    roles: Vec<RoleInfo<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleInfo<'a> {
    #[schema(value_type = i64)]
    id: RoleId,
    name: &'a str,
    /// Permission slugs.
    #[schema(value_type = Vec<String>)]
    permissions: &'a [String],
    /// `Owner`, `Admin`, `Member` and `Viewer` are built in (the same in every team, not
    /// editable).
    builtin: bool,
}

/// Built-in and custom roles (`team.members.read`).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/roles",
    tag = tags::ROLES,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Roles and their permissions", body = RoleList),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn list_roles(
    State(s): State<AppState>,
    guard: TeamGuard<MembersRead>,
) -> Result<Response> {
    let roles = s.auth.team_roles(&guard.access).await?;
    let roles = roles
        .iter()
        .map(|(r, perms)| RoleInfo {
            id: r.id,
            name: &r.name,
            permissions: perms,
            builtin: r.builtin,
        })
        .collect();
    Ok(Json(RoleList { roles }).into_response())
}

#[derive(Deserialize, ToSchema)]
pub struct NewRole {
    /// NFKC-normalised; refused when it has control or invisible characters or reads as a
    /// built-in role.
    #[schema(min_length = 1, max_length = 50)]
    name: String,
    /// Slugs from `GET /permissions`; the editor must hold each.
    permissions: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleCreated<'a> {
    #[schema(value_type = i64)]
    id: RoleId,
    name: &'a str,
}

/// Create a custom role (`team.roles.manage`).
///
/// 409 `role_name_taken`; 422 for an unknown permission or a name that could pass for a
/// built-in role; 403 `privilege_escalation`.
#[utoipa::path(
    post,
    path = "/teams/{team_id}/roles",
    tag = tags::ROLES,
    params(("team_id" = i64, Path, minimum = 1)),
    request_body = NewRole,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = RoleCreated),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn create_role(
    State(s): State<AppState>,
    Client(client): Client,
    guard: TeamGuard<RolesManage>,
    ApiJson(b): ApiJson<NewRole>,
) -> Result<impl IntoResponse> {
    let id = s
        .auth
        .create_role(&guard.access, &b.name, &b.permissions, &client)
        .await?;
    let body = RoleCreated {
        id,
        name: b.name.trim(),
    };
    Ok((StatusCode::CREATED, Json(body).into_response()))
}

#[derive(Deserialize, ToSchema)]
pub struct RolePermissions {
    /// Slugs from `GET /permissions`; the editor must hold each.
    permissions: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolePermissionsSet {
    #[schema(value_type = i64)]
    id: RoleId,
    permissions: Vec<String>,
}

/// Set a custom role's permissions (`team.roles.manage`); 409 `builtin_role_immutable`.
#[utoipa::path(
    put,
    path = "/teams/{team_id}/roles/{role_id}/permissions",
    tag = tags::ROLES,
    params(("team_id" = i64, Path, minimum = 1), ("role_id" = i64, Path, minimum = 1)),
    request_body = RolePermissions,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Set", body = RolePermissionsSet),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn set_role_permissions(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<RolesManage>>,
    ApiPath((_, role_id)): ApiPath<(TeamId, RoleId)>,
    ApiJson(b): ApiJson<RolePermissions>,
) -> Result<Json<RolePermissionsSet>> {
    s.auth
        .set_role_permissions(&guard.access, role_id, &b.permissions, &client)
        .await?;
    Ok(Json(RolePermissionsSet {
        id: role_id,
        permissions: b.permissions,
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct NewInvite {
    #[schema(format = Email, max_length = 254)]
    email: String,
    #[schema(value_type = i64, minimum = 1)]
    role_id: RoleId,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Created {
    id: i64,
}

/// Invite by email with a role (`team.members.invite`); the invitee gets a
/// `/invite?token=…` link (7 days).
///
/// 409 `already_member`; 429 past the invite rate limits.
#[utoipa::path(
    post,
    path = "/teams/{team_id}/invites",
    tag = tags::INVITES,
    params(("team_id" = i64, Path, minimum = 1)),
    request_body = NewInvite,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Created),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Conflict,
        errors::TooManyRequests,
        errors::Unavailable,
    )
)]
pub async fn create_invite(
    State(s): State<AppState>,
    Client(client): Client,
    guard: TeamGuard<MembersInvite>,
    ApiJson(b): ApiJson<NewInvite>,
) -> Result<impl IntoResponse> {
    let id = s
        .auth
        .create_invite(&guard.access, &b.email, b.role_id, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteList<'a> {
    invites: Vec<InviteInfo<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    Pending,
    Accepted,
    Revoked,
    Expired,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInfo<'a> {
    id: i64,
    #[schema(format = Email)]
    email: &'a str,
    #[schema(value_type = i64)]
    role_id: RoleId,
    status: InviteStatus,
    #[schema(value_type = i64)]
    invited_by_user_id: UserId,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// The team's invites and their status (`team.members.invite`).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/invites",
    tag = tags::INVITES,
    params(("team_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Invites", body = InviteList),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn list_invites(
    State(s): State<AppState>,
    guard: TeamGuard<MembersInvite>,
) -> Result<Response> {
    let invites = s.auth.team_invites(&guard.access).await?;
    let invites = invites
        .iter()
        .map(|i| {
            let status = match (i.accepted_at, i.revoked_at) {
                (Some(_), _) => InviteStatus::Accepted,
                (None, Some(_)) => InviteStatus::Revoked,
                _ if i.expires_at <= s.auth.now_ms() => InviteStatus::Expired,
                _ => InviteStatus::Pending,
            };
            InviteInfo {
                id: i.id,
                email: &i.email,
                role_id: i.role_id,
                status,
                invited_by_user_id: i.invited_by_user_id,
                created_at: rfc3339(i.created_at),
                expires_at: rfc3339(i.expires_at),
            }
        })
        .collect();
    Ok(Json(InviteList { invites }).into_response())
}

/// Revoke an invite (`team.members.invite`).
#[utoipa::path(
    delete,
    path = "/teams/{team_id}/invites/{invite_id}",
    tag = tags::INVITES,
    params(("team_id" = i64, Path, minimum = 1), ("invite_id" = i64, Path, minimum = 1)),
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::NotFound,
        errors::Unavailable,
    )
)]
pub async fn revoke_invite(
    State(s): State<AppState>,
    Client(client): Client,
    guard: TeamGuard<MembersInvite>,
    ApiPath((_, invite_id)): ApiPath<(TeamId, i64)>,
) -> Result<StatusCode> {
    s.auth
        .revoke_invite(&guard.access, invite_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct AcceptInvite {
    /// The emailed link's token.
    token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Joined {
    #[schema(value_type = i64)]
    team_id: TeamId,
    #[schema(value_type = i64)]
    role_id: RoleId,
}

/// Join a team with an invite (signed in as the invited email).
///
/// 403 `invite_email_mismatch`; 400 "Token expired or invalid" (used, revoked, expired, or
/// its inviter may no longer invite with that role); 409 `already_member`.
#[utoipa::path(
    post,
    path = "/invites/accept",
    tag = tags::INVITES,
    request_body = AcceptInvite,
    security(("accessCookie" = [], "csrf" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Joined", body = Joined),
        errors::JsonBody,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Conflict,
        errors::Unavailable,
    )
)]
pub async fn accept_invite(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<AcceptInvite>,
) -> Result<Json<Joined>> {
    let (team_id, role_id) = s
        .auth
        .accept_invite(&session.claims, &b.token, &client)
        .await?;
    Ok(Json(Joined { team_id, role_id }))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionList<'a> {
    permissions: Vec<PermissionInfo<'a>>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionInfo<'a> {
    #[schema(example = "team.members.read")]
    slug: &'a str,
    description: &'a str,
}

/// The permission catalogue.
#[utoipa::path(
    get,
    path = "/permissions",
    tag = tags::ROLES,
    responses(
        (status = 200, description = "Every permission", body = PermissionList),
        errors::Unavailable,
    )
)]
pub async fn permissions(State(s): State<AppState>) -> Result<Response> {
    let catalogue = s.auth.permission_catalogue().await?;
    let permissions = catalogue
        .iter()
        .map(|(slug, description)| PermissionInfo { slug, description })
        .collect();
    Ok(Json(PermissionList { permissions }).into_response())
}

/// A page of the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPage {
    /// Entries older than this entry id (the previous page's `next_before`).
    #[serde(default)]
    before: Option<i64>,
    /// Entries per page: default 50, clamped to 1..200.
    #[serde(default)]
    limit: Option<i64>,
}

/// The team's audit log, newest first (`audit.read`).
#[utoipa::path(
    get,
    path = "/teams/{team_id}/audit",
    tag = tags::AUDIT,
    params(("team_id" = i64, Path, minimum = 1), AuditPage),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = AuditEntries),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Forbidden,
        errors::Unavailable,
    )
)]
pub async fn audit(
    State(s): State<AppState>,
    guard: TeamGuard<AuditRead>,
    page: Result<Query<AuditPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditEntries>> {
    let Query(page) = page.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    let entries = s.auth.team_audit(&guard.access, page.before, limit).await?;
    Ok(Json(audit_page(&entries, limit)))
}

/// The caller's own security events, newest first (the team audit's shape;
/// `ip_address` and `user_agent` only on events the caller did).
#[utoipa::path(
    get,
    path = "/auth/audit",
    tag = tags::AUDIT,
    params(AuditPage),
    security(("accessCookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = AuditEntries),
        errors::BadRequest,
        errors::Unauthorized,
        errors::Unavailable,
    )
)]
pub async fn my_audit(
    State(s): State<AppState>,
    session: AuthSession,
    page: Result<Query<AuditPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditEntries>> {
    let Query(page) = page.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    let entries = s.auth.my_audit(&session.claims, page.before, limit).await?;
    Ok(Json(audit_page(&entries, limit)))
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntries {
    entries: Vec<AuditEntry>,
    /// The `before` of the next page; null on the last page.
    #[schema(required = true)]
    next_before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    id: i64,
    #[schema(format = DateTime)]
    at: String,
    #[schema(example = "login_succeeded")]
    event: String,
    /// Who did it (null for the system).
    #[schema(required = true)]
    actor: Option<Actor>,
    #[schema(value_type = Option<i64>, required = true)]
    user_id: Option<UserId>,
    #[schema(value_type = Option<i64>, required = true)]
    team_id: Option<TeamId>,
    #[schema(required = true)]
    ip_address: Option<String>,
    #[schema(required = true)]
    user_agent: Option<String>,
    /// Event-specific facts.
    details: Value,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[schema(value_type = i64)]
    id: UserId,
    #[schema(required = true)]
    email: Option<String>,
}

fn audit_page(entries: &[crate::service::ports::AuditRecord], limit: i64) -> AuditEntries {
    let next_before = (entries.len() as i64 >= limit.clamp(1, 200))
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let entries = entries
        .iter()
        .map(|e| AuditEntry {
            id: e.id,
            at: rfc3339(e.at),
            event: e.event.clone(),
            actor: e.actor_user_id.map(|id| Actor {
                id,
                email: e.actor_email.clone(),
            }),
            user_id: e.user_id,
            team_id: e.team_id,
            ip_address: e.ip_address.clone(),
            user_agent: e.user_agent.clone(),
            details: serde_json::from_str::<Value>(&e.details).unwrap_or(Value::Null),
        })
        .collect();
    AuditEntries {
        entries,
        next_before,
    }
}
