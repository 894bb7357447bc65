//! The command line: `serve` (the default), `migrate`, `user`, `token decode`, `doctor`.

mod doctor;
mod token;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{Config, Env};
use crate::store::sql::SqlStore;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "mbpanel-auth",
    version,
    about = "Authentication and session service of mbpanel"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the troubleshooting guide's diagnostics; exits non-zero when a check fails.
    Doctor,
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
            let services = crate::app::Services::connect(&config).await?;
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
        Command::Token(TokenCommand::Decode { jwt }) => {
            let services = crate::app::Services::connect(&config).await?;
            let accepted = token::decode(&services.auth, &jwt).await?;
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
