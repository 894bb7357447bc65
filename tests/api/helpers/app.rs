//! Spawning the application for one test, in either mode.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mbpanel_auth::app::Application;
use mbpanel_auth::config::{Config, Env};
use mbpanel_auth::service::clock::ManualClock;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use super::smtp::{self, SmtpSink};

pub const JWT_SECRET: &str = "test-secret-key-that-is-at-least-32-bytes-long";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Embedded,
    Production,
}

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The Redis deployment production-mode tests run against, from `TEST_REDIS_SHAPE` (set by
/// `scripts/test.sh` from `scripts/redis-shape.sh`): standalone (the default), TLS, Sentinel or
/// Cluster.
#[derive(Clone, Debug)]
pub enum TestRedis {
    Url {
        url: String,
        ca_cert: Option<String>,
    },
    Sentinel {
        sentinels: String,
        master: String,
    },
    Cluster {
        nodes: String,
    },
}

impl TestRedis {
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// From the `TEST_REDIS_*` variables as `scripts/redis-shape.sh` prints them.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| var(name).unwrap_or_default();
        match get("TEST_REDIS_SHAPE").as_str() {
            "sentinel" => TestRedis::Sentinel {
                sentinels: get("TEST_REDIS_SENTINELS"),
                master: get("TEST_REDIS_SENTINEL_MASTER"),
            },
            "cluster" => TestRedis::Cluster {
                nodes: get("TEST_REDIS_CLUSTER_NODES"),
            },
            _ => TestRedis::Url {
                url: var("TEST_REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                ca_cert: var("TEST_REDIS_CA_CERT"),
            },
        }
    }

    pub fn standalone(url: String) -> Self {
        TestRedis::Url { url, ca_cert: None }
    }

    /// The application's settings for it.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        match self {
            TestRedis::Url { url, ca_cert } => {
                let mut s = vec![("REDIS_URL", url.clone())];
                if let Some(ca) = ca_cert {
                    s.push(("REDIS_CA_CERT", ca.clone()));
                }
                s
            }
            TestRedis::Sentinel { sentinels, master } => vec![
                ("REDIS_SENTINELS", sentinels.clone()),
                ("REDIS_SENTINEL_MASTER", master.clone()),
            ],
            TestRedis::Cluster { nodes } => vec![("REDIS_CLUSTER_NODES", nodes.clone())],
        }
    }

    fn shape(&self) -> (mbpanel_auth::config::RedisShape, Option<std::path::PathBuf>) {
        use mbpanel_auth::config::RedisShape;
        use secrecy::SecretString;
        let list = |l: &str| {
            l.split(',')
                .map(|u| SecretString::from(u.trim().to_owned()))
                .collect::<Vec<_>>()
        };
        match self {
            TestRedis::Url { url, ca_cert } => (
                RedisShape::Standalone {
                    url: SecretString::from(url.clone()),
                },
                ca_cert.as_ref().map(std::path::PathBuf::from),
            ),
            TestRedis::Sentinel { sentinels, master } => (
                RedisShape::Sentinel {
                    sentinels: list(sentinels),
                    master: master.clone(),
                    sentinel_password: None,
                },
                None,
            ),
            TestRedis::Cluster { nodes } => (RedisShape::Cluster { nodes: list(nodes) }, None),
        }
    }

    /// A raw connection for the test itself (in a cluster: routed by key, KEYS and FLUSHALL
    /// on every master).
    pub async fn connection(&self) -> mbpanel_auth::store::ephemeral::redis_shape::Conn {
        let (shape, ca) = self.shape();
        mbpanel_auth::store::ephemeral::redis_shape::RedisConnector::new(
            &shape,
            ca.as_deref(),
            Duration::from_secs(5),
        )
        .unwrap()
        .commands()
        .await
        .unwrap()
    }
}

pub fn unique(prefix: &str) -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).unwrap();
    format!("{prefix}{}", hex::encode(b))
}

