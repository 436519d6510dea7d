//! Broker configuration: the TOML file, the command line, and their
//! defaults. It owns validation and the error messages that name the file,
//! line and key of a bad setting.
//!
//! Precedence: built-in defaults, then the config file, then flags.
//!
//! Listeners: `[[listener]]` tables, each with its address and limits
//! (unset limits fall back to the global keys), or else the top-level
//! `bind` list and `port` (or `--bind`/`-p`), which make listeners with the
//! global limits. `--bind` replaces the file's listeners; `-p` replaces the
//! port of every address without one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::Deserialize;
use toml::Spanned;

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

/// The transport of a listener. Only plain TCP today; TLS and WebSocket
/// listeners are further variants, served by the same connection driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// MQTT over plain TCP.
    #[default]
    Tcp,
}

/// One listener: its address, transport and limits. A limit left `None`
/// takes the global key of the same name (the per-client default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    pub bind: SocketAddr,
    pub protocol: ListenerProtocol,
    /// Connections open at once; beyond it CONNECT is refused. `None`: no limit.
    pub max_connections: Option<usize>,
    pub max_packet_size: Option<usize>,
    pub max_keepalive: Option<u16>,
    pub allow_anonymous: Option<bool>,
    /// Mosquitto password file for this listener (else the global one).
    pub password_file: Option<PathBuf>,
    /// Mosquitto ACL file for this listener (else the global one).
    pub acl_file: Option<PathBuf>,
}

impl ListenerConfig {
    /// A TCP listener on `bind` with the global limits.
    pub fn tcp(bind: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            bind,
            protocol: ListenerProtocol::Tcp,
            max_connections: None,
            max_packet_size: None,
            max_keepalive: None,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
        }
    }
}

/// The effective configuration of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where to listen, each with its limits.
    pub listeners: Vec<ListenerConfig>,
    pub data_dir: PathBuf,
    /// The file this configuration came from, if any.
    pub config_file: Option<PathBuf>,
    pub allow_anonymous: bool,
    /// Mosquitto password file: user names and password hashes (`$7$`,
    /// `$6$`, argon2id). With it, a client that gives a user name must give
    /// its password; without it, `allow_anonymous = false` admits no one.
    pub password_file: Option<PathBuf>,
    /// Mosquitto ACL file: who may publish and subscribe to what.
    pub acl_file: Option<PathBuf>,
    /// Largest accepted packet, fixed header included (bytes).
    pub max_packet_size: usize,
    /// Unacknowledged QoS 1/2 messages in flight to one client.
    pub max_inflight_messages: u16,
    /// Messages queued per session beyond those in flight; 0 (the
    /// default): no limit of its own, the memory budget and the disk
    /// quotas decide.
    pub max_queued_messages: usize,
    /// Payload bytes queued per session; 0 (the default): no limit of its own.
    pub max_queued_bytes: usize,
    /// Bytes all queues together hold in memory (payload, topic and the
    /// records of each message); one session may hold a quarter. Past it a queue spills to `data_dir` (persistence
    /// on) or applies `queue_full_policy` (off).
    pub queue_memory_bytes: usize,
    /// Bytes one session's queue may spill to disk; 0: as `queue_disk_quota`.
    pub max_queued_disk_bytes: u64,
    /// Bytes all spilled queues together may take on disk; 0: a quarter of
    /// the data directory's free space at start.
    pub queue_disk_quota: u64,
    pub queue_full_policy: QueueFullPolicy,
    /// Disconnect an online MQTT 5 client whose queue starts overflowing
    /// under `drop_new`, with DISCONNECT 0x97 Quota exceeded (its session
    /// and queue are kept).
    pub disconnect_on_queue_full: bool,
    /// Queue QoS 0 messages for offline persistent sessions.
    pub queue_qos0_messages: bool,
    /// Seconds after which a disconnected persistent session is discarded;
    /// 0 keeps it forever (3.1.1 clients; MQTT 5 clients set their own).
    pub session_expiry_secs: u64,
    /// Seconds a new connection may take to send CONNECT (1 to 3600).
    pub connect_timeout_secs: u64,
    /// Levels a topic name or filter may have (`a/b` has two); beyond it a
    /// SUBSCRIBE filter is refused (SUBACK 0x80 / 0x8F), a PUBLISH too
    /// (MQTT 5 PUBACK/PUBREC 0x90; QoS 0 and 3.1.1: the connection is
    /// closed) and a will's CONNECT. 1 to 65535.
    pub max_topic_levels: u16,
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
            listeners: default_binds(1883).into_iter().map(ListenerConfig::tcp).collect(),
            data_dir: PathBuf::from("./edgemq-data"),
            config_file: None,
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_inflight_messages: 1000,
            max_queued_messages: 0,
            max_queued_bytes: 0,
            queue_memory_bytes: DEFAULT_QUEUE_MEMORY_BYTES,
            max_queued_disk_bytes: 0,
            queue_disk_quota: 0,
            queue_full_policy: QueueFullPolicy::DropNew,
            disconnect_on_queue_full: true,
            queue_qos0_messages: false,
            session_expiry_secs: 0,
            connect_timeout_secs: 10,
            max_topic_levels: 128,
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

