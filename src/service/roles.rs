//! Roles: the four built-in roles (shared, immutable) and each team's custom roles.

use super::ports::RoleRecord;
use super::rbac::TeamAccess;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::RoleId;
use crate::domain::text::role_name;

const MAX_ROLE_NAME_CHARS: usize = 50;

impl Auth {
    pub async fn team_roles(&self, access: &TeamAccess) -> Result<Vec<(RoleRecord, Vec<String>)>> {
        Ok(self.repo.team_roles(access.team_id).await?)
    }

    pub async fn permission_catalogue(&self) -> Result<Vec<(String, String)>> {
        Ok(self.repo.permission_catalogue().await?)
    }

    /// Every slug must exist in the catalogue; duplicates are dropped.
    async fn known_permissions(&self, slugs: &[String]) -> Result<Vec<String>> {
        let catalogue = self.repo.permission_catalogue().await?;
        let mut out: Vec<String> = Vec::new();
        for slug in slugs {
            if !catalogue.iter().any(|(s, _)| s == slug) {
                return Err(Error::validation(
                    "permissions",
                    format!("unknown permission: {slug}"),
                ));
            }
            if !out.contains(slug) {
                out.push(slug.clone());
            }
        }
        Ok(out)
    }

    pub async fn create_role(
        &self,
        editor: &TeamAccess,
        name: &str,
        permissions: &[String],
        client: &ClientInfo,
    ) -> Result<RoleId> {
        // Normalised, and refused when it could pass for a built-in role (case, width,
        // invisible characters, lookalike letters).
        let name =
            role_name(name, MAX_ROLE_NAME_CHARS).map_err(|e| Error::validation("name", e))?;
        let name = name.as_str();
        let permissions = self.known_permissions(permissions).await?;
        editor.ensure_can_grant(&permissions)?;
        let role_id = self
            .repo
            .create_role(editor.team_id, name, &permissions, self.now_ms())
            .await?
            .ok_or(Error::Conflict {
                code: "role_name_taken",
                detail: "A role of that name already exists",
            })?;
        let details =
            serde_json::json!({ "role_id": role_id, "name": name, "permissions": permissions });
        self.audit_team(
            "role_created",
            editor.user_id,
            None,
            editor.team_id,
            client,
            details,
        )
        .await;
        Ok(role_id)
    }

    /// Built-in roles are immutable (409). The editor must hold every permission the role has
    /// now and every one it will have.
    pub async fn set_role_permissions(
        &self,
        editor: &TeamAccess,
        role_id: RoleId,
        permissions: &[String],
        client: &ClientInfo,
    ) -> Result<()> {
        let role = self.assignable_role(editor.team_id, role_id).await?;
        if role.builtin || role.team_id.is_none() {
            return Err(Error::Conflict {
                code: "builtin_role_immutable",
                detail: "Built-in roles cannot be edited",
            });
        }
        let permissions = self.known_permissions(permissions).await?;
        let before = self.repo.role_permissions(role.id).await?;
        editor.ensure_can_grant(&before)?;
        editor.ensure_can_grant(&permissions)?;
        self.rbac_changed(editor.team_id).await?;
        self.repo
            .set_role_permissions(role.id, &permissions)
            .await?;
        self.rbac_changed(editor.team_id).await?;
        let details = serde_json::json!({ "role_id": role.id, "name": role.name, "from": before, "to": permissions });
        self.audit_team(
            "role_permissions_changed",
            editor.user_id,
            None,
            editor.team_id,
            client,
            details,
        )
        .await;
        Ok(())
    }
}
