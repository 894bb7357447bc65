//! The password policy: verified exactly as received (no trimming, no case change).

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Long passphrases are welcome; the cap only bounds hashing work.
pub const MAX_PASSWORD_CHARS: usize = 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct WeakPassword(pub String);

pub fn check_policy(password: &str) -> Result<(), WeakPassword> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(WeakPassword(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(WeakPassword(format!(
            "password must be at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_characters_not_bytes() {
        assert!(check_policy("ééééééé").is_err());
        assert!(check_policy("éééééééé").is_ok());
        assert!(check_policy(&"x".repeat(MAX_PASSWORD_CHARS + 1)).is_err());
    }
}
