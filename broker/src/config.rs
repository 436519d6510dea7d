//! Broker configuration: the TOML file, the command line, and their
//! defaults. It owns validation and the error messages that name the file,
//! line and key of a bad setting.
//!
//! Precedence: built-in defaults, then the config file, then flags.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;

/// What to do when a session's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QueueFullPolicy {
    /// Drop the new message (counted, logged once per episode).
    #[default]
    DropNew,
    /// Drop the oldest queued message to make room for the new one.
    DropOldest,
}

/// How a shared subscription group picks the member that gets a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SharedStrategy {
    /// Each member in turn (skipping offline members).
    #[default]
    RoundRobin,
    /// A random online member.
    Random,
}

/// The effective configuration of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Addresses to listen on (plain TCP).
    pub listeners: Vec<SocketAddr>,
    pub data_dir: PathBuf,
    /// The file this configuration came from, if any.
    pub config_file: Option<PathBuf>,
    pub allow_anonymous: bool,
    /// Largest accepted packet, fixed header included (bytes).
    pub max_packet_size: usize,
    /// Unacknowledged QoS 1/2 messages in flight to one client.
    pub max_inflight_messages: u16,
    /// Messages queued per session beyond those in flight.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session.
    pub max_queued_bytes: usize,
    pub queue_full_policy: QueueFullPolicy,
    /// Disconnect an online MQTT 5 client whose queue overflows, with
    /// DISCONNECT 0x97 Quota exceeded (its session and queue are kept).
    pub disconnect_on_queue_full: bool,
    /// Queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0_messages: bool,
    /// Seconds after which a disconnected persistent session is discarded;
    /// 0 keeps it forever (3.1.1 clients; MQTT 5 clients set their own).
    pub session_expiry_secs: u64,
    /// Seconds a new connection may take to send CONNECT.
    pub connect_timeout_secs: u64,
    /// Log connections and subscriptions.
    pub verbose: bool,
    /// Largest keep-alive accepted (seconds); MQTT 5 clients asking for more
    /// (or for none) are told this value as Server Keep Alive.
    pub max_keepalive: u16,
    /// Receive Maximum advertised to MQTT 5 clients: inbound QoS 2 messages
    /// awaiting PUBREL before the client is disconnected with 0x93.
    pub receive_maximum: u16,
    /// Topic Alias Maximum advertised to MQTT 5 clients (0 disables).
    pub topic_alias_maximum: u16,
    /// Send topic aliases to MQTT 5 clients that allow them.
    pub server_topic_aliases: bool,
    pub shared_subscription_strategy: SharedStrategy,
    /// Response Information sent to MQTT 5 clients that request it; the
    /// client identifier is appended.
    pub response_information: Option<String>,
    /// Keep sessions, queues and retained messages on disk in `data_dir`.
    pub persistence: bool,
    /// When the store syncs to disk: always, batch (group commit) or never.
    pub sync: crate::store::SyncMode,
    /// Compact the store's log once it exceeds this many bytes (and twice
    /// its size after the previous compaction).
    pub compact_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1883),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 1883),
            ],
            data_dir: PathBuf::from("./edgemq-data"),
            config_file: None,
            allow_anonymous: true,
            max_packet_size: 1024 * 1024,
            max_inflight_messages: 1000,
            max_queued_messages: 100_000,
            max_queued_bytes: 64 * 1024 * 1024,
            queue_full_policy: QueueFullPolicy::DropNew,
            disconnect_on_queue_full: true,
            queue_qos0_messages: false,
            session_expiry_secs: 0,
            connect_timeout_secs: 10,
            verbose: false,
            max_keepalive: u16::MAX,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 10,
            server_topic_aliases: true,
            shared_subscription_strategy: SharedStrategy::RoundRobin,
            response_information: None,
            persistence: true,
            sync: crate::store::SyncMode::Batch,
            compact_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The config file, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<Vec<String>>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    allow_anonymous: Option<bool>,
    max_packet_size: Option<usize>,
    max_inflight_messages: Option<u16>,
    max_queued_messages: Option<usize>,
    max_queued_bytes: Option<usize>,
    queue_full_policy: Option<QueueFullPolicy>,
    disconnect_on_queue_full: Option<bool>,
    queue_qos0_messages: Option<bool>,
    session_expiry_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    verbose: Option<bool>,
    max_keepalive: Option<u16>,
    receive_maximum: Option<u16>,
    topic_alias_maximum: Option<u16>,
    server_topic_aliases: Option<bool>,
    shared_subscription_strategy: Option<SharedStrategy>,
    response_information: Option<String>,
    persistence: Option<bool>,
    sync: Option<crate::store::SyncMode>,
    compact_bytes: Option<u64>,
}

