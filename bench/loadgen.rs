//! Load benchmark: starts mbpanel-auth in-process (exactly what `serve` starts), signs in a few
//! users through the real flow, then drives `GET /auth/me`, `POST /auth/refresh` and
//! `POST /auth/login` over loopback HTTP for a fixed time each, and reports throughput,
//! latency percentiles and the process's peak memory.
//!
//!     cargo run --release --example loadgen -- [embedded|production] [seconds] [concurrency]
//!
//! Production mode reads DATABASE_URL (an existing, empty database), REDIS_URL and
//! JWT_SECRET_KEY from the environment. See bench/README.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mbpanel_auth::app::Application;
use mbpanel_auth::config::{Config, Env};
use serde_json::{Value, json};

#[path = "common.rs"]
mod common;
use common::{after, smtp_sink, wait_for_mail};

/// A signed-in user: its HTTP client (cookie jar) and credentials.
struct Session {
    http: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    email: String,
}

impl Session {
    /// The CSRF cookie, sent back in `X-CSRF-Token` as the web UI does.
    fn csrf(&self, base: &reqwest::Url) -> String {
        use reqwest::cookie::CookieStore;
        let header = self
            .jar
            .cookies(base)
            .and_then(|h| h.to_str().ok().map(str::to_owned))
            .unwrap_or_default();
        header
            .split("; ")
            .find_map(|kv| kv.strip_prefix("mbpanel_csrf="))
            .unwrap_or_default()
            .to_owned()
    }
}

async fn sign_up_and_in(base: &str, mail: &Mutex<Vec<String>>, n: usize) -> Session {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let http = reqwest::Client::builder()
        .cookie_provider(Arc::clone(&jar))
        .build()
        .expect("client");
    let email = format!("bench{n}-{}@example.com", std::process::id());
    let password = "benchmark password 123";
    let body = json!({ "email": email, "password": password, "name": "Bench" });
    http.post(format!("{base}/api/v1/auth/register"))
        .json(&body)
        .send()
        .await
        .expect("register");
    let token = after(
        &wait_for_mail(mail, &email, "verify-email").await,
        "token=",
        None,
    )
    .to_owned();
    let r = http
        .post(format!("{base}/api/v1/auth/verify-email"))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    assert_eq!(r.status(), 200, "verify {token}: {:?}", r.text().await);
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login json");
    let preauth = login["preauth_token"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {login}"))
        .to_owned();
    let code = after(
        &wait_for_mail(mail, &email, "verification code").await,
        "verification code: ",
        Some(6),
    )
    .to_owned();
    let body = json!({ "preauth_token": preauth, "code": code });
    http.post(format!("{base}/api/v1/auth/otp/verify"))
        .json(&body)
        .send()
        .await
        .expect("otp");
    let r = http
        .post(format!("{base}/api/v1/auth/session-exchange"))
        .json(&json!({ "preauth_token": preauth }))
        .send()
        .await;
    assert_eq!(r.expect("exchange").status(), 200, "session exchange");
    Session { http, jar, email }
}

#[derive(Default)]
struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
}

