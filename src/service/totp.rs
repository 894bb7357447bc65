//! RFC 6238 TOTP as authenticator apps expect it: HMAC-SHA-1, 6 digits, 30 s steps, one step
//! of clock skew either way. The matched step is returned so that the caller can refuse a
//! replay (RFC 6238 §5.2: a code is accepted once).

use totp_rs::{Algorithm, Builder, Secret, Totp};

use super::tokens;

const DIGITS: u8 = 6;
pub const STEP_SECONDS: u64 = 30;
const SKEW_STEPS: u16 = 1;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "mbpanel";

/// A new random secret, base32 (RFC 4648, no padding) as authenticator apps take it.
pub fn new_secret() -> String {
    Secret::from(tokens::random_bytes::<SECRET_BYTES>()).to_base32()
}

fn totp(secret_base32: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_base32).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_skew(SKEW_STEPS)
        .with_step_duration(STEP_SECONDS)
        .with_secret(secret)
        // ':' separates issuer and account in the label; it cannot be part of either.
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(ISSUER))
        .build()
        .ok()
}

/// `otpauth://totp/mbpanel:<account>?secret=…&issuer=mbpanel` for the QR code.
pub fn otpauth_uri(secret_base32: &str, account: &str) -> Option<String> {
    totp(secret_base32, account)?.to_url().ok()
}

/// The time step `code` is valid for at `unix_seconds` (±1 step), compared in constant time.
pub fn matching_step(secret_base32: &str, code: &str, unix_seconds: u64) -> Option<i64> {
    if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let step = totp(secret_base32, "")?.check(code, unix_seconds)?;
    i64::try_from(step).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (the 8-digit vectors' last 6 digits).
    #[test]
    fn rfc_6238_vectors() {
        let secret = Secret::from(*b"12345678901234567890").to_base32();
        for (time, code) in [
            (59u64, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(
                matching_step(&secret, code, time),
                Some(i64::try_from(time / 30).unwrap())
            );
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = new_secret();
        let t = 1_700_000_000u64;
        let code = totp(&secret, "").unwrap().generate(t).to_string();
        let step = i64::try_from(t / 30).unwrap();
        assert_eq!(matching_step(&secret, &code, t - 30), Some(step));
        assert_eq!(matching_step(&secret, &code, t + 30), Some(step));
        assert_eq!(matching_step(&secret, &code, t + 90), None);
        assert_eq!(matching_step(&secret, "12345", t), None);
        assert_eq!(matching_step(&secret, "12345a", t), None);
    }

    #[test]
    fn the_uri_carries_the_secret_and_issuer() {
        let secret = new_secret();
        assert_eq!(secret.len(), 32);
        let uri = otpauth_uri(&secret, "a:b@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/mbpanel:"), "{uri}");
        assert!(uri.contains(&format!("secret={secret}")), "{uri}");
        assert!(uri.contains("issuer=mbpanel"), "{uri}");
    }
}
