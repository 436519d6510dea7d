//! The `[[bridge]]` tables of the configuration file: their types (public
//! and `Serialize`, so `edgemq import-mosquitto` can write them), the
//! parsing of Mosquitto's topic rule syntax and the validation, whose
//! errors name the key and where its value is (`config.rs` turns them into
//! file:line messages).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// Which way a topic rule forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Local publications go to the remote broker.
    Out,
    /// The remote broker's publications are published locally.
    In,
    Both,
}

impl Direction {
    pub fn is_out(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }

    pub fn is_in(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }

    fn word(self) -> &'static str {
        match self {
            Direction::Out => "out",
            Direction::In => "in",
            Direction::Both => "both",
        }
    }
}

/// One topic rule, Mosquitto's `topic PATTERN [out|in|both [QOS [LOCAL_PREFIX
/// REMOTE_PREFIX]]]`: the local topic is `LOCAL_PREFIX + PATTERN`, the
/// remote one `REMOTE_PREFIX + PATTERN`; `""` writes an empty pattern or
/// prefix. Written in the configuration as that string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct TopicRule {
    pub pattern: String,
    pub direction: Direction,
    /// The highest QoS forwarded (0 to 2): a message keeps its QoS up to it.
    pub qos: u8,
    pub local_prefix: String,
    pub remote_prefix: String,
}

fn quoted(s: &str) -> &str {
    if s.is_empty() {
        "\"\""
    } else {
        s
    }
}

impl std::fmt::Display for TopicRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", quoted(&self.pattern), self.direction.word(), self.qos)?;
        if !self.local_prefix.is_empty() || !self.remote_prefix.is_empty() {
            write!(f, " {} {}", quoted(&self.local_prefix), quoted(&self.remote_prefix))?;
        }
        Ok(())
    }
}

impl From<TopicRule> for String {
    fn from(r: TopicRule) -> String {
        r.to_string()
    }
}

impl std::str::FromStr for TopicRule {
    type Err = String;

    /// Parses Mosquitto's rule syntax (direction `out` and QoS 0 when left
    /// out, as Mosquitto).
    fn from_str(s: &str) -> Result<TopicRule, String> {
        let words: Vec<&str> = s.split_whitespace().map(|w| if w == "\"\"" { "" } else { w }).collect();
        let (pattern, rest) = words.split_first().ok_or("an empty rule (expected \"PATTERN out|in|both QOS\")")?;
        let direction = match rest.first().copied() {
            None | Some("out") => Direction::Out,
            Some("in") => Direction::In,
            Some("both") => Direction::Both,
            Some(w) => return Err(format!("`{w}` is not a direction (out, in or both)")),
        };
        let qos = match rest.get(1).copied() {
            None => 0,
            Some(q @ ("0" | "1" | "2")) => q.as_bytes()[0] - b'0',
            Some(q) => return Err(format!("`{q}` is not a QoS (0, 1 or 2)")),
        };
        let (local_prefix, remote_prefix) = match rest.get(2..) {
            None | Some([]) => ("", ""),
            Some([l, r]) => (*l, *r),
            Some([_]) => return Err("a local prefix needs a remote prefix after it (`\"\"` for none)".into()),
            Some(_) => return Err("too many words (PATTERN DIRECTION QOS LOCAL_PREFIX REMOTE_PREFIX)".into()),
        };
        let rule = TopicRule {
            pattern: (*pattern).to_owned(),
            direction,
            qos,
            local_prefix: local_prefix.to_owned(),
            remote_prefix: remote_prefix.to_owned(),
        };
        rule.check()?;
        Ok(rule)
    }
}

impl TopicRule {
    /// The filter subscribed on the local side.
    pub fn local_filter(&self) -> String {
        format!("{}{}", self.local_prefix, self.pattern)
    }

    /// The filter subscribed on the remote side.
    pub fn remote_filter(&self) -> String {
        format!("{}{}", self.remote_prefix, self.pattern)
    }

    fn check(&self) -> Result<(), String> {
        use crate::protocol::topic::{valid_filter, valid_name};
        for (what, p) in [("local prefix", &self.local_prefix), ("remote prefix", &self.remote_prefix)] {
            if p.contains(['#', '+']) {
                return Err(format!("the {what} `{p}` may not contain wildcards"));
            }
        }
        let (local, remote) = (self.local_filter(), self.remote_filter());
        if local.is_empty() || !valid_filter(&local) || !valid_filter(&remote) {
            return Err(format!("`{local}` / `{remote}` is not a valid topic filter"));
        }
        if self.pattern.is_empty() && !(valid_name(&local) && valid_name(&remote)) {
            return Err("an empty pattern needs prefixes that are topic names".into());
        }
        Ok(())
    }

