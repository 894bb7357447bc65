//! Wiring: config → adapters → services → router. Tests start exactly what production starts,
//! on port 0.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{Config, EphemeralBackend};
use crate::http::cookies::CookieFactory;
use crate::http::state::Readiness;
use crate::http::{self, AppState};
use crate::mail;
use crate::service::clock::Clock;
use crate::service::passwords::PasswordHasher;
use crate::service::ports::{EphemeralStore, Repository};
use crate::service::tokens::TokenKeys;
use crate::service::vault::CredentialVault;
use crate::service::{Adapters, Auth};
use crate::shutdown::{CancelHandle, cancel_pair};
use crate::store::ephemeral::memory::MemoryStore;
use crate::store::ephemeral::redis::RedisStore;
use crate::store::sql::SqlStore;
use crate::virtuozzo::HttpVirtuozzo;

/// How long start-up waits for the instance's pub/sub subscription.
const BUS_START_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    address: SocketAddr,
    limits: http::server::ServerLimits,
    stop_background: CancelHandle,
    auth: Arc<Auth>,
    /// This instance's `instance:<id>` announcement, withdrawn at a clean shutdown.
    instance_id: String,
}

/// The ephemeral store chosen by the configuration, with the name `/readyz` gives it.
pub fn ephemeral_store(
    config: &Config,
    clock: &Arc<dyn Clock>,
) -> anyhow::Result<(Arc<dyn EphemeralStore>, &'static str)> {
    Ok(match &config.ephemeral {
        EphemeralBackend::Memory { max_keys } => {
            (MemoryStore::start(*max_keys, Arc::clone(clock)), "memory")
        }
        EphemeralBackend::Redis {
            shape,
            key_prefix,
            ca_cert,
        } => (
            Arc::new(
                RedisStore::connect_shape(
                    shape,
                    ca_cert.as_deref(),
                    key_prefix,
                    config.redis_timeout,
                )
                .context("Redis (REDIS_URL, REDIS_SENTINELS or REDIS_CLUSTER_NODES)")?
                .with_clock(Arc::clone(clock)),
            ),
            "redis",
        ),
    })
}

/// The connected adapters and the service built on them: what `serve` and the admin commands
/// share.
pub struct Services {
    pub auth: Arc<Auth>,
    pub repo: Arc<dyn Repository>,
    pub store: Arc<dyn EphemeralStore>,
    pub store_name: &'static str,
    pub outbox_wakeup: Arc<Notify>,
    pub hasher: PasswordHasher,
}

impl Services {
    /// Connects the stores chosen by the configuration and applies pending migrations.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        Self::connect_with(config, true, crate::service::clock::system()).await
    }

    /// Connects without touching the schema: for commands that only inspect or administer.
    pub async fn connect_without_migrating(config: &Config) -> anyhow::Result<Self> {
        Self::connect_with(config, false, crate::service::clock::system()).await
    }

    /// Connects on the given clock (tests pass a `ManualClock`) and migrates when `migrate`.
    pub async fn connect_with(
        config: &Config,
        migrate: bool,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let sql = SqlStore::connect(config)
            .await
            .context("cannot connect to the database (DATABASE_URL)")?;
        if migrate {
            let applied = sql.migrate().await.context("database migration failed")?;
            if applied > 0 {
                tracing::info!(event = "migrations_applied", count = applied);
            }
        }
        let repo: Arc<dyn Repository> = Arc::new(sql);
        let (store, store_name) = ephemeral_store(config, &clock)?;
        let outbox_wakeup = Arc::new(Notify::new());
        let hasher = PasswordHasher::new(config.password_hash_concurrency);
        let adapters = Adapters {
            repo: Arc::clone(&repo),
            store: Arc::clone(&store),
            virtuozzo: Arc::new(HttpVirtuozzo::new(
                config.vz_signin_url.clone(),
                config.auth.vz_timeout,
            )?),
            breaches: match &config.password_breach_api_url {
                Some(url) => Some(Arc::new(crate::breach::HttpBreachRange::new(url.clone())?)),
                None => None,
            },
            mfa_vault: CredentialVault::for_mfa(config.mfa_secret_key.as_ref())?,
            outbox_wakeup: Arc::clone(&outbox_wakeup),
            clock,
        };
        let auth = Arc::new(Auth::new(
            adapters,
            TokenKeys::new(&config.jwt_secret, config.jwt_previous_secret.as_ref()),
            CredentialVault::new(config.vz_credentials_key.as_ref())?,
            hasher.clone(),
            config.auth.clone(),
        ));
        Ok(Self {
            auth,
            repo,
            store,
            store_name,
            outbox_wakeup,
            hasher,
        })
    }
}

/// Picks up sessions revoked by other processes (see `Auth::sync_revocations`).
async fn sync_revocations(auth: Arc<Auth>, stop: crate::shutdown::CancelSignal) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    // Start a little in the past: revocations racing the start-up are not missed.
    let mut since = auth.now_ms() - 10_000;
    loop {
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
        match auth.sync_revocations(since).await {
            Ok(high) => since = high,
            Err(e) => tracing::debug!(event = "revocation_sync_failed", error = %e),
        }
    }
}

