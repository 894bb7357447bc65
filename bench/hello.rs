//! The ceiling the benchmark compares against: an axum hello-world (`GET /json`) built with the
//! same compiler, profile and axum as the service, run beside it on the same machine.
//!
//!     hello 127.0.0.1:8080

use axum::Json;
use axum::routing::get;
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let app = axum::Router::new().route(
        "/json",
        get(|| async { Json(json!({ "message": "Hello, World!" })) }),
    );
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
