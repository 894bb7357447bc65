//! A team's Virtuozzo account: Owner-only credentials (sealed at rest), and the session key that
//! only the Owner refreshes — explicitly, or at session exchange when it is missing or expired.

use super::ports::Membership;
use super::rbac::TeamAccess;
use super::{Auth, ClientInfo, Error, Result, keys};
use crate::domain::email::Email;
use crate::domain::permissions::OWNER_ROLE;
use crate::domain::time::{Millis, ms};
use crate::domain::{TeamId, UserId};

const PASSWORD_FIELD: &str = "vz_password";
const SESSION_FIELD: &str = "vz_session_key";
/// How long a failed sign-in is reported by the team's Virtuozzo status.
const REFRESH_FAILURE_SHOWN_FOR: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

pub struct VirtuozzoStatus {
    pub vz_email: Option<String>,
    pub session_key_expires_at: Option<Millis>,
    /// `not_configured`, `no_session`, `active`, `expired` or `refresh_failed` (the last
    /// sign-in failed and there is no live key: the credentials need fixing).
    pub status: &'static str,
    /// When the last sign-in failed, while that is the news.
    pub refresh_failed_at: Option<Millis>,
}

fn require_owner(access: &TeamAccess) -> Result<()> {
    if access.role_name == OWNER_ROLE {
        Ok(())
    } else {
        Err(Error::OwnerOnly)
    }
}

impl Auth {
    /// Stores the credentials sealed and clears the session key; the next Owner exchange (or an
    /// explicit refresh) signs in.
    pub async fn set_virtuozzo_credentials(
        &self,
        access: &TeamAccess,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        require_owner(access)?;
        let email = Email::parse(email).map_err(|e| Error::validation("email", e.0))?;
        if password.is_empty() || password.len() > 1024 {
            return Err(Error::validation("password", "password is required"));
        }
        let sealed = self.vault.seal(access.team_id, PASSWORD_FIELD, password)?;
        self.repo
            .set_virtuozzo_credentials(access.team_id, email.as_str(), &sealed)
            .await?;
        // New credentials: the last failure is no longer the news.
        self.store
            .delete(&keys::virtuozzo_refresh_failed(access.team_id))
            .await?;
        let details = serde_json::json!({ "vz_email": email.as_str() });
        self.audit_team(
            "virtuozzo_credentials_changed",
            access.user_id,
            None,
            access.team_id,
            client,
            details,
        )
        .await;
        Ok(())
    }

    pub async fn virtuozzo_status(&self, access: &TeamAccess) -> Result<VirtuozzoStatus> {
        let record = self
            .repo
            .team_virtuozzo(access.team_id)
            .await?
            .ok_or(Error::NotMember)?;
        let status = match (
            &record.password_sealed,
            &record.session_sealed,
            record.session_key_expires_at,
        ) {
            (None, _, _) => "not_configured",
            (Some(_), Some(_), Some(at)) if at > self.now_ms() => "active",
            (Some(_), Some(_), Some(_)) => "expired",
            _ => "no_session",
        };
        let refresh_failed_at = match status {
            "not_configured" | "active" => None,
            _ => self
                .store
                .get(&keys::virtuozzo_refresh_failed(access.team_id))
                .await?
                .and_then(|at| at.parse::<Millis>().ok()),
        };
        Ok(VirtuozzoStatus {
            vz_email: record.vz_email,
            session_key_expires_at: record.session_key_expires_at,
            status: if refresh_failed_at.is_some() {
                "refresh_failed"
            } else {
                status
            },
            refresh_failed_at,
        })
    }

    /// Owner only: signs in now. 503 "Virtuozzo session refresh failed" when it does not work.
    pub async fn refresh_virtuozzo_session(
        &self,
        access: &TeamAccess,
        client: &ClientInfo,
    ) -> Result<Millis> {
        require_owner(access)?;
        self.sign_in_to_virtuozzo(access.team_id, access.user_id, client)
            .await
    }

