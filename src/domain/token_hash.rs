//! The stored form of a reference token (password-reset and new-device links, invites,
//! trusted-device cookies, recovery codes): its SHA-256, so the database never holds a usable
//! token. A `TokenHash` is made by hashing what was presented (`TokenHash::of`); the store
//! only binds and compares it. Its `Debug` hides the value, so it cannot end up in a log.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Hex SHA-256 of a token. `Deserialize` only reads back what this service wrote itself (a
/// pre-auth record in the ephemeral store).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }

    /// The hex digest, to bind in SQL or name a key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_the_token_and_hides_it_in_debug() {
        let h = TokenHash::of("abc");
        assert_eq!(
            h.as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(h, TokenHash::of("abc"));
        assert_ne!(h, TokenHash::of("abd"));
        assert_eq!(format!("{h:?}"), "TokenHash(<redacted>)");
        assert!(!format!("{:?}", Some(&h)).contains("ba78"));
    }
}
