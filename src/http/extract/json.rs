//! JSON bodies whose every rejection is a clear 4xx in the `{"detail","code"}` shape.
//!
//! The body is parsed to a JSON value first (syntax errors, and nesting past serde_json's
//! recursion limit, are 400), strings carrying NUL are refused (PostgreSQL cannot store them),
//! and only then is the value read into the handler's type (shape errors are 422).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::service::Error;

pub struct ApiJson<T>(pub T);

/// `application/json` or `application/<x>+json`, with any parameters.
fn is_json(req: &Request) -> bool {
    let Some(value) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&req) {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest(e.body_text())
            }
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("Invalid JSON: {e}")))?;
        if contains_nul(&value) {
            return Err(Error::validation(
                "body",
                "text must not contain NUL characters",
            ));
        }
        serde_json::from_value(value)
            .map(ApiJson)
            .map_err(|e| Error::validation("body", format!("Invalid request body: {e}")))
    }
}
