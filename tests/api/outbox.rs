//! The durable outbox: stored before the request returns, retried with backoff, and sent after
//! a restart.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::both_modes;
use crate::helpers::app::{Storage, expect};
use crate::helpers::smtp::{SmtpSink, link_token};
use crate::helpers::{Mode, TestApp, TestUser};

async fn email_survives_an_smtp_outage_and_a_restart(mode: Mode) {
    // The SMTP server is down when the user registers.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = Arc::new(Storage::new(mode).await);
    let unused_sink = SmtpSink::default();
    let app = TestApp::spawn_on(Arc::clone(&storage), unused_sink, port, &[]).await;
    let user = TestUser::random();
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": "N" }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    let rows = storage
        .sql_rows(&format!(
            "SELECT status FROM email_outbox WHERE to_address = '{}'",
            user.email
        ))
        .await;
    assert_eq!(rows.len(), 1, "stored before the request returned");

    // The sender fails and schedules a retry with backoff.
    let mut failed = false;
    for _ in 0..100 {
        let rows = storage
            .sql_rows("SELECT attempts, last_error FROM email_outbox")
            .await;
        if rows[0][0] != "0" && rows[0][1] != "NULL" {
            failed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(failed, "a failed attempt is recorded");

    // Restart: the old instance stops; a new one with a working SMTP server delivers.
    drop(app);
    let (sink, sink_port) = SmtpSink::start_on(0).await;
    let app = TestApp::spawn_on(Arc::clone(&storage), sink.clone(), sink_port, &[]).await;
    let mail = sink.wait_for_nth(&user.email, 0).await;
    assert!(mail.data.contains("Verify your email address"));
    expect(
        app.browser()
            .post(
                "/api/v1/auth/verify-email",
                json!({ "token": link_token(&mail) }),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let rows = storage.sql_rows("SELECT status FROM email_outbox").await;
    assert_eq!(rows[0][0], "sent");
}

async fn smtp_coming_back_is_retried_without_a_restart(mode: Mode) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let storage = Arc::new(Storage::new(mode).await);
    let app = TestApp::spawn_on(Arc::clone(&storage), SmtpSink::default(), port, &[]).await;
    let user = TestUser::random();
    let r = app
        .browser()
        .post(
            "/api/v1/auth/register",
            json!({ "email": user.email, "password": user.password, "name": "N" }),
        )
        .await;
    expect(r, StatusCode::ACCEPTED).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (sink, _) = SmtpSink::start_on(port).await;
    let mail = sink.wait_for_nth(&user.email, 0).await;
    assert!(mail.data.contains("token="));
}

both_modes!(
    email_survives_an_smtp_outage_and_a_restart,
    smtp_coming_back_is_retried_without_a_restart
);
