//! Token cryptography: JWT signing and verification, CSPRNG reference tokens, the signed
//! session-bound CSRF token, OTP codes, and hashing of stored tokens.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::domain::SessionId;
use crate::domain::claims::{AccessClaims, RefreshClaims, TokenType};
use crate::domain::secret::SecretBytes;
use crate::domain::time::Millis;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of randomness in reference tokens (pre-auth, email links, device ids): 256 bits.
const REFERENCE_TOKEN_BYTES: usize = 32;
/// Bytes of randomness in token ids (`jti`): 128 bits.
const JTI_BYTES: usize = 16;
/// Header parameters we never act on; a token carrying them is refused (RFC 8725 §3.1, ASVS 9.1.3).
const FORBIDDEN_HEADER_PARAMS: [&str; 5] = ["crit", "jku", "x5u", "jwk", "x5c"];
/// Clock skew tolerated on `exp`, in seconds.
const LEEWAY_SECONDS: u64 = 5;

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    // The OS CSPRNG failing is not recoverable; refuse to issue predictable tokens.
    getrandom::fill(&mut buf).expect("operating system random number generator failed");
    buf
}

/// A URL-safe reference token with 256 bits from the CSPRNG.
pub fn random_token() -> String {
    B64.encode(random_bytes::<REFERENCE_TOKEN_BYTES>())
}

/// A token id (`jti`) with 128 bits from the CSPRNG.
pub fn random_jti() -> String {
    hex::encode(random_bytes::<JTI_BYTES>())
}

