//! The breach-range adapter: `GET <PASSWORD_BREACH_API_URL>/<5 hex digits>`, answered with
//! `SUFFIX:COUNT` lines as Have I Been Pwned's range API does. Only the prefix of the
//! password's SHA-1 is sent (k-anonymity). Bounded by a 2 s timeout.

use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::service::ports::BreachedPasswordRange;

pub const TIMEOUT: Duration = Duration::from_secs(2);
/// A range answer is a few tens of KiB; anything far larger is not one.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

pub struct HttpBreachRange {
    http: reqwest::Client,
    base: Url,
}

impl HttpBreachRange {
    pub fn new(base: Url) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .build()?;
        Ok(Self { http, base })
    }
}

#[async_trait]
impl BreachedPasswordRange for HttpBreachRange {
    async fn range(&self, prefix: &str) -> Result<String, String> {
        let url = format!("{}/{prefix}", self.base.as_str().trim_end_matches('/'));
        let response = self
            .http
            .get(url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| format!("breach range request failed: {}", e.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("breach range API answered {status}"));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("breach range answer unreadable: {}", e.without_url()))?;
        if body.len() > MAX_BODY_BYTES {
            return Err("breach range answer too large".into());
        }
        String::from_utf8(body.to_vec()).map_err(|_| "breach range answer is not text".into())
    }
}
