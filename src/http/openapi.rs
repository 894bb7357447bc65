//! `GET /api/v1/openapi.json`: the OpenAPI 3 description of every route. A black-box test
//! calls each documented operation and fails if one is missing from the router.

use axum::Json;
use serde_json::{Map, Value, json};

/// How an operation authenticates.
#[derive(Clone, Copy)]
enum Auth {
    /// No credentials.
    Public,
    /// Access cookie or bearer token; safe method, so no CSRF.
    Session,
    /// Access cookie (with `X-CSRF-Token`) or bearer token.
    SessionCsrf,
    /// The refresh cookie with `X-CSRF-Token`.
    RefreshCsrf,
}

struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
    /// Required request-body fields (all strings unless listed in `numbers`), or `None`.
    body: Option<&'static [&'static str]>,
    numbers: &'static [&'static str],
    /// Success status and its description.
    ok: (u16, &'static str),
    /// Other documented statuses.
    errors: &'static [u16],
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: Auth,
) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        auth,
        body: None,
        numbers: &[],
        ok: (200, "OK"),
        errors: &[],
    }
}

impl Op {
    const fn body(mut self, fields: &'static [&'static str]) -> Self {
        self.body = Some(fields);
        self
    }
    const fn numbers(mut self, fields: &'static [&'static str]) -> Self {
        self.numbers = fields;
        self
    }
    const fn ok(mut self, status: u16, description: &'static str) -> Self {
        self.ok = (status, description);
        self
    }
    const fn errors(mut self, statuses: &'static [u16]) -> Self {
        self.errors = statuses;
        self
    }
}

use Auth::{Public, RefreshCsrf, Session, SessionCsrf};

