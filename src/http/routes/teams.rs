//! Teams, members, roles, invites, the permission catalogue and the audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::time::rfc3339;
use crate::domain::{RoleId, TeamId, UserId};
use crate::http::AppState;
use crate::http::extract::{
    ApiJson, ApiPath, AuditRead, AuthSession, Client, MembersInvite, MembersManage, MembersRead,
    RolesManage, StepUp, TeamGuard,
};
use crate::service::{Error, Result};

pub async fn list_teams(State(s): State<AppState>, session: AuthSession) -> Result<Json<Value>> {
    let teams = s.auth.my_teams(&session.claims).await?;
    let list: Vec<Value> = teams
        .iter()
        .map(|m| json!({ "id": m.team_id, "name": m.team_name, "role": m.role_name }))
        .collect();
    Ok(Json(json!({ "teams": list })))
}

#[derive(Deserialize)]
pub struct NewTeam {
    name: String,
}

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
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": name, "role": "Owner" })),
    ))
}

#[derive(Deserialize)]
pub struct SwitchTeam {
    team_id: TeamId,
}

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
        Json(json!({ "team_id": b.team_id, "access_expires_in": expires_in })),
    ))
}

pub async fn list_members(
    State(s): State<AppState>,
    guard: TeamGuard<MembersRead>,
) -> Result<Json<Value>> {
    let members = s.auth.team_members(&guard.access).await?;
    let list: Vec<Value> = members
        .iter()
        .map(|m| json!({ "user_id": m.user_id, "email": m.email, "name": m.name, "role": { "id": m.role_id, "name": m.role_name } }))
        .collect();
    Ok(Json(json!({ "members": list })))
}

#[derive(Deserialize)]
pub struct RoleChange {
    role_id: RoleId,
}

pub async fn change_member_role(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<MembersManage>>,
    ApiPath((_, user_id)): ApiPath<(TeamId, UserId)>,
    ApiJson(b): ApiJson<RoleChange>,
) -> Result<Json<Value>> {
    s.auth
        .change_member_role(&guard.access, user_id, b.role_id, &client)
        .await?;
    Ok(Json(json!({ "user_id": user_id, "role_id": b.role_id })))
}

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

pub async fn list_roles(
    State(s): State<AppState>,
    guard: TeamGuard<MembersRead>,
) -> Result<Json<Value>> {
    let roles = s.auth.team_roles(&guard.access).await?;
    let list: Vec<Value> = roles
        .iter()
        .map(|(r, perms)| json!({ "id": r.id, "name": r.name, "permissions": perms, "builtin": r.builtin }))
        .collect();
    Ok(Json(json!({ "roles": list })))
}

#[derive(Deserialize)]
pub struct NewRole {
    name: String,
    permissions: Vec<String>,
}

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
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "name": b.name.trim() })),
    ))
}

#[derive(Deserialize)]
pub struct RolePermissions {
    permissions: Vec<String>,
}

pub async fn set_role_permissions(
    State(s): State<AppState>,
    Client(client): Client,
    StepUp(guard): StepUp<TeamGuard<RolesManage>>,
    ApiPath((_, role_id)): ApiPath<(TeamId, RoleId)>,
    ApiJson(b): ApiJson<RolePermissions>,
) -> Result<Json<Value>> {
    s.auth
        .set_role_permissions(&guard.access, role_id, &b.permissions, &client)
        .await?;
    Ok(Json(json!({ "id": role_id, "permissions": b.permissions })))
}

#[derive(Deserialize)]
pub struct NewInvite {
    email: String,
    role_id: RoleId,
}

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
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

pub async fn list_invites(
    State(s): State<AppState>,
    guard: TeamGuard<MembersInvite>,
) -> Result<Json<Value>> {
    let invites = s.auth.team_invites(&guard.access).await?;
    let list: Vec<Value> = invites
        .iter()
        .map(|i| {
            let status = match (i.accepted_at, i.revoked_at) {
                (Some(_), _) => "accepted",
                (None, Some(_)) => "revoked",
                _ if i.expires_at <= crate::domain::time::now_ms() => "expired",
                _ => "pending",
            };
            json!({
                "id": i.id, "email": i.email, "role_id": i.role_id, "status": status,
                "invited_by_user_id": i.invited_by_user_id,
                "created_at": rfc3339(i.created_at), "expires_at": rfc3339(i.expires_at),
            })
        })
        .collect();
    Ok(Json(json!({ "invites": list })))
}

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

#[derive(Deserialize)]
pub struct AcceptInvite {
    token: String,
}

pub async fn accept_invite(
    State(s): State<AppState>,
    Client(client): Client,
    session: AuthSession,
    ApiJson(b): ApiJson<AcceptInvite>,
) -> Result<Json<Value>> {
    let (team_id, role_id) = s
        .auth
        .accept_invite(&session.claims, &b.token, &client)
        .await?;
    Ok(Json(json!({ "team_id": team_id, "role_id": role_id })))
}

pub async fn permissions(State(s): State<AppState>) -> Result<Json<Value>> {
    let catalogue = s.auth.permission_catalogue().await?;
    let list: Vec<Value> = catalogue
        .iter()
        .map(|(slug, description)| json!({ "slug": slug, "description": description }))
        .collect();
    Ok(Json(json!({ "permissions": list })))
}

#[derive(Deserialize)]
pub struct AuditPage {
    #[serde(default)]
    before: Option<i64>,
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn audit(
    State(s): State<AppState>,
    guard: TeamGuard<AuditRead>,
    page: Result<Query<AuditPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(page) = page.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    let entries = s.auth.team_audit(&guard.access, page.before, limit).await?;
    Ok(Json(audit_page(&entries, limit)))
}

/// `GET /auth/audit`: the caller's own events.
pub async fn my_audit(
    State(s): State<AppState>,
    session: AuthSession,
    page: Result<Query<AuditPage>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>> {
    let Query(page) = page.map_err(|e| Error::BadRequest(e.body_text()))?;
    let limit = page.limit.unwrap_or(50);
    let entries = s.auth.my_audit(&session.claims, page.before, limit).await?;
    Ok(Json(audit_page(&entries, limit)))
}

fn audit_page(entries: &[crate::service::ports::AuditRecord], limit: i64) -> Value {
    let next_before = (entries.len() as i64 >= limit.clamp(1, 200))
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339(e.at),
                "event": e.event,
                "actor": e.actor_user_id.map(|id| json!({ "id": id, "email": e.actor_email })),
                "user_id": e.user_id,
                "team_id": e.team_id,
                "ip_address": e.ip_address,
                "user_agent": e.user_agent,
                "details": serde_json::from_str::<Value>(&e.details).unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "entries": list, "next_before": next_before })
}
