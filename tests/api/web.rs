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
    // The app is split into modules under /ui/ (app.js imports them): the checks below read
    // them all, each served as JavaScript with the same strict policy.
    let mut js = script.text().await.unwrap();
    for module in MODULES {
        let r = reqwest::get(app.url(&format!("/ui/{module}")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{module}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        assert_eq!(r.headers()["content-security-policy"], csp.as_str());
        js.push_str(&r.text().await.unwrap());
    }
    for module in MODULES {
        assert!(
            js.contains(&format!("'./ui/{module}'")) || js.contains(&format!("'./{module}'")),
            "{module} is imported"
        );
    }
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

    // The scripts parse (when Node.js is on the machine, as on the project's machines).
    for file in std::iter::once("app.js").chain(MODULES) {
        let path = format!("{}/src/web/{file}", env!("CARGO_MANIFEST_DIR"));
        if let Ok(out) = std::process::Command::new("node")
            .arg("--check")
            .arg(&path)
            .output()
        {
            assert!(
                out.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let r = reqwest::get(app.url("/ui/nope.js")).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

const MODULES: [&str; 7] = [
    "api.js",
    "dom.js",
    "device.js",
    "getting_in.js",
    "links.js",
    "account.js",
    "teams.js",
];

/// Every page of the app, the emailed links' pages included, is the same app with the same
/// strict policy: no inline script or style anywhere.
async fn every_page_is_the_app_under_one_strict_policy(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let home = reqwest::get(app.url("/")).await.unwrap();
    let policy = home.headers()["content-security-policy"].clone();
    let html = home.text().await.unwrap();
    for path in [
        "/register",
        "/forgot-password",
        "/reset-password?token=abc",
        "/verify-email?token=abc",
        "/concurrent-login?token=abc&action=approve",
        "/invite?token=abc",
        "/account",
        "/teams",
        "/teams/12",
    ] {
        let r = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["content-security-policy"], policy, "{path}");
        assert_eq!(r.text().await.unwrap(), html, "{path} is the app");
    }
    let csp = policy.to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        !html.contains(" style=") && !html.contains("<style"),
        "no inline style"
    );
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for s in scripts {
        assert!(
            s.trim_start().starts_with("type=\"module\" src=")
                || s.trim_start().starts_with("src="),
            "no inline script: {s}"
        );
    }
}

both_modes!(
    the_ui_is_served_with_a_strict_policy,
    every_page_is_the_app_under_one_strict_policy
);
