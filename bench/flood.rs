//! Flood benchmark: starts mbpanel-auth in-process on loopback, signs a few "victim" users in,
//! then floods each unauthenticated endpoint from one client address (a fresh one per
//! endpoint, so each shows its own limits) for a few seconds while
//! the victims keep logging in from their own addresses. It reports the victims' login latency
//! during each flood against their idle latency, what the flood was answered, the audit rows
//! and (production mode) the Redis keys each flood left behind.
//!
//!     cargo run --release --example flood -- [embedded|production] [seconds] [workers]
//!
//! Bounded: loopback only (the server binds 127.0.0.1:0), `seconds` (default 3, at most 30)
//! per endpoint, `workers` (default 16, at most 64) concurrent flooding requests, and at most
//! 50 000 requests per endpoint. Production mode reads DATABASE_URL (an existing, empty
//! database), REDIS_URL and JWT_SECRET_KEY from the environment, like `loadgen`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbpanel_auth::app::Application;
use mbpanel_auth::config::{Config, Env};
use serde_json::{Value, json};

#[path = "common.rs"]
mod common;
use common::{after, smtp_sink, wait_for_mail};

const VICTIMS: usize = 4;
const PASSWORD: &str = "benchmark password 123";
const MAX_REQUESTS_PER_ENDPOINT: usize = 50_000;

fn random_hex() -> String {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw).expect("randomness");
    hex::encode(raw)
}