/// The default `queue_memory_bytes`, 256 MiB: one slow subscriber may
/// hold 64 MiB in memory before its queue spills (or, without persistence,
/// drops).
pub const DEFAULT_QUEUE_MEMORY_BYTES: usize = 256 * 1024 * 1024;

/// The default `max_packet_size`, 2 MiB: a packet counts its fixed header,
/// topic and properties, so a 1 MiB payload (a firmware image chunk, a
/// camera frame) with a topic of up to 65,535 bytes and properties still
/// fits, while one client cannot make the broker buffer hundreds of MiB.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 2 * 1024 * 1024;

/// The default listeners: local-only, like Mosquitto 2 without a configuration.
fn default_binds(port: u16) -> [SocketAddr; 2] {
    [SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port), SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)]
}

/// A `[[listener]]` table, as written; values keep their place in the file
/// for error messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileListener {
    bind: Spanned<String>,
    port: Option<u16>,
    protocol: Option<ListenerProtocol>,
    max_connections: Option<Spanned<usize>>,
    max_packet_size: Option<Spanned<usize>>,
    max_keepalive: Option<Spanned<u16>>,
    allow_anonymous: Option<bool>,
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
}

/// The config file, as written. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<Vec<String>>,
    listener: Option<Vec<FileListener>>,
    port: Option<u16>,
    data_dir: Option<PathBuf>,
    allow_anonymous: Option<bool>,
    password_file: Option<PathBuf>,
    acl_file: Option<PathBuf>,
    max_packet_size: Option<usize>,
    max_inflight_messages: Option<u16>,
    max_queued_messages: Option<usize>,
    max_queued_bytes: Option<usize>,
    queue_memory_bytes: Option<usize>,
    max_queued_disk_bytes: Option<u64>,
    queue_disk_quota: Option<u64>,
    queue_full_policy: Option<QueueFullPolicy>,
    disconnect_on_queue_full: Option<bool>,
    queue_qos0_messages: Option<bool>,
    session_expiry_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    max_topic_levels: Option<u16>,
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
    /// Port to listen on, for addresses without one (0 picks a free port; the bound address is printed).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Address to listen on, an IP or IP:PORT (repeatable; replaces the config file's listeners). Default 127.0.0.1 and ::1.
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
        // serde names an unknown or missing key in its message; otherwise
        // the span is the value's.
        let key = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
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
        let at = self.file.and_then(|(_, text)| {
            needle.and_then(|n| text.find(&format!("\"{n}\""))).or_else(|| {
                let mut off = 0;
                text.lines().find_map(|l| {
                    let here = off;
                    off += l.len() + 1;
                    (l.trim_start().starts_with(key) && l.contains('=')).then_some(here)
                })
            })
        });
        self.at(key, at.unwrap_or(0), message)
    }

    /// An error about `key`, whose value starts at byte `at` of the file.
    fn at(&self, key: &str, at: usize, message: String) -> ConfigError {
        match self.file {
            Some((path, text)) => ConfigError::Invalid {
                file: path.display().to_string(),
                line: line_of(text, at),
                key: key.into(),
                message,
            },
            None => ConfigError::Value(format!("`{key}`: {message}")),
        }
    }
}

