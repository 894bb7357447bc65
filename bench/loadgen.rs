//! Load benchmark of the session core, as a ratio to an axum hello-world run beside it.
//!
//! Starts two processes on loopback — `hello` (axum hello-world, `bench/hello.rs`) and the real
//! `mbpanel-auth serve` — signs in one user per connection through the real flow (register,
//! emailed link, password, emailed code, session exchange; emails go to an SMTP sink inside
//! this program), then drives each phase with a fixed number of keep-alive connections for a
//! fixed time: `GET /json` on hello, `GET /auth/me` (bearer) and `POST /auth/refresh` (cookies
//! and CSRF header, each connection rotating its own session) on the service.
//!
//! For every phase it reports requests/s, the ratio to hello, p50/p99 latency, the server's CPU
//! per request (from /proc), and the work per request: SQL calls (the server's own
//! `sql_calls_total` counter, and in production PostgreSQL's committed transactions) and Redis
//! round trips (the server's `redis_round_trips_total`, and Redis `INFO commandstats`).
//!
//!     cargo build --release --bin mbpanel-auth --example hello --example loadgen
//!     target/release/examples/loadgen embedded [seconds] [connections]
//!     DATABASE_URL=postgres://…/empty_db REDIS_URL=redis://… \
//!       target/release/examples/loadgen production [seconds] [connections]
//!
//! `bench/run.sh` does both. The load generator shares the machine's cores with the servers:
//! compare ratios, not absolute numbers, across machines and runs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const JWT_SECRET: &str = "benchmark-secret-key-that-is-at-least-32-bytes";

mod common;
use common::{after, smtp_sink, wait_for_mail};

// ---------------------------------------------------------------------------------------------
// The processes under test.
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// User + system CPU time the process has used.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the parenthesised command name: utime is the 12th, stime the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<u64>().ok()))
            .sum();
        Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second())
    }

    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let examples = exe.parent().expect("examples dir");
    [
        examples.join(name),
        examples.parent().expect("profile dir").join(name),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| {
        panic!("{name} not built: cargo build --release --bin mbpanel-auth --example hello")
    })
}

async fn wait_until_up(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok()
            || http.get(format!("{base}/json")).send().await.is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base} did not start");
}

// ---------------------------------------------------------------------------------------------
// Signed-in users.
// ---------------------------------------------------------------------------------------------

struct Session {
    access: String,
    cookies: HashMap<String, String>,
}

impl Session {
    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, response: &reqwest::Response) {
        let cookies: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        self.absorb_set_cookies(&cookies);
    }

    fn absorb_set_cookies(&mut self, cookies: &[String]) {
        for value in cookies {
            let pair = value.split(';').next().unwrap_or_default();
            if let Some((name, v)) = pair.split_once('=') {
                if name == "mbpanel_access" {
                    self.access = v.to_owned();
                }
                self.cookies.insert(name.to_owned(), v.to_owned());
            }
        }
    }
}

async fn sign_up_and_in(base: &str, mail: &Mutex<Vec<String>>, n: usize) -> Session {
    // Each user signs up from its own address (through the trusted-proxy header), so the
    // per-address limits on sign-ups and logins do not throttle the set-up.
    let client_ip = format!("198.18.{}.{}", n / 250, n % 250 + 1);
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("x-forwarded-for", &client_ip)
            .json(&body)
    };
    let email = format!("bench{n}-{}@example.com", std::process::id());
    let password = "benchmark password 123";
    post(
        "/api/v1/auth/register",
        json!({ "email": email, "password": password, "name": "Bench" }),
    )
    .send()
    .await
    .expect("register");
    let token = after(
        &wait_for_mail(mail, &email, "verify-email").await,
        "token=",
        None,
    )
    .to_owned();
    let r = post("/api/v1/auth/verify-email", json!({ "token": token }))
        .send()
        .await
        .expect("verify");
    let status = r.status();
    assert_eq!(
        status,
        200,
        "verify email: {}",
        r.text().await.unwrap_or_default()
    );
    let login: Value = post(
        "/api/v1/auth/login",
        json!({ "email": email, "password": password }),
    )
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
    post(
        "/api/v1/auth/otp/verify",
        json!({ "preauth_token": preauth, "code": code }),
    )
    .send()
    .await
    .expect("otp");
    let r = post(
        "/api/v1/auth/session-exchange",
        json!({ "preauth_token": preauth }),
    )
    .send()
    .await
    .expect("exchange");
    assert_eq!(r.status(), 200, "session exchange");
    let mut session = Session {
        access: String::new(),
        cookies: HashMap::new(),
    };
    session.absorb(&r);
    session
}

// ---------------------------------------------------------------------------------------------
// Counters of work done.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Default)]
struct Work {
    cpu: Duration,
    sql_calls: f64,
    redis_round_trips: f64,
    pg_transactions: f64,
    redis_commands: f64,
}

