//! Route tables. Each handler carries its `#[utoipa::path]` declaration and is routed with
//! `routes!` from it, so the router and the OpenAPI document come from one list: adding a
//! route is one `#[utoipa::path]` on the handler and one `.routes(routes!(…))` line here.

mod account;
mod auth;
mod bodies;
mod concurrent;
mod health;
mod mfa;
mod pages;
mod passkeys;
mod security;
mod teams;
mod virtuozzo;
mod web_support;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, metrics, openapi};

/// Every route, with its documentation.
pub fn all() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api())
        .merge(pages())
        .merge(health())
        .routes(routes!(metrics::render))
}

/// Everything under `/api/v1`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::resend_verification))
        .routes(routes!(auth::login))
        .routes(routes!(auth::verify_otp))
        .routes(routes!(web_support::resend_otp))
        .routes(routes!(auth::session_exchange))
        .routes(routes!(auth::me, web_support::update_profile))
        .routes(routes!(
            web_support::trusted_devices,
            web_support::forget_all_devices
        ))
        .routes(routes!(web_support::forget_device))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(account::logout_all))
        .routes(routes!(account::list_sessions))
        .routes(routes!(account::end_session))
        .routes(routes!(account::events))
        .routes(routes!(account::request_password_reset))
        .routes(routes!(account::confirm_password_reset))
        .routes(routes!(account::change_password))
        .routes(routes!(concurrent::decide_by_link))
        .routes(routes!(web_support::pending_approvals))
        .routes(routes!(web_support::cancel_approval))
        .routes(routes!(concurrent::status))
        .routes(routes!(concurrent::decide))
        .routes(routes!(mfa::overview))
        .routes(routes!(mfa::enroll_totp))
        .routes(routes!(mfa::confirm_totp))
        .routes(routes!(mfa::disable_totp))
        .routes(routes!(mfa::regenerate_recovery_codes))
        .routes(routes!(mfa::verify))
        .routes(routes!(mfa::reauth))
        .routes(routes!(passkeys::list))
        .routes(routes!(passkeys::register_begin))
        .routes(routes!(passkeys::register_finish))
        .routes(routes!(passkeys::rename, passkeys::delete))
        .routes(routes!(passkeys::login_begin))
        .routes(routes!(passkeys::login_finish))
        .routes(routes!(security::not_me))
        .routes(routes!(security::get_policy, security::put_policy))
        .routes(routes!(teams::switch_team))
        .routes(routes!(teams::list_teams, teams::create_team))
        .routes(routes!(teams::list_members))
        .routes(routes!(teams::change_member_role, teams::remove_member))
        .routes(routes!(teams::list_roles, teams::create_role))
        .routes(routes!(teams::set_role_permissions))
        .routes(routes!(teams::list_invites, teams::create_invite))
        .routes(routes!(teams::revoke_invite))
        .routes(routes!(teams::audit))
        .routes(routes!(teams::my_audit))
        .routes(routes!(teams::accept_invite))
        .routes(routes!(web_support::invite_preview))
        .routes(routes!(teams::permissions))
        .routes(routes!(virtuozzo::status, virtuozzo::set_credentials))
        .routes(routes!(virtuozzo::refresh))
        .routes(routes!(openapi::serve))
}

fn health() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
}

/// The web UI: every page (also the ones emailed links open) is the same app, addressed by
/// its path (history API routes), plus its static files.
fn pages() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(pages::page_home))
        .routes(routes!(pages::page_register))
        .routes(routes!(pages::page_forgot_password))
        .routes(routes!(pages::page_reset_password))
        .routes(routes!(pages::page_verify_email))
        .routes(routes!(pages::page_concurrent_login))
        .routes(routes!(pages::page_invite))
        .routes(routes!(pages::page_new_device))
        .routes(routes!(pages::page_account))
        .routes(routes!(pages::page_security))
        .routes(routes!(pages::page_teams))
        .routes(routes!(pages::page_team))
        .routes(routes!(pages::ui_script))
        .routes(routes!(pages::ui_style))
        .routes(routes!(pages::ui_module))
}
