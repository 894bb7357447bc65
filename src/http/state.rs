//! What every handler can reach.

use std::sync::Arc;

use axum_extra::extract::cookie::CookieJar;
use ipnet::IpNet;

use super::cookies::CookieFactory;
use crate::service::Auth;
use crate::service::login::OtpOutcome;
use crate::service::ports::{EphemeralStore, Repository};

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub cookies: CookieFactory,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub readiness: Readiness,
}

impl AppState {
    /// After a passed second step (emailed code, TOTP or recovery code, passkey): the
    /// trusted-device cookie, for the configured `TRUSTED_DEVICE_TTL_DAYS`.
    pub fn trust_device(&self, jar: CookieJar, passed: &OtpOutcome) -> CookieJar {
        let ttl = self.auth.settings().trusted_device_ttl.as_secs();
        self.cookies.device(jar, &passed.device_token, ttl)
    }
}

/// The dependencies `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub repo: Arc<dyn Repository>,
    pub store: Arc<dyn EphemeralStore>,
    /// How the ephemeral store is named in answers: "redis" or "memory".
    pub store_name: &'static str,
}
