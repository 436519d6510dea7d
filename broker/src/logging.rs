//! Where and how the daemon logs (`log_dest`, `log_file`, `log_format`,
//! `log_level`): stderr (the journal under systemd), a file opened for
//! appending, or syslog (`/dev/log` datagrams through libc's syslog(3),
//! via `syslog-tracing`); text or one JSON object per line
//! (tracing-subscriber's `json`). The level is a `Targets` filter behind a
//! reload handle, so a SIGHUP changes it live; `RUST_LOG` overrides it.

use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;
use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogDest {
    #[default]
    Stderr,
    /// Appended to `log_file`.
    File,
    /// The system logger, facility daemon, ident `edgemq`.
    Syslog,
}

/// How a log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// The logging keys of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    pub dest: LogDest,
    /// The file of `LogDest::File`.
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    /// A `Targets` filter (`warn`, `info,edgemq::router=debug`); `None`:
    /// `warn`, or `info` with `verbose`.
    pub level: Option<String>,
}

impl LogConfig {
    /// Checks the keys together: the key at fault and why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.dest == LogDest::File && self.file.is_none() {
            return Err(("log_dest", "`file` needs `log_file = PATH`".into()));
        }
        if let Some(l) = &self.level {
            parse_level(l).map_err(|e| ("log_level", e))?;
        }
        Ok(())
    }

    /// The filter this configuration asks for (`RUST_LOG` aside).
    pub fn filter(&self, verbose: bool) -> Targets {
        let default = if verbose { Level::INFO } else { Level::WARN };
        self.level.as_deref().and_then(|l| parse_level(l).ok()).unwrap_or_else(|| Targets::new().with_default(default))
    }
}

fn parse_level(l: &str) -> Result<Targets, String> {
    l.parse::<Targets>().map_err(|e| {
        format!("`{l}` is not a level (`error`, `warn`, `info`, `debug`, `trace`, or `warn,edgemq::router=debug`): {e}")
    })
}

/// Errors setting up the log destination.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("cannot open the log file {file}: {source}")]
    File { file: String, source: std::io::Error },
    #[error("cannot open syslog")]
    Syslog,
}

/// The time of a line, or none (syslog stamps its own).
struct Stamp(bool);

impl FormatTime for Stamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        if self.0 {
            SystemTime.format_time(w)
        } else {
            Ok(())
        }
    }
}

/// The installed logger: changes its level live.
pub struct Logger {
    handle: reload::Handle<Targets, Registry>,
    /// `RUST_LOG` was given: it wins over the configuration, also on reload.
    from_env: bool,
}

impl Logger {
    /// Installs the global subscriber for `cfg`.
    pub fn init(cfg: &LogConfig, verbose: bool) -> Result<Logger, LogError> {
        // RUST_LOG in `Targets` syntax: EnvFilter's span and regex filters
        // would add its regex engine, about 300 KB of code, to every broker.
        let env = std::env::var("RUST_LOG").ok().and_then(|s| s.parse::<Targets>().ok());
        let from_env = env.is_some();
        let (filter, handle) = reload::Layer::new(env.unwrap_or_else(|| cfg.filter(verbose)));
        // One writer type and one timer type for every destination: two
        // instantiations of the formatting layer (text, JSON), not six
        // (measured: about 80 KB of text less).
        let (writer, stamp, ansi) = match cfg.dest {
            LogDest::Stderr => (BoxMakeWriter::new(std::io::stderr), true, true),
            LogDest::File => {
                let path = cfg.file.clone().unwrap_or_default();
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| LogError::File { file: path.display().to_string(), source })?;
                (BoxMakeWriter::new(Mutex::new(file)), true, false)
            }
            LogDest::Syslog => {
                use syslog_tracing::{Facility, Options, Syslog};
                let syslog = Syslog::new(c"edgemq", Options::LOG_PID, Facility::Daemon).ok_or(LogError::Syslog)?;
                // syslog stamps the time and the program itself.
                (BoxMakeWriter::new(syslog), false, false)
            }
        };
        let fmt = tracing_subscriber::fmt::layer().with_writer(writer).with_timer(Stamp(stamp)).with_ansi(ansi);
        let layer = match cfg.format {
            LogFormat::Text => fmt.boxed(),
            LogFormat::Json => fmt.json().boxed(),
        };
        tracing_subscriber::registry().with(filter).with(layer).init();
        Ok(Logger { handle, from_env })
    }

    /// Sets the level of `cfg` (unless `RUST_LOG` decides); whether it
    /// changed is for the caller to know from the configurations.
    pub fn set_level(&self, cfg: &LogConfig, verbose: bool) {
        if self.from_env {
            tracing::info!("log level: RUST_LOG is set and decides");
            return;
        }
        if let Err(e) = self.handle.reload(cfg.filter(verbose)) {
            tracing::error!("log level not changed: {e}");
        }
    }
}
