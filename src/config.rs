//! Typed configuration from the environment (and a `.env` file), validated once at start-up.
//!
//! Every problem is reported as one line naming the variable. Secrets are wrapped so that
//! `Debug` and logs never show them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use url::Url;

/// Raw bytes that must never be printed.
pub struct SecretBytes(SecretBox<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::new(self.expose().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone)]
pub enum SqlBackend {
    /// SQLite file (embedded mode).
    Sqlite { path: PathBuf },
    /// PostgreSQL (production mode).
    Postgres { url: SecretString },
}

#[derive(Debug, Clone)]
pub enum EphemeralBackend {
    Memory {
        max_keys: usize,
    },
    Redis {
        shape: RedisShape,
        key_prefix: String,
        /// PEM CA bundle for `rediss://` with a private CA (`REDIS_CA_CERT`).
        ca_cert: Option<PathBuf>,
    },
}

/// The Redis deployment (SPEC §12): exactly one of `REDIS_URL`, `REDIS_SENTINELS`,
/// `REDIS_CLUSTER_NODES`.
#[derive(Debug, Clone)]
pub enum RedisShape {
    /// `redis://` or `rediss://` (TLS).
    Standalone { url: SecretString },
    /// Sentinels (`redis://h:26379,…`) watching the master named `master`.
    Sentinel {
        sentinels: Vec<SecretString>,
        master: String,
        sentinel_password: Option<SecretString>,
    },
    /// Seed nodes of a Redis Cluster.
    Cluster { nodes: Vec<SecretString> },
}

#[derive(Debug, Clone)]
pub enum EmailBackend {
    Log,
    Smtp {
        url: SecretString,
    },
    Postmark {
        api_url: String,
        server_token: SecretString,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub bind_addr: SocketAddr,
    pub base_url: Url,
    pub data_dir: PathBuf,
    pub sql: SqlBackend,
    pub db_max_connections: u32,
    pub db_acquire_timeout: Duration,
    /// Prepared statements cached per connection; `Some(0)` for a transaction pooler
    /// (PgBouncer < 1.21): no named statements outlive a transaction. `None`: sqlx's default.
    pub db_statement_cache_capacity: Option<usize>,
    pub retention: RetentionSettings,
    pub ephemeral: EphemeralBackend,
    pub redis_timeout: Duration,
    pub jwt_secret: SecretBytes,
    pub jwt_previous_secret: Option<SecretBytes>,
    /// True when the JWT key was generated and stored under `data_dir` (embedded mode only).
    pub jwt_secret_generated: bool,
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
    /// Email the user about each sign-in from a device not seen before (`NEW_DEVICE_ALERTS`).
    pub new_device_alerts: bool,
    pub login_rate_limit_attempts: u32,
    pub login_rate_limit_ip_attempts: u32,
    pub login_rate_limit_window: Duration,
    /// Password verifications (right or wrong) per client IP (IPv6: per /64) and window.
    pub login_rate_limit_ip_verifications: u32,
    /// Reset and verification-resend requests per client IP and window.
    pub email_request_rate_limit_ip: u32,
    /// Invites per team and per inviter per hour.
    pub invite_rate_limit_per_hour: u32,
    /// Invites to one address per day (all teams together).
    pub invite_rate_limit_per_address: u32,
    /// "Already registered" notices to one address per day.
    pub registered_notice_limit_per_day: u32,
    /// Password hashes one client may have in flight per instance (the rest wait their turn).
    pub password_hash_client_concurrency: usize,
    /// HTTP server limits (slow clients, connection floods).
    pub http_header_read_timeout: Duration,
    pub http_request_timeout: Duration,
    pub http_max_connections: usize,
    pub otp_max_attempts: u32,
    pub password_hash_concurrency: usize,
    pub email_backend: EmailBackend,
    pub email_from: String,
    pub postmark_device_approval_template_id: Option<String>,
    pub vz_signin_url: Option<Url>,
    pub vz_credentials_key: Option<SecretBytes>,
    pub vz_session_ttl: Duration,
    pub vz_timeout: Duration,
    /// The optional breach-range API new passwords are checked against (k-anonymity).
    pub password_breach_api_url: Option<Url>,
    /// Seals TOTP secrets at rest (AES-256). Embedded mode generates one under `data_dir`.
    pub mfa_secret_key: Option<SecretBytes>,
    /// Sensitive actions need an authentication (sign-in or reauth) within this.
    pub step_up_max_age: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub cookie_secure: bool,
    pub cookie_domain: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
}

/// The retention job (see `service::retention`): how often it runs and how long what it purges
/// is kept after it stopped mattering.
#[derive(Clone, Debug)]
pub struct RetentionSettings {
    pub interval: Duration,
    /// Sessions expired, idle or revoked for longer than this are deleted.
    pub session_grace: Duration,
    /// Used or expired verification and reset tokens, and ended invites.
    pub token_grace: Duration,
    /// Sent or failed outbox rows (the payload of a sent message is blanked at once).
    pub outbox_grace: Duration,
    /// Audit entries older than this are deleted (`AUDIT_RETENTION_DAYS`).
    pub audit_retention: Duration,
    /// Rows per statement.
    pub batch_size: u64,
}

impl Config {
    pub fn is_production(&self) -> bool {
        matches!(self.sql, SqlBackend::Postgres { .. })
    }
}

/// One configuration problem, reported as a single line naming the variable.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn err(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// A view of the environment: the process environment, or a map in tests.
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Reads `.env` (if present) and then the process environment, which wins.
    pub fn from_process() -> Self {
        let mut vars: HashMap<String, String> = HashMap::new();
        if let Ok(iter) = dotenvy::dotenv_iter() {
            for (k, v) in iter.flatten() {
                vars.insert(k, v);
            }
        }
        vars.extend(std::env::vars());
        Self { vars }
    }

