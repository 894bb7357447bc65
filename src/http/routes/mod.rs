//! Route tables.

mod auth;
mod health;
mod pages;

use axum::Router;
use axum::routing::{get, post};

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
}

pub fn health() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
}

/// Pages that emailed links open.
pub fn pages() -> Router<AppState> {
    Router::new().route("/verify-email", get(pages::verify_email))
}
