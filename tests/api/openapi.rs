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

both_modes!(every_documented_operation_exists);
