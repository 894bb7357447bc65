//! The HTTP layer: routes, extractors, the error mapping and the cookie factory.

pub mod cookies;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

pub use state::AppState;

/// Request bodies are small JSON documents; anything larger is refused with 413.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest client-supplied `X-Request-Id` that is kept (longer ones are replaced).
const MAX_REQUEST_ID_CHARS: usize = 64;

fn x_request_id() -> HeaderName {
    HeaderName::from_static("x-request-id")
}

/// A path fit for logs: the query (emailed links carry `?token=`) is never logged, and the
/// approval token in `/auth/concurrent-login/<token>` is masked.
/// The fixed routes beside it (`cancel`, `pending`, `email-decision`) keep their names.
fn loggable_path(path: &str) -> String {
    const FIXED: [&str; 3] = ["email-decision", "cancel", "pending"];
    match path.find("/concurrent-login/") {
        Some(i) => {
            let start = i + "/concurrent-login/".len();
            let rest = &path[start..];
            if FIXED.contains(&rest) {
                return path.to_owned();
            }
            let tail = rest.find('/').map_or("", |j| &rest[j..]);
            format!("{}[token]{tail}", &path[..start])
        }
        None => path.to_owned(),
    }
}

/// The request span: method, path and request id only.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    if !tracing::enabled!(tracing::Level::INFO) {
        return tracing::Span::none();
    }
    let path = loggable_path(request.uri().path());
    let request_id = request
        .headers()
        .get(x_request_id())
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), path = %path, request_id = %request_id)
}

/// A client's request id is kept only if it is one short run of `[A-Za-z0-9._-]`: anything
/// else (too long, other characters, several headers) is dropped and replaced by ours, so
/// logs and answers never echo what a client chose to inject.
fn acceptable_request_id(headers: &axum::http::HeaderMap) -> bool {
    let mut values = headers.get_all(x_request_id()).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= MAX_REQUEST_ID_CHARS
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
        }
        (None, _) => true,
        _ => false,
    }
}

async fn sanitize_request_id(mut request: axum::extract::Request) -> axum::extract::Request {
    if !acceptable_request_id(request.headers()) {
        request.headers_mut().remove(x_request_id());
    }
    request
}

/// One log line per refused request (4xx): its reason code and request id, never a token
/// (the path is masked, the query and headers are not logged).
async fn log_refusals(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    // Cheap clones (shared buffers): the hot path pays for words only when it refuses.
    let request_id = request.headers().get(x_request_id()).cloned();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() {
        let code = response
            .extensions()
            .get::<error::RefusalCode>()
            .map_or("unknown", |c| c.0);
        let request_id = request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        tracing::info!(
            target: "request_refused",
            event = "request_refused",
            status = status.as_u16(),
            code,
            request_id,
            method = %method,
            path = %loggable_path(uri.path())
        );
    }
    response
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

/// `Strict-Transport-Security` for a service reached over https.
const HSTS: &str = "max-age=31536000; includeSubDomains";

pub fn router(state: AppState) -> axum::Router {
    let request_id = x_request_id();
    let https = state.auth.settings().base_url.scheme() == "https";
    let (routes, _) = routes::all().split_for_parts();
    let mut router = routes
        .route_layer(axum::middleware::from_fn(metrics::track))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    if https {
        router = router.layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        ));
    }
    router
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
        // The UI and JSON compressed when the client asks; never the event stream (each
        // event must reach the client as it is written).
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(NotForContentType::SSE)),
        )
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(axum::middleware::from_fn(log_refusals))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, RequestIds::default()))
        .layer(axum::middleware::map_request(sanitize_request_id))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::{acceptable_request_id, loggable_path, x_request_id};

    fn with(ids: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for id in ids {
            h.append(x_request_id(), HeaderValue::from_str(id).unwrap());
        }
        h
    }

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(acceptable_request_id(&with(&[])));
        assert!(acceptable_request_id(&with(&["abc-1_2.Z"])));
        assert!(acceptable_request_id(&with(&[&"a".repeat(64)])));
        assert!(!acceptable_request_id(&with(&[&"a".repeat(65)])));
        assert!(!acceptable_request_id(&with(&["with space"])));
        assert!(!acceptable_request_id(&with(&["a/b"])));
        assert!(!acceptable_request_id(&with(&[""])));
        assert!(!acceptable_request_id(&with(&["a", "b"])));
    }

    #[test]
    fn approval_tokens_are_masked_in_logged_paths() {
        assert_eq!(
            loggable_path("/api/v1/auth/concurrent-login/secret/approve"),
            "/api/v1/auth/concurrent-login/[token]/approve"
        );
        assert_eq!(loggable_path("/api/v1/auth/me"), "/api/v1/auth/me");
        for fixed in ["cancel", "pending", "email-decision"] {
            let path = format!("/api/v1/auth/concurrent-login/{fixed}");
            assert_eq!(loggable_path(&path), path);
        }
        assert_eq!(
            loggable_path("/api/v1/auth/concurrent-login/cancelXYZ"),
            "/api/v1/auth/concurrent-login/[token]"
        );
    }
}
