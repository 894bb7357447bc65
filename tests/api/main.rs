//! Black-box tests: each test starts the real application on port 0 with its own database, its
//! own ephemeral key space and its own SMTP sink, and talks to it over HTTP. Every test runs in
//! both modes: `embedded` (SQLite + in-process store) and `production` (PostgreSQL + Redis).

#![allow(clippy::unwrap_used)]

mod helpers;

mod browser;
mod cli;
mod concurrent;
mod contract;
mod deployments_pg;
mod hardening;
mod input;
mod lifecycle;
mod login;
mod mfa;
mod new_device;
mod openapi;
mod operability;
mod operations;
mod otp;
mod outbox;
mod passkeys;
mod passwords;
mod postmark;

mod redis_shapes;
mod refresh;
mod retention;
mod schema;
mod session_core;
mod sessions;
mod team_policy;
mod teams;
mod tokens;
mod ui_flows;
mod virtuozzo;
mod web;
mod web_support;