/// Command-line flags of the `edgemq` binary.
#[derive(Debug, Default, Parser)]
#[command(name = "edgemq", version, about = "An MQTT broker for IoT and edge gateways")]
pub struct Args {
    /// Port to listen on (0 picks a free port; the bound address is printed).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Address to listen on, an IP or IP:PORT (repeatable). Default 127.0.0.1 and ::1.
    #[arg(long = "bind", value_name = "ADDR")]
    pub bind: Vec<String>,
    /// TOML configuration file (see edgemq.toml).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log connections and subscriptions.
    #[arg(short, long)]
    pub verbose: bool,
}

/// A configuration error, with where it was found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read { file: String, source: std::io::Error },
    #[error("{file}:{line}: key `{key}`: {message}")]
    Invalid { file: String, line: usize, key: String, message: String },
    #[error("{0}")]
    Value(String),
}

/// Parses `ADDR` as IP:PORT, [IPv6]:PORT, or a bare IP that takes `port`.
fn parse_addr(value: &str, port: u16) -> Option<SocketAddr> {
    if let Ok(sa) = value.parse::<SocketAddr>() {
        return Some(sa);
    }
    let bare = value.trim_start_matches('[').trim_end_matches(']');
    if value == "localhost" {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    bare.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, port))
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

/// The key on a `key = value` line of `text` (best effort, for messages).
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    Some(k.trim().trim_matches('"').to_owned())
}

fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        let file = path.display().to_string();
        let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
        let message = e.message().to_owned();
        // serde names an unknown key in its message; otherwise the span is the value's.
        let key = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
            .map(str::to_owned)
            .or_else(|| key_on_line(text, line))
            .unwrap_or_else(|| "?".into());
        ConfigError::Invalid { file, line, key, message }
    })
}

/// Where a setting came from, to name it in an error.
struct Origin<'a> {
    file: Option<(&'a Path, &'a str)>,
}

impl Origin<'_> {
    /// An error about `key` (whose value contains `needle`, if given).
    fn error(&self, key: &str, needle: Option<&str>, message: String) -> ConfigError {
        let Some((path, text)) = self.file else {
            return ConfigError::Value(format!("`{key}`: {message}"));
        };
        let at = needle
            .and_then(|n| text.find(&format!("\"{n}\"")))
            .or_else(|| {
                let mut off = 0;
                text.lines().find_map(|l| {
                    let here = off;
                    off += l.len() + 1;
                    (l.trim_start().starts_with(key) && l.contains('=')).then_some(here)
                })
            })
            .unwrap_or(0);
        ConfigError::Invalid { file: path.display().to_string(), line: line_of(text, at), key: key.into(), message }
    }
}

