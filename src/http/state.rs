//! What every handler can reach.

use std::sync::Arc;

use ipnet::IpNet;

use super::cookies::CookieFactory;
use crate::service::Auth;
use crate::service::ports::{EphemeralStore, Repository};

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Auth>,
    pub cookies: CookieFactory,
    pub trusted_proxies: Arc<Vec<IpNet>>,
    pub readiness: Readiness,
}

/// The dependencies `/readyz` checks.
#[derive(Clone)]
pub struct Readiness {
    pub repo: Arc<dyn Repository>,
    pub store: Arc<dyn EphemeralStore>,
    /// How the ephemeral store is named in answers: "redis" or "memory".
    pub store_name: &'static str,
}
