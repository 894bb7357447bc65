use clap::Parser;

/// mimalloc: the request path allocates many small, short-lived objects (headers, JSON,
/// claims); measured in `bench/`, it is markedly cheaper than the system allocator for them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    mbpanel_auth::cli::run(mbpanel_auth::cli::Cli::parse()).await
}