/// The range check of the limits that are set globally or per listener.
fn check_limit(key: &str, value: u64) -> Result<(), String> {
    match key {
        "max_packet_size" if !(16..=268_435_460).contains(&value) => Err("must be between 16 and 268435460".into()),
        "connect_timeout_secs" if !(1..=3600).contains(&value) => Err("must be between 1 and 3600".into()),
        // 0: no limit of its own (Mosquitto's meaning).
        "max_queued_messages" | "max_queued_bytes" => Ok(()),
        "queue_memory_bytes" if value < 1 << 20 => Err("must be at least 1048576 (1 MiB)".into()),
        // 0: the default (a share of the free space).
        "max_queued_disk_bytes" | "queue_disk_quota" if value != 0 && value < 1 << 16 => {
            Err("must be 0 (the default) or at least 65536".into())
        }
        "max_queued_disk_bytes" | "queue_disk_quota" => Ok(()),
        _ if value == 0 => Err("must be at least 1".into()),
        _ => Ok(()),
    }
}

fn bad_addr(b: &str) -> String {
    format!("`{b}` is not a valid address (expected IP or IP:PORT)")
}

/// Listeners with the global limits on `binds` (IP or IP:PORT; those
/// without a port take `port`).
fn plain_listeners(binds: &[String], port: u16, origin: &Origin) -> Result<Vec<ListenerConfig>, ConfigError> {
    binds
        .iter()
        .map(|b| parse_addr(b, port).map(ListenerConfig::tcp).ok_or_else(|| origin.error("bind", Some(b), bad_addr(b))))
        .collect()
}

impl FileListener {
    /// The listener this table describes; a `bind` without a port takes
    /// the table's `port`, else `port`.
    fn resolve(self, port: u16, origin: &Origin) -> Result<ListenerConfig, ConfigError> {
        let bind = parse_addr(self.bind.get_ref(), self.port.unwrap_or(port))
            .ok_or_else(|| origin.at("bind", self.bind.span().start, bad_addr(self.bind.get_ref())))?;
        let limits = [
            ("max_connections", self.max_connections.as_ref().map(|v| (*v.get_ref() as u64, v.span()))),
            ("max_packet_size", self.max_packet_size.as_ref().map(|v| (*v.get_ref() as u64, v.span()))),
            ("max_keepalive", self.max_keepalive.as_ref().map(|v| (u64::from(*v.get_ref()), v.span()))),
        ];
        for (key, value) in limits {
            if let Some((value, span)) = value {
                check_limit(key, value).map_err(|m| origin.at(key, span.start, m))?;
            }
        }
        Ok(ListenerConfig {
            bind,
            protocol: self.protocol.unwrap_or_default(),
            max_connections: self.max_connections.map(Spanned::into_inner),
            max_packet_size: self.max_packet_size.map(Spanned::into_inner),
            max_keepalive: self.max_keepalive.map(Spanned::into_inner),
            allow_anonymous: self.allow_anonymous,
            password_file: self.password_file,
            acl_file: self.acl_file,
        })
    }
}

