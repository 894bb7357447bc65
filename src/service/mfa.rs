//! Managing one's second factors: TOTP enrolment (pending until a first code confirms it),
//! removal, recovery codes, and the overview of `GET /auth/mfa`.

use super::second_factor::{self, TOTP_SECRET_FIELD};
use super::{Auth, ClientInfo, Error, Result, recovery_codes, totp};
use crate::domain::time::Millis;
use crate::domain::{TokenHash, UserId};

/// How long an enrolment waits for its first code.
const PENDING_TTL_MS: Millis = 15 * 60 * 1000;

pub struct TotpEnrolment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://…`, for a QR code.
    pub otpauth_uri: String,
}

/// A registered passkey as `GET /auth/mfa` lists it.
#[derive(Debug, Clone)]
pub struct PasskeySummary {
    pub id: i64,
    pub name: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

pub struct MfaOverview {
    pub totp: bool,
    pub passkeys: Vec<PasskeySummary>,
    pub recovery_codes_left: i64,
    /// What a sign-in would offer (`mfa_methods`).
    pub methods: Vec<&'static str>,
}

fn not_enabled() -> Error {
    Error::Conflict {
        code: "mfa_not_enabled",
        detail: "No second factor is enabled",
    }
}

impl Auth {
    pub async fn mfa_overview(&self, user_id: UserId) -> Result<MfaOverview> {
        let (record, passkeys) = self.second_factors(user_id).await?;
        Ok(MfaOverview {
            totp: record.totp_enabled(),
            methods: second_factor::methods(&record, passkeys.len()),
            passkeys: passkeys
                .into_iter()
                .map(|p| PasskeySummary {
                    id: p.id,
                    name: p.name,
                    created_at: p.created_at,
                    last_used_at: p.last_used_at,
                })
                .collect(),
            recovery_codes_left: record.recovery_codes_left,
        })
    }

    /// A new secret, pending until `confirm_totp`. Starting again replaces a pending one; an
    /// enabled TOTP must be removed first (409).
    pub async fn enroll_totp(&self, user_id: UserId, client: &ClientInfo) -> Result<TotpEnrolment> {
        let user = self
            .repo
            .user_by_id(user_id)
            .await?
            .filter(|u| u.deleted_at.is_none())
            .ok_or(Error::UserNotFound)?;
        if self.repo.mfa(user_id).await?.totp_enabled() {
            return Err(Error::Conflict {
                code: "totp_already_enabled",
                detail: "TOTP is already enabled; remove it first to enrol another device",
            });
        }
        let secret = totp::new_secret();
        let otpauth_uri = totp::otpauth_uri(&secret, &user.email)
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("otpauth URI could not be built")))?;
        let sealed = self
            .mfa_vault
            .seal_for_user(user_id, TOTP_SECRET_FIELD, &secret)?;
        self.repo
            .set_pending_totp(user_id, &sealed, self.now_ms())
            .await?;
        self.audit(
            "mfa_totp_enrolment_started",
            Some(user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(TotpEnrolment {
            secret,
            otpauth_uri,
        })
    }

    /// The first code of the pending secret turns TOTP on and yields a fresh set of recovery
    /// codes (shown once). Wrong codes count against the account's code limit.
    pub async fn confirm_totp(
        &self,
        user_id: UserId,
        code: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::validation("code", "code must be 6 digits"));
        }
        let not_pending = Error::Conflict {
            code: "totp_not_pending",
            detail: "No TOTP enrolment is pending; start one first",
        };
        let record = self.repo.mfa(user_id).await?;
        let now = self.now_ms();
        let Some(pending) = record.totp_pending_sealed.filter(|_| {
            record
                .totp_pending_at
                .is_some_and(|at| now - at <= PENDING_TTL_MS)
        }) else {
            return Err(not_pending);
        };
        self.reserve_otp_attempt(user_id).await?;
        let secret = zeroize::Zeroizing::new(self.mfa_vault.open_for_user(
            user_id,
            TOTP_SECRET_FIELD,
            &pending,
        )?);
        let unix_seconds = u64::try_from(now / 1000).unwrap_or(0);
        let Some(step) = totp::matching_step(&secret, code, unix_seconds) else {
            self.audit(
                "mfa_verify_failed",
                Some(user_id),
                None,
                client,
                serde_json::json!({ "method": "totp", "during": "enrolment" }),
            )
            .await;
            return Err(Error::validation(
                "code",
                "code is not valid; check the time on your device and try the current code",
            ));
        };
        self.release_otp_attempt(user_id).await?;
        let codes: Vec<String> = (0..recovery_codes::COUNT)
            .map(|_| recovery_codes::generate())
            .collect();
        let hashes: Vec<TokenHash> = codes
            .iter()
            .map(|c| recovery_codes::hash(user_id, c))
            .collect();
        if !self
            .repo
            .confirm_totp(user_id, &pending, step, &hashes, now)
            .await?
        {
            return Err(not_pending);
        }
        self.audit(
            "mfa_totp_enabled",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "recovery_codes": codes.len() }),
        )
        .await;
        Ok(codes)
    }

    /// Turns TOTP off. With no second factor left, the recovery codes are void too.
    pub async fn disable_totp(&self, user_id: UserId, client: &ClientInfo) -> Result<()> {
        let now = self.now_ms();
        if !self.repo.remove_totp(user_id, now).await? {
            return Err(Error::Conflict {
                code: "totp_not_enabled",
                detail: "TOTP is not enabled",
            });
        }
        let (record, passkeys) = self.second_factors(user_id).await?;
        if !second_factor::has_second_factor(&record, passkeys.len()) {
            self.repo.replace_recovery_codes(user_id, &[], now).await?;
        }
        self.audit(
            "mfa_totp_disabled",
            Some(user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    /// A new set of recovery codes; every earlier code stops working.
    pub async fn regenerate_recovery_codes(
        &self,
        user_id: UserId,
        client: &ClientInfo,
    ) -> Result<Vec<String>> {
        let (record, passkeys) = self.second_factors(user_id).await?;
        if !second_factor::has_second_factor(&record, passkeys.len()) {
            return Err(not_enabled());
        }
        let codes: Vec<String> = (0..recovery_codes::COUNT)
            .map(|_| recovery_codes::generate())
            .collect();
        let hashes: Vec<TokenHash> = codes
            .iter()
            .map(|c| recovery_codes::hash(user_id, c))
            .collect();
        self.repo
            .replace_recovery_codes(user_id, &hashes, self.now_ms())
            .await?;
        self.audit(
            "mfa_recovery_codes_regenerated",
            Some(user_id),
            None,
            client,
            serde_json::json!({ "recovery_codes": codes.len() }),
        )
        .await;
        Ok(codes)
    }
}
