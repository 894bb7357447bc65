//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::http::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// 503 naming each dependency that is down.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = &state.readiness;
    let (db, store) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, r.repo.ping_db()),
        tokio::time::timeout(CHECK_TIMEOUT, r.store.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let store_ok = matches!(store, Ok(Ok(())));
    let word = |ok: bool| if ok { "ok" } else { "down" };
    let checks = json!({ "database": word(db_ok), r.store_name: word(store_ok) });
    if db_ok && store_ok {
        return (
            StatusCode::OK,
            Json(json!({ "status": "ready", "checks": checks })),
        );
    }
    let down: Vec<&str> = [
        (!db_ok).then_some("database"),
        (!store_ok).then_some(r.store_name),
    ]
    .into_iter()
    .flatten()
    .collect();
    let body = json!({
        "detail": format!("Not ready: {} unavailable", down.join(" and ")),
        "code": "not_ready",
        "checks": checks,
    });
    (StatusCode::SERVICE_UNAVAILABLE, Json(body))
}