/// Runs `call` from every session for `seconds`; each session is one worker.
async fn phase<F, Fut>(name: &str, sessions: &Arc<Vec<Session>>, seconds: u64, call: F) -> String
where
    F: Fn(Arc<Vec<Session>>, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let stats = Arc::new(Mutex::new(Stats::default()));
    let mut workers = Vec::new();
    for i in 0..sessions.len() {
        let (sessions, stats, call) = (Arc::clone(sessions), Arc::clone(&stats), call.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let started = Instant::now();
                let ok = call(Arc::clone(&sessions), i).await;
                let mut s = stats.lock().expect("lock");
                s.latencies.push(started.elapsed());
                if !ok {
                    s.errors += 1;
                }
            }
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let mut s = stats.lock().expect("lock");
    s.latencies.sort();
    let pct = |p: f64| {
        s.latencies
            .get(((s.latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or_default()
    };
    format!(
        "| {name} | {} | {:.0} | {:.2} | {:.2} | {} |",
        s.latencies.len(),
        s.latencies.len() as f64 / seconds as f64,
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0,
        s.errors
    )
}

fn peak_rss_mib() -> f64 {
    rss_mib("VmHWM:")
}

fn rss_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_owned))
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
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);

    let mail = Arc::new(Mutex::new(Vec::new()));
    let smtp_port = smtp_sink(Arc::clone(&mail)).await;
    let data_dir = std::env::temp_dir().join(format!("mbpanel-bench-{}", std::process::id()));
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    env.insert("DATA_DIR".into(), data_dir.display().to_string());
    env.insert("EMAIL_BACKEND".into(), "smtp".into());
    env.insert("SMTP_URL".into(), format!("smtp://127.0.0.1:{smtp_port}"));
    env.insert("LOG_LEVEL".into(), "warn".into());
    env.insert("LOGIN_RATE_LIMIT_IP_ATTEMPTS".into(), "1000000".into());
    env.insert("LOGIN_RATE_LIMIT_IP_VERIFICATIONS".into(), "1000000".into());
    if mode == "production" {
        for var in [
            "DATABASE_URL",
            "REDIS_URL",
            "JWT_SECRET_KEY",
            "REDIS_KEY_PREFIX",
        ] {
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
    let config = Config::from_env(&Env::from_map(env))?;
    let app = Application::build(config).await?;
    let base = format!("http://{}", app.address());
    tokio::spawn(app.run_until_stopped());
    eprintln!("RSS after start: {:.1} MiB", rss_mib("VmRSS:"));

    let mut sessions = Vec::new();
    for n in 0..concurrency {
        sessions.push(sign_up_and_in(&base, &mail, n).await);
    }
    eprintln!(
        "RSS after signing in {concurrency} users: {:.1} MiB",
        rss_mib("VmRSS:")
    );
    let sessions = Arc::new(sessions);
    let url = |path: &str| format!("{base}{path}");
    let me_url = url("/api/v1/auth/me");
    let refresh_url = url("/api/v1/auth/refresh");
    let login_url = url("/api/v1/auth/login");
    let base_url: reqwest::Url = base.parse()?;

    println!("mode {mode}, {concurrency} concurrent clients, {seconds} s per phase\n");
    println!("| call | requests | req/s | p50 ms | p99 ms | errors |");
    println!("|---|---|---|---|---|---|");
    let me = Arc::new(me_url);
    let row = phase("GET /auth/me", &sessions, seconds, move |s, i| {
        let me = Arc::clone(&me);
        async move {
            s[i].http
                .get(me.as_str())
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    println!("{row}");
    eprintln!("  (RSS now {:.1} MiB)", rss_mib("VmRSS:"));

    let refresh = Arc::new((refresh_url, base_url));
    let row = phase("POST /auth/refresh", &sessions, seconds, move |s, i| {
        let refresh = Arc::clone(&refresh);
        async move {
            let csrf = s[i].csrf(&refresh.1);
            let r = s[i]
                .http
                .post(refresh.0.as_str())
                .header("X-CSRF-Token", csrf)
                .send()
                .await;
            r.is_ok_and(|r| r.status() == 200)
        }
    })
    .await;
    println!("{row}");
    eprintln!("  (RSS now {:.1} MiB)", rss_mib("VmRSS:"));

    let login = Arc::new(login_url);
    let row = phase(
        "POST /auth/login (argon2id)",
        &sessions,
        seconds,
        move |s, i| {
            let login = Arc::clone(&login);
            async move {
                let body = json!({ "email": s[i].email, "password": "benchmark password 123" });
                s[i].http
                    .post(login.as_str())
                    .json(&body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        },
    )
    .await;
    println!("{row}");
    eprintln!("  (RSS now {:.1} MiB)", rss_mib("VmRSS:"));
    println!(
        "\npeak RSS of the whole process (server + load generator): {:.1} MiB",
        peak_rss_mib()
    );
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
