//! Key material held in memory (JWT keys, AES keys): its bytes never reach a `Debug` output or
//! a log line.

use std::fmt;

use secrecy::{ExposeSecret, SecretBox};

/// Raw bytes that must never be printed.
pub struct SecretBytes(SecretBox<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }
    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::new(self.expose().to_vec())
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
