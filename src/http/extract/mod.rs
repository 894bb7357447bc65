//! Extractors: a handler's signature says what it needs.

mod auth;
mod client;
mod json;
mod path;
mod team;

pub use auth::{AuthSession, Credentials, csrf_ok};
pub use client::Client;
pub use json::ApiJson;
pub use path::ApiPath;
pub use team::{
    AuditRead, EnvironmentsRead, MembersInvite, MembersManage, MembersRead, RolesManage, TeamGuard,
    VirtuozzoCredentialsManage, VirtuozzoSessionRefresh,
};
