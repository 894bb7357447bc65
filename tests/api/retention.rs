//! The retention job (SPEC §12): what has stopped mattering is purged, what matters stays, and
//! nothing but the job may delete from the audit log.

use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::both_modes;
use crate::helpers::app::{Storage, expect};
use crate::helpers::{Mode, TestApp};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Runs statements in one transaction on the test's database (rolled back at the end) and
/// returns the last one's row count or the first error (the helpers' `sql_rows` panics on
/// errors). Nothing it does is visible to the running job.
async fn try_execute(storage: &Storage, statements: &[&str]) -> Result<u64, String> {
    use sqlx::Connection;
    macro_rules! run {
        ($conn:expr) => {{
            let mut tx = $conn.begin().await.unwrap();
            let mut last = 0;
            for sql in statements {
                last = sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
                    .execute(&mut *tx)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(|e| e.to_string())?;
            }
            tx.rollback().await.unwrap();
            Ok(last)
        }};
    }
    match storage.database_url() {
        Some(url) => {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            run!(conn)
        }
        None => {
            let path = storage.data_dir.join("mbpanel.db");
            let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            run!(conn)
        }
    }
}

async fn count(storage: &Storage, sql: &str) -> i64 {
    storage.sql_rows(sql).await[0][0].parse().unwrap()
}