    pub fn from_map(vars: HashMap<String, String>) -> Self {
        Self { vars }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|e| err(name, format!("cannot parse {raw:?}: {e}"))),
        }
    }

    fn positive(&self, name: &'static str, default: u64) -> Result<u64, ConfigError> {
        let v: u64 = self.parse(name, default)?;
        if v == 0 {
            return Err(err(name, "must be greater than 0"));
        }
        Ok(v)
    }

    fn boolean(&self, name: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(name).map(|s| s.to_ascii_lowercase()) {
            None => Ok(None),
            Some(s) if ["1", "true", "yes", "on"].contains(&s.as_str()) => Ok(Some(true)),
            Some(s) if ["0", "false", "no", "off"].contains(&s.as_str()) => Ok(Some(false)),
            Some(s) => Err(err(name, format!("expected true or false, got {s:?}"))),
        }
    }
}

const MIN_JWT_KEY_BYTES: usize = 32;
const GENERATED_JWT_KEY_FILE: &str = "jwt_secret.key";
const GENERATED_MFA_KEY_FILE: &str = "mfa_secret.key";

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let bind_addr: SocketAddr =
            env.parse("BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?;
        let base_url_raw = env.get("BASE_URL").unwrap_or("http://127.0.0.1:8000");
        let base_url = Url::parse(base_url_raw).map_err(|e| err("BASE_URL", e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(err(
                "BASE_URL",
                "must be an http:// or https:// URL with a host",
            ));
        }
        let data_dir = PathBuf::from(env.get("DATA_DIR").unwrap_or("./data"));

        let sql = match env.get("DATABASE_URL") {
            None => SqlBackend::Sqlite {
                path: data_dir.join("mbpanel.db"),
            },
            // libpq's forms, including several hosts for failover: `postgres://a,b/db?…` or
            // `host=a,b port=… dbname=…`.
            Some(url)
                if url.starts_with("postgres://")
                    || url.starts_with("postgresql://")
                    || (url.contains('=') && !url.starts_with("sqlite:")) =>
            {
                crate::store::sql::postgres::PgTarget::parse(url)
                    .map_err(|e| err("DATABASE_URL", e))?;
                SqlBackend::Postgres {
                    url: SecretString::from(url.to_owned()),
                }
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                if path.is_empty() || path.contains(":memory:") {
                    return Err(err("DATABASE_URL", "a SQLite database must be a file path"));
                }
                SqlBackend::Sqlite {
                    path: PathBuf::from(path.split('?').next().unwrap_or(path)),
                }
            }
            Some(_) => {
                return Err(err(
                    "DATABASE_URL",
                    "must start with postgres://, postgresql:// or sqlite:, or be a libpq keyword string (host=… dbname=…)",
                ));
            }
        };
        let production = matches!(sql, SqlBackend::Postgres { .. });

        let ephemeral = match redis_shape(env)? {
            Some(shape) => EphemeralBackend::Redis {
                shape,
                key_prefix: env.get("REDIS_KEY_PREFIX").unwrap_or("").to_owned(),
                ca_cert: match env.get("REDIS_CA_CERT") {
                    Some(path) => {
                        let path = PathBuf::from(path);
                        std::fs::metadata(&path).map_err(|e| {
                            err(
                                "REDIS_CA_CERT",
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })?;
                        Some(path)
                    }
                    None => None,
                },
            },
            None if production => {
                return Err(err(
                    "REDIS_URL",
                    "is required when DATABASE_URL is PostgreSQL (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES: instances must share one ephemeral store)",
                ));
            }
            None => EphemeralBackend::Memory {
                max_keys: env.parse("MEMORY_STORE_MAX_KEYS", 1_000_000usize)?,
            },
        };

        let (jwt_secret, jwt_secret_generated) = match env.get("JWT_SECRET_KEY") {
            Some(key) => {
                if key.len() < MIN_JWT_KEY_BYTES {
                    return Err(err(
                        "JWT_SECRET_KEY",
                        format!(
                            "must be at least {MIN_JWT_KEY_BYTES} bytes (got {})",
                            key.len()
                        ),
                    ));
                }
                (SecretBytes::new(key.as_bytes().to_vec()), false)
            }
            None if production || matches!(ephemeral, EphemeralBackend::Redis { .. }) => {
                return Err(err(
                    "JWT_SECRET_KEY",
                    "is required in production mode (all instances and services must share it)",
                ));
            }
            None => (load_or_generate_jwt_key(&data_dir)?, true),
        };
        let jwt_previous_secret = match env.get("JWT_PREVIOUS_SECRET_KEY") {
            Some(key) if key.len() < MIN_JWT_KEY_BYTES => {
                return Err(err(
                    "JWT_PREVIOUS_SECRET_KEY",
                    format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
                ));
            }
            Some(key) => Some(SecretBytes::new(key.as_bytes().to_vec())),
            None => None,
        };

        let email_backend = match env.get("EMAIL_BACKEND").unwrap_or("log") {
            "log" => EmailBackend::Log,
            "smtp" => {
                let url = env
                    .get("SMTP_URL")
                    .ok_or_else(|| err("SMTP_URL", "is required when EMAIL_BACKEND=smtp"))?;
                let parsed = Url::parse(url).map_err(|e| err("SMTP_URL", e.to_string()))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    return Err(err("SMTP_URL", "must start with smtp:// or smtps://"));
                }
                EmailBackend::Smtp {
                    url: SecretString::from(url.to_owned()),
                }
            }
            "postmark" => {
                let token = env.get("POSTMARK_SERVER_TOKEN").ok_or_else(|| {
                    err(
                        "POSTMARK_SERVER_TOKEN",
                        "is required when EMAIL_BACKEND=postmark",
                    )
                })?;
                let api_url = env
                    .get("POSTMARK_API_URL")
                    .unwrap_or("https://api.postmarkapp.com");
                Url::parse(api_url).map_err(|e| err("POSTMARK_API_URL", e.to_string()))?;
                EmailBackend::Postmark {
                    api_url: api_url.trim_end_matches('/').to_owned(),
                    server_token: SecretString::from(token.to_owned()),
                }
            }
            other => {
                return Err(err(
                    "EMAIL_BACKEND",
                    format!("must be log, smtp or postmark (got {other:?})"),
                ));
            }
        };
        let email_from = env
            .get("EMAIL_FROM")
            .unwrap_or("mbpanel <no-reply@mbpanel.local>")
            .to_owned();

        let vz_signin_url = match env.get("VZ_VIRTUOZZO_SIGNIN_URL") {
            Some(u) => {
                Some(Url::parse(u).map_err(|e| err("VZ_VIRTUOZZO_SIGNIN_URL", e.to_string()))?)
            }
            None => None,
        };
        let vz_credentials_key = match env.get("VZ_CREDENTIALS_KEY") {
            None => None,
            Some(b64) => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| err("VZ_CREDENTIALS_KEY", "must be base64"))?;
                if bytes.len() != 32 {
                    return Err(err(
                        "VZ_CREDENTIALS_KEY",
                        "must be base64 of exactly 32 bytes (AES-256)",
                    ));
                }
                Some(SecretBytes::new(bytes))
            }
        };

        let mfa_secret_key = match env.get("MFA_SECRET_KEY") {
            Some(b64) => Some(aes_key("MFA_SECRET_KEY", b64)?),
            None if production || matches!(ephemeral, EphemeralBackend::Redis { .. }) => None,
            None => Some(load_or_generate_aes_key(
                &data_dir,
                GENERATED_MFA_KEY_FILE,
                "MFA_SECRET_KEY",
            )?),
        };
        let password_breach_api_url = match env.get("PASSWORD_BREACH_API_URL") {
            Some(u) => {
                Some(Url::parse(u).map_err(|e| err("PASSWORD_BREACH_API_URL", e.to_string()))?)
            }
            None => None,
        };

        let trusted_proxies = match env.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| {
                            err(
                                "TRUSTED_PROXIES",
                                format!("{s:?} is not an IP address or CIDR range"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };

        let plain_http_localhost = base_url.scheme() == "http"
            && matches!(
                base_url.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]")
            );
        let cookie_secure = env
            .boolean("COOKIE_SECURE")?
            .unwrap_or(!plain_http_localhost);

        let log_format = match env.get("LOG_FORMAT").unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(err(
                    "LOG_FORMAT",
                    format!("must be text or json (got {other:?})"),
                ));
            }
        };
        let log_level = env.get("LOG_LEVEL").unwrap_or("info").to_ascii_lowercase();
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(err(
                "LOG_LEVEL",
                format!("{log_level:?} is not a level or filter"),
            ));
        }

        let minutes = |n: u64| Duration::from_secs(n * 60);
        let days = |n: u64| Duration::from_secs(n.saturating_mul(86_400));
        let config = Config {
            bind_addr,
            base_url,
            data_dir,
            sql,
            db_max_connections: env.positive("DATABASE_MAX_CONNECTIONS", 10)? as u32,
            db_acquire_timeout: Duration::from_millis(
                env.positive("DATABASE_ACQUIRE_TIMEOUT_MS", 3000)?,
            ),
            db_statement_cache_capacity: match env.get("DATABASE_STATEMENT_CACHE_CAPACITY") {
                None => None,
                Some(_) => Some(env.parse("DATABASE_STATEMENT_CACHE_CAPACITY", 100usize)?),
            },
            retention: RetentionSettings {
                interval: Duration::from_secs(env.positive("RETENTION_INTERVAL_SECONDS", 3600)?),
                session_grace: days(env.positive("SESSION_RETENTION_DAYS", 30)?),
                token_grace: days(env.positive("TOKEN_RETENTION_DAYS", 7)?),
                outbox_grace: days(env.positive("OUTBOX_RETENTION_DAYS", 7)?),
                audit_retention: days(env.positive("AUDIT_RETENTION_DAYS", 365)?),
                batch_size: env.positive("RETENTION_BATCH_SIZE", 1000)?,
            },
            ephemeral,
            redis_timeout: Duration::from_millis(env.positive("REDIS_TIMEOUT_MS", 1000)?),
            jwt_secret,
            jwt_previous_secret,
            jwt_secret_generated,
            access_token_ttl: minutes(env.positive("ACCESS_TOKEN_TTL_MINUTES", 15)?),
            refresh_token_ttl: Duration::from_secs(
                env.positive("REFRESH_TOKEN_TTL_DAYS", 7)? * 86_400,
            ),
            refresh_idle_timeout: minutes(env.positive("REFRESH_IDLE_TIMEOUT_MINUTES", 60)?),
            refresh_reuse_grace: Duration::from_secs(
                env.positive("REFRESH_REUSE_GRACE_SECONDS", 10)?,
            ),
            preauth_token_ttl: Duration::from_secs(env.positive("PREAUTH_TOKEN_TTL_SECONDS", 300)?),
            concurrent_login_ttl: Duration::from_secs(
                env.positive("CONCURRENT_LOGIN_TTL_SECONDS", 600)?,
            ),
            password_reset_ttl: Duration::from_secs(
                env.positive("PASSWORD_RESET_TOKEN_TTL_MINUTES", 30)? * 60,
            ),
            csrf_token_ttl: Duration::from_secs(env.positive("CSRF_TOKEN_TTL_HOURS", 12)? * 3600),
            email_verification_ttl: Duration::from_secs(
                env.positive("EMAIL_VERIFICATION_TOKEN_TTL_HOURS", 24)? * 3600,
            ),
            trusted_device_ttl: Duration::from_secs(
                env.positive("TRUSTED_DEVICE_TTL_DAYS", 90)? * 86_400,
            ),
            new_device_alerts: env.boolean("NEW_DEVICE_ALERTS")?.unwrap_or(true),
            login_rate_limit_attempts: env.positive("LOGIN_RATE_LIMIT_ATTEMPTS", 5)? as u32,
            login_rate_limit_ip_attempts: env.positive("LOGIN_RATE_LIMIT_IP_ATTEMPTS", 50)? as u32,
            login_rate_limit_window: Duration::from_secs(
                env.positive("LOGIN_RATE_LIMIT_WINDOW_SECONDS", 300)?,
            ),
            login_rate_limit_ip_verifications: env
                .positive("LOGIN_RATE_LIMIT_IP_VERIFICATIONS", 100)?
                as u32,
            email_request_rate_limit_ip: env.positive("EMAIL_REQUEST_RATE_LIMIT_IP", 20)? as u32,
            invite_rate_limit_per_hour: env.positive("INVITE_RATE_LIMIT_PER_HOUR", 50)? as u32,
            invite_rate_limit_per_address: env.positive("INVITE_RATE_LIMIT_PER_ADDRESS", 3)? as u32,
            registered_notice_limit_per_day: env.positive("REGISTERED_NOTICE_LIMIT_PER_DAY", 3)?
                as u32,
            password_hash_client_concurrency: env.positive("PASSWORD_HASH_CLIENT_CONCURRENCY", 1)?
                as usize,
            http_header_read_timeout: Duration::from_secs(
                env.positive("HTTP_HEADER_READ_TIMEOUT_SECONDS", 10)?,
            ),
            http_request_timeout: Duration::from_secs(
                env.positive("HTTP_REQUEST_TIMEOUT_SECONDS", 30)?,
            ),
            http_max_connections: env.positive("HTTP_MAX_CONNECTIONS", 1024)? as usize,
            otp_max_attempts: env.positive("OTP_MAX_ATTEMPTS", 5)? as u32,
            password_hash_concurrency: env.positive(
                "PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism()
                    .map(|n| n.get() as u64)
                    .unwrap_or(2),
            )? as usize,
            email_backend,
            email_from,
            postmark_device_approval_template_id: env
                .get("POSTMARK_DEVICE_APPROVAL_TEMPLATE_ID")
                .map(str::to_owned),
            vz_signin_url,
            vz_credentials_key,
            vz_session_ttl: minutes(env.positive("VZ_SESSION_TTL_MINUTES", 60)?),
            vz_timeout: Duration::from_secs(env.positive("VZ_TIMEOUT_SECONDS", 10)?),
            password_breach_api_url,
            mfa_secret_key,
            step_up_max_age: Duration::from_secs(60 * env.positive("STEP_UP_MAX_AGE_MINUTES", 10)?),
            trusted_proxies,
            cookie_secure,
            cookie_domain: env.get("COOKIE_DOMAIN").map(str::to_owned),
            log_level,
            log_format,
        };
        if config.refresh_idle_timeout > config.refresh_token_ttl {
            return Err(err(
                "REFRESH_IDLE_TIMEOUT_MINUTES",
                "must not exceed the absolute lifetime REFRESH_TOKEN_TTL_DAYS",
            ));
        }
        Ok(config)
    }
}

