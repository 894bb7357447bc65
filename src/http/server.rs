//! The HTTP/1.1 server loop, with the limits `axum::serve` does not have: a deadline for the
//! request headers (slowloris), a deadline for each request's handling, and a cap on open
//! connections (beyond it new connections wait in the listen backlog until one closes).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::service::Error;

/// `HTTP_HEADER_READ_TIMEOUT_SECONDS`, `HTTP_REQUEST_TIMEOUT_SECONDS`, `HTTP_MAX_CONNECTIONS`.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// A connection that has not sent a complete request head within this is closed (also
    /// an idle keep-alive connection waiting for its next request).
    pub header_read_timeout: Duration,
    /// A request whose answer has not started within this gets 408 (a streamed answer, such
    /// as the event stream, is not cut once it has started).
    pub request_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight connections
/// finish (for at most the request timeout).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let deadline = limits.request_timeout;
    let router = router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(deadline, next.run(request)).await {
                Ok(response) => response,
                Err(_) => Error::RequestTimeout.into_response(),
            }
        },
    ));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(event = "accept_failed", error = %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            })
            .map_err(|never: Infallible| match never {});
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(event = "connection_closed", error = %e);
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.request_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(event = "shutdown_connections_cut");
    }
    Ok(())
}
