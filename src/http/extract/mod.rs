//! Extractors: a handler's signature says what it needs.

mod auth;
mod client;
mod json;
mod path;

pub use auth::{AuthSession, Credentials, csrf_ok};
pub use client::Client;
pub use json::ApiJson;
pub use path::ApiPath;