    /// At session exchange: an Owner whose team has credentials but no live session key signs
    /// in first. If that sign-in fails the exchange still succeeds: stale credentials must not
    /// lock the Owner out of the one place where they can be fixed. The failure is audited and
    /// shown by `GET /teams/<id>/virtuozzo` (`status: refresh_failed`); an explicit refresh
    /// still answers 503 "Virtuozzo session refresh failed".
    pub(crate) async fn ensure_virtuozzo_session(
        &self,
        user_id: UserId,
        membership: &Membership,
        client: &ClientInfo,
    ) -> Result<()> {
        if membership.role_name != OWNER_ROLE {
            return Ok(());
        }
        let Some(record) = self.repo.team_virtuozzo(membership.team_id).await? else {
            return Ok(());
        };
        let live = record.session_sealed.is_some()
            && record
                .session_key_expires_at
                .is_some_and(|at| at > self.now_ms());
        if record.password_sealed.is_none() || live {
            return Ok(());
        }
        match self
            .sign_in_to_virtuozzo(membership.team_id, user_id, client)
            .await
        {
            Ok(_) | Err(Error::VirtuozzoRefreshFailed) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One sign-in per team at a time: a concurrent caller waits for the other's result.
    async fn sign_in_to_virtuozzo(
        &self,
        team_id: TeamId,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<Millis> {
        let lock = keys::virtuozzo_signin_lock(team_id);
        let lock_ttl = self.settings.vz_timeout + std::time::Duration::from_secs(2);
        if !self.store.set_if_absent(&lock, "1", lock_ttl).await? {
            let deadline = tokio::time::Instant::now() + lock_ttl;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                let record = self.repo.team_virtuozzo(team_id).await?;
                if let Some(at) = record
                    .and_then(|r| r.session_sealed.and(r.session_key_expires_at))
                    .filter(|at| *at > self.now_ms())
                {
                    return Ok(at);
                }
            }
            return Err(Error::VirtuozzoRefreshFailed);
        }
        let result = self.sign_in_now(team_id, user_id, client).await;
        let _ = self.store.delete(&lock).await;
        result
    }

    async fn sign_in_now(
        &self,
        team_id: TeamId,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<Millis> {
        let record = self
            .repo
            .team_virtuozzo(team_id)
            .await?
            .ok_or(Error::NotMember)?;
        let (Some(email), Some(password_sealed)) = (record.vz_email, record.password_sealed) else {
            return Err(Error::VirtuozzoRefreshFailed);
        };
        let attempt = async {
            // A key that cannot open the stored password (rotated, or differing between
            // instances) is a failed refresh, not a server error.
            let password = self
                .vault
                .open(team_id, PASSWORD_FIELD, &password_sealed)
                .map_err(|e| format!("credentials: {e}"))?;
            let session = self.virtuozzo.sign_in(&email, &password).await?;
            let sealed_session = self
                .vault
                .seal(team_id, SESSION_FIELD, &session)
                .map_err(|e| format!("sealing: {e}"))?;
            Ok::<_, String>(sealed_session)
        };
        match attempt.await {
            Ok(sealed_session) => {
                let expires_at = self.now_ms() + ms(self.settings.vz_session_ttl);
                // Only if the credentials are still the ones used: new ones saved meanwhile win.
                if !self
                    .repo
                    .set_virtuozzo_session(team_id, &sealed_session, expires_at, &password_sealed)
                    .await?
                {
                    return Err(Error::VirtuozzoRefreshFailed);
                }
                self.store
                    .delete(&keys::virtuozzo_refresh_failed(team_id))
                    .await?;
                self.audit_team(
                    "virtuozzo_session_refreshed",
                    user_id,
                    None,
                    team_id,
                    client,
                    serde_json::json!({}),
                )
                .await;
                Ok(expires_at)
            }
            Err(reason) => {
                tracing::warn!(event = "virtuozzo_refresh_failed", team_id = team_id.get(), %reason);
                self.store
                    .set(
                        &keys::virtuozzo_refresh_failed(team_id),
                        &self.now_ms().to_string(),
                        REFRESH_FAILURE_SHOWN_FOR,
                    )
                    .await?;
                let details = serde_json::json!({ "reason": reason });
                self.audit_team(
                    "virtuozzo_session_refresh_failed",
                    user_id,
                    None,
                    team_id,
                    client,
                    details,
                )
                .await;
                Err(Error::VirtuozzoRefreshFailed)
            }
        }
    }
}
