//! Reading a server-sent event stream.

use std::time::Duration;

use serde_json::Value;

pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    pub async fn open(http: &reqwest::Client, url: &str) -> EventStream {
        let response = http
            .get(url)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "event stream opens"
        );
        let mut stream = EventStream {
            response,
            buffer: String::new(),
        };
        let (name, _) = stream
            .next(Duration::from_secs(5))
            .await
            .expect("a ready event");
        assert_eq!(name, "ready");
        stream
    }

    /// The next named event within `wait` (heartbeat comments are skipped); `None` on timeout
    /// or when the server closed the stream.
    pub async fn next(&mut self, wait: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = None;
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if let Some(name) = name {
                    return Some((
                        name,
                        serde_json::from_str(&data).unwrap_or(Value::String(data)),
                    ));
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Waits for an event with this name, skipping others.
    pub async fn wait_for(&mut self, name: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        while let Some((n, data)) = self
            .next(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            if n == name {
                return Some(data);
            }
        }
        None
    }

    /// True when the server ends the stream within `wait`.
    pub async fn closes_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return false,
                Ok(Ok(Some(_))) => continue,
                Ok(_) => return true,
            }
        }
    }
}
