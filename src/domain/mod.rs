//! Types and rules of the auth domain. No I/O here.

pub mod claims;
pub mod device;
pub mod email;
pub mod ids;
pub mod password;
pub mod permissions;
pub mod secret;
pub mod text;
pub mod time;
pub mod token_hash;

pub use ids::{RoleId, SessionId, TeamId, UserId};
pub use token_hash::TokenHash;
