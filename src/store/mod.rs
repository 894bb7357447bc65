//! Adapters for the service's storage ports: SQL (SQLite or PostgreSQL) and the ephemeral store
//! (in-process or Redis).

pub mod ephemeral;
pub mod sql;
