//! Typed configuration from the environment (and a `.env` file), validated once at start-up.
//!
//! Every setting is declared once, in the `settings!` table below: its variable, its type, its
//! default and its documentation. From that one declaration come the typed reading of the
//! environment (`Raw`), the settings part of `mbpanel-auth --help` (`help_text`) and the list the
//! README's settings table is checked against (`SETTINGS`). `Config::from_env` then checks what
//! one variable alone cannot say (URLs, key lengths, the Redis shapes, cross-field rules) and
//! builds each part's own settings (`AuthSettings`, `ServerLimits`, `RetentionSettings`).
//!
//! Every problem is reported as one line naming the variable. Secrets are wrapped so that
//! `Debug` and logs never show them.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use crate::domain::secret::SecretBytes;
use crate::http::server::ServerLimits;
use crate::service::AuthSettings;
pub use crate::service::retention::RetentionSettings;

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
    /// The use cases' settings (public URL, lifetimes, limits): handed to the service as they
    /// are. No connection string or secret is among them.
    pub auth: AuthSettings,
    /// HTTP server limits (slow clients, connection floods).
    pub http: ServerLimits,
    pub password_hash_concurrency: usize,
    pub email_backend: EmailBackend,
    pub email_from: String,
    pub postmark_device_approval_template_id: Option<String>,
    pub vz_signin_url: Option<Url>,
    pub vz_credentials_key: Option<SecretBytes>,
    /// The optional breach-range API new passwords are checked against (k-anonymity).
    pub password_breach_api_url: Option<Url>,
    /// Seals TOTP secrets at rest (AES-256). Embedded mode generates one under `data_dir`.
    pub mfa_secret_key: Option<SecretBytes>,
    pub trusted_proxies: Vec<IpNet>,
    pub cookie_secure: bool,
    pub cookie_domain: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
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

    /// The variable's value, trimmed; blank counts as unset.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }
}

// ---------------------------------------------------------------------------------------------
// The declaration.

/// A setting's default, as the README and `--help` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// Read as if the variable held this text.
    Value(&'static str),
    /// No value: the setting is an `Option`; the text says what its absence means (Markdown).
    Unset(&'static str),
}

impl DefaultValue {
    /// The README's cell: a value in backticks, or the description of what unset means.
    pub fn markdown(&self) -> String {
        match self {
            Self::Value(v) => format!("`{v}`"),
            Self::Unset(what) => (*what).to_owned(),
        }
    }

    /// As `--help` shows it: plain text, "none" for "—".
    pub fn plain(&self) -> String {
        match self {
            Self::Value(v) => (*v).to_owned(),
            Self::Unset("—") => "none".to_owned(),
            Self::Unset(what) => plain(what),
        }
    }
}

/// One declared setting (see `SETTINGS`).
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    /// The heading it is listed under in `--help`.
    pub group: &'static str,
    pub default: DefaultValue,
    /// Its doc comment, one line per source line.
    doc_lines: &'static str,
}

impl Setting {
    /// What the setting means (Markdown, one line): the README's third column.
    pub fn doc(&self) -> String {
        self.doc_lines
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How a variable's text becomes a typed value; errors name the variable.
trait FromSetting: Sized {
    /// `Option<T>`: the variable may be unset (its default is `unset "…"`).
    const OPTIONAL: bool = false;

    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError>;

    fn read(env: &Env, name: &'static str, default: DefaultValue) -> Result<Self, ConfigError> {
        match (env.get(name), default) {
            (Some(raw), _) => Self::parse(name, raw),
            (None, DefaultValue::Value(raw)) => Self::parse(name, raw),
            // Not reached: `settings!` asserts that only an `Option` has no default.
            (None, DefaultValue::Unset(_)) => Err(err(name, "is required")),
        }
    }
}

impl<T: FromSetting> FromSetting for Option<T> {
    const OPTIONAL: bool = true;

    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        T::parse(name, raw).map(Some)
    }

    fn read(env: &Env, name: &'static str, _: DefaultValue) -> Result<Self, ConfigError> {
        env.get(name).map(|raw| T::parse(name, raw)).transpose()
    }
}

/// `FromStr`, with the variable and the text in the message.
fn parse_str<T: std::str::FromStr>(name: &'static str, raw: &str) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    raw.parse()
        .map_err(|e| err(name, format!("cannot parse {raw:?}: {e}")))
}

impl FromSetting for String {
    fn parse(_: &'static str, raw: &str) -> Result<Self, ConfigError> {
        Ok(raw.to_owned())
    }
}

impl FromSetting for SecretString {
    fn parse(_: &'static str, raw: &str) -> Result<Self, ConfigError> {
        Ok(SecretString::from(raw.to_owned()))
    }
}

impl FromSetting for PathBuf {
    fn parse(_: &'static str, raw: &str) -> Result<Self, ConfigError> {
        Ok(PathBuf::from(raw))
    }
}

impl FromSetting for SocketAddr {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        parse_str(name, raw)
    }
}

impl FromSetting for usize {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        parse_str(name, raw)
    }
}

/// Counts and durations: a whole number greater than 0.
impl FromSetting for NonZeroU64 {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        NonZeroU64::new(parse_str(name, raw)?).ok_or_else(|| err(name, "must be greater than 0"))
    }
}

impl FromSetting for bool {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        match raw.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            other => Err(err(name, format!("expected true or false, got {other:?}"))),
        }
    }
}

impl FromSetting for LogFormat {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        match raw {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(err(name, format!("must be text or json (got {other:?})"))),
        }
    }
}

/// `EMAIL_BACKEND`: which sender; its own settings are checked by `from_env`.
#[derive(Debug, Clone, Copy)]
enum EmailKind {
    Log,
    Smtp,
    Postmark,
}

