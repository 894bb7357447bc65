//! Passkeys (WebAuthn L2, user verification required) with webauthn-rs: registration
//! (begin/finish, the ceremony state in the ephemeral store with a TTL, so any instance can
//! finish it), list, rename, delete, and use as the second factor of a login (begin/finish
//! against the pre-auth token, attempts counted as for the emailed code). The relying party
//! is `BASE_URL`: its host is the RP id, its origin the only accepted origin. A `BASE_URL`
//! whose host is an IP address cannot be an RP id: passkeys are then unavailable (409).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder,
};

use super::login::{OtpOutcome, PreauthState};
use super::ports::PasskeyRecord;
use super::{Auth, ClientInfo, Error, Result, keys, tokens};
use crate::domain::claims::AccessClaims;
use crate::domain::{TokenHash, UserId};

/// How long a registration ceremony may take.
pub const REGISTRATION_TTL: Duration = Duration::from_secs(300);
pub const MAX_PASSKEY_NAME_CHARS: usize = 64;
/// Passkeys one user may register.
pub const MAX_PASSKEYS: usize = 20;

/// The relying party, when `BASE_URL` can be one.
pub struct RelyingParty(Option<Webauthn>);

impl RelyingParty {
    pub fn from_base_url(base: &Url) -> Self {
        let build = || {
            let rp_id = base.domain()?;
            let origin = Url::parse(&base.origin().ascii_serialization()).ok()?;
            WebauthnBuilder::new(rp_id, &origin)
                .ok()?
                .rp_name("mbpanel")
                .build()
                .ok()
        };
        Self(build())
    }

    fn get(&self) -> Result<&Webauthn> {
        self.0.as_ref().ok_or(Error::Conflict {
            code: "passkeys_unavailable",
            detail: "Passkeys need a BASE_URL whose host is a domain name",
        })
    }
}

#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    user_id: UserId,
    state: PasskeyRegistration,
}

#[derive(Serialize, Deserialize)]
struct PendingLogin {
    user_id: UserId,
    state: PasskeyAuthentication,
}

/// The opaque handle of a WebAuthn user: stable per account, no personal data.
fn user_handle(user_id: UserId) -> Uuid {
    Uuid::from_u64_pair(0x6d62_7061_6e65_6c00, user_id.get() as u64)
}

fn credential_id(p: &Passkey) -> Result<String> {
    let v = serde_json::to_value(p.cred_id()).map_err(anyhow::Error::from)?;
    Ok(v.as_str().unwrap_or_default().to_owned())
}

fn parse_passkey(r: &PasskeyRecord) -> Result<Passkey> {
    Ok(serde_json::from_str(&r.passkey).map_err(anyhow::Error::from)?)
}

fn valid_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_PASSKEY_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || crate::domain::text::is_format_char(c))
    {
        return Err(Error::validation(
            "name",
            format!("name must be 1 to {MAX_PASSKEY_NAME_CHARS} printable characters"),
        ));
    }
    Ok(name.to_owned())
}

fn parse_credential<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| Error::validation("credential", format!("not a WebAuthn credential: {e}")))
}

fn bad_ceremony(e: impl std::fmt::Display) -> Error {
    tracing::info!(event = "webauthn_refused", reason = %e);
    Error::PasskeyInvalid {
        attempts_remaining: None,
    }
}

impl Auth {
    pub async fn list_passkeys(&self, claims: &AccessClaims) -> Result<Vec<PasskeyRecord>> {
        Ok(self.repo.passkeys(claims.sub).await?)
    }

