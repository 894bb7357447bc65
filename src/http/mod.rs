//! The HTTP layer: routes, extractors, the error mapping and the cookie factory.

pub mod cookies;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Request bodies are small JSON documents; anything larger is refused with 413.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The request span: method and path only. The query (emailed links carry `?token=`) is never
/// logged, and the approval token in `/auth/concurrent-login/<token>` is masked.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    if !tracing::enabled!(tracing::Level::INFO) {
        return tracing::Span::none();
    }
    let path = request.uri().path();
    let path = match path.find("/concurrent-login/") {
        Some(i) if !path.ends_with("/email-decision") => {
            let start = i + "/concurrent-login/".len();
            let rest = &path[start..];
            let tail = rest.find('/').map_or("", |j| &rest[j..]);
            format!("{}[token]{tail}", &path[..start])
        }
        _ => path.to_owned(),
    };
    tracing::info_span!("request", method = %request.method(), path = %path)
}

/// Request ids: a random per-process prefix and a counter — unique, cheap (no system call per
/// request), and not a secret.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for RequestIds {
    fn default() -> Self {
        let random = crate::service::tokens::random_jti();
        Self {
            prefix: random[..12].into(),
            next: std::sync::Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

pub fn router(state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .nest("/api/v1", routes::api())
        .merge(routes::pages())
        .merge(routes::health())
        .route("/metrics", axum::routing::get(metrics::render))
        .route("/api/v1/openapi.json", axum::routing::get(openapi::serve))
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::default()))
        .with_state(state)
}