/// A uniformly random 6-digit code.
pub fn random_otp_code() -> String {
    // Rejection sampling keeps the distribution uniform.
    loop {
        let n = u32::from_le_bytes(random_bytes::<4>());
        if n < u32::MAX - (u32::MAX % 1_000_000) {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

/// Hex SHA-256 of a value that must not appear in a key name (an email address). A token that
/// is stored is hashed as a `TokenHash` instead.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// A key fingerprint for the JWT `kid` header: lets operators see when two services sign with
/// different keys without revealing the key.
pub fn key_fingerprint(key: &[u8]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported or forbidden header")]
    Header,
    #[error("signed with an unknown key")]
    UnknownKey,
    #[error("invalid signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("invalid claims")]
    Claims,
    #[error("wrong token type")]
    WrongType,
}

/// A CSRF cookie/header pair taken apart (see `TokenKeys::explain_csrf`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfExplanation {
    /// The header is exactly the cookie (the double submit).
    pub equal: bool,
    /// The session the token is bound to and when it expires; `None` when it is not one of
    /// our CSRF tokens (`<sid>.<expires_ms>.<nonce>.<mac>`).
    pub session_id: Option<SessionId>,
    pub expires_at: Option<Millis>,
    /// Signed with this service's key.
    pub signature_ok: bool,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn new(secret: &[u8]) -> Self {
        Self {
            kid: key_fingerprint(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// HS256 signing with `JWT_SECRET_KEY` (its raw bytes, as PyJWT uses them), verification with
/// the current key or, during a rotation, the previous one.
pub struct TokenKeys {
    current: SigningKey,
    previous: Option<SigningKey>,
    derived: SecretBytes,
}

impl TokenKeys {
    pub fn new(secret: &SecretBytes, previous: Option<&SecretBytes>) -> Self {
        Self {
            current: SigningKey::new(secret.expose()),
            previous: previous.map(|p| SigningKey::new(p.expose())),
            derived: SecretBytes::new(hmac(secret.expose(), &[b"mbpanel-auth derived key v1"])),
        }
    }

    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    fn sign<T: Serialize>(&self, claims: &T) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.current.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    pub fn sign_access(&self, claims: &AccessClaims) -> String {
        self.sign(claims)
    }

    pub fn sign_refresh(&self, claims: &RefreshClaims) -> String {
        self.sign(claims)
    }

    /// Verifies an access token at `now` (epoch seconds, from the service's clock).
    pub fn verify_access(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        let claims: AccessClaims = self.verify(token)?;
        check_expiry(claims.exp, now)?;
        if claims.token_type != TokenType::Access {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    /// Verifies a refresh token at `now` (epoch seconds, from the service's clock).
    pub fn verify_refresh(&self, token: &str, now: i64) -> Result<RefreshClaims, TokenError> {
        let claims: RefreshClaims = self.verify(token)?;
        check_expiry(claims.exp, now)?;
        if claims.token_type != TokenType::Refresh {
            return Err(TokenError::WrongType);
        }
        Ok(claims)
    }

    fn verify<T: DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let key = self.key_for(token)?;
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` stays required, but is checked against our clock (`check_expiry`), not the
        // system's.
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "jti"]);
        jsonwebtoken::decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    ErrorKind::InvalidSignature => TokenError::Signature,
                    ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                        TokenError::Header
                    }
                    ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => TokenError::Claims,
                    _ => TokenError::Malformed,
                }
            })
    }

    /// Inspects the header ourselves before any verification: exactly `HS256`, no parameter
    /// that asks us to fetch or trust a key, and a `kid` (when present) naming one of our keys.
    fn key_for(&self, token: &str) -> Result<&SigningKey, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = B64.decode(header_b64).map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        if header.get("alg").and_then(|v| v.as_str()) != Some("HS256") {
            return Err(TokenError::Header);
        }
        if FORBIDDEN_HEADER_PARAMS
            .iter()
            .any(|p| header.contains_key(*p))
        {
            return Err(TokenError::Header);
        }
        match header.get("kid") {
            None => Ok(&self.current),
            Some(serde_json::Value::String(kid)) if *kid == self.current.kid => Ok(&self.current),
            Some(serde_json::Value::String(kid)) => self
                .previous
                .as_ref()
                .filter(|p| p.kid == *kid)
                .ok_or(TokenError::UnknownKey),
            Some(_) => Err(TokenError::Header),
        }
    }

    /// For diagnostics: whether the signature verifies with one of our keys, ignoring expiry
    /// and claims. The `kid` of the key that verified it.
    pub fn check_signature(&self, token: &str) -> Result<String, TokenError> {
        let key = self.key_for(token)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(token, &key.decoding, &validation)
            .map(|_| key.kid.clone())
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => TokenError::Signature,
                _ => TokenError::Malformed,
            })
    }

    // -- CSRF ------------------------------------------------------------------------------

    /// A signed double-submit token bound to the session: `<sid>.<expires_ms>.<nonce>.<mac>`.
    pub fn csrf_token(&self, sid: SessionId, expires_at: Millis, nonce: &str) -> String {
        let mac = self.csrf_mac(sid, expires_at, nonce);
        format!("{sid}.{expires_at}.{nonce}.{}", B64.encode(mac))
    }

    fn csrf_mac(&self, sid: SessionId, expires_at: Millis, nonce: &str) -> Vec<u8> {
        hmac(
            self.derived.expose(),
            &[
                b"csrf",
                sid.to_string().as_bytes(),
                expires_at.to_string().as_bytes(),
                nonce.as_bytes(),
            ],
        )
    }

    /// True when the header equals the cookie, and the token is ours, unexpired and bound to
    /// this session.
    pub fn verify_csrf(&self, cookie: &str, header: &str, sid: SessionId, now: Millis) -> bool {
        if !constant_time_eq(cookie.as_bytes(), header.as_bytes()) {
            return false;
        }
        let mut parts = header.split('.');
        let (Some(sid_s), Some(exp_s), Some(nonce), Some(mac_b64), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return false;
        };
        let (Ok(token_sid), Ok(expires_at), Ok(mac)) = (
            sid_s.parse::<SessionId>(),
            exp_s.parse::<Millis>(),
            B64.decode(mac_b64),
        ) else {
            return false;
        };
        let expected = self.csrf_mac(token_sid, expires_at, nonce);
        constant_time_eq(&mac, &expected) && token_sid == sid && expires_at > now
    }

    /// For diagnostics: what a CSRF cookie and header pair says, part by part (the verdict
    /// is `verify_csrf`'s).
    pub fn explain_csrf(&self, cookie: &str, header: &str) -> CsrfExplanation {
        let token = if cookie.is_empty() { header } else { cookie };
        let mut parts = token.split('.');
        let parsed = match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some(sid), Some(exp), Some(nonce), Some(mac), None) => {
                match (
                    sid.parse::<SessionId>(),
                    exp.parse::<Millis>(),
                    B64.decode(mac),
                ) {
                    (Ok(sid), Ok(expires_at), Ok(mac)) => Some((sid, expires_at, nonce, mac)),
                    _ => None,
                }
            }
            _ => None,
        };
        CsrfExplanation {
            equal: constant_time_eq(cookie.as_bytes(), header.as_bytes()),
            session_id: parsed.as_ref().map(|p| p.0),
            expires_at: parsed.as_ref().map(|p| p.1),
            signature_ok: parsed.as_ref().is_some_and(|(sid, exp, nonce, mac)| {
                constant_time_eq(mac, &self.csrf_mac(*sid, *exp, nonce))
            }),
        }
    }

    // -- OTP ---------------------------------------------------------------------------------

    /// The stored form of an OTP: bound to the pre-auth token it was issued for.
    pub fn otp_digest(&self, preauth_token: &str, code: &str) -> String {
        hex::encode(hmac(
            self.derived.expose(),
            &[b"otp", preauth_token.as_bytes(), code.as_bytes()],
        ))
    }
}

/// `exp` (epoch seconds) against `now`, with the leeway for clock skew between services.
fn check_expiry(exp: i64, now: i64) -> Result<(), TokenError> {
    if exp < now - LEEWAY_SECONDS as i64 {
        Err(TokenError::Expired)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{TeamId, UserId};

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretBytes::new(vec![7u8; 32]), None)
    }

    fn access(exp: i64) -> AccessClaims {
        AccessClaims {
            sub: UserId(1),
            team_id: TeamId(1),
            role: "Owner".into(),
            sid: SessionId(9),
            jti: random_jti(),
            iat: exp - 900,
            exp,
            token_type: TokenType::Access,
        }
    }

    #[test]
    fn signs_and_verifies_with_kid() {
        let k = keys();
        let now = crate::domain::time::now_ms() / 1000;
        let t = k.sign_access(&access(now + 60));
        assert_eq!(k.verify_access(&t, now).unwrap().sid, SessionId(9));
        assert_eq!(
            jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(),
            Some(k.kid())
        );
        assert_eq!(k.verify_refresh(&t, now), Err(TokenError::Claims));
    }

    #[test]
    fn expired_and_foreign_tokens_fail() {
        let k = keys();
        let now = crate::domain::time::now_ms() / 1000;
        assert_eq!(
            k.verify_access(&k.sign_access(&access(now - 60)), now),
            Err(TokenError::Expired)
        );
        let other = TokenKeys::new(&SecretBytes::new(vec![8u8; 32]), None);
        assert_eq!(
            k.verify_access(&other.sign_access(&access(now + 60)), now),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn previous_key_verifies_during_rotation() {
        let old = SecretBytes::new(vec![8u8; 32]);
        let k = TokenKeys::new(&SecretBytes::new(vec![7u8; 32]), Some(&old));
        let now = crate::domain::time::now_ms() / 1000;
        let t = TokenKeys::new(&old, None).sign_access(&access(now + 60));
        assert!(k.verify_access(&t, now).is_ok());
    }

    #[test]
    fn csrf_is_bound_to_session_and_expiry() {
        let k = keys();
        let t = k.csrf_token(SessionId(5), 2_000, "n");
        assert!(k.verify_csrf(&t, &t, SessionId(5), 1_000));
        assert!(!k.verify_csrf(&t, &t, SessionId(6), 1_000));
        assert!(!k.verify_csrf(&t, &t, SessionId(5), 3_000));
        let forged = "5.2000.n.AAAA";
        assert!(!k.verify_csrf(forged, forged, SessionId(5), 1_000));
    }

    #[test]
    fn csrf_explanation_takes_the_pair_apart() {
        let k = keys();
        let t = k.csrf_token(SessionId(5), 2_000, "n");
        let e = k.explain_csrf(&t, &t);
        assert!(e.equal && e.signature_ok);
        assert_eq!(
            (e.session_id, e.expires_at),
            (Some(SessionId(5)), Some(2_000))
        );
        assert!(!k.explain_csrf(&t, "other").equal);
        let other = TokenKeys::new(&SecretBytes::new(vec![8u8; 32]), None);
        let foreign = other.csrf_token(SessionId(5), 2_000, "n");
        assert!(!k.explain_csrf(&foreign, &foreign).signature_ok);
        assert_eq!(k.explain_csrf("garbage", "garbage").session_id, None);
    }

    #[test]
    fn otp_codes_are_six_digits() {
        for _ in 0..100 {
            let c = random_otp_code();
            assert_eq!(c.len(), 6);
            assert!(c.chars().all(|ch| ch.is_ascii_digit()));
        }
    }
}
