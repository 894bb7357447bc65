//! `mbpanel-auth token decode <jwt>`: what a token says, and whether the service accepts it —
//! decided by the server's own rules against SQL, the record.

use crate::app::Services;
use crate::domain::time::rfc3339;
use crate::service::diagnostics::relative;

/// Prints the explanation; true when the service would accept the token.
pub async fn decode(services: &Services, shared_store: bool, token: &str) -> anyhow::Result<bool> {
    let d = services.auth.diagnose_token(token).await?;
    println!("header:    {}", d.header);
    println!(
        "claims:    {}",
        serde_json::to_string_pretty(&d.claims)?.replace('\n', "\n           ")
    );
    if let Some(iat) = d.claims.get("iat").and_then(serde_json::Value::as_i64) {
        let at = iat.clamp(0, i64::MAX / 1000) * 1000;
        println!(
            "issued:    {} ({})",
            rfc3339(at),
            relative(at, crate::domain::time::now_ms())
        );
    }
    for (label, text) in &d.findings {
        println!("{:<10} {text}", format!("{label}:"));
    }
    // Access tokens are decided by SQL alone; say what the ephemeral store has to do with it.
    let is_refresh = d.claims.get("type").and_then(serde_json::Value::as_str) == Some("refresh");
    let store = if !shared_store {
        "embedded mode: the server's in-process store is not visible from here, and not needed: the decision above is SQL's".to_owned()
    } else {
        match services.store.ping().await {
            Ok(()) if is_refresh => {
                "Redis reachable (refresh rotation itself is decided in SQL)".to_owned()
            }
            Ok(()) => "Redis reachable; not consulted: access tokens are decided by SQL (active_sessions.revoked_at), not by blacklist:<jti>".to_owned(),
            Err(e) if is_refresh => format!(
                "Redis UNREACHABLE ({e}): the server answers 503 to logins and refreshes until it is back (Check REDIS_URL)"
            ),
            Err(e) => format!(
                "Redis UNREACHABLE ({e}): does not matter for this access token (SQL is the record), but logins and refreshes answer 503 until it is back (Check REDIS_URL)"
            ),
        }
    };
    println!("store:     {store}");
    if d.accepted {
        println!("verdict:   accepted — {}", d.cause);
    } else {
        println!("verdict:   refused — {}", d.cause);
        if let Some(fix) = d.fix {
            println!("fix:       {fix}");
        }
    }
    Ok(d.accepted)
}
