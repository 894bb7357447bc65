//! The OpenAPI document describes the real router: every documented operation exists.

use reqwest::{Method, StatusCode};

use crate::both_modes;
use crate::helpers::app::{body, expect};
use crate::helpers::{Mode, TestApp};

async fn every_documented_operation_exists(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let doc = expect(
        app.browser().get("/api/v1/openapi.json").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 30, "{}", paths.len());
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (path, ops) in paths {
        if path == "/api/v1/auth/events" {
            continue; // a stream; covered by the SSE tests
        }
        let concrete = path
            .replace("{decision}", "approve")
            .replace("{file}", "api.js")
            .split('/')
            .map(|s| if s.starts_with('{') { "1" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in ops.as_object().unwrap() {
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let mut req = http.request(method.clone(), app.url(&concrete));
            if op.get("requestBody").is_some() {
                req = req.json(&serde_json::json!({}));
            }
            let r = req.send().await.unwrap();
            let status = r.status();
            let answer = body(r).await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
            assert!(
                answer.get("code").is_none_or(|c| c != "not_found"),
                "{method} {path} is documented but not routed: {answer}"
            );
            assert!(
                !status.is_server_error(),
                "{method} {path}: {status} {answer}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 40, "{checked}");
}

/// Where the committed document lives, and how to refresh it.
fn snapshot_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

/// The generated document is the committed `docs/openapi.json`, byte for byte.
#[test]
fn openapi_snapshot_is_current() {
    let generated = mbpanel_auth::http::openapi::document_json();
    let path = snapshot_path();
    if std::env::var_os("UPDATE_OPENAPI_SNAPSHOT").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .map_or(
                committed.lines().count().min(generated.lines().count()),
                |i| i,
            );
        panic!(
            "docs/openapi.json differs from the generated document (first at line {}).\n\
             If the change is intended, update it with:\n  \
             UPDATE_OPENAPI_SNAPSHOT=1 cargo test --test api openapi_snapshot\n\
             and commit docs/openapi.json.",
            line + 1
        );
    }
}

/// The server serves exactly the generated document.
async fn served_document_is_the_generated_one(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let r = app.browser().get("/api/v1/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(
        r.text().await.unwrap(),
        mbpanel_auth::http::openapi::document_json()
    );
}

both_modes!(
    every_documented_operation_exists,
    served_document_is_the_generated_one
);

/// `METHOD /path` of every row of the README's API table (`<x>` and `{x}` parameters alike).
fn readme_operations() -> std::collections::BTreeSet<(String, String)> {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    let table = readme
        .split("\n## API\n")
        .nth(1)
        .expect("a ## API section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut out = std::collections::BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let call = row.split(" | ").next().unwrap();
        for code in call.split('`').skip(1).step_by(2) {
            let mut words = code.split_whitespace();
            let (Some(method), Some(path)) = (words.next(), words.next()) else {
                continue;
            };
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method) {
                continue;
            }
            let path = path.split('?').next().unwrap();
            out.insert((method.to_owned(), normalise(path)));
        }
    }
    out
}

/// `{team_id}`, `<id>` → `{}`.
fn normalise(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if (s.starts_with('{') && s.ends_with('}')) || (s.starts_with('<') && s.ends_with('>'))
            {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The README's API table names every documented operation, and only those.
#[test]
fn readme_api_table_matches_the_document() {
    let doc = serde_json::to_value(mbpanel_auth::http::openapi::document()).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.to_uppercase(), normalise(path)));
            }
        }
    }
    let readme = readme_operations();
    let missing: Vec<_> = documented.difference(&readme).collect();
    let extra: Vec<_> = readme.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README ## API table and the OpenAPI document differ.\n\
         documented but not in the README: {missing:?}\n\
         in the README but not documented: {extra:?}"
    );
}
