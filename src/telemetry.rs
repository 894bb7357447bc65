//! Logging: text or JSON lines, filtered by `LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(level: &str, format: LogFormat) {
    // sqlx reports PostgreSQL notices at info; keep them out unless asked for.
    let level = if level.contains("sqlx") {
        level.to_owned()
    } else {
        format!("{level},sqlx=warn")
    };
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
