//! Extractors: a handler's signature says what it needs.

mod auth;
mod client;
mod json;
mod path;
mod step_up;
mod team;

pub use auth::{AuthSession, Credentials, csrf_ok};
pub use client::Client;
pub use json::ApiJson;
pub use path::ApiPath;
pub use step_up::{SessionBound, StepUp};
pub use team::{
    AuditRead, EnvironmentsRead, MembersInvite, MembersManage, MembersRead, Requirement,
    RolesManage, TeamGuard, VirtuozzoCredentialsManage, VirtuozzoSessionRefresh,
};
