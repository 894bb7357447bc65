//! The admin commands, run as a separate process against the test's stores.

use reqwest::StatusCode;

use crate::both_modes;
use crate::helpers::app::expect;
use crate::helpers::tokens::{parts, sign_hs256};
use crate::helpers::{Mode, TestApp};

pub(crate) fn cli(app: &TestApp, extra_env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mbpanel-auth"))
        .args(args)
        .env_clear()
        .envs(&app.settings)
        .env("LOG_LEVEL", "off")
        .envs(extra_env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn token_decode_explains_a_token(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let access = b.access();
    let (ok, said) = cli(&app, &[], &["token", "decode", &access]);
    assert!(ok, "{said}");
    assert!(
        said.contains("signature: valid") && said.contains("session:") && said.contains("active"),
        "{said}"
    );
    assert!(said.contains("verdict:   accepted"), "{said}");

    // Signed with another key: the kid mismatch is named.
    let (header, claims, _) = parts(&access);
    let foreign = sign_hs256(
        &header,
        &claims,
        b"a-different-secret-key-for-another-service",
    );
    let (ok, said) = cli(&app, &[], &["token", "decode", &foreign]);
    assert!(!ok);
    assert!(
        said.contains("INVALID") || said.contains("UNKNOWN KEY"),
        "{said}"
    );

    // Logged out: revoked (SQL is the record, in both modes), with the reason in words.
    expect(b.post_csrf("/api/v1/auth/logout").await, StatusCode::OK).await;
    let (ok, said) = cli(&app, &[], &["token", "decode", &access]);
    assert!(!ok, "{said}");
    assert!(
        said.contains("revoked at") && said.contains("the user signed out"),
        "{said}"
    );
    assert!(said.contains("verdict:   refused"), "{said}");
}

async fn doctor_passes_on_a_healthy_service(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    app.signed_in(&app.verified_user().await).await;
    let (ok, said) = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]);
    assert!(ok, "{said}");
    for check in [
        "configuration",
        "database",
        "migrations",
        "indexes",
        "keys without TTL",
        "email",
        "virtuozzo",
        "JWT key fingerprint",
    ] {
        assert!(
            said.lines()
                .any(|l| l.starts_with("PASS") && l.contains(check)),
            "{check}: {said}"
        );
    }
    if mode == Mode::Production {
        assert!(said.contains("1 running instance(s)"), "{said}");
        // Another key than the running instance's: the mismatch is reported with the guide's fix.
        let other = [
            ("EMAIL_BACKEND", "log"),
            (
                "JWT_SECRET_KEY",
                "another-key-that-is-at-least-32-bytes-long",
            ),
        ];
        let (ok, said) = cli(&app, &other, &["doctor"]);
        assert!(!ok);
        assert!(
            said.contains("FAIL  JWT key fingerprint")
                && said.contains("JWT_SECRET_KEY is consistent"),
            "{said}"
        );
        // A key without TTL is found.
        let mut r = app.storage.redis().await;
        redis::cmd("SET")
            .arg(format!("{}stray", app.storage.redis_prefix))
            .arg("1")
            .query_async::<()>(&mut r)
            .await
            .unwrap();
        let (ok, said) = cli(&app, &[("EMAIL_BACKEND", "log")], &["doctor"]);
        assert!(!ok);
        assert!(
            said.contains("FAIL  keys without TTL") && said.contains("stray"),
            "{said}"
        );
        redis::cmd("DEL")
            .arg(format!("{}stray", app.storage.redis_prefix))
            .query_async::<()>(&mut r)
            .await
            .unwrap();
    }
}

async fn sessions_teams_and_roles_from_the_command_line(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let b = app.signed_in(&user).await;
    let access = b.access();
    let (ok, said) = cli(&app, &[], &["team", "list", &user.email]);
    assert!(ok && said.contains("Owner"), "{said}");
    let team = said.split('\t').next().unwrap().trim().to_owned();
    let (ok, said) = cli(&app, &[], &["role", "list", &team]);
    assert!(
        ok && said.contains("Viewer") && said.contains("built-in") && said.contains("audit.read"),
        "{said}"
    );
    let (ok, said) = cli(&app, &[], &["session", "list", &user.email]);
    assert!(ok, "{said}");
    let sid = said.split('\t').next().unwrap().trim().to_owned();
    let (ok, said) = cli(&app, &[], &["session", "revoke", &sid]);
    assert!(ok && said.contains("revoked"), "{said}");
    // Another process revoked it: the server picks that up within a second or two.
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = app.bearer_me(&access).await;
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (ok, _) = cli(&app, &[], &["session", "revoke", &sid]);
    assert!(!ok, "already revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_reports_a_database_that_was_never_migrated() {
    let app = TestApp::spawn(Mode::Embedded).await;
    let fresh = std::env::temp_dir().join(crate::helpers::app::unique("mbpanel-doctor-"));
    let dir = fresh.display().to_string();
    let (ok, said) = cli(
        &app,
        &[("DATA_DIR", dir.as_str()), ("EMAIL_BACKEND", "log")],
        &["doctor"],
    );
    let _ = std::fs::remove_dir_all(&fresh);
    assert!(!ok, "{said}");
    assert!(
        said.contains("FAIL  migrations") && said.contains("mbpanel-auth migrate"),
        "{said}"
    );
}

both_modes!(
    token_decode_explains_a_token,
    doctor_passes_on_a_healthy_service,
    sessions_teams_and_roles_from_the_command_line,
);

/// `--help` lists every setting with its default and meaning, from the one declaration; it
/// needs no valid configuration (here a too-short key) and shows the defaults, not the
/// environment's values.
#[test]
fn help_lists_the_settings_with_their_defaults() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mbpanel-auth"))
            .args(args)
            .env_clear()
            .env("JWT_SECRET_KEY", "short")
            .env("ACCESS_TOKEN_TTL_MINUTES", "99")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for said in [help(&["--help"]), help(&["serve", "--help"])] {
        for line in [
            "  ACCESS_TOKEN_TTL_MINUTES  [default: 15]\n          access token lifetime\n",
            "  BIND_ADDR  [default: 127.0.0.1:8000]\n",
            "  REFRESH_IDLE_TIMEOUT_MINUTES  [default: 60]\n",
            "  LOGIN_RATE_LIMIT_ATTEMPTS  [default: 5]\n          failed logins per account per window\n",
            "  EMAIL_BACKEND  [default: log]\n",
            "  DATABASE_URL  [default: unset → SQLite in DATA_DIR]\n",
            "  SMTP_URL  [default: none]\n",
            "\nRate limits:\n",
        ] {
            assert!(said.contains(line), "{line:?} in {said}");
        }
        assert!(!said.contains("[default: 99]"), "{said}");
    }
    // `-h` stays short and points to `--help`.
    let short = help(&["-h"]);
    assert!(!short.contains("ACCESS_TOKEN_TTL_MINUTES"), "{short}");
    assert!(
        short.contains("--help lists each with its default"),
        "{short}"
    );
}
