//! The `edgemq` daemon: parse flags and config, start the broker, print
//! one startup line, run until SIGINT/SIGTERM, shut down gracefully.

use std::process::ExitCode;

use clap::Parser;
use edgemq::config::{Args, Command, Config};
use edgemq::Broker;

/// mimalloc frees a block on the thread that allocated it without a lock:
/// a message is allocated where it is read and freed where its last
/// delivery is written, on another worker. glibc's malloc takes the
/// owning arena's lock there (fan-out measured 150,000-230,000 futex calls
/// per run against 15,000, and half the deliveries per second).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    match &args.command {
        Some(Command::Passwd(passwd)) => {
            return match edgemq::passwd_cmd::run(passwd) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgemq passwd: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Some(Command::ImportMosquitto(import)) => {
            return match edgemq::import_cmd::run(import) {
                Ok(()) => ExitCode::SUCCESS,
                // A configuration Mosquitto would refuse too: exit code 2,
                // as for a bad edgemq configuration.
                Err(e @ edgemq::import_cmd::ImportError::Malformed(_)) => {
                    eprintln!("edgemq import-mosquitto: {e}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("edgemq import-mosquitto: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    let cfg = match Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edgemq: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let logger = match edgemq::logging::Logger::init(&cfg.log, cfg.verbose) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("edgemq: {e}");
            return ExitCode::from(2);
        }
    };
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
    runtime.block_on(run(cfg, Reload { args, logger }))
}

async fn run(cfg: Config, reload: Reload) -> ExitCode {
    let data_dir = cfg.data_dir.display().to_string();
    let config_file = cfg.config_file.as_ref().map_or("(none)".to_owned(), |p| p.display().to_string());
    let broker = match Broker::start(cfg).await {
        Ok(b) => b,
        // A password, ACL, certificate or key file that does not load is a
        // configuration error.
        Err(
            e @ (edgemq::server::StartError::AuthFile(_)
            | edgemq::server::StartError::Tls(_)
            | edgemq::server::StartError::Bridge(edgemq::bridge::BridgeError::Tls { .. })),
        ) => {
            eprintln!("edgemq: configuration error: {e}");
            return ExitCode::from(2);
        }
        // A store of a newer format: this release must not run on it.
        Err(
            edgemq::server::StartError::Store { source: e @ edgemq::store::StoreError::NewerFormat { .. }, .. }
            | edgemq::server::StartError::Bridge(edgemq::bridge::BridgeError::Queue {
                source: e @ edgemq::store::StoreError::NewerFormat { .. },
                ..
            }),
        ) => {
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
    listeners.extend(broker.http_addr().map(|a| format!("http://{a} (metrics, admin API, dashboard)")));
    println!(
        "edgemq {} listening on {}; data dir {data_dir}; config {config_file}",
        env!("CARGO_PKG_VERSION"),
        listeners.join(", ")
    );
    // Listeners bound, store recovered: systemd may start what depends on us.
    let status = format!("listening on {}", listeners.join(", "));
    edgemq::systemd::ready(&status);
    let watchdog = edgemq::systemd::spawn_watchdog(broker.probe());
    signals.wait(&broker, &reload, &status).await;
    tracing::info!("shutting down");
    edgemq::systemd::stopping();
    if let Some(w) = watchdog {
        w.abort();
    }
    broker.shutdown().await;
    ExitCode::SUCCESS
}

/// What a SIGHUP needs: the flags, to read the configuration again, and
/// the logger, to change its level.
struct Reload {
    args: edgemq::config::Args,
    logger: edgemq::logging::Logger,
}

impl Reload {
    /// Reads the configuration again and applies it; a configuration that
    /// does not parse keeps the running one (the files are still reloaded).
    async fn run(&self, broker: &Broker) {
        match Config::from_args(&self.args) {
            Ok(new) => {
                let (log, verbose) = (new.log.clone(), new.verbose);
                let r = broker.reload_config(new).await;
                if r.applied.iter().any(|k| matches!(*k, "log_level" | "verbose")) {
                    self.logger.set_level(&log, verbose);
                }
            }
            Err(e) => {
                tracing::error!("reload: configuration error: {e}; the running configuration stays");
                broker.reload();
            }
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP, registered when made.
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
    async fn wait(mut self, broker: &Broker, reload: &Reload, status: &str) {
        loop {
            tokio::select! {
                _ = self.int.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hup.recv() => {
                    edgemq::systemd::reloading();
                    reload.run(broker).await;
                    edgemq::systemd::ready(status);
                }
            }
        }
    }
}
