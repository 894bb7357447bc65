//! Sign-up and email verification.

use std::sync::Arc;

use super::{Auth, ClientInfo, Error, Result, emails, keys, password_strength, tokens};
use crate::domain::UserId;
use crate::domain::email::Email;
use crate::domain::time::ms;

const MAX_NAME_CHARS: usize = 100;
/// Verification emails one address may request per hour.
const RESEND_LIMIT_PER_HOUR: i64 = 5;

pub struct Registration {
    pub email: String,
    pub password: String,
    pub name: String,
}

pub(crate) fn validate_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::validation("name", "name is required"));
    }
    // Invisible and text-reversing characters too (as in team and role names): a display
    // name is shown to other people (members, the invite page) and must neither pass for
    // another nor look empty. The joiners (ZWNJ, ZWJ) that some scripts and emoji need stay.
    let joiner = |c: char| matches!(c, '\u{200C}' | '\u{200D}');
    if name.chars().count() > MAX_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || (crate::domain::text::is_format_char(c) && !joiner(c)))
        || name.chars().all(|c| c.is_whitespace() || joiner(c))
    {
        return Err(Error::validation(
            "name",
            format!(
                "name must be at most {MAX_NAME_CHARS} printable characters, none of them invisible"
            ),
        ));
    }
    Ok(name.to_owned())
}

impl Auth {
    /// Creates the user and their personal team, and emails a verification link. A taken email
    /// gets the same answer (and a notice to its owner), so sign-up does not reveal accounts.
    pub async fn register(&self, input: Registration, client: &ClientInfo) -> Result<()> {
        let email = Email::parse(&input.email).map_err(|e| Error::validation("email", e.0))?;
        let name = validate_name(&input.name)?;
        let inputs = password_strength::user_inputs(email.as_str(), &name);
        self.check_new_password("password", &input.password, inputs)
            .await?;

        self.limit_expensive_request(client).await?;
        // Hash first, whatever happens next: the answer takes as long for a taken email.
        let share = self.hash_shares.acquire(client).await;
        let hash = self.hasher.hash(&input.password).await?;
        drop(share);
        let now = self.now_ms();
        let team_name = format!("{name}'s team");
        match self
            .repo
            .create_user_with_team(email.as_str(), &name, &hash, &team_name, now)
            .await?
        {
            Some(user_id) => {
                self.audit(
                    "user_registered",
                    Some(user_id),
                    None,
                    client,
                    serde_json::json!({}),
                )
                .await;
                self.send_verification(user_id, email.as_str(), &name).await
            }
            None => {
                // Bounded per address: sign-up cannot be used to mail someone repeatedly.
                let key = keys::registered_notices(&tokens::hash_token(email.as_str()));
                let (sent, _) = self
                    .store
                    .increment(&key, 1, std::time::Duration::from_secs(86_400))
                    .await?;
                if sent > i64::from(self.settings.registered_notice_limit_per_day) {
                    return Ok(());
                }
                let login_url = self.settings.base_url.to_string();
                self.queue_email(emails::already_registered(email.as_str(), &login_url))
                    .await
            }
        }
    }

    async fn send_verification(&self, user_id: UserId, email: &str, name: &str) -> Result<()> {
        let token = tokens::random_token();
        let now = self.now_ms();
        let ttl = self.settings.email_verification_ttl;
        self.repo
            .insert_email_verification(&token, user_id, now + ms(ttl), now)
            .await?;
        let link = self.link("/verify-email", &token);
        self.queue_email(emails::email_verification(
            email,
            name,
            &link,
            ttl.as_secs() / 3600,
        ))
        .await
    }

    /// Single use, within its TTL: 400 "Token expired or invalid" otherwise.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<()> {
        if token.is_empty() || token.len() > 128 {
            return Err(Error::TokenInvalid);
        }
        let user_id = self
            .repo
            .consume_email_verification(token, self.now_ms())
            .await?
            .ok_or(Error::TokenInvalid)?;
        self.audit(
            "email_verified",
            Some(user_id),
            None,
            client,
            serde_json::json!({}),
        )
        .await;
        Ok(())
    }

    /// Sends a new link to an unverified account. The answer is the same for every address
    /// and so is the work on the request path (the client and address counters): the account
    /// lookup and the email run off it. Each address gets a bounded number of emails per hour.
    pub async fn resend_verification(
        self: &Arc<Self>,
        email: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let Ok(email) = Email::parse(email) else {
            return Err(Error::validation("email", "email is invalid"));
        };
        self.limit_email_request(client).await?;
        // Counted for every address, so the answer (and an outage) looks the same for all.
        let key = keys::verification_resend(&tokens::hash_token(email.as_str()));
        let (count, _) = self
            .store
            .increment(&key, 1, std::time::Duration::from_secs(3600))
            .await?;
        if count > RESEND_LIMIT_PER_HOUR {
            return Ok(());
        }
        let auth = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = auth.resend_verification_now(email.as_str()).await {
                tracing::warn!(event = "verification_email_failed", error = %e);
            }
        });
        Ok(())
    }

    async fn resend_verification_now(&self, email: &str) -> Result<()> {
        let Some(user) = self.repo.user_by_email(email).await? else {
            return Ok(());
        };
        if user.email_verified_at.is_some() || user.deleted_at.is_some() {
            return Ok(());
        }
        self.send_verification(user.id, &user.email, &user.name)
            .await
    }
}
