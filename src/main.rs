use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mbpanel_auth::cli::run(mbpanel_auth::cli::Cli::parse()).await
}