    /// Starts a registration: the options for `navigator.credentials.create` and the id of
    /// the ceremony to finish.
    pub async fn begin_passkey_registration(
        &self,
        claims: &AccessClaims,
    ) -> Result<(String, serde_json::Value)> {
        let rp = self.passkeys.get()?;
        let user = self
            .repo
            .user_by_id(claims.sub)
            .await?
            .ok_or(Error::UserNotFound)?;
        let existing = self.repo.passkeys(user.id).await?;
        if existing.len() >= MAX_PASSKEYS {
            return Err(Error::Conflict {
                code: "too_many_passkeys",
                detail: "Too many passkeys; delete one first",
            });
        }
        let exclude = existing
            .iter()
            .map(parse_passkey)
            .map(|p| p.map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let (options, state) = rp
            .start_passkey_registration(
                user_handle(user.id),
                &user.email,
                &user.name,
                Some(exclude),
            )
            .map_err(|e| Error::Internal(anyhow::anyhow!("webauthn: {e}")))?;
        let ceremony = tokens::random_token();
        let pending = PendingRegistration {
            user_id: user.id,
            state,
        };
        let value = serde_json::to_string(&pending).map_err(anyhow::Error::from)?;
        self.store
            .set(
                &keys::passkey_registration(&ceremony),
                &value,
                REGISTRATION_TTL,
            )
            .await?;
        let options = serde_json::to_value(&options).map_err(anyhow::Error::from)?;
        Ok((ceremony, options))
    }

    /// Verifies the authenticator's answer and stores the passkey.
    pub async fn finish_passkey_registration(
        &self,
        claims: &AccessClaims,
        ceremony: &str,
        name: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> Result<PasskeyRecord> {
        let rp = self.passkeys.get()?;
        let name = valid_name(name)?;
        let credential: RegisterPublicKeyCredential = parse_credential(credential)?;
        if ceremony.is_empty() || ceremony.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let raw = self
            .store
            .take(&keys::passkey_registration(ceremony))
            .await?
            .ok_or(Error::TokenInvalid)?;
        let pending: PendingRegistration =
            serde_json::from_str(&raw).map_err(anyhow::Error::from)?;
        if pending.user_id != claims.sub {
            return Err(Error::TokenInvalid);
        }
        let passkey = rp
            .finish_passkey_registration(&credential, &pending.state)
            .map_err(bad_ceremony)?;
        let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
        let now = self.now_ms();
        let id = self
            .repo
            .insert_passkey(claims.sub, &credential_id(&passkey)?, &name, &json, now)
            .await?
            .ok_or(Error::Conflict {
                code: "passkey_exists",
                detail: "This passkey is registered already",
            })?;
        self.invalidate_mfa_notices();
        metrics::counter!("passkeys_registered_total").increment(1);
        self.audit(
            "passkey_registered",
            Some(claims.sub),
            None,
            client,
            serde_json::json!({ "passkey_id": id, "name": name }),
        )
        .await;
        Ok(PasskeyRecord {
            id,
            name,
            passkey: json,
            created_at: now,
            last_used_at: None,
        })
    }

    pub async fn rename_passkey(
        &self,
        claims: &AccessClaims,
        id: i64,
        name: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let name = valid_name(name)?;
        if !self.repo.rename_passkey(claims.sub, id, &name).await? {
            return Err(Error::NotFound);
        }
        self.audit(
            "passkey_renamed",
            Some(claims.sub),
            None,
            client,
            serde_json::json!({ "passkey_id": id, "name": name }),
        )
        .await;
        Ok(())
    }

    pub async fn delete_passkey(
        &self,
        claims: &AccessClaims,
        id: i64,
        client: &ClientInfo,
    ) -> Result<()> {
        if !self.repo.delete_passkey(claims.sub, id).await? {
            return Err(Error::NotFound);
        }
        self.invalidate_mfa_notices();
        self.audit(
            "passkey_deleted",
            Some(claims.sub),
            None,
            client,
            serde_json::json!({ "passkey_id": id }),
        )
        .await;
        Ok(())
    }

    /// A login waiting for its second factor: the options for `navigator.credentials.get`.
    pub async fn begin_passkey_login(&self, preauth_token: &str) -> Result<serde_json::Value> {
        let rp = self.passkeys.get()?;
        let (_, state) = self.pending_second_factor(preauth_token).await?;
        let passkeys = self
            .repo
            .passkeys(state.user_id)
            .await?
            .iter()
            .map(parse_passkey)
            .collect::<Result<Vec<_>>>()?;
        if passkeys.is_empty() {
            return Err(Error::Conflict {
                code: "no_passkeys",
                detail: "This account has no passkey",
            });
        }
        let (options, auth_state) = rp
            .start_passkey_authentication(&passkeys)
            .map_err(|e| Error::Internal(anyhow::anyhow!("webauthn: {e}")))?;
        let ttl = self
            .store
            .ttl(&keys::preauth(preauth_token))
            .await?
            .ok_or(Error::PreauthExpired)?;
        let pending = PendingLogin {
            user_id: state.user_id,
            state: auth_state,
        };
        let value = serde_json::to_string(&pending).map_err(anyhow::Error::from)?;
        self.store
            .set(&keys::passkey_login(preauth_token), &value, ttl)
            .await?;
        Ok(serde_json::to_value(&options).map_err(anyhow::Error::from)?)
    }

    /// Checks the assertion; each failure counts like a wrong emailed code, and the last
    /// allowed one burns the pre-auth token. Passing it counts as the emailed code (the
    /// device becomes trusted the same way).
    pub async fn finish_passkey_login(
        &self,
        preauth_token: &str,
        credential: serde_json::Value,
        client: &ClientInfo,
    ) -> Result<OtpOutcome> {
        let credential: PublicKeyCredential = parse_credential(credential)?;
        let rp = self.passkeys.get()?;
        let (raw, state) = self.pending_second_factor(preauth_token).await?;
        let max = self.settings.otp_max_attempts;
        let attempts_key = keys::otp_attempts(preauth_token);
        let (attempts, _) = self
            .store
            .increment(&attempts_key, 1, self.settings.preauth_token_ttl)
            .await?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        if attempts > max {
            self.store.delete(&keys::preauth(preauth_token)).await?;
            return Err(Error::OtpAttemptsExceeded);
        }
        self.reserve_otp_attempt(state.user_id).await?;
        // Each challenge is single use: a failed assertion needs a new begin.
        let pending = self
            .store
            .take(&keys::passkey_login(preauth_token))
            .await?
            .map(|raw| serde_json::from_str::<PendingLogin>(&raw))
            .transpose()
            .map_err(anyhow::Error::from)?
            .filter(|p| p.user_id == state.user_id);
        let verified = match &pending {
            Some(p) => rp
                .finish_passkey_authentication(&credential, &p.state)
                .map_err(bad_ceremony),
            None => Err(bad_ceremony("no pending challenge")),
        };
        let result = match verified {
            Ok(result) => result,
            Err(_) => {
                self.audit(
                    "passkey_login_failed",
                    Some(state.user_id),
                    None,
                    client,
                    serde_json::json!({ "attempt": attempts }),
                )
                .await;
                if attempts >= max {
                    self.store.delete(&keys::preauth(preauth_token)).await?;
                    return Err(Error::OtpAttemptsExceeded);
                }
                return Err(Error::PasskeyInvalid {
                    attempts_remaining: Some(max - attempts),
                });
            }
        };
        self.release_otp_attempt(state.user_id).await?;
        let now = self.now_ms();
        for record in self.repo.passkeys(state.user_id).await? {
            let mut passkey = parse_passkey(&record)?;
            if passkey.update_credential(&result).is_some() {
                let json = serde_json::to_string(&passkey).map_err(anyhow::Error::from)?;
                self.repo
                    .passkey_used(state.user_id, record.id, &json, now)
                    .await?;
            }
        }
        let outcome = self.pass_second_factor(preauth_token, &raw, &state).await?;
        self.store.delete(&attempts_key).await?;
        metrics::counter!("passkey_logins_total").increment(1);
        self.audit(
            "passkey_login_verified",
            Some(state.user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(outcome)
    }

    /// The login behind `preauth_token`, still waiting for its second factor.
    async fn pending_second_factor(&self, preauth_token: &str) -> Result<(String, PreauthState)> {
        let (raw, state) = self
            .load_preauth(preauth_token)
            .await?
            .ok_or(Error::PreauthExpired)?;
        if !state.otp_required || state.otp_verified {
            return Err(Error::OtpNotPending);
        }
        Ok((raw, state))
    }

    /// Marks the login verified (as a right emailed code does) and hands out a device token.
    async fn pass_second_factor(
        &self,
        preauth_token: &str,
        raw: &str,
        state: &PreauthState,
    ) -> Result<OtpOutcome> {
        let device_token = tokens::random_token();
        let verified = PreauthState {
            otp_verified: true,
            otp_digest: None,
            device_hash: Some(TokenHash::of(&device_token)),
            ..state.clone()
        };
        let key = keys::preauth(preauth_token);
        let ttl = self.store.ttl(&key).await?.ok_or(Error::PreauthExpired)?;
        let new_value = serde_json::to_string(&verified).map_err(anyhow::Error::from)?;
        if !self
            .store
            .compare_and_swap(&key, raw, &new_value, ttl)
            .await?
        {
            return Err(Error::PreauthExpired);
        }
        Ok(OtpOutcome { device_token })
    }
}
