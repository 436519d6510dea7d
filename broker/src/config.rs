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

/// The transport of a listener, all served by the same connection driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ListenerProtocol {
    /// MQTT over plain TCP (`"mqtt"`, or `"tcp"` as before).
    #[default]
    #[serde(alias = "tcp")]
    Mqtt,
    /// MQTT over TLS (`"mqtts"`): needs `certfile` and `keyfile`.
    Mqtts,
    /// MQTT over WebSocket (`"ws"`), subprotocol `mqtt`, any path.
    Ws,
    /// MQTT over WebSocket over TLS (`"wss"`): needs `certfile`, `keyfile`.
    Wss,
}

impl ListenerProtocol {
    /// The URL scheme of the listener, for the start-up line.
    pub fn scheme(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Mqtts => "mqtts",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, ListenerProtocol::Mqtts | ListenerProtocol::Wss)
    }

    pub fn is_ws(self) -> bool {
        matches!(self, ListenerProtocol::Ws | ListenerProtocol::Wss)
    }
}

/// Which part of a client certificate becomes the user name (Mosquitto's
/// `use_identity_as_username`, `use_subject_as_username`); the password
/// is then not checked, the certificate being the credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CertUsername {
    /// The client's CONNECT says (and the password file checks).
    #[default]
    No,
    /// The subject's Common Name.
    CommonName,
    /// The whole subject, as RFC 4514 writes it (last RDN first, as
    /// Mosquitto: `CN=dev1,O=Plant,C=DE` for a subject C, O, CN).
    Subject,
}

/// The TLS settings of an `mqtts` listener (PEM files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first.
    pub certfile: Option<PathBuf>,
    /// Its private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub keyfile: Option<PathBuf>,
    /// CA certificates client certificates are verified against.
    pub cafile: Option<PathBuf>,
    /// Revoked client certificates (needs `cafile`).
    pub crlfile: Option<PathBuf>,
    /// A client without a valid certificate fails the handshake (mTLS).
    pub require_certificate: bool,
    pub cert_username: CertUsername,
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
    /// Certificates and client authentication of a TLS listener.
    pub tls: TlsConfig,
    /// The user name becomes the client identifier (Mosquitto's key).
    pub use_username_as_clientid: bool,
}

