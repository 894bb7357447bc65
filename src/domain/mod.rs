//! Types and rules of the auth domain. No I/O here.

pub mod claims;
pub mod device;
pub mod email;
pub mod password;
pub mod permissions;
pub mod text;
pub mod time;

pub type UserId = i64;
pub type TeamId = i64;
pub type RoleId = i64;
pub type SessionId = i64;
