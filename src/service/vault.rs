//! Secrets at rest: AES-256-GCM, a random nonce per value, and the owning row (team or user)
//! and field bound in as associated data, so a ciphertext copied to another row or column does
//! not decrypt. Two vaults use it: the teams' Virtuozzo credentials (`VZ_CREDENTIALS_KEY`) and
//! the users' TOTP secrets (`MFA_SECRET_KEY`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Error, Result};
use crate::domain::secret::SecretBytes;
use crate::domain::{TeamId, UserId};

pub struct CredentialVault {
    key: Option<RandomizedNonceKey>,
    /// The answer when no key is configured.
    missing: fn() -> Error,
}

fn aad(team_id: TeamId, field: &str) -> Vec<u8> {
    format!("mbpanel:team:{team_id}:{field}").into_bytes()
}

fn user_aad(user_id: UserId, field: &str) -> Vec<u8> {
    format!("mbpanel:user:{user_id}:{field}").into_bytes()
}

impl CredentialVault {
    /// The Virtuozzo credentials' vault (`VZ_CREDENTIALS_KEY`).
    pub fn new(key: Option<&SecretBytes>) -> anyhow::Result<Self> {
        Self::with_key(key, "VZ_CREDENTIALS_KEY", || Error::VirtuozzoNotConfigured)
    }

    /// The TOTP secrets' vault (`MFA_SECRET_KEY`).
    pub fn for_mfa(key: Option<&SecretBytes>) -> anyhow::Result<Self> {
        Self::with_key(key, "MFA_SECRET_KEY", || Error::MfaNotConfigured)
    }

    fn with_key(
        key: Option<&SecretBytes>,
        variable: &str,
        missing: fn() -> Error,
    ) -> anyhow::Result<Self> {
        let key = match key {
            Some(k) => Some(
                RandomizedNonceKey::new(&AES_256_GCM, k.expose())
                    .map_err(|_| anyhow::anyhow!("{variable}: not an AES-256 key"))?,
            ),
            None => None,
        };
        Ok(Self { key, missing })
    }

    fn key(&self) -> Result<&RandomizedNonceKey> {
        self.key.as_ref().ok_or_else(self.missing)
    }

    /// base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, team_id: TeamId, field: &str, plaintext: &str) -> Result<String> {
        self.seal_bound(aad(team_id, field), plaintext)
    }

    pub fn open(&self, team_id: TeamId, field: &str, sealed: &str) -> Result<String> {
        let what = format!("stored {field} of team {team_id}");
        self.open_bound(aad(team_id, field), sealed, &what)
    }

    /// A secret of one user (bound to the user id and field).
    pub fn seal_for_user(&self, user_id: UserId, field: &str, plaintext: &str) -> Result<String> {
        self.seal_bound(user_aad(user_id, field), plaintext)
    }

    pub fn open_for_user(&self, user_id: UserId, field: &str, sealed: &str) -> Result<String> {
        let what = format!("stored {field} of user {user_id}");
        self.open_bound(user_aad(user_id, field), sealed, &what)
    }

    fn seal_bound(&self, aad: Vec<u8>, plaintext: &str) -> Result<String> {
        let mut in_out = plaintext.as_bytes().to_vec();
        let nonce = self
            .key()?
            .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
            .map_err(|_| Error::Internal(anyhow::anyhow!("encryption failed")))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        Ok(B64.encode(out))
    }

    fn open_bound(&self, aad: Vec<u8>, sealed: &str, what: &str) -> Result<String> {
        let bad = || Error::Internal(anyhow::anyhow!("{what} does not decrypt"));
        let raw = B64.decode(sealed).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bound_to_team_and_field() {
        let vault = CredentialVault::new(Some(&SecretBytes::new(vec![9u8; 32]))).unwrap();
        let sealed = vault.seal(TeamId(7), "password", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            vault.open(TeamId(7), "password", &sealed).unwrap(),
            "hunter2"
        );
        assert!(vault.open(TeamId(8), "password", &sealed).is_err());
        assert!(vault.open(TeamId(7), "session", &sealed).is_err());
        assert_ne!(
            sealed,
            vault.seal(TeamId(7), "password", "hunter2").unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn user_secrets_are_bound_to_the_user() {
        let vault = CredentialVault::for_mfa(Some(&SecretBytes::new(vec![3u8; 32]))).unwrap();
        let sealed = vault
            .seal_for_user(UserId(5), "totp_secret", "JBSWY3DPEHPK3PXP")
            .unwrap();
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(
            vault
                .open_for_user(UserId(5), "totp_secret", &sealed)
                .unwrap(),
            "JBSWY3DPEHPK3PXP"
        );
        assert!(
            vault
                .open_for_user(UserId(6), "totp_secret", &sealed)
                .is_err()
        );
        assert!(
            vault.open(TeamId(5), "totp_secret", &sealed).is_err(),
            "not a team's"
        );
        let unset = CredentialVault::for_mfa(None).unwrap();
        assert!(matches!(
            unset.seal_for_user(UserId(5), "totp_secret", "x"),
            Err(Error::MfaNotConfigured)
        ));
    }

    #[test]
    fn without_a_key_it_is_not_configured() {
        let vault = CredentialVault::new(None).unwrap();
        assert!(matches!(
            vault.seal(TeamId(1), "password", "x"),
            Err(Error::VirtuozzoNotConfigured)
        ));
    }
}