struct Probes {
    metrics_url: String,
    pg: Option<sqlx::PgPool>,
    redis: Option<redis::aio::MultiplexedConnection>,
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

impl Probes {
    async fn read(&mut self, server: &Server) -> Work {
        // PostgreSQL publishes a backend's counters when it goes idle, at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let text = reqwest::get(&self.metrics_url)
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        let mut work = Work {
            cpu: server.cpu(),
            sql_calls: metric(&text, "sql_calls_total"),
            redis_round_trips: metric(&text, "redis_round_trips_total"),
            ..Work::default()
        };
        if let Some(pg) = &self.pg {
            let _ = sqlx::query("SELECT pg_stat_clear_snapshot()")
                .execute(pg)
                .await;
            let (n,): (i64,) = sqlx::query_as(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
            )
            .fetch_one(pg)
            .await
            .expect("pg_stat_database");
            work.pg_transactions = n as f64;
        }
        if let Some(redis) = &mut self.redis {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .query_async(redis)
                .await
                .expect("INFO");
            work.redis_commands = info
                .lines()
                .filter(|l| l.starts_with("cmdstat_") && !l.starts_with("cmdstat_info"))
                .filter_map(|l| {
                    l.split([':', ','])
                        .find_map(|kv| kv.strip_prefix("calls="))
                        .and_then(|v| v.parse::<f64>().ok())
                })
                .sum();
        }
        work
    }
}

// ---------------------------------------------------------------------------------------------
// Phases.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Call {
    Hello,
    Me,
    Refresh,
}

struct Outcome {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u32>,
}

/// One keep-alive HTTP/1.1 connection driven by hyper's low-level client: cheap per request,
/// so the load generator takes as little of the shared CPU as it can.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    host: String,
}

impl Connection {
    async fn open(base: &str) -> Connection {
        let host = base.trim_start_matches("http://").to_owned();
        let stream = tokio::net::TcpStream::connect(&host)
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        Connection { sender, host }
    }

    /// Sends one request; its status and Set-Cookie headers (the body is read and dropped).
    async fn send(
        &mut self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<(u16, Vec<String>)> {
        use http_body_util::BodyExt;
        self.sender.ready().await.ok()?;
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .sender
            .send_request(request.body(http_body_util::Empty::new()).ok()?)
            .await
            .ok()?;
        let status = response.status().as_u16();
        let cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        response.into_body().collect().await.ok()?;
        Some((status, cookies))
    }
}

async fn drive(
    base: &str,
    call: Call,
    sessions: Vec<Session>,
    run_for: Duration,
) -> (Outcome, Vec<Session>) {
    let deadline = Instant::now() + run_for;
    let started = Instant::now();
    let mut workers = Vec::new();
    for mut session in sessions {
        let base = base.to_owned();
        workers.push(tokio::spawn(async move {
            let mut conn = Connection::open(&base).await;
            let mut latencies = Vec::new();
            let mut errors = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = match call {
                    Call::Hello => conn
                        .send(hyper::Method::GET, "/json", &[])
                        .await
                        .is_some_and(|(status, _)| status == 200),
                    Call::Me => {
                        let bearer = format!("Bearer {}", session.access);
                        conn.send(
                            hyper::Method::GET,
                            "/api/v1/auth/me",
                            &[("authorization", &bearer)],
                        )
                        .await
                        .is_some_and(|(status, _)| status == 200)
                    }
                    Call::Refresh => {
                        let csrf = session
                            .cookies
                            .get("mbpanel_csrf")
                            .cloned()
                            .unwrap_or_default();
                        let cookie = session.cookie_header();
                        match conn
                            .send(
                                hyper::Method::POST,
                                "/api/v1/auth/refresh",
                                &[("cookie", &cookie), ("x-csrf-token", &csrf)],
                            )
                            .await
                        {
                            Some((status, cookies)) => {
                                session.absorb_set_cookies(&cookies);
                                status == 200
                            }
                            None => false,
                        }
                    }
                };
                latencies.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if !ok {
                    errors += 1;
                    // A broken connection is replaced.
                    conn = Connection::open(&base).await;
                }
            }
            (latencies, errors, session)
        }));
    }
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    let mut back = Vec::new();
    for w in workers {
        let (latencies, errors, session) = w.await.expect("worker");
        outcome.requests += latencies.len();
        outcome.errors += errors;
        outcome.latencies_us.extend(latencies);
        back.push(session);
    }
    outcome.elapsed = started.elapsed();
    outcome.latencies_us.sort_unstable();
    (outcome, back)
}

fn percentile_ms(sorted_us: &[u32], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted_us[i]) / 1000.0
}

struct Row {
    name: String,
    rate: f64,
    p50: f64,
    p99: f64,
    errors: usize,
    cpu_us: f64,
    per_request: [f64; 4],
}

