//! The zero-setup backend: prints each message, links and codes included, to the log.

use async_trait::async_trait;

use crate::service::ports::{EmailSender, OutgoingEmail};

pub struct LogSender;

#[async_trait]
impl EmailSender for LogSender {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), String> {
        tracing::info!(
            event = "email_sent",
            backend = "log",
            to = %email.to,
            template = %email.template,
            subject = %email.subject,
            "email to {}:\n{}",
            email.to,
            email.text
        );
        Ok(())
    }
}