impl ListenerConfig {
    /// A TCP listener on `bind` with the global limits.
    pub fn tcp(bind: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            bind,
            protocol: ListenerProtocol::Mqtt,
            max_connections: None,
            max_packet_size: None,
            max_keepalive: None,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            tls: TlsConfig::default(),
            use_username_as_clientid: false,
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
    /// Where users authenticate, a CONNECT may not resume, take over or
    /// clean another user's session (0x87 / 0x05). Mosquitto allows it.
    pub check_session_owner: bool,
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
    /// Sessions the broker keeps at once, connected and offline; beyond it a
    /// CONNECT that would open a new session is refused (CONNACK 0x97
    /// Quota exceeded; 3.1/3.1.1: 0x03 Server unavailable), while existing
    /// sessions still resume.
    pub max_sessions: usize,
    /// Retained messages kept; beyond it a retained PUBLISH to a new topic
    /// is delivered to subscribers but not retained (counted, logged).
    pub max_retained_messages: usize,
    /// Bytes of retained messages kept (topic plus payload); a retained
    /// PUBLISH that would go beyond it is delivered but not retained.
    pub max_retained_bytes: u64,
    /// Subscriptions one session may hold; beyond it a new filter is
    /// refused in SUBACK (0x97 Quota exceeded; 3.1.1: 0x80).
    pub max_subscriptions_per_client: usize,
    /// Seconds between publications of the `$SYS/broker/...` topics
    /// (Mosquitto's names); 0 turns them off. 0 to 86400.
    pub sys_interval: u64,
    /// Log connections and subscriptions.
    pub verbose: bool,
    /// Where, how and what to log (`log_dest`, `log_file`, `log_format`, `log_level`).
    pub log: crate::logging::LogConfig,
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
    /// The HTTP listener (`/metrics`, admin API); `None`: off.
    pub http: Option<crate::http::HttpConfig>,
    /// `[[bridge]]` tables: connections to remote brokers (`bridge/`).
    pub bridges: Vec<crate::bridge::BridgeConfig>,
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
            check_session_owner: true,
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
            max_sessions: 100_000,
            max_retained_messages: 1_000_000,
            max_retained_bytes: 256 * 1024 * 1024,
            max_subscriptions_per_client: 10_000,
            sys_interval: 10,
            verbose: false,
            log: crate::logging::LogConfig::default(),
            max_keepalive: u16::MAX,
            receive_maximum: u16::MAX,
            topic_alias_maximum: 10,
            server_topic_aliases: true,
            shared_subscription_strategy: SharedStrategy::RoundRobin,
            response_information: None,
            persistence: true,
            sync: crate::store::SyncMode::Batch,
            compact_bytes: 64 * 1024 * 1024,
            http: None,
            bridges: Vec::new(),
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
    certfile: Option<PathBuf>,
    keyfile: Option<PathBuf>,
    cafile: Option<PathBuf>,
    crlfile: Option<PathBuf>,
    require_certificate: Option<bool>,
    use_identity_as_username: Option<bool>,
    use_subject_as_username: Option<bool>,
    use_username_as_clientid: Option<bool>,
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
    check_session_owner: Option<bool>,
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
    max_sessions: Option<usize>,
    max_retained_messages: Option<usize>,
    max_retained_bytes: Option<u64>,
    max_subscriptions_per_client: Option<usize>,
    sys_interval: Option<u64>,
    /// Mosquitto's name and format for `session_expiry_secs` (`"14d"`).
    persistent_client_expiration: Option<Spanned<String>>,
    verbose: Option<bool>,
    log_dest: Option<crate::logging::LogDest>,
    log_file: Option<PathBuf>,
    log_format: Option<crate::logging::LogFormat>,
    log_level: Option<String>,
    max_keepalive: Option<u16>,
    receive_maximum: Option<u16>,
    topic_alias_maximum: Option<u16>,
    server_topic_aliases: Option<bool>,
    shared_subscription_strategy: Option<SharedStrategy>,
    response_information: Option<String>,
    persistence: Option<bool>,
    sync: Option<crate::store::SyncMode>,
    compact_bytes: Option<u64>,
    http: Option<crate::http::config::FileHttp>,
    bridge: Option<Vec<crate::bridge::config::FileBridge>>,
}

/// Command-line flags of the `edgemq` binary.
#[derive(Debug, Default, Parser)]
#[command(
    name = "edgemq",
    version,
    about = "An MQTT broker for IoT and edge gateways",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// A tool to run instead of the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
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

/// The subcommands of the `edgemq` binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Manage a Mosquitto password file, as mosquitto_passwd does.
    Passwd(crate::passwd_cmd::PasswdArgs),
    /// Write the edgemq.toml equivalent to a Mosquitto configuration.
    ImportMosquitto(crate::import_cmd::ImportArgs),
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
pub(crate) fn line_of(text: &str, at: usize) -> usize {
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
        "sys_interval" if value > 86_400 => Err("must be between 0 (off) and 86400".into()),
        "sys_interval" => Ok(()),
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

/// Seconds in a Mosquitto duration (`persistent_client_expiration`): a
/// number followed by `h`, `d`, `w`, `m` (months of 30 days) or `y` (365
/// days).
pub(crate) fn mosquitto_duration(v: &str) -> Option<u64> {
    let v = v.trim();
    let unit = v.chars().last()?;
    let n: u64 = v[..v.len() - unit.len_utf8()].parse().ok()?;
    let secs = match unit {
        'h' => 3600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        'm' => 30 * 86_400,
        'y' => 365 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs).filter(|s| *s > 0)
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
        let protocol = self.protocol.unwrap_or_default();
        let tls = TlsConfig {
            certfile: self.certfile,
            keyfile: self.keyfile,
            cafile: self.cafile,
            crlfile: self.crlfile,
            require_certificate: self.require_certificate.unwrap_or(false),
            cert_username: match (self.use_identity_as_username, self.use_subject_as_username) {
                (Some(true), Some(true)) => {
                    let why = "use_identity_as_username and use_subject_as_username exclude each other";
                    return Err(origin.at("use_subject_as_username", self.bind.span().start, why.into()));
                }
                (Some(true), _) => CertUsername::CommonName,
                (_, Some(true)) => CertUsername::Subject,
                _ => CertUsername::No,
            },
        };
        check_tls(protocol, &tls).map_err(|(key, why)| origin.at(key, self.bind.span().start, why))?;
        Ok(ListenerConfig {
            bind,
            protocol,
            max_connections: self.max_connections.map(Spanned::into_inner),
            max_packet_size: self.max_packet_size.map(Spanned::into_inner),
            max_keepalive: self.max_keepalive.map(Spanned::into_inner),
            allow_anonymous: self.allow_anonymous,
            password_file: self.password_file,
            acl_file: self.acl_file,
            tls,
            use_username_as_clientid: self.use_username_as_clientid.unwrap_or(false),
        })
    }
}

/// Whether a listener's TLS settings make sense: a TLS listener has its
/// certificate and key; client certificates need a CA to verify them
/// against; a plain listener has no TLS settings. The key at fault, and why.
fn check_tls(protocol: ListenerProtocol, tls: &TlsConfig) -> Result<(), (&'static str, String)> {
    let client_auth = tls.require_certificate || tls.cert_username != CertUsername::No || tls.crlfile.is_some();
    if !protocol.is_tls() {
        let set = [
            ("certfile", tls.certfile.is_some()),
            ("keyfile", tls.keyfile.is_some()),
            ("cafile", tls.cafile.is_some()),
            ("crlfile", tls.crlfile.is_some()),
            ("require_certificate", tls.require_certificate),
            ("use_identity_as_username", tls.cert_username != CertUsername::No),
        ];
        if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
            return Err((
                key,
                format!("only for TLS listeners (protocol = \"mqtts\" or \"wss\"), not \"{}\"", protocol.scheme()),
            ));
        }
        return Ok(());
    }
    if tls.certfile.is_none() {
        return Err(("certfile", "a TLS listener needs `certfile` (PEM certificate chain)".into()));
    }
    if tls.keyfile.is_none() {
        return Err(("keyfile", "a TLS listener needs `keyfile` (PEM private key)".into()));
    }
    if client_auth && tls.cafile.is_none() {
        return Err(("cafile", "client certificates need `cafile` to verify them against".into()));
    }
    Ok(())
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
                check_session_owner,
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
                max_sessions,
                max_retained_messages,
                max_retained_bytes,
                max_subscriptions_per_client,
                sys_interval,
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
            if let Some(e) = &f.persistent_client_expiration {
                cfg.session_expiry_secs = mosquitto_duration(e.get_ref()).ok_or_else(|| ConfigError::Invalid {
                    file: path.display().to_string(),
                    line: line_of(text, e.span().start),
                    key: "persistent_client_expiration".into(),
                    message: format!(
                        "`{}` is not a duration: a number and one of h, d, w, m, y (as Mosquitto: \"14d\")",
                        e.get_ref()
                    ),
                })?;
            }
            let (dest, format) = (f.log_dest.unwrap_or_default(), f.log_format.unwrap_or_default());
            cfg.log = crate::logging::LogConfig { dest, file: f.log_file, format, level: f.log_level };
            cfg.http = f.http.map(|h| h.resolve(path, text)).transpose()?;
            if let Some(tables) = f.bridge {
                let origin = Origin { file: Some((path, text)) };
                cfg.bridges = crate::bridge::config::resolve(tables).map_err(|(k, at, m)| origin.at(k, at, m))?;
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
            ("max_sessions", self.max_sessions as u64),
            ("max_retained_messages", self.max_retained_messages as u64),
            ("max_retained_bytes", self.max_retained_bytes),
            ("max_subscriptions_per_client", self.max_subscriptions_per_client as u64),
            ("sys_interval", self.sys_interval),
        ];
        for (key, value) in limits {
            check_limit(key, value).map_err(|m| origin.error(key, None, m))?;
        }
        self.log.check().map_err(|(key, m)| origin.error(key, None, m))
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
