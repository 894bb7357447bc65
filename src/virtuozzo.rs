//! The Virtuozzo sign-in adapter: `POST $VZ_VIRTUOZZO_SIGNIN_URL` with form fields `email` and
//! `password`; `{"result": 0, "session": "…"}` is success, any other `result` (with `error`) or
//! a transport error is failure. Bounded by `VZ_TIMEOUT_SECONDS`.

use std::time::Duration;

use async_trait::async_trait;
use url::Url;

use crate::service::ports::VirtuozzoSignIn;

pub struct HttpVirtuozzo {
    http: reqwest::Client,
    signin_url: Option<Url>,
}

impl HttpVirtuozzo {
    pub fn new(signin_url: Option<Url>, timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self { http, signin_url })
    }
}

#[async_trait]
impl VirtuozzoSignIn for HttpVirtuozzo {
    async fn sign_in(&self, email: &str, password: &str) -> Result<String, String> {
        let url = self
            .signin_url
            .clone()
            .ok_or("VZ_VIRTUOZZO_SIGNIN_URL is not set")?;
        let response = self
            .http
            .post(url)
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .map_err(|e| format!("Virtuozzo request failed: {}", e.without_url()))?;
        let status = response.status();
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|_| format!("Virtuozzo answered {status} without JSON"))?;
        match (
            body.get("result").and_then(|r| r.as_i64()),
            body.get("session").and_then(|s| s.as_str()),
        ) {
            (Some(0), Some(session)) if !session.is_empty() => Ok(session.to_owned()),
            (result, _) => {
                let error = body
                    .get("error")
                    .and_then(|e| e.as_str())
                    .unwrap_or("no error given");
                Err(format!(
                    "Virtuozzo sign-in refused (result {}): {error}",
                    result.map_or("?".into(), |r| r.to_string())
                ))
            }
        }
    }
}