impl Config {
    /// Builds the configuration from defaults, the file named by `args`
    /// (if any) and the flags.
    pub fn from_args(args: &Args) -> Result<Config, ConfigError> {
        let mut cfg = Config::default();
        let mut port = None;
        let mut binds: Option<Vec<String>> = None;
        let mut tables: Option<Vec<FileListener>> = None;
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
            tables = f.listener;
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
                queue_memory_bytes,
                max_queued_disk_bytes,
                queue_disk_quota,
                queue_full_policy,
                disconnect_on_queue_full,
                queue_qos0_messages,
                session_expiry_secs,
                connect_timeout_secs,
                max_topic_levels,
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
            cfg.password_file = f.password_file.or(cfg.password_file);
            cfg.acl_file = f.acl_file.or(cfg.acl_file);
        }
        let from_file = Origin { file };
        if args.port.is_some() {
            port = args.port;
        }
        let port = port.unwrap_or(1883);
        cfg.listeners = match (binds, tables) {
            _ if !args.bind.is_empty() => plain_listeners(&args.bind, port, &Origin { file: None })?,
            (Some(_), Some(_)) => {
                let why = "cannot be combined with [[listener]] tables (give each table its `bind`)";
                return Err(from_file.error("bind", None, why.into()));
            }
            (None, Some(tables)) => {
                if tables.is_empty() {
                    return Err(from_file.error("listener", None, "no listener: the list is empty".into()));
                }
                tables.into_iter().map(|t| t.resolve(port, &from_file)).collect::<Result<_, _>>()?
            }
            (Some(binds), None) => plain_listeners(&binds, port, &from_file)?,
            (None, None) => default_binds(port).into_iter().map(ListenerConfig::tcp).collect(),
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
        let limits = [
            ("max_packet_size", self.max_packet_size as u64),
            ("max_inflight_messages", u64::from(self.max_inflight_messages)),
            ("receive_maximum", u64::from(self.receive_maximum)),
            ("max_keepalive", u64::from(self.max_keepalive)),
            ("max_queued_messages", self.max_queued_messages as u64),
            ("max_queued_bytes", self.max_queued_bytes as u64),
            ("queue_memory_bytes", self.queue_memory_bytes as u64),
            ("max_queued_disk_bytes", self.max_queued_disk_bytes),
            ("queue_disk_quota", self.queue_disk_quota),
            ("connect_timeout_secs", self.connect_timeout_secs),
            ("max_topic_levels", u64::from(self.max_topic_levels)),
        ];
        for (key, value) in limits {
            check_limit(key, value).map_err(|m| origin.error(key, None, m))?;
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

    fn addrs(c: &Config) -> Vec<SocketAddr> {
        c.listeners.iter().map(|l| l.bind).collect()
    }

    #[test]
    fn defaults_are_local_only_on_1883() {
        let c = Config::from_args(&Args::default()).unwrap();
        assert_eq!(addrs(&c), vec!["127.0.0.1:1883".parse().unwrap(), "[::1]:1883".parse().unwrap()]);
        assert!(c.listeners.iter().all(|l| *l == ListenerConfig::tcp(l.bind)), "global limits only");
        assert_eq!(c.data_dir, PathBuf::from("./edgemq-data"));
        assert!(c.allow_anonymous);
        assert_eq!(c.max_packet_size, 2 << 20);
    }

    #[test]
    fn flags_override_file() {
        let c = with_file("port = 1999\nmax_inflight_messages = 64\n").unwrap();
        assert_eq!(c.listeners[0].bind.port(), 1999);
        assert_eq!(c.max_inflight_messages, 64);
        let args = Args { port: Some(0), bind: vec!["127.0.0.1".into(), "[::1]:7".into()], ..Args::default() };
        let c = Config::from_args(&args).unwrap();
        assert_eq!(addrs(&c), vec!["127.0.0.1:0".parse().unwrap(), "[::1]:7".parse().unwrap()]);
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

    #[test]
    fn numeric_limits_are_range_checked() {
        // A huge connect timeout once overflowed `now + timeout` in every
        // connection task; 0 was silently taken as 1 s.
        for (text, want) in [
            ("connect_timeout_secs = 0\n", ":1: key `connect_timeout_secs`"),
            ("\nconnect_timeout_secs = 18446744073709551615\n", ":2: key `connect_timeout_secs`"),
            ("max_topic_levels = 0\n", ":1: key `max_topic_levels`"),
            ("max_topic_levels = 65536\n", ":1: key `max_topic_levels`"),
        ] {
            let e = with_file(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let c = with_file("connect_timeout_secs = 3600\nmax_topic_levels = 65535\n").unwrap();
        assert_eq!((c.connect_timeout_secs, c.max_topic_levels), (3600, 65535));
        assert_eq!(Config::default().max_topic_levels, 128);
    }

    #[test]
    fn queue_budget_and_quotas_are_range_checked() {
        for (text, want) in [
            ("queue_memory_bytes = 1000\n", ":1: key `queue_memory_bytes`"),
            ("\nmax_queued_disk_bytes = 100\n", ":2: key `max_queued_disk_bytes`"),
            ("queue_disk_quota = 65535\n", ":1: key `queue_disk_quota`"),
        ] {
            let e = with_file(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
        let c = with_file(
            "max_queued_messages = 0\nqueue_memory_bytes = 1048576\nmax_queued_disk_bytes = 65536\nqueue_disk_quota = 0\n",
        )
        .unwrap();
        assert_eq!((c.max_queued_messages, c.queue_memory_bytes, c.max_queued_disk_bytes), (0, 1 << 20, 1 << 16));
        let d = Config::default();
        // The sample file documents the defaults.
        let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../edgemq.toml");
        let c = Config::from_args(&Args { config: Some(sample.into()), ..Args::default() }).unwrap();
        assert_eq!(
            (
                c.max_queued_messages,
                c.max_queued_bytes,
                c.queue_memory_bytes,
                c.max_queued_disk_bytes,
                c.queue_disk_quota
            ),
            (
                d.max_queued_messages,
                d.max_queued_bytes,
                d.queue_memory_bytes,
                d.max_queued_disk_bytes,
                d.queue_disk_quota
            )
        );
        assert_eq!((d.max_queued_messages, d.max_queued_bytes), (0, 0), "no count limit by default");
        assert_eq!((d.queue_memory_bytes, d.max_queued_disk_bytes, d.queue_disk_quota), (256 << 20, 0, 0));
    }

    const TWO_LISTENERS: &str = "\
port = 1999
max_packet_size = 4096
disconnect_on_queue_full = false

[[listener]]
bind = \"0.0.0.0\"
max_connections = 100
max_packet_size = 65536
max_keepalive = 600
allow_anonymous = false

[[listener]]
bind = \"127.0.0.1:2000\"
protocol = \"tcp\"
";

    #[test]
    fn listener_tables_with_their_limits() {
        let c = with_file(TWO_LISTENERS).unwrap();
        assert!(!c.disconnect_on_queue_full);
        let first = ListenerConfig {
            bind: "0.0.0.0:1999".parse().unwrap(),
            protocol: ListenerProtocol::Tcp,
            max_connections: Some(100),
            max_packet_size: Some(65536),
            max_keepalive: Some(600),
            allow_anonymous: Some(false),
            password_file: None,
            acl_file: None,
        };
        assert_eq!(c.listeners, vec![first, ListenerConfig::tcp("127.0.0.1:2000".parse().unwrap())]);
        // Unset listener limits take the global keys at start; those stay as written.
        assert_eq!((c.max_packet_size, c.max_keepalive, c.allow_anonymous), (4096, u16::MAX, true));
    }

    #[test]
    fn listener_ports_and_flags() {
        let c = with_file("port = 5\n[[listener]]\nbind = \"::1\"\nport = 6\n[[listener]]\nbind = \"::1\"\n").unwrap();
        assert_eq!(addrs(&c), vec!["[::1]:6".parse().unwrap(), "[::1]:5".parse().unwrap()]);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(TWO_LISTENERS.as_bytes()).unwrap();
        let config = Some(f.path().to_owned());
        // -p replaces the port of addresses without one.
        let c = Config::from_args(&Args { config: config.clone(), port: Some(0), ..Args::default() }).unwrap();
        assert_eq!(addrs(&c), vec!["0.0.0.0:0".parse().unwrap(), "127.0.0.1:2000".parse().unwrap()]);
        // --bind replaces the file's listeners, which take the global limits.
        let c = Config::from_args(&Args { config, bind: vec!["127.0.0.1:9".into()], ..Args::default() }).unwrap();
        assert_eq!(c.listeners, vec![ListenerConfig::tcp("127.0.0.1:9".parse().unwrap())]);
    }

    #[test]
    fn listener_errors_name_file_line_and_key() {
        let cases = [
            ("[[listener]]\nbind = \"127.0.0.1\"\nmax_conections = 3\n", ":3: key `max_conections`"),
            ("[[listener]]\nbind = \"127.0.0.1\"\nmax_connections = -1\n", ":3: key `max_connections`"),
            ("[[listener]]\nbind = \"127.0.0.1\"\n\n[[listener]]\nbind = \"1.2.3\"\n", ":5: key `bind`"),
            (
                "[[listener]]\nbind = \"::1\"\n[[listener]]\nbind = \"::1\"\nmax_packet_size = 8\n",
                ":5: key `max_packet_size`",
            ),
            ("[[listener]]\nbind = \"::1\"\nmax_keepalive = 0\n", ":3: key `max_keepalive`"),
            ("[[listener]]\nbind = \"::1\"\nmax_connections = 0\n", ":3: key `max_connections`"),
            ("[[listener]]\nbind = \"::1\"\nprotocol = \"quic\"\n", ":3: key `protocol`"),
            ("[[listener]]\nport = 1\n", ":1: key `bind`"),
            ("bind = [\"::1\"]\n[[listener]]\nbind = \"::1\"\n", ":1: key `bind`"),
        ];
        for (text, want) in cases {
            let e = with_file(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
