//! The permission catalogue and the built-in roles (seeded by the migrations; these constants
//! are what the code and the tests refer to).

pub const TEAM_MEMBERS_READ: &str = "team.members.read";
pub const TEAM_MEMBERS_INVITE: &str = "team.members.invite";
pub const TEAM_MEMBERS_MANAGE: &str = "team.members.manage";
pub const TEAM_ROLES_MANAGE: &str = "team.roles.manage";
pub const VIRTUOZZO_CREDENTIALS_MANAGE: &str = "virtuozzo.credentials.manage";
pub const VIRTUOZZO_SESSION_REFRESH: &str = "virtuozzo.session.refresh";
pub const AUDIT_READ: &str = "audit.read";
pub const ENVIRONMENTS_READ: &str = "environments.read";
pub const ENVIRONMENTS_MANAGE: &str = "environments.manage";

pub const OWNER_ROLE: &str = "Owner";
pub const BUILTIN_ROLES: [&str; 4] = [OWNER_ROLE, "Admin", "Member", "Viewer"];
