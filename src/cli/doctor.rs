//! `mbpanel-auth doctor`: the troubleshooting guide's diagnostics as checks, each with a
//! pass/fail line and the guide's quick fix.

use std::time::{Duration, Instant};

use secrecy::ExposeSecret;

use crate::app::Services;
use crate::config::{Config, EmailBackend, EphemeralBackend, SqlBackend};
use crate::store::sql::migrations;

/// Indexes the hot paths rely on (named ones; unique constraints are checked by the schema).
const EXPECTED_INDEXES: [&str; 8] = [
    "active_sessions_user_live",
    "active_sessions_revoked",
    "team_members_team",
    "email_outbox_due",
    "audit_log_team",
    "audit_log_user",
    "roles_builtin_name",
    "email_verification_tokens_user",
];

struct Report {
    failures: usize,
}

impl Report {
    fn pass(&mut self, name: &str, detail: impl AsRef<str>) {
        println!("PASS  {name:<22} {}", detail.as_ref());
    }

    fn fail(&mut self, name: &str, detail: impl AsRef<str>, fix: &str) {
        self.failures += 1;
        println!("FAIL  {name:<22} {}", detail.as_ref());
        println!("      {:<22} quick fix: {fix}", "");
    }
}

async fn tcp_reachable(url: &url::Url, timeout: Duration) -> Result<Duration, String> {
    let host = url.host_str().ok_or("no host")?.to_owned();
    let port = url.port_or_known_default().ok_or("no port")?;
    let started = Instant::now();
    match tokio::time::timeout(
        timeout,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// Runs every check; true when all passed.
pub async fn run(config: &Config) -> anyhow::Result<bool> {
    let mut r = Report { failures: 0 };
    let mode = if config.is_production() {
        "production (PostgreSQL + Redis)"
    } else {
        "embedded (SQLite + in-process store)"
    };
    let plain_http_public = config.auth.base_url.scheme() == "http"
        && !matches!(
            config.auth.base_url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]")
        );
    if plain_http_public && !config.cookie_secure {
        r.fail(
            "configuration",
            format!(
                "{mode}; BASE_URL {} is plain http: cookies travel unprotected",
                config.auth.base_url
            ),
            "Set BASE_URL to the https URL users open",
        );
    } else {
        r.pass(
            "configuration",
            format!(
                "{mode}; BASE_URL {}; Secure cookies {}",
                config.auth.base_url, config.cookie_secure
            ),
        );
    }

    let services = match Services::connect_without_migrating(config).await {
        Ok(s) => {
            r.pass("database", "reachable");
            s
        }
        Err(e) => {
            r.fail(
                "database",
                format!("{e:#}"),
                "Check DATABASE_URL (correct database?) and that PostgreSQL is running",
            );
            println!("\n{} check(s) failed", r.failures);
            return Ok(false);
        }
    };
    let expected: Vec<i64> = match config.sql {
        SqlBackend::Postgres { .. } => migrations::POSTGRES.iter().map(|m| m.version).collect(),
        SqlBackend::Sqlite { .. } => migrations::SQLITE.iter().map(|m| m.version).collect(),
    };
    match services.repo.applied_migrations().await {
        Ok(applied) if applied == expected => r.pass(
            "migrations",
            format!("{} applied, none pending", applied.len()),
        ),
        Ok(applied) => r.fail(
            "migrations",
            format!("applied {applied:?}, expected {expected:?}"),
            "Run `mbpanel-auth migrate`",
        ),
        Err(_) => r.fail(
            "migrations",
            "no _sqlx_migrations table: the database was never migrated",
            "Run `mbpanel-auth migrate`",
        ),
    }
    match services.repo.index_names().await {
        Ok(names) => {
            let missing: Vec<&str> = EXPECTED_INDEXES
                .iter()
                .copied()
                .filter(|i| !names.iter().any(|n| n == i))
                .collect();
            if missing.is_empty() {
                r.pass(
                    "indexes",
                    format!("{} hot-path indexes present", EXPECTED_INDEXES.len()),
                );
            } else {
                r.fail(
                    "indexes",
                    format!("missing: {}", missing.join(", ")),
                    "Add database indexes: run `mbpanel-auth migrate`",
                );
            }
        }
        Err(e) => r.fail("indexes", e.to_string(), "Check DATABASE_URL"),
    }

    if let EphemeralBackend::Memory { .. } = config.ephemeral {
        // The server's in-process store lives inside the server: ask the server itself.
        embedded_server_checks(config, &mut r).await;
    } else {
        shared_store_checks(&services, &mut r).await;
    }

    r.pass(
        "new-device alerts",
        if config.auth.new_device_alerts {
            "on: a sign-in from a device not seen before emails the user (NEW_DEVICE_ALERTS)"
        } else {
            "off (NEW_DEVICE_ALERTS=false): sign-ins from new devices are not emailed"
        },
    );

    match &config.email_backend {
        EmailBackend::Log => r.pass(
            "email",
            "log backend: emails (codes and links) are printed to the log",
        ),
        EmailBackend::Smtp { url } => {
            let test =
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(url.expose_secret())
                    .map(|b| {
                        b.timeout(Some(Duration::from_secs(5)))
                            .build::<lettre::Tokio1Executor>()
                    });
            match test {
                Ok(transport) => match transport.test_connection().await {
                    Ok(true) => r.pass("email", "SMTP server answers"),
                    Ok(false) | Err(_) => r.fail(
                        "email",
                        "SMTP server does not answer",
                        "Check SMTP_URL and that the server is reachable",
                    ),
                },
                Err(e) => r.fail("email", format!("SMTP_URL: {e}"), "Check SMTP_URL"),
            }
        }
        EmailBackend::Postmark { api_url, .. } => {
            let reachable = match url::Url::parse(api_url) {
                Ok(u) => tcp_reachable(&u, Duration::from_secs(5)).await,
                Err(e) => Err(e.to_string()),
            };
            let template = config
                .postmark_device_approval_template_id
                .as_deref()
                .unwrap_or("unset (plain text is sent)");
            match reachable {
                Ok(t) => r.pass(
                    "email",
                    format!("Postmark API reachable in {t:?}; device-approval template {template}"),
                ),
                Err(e) => r.fail(
                    "email",
                    format!("Postmark API unreachable: {e}"),
                    "Check Postmark API key is valid and POSTMARK_API_URL is reachable",
                ),
            }
        }
    }

    match &config.vz_signin_url {
        None => r.pass(
            "virtuozzo",
            "not configured (VZ_VIRTUOZZO_SIGNIN_URL unset)",
        ),
        Some(url) => match tcp_reachable(url, config.auth.vz_timeout).await {
            Ok(t) => r.pass(
                "virtuozzo",
                format!(
                    "{} reachable in {t:?}; credentials key {}",
                    url,
                    if config.vz_credentials_key.is_some() {
                        "set"
                    } else {
                        "MISSING"
                    }
                ),
            ),
            Err(e) => r.fail(
                "virtuozzo",
                format!("{url} unreachable: {e}"),
                "Check VZ API is accessible (curl -X POST \"$VZ_VIRTUOZZO_SIGNIN_URL\")",
            ),
        },
    }

    match (&config.ephemeral, services.auth.running_instances().await) {
        (EphemeralBackend::Memory { .. }, _) => r.pass(
            "JWT key fingerprint",
            format!(
                "embedded mode: one instance; this key's kid is {}",
                services.auth.keys().kid()
            ),
        ),
        (_, Ok(instances)) if instances.is_empty() => r.fail(
            "JWT key fingerprint",
            "no running instance has announced itself in Redis: none is running, or Redis was flushed or restarted moments ago (instances announce themselves every 20 s)",
            "Start the service (`mbpanel-auth serve`), or wait 20 seconds after a Redis flush and run doctor again",
        ),
        (_, Ok(instances)) => {
            let mine = services.auth.keys().kid().to_owned();
            let odd: Vec<String> = instances
                .iter()
                .filter(|i| i.kid != mine)
                .map(|i| format!("{} signs with kid {}", i.describe(), i.kid))
                .collect();
            if odd.is_empty() {
                let hosts: Vec<String> = instances.iter().map(|i| i.describe()).collect();
                r.pass(
                    "JWT key fingerprint",
                    format!(
                        "{} running instance(s), all with kid {mine}: {}",
                        instances.len(),
                        hosts.join("; ")
                    ),
                );
            } else {
                r.fail(
                    "JWT key fingerprint",
                    format!("configured kid {mine}, but: {}", odd.join(", ")),
                    "Check JWT_SECRET_KEY is consistent across services",
                );
            }
        }
        (_, Err(e)) => r.fail("JWT key fingerprint", e.to_string(), "Check REDIS_URL"),
    }

    if r.failures == 0 {
        println!("\nall checks passed");
    } else {
        println!("\n{} check(s) failed", r.failures);
    }
    Ok(r.failures == 0)
}

/// Redis, as every instance sees it: reachability and latency, keys without a TTL.
async fn shared_store_checks(services: &Services, r: &mut Report) {
    let store_name = services.store_name;
    let mut samples = Vec::new();
    let mut store_error = None;
    for _ in 0..5 {
        let started = Instant::now();
        match services.store.ping().await {
            Ok(()) => samples.push(started.elapsed()),
            Err(e) => {
                store_error = Some(e.to_string());
                break;
            }
        }
    }
    match store_error {
        Some(e) => r.fail(
            store_name,
            format!("unreachable: {e}"),
            "Check REDIS_URL (use the service name `redis` in docker-compose) and start Redis",
        ),
        None => {
            // The median of the five: one slow answer (a reconnect, a busy host) is not a
            // slow Redis; three are.
            samples.sort();
            let median = samples[samples.len() / 2];
            if median > Duration::from_millis(50) {
                r.fail(
                    store_name,
                    format!("reachable but slow: {median:?} per PING (median of 5)"),
                    "Check network latency to Redis (redis-cli --latency)",
                );
            } else {
                r.pass(
                    store_name,
                    format!("reachable, {median:?} per PING (median of 5)"),
                );
            }
        }
    }
    match services.store.scan("*", 100_000).await {
        Ok(keys) => {
            let forever: Vec<&String> = keys
                .iter()
                .filter(|(_, ttl)| ttl.is_none())
                .map(|(k, _)| k)
                .collect();
            if forever.is_empty() {
                r.pass(
                    "keys without TTL",
                    format!("none among {} keys", keys.len()),
                );
            } else {
                let sample: Vec<&str> = forever.iter().take(5).map(|k| k.as_str()).collect();
                r.fail(
                    "keys without TTL",
                    format!("{} key(s), e.g. {}", forever.len(), sample.join(", ")),
                    "Set appropriate TTLs: expire or delete these keys",
                );
            }
        }
        Err(e) => r.fail("keys without TTL", e.to_string(), "Check REDIS_URL"),
    }
}

/// Embedded mode: the in-process store is the server's own; `GET /readyz` of the server at
/// `BIND_ADDR` tells whether it (and the database) answer.
async fn embedded_server_checks(config: &Config, r: &mut Report) {
    let url = format!("http://{}/readyz", config.bind_addr);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build();
    let answer = match client {
        Ok(client) => client.get(&url).send().await,
        Err(e) => {
            r.fail(
                "server",
                e.to_string(),
                "Check the machine's network configuration",
            );
            return;
        }
    };
    match answer {
        Ok(response) if response.status().is_success() => r.pass(
            "server",
            format!(
                "embedded mode: the server at {url} is ready (its in-process store and database answer)"
            ),
        ),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            r.fail(
                "server",
                format!("the server at {url} answers {status}: {body}"),
                "Check the server's log; restart it (`mbpanel-auth serve`)",
            );
        }
        Err(e) => r.fail(
            "server",
            format!("no server answers at {url} (BIND_ADDR): {e}"),
            "Start it: `mbpanel-auth serve` (with the same DATA_DIR and BIND_ADDR)",
        ),
    }
    r.pass(
        "keys without TTL",
        "embedded mode: the in-process store gives every key a TTL itself",
    );
}
