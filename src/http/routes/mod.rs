//! Route tables.

mod account;
mod auth;
mod concurrent;
mod health;
mod mfa;
mod pages;
mod passkeys;
mod security;
mod teams;
mod virtuozzo;

use axum::Router;
use axum::routing::{delete, get, patch, post, put};

use super::AppState;

/// Everything under `/api/v1`.
pub fn api() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/verify-email", post(auth::verify_email))
        .route("/auth/verify-email/resend", post(auth::resend_verification))
        .route("/auth/login", post(auth::login))
        .route("/auth/otp/verify", post(auth::verify_otp))
        .route("/auth/session-exchange", post(auth::session_exchange))
        .route("/auth/me", get(auth::me))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/logout-all", post(account::logout_all))
        .route("/auth/sessions", get(account::list_sessions))
        .route("/auth/sessions/{id}", delete(account::end_session))
        .route("/auth/events", get(account::events))
        .route(
            "/auth/password-reset/request",
            post(account::request_password_reset),
        )
        .route(
            "/auth/password-reset/confirm",
            post(account::confirm_password_reset),
        )
        .route("/auth/password/change", post(account::change_password))
        .route(
            "/auth/concurrent-login/email-decision",
            post(concurrent::decide_by_link),
        )
        .route("/auth/concurrent-login/{token}", get(concurrent::status))
        .route(
            "/auth/concurrent-login/{token}/{decision}",
            post(concurrent::decide),
        )
        .route("/auth/new-device/not-me", post(security::not_me))
        .route("/auth/mfa/passkeys", get(passkeys::list))
        .route(
            "/auth/mfa/passkeys/register/begin",
            post(passkeys::register_begin),
        )
        .route(
            "/auth/mfa/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route(
            "/auth/mfa/passkeys/{id}",
            patch(passkeys::rename).delete(passkeys::delete),
        )
        .route("/auth/mfa/webauthn/begin", post(passkeys::login_begin))
        .route("/auth/mfa/webauthn/finish", post(passkeys::login_finish))
        .route(
            "/teams/{team_id}/security",
            get(security::get_policy).put(security::put_policy),
        )
        .route("/auth/mfa", get(mfa::overview))
        .route("/auth/mfa/totp/enroll", post(mfa::enroll_totp))
        .route("/auth/mfa/totp/confirm", post(mfa::confirm_totp))
        .route("/auth/mfa/totp", delete(mfa::disable_totp))
        .route(
            "/auth/mfa/recovery-codes",
            post(mfa::regenerate_recovery_codes),
        )
        .route("/auth/mfa/verify", post(mfa::verify))
        .route("/auth/reauth", post(mfa::reauth))
        .route("/auth/switch-team", post(teams::switch_team))
        .route("/teams", get(teams::list_teams).post(teams::create_team))
        .route("/teams/{team_id}/members", get(teams::list_members))
        .route(
            "/teams/{team_id}/members/{user_id}",
            patch(teams::change_member_role).delete(teams::remove_member),
        )
        .route(
            "/teams/{team_id}/roles",
            get(teams::list_roles).post(teams::create_role),
        )
        .route(
            "/teams/{team_id}/roles/{role_id}/permissions",
            put(teams::set_role_permissions),
        )
        .route(
            "/teams/{team_id}/invites",
            get(teams::list_invites).post(teams::create_invite),
        )
        .route(
            "/teams/{team_id}/invites/{invite_id}",
            delete(teams::revoke_invite),
        )
        .route("/teams/{team_id}/audit", get(teams::audit))
        .route("/auth/audit", get(teams::my_audit))
        .route("/invites/accept", post(teams::accept_invite))
        .route("/permissions", get(teams::permissions))
        .route(
            "/teams/{team_id}/virtuozzo",
            get(virtuozzo::status).put(virtuozzo::set_credentials),
        )
        .route(
            "/teams/{team_id}/virtuozzo/refresh",
            post(virtuozzo::refresh),
        )
}

pub fn health() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}

/// Pages that emailed links open.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/verify-email", get(pages::verify_email))
        .route("/reset-password", get(pages::reset_password))
        .route("/concurrent-login", get(pages::concurrent_login))
        .route("/invite", get(pages::invite))
        .route("/new-device", get(pages::new_device))
        .route("/", get(pages::ui_index))
        .route("/app.js", get(pages::ui_script))
        .route("/app.css", get(pages::ui_style))
}