/// A Redis URL of ours: `redis://` or `rediss://`.
fn redis_url(var: &'static str, url: &str) -> Result<SecretString, ConfigError> {
    let parsed = Url::parse(url).map_err(|e| err(var, e.to_string()))?;
    if !matches!(parsed.scheme(), "redis" | "rediss") || parsed.host_str().is_none() {
        return Err(err(
            var,
            "each address must be redis://host:port or rediss://host:port",
        ));
    }
    Ok(SecretString::from(url.to_owned()))
}

fn redis_url_list(env: &Env, var: &'static str) -> Result<Option<Vec<SecretString>>, ConfigError> {
    let Some(list) = env.get(var) else {
        return Ok(None);
    };
    let urls = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| redis_url(var, u))
        .collect::<Result<Vec<_>, _>>()?;
    if urls.is_empty() {
        return Err(err(var, "lists no address"));
    }
    Ok(Some(urls))
}

/// Exactly one Redis shape, or none (embedded mode).
fn redis_shape(env: &Env) -> Result<Option<RedisShape>, ConfigError> {
    let url = env
        .get("REDIS_URL")
        .map(|u| redis_url("REDIS_URL", u))
        .transpose()?;
    let sentinels = redis_url_list(env, "REDIS_SENTINELS")?;
    let cluster = redis_url_list(env, "REDIS_CLUSTER_NODES")?;
    let given = [url.is_some(), sentinels.is_some(), cluster.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(err(
            "REDIS_URL",
            "set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES",
        ));
    }
    if env.get("REDIS_SENTINEL_MASTER").is_some() && sentinels.is_none() {
        return Err(err("REDIS_SENTINEL_MASTER", "needs REDIS_SENTINELS"));
    }
    Ok(match (url, sentinels, cluster) {
        (Some(url), _, _) => Some(RedisShape::Standalone { url }),
        (_, Some(sentinels), _) => Some(RedisShape::Sentinel {
            sentinels,
            master: env
                .get("REDIS_SENTINEL_MASTER")
                .filter(|m| !m.trim().is_empty())
                .ok_or_else(|| err("REDIS_SENTINEL_MASTER", "is required with REDIS_SENTINELS"))?
                .to_owned(),
            sentinel_password: env
                .get("REDIS_SENTINEL_PASSWORD")
                .map(|p| SecretString::from(p.to_owned())),
        }),
        (_, _, Some(nodes)) => Some(RedisShape::Cluster { nodes }),
        _ => None,
    })
}

