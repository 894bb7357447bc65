//! The use cases of the auth service. `Auth` holds the ports and settings; each file adds the
//! methods of one use case (`impl Auth` blocks).

pub mod audit;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod concurrent;
pub mod credentials;
pub mod diagnostics;
pub mod emails;
pub mod error;
pub mod events;
pub mod fair_share;
pub mod invites;
pub mod keys;
pub mod login;
pub mod mfa;
pub mod mfa_login;
pub mod my_sessions;
pub mod new_device;
pub mod operator;
pub mod otp_resend;
pub mod passkeys;
pub mod password_strength;
pub mod passwords;
pub mod ports;
pub mod profile;
pub mod rate_limit;
pub mod rbac;
pub mod recovery_codes;
pub mod registration;
pub mod retention;
pub mod revocation;
pub mod roles;
pub mod second_factor;
pub mod session;
pub mod step_up;
pub mod team_policy;
pub mod teams;
pub mod tokens;
pub mod totp;
pub mod trusted_devices;
pub mod users;
pub mod vault;
pub mod virtuozzo;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use url::Url;

pub use error::{Error, Result};
use passwords::PasswordHasher;
use ports::{EphemeralStore, Repository};
use tokens::TokenKeys;

/// Settings of the use cases: read, checked and built by `Config::from_env` (as `Config::auth`),
/// handed over as they are. Only lifetimes, limits and the public URL: no connection string or
/// secret.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub base_url: Url,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_idle_timeout: Duration,
    pub refresh_reuse_grace: Duration,
    pub preauth_token_ttl: Duration,
    pub concurrent_login_ttl: Duration,
    pub password_reset_ttl: Duration,
    pub csrf_token_ttl: Duration,
    pub email_verification_ttl: Duration,
    pub trusted_device_ttl: Duration,
    pub new_device_alerts: bool,
    pub login_rate_limit_attempts: u32,
    pub login_rate_limit_ip_attempts: u32,
    pub login_rate_limit_window: Duration,
    pub login_rate_limit_ip_verifications: u32,
    pub email_request_rate_limit_ip: u32,
    pub invite_rate_limit_per_hour: u32,
    pub invite_rate_limit_per_address: u32,
    pub registered_notice_limit_per_day: u32,
    pub password_hash_client_concurrency: usize,
    pub otp_max_attempts: u32,
    pub vz_session_ttl: Duration,
    pub vz_timeout: Duration,
    pub step_up_max_age: Duration,
}

/// Who is asking: recorded in sessions and the audit log, used by the per-IP rate limit.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

pub struct Auth {
    pub(crate) repo: Arc<dyn Repository>,
    pub(crate) store: Arc<dyn EphemeralStore>,
    pub(crate) keys: TokenKeys,
    pub(crate) hasher: PasswordHasher,
    /// Each client's share of the hasher (see `fair_share`).
    pub(crate) hash_shares: fair_share::HashShares,
    pub(crate) settings: AuthSettings,
    /// Wakes the email outbox worker when a message is queued.
    pub(crate) outbox_wakeup: Arc<Notify>,
    /// The coherent per-instance cache of sessions, users and access (the hot path's facts).
    pub(crate) cache: cache::FactCache,
    /// Access tokens already verified (their signature need not be checked again).
    pub(crate) verified_tokens: cache::VerifiedTokens,
    /// This instance's one pub/sub subscription: live events and cache invalidation.
    pub(crate) bus: bus::Bus,
    pub(crate) vault: vault::CredentialVault,
    /// Seals the users' TOTP secrets (`MFA_SECRET_KEY`).
    pub(crate) mfa_vault: vault::CredentialVault,
    pub(crate) virtuozzo: Arc<dyn ports::VirtuozzoSignIn>,
    /// `/auth/me`'s `mfa_setup_required_by`, briefly reused (see `team_policy`).
    pub(crate) mfa_notices: team_policy::SetupNotices,
    /// The WebAuthn relying party (`BASE_URL`).
    pub(crate) passkeys: passkeys::RelyingParty,
    /// The optional breach-range API (`PASSWORD_BREACH_API_URL`).
    pub(crate) breaches: Option<Arc<dyn ports::BreachedPasswordRange>>,
    /// Every "now" of the use cases.
    pub(crate) clock: Arc<dyn clock::Clock>,
}

/// The outside world the service talks to, chosen once by the wiring.
pub struct Adapters {
    pub repo: Arc<dyn Repository>,
    pub store: Arc<dyn EphemeralStore>,
    pub virtuozzo: Arc<dyn ports::VirtuozzoSignIn>,
    /// `None` unless `PASSWORD_BREACH_API_URL` is set.
    pub breaches: Option<Arc<dyn ports::BreachedPasswordRange>>,
    /// Seals the users' TOTP secrets.
    pub mfa_vault: vault::CredentialVault,
    /// Wakes the email outbox worker when a message is queued.
    pub outbox_wakeup: Arc<Notify>,
    /// The time (`clock::SystemClock` outside tests).
    pub clock: Arc<dyn clock::Clock>,
}

impl Auth {
    pub fn new(
        adapters: Adapters,
        keys: TokenKeys,
        vault: vault::CredentialVault,
        hasher: PasswordHasher,
        settings: AuthSettings,
    ) -> Self {
        let Adapters {
            repo,
            store,
            virtuozzo,
            breaches,
            mfa_vault,
            outbox_wakeup,
            clock,
        } = adapters;
        let passkeys = passkeys::RelyingParty::from_base_url(&settings.base_url);
        Self {
            repo,
            store,
            keys,
            hasher,
            hash_shares: fair_share::HashShares::new(settings.password_hash_client_concurrency),
            settings,
            outbox_wakeup,
            cache: cache::FactCache::default(),
            verified_tokens: cache::VerifiedTokens::default(),
            bus: bus::Bus::default(),
            vault,
            virtuozzo,
            mfa_notices: team_policy::SetupNotices::default(),
            passkeys,
            breaches,
            mfa_vault,
            clock,
        }
    }

    /// Now, by the service's clock.
    pub fn now_ms(&self) -> crate::domain::time::Millis {
        self.clock.now_ms()
    }

    pub fn clock(&self) -> &Arc<dyn clock::Clock> {
        &self.clock
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    pub fn link(&self, path: &str, token: &str) -> String {
        let mut url = self.settings.base_url.clone();
        url.set_path(path);
        url.query_pairs_mut().clear().append_pair("token", token);
        url.to_string()
    }
}

#[cfg(test)]
mod tests {
    /// STYLE.md: `http`/`cli` → `service` → `domain`; `store` and `mail` implement the
    /// service's ports, and `config` builds the service's settings. So neither the use cases
    /// nor the domain name the outer layers (an import of `config` here made a cycle with
    /// `config` building `AuthSettings`).
    #[test]
    fn service_and_domain_do_not_depend_on_the_outer_layers() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let outer = ["config", "http", "cli", "store", "mail", "app"];
        let mut found = Vec::new();
        for dir in ["service", "domain"] {
            for entry in std::fs::read_dir(format!("{root}/{dir}")).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                for layer in outer {
                    for needle in [format!("crate::{layer}::"), format!("crate::{layer};")] {
                        if text.contains(&needle) {
                            found.push(format!("{} uses {needle}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }
}
