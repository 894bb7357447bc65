//! Postmark's HTTP API: `POST {POSTMARK_API_URL}/email/withTemplate` when a template id is
//! configured for the message, `POST /email` with the rendered text otherwise.

use std::time::Duration;

use async_trait::async_trait;

use crate::service::emails::{TEMPLATE_CONCURRENT_LOGIN, TEMPLATE_LOGIN_CODE};
use crate::service::ports::{EmailSender, OutgoingEmail};

const POSTMARK_TIMEOUT: Duration = Duration::from_secs(15);

pub struct PostmarkSender {
    http: reqwest::Client,
    api_url: String,
    server_token: String,
    from: String,
    device_approval_template_id: Option<String>,
}

impl PostmarkSender {
    pub fn new(
        api_url: &str,
        server_token: &str,
        from: &str,
        device_approval_template_id: Option<String>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(POSTMARK_TIMEOUT)
            .build()?;
        Ok(Self {
            http,
            api_url: api_url.to_owned(),
            server_token: server_token.to_owned(),
            from: from.to_owned(),
            device_approval_template_id,
        })
    }

    fn template_for(&self, email: &OutgoingEmail) -> Option<serde_json::Value> {
        let id = match email.template.as_str() {
            TEMPLATE_LOGIN_CODE | TEMPLATE_CONCURRENT_LOGIN => {
                self.device_approval_template_id.as_deref()?
            }
            _ => return None,
        };
        Some(match id.parse::<i64>() {
            Ok(n) => serde_json::json!({ "TemplateId": n }),
            Err(_) => serde_json::json!({ "TemplateAlias": id }),
        })
    }
}

#[async_trait]
impl EmailSender for PostmarkSender {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), String> {
        let (path, body) = match self.template_for(email) {
            Some(mut template) => {
                template["From"] = self.from.clone().into();
                template["To"] = email.to.clone().into();
                template["TemplateModel"] = email.model.clone();
                template["MessageStream"] = "outbound".into();
                ("/email/withTemplate", template)
            }
            None => (
                "/email",
                serde_json::json!({
                    "From": self.from, "To": email.to, "Subject": email.subject,
                    "TextBody": email.text, "MessageStream": "outbound",
                }),
            ),
        };
        let response = self
            .http
            .post(format!("{}{path}", self.api_url))
            .header("Accept", "application/json")
            .header("X-Postmark-Server-Token", &self.server_token)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("Postmark request failed: {}", e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        // Postmark answers {"ErrorCode": n, "Message": "..."}; keep only those fields.
        let detail = response.json::<serde_json::Value>().await.ok();
        let code = detail
            .as_ref()
            .and_then(|d| d.get("ErrorCode"))
            .cloned()
            .unwrap_or_default();
        let message = detail
            .as_ref()
            .and_then(|d| d.get("Message"))
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_owned();
        Err(format!(
            "Postmark answered {status}: ErrorCode {code} {message}"
        ))
    }
}
