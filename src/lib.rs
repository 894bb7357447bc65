//! mbpanel-auth: the authentication and session service of mbpanel.
//!
//! Dependencies point one way: `http` and `cli` call `service`; `service` uses `domain` and
//! declares the ports (`service::ports`) that `store` and `mail` implement; `app` wires them.

pub mod app;
pub mod breach;
pub mod cli;
pub mod config;
pub mod domain;
pub mod http;
pub mod mail;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod virtuozzo;
