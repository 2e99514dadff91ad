//! Serves the in-process Kubernetes API server until interrupted, and writes a kubeconfig for it.

use std::path::PathBuf;

use clap::Parser;

use autopilot_testkit::{ApiServer, ServerOptions};

/// An in-process Kubernetes API server on 127.0.0.1, for kubectl, operators and demos.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write a kubeconfig that points at the server.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// YAML files (multi-document) to install at start, CRDs first.
    #[arg(long = "install")]
    install: Vec<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let server = ApiServer::start_with(ServerOptions::default().port(args.port)).await?;
    for file in &args.install {
        let yaml = std::fs::read_to_string(file)?;
        server.install_yaml(&yaml).await?;
    }
    if let Some(path) = &args.kubeconfig {
        let yaml = serde_saphyr::to_string(&server.kubeconfig())?;
        std::fs::write(path, yaml)?;
        tracing::info!(path = %path.display(), "kubeconfig written");
    }
    println!("serving the Kubernetes API at {}", server.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