/// Creates a directory (and missing parents) readable by the owner only (0700): it holds the
/// SQLite database and the generated JWT key.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Embedded mode only: a missing `JWT_SECRET_KEY` is generated once, stored with owner-only
/// permissions under the data directory, and reused on restart.
fn load_or_generate_jwt_key(data_dir: &Path) -> Result<SecretBytes, ConfigError> {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let path = data_dir.join(GENERATED_JWT_KEY_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim().as_bytes().to_vec();
        if key.len() < MIN_JWT_KEY_BYTES {
            return Err(err(
                "JWT_SECRET_KEY",
                format!("the stored key in {} is too short", path.display()),
            ));
        }
        return Ok(SecretBytes::new(key));
    }
    create_private_dir(data_dir).map_err(|e| {
        err(
            "DATA_DIR",
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut raw = [0u8; 48];
    getrandom::fill(&mut raw).map_err(|e| err("JWT_SECRET_KEY", format!("no randomness: {e}")))?;
    let key = engine.encode(raw);
    write_owner_only(&path, key.as_bytes())
        .map_err(|e| err("DATA_DIR", format!("cannot write {}: {e}", path.display())))?;
    Ok(SecretBytes::new(key.into_bytes()))
}

/// base64 of exactly 32 bytes (AES-256).
fn aes_key(variable: &'static str, b64: &str) -> Result<SecretBytes, ConfigError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| err(variable, "must be base64"))?;
    if bytes.len() != 32 {
        return Err(err(
            variable,
            "must be base64 of exactly 32 bytes (AES-256)",
        ));
    }
    Ok(SecretBytes::new(bytes))
}

/// Embedded mode only: an AES key generated once, stored with owner-only permissions under the
/// data directory (as the JWT key), and reused on restart.
fn load_or_generate_aes_key(
    data_dir: &Path,
    file: &str,
    variable: &'static str,
) -> Result<SecretBytes, ConfigError> {
    use base64::Engine;
    let path = data_dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return aes_key(variable, &text);
    }
    create_private_dir(data_dir).map_err(|e| {
        err(
            "DATA_DIR",
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| err(variable, format!("no randomness: {e}")))?;
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    write_owner_only(&path, key.as_bytes())
        .map_err(|e| err("DATA_DIR", format!("cannot write {}: {e}", path.display())))?;
    Ok(SecretBytes::new(raw.to_vec()))
}

fn write_owner_only(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings this file reads (every `"UPPER_CASE"` literal of three words or more
    /// characters that names a variable), and the numeric defaults given with them.
    fn declared_settings() -> (
        std::collections::BTreeSet<String>,
        std::collections::BTreeMap<String, String>,
    ) {
        let source = include_str!("config.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        let mut names = std::collections::BTreeSet::new();
        let mut defaults = std::collections::BTreeMap::new();
        for (i, _) in code.match_indices('"') {
            let rest = &code[i + 1..];
            let Some(end) = rest.find('"') else { break };
            let word = &rest[..end];
            let is_name = word.len() > 3
                && word.contains('_')
                && word
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !is_name {
                continue;
            }
            names.insert(word.to_owned());
            // `env.positive("NAME", 15)` / `env.parse("NAME", 100usize)`: the default.
            let after = rest[end + 1..].trim_start();
            if let Some(value) = after.strip_prefix(',') {
                let value: String = value
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '_')
                    .filter(|c| *c != '_')
                    .collect();
                if !value.is_empty() && code[..i].ends_with('(') {
                    defaults.insert(word.to_owned(), value);
                }
            }
        }
        (names, defaults)
    }

    /// The README's settings table: each variable with its default column.
    fn documented_settings() -> std::collections::BTreeMap<String, String> {
        let readme = include_str!("../README.md");
        let table = readme
            .split("\n## Settings\n")
            .nth(1)
            .and_then(|t| t.split("\n## ").next())
            .unwrap_or_default();
        table
            .lines()
            .filter_map(|row| {
                let mut cells = row.strip_prefix("| `")?.splitn(3, " | ");
                let name = cells.next()?.strip_suffix('`')?;
                let default = cells.next().unwrap_or_default();
                Some((name.to_owned(), default.to_owned()))
            })
            .collect()
    }

    #[test]
    fn the_readme_documents_exactly_the_settings_read_here_with_their_defaults() {
        let (names, defaults) = declared_settings();
        let documented = documented_settings();
        let table: std::collections::BTreeSet<String> = documented.keys().cloned().collect();
        let undocumented: Vec<_> = names.difference(&table).collect();
        let unknown: Vec<_> = table.difference(&names).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "README ## Settings vs src/config.rs: not documented {undocumented:?}, documented but not read {unknown:?}"
        );
        assert!(defaults.len() >= 30, "{defaults:?}");
        for (name, value) in &defaults {
            let cell = &documented[name];
            let plain: String = cell.chars().filter(|c| *c != ',' && *c != '_').collect();
            assert!(
                plain.contains(&format!("`{value}`")),
                "{name}: the code's default is {value}, the README says {cell}"
            );
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn short_jwt_key_is_rejected_naming_the_variable() {
        let e = Config::from_env(&env(&[("JWT_SECRET_KEY", "short")])).unwrap_err();
        assert_eq!(e.var, "JWT_SECRET_KEY");
    }

    #[test]
    fn postgres_requires_redis_and_key() {
        let e = Config::from_env(&env(&[("DATABASE_URL", "postgres://x/mbpanel")])).unwrap_err();
        assert_eq!(e.var, "REDIS_URL");
        let e = Config::from_env(&env(&[
            ("DATABASE_URL", "postgres://x/mbpanel"),
            ("REDIS_URL", "redis://127.0.0.1"),
        ]))
        .unwrap_err();
        assert_eq!(e.var, "JWT_SECRET_KEY");
    }

    #[test]
    fn exactly_one_redis_shape() {
        let key = "k".repeat(40);
        let base = [
            ("DATABASE_URL", "postgres://x/mbpanel"),
            ("JWT_SECRET_KEY", key.as_str()),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all: Vec<(&str, &str)> = base.to_vec();
            all.extend_from_slice(extra);
            Config::from_env(&env(&all))
        };
        let e = with(&[
            ("REDIS_URL", "redis://a:1"),
            ("REDIS_CLUSTER_NODES", "redis://b:2"),
        ])
        .unwrap_err();
        assert_eq!(e.var, "REDIS_URL");
        assert!(e.to_string().contains("REDIS_CLUSTER_NODES"));
        let e = with(&[("REDIS_SENTINELS", "redis://a:26379")]).unwrap_err();
        assert_eq!(e.var, "REDIS_SENTINEL_MASTER");
        let e = with(&[("REDIS_CLUSTER_NODES", "http://a:1")]).unwrap_err();
        assert_eq!(e.var, "REDIS_CLUSTER_NODES");
        assert!(
            with(&[
                ("REDIS_SENTINELS", "redis://a:26379,redis://b:26379"),
                ("REDIS_SENTINEL_MASTER", "m")
            ])
            .is_ok()
        );
        assert!(with(&[("REDIS_CLUSTER_NODES", "redis://a:7000, redis://b:7001")]).is_ok());
        assert!(with(&[("REDIS_URL", "rediss://a:6380")]).is_ok());
    }

    #[test]
    fn secrets_do_not_appear_in_debug() {
        let key = "k".repeat(40);
        let cfg = Config::from_env(&env(&[("JWT_SECRET_KEY", &key)])).unwrap();
        assert!(!format!("{cfg:?}").contains(&key));
    }

    #[test]
    fn cookies_secure_unless_plain_http_localhost() {
        let key = "k".repeat(40);
        let cfg = Config::from_env(&env(&[("JWT_SECRET_KEY", &key)])).unwrap();
        assert!(!cfg.cookie_secure);
        let cfg = Config::from_env(&env(&[
            ("JWT_SECRET_KEY", &key),
            ("BASE_URL", "https://panel.example"),
        ]))
        .unwrap();
        assert!(cfg.cookie_secure);
    }
}