impl Config {
    /// Builds the configuration from defaults, the file named by `args`
    /// (if any) and the flags.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut port = None;
        let mut binds: Option<Vec<String>> = None;
        let text = match &args.config {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { file: path.display().to_string(), source })?,
            ),
            None => None,
        };
        let file = args.config.as_deref().zip(text.as_deref());
        if let Some((path, text)) = file {
            let f = parse_file(path, text)?;
            cfg.config_file = Some(path.to_owned());
            port = f.port;
            binds = f.bind;
            macro_rules! take {
                ($($field:ident),*) => { $( if let Some(v) = f.$field { cfg.$field = v; } )* };
            }
            take!(
                data_dir,
                allow_anonymous,
                max_packet_size,
                max_inflight_messages,
                max_queued_messages,
                max_queued_bytes,
                queue_full_policy,
                disconnect_on_queue_full,
                queue_qos0_messages,
                session_expiry_secs,
                connect_timeout_secs,
                verbose,
                max_keepalive,
                receive_maximum,
                topic_alias_maximum,
                server_topic_aliases,
                shared_subscription_strategy,
                persistence,
                sync,
                compact_bytes
            );
            if f.response_information.is_some() {
                cfg.response_information = f.response_information;
            }
        }
        let from_file = Origin { file };
        let mut bind_origin = &from_file;
        let from_flags = Origin { file: None };
        if args.port.is_some() {
            port = args.port;
        }
        if !args.bind.is_empty() {
            binds = Some(args.bind.clone());
            bind_origin = &from_flags;
        }
        let port = port.unwrap_or(1883);
        cfg.listeners = match binds {
            Some(list) => list
                .iter()
                .map(|b| {
                    parse_addr(b, port).ok_or_else(|| {
                        bind_origin.error(
                            "bind",
                            Some(b),
                            format!("`{b}` is not a valid address (expected IP or IP:PORT)"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            None => cfg.listeners.iter().map(|a| SocketAddr::new(a.ip(), port)).collect(),
        };
        if let Some(d) = &args.data_dir {
            cfg.data_dir = d.clone();
        }
        cfg.verbose |= args.verbose;
        cfg.validate(&from_file)?;
        Ok(cfg)
    }

    fn validate(&self, origin: &Origin) -> Result<(), ConfigError> {
        if self.listeners.is_empty() {
            return Err(origin.error("bind", None, "no listener: the list is empty".into()));
        }
        if self.max_packet_size < 16 || self.max_packet_size > 268_435_460 {
            return Err(origin.error("max_packet_size", None, "must be between 16 and 268435460".into()));
        }
        if self.max_inflight_messages == 0 {
            return Err(origin.error("max_inflight_messages", None, "must be at least 1".into()));
        }
        if self.receive_maximum == 0 {
            return Err(origin.error("receive_maximum", None, "must be at least 1".into()));
        }
        if self.max_keepalive == 0 {
            return Err(origin.error("max_keepalive", None, "must be at least 1".into()));
        }
        if self.max_queued_messages == 0 {
            return Err(origin.error("max_queued_messages", None, "must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn with_file(text: &str) -> Result<Config, ConfigError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        Config::from_args(&Args { config: Some(f.path().to_owned()), ..Args::default() })
    }

    #[test]
    fn defaults_are_local_only_on_1883() {
        let c = Config::from_args(&Args::default()).unwrap();
        assert_eq!(c.listeners, vec!["127.0.0.1:1883".parse().unwrap(), "[::1]:1883".parse().unwrap()]);
        assert_eq!(c.data_dir, PathBuf::from("./edgemq-data"));
        assert!(c.allow_anonymous);
        assert_eq!(c.max_packet_size, 1 << 20);
    }

    #[test]
    fn flags_override_file() {
        let c = with_file("port = 1999\nmax_inflight_messages = 64\n").unwrap();
        assert_eq!(c.listeners[0].port(), 1999);
        assert_eq!(c.max_inflight_messages, 64);
        let args = Args { port: Some(0), bind: vec!["127.0.0.1".into(), "[::1]:7".into()], ..Args::default() };
        let c = Config::from_args(&args).unwrap();
        assert_eq!(c.listeners, vec!["127.0.0.1:0".parse().unwrap(), "[::1]:7".parse().unwrap()]);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = with_file("port = 1883\n\nmax_inflite = 3\n").unwrap_err().to_string();
        assert!(e.contains(":3: key `max_inflite`"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = with_file("# comment\nport = \"abc\"\n").unwrap_err().to_string();
        assert!(e.contains(":2: key `port`"), "{e}");
    }

    #[test]
    fn bad_address_is_reported() {
        let e = with_file("port = 1\nbind = [\n  \"127.0.0.1\",\n  \"300.1.1.1\",\n]\n").unwrap_err().to_string();
        assert!(e.contains(":4: key `bind`") && e.contains("300.1.1.1"), "{e}");
        let e = with_file("max_inflight_messages = 0\n").unwrap_err().to_string();
        assert!(e.contains(":1: key `max_inflight_messages`"), "{e}");
    }
}
