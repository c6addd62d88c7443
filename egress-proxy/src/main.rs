//! The `paddock-egress` binary.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use paddock_egress::{Config, Proxy};
use tokio::signal::unix::{SignalKind, signal};

/// Paddock's egress proxy: the sandbox's only way out.
#[derive(Debug, Parser)]
#[command(name = "paddock-egress", version)]
struct Args {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the configuration and exit (non-zero with the reason when invalid).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PADDOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let validated = match Config::load(&args.config) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("paddock-egress: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check {
        eprintln!("paddock-egress: {} is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    match run(validated) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("paddock-egress: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(validated: paddock_egress::Validated) -> anyhow::Result<()> {
    let threads = validated.config.worker_threads;
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let handle = Proxy::start(validated).await?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("shutting down");
        let grace = handle.grace();
        handle.shutdown(grace).await;
        Ok(())
    })
}