async fn purges_what_stopped_mattering_and_keeps_the_rest(mode: Mode) {
    let app = TestApp::spawn_with(mode, &[("RETENTION_INTERVAL_SECONDS", "1")]).await;
    let db = &app.storage;
    let user = app.verified_user().await;
    let kept = app.signed_in(&user).await;
    let ended = app.second_session(&user, &kept).await;
    expect(ended.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let now = now_ms();
    // The ended session was revoked 31 days ago; the live one stays live.
    let revoked = db
        .sql_rows("SELECT id FROM active_sessions WHERE revoked_at IS NOT NULL")
        .await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let revoked_id = &revoked[0][0];
    db.sql(&format!(
        "UPDATE active_sessions SET revoked_at = {}, expires_at = {} WHERE id = {revoked_id}",
        now - 31 * DAY_MS,
        now - 20 * DAY_MS
    ))
    .await;
    // An expired session from long ago (revoked or not, it is over).
    let live = db
        .sql_rows("SELECT id FROM active_sessions WHERE revoked_at IS NULL")
        .await;
    assert_eq!(live.len(), 1);
    // The used verification token: used 8 days ago.
    db.sql(&format!(
        "UPDATE email_verification_tokens SET used_at = {}",
        now - 8 * DAY_MS
    ))
    .await;
    // The outbox: every message sent; one of them sent long ago.
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(
        db,
        "SELECT count(*) FROM email_outbox WHERE status <> 'sent'",
    )
    .await
        > 0
    {
        assert!(Instant::now() < deadline, "outbox did not drain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outbox = count(db, "SELECT count(*) FROM email_outbox").await;
    assert!(outbox >= 2, "{outbox}");
    let oldest_mail = db.sql_rows("SELECT min(id) FROM email_outbox").await[0][0].clone();
    db.sql(&format!(
        "UPDATE email_outbox SET created_at = {} WHERE id = {oldest_mail}",
        now - 8 * DAY_MS
    ))
    .await;
    // A message still to send keeps its payload.
    db.sql(&format!(
        "INSERT INTO email_outbox (to_address, kind, payload, status, attempts, next_attempt_at, created_at)
         VALUES ('later@example.com', 'test', '{{\"link\":\"x\"}}', 'failed', 9, {}, {})",
        now + DAY_MS,
        now
    ))
    .await;
    // New-device alert links: one used 8 days ago, one still valid.
    let user_id = db
        .sql_rows(&format!(
            "SELECT id FROM users WHERE email = '{}'",
            user.email
        ))
        .await[0][0]
        .clone();
    for (hash, used_at, expires_at) in [
        (
            "used-alert",
            (now - 8 * DAY_MS).to_string(),
            now - 7 * DAY_MS,
        ),
        ("live-alert", "NULL".to_owned(), now + DAY_MS),
    ] {
        db.sql(&format!(
            "INSERT INTO new_device_alerts (token_hash, user_id, fingerprint, created_at, expires_at, used_at)
             VALUES ('{hash}', {user_id}, 'fp', {}, {expires_at}, {used_at})",
            now - 9 * DAY_MS
        ))
        .await;
    }
    // Trusted devices: one expired (or forgotten) 8 days ago; the signed-in browsers' stay.
    let trusted = "SELECT count(*) FROM trusted_devices";
    let live_devices = count(db, trusted).await;
    assert!(live_devices >= 1, "{live_devices}");
    db.sql(&format!(
        "INSERT INTO trusted_devices (user_id, device_hash, user_agent, created_at, last_used_at, expires_at)
         VALUES ({user_id}, 'old-device', 'Old browser', {}, {}, {})",
        now - 100 * DAY_MS,
        now - 9 * DAY_MS,
        now - 8 * DAY_MS
    ))
    .await;
    // Audit entries: one past the retention (366 days), one within it (300 days).
    for (days, event) in [(366, "test_too_old"), (300, "test_kept")] {
        db.sql(&format!(
            "INSERT INTO audit_log (at, event, details) VALUES ({}, '{event}', '{{}}')",
            now - days * DAY_MS
        ))
        .await;
    }

    // Nobody but the job may delete audit entries, old or not, or change them.
    let old_entry = format!(
        "INSERT INTO audit_log (at, event, details) VALUES ({}, 'test_forged', '{{}}')",
        now - 1000 * DAY_MS
    );
    for attempt in [
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE event = 'test_forged'",
        "UPDATE audit_log SET event = 'x'",
    ] {
        let e = try_execute(db, &[&old_entry, attempt]).await.unwrap_err();
        assert!(e.contains("append-only"), "{attempt}: {e}");
    }
    if mode == Mode::Production {
        let e = try_execute(db, &["TRUNCATE audit_log"]).await.unwrap_err();
        assert!(e.contains("append-only"), "{e}");
    }

    // The job runs every second: wait until it purged what it should, then add up what its
    // runs' audit entries say.
    let revoked_gone = format!("SELECT count(*) FROM active_sessions WHERE id = {revoked_id}");
    let mail_gone = format!("SELECT count(*) FROM email_outbox WHERE id = {oldest_mail}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = count(db, &revoked_gone).await
            + count(
                db,
                "SELECT count(*) FROM audit_log WHERE event = 'test_too_old'",
            )
            .await
            + count(db, "SELECT count(*) FROM email_verification_tokens").await
            + count(db, &mail_gone).await
            + count(
                db,
                "SELECT count(*) FROM new_device_alerts WHERE token_hash = 'used-alert'",
            )
            .await
            + count(
                db,
                "SELECT count(*) FROM trusted_devices WHERE device_hash = 'old-device'",
            )
            .await
            + count(
                db,
                "SELECT count(*) FROM email_outbox WHERE status = 'sent' AND payload <> '{}'",
            )
            .await;
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} rows still to purge");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut counts = std::collections::HashMap::<String, u64>::new();
    for row in db
        .sql_rows("SELECT details FROM audit_log WHERE event = 'retention_purged'")
        .await
    {
        let run: serde_json::Value = serde_json::from_str(&row[0]).unwrap();
        for (kind, n) in run.as_object().unwrap() {
            *counts.entry(kind.clone()).or_default() += n.as_u64().unwrap();
        }
    }
    assert_eq!(counts["sessions"], 1, "{counts:?}");
    assert_eq!(counts["audit_entries"], 1, "{counts:?}");
    assert_eq!(counts["outbox_messages"], 1, "{counts:?}");
    assert!(counts["email_verification_tokens"] >= 1, "{counts:?}");
    assert!(counts["outbox_payloads"] >= 1, "{counts:?}");
    assert_eq!(counts["new_device_alerts"], 1, "{counts:?}");
    assert_eq!(counts["trusted_devices"], 1, "{counts:?}");
    assert_eq!(
        count(db, trusted).await,
        live_devices,
        "a live trusted device was purged"
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM new_device_alerts WHERE token_hash = 'live-alert'"
        )
        .await,
        1,
        "a valid alert link was purged"
    );

    // Kept: the live session (still signed in), recent audit entries, the unsent message's
    // payload; sent messages keep their row but lose their links and codes.
    assert_eq!(
        count(
            db,
            &format!(
                "SELECT count(*) FROM active_sessions WHERE id = {}",
                live[0][0]
            )
        )
        .await,
        1
    );
    expect(kept.me().await, StatusCode::OK).await;
    expect(kept.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM audit_log WHERE event = 'test_kept'"
        )
        .await,
        1
    );
    assert!(
        count(
            db,
            "SELECT count(*) FROM audit_log WHERE event = 'login_succeeded'"
        )
        .await
            >= 2
    );
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM email_outbox WHERE status = 'sent' AND payload <> '{}'"
        )
        .await,
        0
    );
    assert_eq!(
        count(db, "SELECT count(*) FROM email_outbox WHERE to_address = 'later@example.com' AND payload LIKE '%link%'").await,
        1
    );
    // The job's own cutoff is not a licence for others: still append-only afterwards.
    let e = try_execute(db, &["DELETE FROM audit_log WHERE event = 'test_kept'"])
        .await
        .unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    // Metrics count what was purged, by kind.
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("retention_purged_total{kind=\"audit_entries\"}")),
        "{metrics}"
    );
}