fn row(name: &str, o: &Outcome, before: Work, after: Work) -> Row {
    let n = o.requests.max(1) as f64;
    Row {
        name: name.to_owned(),
        rate: o.requests as f64 / o.elapsed.as_secs_f64(),
        p50: percentile_ms(&o.latencies_us, 0.50),
        p99: percentile_ms(&o.latencies_us, 0.99),
        errors: o.errors,
        cpu_us: (after.cpu - before.cpu).as_secs_f64() * 1e6 / n,
        per_request: [
            (after.sql_calls - before.sql_calls) / n,
            (after.pg_transactions - before.pg_transactions) / n,
            (after.redis_round_trips - before.redis_round_trips) / n,
            (after.redis_commands - before.redis_commands) / n,
        ],
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("embedded", String::as_str).to_owned();
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let connections: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let run_for = Duration::from_secs(seconds);
    let warm_up = Duration::from_secs(2);

    let hello_addr = format!("127.0.0.1:{}", free_port());
    let hello = Server {
        child: Command::new(sibling("hello"))
            .arg(&hello_addr)
            .stdout(Stdio::null())
            .spawn()?,
        base: format!("http://{hello_addr}"),
    };

    let mail = Arc::new(Mutex::new(Vec::new()));
    let smtp_port = smtp_sink(Arc::clone(&mail)).await;
    let port = free_port();
    let data_dir = std::env::temp_dir().join(format!("mbpanel-bench-{}", std::process::id()));
    let mut command = Command::new(sibling("mbpanel-auth"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("BASE_URL", format!("http://127.0.0.1:{port}"))
        .env("DATA_DIR", &data_dir)
        .env("JWT_SECRET_KEY", JWT_SECRET)
        .env("EMAIL_BACKEND", "smtp")
        .env("SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}"))
        .env("TRUSTED_PROXIES", "127.0.0.1/32")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null());
    let mut probes = Probes {
        metrics_url: format!("http://127.0.0.1:{port}/metrics"),
        pg: None,
        redis: None,
    };
    if mode == "production" {
        let database_url = std::env::var("DATABASE_URL").expect("DATABASE_URL (an empty database)");
        let redis_url = std::env::var("REDIS_URL").expect("REDIS_URL");
        command
            .env("DATABASE_URL", &database_url)
            .env("REDIS_URL", &redis_url)
            .env("REDIS_KEY_PREFIX", format!("bench{}:", std::process::id()));
        probes.pg = Some(sqlx::PgPool::connect(&database_url).await?);
        probes.redis = Some(
            redis::Client::open(redis_url.as_str())?
                .get_multiplexed_async_connection()
                .await?,
        );
    }
    let server = Server {
        child: command.spawn()?,
        base: format!("http://127.0.0.1:{port}"),
    };
    wait_until_up(&hello.base).await;
    wait_until_up(&server.base).await;

    eprintln!("signing in {connections} users…");
    let mut sessions = Vec::new();
    for batch in (0..connections).collect::<Vec<_>>().chunks(8) {
        let signed = futures::future::join_all(
            batch
                .iter()
                .map(|n| sign_up_and_in(&server.base, &mail, *n)),
        )
        .await;
        sessions.extend(signed);
    }

    let mut rows = Vec::new();
    let hello_placeholders = || {
        (0..connections)
            .map(|_| Session {
                access: String::new(),
                cookies: HashMap::new(),
            })
            .collect::<Vec<_>>()
    };
    // hello
    drive(&hello.base, Call::Hello, hello_placeholders(), warm_up).await;
    let before = Work {
        cpu: hello.cpu(),
        ..Work::default()
    };
    let (outcome, _) = drive(&hello.base, Call::Hello, hello_placeholders(), run_for).await;
    let after = Work {
        cpu: hello.cpu(),
        ..Work::default()
    };
    rows.push(row("hello `GET /json`", &outcome, before, after));
    let hello_rate = rows[0].rate;

    for (name, call) in [
        ("`GET /auth/me`", Call::Me),
        ("`POST /auth/refresh`", Call::Refresh),
    ] {
        let (_, warmed) = drive(&server.base, call, sessions, warm_up).await;
        let before = probes.read(&server).await;
        let (outcome, back) = drive(&server.base, call, warmed, run_for).await;
        let after = probes.read(&server).await;
        sessions = back;
        rows.push(row(name, &outcome, before, after));
    }

    println!(
        "\n{mode} mode, {connections} connections, {seconds} s per phase (after {} s warm-up), {} cores\n",
        warm_up.as_secs(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| call | req/s | × hello | p50 ms | p99 ms | errors | server CPU µs/req | SQL calls/req | PG xacts/req | Redis RTs/req | Redis cmds/req |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let [sql, pg, rrt, rcmd] = r.per_request;
        let production = mode == "production";
        let opt = |v: f64, shown: bool| {
            if shown {
                format!("{v:.2}")
            } else {
                "–".to_owned()
            }
        };
        let is_hello = r.name.starts_with("hello");
        println!(
            "| {} | {:.0} | {:.3} | {:.2} | {:.2} | {} | {:.1} | {} | {} | {} | {} |",
            r.name,
            r.rate,
            r.rate / hello_rate,
            r.p50,
            r.p99,
            r.errors,
            r.cpu_us,
            opt(sql, !is_hello),
            opt(pg, production && !is_hello),
            opt(rrt, production && !is_hello),
            opt(rcmd, production && !is_hello),
        );
    }
    println!("\nserver peak RSS: {:.0} MiB", server.rss_mib());
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
