//! Third-party credentials at rest: AES-256-GCM with `VZ_CREDENTIALS_KEY`, a random nonce per
//! value, and the team and field bound in as associated data, so a ciphertext copied to another
//! row or column does not decrypt.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::{Error, Result};
use crate::config::SecretBytes;
use crate::domain::TeamId;

pub struct CredentialVault {
    key: Option<RandomizedNonceKey>,
}

fn aad(team_id: TeamId, field: &str) -> Vec<u8> {
    format!("mbpanel:team:{team_id}:{field}").into_bytes()
}

impl CredentialVault {
    pub fn new(key: Option<&SecretBytes>) -> anyhow::Result<Self> {
        let key = match key {
            Some(k) => Some(
                RandomizedNonceKey::new(&AES_256_GCM, k.expose())
                    .map_err(|_| anyhow::anyhow!("VZ_CREDENTIALS_KEY: not an AES-256 key"))?,
            ),
            None => None,
        };
        Ok(Self { key })
    }

    fn key(&self) -> Result<&RandomizedNonceKey> {
        self.key.as_ref().ok_or(Error::VirtuozzoNotConfigured)
    }

    /// base64(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, team_id: TeamId, field: &str, plaintext: &str) -> Result<String> {
        let mut in_out = plaintext.as_bytes().to_vec();
        let nonce = self
            .key()?
            .seal_in_place_append_tag(Aad::from(aad(team_id, field)), &mut in_out)
            .map_err(|_| Error::Internal(anyhow::anyhow!("encryption failed")))?;
        let mut out = nonce.as_ref().to_vec();
        out.extend_from_slice(&in_out);
        Ok(B64.encode(out))
    }

    pub fn open(&self, team_id: TeamId, field: &str, sealed: &str) -> Result<String> {
        let bad = || {
            Error::Internal(anyhow::anyhow!(
                "stored {field} of team {team_id} does not decrypt"
            ))
        };
        let raw = B64.decode(sealed).map_err(|_| bad())?;
        if raw.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(aad(team_id, field)), &mut in_out)
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
        let sealed = vault.seal(7, "password", "hunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_eq!(vault.open(7, "password", &sealed).unwrap(), "hunter2");
        assert!(vault.open(8, "password", &sealed).is_err());
        assert!(vault.open(7, "session", &sealed).is_err());
        assert_ne!(
            sealed,
            vault.seal(7, "password", "hunter2").unwrap(),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn without_a_key_it_is_not_configured() {
        let vault = CredentialVault::new(None).unwrap();
        assert!(matches!(
            vault.seal(1, "password", "x"),
            Err(Error::VirtuozzoNotConfigured)
        ));
    }
}
