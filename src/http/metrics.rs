//! Prometheus metrics: request counts and latencies per route, and `/metrics`.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Label values are a small, bounded set (methods, route templates, status codes): each is
/// stored once, so recording a request allocates nothing.
fn interned(value: &str) -> &'static str {
    static VALUES: OnceLock<RwLock<HashMap<String, &'static str>>> = OnceLock::new();
    let values = VALUES.get_or_init(RwLock::default);
    if let Some(v) = values.read().unwrap_or_else(|p| p.into_inner()).get(value) {
        return v;
    }
    let mut values = values.write().unwrap_or_else(|p| p.into_inner());
    values
        .entry(value.to_owned())
        .or_insert_with(|| Box::leak(value.to_owned().into_boxed_str()))
}

/// Counts and times every routed request by method, route template and status.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = interned(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| interned(p.as_str()));
    let response = next.run(request).await;
    let status = interned(response.status().as_str());
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::http::openapi::tags::OPS,
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn render() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics().render(),
    )
}