/// A client whose requests appear to come from `ip` (the server trusts loopback as a proxy).
fn client_from(ip: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_str(ip).expect("ip header"),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .cookie_store(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// Registers, verifies and signs in once (so the device is trusted and later logins need no
/// code); returns the email.
async fn victim(base: &str, mail: &Mutex<Vec<String>>, http: &reqwest::Client, n: usize) -> String {
    let email = format!("victim{n}-{}@example.com", random_hex());
    let body = json!({ "email": email, "password": PASSWORD, "name": "Victim" });
    http.post(format!("{base}/api/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .expect("register");
    let link = wait_for_mail(mail, &email, "verify-email").await;
    let token = after(&link, "token=", None).to_owned();
    http.post(format!("{base}/api/v1/auth/verify-email"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let preauth = login["preauth_token"].as_str().expect("preauth").to_owned();
    let code_mail = wait_for_mail(mail, &email, "verification code").await;
    let code = after(&code_mail, "verification code: ", Some(6)).to_owned();
    http.post(format!("{base}/api/v1/auth/otp/verify"))
        .json(&json!({ "preauth_token": preauth, "code": code }))
        .send()
        .await
        .expect("otp");
    let r = http
        .post(format!("{base}/api/v1/auth/session-exchange"))
        .json(&json!({ "preauth_token": preauth }))
        .send()
        .await
        .expect("exchange");
    assert_eq!(r.status(), 200, "victim session exchange");
    email
}

/// Victims log in (password step, trusted device) one after another for `seconds`, each from
/// a fresh address per phase so their own per-client budgets stay out of the picture.
async fn victim_logins(
    base: &str,
    victims: &[String],
    jars: &[Arc<reqwest::cookie::Jar>],
    phase: usize,
    seconds: u64,
) -> Vec<Duration> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, email) in victims.iter().enumerate() {
        let ip = format!(
            "203.0.{}.{}",
            113 + phase / 60,
            (phase % 60) * VICTIMS + i + 1
        );
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            reqwest::header::HeaderValue::from_str(&ip).expect("ip header"),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_provider(Arc::clone(&jars[i]))
            .build()
            .expect("client");
        let (url, email) = (format!("{base}/api/v1/auth/login"), email.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let r = http
                    .post(&url)
                    .json(&json!({ "email": email, "password": PASSWORD }))
                    .send()
                    .await;
                let ok = r.is_ok_and(|r| r.status() == 200);
                // A refused victim login counts as the slowest possible answer.
                latencies.push(if ok {
                    started.elapsed()
                } else {
                    Duration::from_secs(60)
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("victim"));
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// One flooded endpoint: a path and a fresh body per request.
struct Target {
    name: &'static str,
    path: &'static str,
    body: fn(&str) -> Value,
}

fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "login, wrong password",
            path: "/api/v1/auth/login",
            body: |_| json!({ "email": format!("{}@example.com", random_hex()), "password": "wrong password!" }),
        },
        Target {
            name: "login, right password, unverified account",
            path: "/api/v1/auth/login",
            body: |own| json!({ "email": own, "password": PASSWORD }),
        },
        Target {
            name: "register",
            path: "/api/v1/auth/register",
            body: |_| json!({ "email": format!("{}@example.com", random_hex()), "password": PASSWORD, "name": "Flood" }),
        },
        Target {
            name: "verify-email/resend",
            path: "/api/v1/auth/verify-email/resend",
            body: |_| json!({ "email": format!("{}@example.com", random_hex()) }),
        },
        Target {
            name: "password-reset/request",
            path: "/api/v1/auth/password-reset/request",
            body: |_| json!({ "email": format!("{}@example.com", random_hex()) }),
        },
        Target {
            name: "password-reset/confirm",
            path: "/api/v1/auth/password-reset/confirm",
            body: |_| json!({ "token": random_hex(), "password": PASSWORD }),
        },
        Target {
            name: "verify-email",
            path: "/api/v1/auth/verify-email",
            body: |_| json!({ "token": random_hex() }),
        },
        Target {
            name: "otp/verify",
            path: "/api/v1/auth/otp/verify",
            body: |_| json!({ "preauth_token": random_hex(), "code": "123456" }),
        },
        Target {
            name: "session-exchange",
            path: "/api/v1/auth/session-exchange",
            body: |_| json!({ "preauth_token": random_hex() }),
        },
        Target {
            name: "concurrent-login/email-decision",
            path: "/api/v1/auth/concurrent-login/email-decision",
            body: |_| json!({ "token": random_hex(), "action": "approve" }),
        },
    ]
}

/// What a flood was answered: 2xx, 4xx other than 429, 429, 5xx.
#[derive(Default)]
struct Answers {
    ok: AtomicUsize,
    client_error: AtomicUsize,
    limited: AtomicUsize,
    server_error: AtomicUsize,
}

async fn flood(
    base: &str,
    target: &Target,
    own: &str,
    from: &str,
    seconds: u64,
    workers: usize,
) -> Answers {
    let answers = Arc::new(Answers::default());
    let sent = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let http = client_from(from);
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (http, answers, sent) = (http.clone(), Arc::clone(&answers), Arc::clone(&sent));
        let (url, body, own) = (
            format!("{base}{}", target.path),
            target.body,
            own.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline
                && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS_PER_ENDPOINT
            {
                let status = http
                    .post(&url)
                    .json(&body(&own))
                    .send()
                    .await
                    .map(|r| r.status());
                let counter = match status {
                    Ok(s) if s.is_success() => &answers.ok,
                    Ok(s) if s.as_u16() == 429 => &answers.limited,
                    Ok(s) if s.is_client_error() => &answers.client_error,
                    _ => &answers.server_error,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.expect("flood worker");
    }
    Arc::try_unwrap(answers).unwrap_or_default()
}

enum Sql {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Sql {
    /// Audit rows written for requests from `ip`.
    async fn audit_rows(&self, ip: &str) -> i64 {
        const SQL: &str = "SELECT COUNT(*) FROM audit_log WHERE ip_address = $1";
        let row: (i64,) = match self {
            Sql::Sqlite(p) => sqlx::query_as(SQL).bind(ip).fetch_one(p).await,
            Sql::Postgres(p) => sqlx::query_as(SQL).bind(ip).fetch_one(p).await,
        }
        .expect("count audit rows");
        row.0
    }
}

async fn redis_keys(url: &str, prefix: &str) -> Option<usize> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let mut cursor: u64 = 0;
    let mut total = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .ok()?;
        // The victims' own pending logins are not the flood's.
        let preauth = format!("{prefix}preauth:");
        total += keys.iter().filter(|k| !k.starts_with(&preauth)).count();
        cursor = next;
        if cursor == 0 {
            return Some(total);
        }
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("embedded", String::as_str).to_owned();
    let seconds: u64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 30);
    let workers: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(16)
        .clamp(1, 64);

    let mail = Arc::new(Mutex::new(Vec::new()));
    let smtp_port = smtp_sink(Arc::clone(&mail)).await;
    let data_dir = std::env::temp_dir().join(format!("mbpanel-flood-{}", std::process::id()));
    let prefix = format!("flood-{}:", random_hex());
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    env.insert("DATA_DIR".into(), data_dir.display().to_string());
    env.insert("EMAIL_BACKEND".into(), "smtp".into());
    env.insert("SMTP_URL".into(), format!("smtp://127.0.0.1:{smtp_port}"));
    env.insert("LOG_LEVEL".into(), "error".into());
    // Loopback is the "proxy", so the benchmark can play several client addresses.
    env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    env.insert("REDIS_KEY_PREFIX".into(), prefix.clone());
    if mode == "production" {
        for var in ["DATABASE_URL", "REDIS_URL", "JWT_SECRET_KEY"] {
            if let Ok(v) = std::env::var(var) {
                env.insert(var.into(), v);
            }
        }
    } else {
        env.insert(
            "JWT_SECRET_KEY".into(),
            "benchmark-key-that-is-at-least-32-bytes".into(),
        );
    }
    let config = Config::from_env(&Env::from_map(env.clone()))?;
    let app = Application::build(config).await?;
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped());
    let sql = match env.get("DATABASE_URL") {
        Some(url) => Sql::Postgres(sqlx::PgPool::connect(url).await?),
        None => Sql::Sqlite(
            sqlx::SqlitePool::connect(&format!("sqlite:{}", data_dir.join("mbpanel.db").display()))
                .await?,
        ),
    };
    let redis_url = env.get("REDIS_URL").cloned();

    // Victims, each with its own cookie jar (the trusted-device cookie), from its own address.
    let mut victims = Vec::new();
    let mut jars = Vec::new();
    for n in 0..VICTIMS {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(Arc::clone(&jar))
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                let ip = format!("192.0.2.{}", n + 1);
                h.insert(
                    "x-forwarded-for",
                    reqwest::header::HeaderValue::from_str(&ip)?,
                );
                h
            })
            .build()?;
        let email = victim(&base, &mail, &http, n).await;
        victims.push(email);
        jars.push(jar);
    }
    // The flooder's own unverified account (for the right-password flood).
    let own = format!("flooder-{}@example.com", random_hex());
    client_from("192.0.2.200")
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({ "email": own, "password": PASSWORD, "name": "Flooder" }))
        .send()
        .await?;

    let idle = victim_logins(&base, &victims, &jars, 0, seconds).await;
    let (idle_p50, idle_p99) = (pct(&idle, 0.5), pct(&idle, 0.99));
    println!(
        "mode {mode}: {workers} flooding workers from one address, {seconds} s per endpoint, \
         {VICTIMS} victims logging in meanwhile\n"
    );
    println!("victims' idle login: p50 {idle_p50:.1} ms, p99 {idle_p99:.1} ms\n");
    println!(
        "| flooded endpoint | requests | 2xx | 4xx | 429 | 5xx | victims' p50 ms | victims' p99 ms | p99 / idle p99 | audit rows from the flooder | redis keys after (without victims' preauth:*) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, target) in targets().iter().enumerate() {
        let from = format!("198.51.100.{}", i + 1);
        let (answers, during) = tokio::join!(
            flood(&base, target, &own, &from, seconds, workers),
            victim_logins(&base, &victims, &jars, i + 1, seconds)
        );
        // Written asynchronously by some flows (the emailed-link work): let it land.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let audit_rows = sql.audit_rows(&from).await;
        let keys = match &redis_url {
            Some(url) => redis_keys(url, &prefix)
                .await
                .map_or("?".to_owned(), |n| n.to_string()),
            None => format!("n/a (RSS {:.0} MiB)", rss_mib()),
        };
        let total = answers.ok.load(Ordering::Relaxed)
            + answers.client_error.load(Ordering::Relaxed)
            + answers.limited.load(Ordering::Relaxed)
            + answers.server_error.load(Ordering::Relaxed);
        let p99 = pct(&during, 0.99);
        println!(
            "| {} | {total} | {} | {} | {} | {} | {:.1} | {p99:.1} | {:.2} | {} | {keys} |",
            target.name,
            answers.ok.load(Ordering::Relaxed),
            answers.client_error.load(Ordering::Relaxed),
            answers.limited.load(Ordering::Relaxed),
            answers.server_error.load(Ordering::Relaxed),
            pct(&during, 0.5),
            p99 / idle_p99.max(0.001),
            audit_rows,
        );
    }
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
