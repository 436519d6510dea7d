//! The `edgemq` daemon: parse flags and config, start the broker, print
//! one startup line, run until SIGINT/SIGTERM, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use edgemq::config::{Args, Config};
use edgemq::Broker;

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgemq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let default_level = if cfg.verbose { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgemq: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let data_dir = cfg.data_dir.display().to_string();
    let config_file = cfg.config_file.as_ref().map_or("(none)".to_owned(), |p| p.display().to_string());
    let broker = match Broker::start(cfg).await {
        Ok(b) => b,
        Err(e) => {
            eprintln!("edgemq: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listeners: Vec<String> = broker.local_addrs().iter().map(|a| format!("tcp://{a}")).collect();
    println!(
        "edgemq {} listening on {}; data dir {data_dir}; config {config_file}",
        env!("CARGO_PKG_VERSION"),
        listeners.join(", ")
    );
    if let Err(e) = wait_for_signal().await {
        eprintln!("edgemq: cannot wait for signals: {e}");
    }
    tracing::info!("shutting down");
    broker.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
