//! The ephemeral store adapters: in-process (embedded mode) and Redis (production mode).

pub mod memory;
pub mod redis;
pub mod redis_shape;
