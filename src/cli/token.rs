//! `mbpanel-auth token decode <jwt>`: what a token says, and why it is accepted or refused.

use crate::domain::time::{now_ms, rfc3339};
use crate::service::Auth;
use crate::service::tokens::TokenError;

fn relative(at_ms: i64) -> String {
    let delta = (at_ms - now_ms()) / 1000;
    let (amount, unit) = match delta.abs() {
        s if s < 120 => (s, "seconds"),
        s if s < 7200 => (s / 60, "minutes"),
        s if s < 172_800 => (s / 3600, "hours"),
        s => (s / 86_400, "days"),
    };
    if delta >= 0 {
        format!("in {amount} {unit}")
    } else {
        format!("{amount} {unit} ago")
    }
}

pub async fn decode(auth: &Auth, token: &str) -> anyhow::Result<bool> {
    let report = auth.inspect_token(token).await?;
    println!("header:    {}", report.header);
    println!(
        "claims:    {}",
        serde_json::to_string_pretty(&report.claims)?.replace('\n', "\n           ")
    );
    // Seconds from an unverified token: keep the arithmetic from overflowing.
    let claim = |name: &str| {
        report
            .claims
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .map(|s| s.clamp(0, i64::MAX / 1000))
    };
    if let Some(iat) = claim("iat") {
        println!(
            "issued:    {} ({})",
            rfc3339(iat * 1000),
            relative(iat * 1000)
        );
    }
    let mut usable = true;
    match claim("exp") {
        Some(exp) if exp * 1000 > now_ms() => println!(
            "expires:   {} ({})",
            rfc3339(exp * 1000),
            relative(exp * 1000)
        ),
        Some(exp) => {
            usable = false;
            println!(
                "expires:   {} — EXPIRED {}",
                rfc3339(exp * 1000),
                relative(exp * 1000)
            );
        }
        None => {
            usable = false;
            println!("expires:   no exp claim — refused");
        }
    }
    let token_kid = report
        .header
        .get("kid")
        .and_then(|k| k.as_str())
        .unwrap_or("none");
    match &report.signature {
        Ok(kid) => println!("signature: valid (signed with the key whose kid is {kid})"),
        Err(TokenError::UnknownKey) => {
            usable = false;
            println!(
                "signature: UNKNOWN KEY — the token's kid is {token_kid}, the configured key's kid is {} \
                 (JWT_SECRET_KEY mismatch between services?)",
                report.configured_kid
            );
        }
        Err(TokenError::Header) => {
            usable = false;
            println!(
                "signature: REFUSED — only HS256 without crit/jku/x5u/jwk/x5c headers is accepted"
            );
        }
        Err(e) => {
            usable = false;
            println!(
                "signature: INVALID ({e}) — not signed with the configured key (kid {})",
                report.configured_kid
            );
        }
    }
    match report.blacklisted {
        Some(true) => {
            usable = false;
            println!("revoked:   yes (blacklist:<jti> or its session is revoked)");
        }
        Some(false) => println!("revoked:   no"),
        None => println!("revoked:   unknown (no jti/sid, or the ephemeral store is unreachable)"),
    }
    if let Some(state) = &report.refresh_state {
        // A refresh token is usable only while its state is live (or inside the grace window).
        if state == "missing" {
            usable = false;
        }
        println!("refresh:   refresh:<jti> is {state}");
    }
    if report.session.is_some() {
        let state = report.session_state();
        if state != "active" {
            usable = false;
        }
        println!(
            "session:   {} — {state}",
            report.session.as_ref().map_or(0, |s| s.id)
        );
    }
    println!("verdict:   {}", if usable { "accepted" } else { "refused" });
    Ok(usable)
}