/// The storage one test owns: a SQLite directory, or a PostgreSQL database and a Redis prefix.
#[derive(Clone, Debug)]
pub struct Storage {
    pub mode: Mode,
    pub data_dir: std::path::PathBuf,
    pub pg_database: Option<String>,
    pub redis_prefix: String,
    pub redis: TestRedis,
    /// When set, the application reaches PostgreSQL through this local port (a `TcpProxy`).
    pub pg_proxy_port: Option<u16>,
    /// The clock of every instance on this storage: tests move it instead of sleeping.
    pub clock: Arc<ManualClock>,
}

impl Storage {
    pub async fn new(mode: Mode) -> Self {
        let data_dir = std::env::temp_dir().join(unique("mbpanel-test-"));
        let mut storage = Storage {
            mode,
            data_dir,
            pg_database: None,
            redis_prefix: unique("t") + ":",
            redis: TestRedis::from_env(),
            pg_proxy_port: None,
            clock: ManualClock::new(),
        };
        if mode == Mode::Production {
            let name = unique("mbpanel_test_");
            let mut admin = sqlx::PgConnection::connect(&admin_database_url())
                .await
                .expect("PostgreSQL for tests");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap();
            storage.pg_database = Some(name);
        }
        storage
    }

    /// The database as the test itself reaches it (never through the proxy).
    pub fn database_url(&self) -> Option<String> {
        let name = self.pg_database.as_ref()?;
        let mut url = url::Url::parse(&admin_database_url()).unwrap();
        url.set_path(name);
        Some(url.to_string())
    }

    /// The database as the application reaches it.
    pub fn app_database_url(&self) -> Option<String> {
        let mut url = url::Url::parse(&self.database_url()?).unwrap();
        if let Some(port) = self.pg_proxy_port {
            url.set_host(Some("127.0.0.1")).unwrap();
            url.set_port(Some(port)).unwrap();
        }
        Some(url.to_string())
    }

