//! Email delivery: the outbox worker and the backends (log, SMTP, Postmark) that implement the
//! service's `EmailSender` port.

mod log;
mod postmark;
mod smtp;
pub mod worker;

use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::config::{Config, EmailBackend};
use crate::service::ports::EmailSender;

pub fn build_sender(config: &Config) -> anyhow::Result<Arc<dyn EmailSender>> {
    Ok(match &config.email_backend {
        EmailBackend::Log => Arc::new(log::LogSender),
        EmailBackend::Smtp { url } => Arc::new(smtp::SmtpSender::new(
            url.expose_secret(),
            &config.email_from,
        )?),
        EmailBackend::Postmark {
            api_url,
            server_token,
        } => Arc::new(postmark::PostmarkSender::new(
            api_url,
            server_token.expose_secret(),
            &config.email_from,
            config.postmark_device_approval_template_id.clone(),
        )?),
    })
}
