//! The command line: `serve` (the default), `migrate`, `user`, `team`, `role`, `session`,
//! `token decode`, `doctor`, and the operator's `why`, `ratelimit`, `approvals`, `csrf`.

mod doctor;
mod operator;
mod token;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{Config, Env};
use crate::domain::{SessionId, TeamId};
use crate::store::sql::SqlStore;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "mbpanel-auth",
    version,
    about = "Authentication and session service of mbpanel",
    after_help = "Settings are environment variables: --help lists each with its default.",
    after_long_help = crate::config::help_text()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies pending migrations first).
    #[command(after_long_help = crate::config::help_text())]
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect teams.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Inspect roles.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Inspect and end sessions.
    #[command(subcommand)]
    Session(SessionCommand),
    /// Inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the troubleshooting guide's diagnostics; exits non-zero when a check fails.
    Doctor,
    /// Why a user was logged out or cannot log in: their recent sign-ins, refusals, logouts,
    /// revocations, approvals and rate-limit blocks, newest first, with what to do.
    Why { email: String },
    /// Login rate limits (429) of an account or a client address.
    #[command(subcommand)]
    Ratelimit(RatelimitCommand),
    /// Concurrent-login approvals (423).
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
    /// CSRF errors (403 "CSRF token mismatch").
    #[command(subcommand)]
    Csrf(CsrfCommand),
}

#[derive(Subcommand)]
pub enum RatelimitCommand {
    /// The counters of an email address or an IP address, with their counts and time left.
    Show { subject: String },
    /// Deletes those counters (audited): the account or address may try again at once.
    Clear { subject: String },
}

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// The user's pending sign-in approvals, with the token that names each.
    List { email: String },
    /// Approves or denies a pending sign-in (audited), as an existing session would.
    Decide {
        token: String,
        #[arg(value_enum)]
        decision: DecisionArg,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum DecisionArg {
    Approve,
    Deny,
}

#[derive(Subcommand)]
pub enum CsrfCommand {
    /// Explains a CSRF pair: equal?, signature, expiry, and the session it is bound to.
    Check { cookie: String, header: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// The teams of a user, with their role in each.
    List { email: String },
}

#[derive(Subcommand)]
pub enum RoleCommand {
    /// The roles of a team (built-in and custom) with their permissions.
    List { team_id: TeamId },
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// The active sessions of a user.
    List { email: String },
    /// End a session at once (its tokens stop working).
    Revoke { session_id: SessionId },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Explain a JWT: claims, expiry, signature and key, revocation, session state.
    Decode { jwt: String },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Soft-delete a user: they cannot log in, their sessions end at once.
    Delete { email: String },
    /// Restore a soft-deleted user.
    Restore { email: String },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = match Config::from_env(&Env::from_process()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    telemetry::init(&config.log_level, config.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(event = "listening", address = %app.address(), "mbpanel-auth listening on http://{}", app.address());
            app.run_until(shutdown_signal()).await
        }
        Command::User(command) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let client = crate::service::ClientInfo {
                ip: None,
                user_agent: Some("mbpanel-auth cli".into()),
            };
            let auth = &services.auth;
            match command {
                UserCommand::Delete { email } => {
                    let id = auth.find_user_id(&email).await?;
                    let ended = auth.delete_user(id, &client).await?;
                    println!("user {id} ({email}) deleted; {ended} session(s) ended");
                }
                UserCommand::Restore { email } => {
                    let id = auth.find_user_id(&email).await?;
                    auth.restore_user(id, &client).await?;
                    println!("user {id} ({email}) restored");
                }
            }
            Ok(())
        }
        Command::Team(TeamCommand::List { email }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let user_id = services.auth.find_user_id(&email).await?;
            for m in services.repo.memberships(user_id).await? {
                println!("{}\t{}\t{}", m.team_id, m.team_name, m.role_name);
            }
            Ok(())
        }
        Command::Role(RoleCommand::List { team_id }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            for (role, permissions) in services.repo.team_roles(team_id).await? {
                let kind = if role.builtin { "built-in" } else { "custom" };
                println!(
                    "{}\t{}\t{kind}\t{}",
                    role.id,
                    role.name,
                    permissions.join(",")
                );
            }
            Ok(())
        }
        Command::Session(SessionCommand::List { email }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let user_id = services.auth.find_user_id(&email).await?;
            let now = crate::domain::time::now_ms();
            for s in services.repo.active_sessions(user_id, now, 0).await? {
                let seen = crate::domain::time::rfc3339(s.last_seen_at);
                let ip = s.ip_address.unwrap_or_default();
                println!(
                    "{}\tteam {}\t{ip}\tlast seen {seen}\t{}",
                    s.id,
                    s.team_id,
                    s.user_agent.unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Session(SessionCommand::Revoke { session_id }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let client = crate::service::ClientInfo {
                ip: None,
                user_agent: Some("mbpanel-auth cli".into()),
            };
            services
                .auth
                .revoke_session_by_admin(session_id, &client)
                .await?;
            println!("session {session_id} revoked");
            Ok(())
        }
        Command::Token(TokenCommand::Decode { jwt }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let accepted = token::decode(&services, operator::shared_store(&config), &jwt).await?;
            std::process::exit(if accepted { 0 } else { 1 });
        }
        Command::Why { email } => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            operator::why(&services, operator::shared_store(&config), &email).await
        }
        Command::Ratelimit(command) => {
            operator::require_shared_store(&config, "rate-limit counters");
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            operator::ratelimit(&services, command).await
        }
        Command::Approvals(command) => {
            operator::require_shared_store(&config, "pending approvals");
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            operator::approvals(&services, command).await
        }
        Command::Csrf(CsrfCommand::Check { cookie, header }) => {
            let services = crate::app::Services::connect_without_migrating(&config).await?;
            let accepted = operator::csrf_check(&services, &cookie, &header).await?;
            std::process::exit(if accepted { 0 } else { 1 });
        }
        Command::Doctor => {
            let healthy = doctor::run(&config).await?;
            std::process::exit(if healthy { 0 } else { 1 });
        }
        Command::Migrate => {
            let store = SqlStore::connect(&config).await?;
            let applied = store.migrate().await?;
            println!("migrations applied: {applied}");
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!(event = "shutting_down");
}