    pub fn postgres_address(&self) -> String {
        let url = url::Url::parse(&admin_database_url()).unwrap();
        format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(5432)
        )
    }

    /// Runs SQL against this test's database (for diagnostics and for ageing rows); every cell
    /// as text (`NULL` for null, `{a,b}` for arrays).
    pub async fn sql_rows(&self, sql: &str) -> Vec<Vec<String>> {
        use sqlx::{Row, ValueRef};
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        macro_rules! cells {
            ($rows:expr, |$r:ident, $i:ident| $extra:expr) => {
                $rows
                    .iter()
                    .map(|$r| {
                        (0..$r.len())
                            .map(|$i| {
                                if $r.try_get_raw($i).map(|v| v.is_null()).unwrap_or(true) {
                                    return "NULL".to_owned();
                                }
                                $r.try_get::<i64, _>($i)
                                    .map(|v| v.to_string())
                                    .or_else(|_| $r.try_get::<i32, _>($i).map(|v| v.to_string()))
                                    .or_else(|_| $r.try_get::<String, _>($i))
                                    .or_else(|_| $extra)
                                    .unwrap_or_else(|_| "?".into())
                            })
                            .collect::<Vec<String>>()
                    })
                    .collect()
            };
        }
        match self.database_url() {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
                cells!(rows, |r, i| r
                    .try_get::<Vec<String>, _>(i)
                    .map(|v| format!("{{{}}}", v.join(","))))
            }
            None => {
                let path = self.data_dir.join("mbpanel.db");
                let mut conn =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
                cells!(rows, |r, i| Err::<String, sqlx::Error>(
                    sqlx::Error::RowNotFound
                ))
            }
        }
    }

    pub async fn sql(&self, sql: &str) {
        let _ = self.sql_rows(sql).await;
    }

    /// A raw Redis connection to this test's key space.
    pub async fn redis(&self) -> mbpanel_auth::store::ephemeral::redis_shape::Conn {
        self.redis.connection().await
    }

    /// Deletes every key of this test's key space (as a `FLUSHALL` would, for this test only).
    pub async fn flush_redis(&self) {
        let mut r = self.redis().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut r)
            .await
            .unwrap();
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(&keys)
                .query_async::<()>(&mut r)
                .await
                .unwrap();
        }
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.data_dir);
        if let Some(name) = self.pg_database.take() {
            // Dropped from a plain thread: the test's runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_database_url()).await
                    {
                        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
                            .execute(&mut admin)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub mail: SmtpSink,
    pub storage: Arc<Storage>,
    /// The settings the application started with (for running the CLI against it).
    pub settings: HashMap<String, String>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub email: String,
    pub password: String,
    pub name: String,
}

impl TestUser {
    pub fn random() -> Self {
        TestUser {
            email: format!("{}@example.com", unique("user")),
            password: "correct horse battery".into(),
            name: "Test User".into(),
        }
    }
}

/// A browser-like client: its own cookie jar.
pub struct Browser {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
}

impl Browser {
    pub fn cookie(&self, path: &str, name: &str) -> Option<String> {
        let url = url::Url::parse(&format!("{}{path}", self.base)).unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    pub fn csrf(&self) -> String {
        self.cookie("/", "mbpanel_csrf").unwrap_or_default()
    }

    pub fn access(&self) -> String {
        self.cookie("/", "mbpanel_access")
            .expect("an access cookie")
    }

    pub fn refresh_token(&self) -> String {
        self.cookie("/api/v1/auth/refresh", "mbpanel_refresh")
            .expect("a refresh cookie")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// POST with the CSRF header taken from the cookie, as the web UI does.
    pub async fn post_csrf(&self, path: &str) -> Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header("X-CSRF-Token", self.csrf())
            .send()
            .await
            .unwrap()
    }

    pub async fn me(&self) -> Response {
        self.get("/api/v1/auth/me").await
    }

    /// Any method, with the CSRF header and an optional JSON body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Response {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("X-CSRF-Token", self.csrf());
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// The team of this browser's session.
    pub async fn team_id(&self) -> i64 {
        expect(self.me().await, StatusCode::OK).await["team"]["id"]
            .as_i64()
            .unwrap()
    }
}

pub async fn body(r: Response) -> Value {
    r.json().await.unwrap_or(Value::Null)
}

pub async fn expect(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let headers = r.headers().clone();
    let b = body(r).await;
    assert_eq!(
        got, status,
        "unexpected status; body {b}, headers {headers:?}"
    );
    b
}

impl TestApp {
    pub async fn spawn(mode: Mode) -> TestApp {
        Self::spawn_with(mode, &[]).await
    }

    pub async fn spawn_with(mode: Mode, overrides: &[(&str, &str)]) -> TestApp {
        let storage = Arc::new(Storage::new(mode).await);
        let (mail, smtp_port) = SmtpSink::start_on(0).await;
        Self::spawn_on(storage, mail, smtp_port, overrides).await
    }

    /// Another instance (or a restart) on existing storage, with an SMTP sink of its own.
    pub async fn instance(storage: &Arc<Storage>, overrides: &[(&str, &str)]) -> TestApp {
        let (mail, smtp_port) = SmtpSink::start_on(0).await;
        Self::spawn_on(Arc::clone(storage), mail, smtp_port, overrides).await
    }

    /// Starts an application on existing storage (a restart, or a second instance).
    pub async fn spawn_on(
        storage: Arc<Storage>,
        mail: SmtpSink,
        smtp_port: u16,
        overrides: &[(&str, &str)],
    ) -> TestApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut settings: HashMap<String, String> = [
            ("BIND_ADDR", format!("127.0.0.1:{port}")),
            ("BASE_URL", format!("http://127.0.0.1:{port}")),
            ("DATA_DIR", storage.data_dir.display().to_string()),
            ("JWT_SECRET_KEY", JWT_SECRET.to_owned()),
            ("EMAIL_BACKEND", "smtp".to_owned()),
            ("SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
            (
                "LOG_LEVEL",
                std::env::var("TEST_LOG_LEVEL").unwrap_or_else(|_| "off".into()),
            ),
            ("PASSWORD_HASH_CONCURRENCY", "2".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if storage.mode == Mode::Production {
            settings.insert("DATABASE_URL".into(), storage.app_database_url().unwrap());
            for (k, v) in storage.redis.settings() {
                settings.insert(k.into(), v);
            }
            settings.insert("REDIS_KEY_PREFIX".into(), storage.redis_prefix.clone());
        }
        // `{port}` in a value is the port this server listens on (e.g. a `localhost` BASE_URL).
        for (k, v) in overrides {
            settings.insert((*k).to_owned(), v.replace("{port}", &port.to_string()));
        }
        if std::env::var("TEST_LOG_LEVEL").is_ok() {
            mbpanel_auth::telemetry::init(
                &settings["LOG_LEVEL"],
                mbpanel_auth::config::LogFormat::Text,
            );
        }
        let config =
            Config::from_env(&Env::from_map(settings.clone())).expect("valid test configuration");
        let app = Application::build_with(config, storage.clock.clone(), Some(listener))
            .await
            .expect("application starts");
        let port = app.port();
        let server = tokio::spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            mail,
            storage,
            settings,
            server,
        }
    }

    pub fn browser(&self) -> Browser {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .timeout(Duration::from_secs(30))
            .user_agent("mbpanel-tests/1.0")
            .build()
            .unwrap();
        Browser {
            http,
            jar,
            base: self.base.clone(),
        }
    }

    /// Lets `by` pass on the server's clock at once: every window our code checks (token and
    /// CSRF expiry, idle timeout, reuse grace, code and link expiry, and in embedded mode every
    /// TTL of the in-process store) sees the time moved.
    pub fn advance(&self, by: Duration) {
        self.storage.clock.advance(by);
    }

    /// Lets `by` pass for a window kept by an ephemeral-store key's TTL. In embedded mode the
    /// in-process store runs on our clock, so it is moved; Redis expires keys by its own clock,
    /// so in production mode the test also waits `by` for real (as short as the window allows).
    pub async fn outlive_ttl(&self, by: Duration) {
        self.advance(by);
        if self.storage.mode == Mode::Production {
            tokio::time::sleep(by).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A refresh with exactly this refresh token and CSRF token (another tab, or a thief).
    pub async fn refresh_with(&self, refresh: &str, csrf: &str) -> Response {
        reqwest::Client::new()
            .post(self.url("/api/v1/auth/refresh"))
            .header(
                "Cookie",
                format!("mbpanel_refresh={refresh}; mbpanel_csrf={csrf}"),
            )
            .header("X-CSRF-Token", csrf)
            .send()
            .await
            .unwrap()
    }

    /// `GET /auth/me` with a bearer token: its status.
    pub async fn bearer_me(&self, token: &str) -> StatusCode {
        reqwest::Client::new()
            .get(self.url("/api/v1/auth/me"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    /// Registers and verifies a user through the API and the emailed link.
    pub async fn verified_user(&self) -> TestUser {
        let user = TestUser::random();
        self.register_and_verify(&user).await;
        user
    }

    pub async fn register_and_verify(&self, user: &TestUser) {
        let b = self.browser();
        let r = b
            .post(
                "/api/v1/auth/register",
                json!({ "email": user.email, "password": user.password, "name": user.name }),
            )
            .await;
        expect(r, StatusCode::ACCEPTED).await;
        let mail = self
            .mail
            .wait_for_containing(&user.email, 0, "Verify your email")
            .await;
        let r = b
            .post(
                "/api/v1/auth/verify-email",
                json!({ "token": smtp::link_token(&mail) }),
            )
            .await;
        expect(r, StatusCode::OK).await;
    }

    /// Password step; returns the login answer.
    pub async fn login(&self, b: &Browser, user: &TestUser) -> Value {
        let r = b
            .post(
                "/api/v1/auth/login",
                json!({ "email": user.email, "password": user.password }),
            )
            .await;
        expect(r, StatusCode::OK).await
    }

    /// Password, then the emailed code when asked; returns the pre-auth token ready to exchange.
    pub async fn login_verified(&self, b: &Browser, user: &TestUser) -> String {
        let before = self.mail.count_to(&user.email);
        let login = self.login(b, user).await;
        let preauth = login["preauth_token"].as_str().unwrap().to_owned();
        if login["otp_required"] == json!(true) {
            let mail = self
                .mail
                .wait_for_containing(&user.email, before, "verification code")
                .await;
            let r = b
                .post(
                    "/api/v1/auth/otp/verify",
                    json!({ "preauth_token": preauth, "code": smtp::otp_code(&mail) }),
                )
                .await;
            expect(r, StatusCode::OK).await;
        }
        preauth
    }

    /// The whole login: returns a browser holding a live session.
    pub async fn signed_in(&self, user: &TestUser) -> Browser {
        let b = self.browser();
        self.sign_in(&b, user).await;
        b
    }

    pub async fn sign_in(&self, b: &Browser, user: &TestUser) -> Value {
        let preauth = self.login_verified(b, user).await;
        let r = b
            .post(
                "/api/v1/auth/session-exchange",
                json!({ "preauth_token": preauth }),
            )
            .await;
        expect(r, StatusCode::OK).await
    }

    /// A new browser's sign-in for a user who is already signed in elsewhere, stopped at the
    /// approval gate: the browser, its pre-auth token and the 423's approval token.
    pub async fn waiting_sign_in(&self, user: &TestUser) -> (Browser, String, String) {
        let b = self.browser();
        let preauth = self.login_verified(&b, user).await;
        let r = b
            .post(
                "/api/v1/auth/session-exchange",
                json!({ "preauth_token": preauth }),
            )
            .await;
        let token = expect(r, StatusCode::LOCKED).await["token"]
            .as_str()
            .expect("the 423 names its approval token")
            .to_owned();
        (b, preauth, token)
    }

    /// A further session for a user who is already signed in on `existing`: the new login
    /// waits (423) until `existing` approves it.
    pub async fn second_session(&self, user: &TestUser, existing: &Browser) -> Browser {
        let (b, preauth, token) = self.waiting_sign_in(user).await;
        let r = existing
            .post_csrf(&format!("/api/v1/auth/concurrent-login/{token}/approve"))
            .await;
        expect(r, StatusCode::OK).await;
        let r = b
            .post(
                "/api/v1/auth/session-exchange",
                json!({ "preauth_token": preauth }),
            )
            .await;
        expect(r, StatusCode::OK).await;
        b
    }

    /// Invites a new user into `team` with the role `role_id`; they register, sign in, accept
    /// and switch their session to the team.
    pub async fn join_team(&self, owner: &Browser, team: i64, role_id: i64) -> (TestUser, Browser) {
        let user = TestUser::random();
        let body = json!({ "email": user.email, "role_id": role_id });
        let r = owner
            .send(
                reqwest::Method::POST,
                &format!("/api/v1/teams/{team}/invites"),
                Some(body),
            )
            .await;
        assert!(expect(r, StatusCode::CREATED).await["id"].is_i64());
        let invite = self
            .mail
            .wait_for_containing(&user.email, 0, "invited to join")
            .await;
        let token = super::smtp::link_token(&invite);
        self.register_and_verify(&user).await;
        let b = self.signed_in(&user).await;
        let r = b
            .send(
                reqwest::Method::POST,
                "/api/v1/invites/accept",
                Some(json!({ "token": token })),
            )
            .await;
        expect(r, StatusCode::OK).await;
        let r = b
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/switch-team",
                Some(json!({ "team_id": team })),
            )
            .await;
        expect(r, StatusCode::OK).await;
        (user, b)
    }
}