/// The key of the job's `pg_try_advisory_xact_lock` (`src/store/sql/retention.rs`).
const RETENTION_LOCK: i64 = 7262838462;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_at_a_time_runs_the_job() {
    use sqlx::Connection;
    let app = TestApp::spawn_with(Mode::Production, &[("RETENTION_INTERVAL_SECONDS", "1")]).await;
    let db = &app.storage;
    // Another instance holds the run.
    let mut other = sqlx::PgConnection::connect(&db.database_url().unwrap())
        .await
        .unwrap();
    let mut held = other.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RETENTION_LOCK)
        .execute(&mut *held)
        .await
        .unwrap();
    db.sql(&format!(
        "INSERT INTO audit_log (at, event, details) VALUES ({}, 'test_too_old', '{{}}')",
        now_ms() - 400 * DAY_MS
    ))
    .await;
    let old = "SELECT count(*) FROM audit_log WHERE event = 'test_too_old'";
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(db, old).await,
        1,
        "purged while another run held the lock"
    );
    // The other run ends: the next tick of this instance purges.
    held.commit().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(db, old).await > 0 {
        assert!(
            Instant::now() < deadline,
            "not purged after the lock was released"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count(
            db,
            "SELECT count(*) FROM audit_log WHERE event = 'retention_purged'"
        )
        .await,
        1
    );
}

#[test]
fn retention_and_pool_settings_are_validated() {
    use mbpanel_auth::config::{Config, Env};
    for (var, value) in [
        ("AUDIT_RETENTION_DAYS", "0"),
        ("RETENTION_INTERVAL_SECONDS", "soon"),
        ("SESSION_RETENTION_DAYS", "-1"),
        ("RETENTION_BATCH_SIZE", "0"),
        ("DATABASE_STATEMENT_CACHE_CAPACITY", "none"),
    ] {
        let env = Env::from_map(
            [
                ("JWT_SECRET_KEY", crate::helpers::app::JWT_SECRET),
                (var, value),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        );
        let e = Config::from_env(&env).unwrap_err().to_string();
        assert!(e.contains(var), "{var}={value}: {e}");
    }
}

both_modes!(purges_what_stopped_mattering_and_keeps_the_rest);
