//! `why`, `ratelimit`, `approvals` and `csrf`: the operator's answers to the guide's 401, 423,
//! 429 and CSRF rows.

use super::{ApprovalsCommand, DecisionArg, RatelimitCommand};
use crate::app::Services;
use crate::config::{Config, EphemeralBackend};
use crate::domain::SessionId;
use crate::domain::time::rfc3339;
use crate::service::ClientInfo;
use crate::service::concurrent::Decision;
use crate::service::diagnostics::relative;
use crate::service::operator::RateLimitSubject;

/// Whether this process sees the server's ephemeral store (Redis), or only its own.
pub fn shared_store(config: &Config) -> bool {
    !matches!(config.ephemeral, EphemeralBackend::Memory { .. })
}

/// Commands that act on ephemeral state exit here in embedded mode: the server's in-process
/// store cannot be seen from another process, and pretending would mislead.
pub fn require_shared_store(config: &Config, what: &str) {
    if shared_store(config) {
        return;
    }
    eprintln!(
        "embedded mode: {what} live in the server's in-process store, which no other process can read or change; \
         this command works in production mode (REDIS_URL). In embedded mode: pending approvals are decided from an \
         existing session (the web UI's Account page), rate limits end with their window (LOGIN_RATE_LIMIT_WINDOW_SECONDS), \
         and restarting the server clears both"
    );
    std::process::exit(2);
}

fn operator() -> ClientInfo {
    ClientInfo {
        ip: None,
        user_agent: Some("mbpanel-auth cli".into()),
    }
}

fn seconds(ttl: Option<std::time::Duration>) -> String {
    ttl.map_or("no TTL".into(), |t| format!("{} s left", t.as_secs()))
}

pub async fn ratelimit(services: &Services, command: RatelimitCommand) -> anyhow::Result<()> {
    let auth = &services.auth;
    match command {
        RatelimitCommand::Show { subject } => {
            let subject = RateLimitSubject::parse(&subject)?;
            let counters = auth.rate_limit_counters(&subject).await?;
            if counters.is_empty() {
                println!("no rate-limit counters: nothing blocks this subject now");
            }
            for c in &counters {
                let count = c.value.map_or("?".into(), |v| v.to_string());
                let limit = c.limit.map_or(String::new(), |l| format!(" of {l}"));
                let state = if c.blocking() { "  BLOCKING (429)" } else { "" };
                println!(
                    "{}\t{count}{limit}\t{}\t{}{state}",
                    c.key,
                    seconds(c.ttl),
                    c.counts
                );
            }
            if counters.iter().any(|c| c.blocking()) {
                println!("fix: wait for the window to pass, or `mbpanel-auth ratelimit clear` it");
            }
        }
        RatelimitCommand::Clear { subject } => {
            let subject = RateLimitSubject::parse(&subject)?;
            let cleared = auth.clear_rate_limits(&subject, &operator()).await?;
            for key in &cleared {
                println!("cleared {key}");
            }
            println!("{} counter(s) cleared (audited)", cleared.len());
        }
    }
    Ok(())
}

pub async fn approvals(services: &Services, command: ApprovalsCommand) -> anyhow::Result<()> {
    let auth = &services.auth;
    match command {
        ApprovalsCommand::List { email } => {
            let user_id = auth.find_user_id(&email).await?;
            let pending = auth.pending_approvals(user_id).await?;
            if pending.is_empty() {
                println!("no pending approvals for {email}");
            }
            for p in pending {
                println!(
                    "{}\trequested {} ({})\t{}\t{}\t{}",
                    p.token,
                    rfc3339(p.request.requested_at),
                    relative(p.request.requested_at, crate::domain::time::now_ms()),
                    p.request.ip.as_deref().unwrap_or("unknown address"),
                    p.request.user_agent.as_deref().unwrap_or("unknown device"),
                    seconds(p.expires_in)
                );
            }
        }
        ApprovalsCommand::Decide { token, decision } => {
            let decision = match decision {
                DecisionArg::Approve => Decision::Approve,
                DecisionArg::Deny => Decision::Deny,
            };
            auth.decide_by_operator(&token, decision, &operator())
                .await?;
            let word = match decision {
                Decision::Approve => "approved: the waiting sign-in may proceed",
                Decision::Deny => "denied: the waiting sign-in is refused",
            };
            println!("{word} (audited)");
        }
    }
    Ok(())
}

