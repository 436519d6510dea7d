//! The `edgemq` daemon: parse flags and config, start the broker, print
//! one startup line, run until SIGINT/SIGTERM, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use edgemq::config::{Args, Command, Config};
use edgemq::Broker;
use tracing::Level;

/// mimalloc frees a block on the thread that allocated it without a lock:
/// a message is allocated where it is read and freed where its last
/// delivery is written, on another worker. glibc's malloc takes the
/// owning arena's lock there (fan-out measured 150,000-230,000 futex calls
/// per run against 15,000, and half the deliveries per second).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Passwd(passwd)) = &args.command {
        return match edgemq::passwd_cmd::run(passwd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("edgemq passwd: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgemq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    // RUST_LOG in `Targets` syntax (`debug`, `edgemq=debug,tokio=info`):
    // EnvFilter's span and regex filters would add its regex engine, about
    // 300 KB of code, to every broker.
    let default_level = if cfg.verbose { Level::INFO } else { Level::WARN };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(default_level));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // Memory a burst freed goes back to the system once the workers idle.
    #[cfg(feature = "mimalloc")]
    builder.on_thread_park(edgemq::server::reclaim::on_park);
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgemq: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[cfg(feature = "mimalloc")]
    runtime.spawn(edgemq::server::reclaim::wake_workers(runtime.metrics().num_workers()));
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let data_dir = cfg.data_dir.display().to_string();
    let config_file = cfg.config_file.as_ref().map_or("(none)".to_owned(), |p| p.display().to_string());
    let broker = match Broker::start(cfg).await {
        Ok(b) => b,
        // A password, ACL, certificate or key file that does not load is a
        // configuration error.
        Err(e @ (edgemq::server::StartError::AuthFile(_) | edgemq::server::StartError::Tls(_))) => {
            eprintln!("edgemq: configuration error: {e}");
            return ExitCode::from(2);
        }
        // A store of a newer format: this release must not run on it.
        Err(edgemq::server::StartError::Store {
            source: e @ edgemq::store::StoreError::NewerFormat { .. }, ..
        }) => {
            eprintln!("edgemq: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("edgemq: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Handlers before the startup line: whoever reads the line may signal
    // at once (a signal before them would kill the process uncleanly).
    let signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("edgemq: cannot wait for signals: {e}");
            broker.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    let mut listeners = broker.urls();
    listeners.extend(broker.http_addr().map(|a| format!("http://{a} (metrics, admin API)")));
    println!(
        "edgemq {} listening on {}; data dir {data_dir}; config {config_file}",
        env!("CARGO_PKG_VERSION"),
        listeners.join(", ")
    );
    signals.wait(&broker).await;
    tracing::info!("shutting down");
    broker.shutdown().await;
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, registered when made.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Until SIGINT or SIGTERM; each SIGHUP reloads the password, ACL and
    /// TLS files (connections stay open; a file that does not load keeps
    /// the old material and is logged with its line).
    async fn wait(mut self, broker: &Broker) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => {
                    broker.reload();
                }
            }
        }
    }
}
