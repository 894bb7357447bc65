//! Liveness and readiness.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::http::AppState;
use crate::http::openapi::tags;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    status: Alive,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Alive {
    Ok,
}

/// Each dependency (`database` and the ephemeral store: `redis` or `memory`) and its state.
type Checks = BTreeMap<&'static str, Check>;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Check {
    Ok,
    Down,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ready {
    status: ReadyWord,
    #[schema(value_type = BTreeMap<String, Check>)]
    checks: Checks,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ReadyWord {
    Ready,
}

/// 503: `code` is `not_ready`, `detail` names what is down.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotReady {
    detail: String,
    code: &'static str,
    #[schema(value_type = BTreeMap<String, Check>)]
    checks: Checks,
}

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = tags::OPS,
    responses((status = 200, description = "The process serves requests", body = Health))
)]
pub async fn healthz() -> impl IntoResponse {
    Json(Health { status: Alive::Ok })
}

/// Readiness: 503 naming each dependency that is down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tags::OPS,
    responses(
        (status = 200, description = "Every dependency answers", body = Ready),
        (status = 503, description = "A dependency is down (`not_ready`)", body = NotReady),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = &state.readiness;
    let (db, store) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, r.repo.ping_db()),
        tokio::time::timeout(CHECK_TIMEOUT, r.store.ping()),
    );
    let db_ok = matches!(db, Ok(Ok(())));
    let store_ok = matches!(store, Ok(Ok(())));
    let word = |ok: bool| if ok { Check::Ok } else { Check::Down };
    let checks = Checks::from([("database", word(db_ok)), (r.store_name, word(store_ok))]);
    if db_ok && store_ok {
        let body = Ready {
            status: ReadyWord::Ready,
            checks,
        };
        return (StatusCode::OK, Json(body)).into_response();
    }
    let down: Vec<&str> = [
        (!db_ok).then_some("database"),
        (!store_ok).then_some(r.store_name),
    ]
    .into_iter()
    .flatten()
    .collect();
    let body = NotReady {
        detail: format!("Not ready: {} unavailable", down.join(" and ")),
        code: "not_ready",
        checks,
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}