    /// The remote topic of local topic `topic`, if this `out` rule takes it.
    pub fn to_remote(&self, topic: &str) -> Option<String> {
        self.map(topic, &self.local_prefix, &self.remote_prefix, self.direction.is_out())
    }

    /// The local topic of remote topic `topic`, if this `in` rule takes it.
    pub fn to_local(&self, topic: &str) -> Option<String> {
        self.map(topic, &self.remote_prefix, &self.local_prefix, self.direction.is_in())
    }

    fn map(&self, topic: &str, from: &str, to: &str, on: bool) -> Option<String> {
        let rest = topic.strip_prefix(from).filter(|_| on)?;
        let matched = if self.pattern.is_empty() {
            rest.is_empty()
        } else {
            crate::protocol::topic::matches(&self.pattern, rest)
        };
        matched.then(|| format!("{to}{rest}"))
    }
}

/// The MQTT version spoken to the remote broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum BridgeProtocol {
    /// 3.1.1 (`"3.1.1"`, Mosquitto's `mqttv311`).
    #[default]
    #[serde(rename = "3.1.1")]
    V311,
    /// 5.0 (`"5"`, Mosquitto's `mqttv50`).
    #[serde(rename = "5")]
    V5,
}

/// How the addresses are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AddressOrder {
    /// Every connection attempt starts at the first address; the others
    /// are tried in turn while it fails (Mosquitto's `round_robin false`).
    #[default]
    Primary,
    /// An attempt starts at the address after the one last connected to.
    RoundRobin,
}

/// What happens to a message an `out` rule takes while the bridge's queue
/// is at `max_queued_messages` or `max_queued_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BridgeQueuePolicy {
    /// The new message is not queued for the bridge (counted, logged once
    /// per episode); local subscribers still get it.
    #[default]
    DropNew,
    /// The oldest queued message is dropped to make room (counted, logged).
    DropOldest,
    /// The message is queued, but its publisher's acknowledgement waits
    /// until the queue is below its bounds again (QoS 1/2 publishers stop
    /// within their in-flight window); QoS 0 is dropped.
    Block,
}

/// One bridge to a remote broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgeConfig {
    /// Names the queue directory (`DATA_DIR/bridge/NAME`) and the
    /// notification topic; letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// `host:port` of the remote broker, in the order tried.
    pub addresses: Vec<String>,
    pub address_order: AddressOrder,
    pub topics: Vec<TopicRule>,
    pub client_id: String,
    pub protocol_version: BridgeProtocol,
    /// Connect with protocol level | 0x80 (3.1.1 only), Mosquitto's
    /// `try_private`: a Mosquitto (or edgemq) remote treats us as a bridge.
    pub try_private: bool,
    pub keep_alive_secs: u16,
    /// Clean session on the remote (false keeps the remote session, so
    /// what was published there while the link was down still arrives).
    pub clean_session: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// TLS to the remote, with the CAs trusted and a client certificate
    /// (written as `tls`, `cafile`, `certfile`, `keyfile`, not serialized).
    #[serde(skip)]
    pub tls: Option<BridgeTls>,
    pub connect_timeout_secs: u64,
    /// Reconnect delay: from the minimum, doubled after every failed
    /// attempt up to the maximum, each with up to 50% random jitter.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Publish the retained `1`/`0` state on `notification_topic`, here
    /// and (unless `notifications_local_only`) on the remote, where a will
    /// sets it to `0` if the link dies (as Mosquitto).
    pub notifications: bool,
    pub notifications_local_only: bool,
    pub notification_topic: String,
    /// 0: no bound of its own (the disk is the bound).
    pub max_queued_messages: u64,
    pub max_queued_bytes: u64,
    pub queue_full_policy: BridgeQueuePolicy,
    /// QoS 1/2 messages in flight to the remote (less if its Receive
    /// Maximum is smaller; at most `link::V311_QOS2_WINDOW` to a 3.1.1
    /// remote when a rule forwards QoS 2).
    pub max_inflight: u16,
}

