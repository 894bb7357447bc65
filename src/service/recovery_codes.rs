//! Recovery codes: ten single-use codes of 80 random bits each, shown once, stored as SHA-256
//! (bound to the user). Their entropy makes a plain hash safe: nothing to brute-force.

use super::tokens;
use crate::domain::{TokenHash, UserId};

pub const COUNT: usize = 10;
/// Crockford-style alphabet without look-alikes (no i, l, o, u).
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// 16 symbols of 5 bits: 80 bits.
const SYMBOLS: usize = 16;

/// A fresh code, written `xxxx-xxxx-xxxx-xxxx`.
pub fn generate() -> String {
    let bytes = tokens::random_bytes::<SYMBOLS>();
    let symbols: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    symbols
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// What a typed code means: case, spaces and dashes do not matter.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `code` looks like one of ours at all (so junk is refused before any lookup).
pub fn well_formed(code: &str) -> bool {
    let n = normalise(code);
    n.len() == SYMBOLS && n.bytes().all(|b| ALPHABET.contains(&b))
}

/// The stored form.
pub fn hash(user_id: UserId, code: &str) -> TokenHash {
    TokenHash::of(&format!("mbpanel-recovery:{user_id}:{}", normalise(code)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_well_formed_and_forgiving_to_type() {
        let a = generate();
        assert_eq!(a.len(), 19);
        assert!(well_formed(&a));
        assert_ne!(a, generate());
        assert_eq!(
            hash(UserId(1), &a),
            hash(UserId(1), &a.to_uppercase().replace('-', " "))
        );
        assert_ne!(
            hash(UserId(1), &a),
            hash(UserId(2), &a),
            "bound to the user"
        );
        assert!(!well_formed("123456"));
        assert!(!well_formed("iiii-iiii-iiii-iiii"));
    }
}
