//! The user's trusted devices: the browsers whose emailed code (or second factor) was verified
//! and that sign in without a code until the trust expires. Forgetting one (or all) makes its
//! next sign-in ask for the emailed code again.

use super::ports::TrustedDeviceRecord;
use super::{Auth, ClientInfo, Error, Result};
use crate::domain::TokenHash;
use crate::domain::claims::AccessClaims;

/// A trusted device, and whether it is the caller's.
pub struct TrustedDevice {
    pub record: TrustedDeviceRecord,
    pub current: bool,
}

impl Auth {
    /// The caller's trusted devices; `device_token` (the caller's device cookie) marks its own.
    pub async fn trusted_devices(
        &self,
        claims: &AccessClaims,
        device_token: Option<&str>,
    ) -> Result<Vec<TrustedDevice>> {
        let own = device_token
            .filter(|t| !t.is_empty() && t.len() <= 128)
            .map(TokenHash::of);
        let devices = self.repo.trusted_devices(claims.sub, self.now_ms()).await?;
        Ok(devices
            .into_iter()
            .map(|record| TrustedDevice {
                current: own
                    .as_ref()
                    .is_some_and(|h| h.as_str() == record.device_hash),
                record,
            })
            .collect())
    }

    /// Forgets one trusted device of the caller (404 when it is not one of theirs).
    pub async fn forget_trusted_device(
        &self,
        claims: &AccessClaims,
        id: i64,
        client: &ClientInfo,
    ) -> Result<()> {
        if !self
            .repo
            .distrust_device_by_id(claims.sub, id, self.now_ms())
            .await?
        {
            return Err(Error::NotFound);
        }
        self.audit(
            "trusted_device_forgotten",
            Some(claims.sub),
            None,
            client,
            serde_json::json!({ "device_id": id }),
        )
        .await;
        Ok(())
    }

    /// Forgets every trusted device of the caller, this one included.
    pub async fn forget_all_trusted_devices(
        &self,
        claims: &AccessClaims,
        client: &ClientInfo,
    ) -> Result<()> {
        self.repo
            .distrust_devices(claims.sub, None, self.now_ms())
            .await?;
        self.audit(
            "trusted_devices_forgotten",
            Some(claims.sub),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }
}