const OPERATIONS: &[Op] = &[
    op(
        "post",
        "/api/v1/auth/register",
        "auth",
        "Create an account and its personal team",
        Public,
    )
    .body(&["email", "password", "name"])
    .ok(202, "Accepted (the same answer for a taken email)")
    .errors(&[400, 415, 422, 429]),
    op(
        "post",
        "/api/v1/auth/verify-email",
        "auth",
        "Verify an email address with the emailed token",
        Public,
    )
    .body(&["token"])
    .errors(&[400]),
    op(
        "post",
        "/api/v1/auth/verify-email/resend",
        "auth",
        "Send a new verification link",
        Public,
    )
    .body(&["email"])
    .ok(202, "Accepted")
    .errors(&[422, 429]),
    op(
        "post",
        "/api/v1/auth/login",
        "auth",
        "Check the password; get a pre-auth token",
        Public,
    )
    .body(&["email", "password"])
    .errors(&[401, 403, 422, 429, 503]),
    op(
        "post",
        "/api/v1/auth/otp/verify",
        "auth",
        "Verify the emailed 6-digit code",
        Public,
    )
    .body(&["preauth_token", "code"])
    .errors(&[400, 401, 422]),
    op(
        "post",
        "/api/v1/auth/session-exchange",
        "auth",
        "Trade a pre-auth token for session cookies",
        Public,
    )
    .body(&["preauth_token"])
    .errors(&[401, 403, 423, 429, 503]),
    op(
        "post",
        "/api/v1/auth/mfa/verify",
        "mfa",
        "Pass the login's second step with a second factor (method: totp or recovery_code)",
        Public,
    )
    .body(&["preauth_token", "method", "code"])
    .errors(&[400, 401, 422, 429, 503]),
    op(
        "get",
        "/api/v1/auth/mfa",
        "mfa",
        "The caller's second factors: totp, passkeys, recovery_codes_left",
        Session,
    )
    .errors(&[401]),
    op(
        "post",
        "/api/v1/auth/mfa/totp/enroll",
        "mfa",
        "Start a TOTP enrolment: secret and otpauth_uri (step-up)",
        SessionCsrf,
    )
    .errors(&[401, 403, 409, 503]),
    op(
        "post",
        "/api/v1/auth/mfa/totp/confirm",
        "mfa",
        "Confirm the enrolment with a first code; the recovery codes, shown once (step-up)",
        SessionCsrf,
    )
    .body(&["code"])
    .errors(&[401, 403, 409, 422, 429]),
    op(
        "delete",
        "/api/v1/auth/mfa/totp",
        "mfa",
        "Remove TOTP (step-up)",
        SessionCsrf,
    )
    .errors(&[401, 403, 409]),
    op(
        "post",
        "/api/v1/auth/mfa/recovery-codes",
        "mfa",
        "A new set of recovery codes, voiding the old (step-up)",
        SessionCsrf,
    )
    .errors(&[401, 403, 409]),
    op(
        "post",
        "/api/v1/auth/reauth",
        "mfa",
        "Renew the session's authentication for step-up: body {password} or {method, code}",
        SessionCsrf,
    )
    .errors(&[400, 401, 403, 422, 429]),
    op(
        "get",
        "/api/v1/auth/me",
        "auth",
        "The caller: user, team, role, permissions, session",
        Session,
    )
    .errors(&[401, 403]),
    op(
        "post",
        "/api/v1/auth/refresh",
        "auth",
        "Rotate the refresh token; new cookies",
        RefreshCsrf,
    )
    .errors(&[401, 403, 503]),
    op(
        "post",
        "/api/v1/auth/logout",
        "auth",
        "End this session",
        SessionCsrf,
    )
    .errors(&[401, 403]),
    op(
        "post",
        "/api/v1/auth/logout-all",
        "sessions",
        "End every session of the caller",
        SessionCsrf,
    )
    .errors(&[401, 403]),
    op(
        "get",
        "/api/v1/auth/sessions",
        "sessions",
        "The caller's active sessions",
        Session,
    )
    .errors(&[401]),
    op(
        "delete",
        "/api/v1/auth/sessions/{id}",
        "sessions",
        "End one of the caller's sessions",
        SessionCsrf,
    )
    .ok(204, "Ended")
    .errors(&[400, 401, 403, 404]),
    op(
        "get",
        "/api/v1/auth/events",
        "sessions",
        "Server-sent events for this session",
        Session,
    )
    .ok(200, "text/event-stream"),
    op(
        "post",
        "/api/v1/auth/password-reset/request",
        "passwords",
        "Email a password-reset link",
        Public,
    )
    .body(&["email"])
    .ok(202, "Accepted")
    .errors(&[422, 429]),
    op(
        "post",
        "/api/v1/auth/password-reset/confirm",
        "passwords",
        "Set a new password with the emailed token",
        Public,
    )
    .body(&["token", "password"])
    .errors(&[400, 422, 429]),
    op(
        "post",
        "/api/v1/auth/password/change",
        "passwords",
        "Change the password (current one required)",
        SessionCsrf,
    )
    .body(&["current_password", "new_password"])
    .errors(&[401, 403, 422, 429]),
    op(
        "post",
        "/api/v1/auth/concurrent-login/email-decision",
        "concurrent-login",
        "Decide with the emailed link's token",
        Public,
    )
    .body(&["token", "action"])
    .errors(&[400, 409, 422]),
    op(
        "get",
        "/api/v1/auth/concurrent-login/{token}",
        "concurrent-login",
        "Status of a pending login",
        Public,
    )
    .errors(&[404]),
    op(
        "post",
        "/api/v1/auth/concurrent-login/{token}/{decision}",
        "concurrent-login",
        "Approve or deny (decision: approve | deny)",
        SessionCsrf,
    )
    .errors(&[401, 403, 404, 409]),
    op(
        "post",
        "/api/v1/auth/switch-team",
        "teams",
        "Re-issue the access token for another team",
        SessionCsrf,
    )
    .body(&["team_id"])
    .numbers(&["team_id"])
    .errors(&[401, 403]),
    op(
        "get",
        "/api/v1/teams",
        "teams",
        "The caller's teams",
        Session,
    )
    .errors(&[401]),
    op(
        "post",
        "/api/v1/teams",
        "teams",
        "Create a team (the caller is Owner)",
        SessionCsrf,
    )
    .body(&["name"])
    .ok(201, "Created")
    .errors(&[401, 403, 422]),
    op(
        "get",
        "/api/v1/teams/{team_id}/members",
        "teams",
        "Members (team.members.read)",
        Session,
    )
    .errors(&[401, 403]),
    op(
        "patch",
        "/api/v1/teams/{team_id}/members/{user_id}",
        "teams",
        "Change a member's role (team.members.manage)",
        SessionCsrf,
    )
    .body(&["role_id"])
    .numbers(&["role_id"])
    .errors(&[401, 403, 404, 409]),
    op(
        "delete",
        "/api/v1/teams/{team_id}/members/{user_id}",
        "teams",
        "Remove a member (team.members.manage)",
        SessionCsrf,
    )
    .ok(204, "Removed")
    .errors(&[401, 403, 404, 409]),
    op(
        "get",
        "/api/v1/teams/{team_id}/roles",
        "roles",
        "Built-in and custom roles (team.members.read)",
        Session,
    )
    .errors(&[401, 403]),
    op(
        "post",
        "/api/v1/teams/{team_id}/roles",
        "roles",
        "Create a custom role (team.roles.manage)",
        SessionCsrf,
    )
    .body(&["name", "permissions"])
    .ok(201, "Created")
    .errors(&[401, 403, 409, 422]),
    op(
        "put",
        "/api/v1/teams/{team_id}/roles/{role_id}/permissions",
        "roles",
        "Set a custom role's permissions (team.roles.manage)",
        SessionCsrf,
    )
    .body(&["permissions"])
    .errors(&[401, 403, 404, 409, 422]),
    op(
        "get",
        "/api/v1/teams/{team_id}/invites",
        "invites",
        "The team's invites (team.members.invite)",
        Session,
    )
    .errors(&[401, 403]),
    op(
        "post",
        "/api/v1/teams/{team_id}/invites",
        "invites",
        "Invite by email with a role (team.members.invite)",
        SessionCsrf,
    )
    .body(&["email", "role_id"])
    .numbers(&["role_id"])
    .ok(201, "Created")
    .errors(&[401, 403, 404, 409, 422, 429]),
    op(
        "delete",
        "/api/v1/teams/{team_id}/invites/{invite_id}",
        "invites",
        "Revoke an invite (team.members.invite)",
        SessionCsrf,
    )
    .ok(204, "Revoked")
    .errors(&[401, 403, 404]),
    op(
        "post",
        "/api/v1/invites/accept",
        "invites",
        "Join a team with an invite (invited email only)",
        SessionCsrf,
    )
    .body(&["token"])
    .errors(&[400, 401, 403, 409]),
    op(
        "get",
        "/api/v1/permissions",
        "roles",
        "The permission catalogue",
        Public,
    ),
    op(
        "get",
        "/api/v1/teams/{team_id}/audit",
        "audit",
        "Audit log, newest first (audit.read); query: limit, before",
        Session,
    )
    .errors(&[400, 401, 403]),
    op(
        "get",
        "/api/v1/auth/audit",
        "audit",
        "The caller's own security events, newest first; query: limit, before",
        Session,
    )
    .errors(&[400, 401]),
    op(
        "get",
        "/api/v1/teams/{team_id}/virtuozzo",
        "virtuozzo",
        "Virtuozzo account status (environments.read)",
        Session,
    )
    .errors(&[401, 403]),
    op(
        "put",
        "/api/v1/teams/{team_id}/virtuozzo",
        "virtuozzo",
        "Set Virtuozzo credentials (Owner, virtuozzo.credentials.manage)",
        SessionCsrf,
    )
    .body(&["email", "password"])
    .errors(&[401, 403, 422, 503]),
    op(
        "post",
        "/api/v1/teams/{team_id}/virtuozzo/refresh",
        "virtuozzo",
        "Refresh the Virtuozzo session key (Owner, virtuozzo.session.refresh)",
        SessionCsrf,
    )
    .errors(&[401, 403, 503]),
    op(
        "get",
        "/api/v1/openapi.json",
        "ops",
        "This document",
        Public,
    ),
    op("get", "/healthz", "ops", "Liveness", Public),
    op(
        "get",
        "/readyz",
        "ops",
        "Readiness (503 names the dependency that is down)",
        Public,
    )
    .errors(&[503]),
    op("get", "/metrics", "ops", "Prometheus metrics", Public).ok(200, "text/plain"),
];

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Malformed input or invalid token",
        401 => "Not authenticated",
        403 => "Forbidden (CSRF token mismatch, not a member of team, missing permission, …)",
        404 => "Not found",
        409 => "Conflict",
        415 => "Expected a JSON body",
        422 => "Invalid field",
        423 => "Concurrent login approval pending: {\"status\": \"pending\", \"token\": …}",
        429 => "Too many attempts (Retry-After)",
        503 => "A dependency is unavailable (Retry-After)",
        _ => "",
    }
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    responses.insert(op.ok.0.to_string(), json!({ "description": op.ok.1 }));
    for status in op.errors {
        let body =
            json!({ "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } });
        responses.insert(
            status.to_string(),
            json!({ "description": reason(*status), "content": body }),
        );
    }
    let mut out = json!({ "tags": [op.tag], "summary": op.summary, "responses": responses });
    let security = match op.auth {
        Public => json!([]),
        Session => json!([{ "accessCookie": [] }, { "bearer": [] }]),
        SessionCsrf => json!([{ "accessCookie": [], "csrf": [] }, { "bearer": [] }]),
        RefreshCsrf => json!([{ "refreshCookie": [], "csrf": [] }]),
    };
    out["security"] = security;
    let params: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            let is_int = name.ends_with("id");
            json!({ "name": name, "in": "path", "required": true, "schema": { "type": if is_int { "integer" } else { "string" } } })
        })
        .collect();
    if !params.is_empty() {
        out["parameters"] = Value::Array(params);
    }
    if let Some(fields) = op.body {
        let properties: Map<String, Value> = fields
            .iter()
            .map(|f| {
                let schema = match *f {
                    "permissions" => json!({ "type": "array", "items": { "type": "string" } }),
                    f if op.numbers.contains(&f) => json!({ "type": "integer" }),
                    _ => json!({ "type": "string" }),
                };
                ((*f).to_owned(), schema)
            })
            .collect();
        let schema = json!({ "type": "object", "required": fields, "properties": properties });
        out["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    out
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in OPERATIONS {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method] = operation(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "mbpanel-auth",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Authentication and session service of mbpanel. Errors are {\"detail\", \"code\"}.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["detail", "code"],
                    "properties": { "detail": { "type": "string" }, "code": { "type": "string" } },
                },
            },
            "securitySchemes": {
                "accessCookie": { "type": "apiKey", "in": "cookie", "name": "mbpanel_access" },
                "refreshCookie": { "type": "apiKey", "in": "cookie", "name": "mbpanel_refresh" },
                "csrf": { "type": "apiKey", "in": "header", "name": "X-CSRF-Token" },
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
            },
        },
    })
}

pub async fn serve() -> Json<Value> {
    Json(document())
}