/// True when the server's CSRF guard would accept the pair.
pub async fn csrf_check(services: &Services, cookie: &str, header: &str) -> anyhow::Result<bool> {
    let r = services.auth.explain_csrf(cookie, header).await?;
    let e = &r.explanation;
    println!(
        "equal:     {}",
        if e.equal {
            "yes (the header is the cookie)"
        } else {
            "NO (the X-CSRF-Token header differs from the mbpanel_csrf cookie)"
        }
    );
    match (e.session_id, e.expires_at) {
        (Some(sid), Some(at)) => {
            println!(
                "signature: {}",
                if e.signature_ok {
                    "valid (signed with this service's key)"
                } else {
                    "INVALID (not signed with this service's key)"
                }
            );
            let state = if at <= crate::domain::time::now_ms() {
                "EXPIRED"
            } else {
                "valid"
            };
            println!(
                "expires:   {} ({}) — {state}",
                rfc3339(at),
                relative(at, crate::domain::time::now_ms())
            );
            let session = match &r.session {
                Some(s) if s.revoked_at.is_some() => format!("{sid}: revoked"),
                Some(s) => format!("{sid}: user {}, team {}", s.user_id, s.team_id),
                None if e.signature_ok => format!("{sid}: no such session"),
                None => format!("{sid} (unverified)"),
            };
            println!("session:   {session}");
        }
        _ => println!(
            "token:     not a CSRF token of this service (<session>.<expiry>.<nonce>.<signature>)"
        ),
    }
    if r.accepted {
        println!(
            "verdict:   accepted for session {}",
            e.session_id.map(SessionId::get).unwrap_or_default()
        );
    } else {
        println!("verdict:   refused — {}", r.cause);
        println!("fix:       {}", r.fix);
    }
    Ok(r.accepted)
}

pub async fn why(services: &Services, shared: bool, email: &str) -> anyhow::Result<()> {
    let auth = &services.auth;
    let report = auth.why(email).await?;
    println!("user {} ({})", report.user_id, report.email);
    for (problem, fix) in &report.standing {
        println!("NOW   {problem}");
        println!("      what to do: {fix}");
    }
    if report.teams.is_empty() {
        println!("TEAM  none: every team route answers 403 \"Not a member of team\"");
        println!("      what to do: Add user to team via invite");
    }
    for t in &report.teams {
        println!(
            "TEAM  {} \"{}\" as {}: {}",
            t.team_id,
            t.team_name,
            t.role_name,
            if t.permissions.is_empty() {
                "no permissions".to_owned()
            } else {
                t.permissions.join(", ")
            }
        );
    }
    if shared {
        let subject = RateLimitSubject::parse(&report.email)?;
        for c in auth.rate_limit_counters(&subject).await? {
            if c.blocking() {
                println!(
                    "NOW   sign-in is blocked (429): {} reached {} ({}, {})",
                    c.counts,
                    c.value.unwrap_or_default(),
                    c.key,
                    seconds(c.ttl)
                );
                println!(
                    "      what to do: Wait 5 minutes, or `mbpanel-auth ratelimit clear {}`",
                    report.email
                );
            }
        }
        for p in auth.pending_approvals(report.user_id).await? {
            println!(
                "NOW   a sign-in from {} waits (423) for approval since {}: token {}",
                p.request.ip.as_deref().unwrap_or("an unknown address"),
                rfc3339(p.request.requested_at),
                p.token
            );
            println!(
                "      what to do: Approve from existing session, or `mbpanel-auth approvals decide {} approve|deny`",
                p.token
            );
        }
    } else {
        println!(
            "note  embedded mode: current rate-limit counters and pending approvals live in the server process; the history below is SQL's"
        );
    }
    if report.entries.is_empty() {
        println!("no sign-ins, refusals or sessions recorded for this user");
    }
    for entry in &report.entries {
        println!("{}  {}", rfc3339(entry.at), entry.what);
        if let Some(fix) = entry.fix {
            println!("{:<26}what to do: {fix}", "");
        }
    }
    Ok(())
}
