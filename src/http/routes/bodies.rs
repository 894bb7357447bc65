//! Answer shapes shared by several routes.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::TeamId;
use crate::service::ports::Membership;

/// An answer that is only a message.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Detail {
    pub detail: &'static str,
}

impl Detail {
    pub fn new(detail: &'static str) -> axum::Json<Self> {
        axum::Json(Self { detail })
    }
}

/// A team or role by id and name.
// One schema for both kinds, so `id` is the bare number (`TeamId::get`, `RoleId::get`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdName<'a> {
    pub id: i64,
    pub name: &'a str,
}

/// One of the caller's teams and the caller's role name in it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamSummary<'a> {
    #[schema(value_type = i64)]
    pub id: TeamId,
    pub name: &'a str,
    #[schema(examples("Owner", "Admin", "Member", "Viewer"))]
    pub role: &'a str,
}

impl<'a> From<&'a Membership> for TeamSummary<'a> {
    fn from(m: &'a Membership) -> Self {
        Self {
            id: m.team_id,
            name: &m.team_name,
            role: &m.role_name,
        }
    }
}
