//! The web UI is served by the same binary, with a strict CSP, and uses only real API routes.

use reqwest::StatusCode;

use crate::both_modes;
use crate::helpers::app::expect;
use crate::helpers::{Mode, TestApp};

async fn the_ui_is_served_with_a_strict_policy(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let page = reqwest::get(app.url("/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    for needle in [
        "signin-form",
        "otp-form",
        "waiting",
        "sessions",
        "team-switcher",
        "logout-all",
        "/app.js",
    ] {
        assert!(html.contains(needle), "{needle}");
    }
    let script = reqwest::get(app.url("/app.js")).await.unwrap();
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let js = script.text().await.unwrap();
    assert!(js.contains("credentials: 'include'") && js.contains("X-CSRF-Token"));

    // Every API path the script calls is documented (and so routed: see the OpenAPI test).
    let doc = expect(
        app.browser().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    let documented: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    for called in [
        "/auth/login",
        "/auth/otp/verify",
        "/auth/session-exchange",
        "/auth/me",
        "/auth/refresh",
        "/auth/sessions",
        "/auth/events",
        "/auth/logout",
        "/auth/logout-all",
        "/auth/switch-team",
        "/teams",
    ] {
        assert!(
            js.contains(&format!("'{called}'"))
                || js.contains(&format!("`{called}"))
                || js.contains(&format!("+ '{called}'")),
            "{called} in app.js"
        );
        assert!(
            documented.iter().any(|p| p == &format!("/api/v1{called}")),
            "{called} documented"
        );
    }

    // The script parses (when Node.js is on the machine, as on the project's machines).
    if let Ok(out) = std::process::Command::new("node")
        .arg("--check")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/src/web/app.js"))
        .output()
    {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

both_modes!(the_ui_is_served_with_a_strict_policy);
