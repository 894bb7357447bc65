//! Time as epoch milliseconds: what the SQL stores compare (the same on SQLite and PostgreSQL).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn ms(d: Duration) -> Millis {
    d.as_millis() as i64
}

/// A positive duration from now until `at`, or `None` when `at` has passed.
pub fn until(at: Millis, now: Millis) -> Option<Duration> {
    (at > now).then(|| Duration::from_millis((at - now) as u64))
}

/// RFC 3339 text for API answers.
pub fn rfc3339(at: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(at as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