/// This machine's name, as operators know it (for `doctor`).
fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Keeps `instance:<id>` (this instance's host, listen address, start time and JWT key
/// fingerprint) alive for `doctor`; `Application::run_until` withdraws it at shutdown.
async fn announce_instance(
    auth: Arc<Auth>,
    id: String,
    address: SocketAddr,
    stop: crate::shutdown::CancelSignal,
) {
    let started_at = auth.now_ms();
    let host = host_name();
    let address = address.to_string();
    let me = crate::service::diagnostics::InstanceIdentity {
        id: &id,
        host: &host,
        address: &address,
        started_at,
    };
    loop {
        if let Err(e) = auth.announce_instance(&me).await {
            tracing::debug!(event = "instance_announce_failed", error = %e);
        }
        tokio::select! {
            () = tokio::time::sleep(crate::service::diagnostics::INSTANCE_ANNOUNCE_EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, crate::service::clock::system(), None).await
    }

    /// `build` on the given clock (the test harness passes a `ManualClock`), serving on
    /// `listener` when given (already bound: no window in which another process takes the
    /// port) instead of binding `BIND_ADDR`.
    pub async fn build_with(
        config: Config,
        clock: Arc<dyn Clock>,
        listener: Option<std::net::TcpListener>,
    ) -> anyhow::Result<Self> {
        if config.jwt_secret_generated {
            tracing::warn!(
                "JWT_SECRET_KEY is not set: using the key generated under {} (set JWT_SECRET_KEY to share it with other services)",
                config.data_dir.display()
            );
        }
        let Services {
            auth,
            repo,
            store,
            store_name,
            outbox_wakeup,
            hasher,
        } = Services::connect_with(&config, true, clock).await?;
        tracing::info!(
            event = "jwt_key",
            kid = auth.keys().kid(),
            "signing tokens with key fingerprint {}",
            auth.keys().kid()
        );
        let (stop_background, stop) = cancel_pair();
        let announce_stop = stop.clone();
        // The instance's one pub/sub subscription: live events and cache coherence. Nothing
        // is rebuilt at start-up: revocation is checked against SQL through the cache.
        tokio::spawn(Arc::clone(&auth).run_bus(stop.clone()));
        // Listen before serving, so no event published after start-up is missed; a Redis
        // that is down does not hold the start-up (the bus comes up when Redis does).
        let bus_deadline = std::time::Instant::now() + BUS_START_WAIT;
        while !auth.bus_listening() && std::time::Instant::now() < bus_deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        tokio::spawn(sync_revocations(Arc::clone(&auth), stop.clone()));
        tokio::spawn(crate::service::retention::run(
            Arc::clone(&auth),
            config.retention.clone(),
            stop.clone(),
        ));
        let metrics = crate::telemetry::metrics();
        let upkeep_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs(5)) => metrics.run_upkeep(),
                    () = upkeep_stop.cancelled() => return,
                }
            }
        });
        let sender = mail::build_sender(&config)?;
        tokio::spawn(mail::worker::run(
            Arc::clone(&repo),
            sender,
            outbox_wakeup,
            Arc::clone(auth.clock()),
            stop,
        ));
        tokio::spawn(async move {
            if let Err(e) = hasher.warm_up().await {
                tracing::warn!(event = "password_hasher_warm_up_failed", error = %e);
            }
        });

        let state = AppState {
            auth,
            cookies: CookieFactory::new(config.cookie_secure, config.cookie_domain.clone()),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            readiness: Readiness {
                repo,
                store,
                store_name,
            },
        };
        let listener = match listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)?
            }
            None => TcpListener::bind(config.bind_addr)
                .await
                .with_context(|| format!("cannot listen on BIND_ADDR {}", config.bind_addr))?,
        };
        let address = listener.local_addr()?;
        let instance_id = crate::service::tokens::random_jti();
        tokio::spawn(announce_instance(
            Arc::clone(&state.auth),
            instance_id.clone(),
            address,
            announce_stop,
        ));
        Ok(Self {
            auth: Arc::clone(&state.auth),
            instance_id,
            listener,
            router: http::router(state),
            address,
            limits: config.http,
            stop_background,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        http::server::serve(self.listener, self.router, self.limits, shutdown).await?;
        self.stop_background.cancel();
        // Gone at once, so `doctor` does not report a stopped instance for the TTL's length.
        let withdraw = self.auth.withdraw_instance(&self.instance_id);
        match tokio::time::timeout(std::time::Duration::from_secs(2), withdraw).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(event = "instance_withdraw_failed", error = %e),
            Err(_) => tracing::debug!(event = "instance_withdraw_failed", error = "timeout"),
        }
        Ok(())
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(std::future::pending()).await
    }
}
