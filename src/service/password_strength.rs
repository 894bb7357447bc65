//! Weak and commonly breached passwords are refused at sign-up, password change and reset.
//!
//! Judged offline by zxcvbn (its dictionaries of common passwords, names and words, keyboard
//! patterns, dates, repeats), with the user's own email and name as extra inputs so that
//! "alice2024" is weak for alice. Optionally, a breach-range API in the style of Have I Been
//! Pwned's (k-anonymity: only the first 5 hex digits of the password's SHA-1 leave the
//! service) refuses passwords seen in breaches; when it is down or slow the check passes
//! (fail open, logged): a third party must not stop people from signing up.

use sha1::{Digest, Sha1};
use zxcvbn::Score;

use super::{Auth, Error, Result};
use crate::domain::password::check_policy;

/// The lowest zxcvbn score accepted: 3 means an estimated 10^8 guesses or more ("safely
/// unguessable" for an online attacker, and slow under argon2id offline).
pub const MIN_SCORE: Score = Score::Three;

/// Hex digits of the SHA-1 sent to the breach-range API.
const PREFIX_LEN: usize = 5;

/// Why zxcvbn finds `password` too weak, `None` when it is strong enough.
pub fn offline_verdict(password: &str, user_inputs: &[&str]) -> Option<String> {
    let entropy = zxcvbn::zxcvbn(password, user_inputs);
    if entropy.score() >= MIN_SCORE {
        return None;
    }
    let hint = entropy
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| format!(": {w}"))
        .unwrap_or_default();
    Some(format!(
        "password is too easy to guess{hint}; use a longer passphrase of several unrelated words"
    ))
}

/// The parts of the account a password should not be built from: the email, its local part,
/// and the name.
pub fn user_inputs(email: &str, name: &str) -> Vec<String> {
    let mut inputs = vec![email.to_owned(), name.to_owned()];
    inputs.push(name.split_whitespace().collect());
    if let Some((local, _)) = email.split_once('@') {
        inputs.push(local.to_owned());
        inputs.push(local.replace(['.', '_', '-', '+'], ""));
        inputs.extend(
            local
                .split(['.', '_', '-', '+'])
                .filter(|p| p.len() >= 3)
                .map(str::to_owned),
        );
    }
    inputs
}

/// The SHA-1 of the password in upper-case hex, split into the prefix sent and the suffix kept.
fn sha1_split(password: &str) -> (String, String) {
    let digest = hex::encode_upper(Sha1::digest(password.as_bytes()));
    let (prefix, suffix) = digest.split_at(PREFIX_LEN);
    (prefix.to_owned(), suffix.to_owned())
}

/// How often a range answer (`SUFFIX:COUNT` lines) lists `suffix`; 0 when absent. Padding
/// entries with a count of 0 (as HIBP adds on request) count as absent.
fn times_seen(range: &str, suffix: &str) -> u64 {
    range
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .find(|(s, _)| s.trim().eq_ignore_ascii_case(suffix))
        .and_then(|(_, count)| count.trim().parse().ok())
        .unwrap_or(0)
}

impl Auth {
    /// The whole password policy for a new password: length (422 `validation_error`), then
    /// strength and breaches (422 `password_too_weak`), both naming `field`.
    pub(crate) async fn check_new_password(
        &self,
        field: &'static str,
        password: &str,
        user_inputs: Vec<String>,
    ) -> Result<()> {
        check_policy(password).map_err(|e| Error::validation(field, e.0))?;
        let candidate = zeroize::Zeroizing::new(password.to_owned());
        let verdict = tokio::task::spawn_blocking(move || {
            let inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
            offline_verdict(&candidate, &inputs)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("password strength check failed: {e}")))?;
        if let Some(message) = verdict {
            metrics::counter!("passwords_refused_total", "reason" => "weak").increment(1);
            return Err(Error::WeakPassword { field, message });
        }
        let Some(breaches) = &self.breaches else {
            return Ok(());
        };
        let (prefix, suffix) = sha1_split(password);
        match breaches.range(&prefix).await {
            Ok(range) if times_seen(&range, &suffix) > 0 => {
                metrics::counter!("passwords_refused_total", "reason" => "breached").increment(1);
                Err(Error::WeakPassword {
                    field,
                    message: "password appears in known data breaches; choose another one".into(),
                })
            }
            Ok(_) => Ok(()),
            Err(reason) => {
                tracing::warn!(event = "password_breach_check_failed", reason = %reason);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_and_personal_passwords_are_weak() {
        for weak in [
            "password123",
            "Password1!",
            "qwertyuiop",
            "letmein!",
            "iloveyou2024",
        ] {
            assert!(offline_verdict(weak, &[]).is_some(), "{weak}");
        }
        let inputs = user_inputs("alice.wonderland@example.com", "Alice Wonderland");
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        assert!(offline_verdict("alicewonderland1", &inputs).is_some());
    }

    /// The passwords the black-box suite registers, changes and resets with stay accepted.
    #[test]
    fn the_suites_passwords_are_strong() {
        let inputs = user_inputs("user-0123456789abcdef@example.com", "Test User");
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        for strong in [
            "correct horse battery",
            "a brand new passphrase",
            "long enough pw",
            "yet another passphrase",
            "one more passphrase",
            "another password",
            "a completely new one",
            "the attacker's passphrase",
            "benchmark password 123",
            "a long password 123",
            "Ünïcødé pässwörd — with spaces and 🦀 that is longer than sixty-four characters!!",
        ] {
            assert_eq!(offline_verdict(strong, &inputs), None, "{strong}");
        }
    }

    #[test]
    fn range_answers_are_read_like_hibp() {
        let (prefix, suffix) = sha1_split("password");
        assert_eq!(prefix, "5BAA6");
        assert_eq!(suffix, "1E4C9B93F3F0682250B6CF8331B7EE68FD8");
        let range = "003D68EB55068C33ACE09247EE4C639306B:3\r\n\
                     1e4c9b93f3f0682250b6cf8331b7ee68fd8:9659365\r\n\
                     FFFFF9C0A38B5EB48E2A8F4D1C1F87D8C3E:0";
        assert_eq!(times_seen(range, &suffix), 9_659_365);
        assert_eq!(times_seen(range, "FFFFF9C0A38B5EB48E2A8F4D1C1F87D8C3E"), 0);
        assert_eq!(times_seen(range, "0000000000000000000000000000000000A"), 0);
        assert_eq!(times_seen("garbage", &suffix), 0);
    }
}