impl FromSetting for EmailKind {
    fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        match raw {
            "log" => Ok(EmailKind::Log),
            "smtp" => Ok(EmailKind::Smtp),
            "postmark" => Ok(EmailKind::Postmark),
            other => Err(err(
                name,
                format!("must be log, smtp or postmark (got {other:?})"),
            )),
        }
    }
}

/// Declares the settings: under a group heading, each variable with its doc comment (the
/// README's "meaning"), its type (how its text is parsed: see `FromSetting`) and its default —
/// a text read as if the variable held it, or `unset "what that means"` for an `Option`.
///
/// Generates `Raw` (one field per variable, named as the variable), `SETTINGS` (the
/// documentation) and `vars` (the names as constants, so that every error names a declared
/// variable).
macro_rules! settings {
    ($(
        $group:literal {
            $(
                $(#[doc = $doc:literal])+
                $name:ident : $ty:ty = $($unset:ident)? $default:literal;
            )+
        }
    )+) => {
        /// The environment, read and typed as declared; not yet checked across variables.
        #[allow(non_snake_case)]
        #[derive(Debug)]
        struct Raw {
            $($(
                $(#[doc = $doc])+
                $name: $ty,
            )+)+
        }

        impl Raw {
            fn read(env: &Env) -> Result<Self, ConfigError> {
                Ok(Self {
                    $($(
                        $name: <$ty as FromSetting>::read(
                            env,
                            stringify!($name),
                            settings!(@default $($unset)? $default),
                        )?,
                    )+)+
                })
            }
        }

        /// Every setting, in the order of the README's table and of `--help`.
        pub const SETTINGS: &[Setting] = &[
            $($(
                Setting {
                    name: stringify!($name),
                    group: $group,
                    default: settings!(@default $($unset)? $default),
                    doc_lines: concat!($($doc, "\n"),+),
                },
            )+)+
        ];

        /// The variables' names: an error naming a variable that is not declared does not
        /// compile.
        #[allow(dead_code)]
        mod vars {
            $($(
                pub const $name: &str = stringify!($name);
            )+)+
        }

        $($(
            const _: () = assert!(
                <$ty as FromSetting>::OPTIONAL == settings!(@optional $($unset)?),
                concat!(
                    stringify!($name),
                    ": an Option setting has an `unset \"…\"` default, any other a value"
                ),
            );
        )+)+
    };
    (@default unset $what:literal) => {
        DefaultValue::Unset($what)
    };
    (@default $value:literal) => {
        DefaultValue::Value($value)
    };
    (@optional unset) => {
        true
    };
    (@optional) => {
        false
    };
}

settings! {
    "Server" {
        /// address to listen on
        BIND_ADDR: SocketAddr = "127.0.0.1:8000";
        /// public URL; email links are built from it
        BASE_URL: String = "http://127.0.0.1:8000";
        /// embedded mode: SQLite file and the generated JWT and MFA keys
        DATA_DIR: PathBuf = "./data";
    }
    "Database" {
        /// `postgres://…` (or a libpq keyword string `host=… dbname=…`) selects production mode;
        /// several hosts for failover:
        /// `postgres://a:5432,b:5432/mbpanel?target_session_attrs=read-write` (see [Running at
        /// scale](#running-at-scale)); `sqlite:<path>` another SQLite file
        DATABASE_URL: Option<SecretString> = unset "unset → SQLite in `DATA_DIR`";
        /// PostgreSQL pool size per instance (background jobs included)
        DATABASE_MAX_CONNECTIONS: NonZeroU64 = "10";
        /// wait for a pooled connection before answering 503 (also bounds each host check during a
        /// failover)
        DATABASE_ACQUIRE_TIMEOUT_MS: NonZeroU64 = "3000";
        /// prepared statements cached per connection; `0` behind a transaction pooler (PgBouncer <
        /// 1.21 in `pool_mode = transaction`): nothing is cached and each pooled use runs in its
        /// own transaction. Also read from the URL as `?statement_cache_capacity=0`
        DATABASE_STATEMENT_CACHE_CAPACITY: Option<usize> = unset "sqlx's `100`";
    }
    "Retention" {
        /// how often the retention job runs (first run one interval after start)
        RETENTION_INTERVAL_SECONDS: NonZeroU64 = "3600";
        /// sessions expired or revoked longer ago than this are deleted
        SESSION_RETENTION_DAYS: NonZeroU64 = "30";
        /// used or expired email-verification and password-reset tokens and new-device alert
        /// links, expired or forgotten trusted devices, and accepted, revoked or expired
        /// invites, are deleted after this
        TOKEN_RETENTION_DAYS: NonZeroU64 = "7";
        /// sent or failed outbox rows older than this are deleted (a sent message's payload — its
        /// links and codes — is blanked at the first run after sending)
        OUTBOX_RETENTION_DAYS: NonZeroU64 = "7";
        /// audit entries older than this are deleted (by the retention job only)
        AUDIT_RETENTION_DAYS: NonZeroU64 = "365";
        /// rows per retention statement (at most 100 statements per kind per run)
        RETENTION_BATCH_SIZE: NonZeroU64 = "1000";
    }
    "Ephemeral store (Redis, or in-process in embedded mode)" {
        /// a standalone Redis, `redis://…` or `rediss://…` (TLS); with PostgreSQL, this or one of
        /// the next two is required (exactly one)
        REDIS_URL: Option<SecretString> = unset "unset → in-process store";
        /// Redis Sentinel: comma-separated `redis://host:port` of the sentinels
        REDIS_SENTINELS: Option<SecretString> = unset "unset";
        /// with `REDIS_SENTINELS`: the monitored master's name
        REDIS_SENTINEL_MASTER: Option<String> = unset "—";
        /// with `REDIS_SENTINELS`: the sentinels' password
        REDIS_SENTINEL_PASSWORD: Option<SecretString> = unset "unset";
        /// Redis Cluster: comma-separated seed nodes `redis://host:port` (or `rediss://`)
        REDIS_CLUSTER_NODES: Option<SecretString> = unset "unset";
        /// path of a PEM CA bundle for `rediss://` with a private CA
        REDIS_CA_CERT: Option<PathBuf> = unset "unset (system roots)";
        /// prefix for every key and channel (empty: exactly the guide's keys)
        REDIS_KEY_PREFIX: Option<String> = unset "empty";
        /// bound on every Redis call; past it the request answers 503
        REDIS_TIMEOUT_MS: NonZeroU64 = "1000";
        /// embedded mode: key limit of the in-process store (full → 503)
        MEMORY_STORE_MAX_KEYS: usize = "1000000";
    }
    "Tokens and sessions" {
        /// HS256 key, used as raw bytes like PyJWT; at least 32 bytes; required in production
        JWT_SECRET_KEY: Option<SecretString> =
            unset "embedded: generated once into `DATA_DIR/jwt_secret.key` (0600)";
        /// also accepted for verification during a key rotation
        JWT_PREVIOUS_SECRET_KEY: Option<SecretString> = unset "unset";
        /// access token lifetime
        ACCESS_TOKEN_TTL_MINUTES: NonZeroU64 = "15";
        /// absolute session lifetime (not extended by refreshes)
        REFRESH_TOKEN_TTL_DAYS: NonZeroU64 = "7";
        /// a session not refreshed for this long ends
        REFRESH_IDLE_TIMEOUT_MINUTES: NonZeroU64 = "60";
        /// window in which a repeat of a just-rotated refresh token gets the same successor
        REFRESH_REUSE_GRACE_SECONDS: NonZeroU64 = "10";
        /// lifetime of the pre-auth token (and its emailed code)
        PREAUTH_TOKEN_TTL_SECONDS: NonZeroU64 = "300";
        /// lifetime of a concurrent-login approval request (the waiting pre-auth token lives as
        /// long)
        CONCURRENT_LOGIN_TTL_SECONDS: NonZeroU64 = "600";
        /// password-reset link lifetime
        PASSWORD_RESET_TOKEN_TTL_MINUTES: NonZeroU64 = "30";
        /// CSRF token lifetime (re-issued on every refresh)
        CSRF_TOKEN_TTL_HOURS: NonZeroU64 = "12";
        /// verification link lifetime
        EMAIL_VERIFICATION_TOKEN_TTL_HOURS: NonZeroU64 = "24";
        /// how long a device that passed the emailed code skips it
        TRUSTED_DEVICE_TTL_DAYS: NonZeroU64 = "90";
        /// email the user about every completed sign-in from a device not seen before, with a "this
        /// wasn't me" link (see "New-device alerts")
        NEW_DEVICE_ALERTS: bool = "true";
    }
    "Rate limits" {
        /// failed logins per account per window
        LOGIN_RATE_LIMIT_ATTEMPTS: NonZeroU64 = "5";
        /// failed logins per client IP (IPv6: per /64) per window
        LOGIN_RATE_LIMIT_IP_ATTEMPTS: NonZeroU64 = "50";
        /// password verifications, right or wrong, per client IP (IPv6: per /64) per window (login
        /// and password change): bounds argon2 work per client
        LOGIN_RATE_LIMIT_IP_VERIFICATIONS: NonZeroU64 = "100";
        /// the rate-limit window (also of the per-IP limits below)
        LOGIN_RATE_LIMIT_WINDOW_SECONDS: NonZeroU64 = "300";
        /// `password-reset/request` and `verify-email/resend` together, per client IP (IPv6: per
        /// /64) per window
        EMAIL_REQUEST_RATE_LIMIT_IP: NonZeroU64 = "20";
        /// invites per team, and per inviter, per hour
        INVITE_RATE_LIMIT_PER_HOUR: NonZeroU64 = "50";
        /// invites to one address per day (all teams)
        INVITE_RATE_LIMIT_PER_ADDRESS: NonZeroU64 = "3";
        /// "someone tried to sign up with your email" notices per address per day
        REGISTERED_NOTICE_LIMIT_PER_DAY: NonZeroU64 = "3";
    }
    "HTTP server" {
        /// a connection that has not sent a complete request head within this is closed (slow
        /// clients, idle keep-alive)
        HTTP_HEADER_READ_TIMEOUT_SECONDS: NonZeroU64 = "10";
        /// a request not answered within this gets 408 `request_timeout` (a started event stream is
        /// not cut)
        HTTP_REQUEST_TIMEOUT_SECONDS: NonZeroU64 = "30";
        /// open connections per instance; beyond it new ones wait in the listen backlog
        HTTP_MAX_CONNECTIONS: NonZeroU64 = "1024";
    }
    "Passwords and codes" {
        /// wrong codes before the pre-auth token is burned
        OTP_MAX_ATTEMPTS: NonZeroU64 = "5";
        /// dedicated argon2 threads (hashes computed at once); at most 32 jobs per thread wait,
        /// beyond that 503
        PASSWORD_HASH_CONCURRENCY: Option<NonZeroU64> = unset "number of CPUs";
        /// hashes one client (IP, IPv6 /64) may have in flight per instance; its further requests
        /// wait their turn, so a burst from one client cannot occupy every hashing thread
        PASSWORD_HASH_CLIENT_CONCURRENCY: NonZeroU64 = "1";
        /// a k-anonymity breach-range API (`GET <url>/<5 hex digits of the SHA-1>` answering
        /// `SUFFIX:COUNT` lines, as Have I Been Pwned's `https://api.pwnedpasswords.com/range`);
        /// new passwords listed there are refused; 2 s timeout, fails open (logged
        /// `password_breach_check_failed`)
        PASSWORD_BREACH_API_URL: Option<String> = unset "unset (off)";
    }
    "Email" {
        /// `log` (print to the log), `smtp`, or `postmark`
        EMAIL_BACKEND: EmailKind = "log";
        /// with `smtp`: e.g. `smtp://user:pass@host:587?tls=required`, `smtps://…`
        SMTP_URL: Option<SecretString> = unset "—";
        /// with `postmark`: the server token
        POSTMARK_SERVER_TOKEN: Option<SecretString> = unset "—";
        /// Postmark API base (overridable for a local fake)
        POSTMARK_API_URL: String = "https://api.postmarkapp.com";
        /// template (numeric id → `TemplateId`, else `TemplateAlias`) for the device-approval
        /// emails — the sign-in code and the concurrent-login approval (model field `kind` tells
        /// them apart); without it, and for the other emails, the rendered text goes to `/email`
        POSTMARK_DEVICE_APPROVAL_TEMPLATE_ID: Option<String> = unset "unset";
        /// sender address
        EMAIL_FROM: String = "mbpanel <no-reply@mbpanel.local>";
    }
    "Virtuozzo" {
        /// Virtuozzo sign-in endpoint (`POST`, form fields `email`, `password`)
        VZ_VIRTUOZZO_SIGNIN_URL: Option<String> = unset "unset";
        /// base64 of exactly 32 bytes: the AES-256-GCM key sealing team credentials and session
        /// keys
        VZ_CREDENTIALS_KEY: Option<SecretString> =
            unset "unset (Virtuozzo routes answer 503 `virtuozzo_not_configured`)";
        /// how long a Virtuozzo session key is considered live
        VZ_SESSION_TTL_MINUTES: NonZeroU64 = "60";
        /// bound on each Virtuozzo call (a hung Virtuozzo cannot hang logins)
        VZ_TIMEOUT_SECONDS: NonZeroU64 = "10";
    }
    "Second factor and step-up" {
        /// base64 of exactly 32 bytes: the AES-256-GCM key sealing TOTP secrets (each bound to its
        /// user id); all instances must share it
        MFA_SECRET_KEY: Option<SecretString> = unset "embedded: generated once into \
            `DATA_DIR/mfa_secret.key` (0600); production: unset (TOTP enrolment answers 503 \
            `mfa_not_configured`)";
        /// sensitive actions need a sign-in or `/auth/reauth` of the session within this (at least
        /// 1)
        STEP_UP_MAX_AGE_MINUTES: NonZeroU64 = "10";
    }
    "Proxies and cookies" {
        /// comma-separated IPs/CIDRs whose `X-Forwarded-For` is believed
        TRUSTED_PROXIES: Option<String> = unset "empty";
        /// the `Secure` cookie attribute
        COOKIE_SECURE: Option<bool> = unset "`true` unless `BASE_URL` is plain-http localhost";
        /// the cookies' `Domain`
        COOKIE_DOMAIN: Option<String> = unset "unset (host-only cookies)";
    }
    "Logging" {
        /// level or filter (`debug`, `mbpanel_auth=debug,info`)
        LOG_LEVEL: String = "info";
        /// `text` or `json`
        LOG_FORMAT: LogFormat = "text";
    }
}

const MIN_JWT_KEY_BYTES: usize = 32;
const GENERATED_JWT_KEY_FILE: &str = "jwt_secret.key";
const GENERATED_MFA_KEY_FILE: &str = "mfa_secret.key";

fn seconds(n: NonZeroU64) -> Duration {
    Duration::from_secs(n.get())
}
fn millis(n: NonZeroU64) -> Duration {
    Duration::from_millis(n.get())
}
fn minutes(n: NonZeroU64) -> Duration {
    Duration::from_secs(n.get().saturating_mul(60))
}
fn hours(n: NonZeroU64) -> Duration {
    Duration::from_secs(n.get().saturating_mul(3600))
}
fn days(n: NonZeroU64) -> Duration {
    Duration::from_secs(n.get().saturating_mul(86_400))
}
/// A count for a `u32` field (beyond its range: its largest value).
fn count(n: NonZeroU64) -> u32 {
    u32::try_from(n.get()).unwrap_or(u32::MAX)
}
fn size(n: NonZeroU64) -> usize {
    usize::try_from(n.get()).unwrap_or(usize::MAX)
}

impl Config {
    pub fn from_env(env: &Env) -> Result<Config, ConfigError> {
        let raw = Raw::read(env)?;
        let base_url = Url::parse(&raw.BASE_URL).map_err(|e| err(vars::BASE_URL, e.to_string()))?;
        if !matches!(base_url.scheme(), "http" | "https") || base_url.host_str().is_none() {
            return Err(err(
                vars::BASE_URL,
                "must be an http:// or https:// URL with a host",
            ));
        }
        let data_dir = raw.DATA_DIR.clone();

        let sql = match raw.DATABASE_URL.as_ref().map(ExposeSecret::expose_secret) {
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
                    .map_err(|e| err(vars::DATABASE_URL, e))?;
                SqlBackend::Postgres {
                    url: SecretString::from(url.to_owned()),
                }
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                if path.is_empty() || path.contains(":memory:") {
                    return Err(err(
                        vars::DATABASE_URL,
                        "a SQLite database must be a file path",
                    ));
                }
                SqlBackend::Sqlite {
                    path: PathBuf::from(path.split('?').next().unwrap_or(path)),
                }
            }
            Some(_) => {
                return Err(err(
                    vars::DATABASE_URL,
                    "must start with postgres://, postgresql:// or sqlite:, or be a libpq keyword string (host=… dbname=…)",
                ));
            }
        };
        let production = matches!(sql, SqlBackend::Postgres { .. });

        let ephemeral = match redis_shape(&raw)? {
            Some(shape) => EphemeralBackend::Redis {
                shape,
                key_prefix: raw.REDIS_KEY_PREFIX.clone().unwrap_or_default(),
                ca_cert: match &raw.REDIS_CA_CERT {
                    Some(path) => {
                        std::fs::metadata(path).map_err(|e| {
                            err(
                                vars::REDIS_CA_CERT,
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })?;
                        Some(path.clone())
                    }
                    None => None,
                },
            },
            None if production => {
                return Err(err(
                    vars::REDIS_URL,
                    "is required when DATABASE_URL is PostgreSQL (or REDIS_SENTINELS, or REDIS_CLUSTER_NODES: instances must share one ephemeral store)",
                ));
            }
            None => EphemeralBackend::Memory {
                max_keys: raw.MEMORY_STORE_MAX_KEYS,
            },
        };
        let shared_store = matches!(ephemeral, EphemeralBackend::Redis { .. });

        let (jwt_secret, jwt_secret_generated) = match &raw.JWT_SECRET_KEY {
            Some(key) => {
                let key = key.expose_secret();
                if key.len() < MIN_JWT_KEY_BYTES {
                    return Err(err(
                        vars::JWT_SECRET_KEY,
                        format!(
                            "must be at least {MIN_JWT_KEY_BYTES} bytes (got {})",
                            key.len()
                        ),
                    ));
                }
                (SecretBytes::new(key.as_bytes().to_vec()), false)
            }
            None if production || shared_store => {
                return Err(err(
                    vars::JWT_SECRET_KEY,
                    "is required in production mode (all instances and services must share it)",
                ));
            }
            None => (load_or_generate_jwt_key(&data_dir)?, true),
        };
        let jwt_previous_secret = match &raw.JWT_PREVIOUS_SECRET_KEY {
            Some(key) if key.expose_secret().len() < MIN_JWT_KEY_BYTES => {
                return Err(err(
                    vars::JWT_PREVIOUS_SECRET_KEY,
                    format!("must be at least {MIN_JWT_KEY_BYTES} bytes"),
                ));
            }
            Some(key) => Some(SecretBytes::new(key.expose_secret().as_bytes().to_vec())),
            None => None,
        };

        let email_backend = match raw.EMAIL_BACKEND {
            EmailKind::Log => EmailBackend::Log,
            EmailKind::Smtp => {
                let url = raw
                    .SMTP_URL
                    .as_ref()
                    .ok_or_else(|| err(vars::SMTP_URL, "is required when EMAIL_BACKEND=smtp"))?;
                let parsed = Url::parse(url.expose_secret())
                    .map_err(|e| err(vars::SMTP_URL, e.to_string()))?;
                if !matches!(parsed.scheme(), "smtp" | "smtps") {
                    return Err(err(vars::SMTP_URL, "must start with smtp:// or smtps://"));
                }
                EmailBackend::Smtp { url: url.clone() }
            }
            EmailKind::Postmark => {
                let token = raw.POSTMARK_SERVER_TOKEN.as_ref().ok_or_else(|| {
                    err(
                        vars::POSTMARK_SERVER_TOKEN,
                        "is required when EMAIL_BACKEND=postmark",
                    )
                })?;
                let api_url = &raw.POSTMARK_API_URL;
                Url::parse(api_url).map_err(|e| err(vars::POSTMARK_API_URL, e.to_string()))?;
                EmailBackend::Postmark {
                    api_url: api_url.trim_end_matches('/').to_owned(),
                    server_token: token.clone(),
                }
            }
        };

        let vz_signin_url =
            optional_url(vars::VZ_VIRTUOZZO_SIGNIN_URL, &raw.VZ_VIRTUOZZO_SIGNIN_URL)?;
        let vz_credentials_key = match &raw.VZ_CREDENTIALS_KEY {
            Some(b64) => Some(aes_key(vars::VZ_CREDENTIALS_KEY, b64.expose_secret())?),
            None => None,
        };
        let mfa_secret_key = match &raw.MFA_SECRET_KEY {
            Some(b64) => Some(aes_key(vars::MFA_SECRET_KEY, b64.expose_secret())?),
            None if production || shared_store => None,
            None => Some(load_or_generate_aes_key(
                &data_dir,
                GENERATED_MFA_KEY_FILE,
                vars::MFA_SECRET_KEY,
            )?),
        };
        let password_breach_api_url =
            optional_url(vars::PASSWORD_BREACH_API_URL, &raw.PASSWORD_BREACH_API_URL)?;

        let trusted_proxies = raw
            .TRUSTED_PROXIES
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .map_err(|_| {
                        err(
                            vars::TRUSTED_PROXIES,
                            format!("{s:?} is not an IP address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<_, _>>()?;

        let plain_http_localhost = base_url.scheme() == "http"
            && matches!(
                base_url.host_str(),
                Some("localhost" | "127.0.0.1" | "[::1]")
            );
        let cookie_secure = raw.COOKIE_SECURE.unwrap_or(!plain_http_localhost);

        let log_level = raw.LOG_LEVEL.to_ascii_lowercase();
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(err(
                vars::LOG_LEVEL,
                format!("{log_level:?} is not a level or filter"),
            ));
        }

        let auth = AuthSettings {
            base_url,
            access_token_ttl: minutes(raw.ACCESS_TOKEN_TTL_MINUTES),
            refresh_token_ttl: days(raw.REFRESH_TOKEN_TTL_DAYS),
            refresh_idle_timeout: minutes(raw.REFRESH_IDLE_TIMEOUT_MINUTES),
            refresh_reuse_grace: seconds(raw.REFRESH_REUSE_GRACE_SECONDS),
            preauth_token_ttl: seconds(raw.PREAUTH_TOKEN_TTL_SECONDS),
            concurrent_login_ttl: seconds(raw.CONCURRENT_LOGIN_TTL_SECONDS),
            password_reset_ttl: minutes(raw.PASSWORD_RESET_TOKEN_TTL_MINUTES),
            csrf_token_ttl: hours(raw.CSRF_TOKEN_TTL_HOURS),
            email_verification_ttl: hours(raw.EMAIL_VERIFICATION_TOKEN_TTL_HOURS),
            trusted_device_ttl: days(raw.TRUSTED_DEVICE_TTL_DAYS),
            new_device_alerts: raw.NEW_DEVICE_ALERTS,
            login_rate_limit_attempts: count(raw.LOGIN_RATE_LIMIT_ATTEMPTS),
            login_rate_limit_ip_attempts: count(raw.LOGIN_RATE_LIMIT_IP_ATTEMPTS),
            login_rate_limit_window: seconds(raw.LOGIN_RATE_LIMIT_WINDOW_SECONDS),
            login_rate_limit_ip_verifications: count(raw.LOGIN_RATE_LIMIT_IP_VERIFICATIONS),
            email_request_rate_limit_ip: count(raw.EMAIL_REQUEST_RATE_LIMIT_IP),
            invite_rate_limit_per_hour: count(raw.INVITE_RATE_LIMIT_PER_HOUR),
            invite_rate_limit_per_address: count(raw.INVITE_RATE_LIMIT_PER_ADDRESS),
            registered_notice_limit_per_day: count(raw.REGISTERED_NOTICE_LIMIT_PER_DAY),
            password_hash_client_concurrency: size(raw.PASSWORD_HASH_CLIENT_CONCURRENCY),
            otp_max_attempts: count(raw.OTP_MAX_ATTEMPTS),
            vz_session_ttl: minutes(raw.VZ_SESSION_TTL_MINUTES),
            vz_timeout: seconds(raw.VZ_TIMEOUT_SECONDS),
            step_up_max_age: minutes(raw.STEP_UP_MAX_AGE_MINUTES),
        };
        if auth.refresh_idle_timeout > auth.refresh_token_ttl {
            return Err(err(
                vars::REFRESH_IDLE_TIMEOUT_MINUTES,
                "must not exceed the absolute lifetime REFRESH_TOKEN_TTL_DAYS",
            ));
        }

        Ok(Config {
            bind_addr: raw.BIND_ADDR,
            data_dir,
            sql,
            db_max_connections: count(raw.DATABASE_MAX_CONNECTIONS),
            db_acquire_timeout: millis(raw.DATABASE_ACQUIRE_TIMEOUT_MS),
            db_statement_cache_capacity: raw.DATABASE_STATEMENT_CACHE_CAPACITY,
            retention: RetentionSettings {
                interval: seconds(raw.RETENTION_INTERVAL_SECONDS),
                session_grace: days(raw.SESSION_RETENTION_DAYS),
                token_grace: days(raw.TOKEN_RETENTION_DAYS),
                outbox_grace: days(raw.OUTBOX_RETENTION_DAYS),
                audit_retention: days(raw.AUDIT_RETENTION_DAYS),
                batch_size: raw.RETENTION_BATCH_SIZE.get(),
            },
            ephemeral,
            redis_timeout: millis(raw.REDIS_TIMEOUT_MS),
            jwt_secret,
            jwt_previous_secret,
            jwt_secret_generated,
            auth,
            http: ServerLimits {
                header_read_timeout: seconds(raw.HTTP_HEADER_READ_TIMEOUT_SECONDS),
                request_timeout: seconds(raw.HTTP_REQUEST_TIMEOUT_SECONDS),
                max_connections: size(raw.HTTP_MAX_CONNECTIONS),
            },
            password_hash_concurrency: match raw.PASSWORD_HASH_CONCURRENCY {
                Some(n) => size(n),
                None => std::thread::available_parallelism().map_or(2, |n| n.get()),
            },
            email_backend,
            email_from: raw.EMAIL_FROM,
            postmark_device_approval_template_id: raw.POSTMARK_DEVICE_APPROVAL_TEMPLATE_ID,
            vz_signin_url,
            vz_credentials_key,
            password_breach_api_url,
            mfa_secret_key,
            trusted_proxies,
            cookie_secure,
            cookie_domain: raw.COOKIE_DOMAIN,
            log_level,
            log_format: raw.LOG_FORMAT,
        })
    }
}

fn optional_url(var: &'static str, raw: &Option<String>) -> Result<Option<Url>, ConfigError> {
    raw.as_deref()
        .map(|u| Url::parse(u).map_err(|e| err(var, e.to_string())))
        .transpose()
}

/// The settings part of `--help`: every setting under its group, with its default and meaning.
pub fn help_text() -> String {
    let mut out = String::new();
    wrap(
        &mut out,
        "",
        "Settings are environment variables; a .env file in the working directory is read too \
         (the environment wins). Bad values stop the start-up with one line naming the variable.",
    );
    let mut group = "";
    for setting in SETTINGS {
        if setting.group != group {
            group = setting.group;
            out.push_str(&format!("\n{group}:\n"));
        }
        let default = format!("[default: {}]", setting.default.plain());
        let entry = format!("  {}  {default}", setting.name);
        if entry.chars().count() <= HELP_WIDTH {
            out.push_str(&entry);
            out.push('\n');
        } else {
            out.push_str(&format!("  {}\n", setting.name));
            wrap(&mut out, HELP_INDENT, &default);
        }
        wrap(&mut out, HELP_INDENT, &plain(&setting.doc()));
    }
    out
}

const HELP_WIDTH: usize = 100;
const HELP_INDENT: &str = "          ";

/// Appends `text` in lines of at most `HELP_WIDTH` characters (a longer word alone), each
/// starting with `indent`.
fn wrap(out: &mut String, indent: &str, text: &str) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = indent.chars().count() + line.chars().count() + 1 + word.chars().count();
        if !line.is_empty() && len > HELP_WIDTH {
            out.push_str(&format!("{indent}{line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}{line}\n"));
    }
}

/// Markdown as plain text: no backticks, a link as its text.
fn plain(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let link = rest[open..].find("](").and_then(|mid| {
            let after = open + mid + 2;
            rest[after..]
                .find(')')
                .map(|close| (open + mid, after + close))
        });
        match link {
            Some((mid, close)) => {
                out.push_str(&rest[..open]);
                out.push_str(&rest[open + 1..mid]);
                rest = &rest[close + 1..];
            }
            None => {
                out.push_str(&rest[..=open]);
                rest = &rest[open + 1..];
            }
        }
    }
    out.push_str(rest);
    out.replace('`', "")
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

fn redis_url_list(
    var: &'static str,
    list: Option<&SecretString>,
) -> Result<Option<Vec<SecretString>>, ConfigError> {
    let Some(list) = list else {
        return Ok(None);
    };
    let urls = list
        .expose_secret()
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
fn redis_shape(raw: &Raw) -> Result<Option<RedisShape>, ConfigError> {
    let url = raw
        .REDIS_URL
        .as_ref()
        .map(|u| redis_url(vars::REDIS_URL, u.expose_secret()))
        .transpose()?;
    let sentinels = redis_url_list(vars::REDIS_SENTINELS, raw.REDIS_SENTINELS.as_ref())?;
    let cluster = redis_url_list(vars::REDIS_CLUSTER_NODES, raw.REDIS_CLUSTER_NODES.as_ref())?;
    let given = [url.is_some(), sentinels.is_some(), cluster.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(err(
            vars::REDIS_URL,
            "set only one of REDIS_URL, REDIS_SENTINELS and REDIS_CLUSTER_NODES",
        ));
    }
    if raw.REDIS_SENTINEL_MASTER.is_some() && sentinels.is_none() {
        return Err(err(vars::REDIS_SENTINEL_MASTER, "needs REDIS_SENTINELS"));
    }
    Ok(match (url, sentinels, cluster) {
        (Some(url), _, _) => Some(RedisShape::Standalone { url }),
        (_, Some(sentinels), _) => Some(RedisShape::Sentinel {
            sentinels,
            master: raw.REDIS_SENTINEL_MASTER.clone().ok_or_else(|| {
                err(
                    vars::REDIS_SENTINEL_MASTER,
                    "is required with REDIS_SENTINELS",
                )
            })?,
            sentinel_password: raw.REDIS_SENTINEL_PASSWORD.clone(),
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
                vars::JWT_SECRET_KEY,
                format!("the stored key in {} is too short", path.display()),
            ));
        }
        return Ok(SecretBytes::new(key));
    }
    create_private_dir(data_dir).map_err(|e| {
        err(
            vars::DATA_DIR,
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut raw = [0u8; 48];
    getrandom::fill(&mut raw)
        .map_err(|e| err(vars::JWT_SECRET_KEY, format!("no randomness: {e}")))?;
    let key = engine.encode(raw);
    write_owner_only(&path, key.as_bytes()).map_err(|e| {
        err(
            vars::DATA_DIR,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
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
            vars::DATA_DIR,
            format!("cannot create {}: {e}", data_dir.display()),
        )
    })?;
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| err(variable, format!("no randomness: {e}")))?;
    let key = base64::engine::general_purpose::STANDARD.encode(raw);
    write_owner_only(&path, key.as_bytes()).map_err(|e| {
        err(
            vars::DATA_DIR,
            format!("cannot write {}: {e}", path.display()),
        )
    })?;
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

    /// The rows of the README's settings table: variable, default, meaning.
    fn documented_settings(readme: &str) -> Vec<(String, String, String)> {
        settings_table(readme)
            .map(|(_, rows)| rows)
            .unwrap_or_default()
            .lines()
            .filter_map(|row| {
                let mut cells = row
                    .strip_prefix("| `")?
                    .strip_suffix(" |")?
                    .splitn(3, " | ");
                let name = cells.next()?.strip_suffix('`')?;
                let default = cells.next()?;
                let meaning = cells.next()?;
                Some((name.to_owned(), default.to_owned(), meaning.to_owned()))
            })
            .collect()
    }

    /// The README's settings table rows (those after the header), and where they start.
    fn settings_table(readme: &str) -> Option<(usize, &str)> {
        let section = readme.find("\n## Settings\n")?;
        let header = section + readme[section..].find("\n|---|")? + 1;
        let start = header + readme[header..].find('\n')? + 1;
        let len = readme[start..]
            .find("\n\n")
            .map_or(readme.len() - start, |n| n + 1);
        Some((start, &readme[start..start + len]))
    }

    /// The table rows as the declaration says they are.
    fn declared_table() -> String {
        SETTINGS
            .iter()
            .map(|s| {
                format!(
                    "| `{}` | {} | {} |\n",
                    s.name,
                    s.default.markdown(),
                    s.doc()
                )
            })
            .collect()
    }

    /// Both ways: every declared setting is in the README with its default and meaning, and the
    /// README lists no other, in the declaration's order. `UPDATE_README_SETTINGS=1` rewrites the
    /// table from the declaration.
    #[test]
    fn the_readme_settings_table_is_the_declaration() {
        let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(readme_path).unwrap();
        if std::env::var_os("UPDATE_README_SETTINGS").is_some() {
            let (start, rows) = settings_table(&readme).expect("README has a ## Settings table");
            let updated = format!(
                "{}{}{}",
                &readme[..start],
                declared_table(),
                &readme[start + rows.len()..]
            );
            std::fs::write(readme_path, updated).unwrap();
            return;
        }
        let documented = documented_settings(&readme);
        let names = |rows: &[(String, String, String)]| -> std::collections::BTreeSet<String> {
            rows.iter().map(|r| r.0.clone()).collect()
        };
        let declared: Vec<(String, String, String)> = SETTINGS
            .iter()
            .map(|s| (s.name.to_owned(), s.default.markdown(), s.doc()))
            .collect();
        let (declared_names, documented_names) = (names(&declared), names(&documented));
        let undocumented: Vec<_> = declared_names.difference(&documented_names).collect();
        let unknown: Vec<_> = documented_names.difference(&declared_names).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "README ## Settings vs the settings! declaration: not documented {undocumented:?}, \
             documented but not declared {unknown:?} (UPDATE_README_SETTINGS=1 rewrites the table)"
        );
        for (name, default, meaning) in &declared {
            let (_, readme_default, readme_meaning) =
                documented.iter().find(|r| &r.0 == name).unwrap();
            assert_eq!(readme_default, default, "{name}: the README's default");
            assert_eq!(readme_meaning, meaning, "{name}: the README's meaning");
        }
        assert_eq!(
            names_in_order(&documented),
            names_in_order(&declared),
            "the README lists the settings in another order than the declaration"
        );
        assert!(SETTINGS.len() >= 60, "{}", SETTINGS.len());
    }

    fn names_in_order(rows: &[(String, String, String)]) -> Vec<&str> {
        rows.iter().map(|r| r.0.as_str()).collect()
    }

    #[test]
    fn settings_are_declared_once() {
        let mut seen = std::collections::BTreeSet::new();
        for s in SETTINGS {
            assert!(seen.insert(s.name), "{} is declared twice", s.name);
            assert!(!s.doc().is_empty(), "{} has no doc", s.name);
        }
        // A group's settings are declared together: `--help` lists each group once.
        let mut groups: Vec<&str> = SETTINGS.iter().map(|s| s.group).collect();
        groups.dedup();
        let distinct: std::collections::BTreeSet<_> = groups.iter().collect();
        assert_eq!(groups.len(), distinct.len(), "{groups:?}");
    }

    #[test]
    fn help_lists_every_setting_with_its_default_and_meaning() {
        let help = help_text();
        let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
        for s in SETTINGS {
            let default = format!("{} [default: {}] ", s.name, s.default.plain());
            assert!(flat.contains(&default), "{default} in {help}");
            assert!(
                flat.contains(&plain(&s.doc())),
                "{}'s meaning in {help}",
                s.name
            );
        }
        assert!(help.contains("\nRate limits:\n"), "{help}");
        assert!(
            help.contains("\n  ACCESS_TOKEN_TTL_MINUTES  [default: 15]\n"),
            "{help}"
        );
        assert!(
            help.lines().all(|l| l.chars().count() <= HELP_WIDTH),
            "{help}"
        );
        assert!(!help.contains('`'), "{help}");
        assert!(flat.contains("(see Running at scale)"), "{help}");
    }

    #[test]
    fn markdown_becomes_plain_text() {
        assert_eq!(
            plain("see [the guide](#guide), `x` [y"),
            "see the guide, x [y"
        );
    }

    #[test]
    fn defaults_alone_are_a_valid_configuration() {
        let dir = std::env::temp_dir().join(format!("mbpanel-config-{}", std::process::id()));
        let cfg = Config::from_env(&env(&[("DATA_DIR", dir.to_str().unwrap())])).unwrap();
        assert_eq!(cfg.auth.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(cfg.auth.refresh_token_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(cfg.http.max_connections, 1024);
        assert_eq!(cfg.retention.batch_size, 1000);
        assert!(cfg.auth.new_device_alerts);
        assert!(cfg.jwt_secret_generated);
        assert!(matches!(
            cfg.ephemeral,
            EphemeralBackend::Memory {
                max_keys: 1_000_000
            }
        ));
        assert_eq!(cfg.bind_addr, SocketAddr::from(([127, 0, 0, 1], 8000)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typed_values_are_checked_naming_the_variable() {
        let key = "k".repeat(40);
        for (var, value, says) in [
            ("ACCESS_TOKEN_TTL_MINUTES", "0", "must be greater than 0"),
            ("ACCESS_TOKEN_TTL_MINUTES", "soon", "cannot parse \"soon\""),
            ("NEW_DEVICE_ALERTS", "maybe", "expected true or false"),
            ("LOG_FORMAT", "xml", "must be text or json"),
            ("EMAIL_BACKEND", "pigeon", "must be log, smtp or postmark"),
            ("BIND_ADDR", "here", "cannot parse"),
        ] {
            let e = Config::from_env(&env(&[("JWT_SECRET_KEY", &key), (var, value)])).unwrap_err();
            assert_eq!(e.var, var);
            assert!(e.to_string().contains(says), "{var}={value}: {e}");
        }
        // Blank is unset; values are trimmed.
        let cfg = Config::from_env(&env(&[
            ("JWT_SECRET_KEY", &key),
            ("ACCESS_TOKEN_TTL_MINUTES", " 5 "),
            ("LOG_FORMAT", "  "),
            ("NEW_DEVICE_ALERTS", "Off"),
        ]))
        .unwrap();
        assert_eq!(cfg.auth.access_token_ttl, Duration::from_secs(300));
        assert_eq!(cfg.log_format, LogFormat::Text);
        assert!(!cfg.auth.new_device_alerts);
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