/// TLS to a bridge's remote (rustls on `ring`, TLS 1.2 and 1.3, loaded
/// by `server::tls::connector`, the listeners' file loading).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeTls {
    /// The CAs the remote's certificate must chain to.
    pub cafile: PathBuf,
    /// The client certificate and its key (mTLS).
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name checked in the remote's certificate (default: the host
    /// part of the address connected to).
    pub server_name: Option<String>,
}

/// Debian's bundle of the system's trusted CAs (`ca-certificates`).
pub const SYSTEM_CAFILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A `[[bridge]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileBridge {
    name: Spanned<String>,
    addresses: Spanned<Vec<String>>,
    round_robin: Option<bool>,
    address_order: Option<AddressOrder>,
    topics: Spanned<Vec<Spanned<String>>>,
    client_id: Option<String>,
    protocol_version: Option<Spanned<String>>,
    /// Mosquitto's name for `protocol_version`.
    bridge_protocol_version: Option<Spanned<String>>,
    try_private: Option<bool>,
    keep_alive_secs: Option<Spanned<u16>>,
    clean_session: Option<bool>,
    username: Option<String>,
    password: Option<String>,
    tls: Option<bool>,
    cafile: Option<Spanned<PathBuf>>,
    certfile: Option<Spanned<PathBuf>>,
    keyfile: Option<Spanned<PathBuf>>,
    tls_server_name: Option<Spanned<String>>,
    connect_timeout_secs: Option<Spanned<u64>>,
    reconnect_min_ms: Option<Spanned<u64>>,
    reconnect_max_ms: Option<Spanned<u64>>,
    notifications: Option<bool>,
    notifications_local_only: Option<bool>,
    notification_topic: Option<Spanned<String>>,
    max_queued_messages: Option<u64>,
    max_queued_bytes: Option<u64>,
    queue_full_policy: Option<BridgeQueuePolicy>,
    max_inflight: Option<Spanned<u16>>,
}

/// A bad setting: its key, the byte offset of its value in the file, why.
pub type BadKey = (&'static str, usize, String);

fn range<T: Copy + Into<u64>>(key: &'static str, v: &Option<Spanned<T>>, lo: u64, hi: u64) -> Result<(), BadKey> {
    match v {
        Some(s) if !(lo..=hi).contains(&(*s.get_ref()).into()) => {
            Err((key, s.span().start, format!("must be between {lo} and {hi}")))
        }
        _ => Ok(()),
    }
}

impl FileBridge {
    /// The bridge this table describes, checked.
    pub fn resolve(mut self) -> Result<BridgeConfig, BadKey> {
        let tls = self.tls_settings()?;
        let name = self.name.get_ref().clone();
        let at = self.name.span().start;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(("name", at, format!("`{name}`: use letters, digits, `-`, `_` and `.`")));
        }
        if self.addresses.get_ref().is_empty() {
            return Err((
                "addresses",
                self.addresses.span().start,
                "no address (expected [\"host:port\", ...])".into(),
            ));
        }
        for a in self.addresses.get_ref() {
            let ok = a.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(("addresses", self.addresses.span().start, format!("`{a}` is not host:port")));
            }
        }
        if self.topics.get_ref().is_empty() {
            return Err(("topics", self.topics.span().start, "no topic rule (expected [\"sensors/# out 1\"])".into()));
        }
        let topics = self
            .topics
            .into_inner()
            .into_iter()
            .map(|t| {
                t.get_ref()
                    .parse::<TopicRule>()
                    .map_err(|m| ("topics", t.span().start, format!("`{}`: {m}", t.get_ref())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let protocol_version = match (self.protocol_version, self.bridge_protocol_version) {
            (Some(_), Some(b)) => {
                return Err((
                    "bridge_protocol_version",
                    b.span().start,
                    "give protocol_version or this, not both".into(),
                ))
            }
            (Some(v), None) => protocol(&v, "protocol_version")?,
            (None, Some(v)) => protocol(&v, "bridge_protocol_version")?,
            (None, None) => BridgeProtocol::V311,
        };
        range("keep_alive_secs", &self.keep_alive_secs, 5, 65_535)?;
        range("connect_timeout_secs", &self.connect_timeout_secs, 1, 3600)?;
        range("reconnect_min_ms", &self.reconnect_min_ms, 10, 3_600_000)?;
        range("reconnect_max_ms", &self.reconnect_max_ms, 10, 3_600_000)?;
        range("max_inflight", &self.max_inflight, 1, 65_535)?;
        let reconnect_min_ms = self.reconnect_min_ms.map_or(1000, Spanned::into_inner);
        let reconnect_max_ms = match self.reconnect_max_ms {
            Some(m) if *m.get_ref() < reconnect_min_ms => {
                return Err(("reconnect_max_ms", m.span().start, "must be at least reconnect_min_ms".into()))
            }
            Some(m) => m.into_inner(),
            None => reconnect_min_ms.max(60_000),
        };
        let notification_topic = match self.notification_topic {
            Some(t) if !crate::protocol::topic::valid_name(t.get_ref()) => {
                return Err(("notification_topic", t.span().start, format!("`{}` is not a topic name", t.get_ref())))
            }
            Some(t) => t.into_inner(),
            None => format!("$SYS/broker/connection/{name}/state"),
        };
        let address_order = match (self.address_order, self.round_robin) {
            (Some(o), _) => o,
            (None, Some(true)) => AddressOrder::RoundRobin,
            (None, _) => AddressOrder::Primary,
        };
        Ok(BridgeConfig {
            client_id: self.client_id.unwrap_or_else(|| format!("edgemq-bridge-{name}")),
            addresses: self.addresses.into_inner(),
            address_order,
            topics,
            protocol_version,
            try_private: self.try_private.unwrap_or(true),
            keep_alive_secs: self.keep_alive_secs.map_or(60, Spanned::into_inner),
            clean_session: self.clean_session.unwrap_or(false),
            username: self.username,
            password: self.password,
            tls,
            connect_timeout_secs: self.connect_timeout_secs.map_or(10, Spanned::into_inner),
            reconnect_min_ms,
            reconnect_max_ms,
            notifications: self.notifications.unwrap_or(true),
            notifications_local_only: self.notifications_local_only.unwrap_or(false),
            notification_topic,
            max_queued_messages: self.max_queued_messages.unwrap_or(0),
            max_queued_bytes: self.max_queued_bytes.unwrap_or(0),
            queue_full_policy: self.queue_full_policy.unwrap_or_default(),
            max_inflight: self.max_inflight.map_or(100, Spanned::into_inner),
            name,
        })
    }
}

impl FileBridge {
    /// `tls` and its files: each file key needs `tls = true`, a client
    /// certificate its key and the other way round.
    fn tls_settings(&mut self) -> Result<Option<BridgeTls>, BadKey> {
        let at = |v: &Option<Spanned<PathBuf>>| v.as_ref().map(|s| s.span().start);
        if self.tls != Some(true) {
            let set = [("cafile", at(&self.cafile)), ("certfile", at(&self.certfile)), ("keyfile", at(&self.keyfile))]
                .into_iter()
                .chain([("tls_server_name", self.tls_server_name.as_ref().map(|s| s.span().start))])
                .find_map(|(k, a)| a.map(|a| (k, a)));
            return match set {
                Some((key, a)) => Err((key, a, "needs tls = true".into())),
                None => Ok(None),
            };
        }
        let client = match (self.certfile.take(), self.keyfile.take()) {
            (Some(c), Some(k)) => Some((c.into_inner(), k.into_inner())),
            (None, None) => None,
            (Some(c), None) => return Err(("certfile", c.span().start, "needs keyfile (its private key)".into())),
            (None, Some(k)) => return Err(("keyfile", k.span().start, "needs certfile (its certificate)".into())),
        };
        Ok(Some(BridgeTls {
            cafile: self.cafile.take().map_or_else(|| PathBuf::from(SYSTEM_CAFILE), Spanned::into_inner),
            client,
            server_name: self.tls_server_name.take().map(Spanned::into_inner),
        }))
    }
}

fn protocol(v: &Spanned<String>, key: &'static str) -> Result<BridgeProtocol, BadKey> {
    match v.get_ref().as_str() {
        "3.1.1" | "mqttv311" | "4" => Ok(BridgeProtocol::V311),
        "5" | "5.0" | "mqttv50" => Ok(BridgeProtocol::V5),
        other => {
            Err((key, v.span().start, format!("`{other}`: expected \"3.1.1\" (\"mqttv311\") or \"5\" (\"mqttv50\")")))
        }
    }
}

/// Resolves every table; names must differ.
pub fn resolve(tables: Vec<FileBridge>) -> Result<Vec<BridgeConfig>, BadKey> {
    let mut out: Vec<BridgeConfig> = Vec::new();
    for t in tables {
        let at = t.name.span().start;
        let b = t.resolve()?;
        if out.iter().any(|o| o.name == b.name) {
            return Err(("name", at, format!("a second bridge named `{}`", b.name)));
        }
        out.push(b);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
