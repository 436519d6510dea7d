//! What each Mosquitto key becomes in `edgemq.toml`: the model of a
//! Mosquitto configuration (global keys, the default listener, `listener`
//! blocks, security settings global or per listener, bridges) built from
//! its [`Line`]s in order, as Mosquitto reads them, and its TOML text.
//!
//! Mosquitto 2's defaults that differ from edgemq's are written out:
//! once a listener is configured, `allow_anonymous` is false unless set
//! (edgemq's default is true). With `per_listener_settings true` each
//! listener gets its own `allow_anonymous`, `password_file` and
//! `acl_file` and no global one is written (a listener without them has
//! none, as in Mosquitto).

use super::bridge::Section;
use super::{Line, Malformed};
use crate::auth::acl::AclFile;
use crate::auth::passwd::PasswordFile;

/// The result of an import: the TOML text and the warnings (also in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub toml: String,
    /// One line each: `file:line: `key`: what happens`.
    pub warnings: Vec<String>,
}

/// A key of the output, with where it comes from.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub key: &'static str,
    /// A TOML value, as written.
    pub value: String,
    /// `file:line: text` of the Mosquitto line, or a note.
    pub from: String,
}

/// `allow_anonymous`, `password_file`, `acl_file`: global, or one
/// listener's under `per_listener_settings true`.
#[derive(Debug, Clone, Default)]
struct Security {
    allow_anonymous: Option<Entry>,
    password_file: Option<Entry>,
    acl_file: Option<Entry>,
    /// A listener key in edgemq: a global one goes into every listener.
    use_username_as_clientid: Option<Entry>,
}

impl Security {
    fn entries(&self, listeners_configured: bool) -> Vec<Entry> {
        let anonymous = self.allow_anonymous.clone().or_else(|| {
            listeners_configured.then(|| Entry {
                key: "allow_anonymous",
                value: "false".into(),
                from: "Mosquitto 2's default once a listener is configured (edgemq's is true)".into(),
            })
        });
        [anonymous, self.password_file.clone(), self.acl_file.clone()].into_iter().flatten().collect()
    }
}

/// A listener: `listener PORT [ADDR]`, or the default one (`port`,
/// `bind_address`, listener keys before any `listener` line).
#[derive(Debug, Clone, Default)]
struct Listener {
    from: String,
    port: u16,
    addr: Option<String>,
    ipv6: bool,
    websockets: bool,
    /// TLS and limit keys, in the order met (a repeated key replaces).
    entries: Vec<Entry>,
    security: Security,
}

impl Listener {
    fn set(&mut self, e: Entry) {
        set(&mut self.entries, e);
    }

    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|e| e.key == key)
    }
}

pub(super) fn set(entries: &mut Vec<Entry>, e: Entry) {
    match entries.iter_mut().find(|x| x.key == e.key) {
        Some(x) => *x = e,
        None => entries.push(e),
    }
}

/// Keys that are not carried over, and why.
const NOT_CARRIED: &[(&str, &str)] = &[
    ("allow_duplicate_messages", "obsolete in Mosquitto 2; edgemq delivers once per matching subscription"),
    (
        "allow_zero_length_clientid",
        "not configurable: edgemq assigns an id to a clean client that sends none, as MQTT allows",
    ),
    ("auto_id_prefix", "not configurable: edgemq's assigned client ids have their own prefix"),
    ("autosave_interval", "edgemq writes every change ahead to its log (see `sync`); there is no periodic save"),
    ("autosave_on_changes", "edgemq writes every change ahead to its log (see `sync`); there is no periodic save"),
    ("persistence_file", "edgemq keeps its own store in `data_dir`/store; mosquitto.db is not read"),
    ("check_retain_source", "not supported: retained messages are not rechecked against the publisher's ACL"),
    ("clientid_prefixes", "not supported: restrict client ids with ACL `pattern` lines instead"),
    ("memory_limit", "not carried over: edgemq bounds queue memory with `queue_memory_bytes` (default 256 MiB)"),
    (
        "message_size_limit",
        "not carried over: edgemq limits whole packets (`max_packet_size`: payload, topic and headers), not payloads",
    ),
    ("max_qos", "not supported: edgemq grants QoS 0, 1 and 2"),
    (
        "upgrade_outgoing_qos",
        "not supported: deliveries take the lower of the publish and subscription QoS, as MQTT says",
    ),
    ("set_tcp_nodelay", "not needed: edgemq always sets TCP_NODELAY"),
    ("pid_file", "not supported: edgemq does not daemonize; run it under systemd (or similar)"),
    ("user", "not supported: edgemq does not drop privileges; start it as the user it should run as"),
    ("mount_point", "not supported: no per-listener topic prefix"),
    ("http_dir", "not supported: edgemq's WebSocket listeners serve no files"),
    ("websockets_log_level", "not supported: use RUST_LOG"),
    ("websockets_headers_size", "not configurable"),
    ("tls_version", "not carried over: edgemq's TLS listeners accept TLS 1.2 and 1.3"),
    ("ciphers", "not carried over: edgemq uses rustls' default cipher suites (TLS 1.2 ECDHE with AES-GCM or ChaCha20)"),
    ("ciphers_tls1.3", "not carried over: edgemq uses rustls' TLS 1.3 cipher suites"),
    ("dhparamfile", "not needed: rustls has no finite-field DH"),
    ("tls_engine", "not supported: keys are read from PEM files only"),
    ("tls_engine_kpass_sha1", "not supported: keys are read from PEM files only"),
    ("tls_keyform", "not supported: keys are read from PEM files only"),
    ("capath", "not supported: put the CA certificates in one `cafile`"),
    ("psk_hint", "not supported: no TLS-PSK"),
    ("psk_file", "not supported: no TLS-PSK"),
    ("auth_plugin", "not supported: plugins cannot be loaded (edgemq's enhanced-authentication seam is in code)"),
    ("plugin", "not supported: plugins cannot be loaded (edgemq's enhanced-authentication seam is in code)"),
    ("global_plugin", "not supported: plugins cannot be loaded"),
    ("auth_plugin_deny_special_chars", "not supported: plugins cannot be loaded"),
    ("bind_interface", "not supported: give the interface's address to `listener` instead"),
    ("enable_proxy_protocol", "not supported: no PROXY protocol"),
    ("accept_protocol_versions", "not supported: edgemq accepts MQTT 3.1, 3.1.1 and 5.0 on every listener"),
    ("connection_messages", "not carried over: connections are logged with `verbose = true`"),
    ("log_facility", "not supported: edgemq logs to standard error"),
    ("log_timestamp", "not configurable: edgemq's log lines always carry a timestamp"),
    ("log_timestamp_format", "not configurable: edgemq's timestamps are RFC 3339"),
];

/// The state of a translation, key after key.
#[derive(Default)]
struct State {
    per_listener: bool,
    global: Vec<Entry>,
    security: Security,
    default: Option<Listener>,
    listeners: Vec<Listener>,
    bridges: Vec<Section>,
    log_types: Vec<(String, String)>,
    warnings: Vec<String>,
    bad: Vec<Malformed>,
}

/// `file:line: text`.
pub(super) fn from(l: &Line) -> String {
    format!("{}: {}", l.at(), l.text())
}

/// A TOML basic string.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl State {
    fn warn(&mut self, l: &Line, message: &str) {
        self.warnings.push(format!("{}: `{}`: {message}", l.at(), l.key));
    }

    fn malformed(&mut self, l: &Line, message: impl Into<String>) {
        self.bad.push(Malformed::at(l, message));
    }

    fn bool(&mut self, l: &Line) -> Option<bool> {
        match l.value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            v => {
                self.malformed(l, format!("`{v}` is not `true` or `false`"));
                None
            }
        }
    }

    fn int(&mut self, l: &Line) -> Option<i64> {
        match l.value.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.malformed(l, format!("`{}` is not a whole number", l.value));
                None
            }
        }
    }

    fn string(&mut self, l: &Line) -> Option<String> {
        if l.value.is_empty() {
            self.malformed(l, "needs a value");
            return None;
        }
        Some(l.value.clone())
    }

    fn global(&mut self, key: &'static str, value: String, l: &Line) {
        set(&mut self.global, Entry { key, value, from: from(l) });
    }

    /// The listener that listener keys apply to: the last `listener`, or
    /// the default listener before the first.
    fn listener(&mut self, l: &Line) -> &mut Listener {
        if self.listeners.is_empty() {
            self.default.get_or_insert_with(|| Listener {
                from: format!("{}: the default listener (port 1883 unless `port` is set)", l.at()),
                port: 1883,
                ..Listener::default()
            })
        } else {
            let n = self.listeners.len() - 1;
            &mut self.listeners[n]
        }
    }

    /// Where security keys go: a listener's with `per_listener_settings
    /// true`, else the global ones.
    fn security(&mut self, l: &Line) -> &mut Security {
        if self.per_listener {
            &mut self.listener(l).security
        } else {
            &mut self.security
        }
    }

    fn line(&mut self, l: &Line) {
        let key = l.key.as_str();
        if let Some((_, why)) = NOT_CARRIED.iter().find(|(k, _)| *k == key) {
            return self.warn(l, why);
        }
        if key.starts_with("auth_opt_") || key.starts_with("plugin_opt_") {
            return self.warn(l, "not supported: plugins cannot be loaded");
        }
        if key == "connection" || key.starts_with("bridge_") || super::bridge::BRIDGE_KEYS.contains(&key) {
            return self.bridge(l);
        }
        match key {
            "per_listener_settings" => {
                // Read before the other lines (see `translate`).
                self.bool(l);
            }
            "listener" => self.new_listener(l),
            "port" => {
                if let Some(p) = self.int(l) {
                    match u16::try_from(p) {
                        Ok(p) if p > 0 => {
                            let d = self.listener_default(l);
                            d.port = p;
                            d.from = from(l);
                        }
                        _ => self.malformed(l, "not a port (1 to 65535)"),
                    }
                }
            }
            "bind_address" => {
                if let Some(a) = self.string(l) {
                    self.listener_default(l).addr = Some(a);
                }
            }
            "socket_domain" => match l.value.as_str() {
                "ipv4" => self.listener(l).ipv6 = false,
                "ipv6" => self.listener(l).ipv6 = true,
                v => self.malformed(l, format!("`{v}` is not `ipv4` or `ipv6`")),
            },
            "protocol" => match l.value.as_str() {
                "mqtt" => self.listener(l).websockets = false,
                "websockets" => self.listener(l).websockets = true,
                v => self.malformed(l, format!("`{v}` is not `mqtt` or `websockets`")),
            },
            "cafile" | "certfile" | "keyfile" | "crlfile" => {
                let k = match key {
                    "cafile" => "cafile",
                    "certfile" => "certfile",
                    "keyfile" => "keyfile",
                    _ => "crlfile",
                };
                if let Some(v) = self.string(l) {
                    let e = Entry { key: k, value: toml_string(&v), from: from(l) };
                    self.listener(l).set(e);
                }
            }
            "require_certificate" | "use_identity_as_username" | "use_subject_as_username" => {
                let k = match key {
                    "require_certificate" => "require_certificate",
                    "use_identity_as_username" => "use_identity_as_username",
                    _ => "use_subject_as_username",
                };
                if let Some(b) = self.bool(l) {
                    let e = Entry { key: k, value: b.to_string(), from: from(l) };
                    self.listener(l).set(e);
                }
            }
            "max_connections" => {
                if let Some(n) = self.int(l) {
                    if n > 0 {
                        let e = Entry { key: "max_connections", value: n.to_string(), from: from(l) };
                        self.listener(l).set(e);
                    } else if n != -1 {
                        self.warn(
                            l,
                            "not carried over: edgemq's listeners take at least one connection (-1: no limit)",
                        );
                    }
                }
            }
            "allow_anonymous" => {
                if let Some(b) = self.bool(l) {
                    let e = Entry { key: "allow_anonymous", value: b.to_string(), from: from(l) };
                    self.security(l).allow_anonymous = Some(e);
                }
            }
            "use_username_as_clientid" => {
                if let Some(b) = self.bool(l) {
                    let e = Entry { key: "use_username_as_clientid", value: b.to_string(), from: from(l) };
                    self.security(l).use_username_as_clientid = Some(e);
                }
            }
            "password_file" | "acl_file" => {
                if let Some(v) = self.string(l) {
                    self.check_auth_file(l, &v);
                    let k = if key == "password_file" { "password_file" } else { "acl_file" };
                    let e = Some(Entry { key: k, value: toml_string(&v), from: from(l) });
                    let s = self.security(l);
                    if k == "password_file" {
                        s.password_file = e;
                    } else {
                        s.acl_file = e;
                    }
                }
            }
            "log_dest" => self.log_dest(l),
            "log_type" => {
                let t = l.value.clone();
                self.log_types.push((t, l.at()));
            }
            "retain_available" => {
                if self.bool(l) == Some(false) {
                    self.warn(
                        l,
                        "not supported: edgemq always retains messages (limit them with `max_retained_messages`)",
                    );
                }
            }
            _ => self.limit(l),
        }
    }

    /// The default listener, made by `port` or `bind_address` even after
    /// `listener` lines.
    fn listener_default(&mut self, l: &Line) -> &mut Listener {
        self.default.get_or_insert_with(|| Listener { from: from(l), port: 1883, ..Listener::default() })
    }

    fn new_listener(&mut self, l: &Line) {
        let w = l.words();
        let Some(port) = w.first().and_then(|p| p.parse::<u16>().ok()) else {
            return self.malformed(l, "needs a port: `listener PORT [ADDRESS]`");
        };
        if w.len() > 2 {
            return self.malformed(l, "takes a port and at most one address");
        }
        self.listeners.push(Listener {
            from: from(l),
            port,
            addr: w.get(1).map(|a| (*a).to_owned()),
            ..Listener::default()
        });
    }

    fn bridge(&mut self, l: &Line) {
        if l.key == "connection" {
            if self.string(l).is_some() {
                self.bridges.push(Section { connection: l.clone(), lines: Vec::new() });
            }
            return;
        }
        match self.bridges.last_mut() {
            Some(b) => b.lines.push(l.clone()),
            None => self.malformed(l, "a bridge option before any `connection` line"),
        }
    }

    fn log_dest(&mut self, l: &Line) {
        match l.words().first().copied() {
            Some("stderr") => {}
            Some("stdout") => self.warn(l, "edgemq logs to standard error, not standard output"),
            Some("none") => self.warn(l, "edgemq always logs warnings to standard error (RUST_LOG=off silences it)"),
            Some(d @ ("file" | "syslog" | "topic" | "dlt")) => {
                let why = format!("`{d}` is not supported: edgemq logs to standard error (systemd's journal takes it)");
                self.warn(l, &why);
            }
            _ => self.malformed(l, "not one of stderr, stdout, file, syslog, topic, dlt, none"),
        }
    }

    /// A password or ACL file that edgemq cannot read is said now.
    fn check_auth_file(&mut self, l: &Line, path: &str) {
        let err = if l.key == "password_file" {
            PasswordFile::load(path).err().map(|e| e.to_string())
        } else {
            AclFile::load(path).err().map(|e| e.to_string())
        };
        if let Some(e) = err {
            self.warn(l, &format!("carried over, but edgemq cannot load it now: {e}"));
        }
    }

    /// The numeric and boolean global keys.
    fn limit(&mut self, l: &Line) {
        match l.key.as_str() {
            "persistence" | "queue_qos0_messages" => {
                let k = if l.key == "persistence" { "persistence" } else { "queue_qos0_messages" };
                if let Some(b) = self.bool(l) {
                    self.global(k, b.to_string(), l);
                }
            }
            "persistence_location" => {
                if let Some(v) = self.string(l) {
                    self.global("data_dir", toml_string(&v), l);
                    self.warn(l, "edgemq keeps its own store there (`store/`); Mosquitto's mosquitto.db is not read, sessions and retained messages start empty");
                }
            }
            "max_inflight_messages" => {
                let Some(n) = self.int(l) else { return };
                match n {
                    0 => {
                        self.warn(l, "0 (no limit) becomes 65535, edgemq's largest");
                        self.global("max_inflight_messages", "65535".into(), l);
                    }
                    1..=65535 => self.global("max_inflight_messages", n.to_string(), l),
                    _ => self.malformed(l, "must be between 0 and 65535"),
                }
            }
            "max_queued_messages" | "max_queued_bytes" => {
                let k = if l.key == "max_queued_messages" { "max_queued_messages" } else { "max_queued_bytes" };
                match self.int(l) {
                    Some(n) if n >= 0 => self.global(k, n.to_string(), l),
                    Some(_) => self.malformed(l, "must be 0 (no limit) or more"),
                    None => {}
                }
            }
            "max_packet_size" => match self.int(l) {
                Some(0) => {}
                Some(n) if (20..=268_435_455).contains(&n) => self.global("max_packet_size", n.to_string(), l),
                Some(_) => self.malformed(l, "must be 0 (no limit) or between 20 and 268435455"),
                None => {}
            },
            "persistent_client_expiration" => match crate::config::mosquitto_duration(&l.value) {
                Some(s) => self.global("session_expiry_secs", s.to_string(), l),
                None => self.malformed(l, "not a duration: a number and one of h, d, w, m, y (\"14d\")"),
            },
            "sys_interval" => match self.int(l) {
                Some(n @ 0..=86_400) => self.global("sys_interval", n.to_string(), l),
                Some(n) if n > 86_400 => {
                    self.warn(l, "edgemq's longest is 86400 s (one day)");
                    self.global("sys_interval", "86400".into(), l);
                }
                Some(_) => self.malformed(l, "must be 0 (off) or more"),
                None => {}
            },
            "max_keepalive" => match self.int(l) {
                Some(n @ 1..=65535) => self.global("max_keepalive", n.to_string(), l),
                Some(0) => self.warn(l, "0 is not carried over: edgemq's max_keepalive is 1 to 65535"),
                Some(_) => self.malformed(l, "must be between 0 and 65535"),
                None => {}
            },
            "max_topic_alias" => match self.int(l) {
                Some(n @ 0..=65535) => {
                    if !self.listeners.is_empty() {
                        self.warn(l, "per listener in Mosquitto, global in edgemq (`topic_alias_maximum`)");
                    }
                    self.global("topic_alias_maximum", n.to_string(), l);
                }
                Some(_) => self.malformed(l, "must be between 0 and 65535"),
                None => {}
            },
            _ => self.warn(l, "not a Mosquitto 2.0 key edgemq knows: not carried over"),
        }
    }

    /// `log_type` lines: `verbose` for connection logs, RUST_LOG for debug.
    fn log_types(&mut self) {
        let types = std::mem::take(&mut self.log_types);
        let Some((_, last)) = types.last() else { return };
        let names: Vec<&str> = types.iter().map(|(t, _)| t.as_str()).collect();
        if names.iter().any(|t| matches!(*t, "notice" | "information" | "all" | "subscribe" | "unsubscribe")) {
            let from = format!("{last}: log_type {} (connections and subscriptions logged)", names.join(", "));
            set(&mut self.global, Entry { key: "verbose", value: "true".into(), from });
        }
        if names.iter().any(|t| matches!(*t, "debug" | "all")) {
            self.warnings
                .push(format!("{last}: `log_type`: debug logging is chosen with RUST_LOG=debug, not in the file"));
        }
    }
}

/// Translates the lines of a Mosquitto configuration (read from
/// `origin`); a malformed line is an error, with all others found.
pub fn translate(origin: &str, lines: &[Line]) -> Result<Imported, Vec<Malformed>> {
    // Mosquitto applies per_listener_settings wherever it is written.
    let per_listener = lines.iter().rev().find(|l| l.key == "per_listener_settings").is_some_and(|l| l.value == "true");
    let mut s = State { per_listener, ..State::default() };
    for l in lines {
        s.line(l);
    }
    s.log_types();
    let queue: Vec<Entry> =
        s.global.iter().filter(|e| matches!(e.key, "max_queued_messages" | "max_queued_bytes")).cloned().collect();
    let host = super::bridge::hostname();
    let bridges: String = std::mem::take(&mut s.bridges)
        .iter()
        .map(|b| super::bridge::table(b, &queue, host.as_deref(), &mut s.warnings, &mut s.bad))
        .collect();
    if !s.bad.is_empty() {
        return Err(s.bad);
    }
    Ok(emit(origin, s, &bridges))
}

/// `bind` of a listener, or why it cannot be carried over.
fn bind(l: &Listener) -> Result<(String, Option<String>), String> {
    match l.addr.as_deref() {
        None if l.ipv6 => Ok((format!("[::]:{}", l.port), None)),
        None => Ok((
            format!("0.0.0.0:{}", l.port),
            Some("Mosquitto listens on every IPv4 and IPv6 address; this listener takes IPv4 (bind \"[::]\" takes both on Linux)".into()),
        )),
        Some("localhost") => Ok((
            format!("127.0.0.1:{}", l.port),
            Some("`localhost`: this listener takes 127.0.0.1 only (add one on \"[::1]\" for IPv6)".into()),
        )),
        Some(a) => match a.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(ip)) => Ok((format!("[{ip}]:{}", l.port), None)),
            Ok(ip) => Ok((format!("{ip}:{}", l.port), None)),
            Err(_) if a.starts_with('/') => Err(format!("`{a}` is a Unix socket: not supported, listener not carried over")),
            Err(_) => Err(format!("`{a}` is not an IP address: listener not carried over (give its address)")),
        },
    }
}

pub(super) fn write_entries(out: &mut String, entries: &[Entry]) {
    for e in entries {
        out.push_str(&format!("# {}\n{} = {}\n", e.from, e.key, e.value));
    }
}

fn emit(origin: &str, mut s: State, bridges: &str) -> Imported {
    let mut tables = String::new();
    let listeners: Vec<Listener> = s.default.take().into_iter().chain(std::mem::take(&mut s.listeners)).collect();
    let configured = !listeners.is_empty();
    if !s.global.iter().any(|e| e.key == "persistence") {
        s.warnings.push(format!(
            "{origin}: `persistence` is not set: Mosquitto's default is false (nothing kept across a restart), \
             edgemq's is true (sessions, queues and retained messages kept in `data_dir`); \
             add `persistence = false` for Mosquitto's behaviour"
        ));
    }
    for l in &listeners {
        if l.port == 0 {
            s.warnings.push(format!("{}: port 0 (a Unix socket): not supported, listener not carried over", l.from));
            continue;
        }
        let (bind, note) = match bind(l) {
            Ok(b) => b,
            Err(why) => {
                s.warnings.push(format!("{}: {why}", l.from));
                continue;
            }
        };
        if let Some(n) = note {
            s.warnings.push(format!("{}: {n}", l.from));
        }
        let mut entries = l.entries.clone();
        let tls = l.has("certfile");
        if !tls && !entries.is_empty() {
            let dropped: Vec<&str> = entries.iter().filter(|e| e.key != "max_connections").map(|e| e.key).collect();
            if !dropped.is_empty() {
                s.warnings.push(format!(
                    "{}: {} without `certfile`: not a TLS listener, not carried over",
                    l.from,
                    dropped.join(", ")
                ));
            }
            entries.retain(|e| e.key == "max_connections");
        }
        let protocol = match (tls, l.websockets) {
            (false, false) => "mqtt",
            (true, false) => "mqtts",
            (false, true) => "ws",
            (true, true) => "wss",
        };
        tables.push_str(&format!("\n[[listener]]\n# {}\nbind = \"{bind}\"\nprotocol = \"{protocol}\"\n", l.from));
        write_entries(&mut tables, &entries);
        if s.per_listener {
            write_entries(&mut tables, &l.security.entries(true));
        }
        let by_name = if s.per_listener { &l.security } else { &s.security };
        write_entries(&mut tables, by_name.use_username_as_clientid.as_slice());
    }
    let mut out = format!(
        "# edgemq configuration imported from the Mosquitto configuration {origin}\n\
         # by `edgemq import-mosquitto`. Each key is preceded by the Mosquitto\n\
         # line it comes from; WARNING lines are what was not carried over or\n\
         # what edgemq does differently. See edgemq.toml in the edgemq sources\n\
         # for every key.\n"
    );
    if !s.warnings.is_empty() {
        out.push('\n');
        for w in &s.warnings {
            out.push_str(&format!("# WARNING: {w}\n"));
        }
    }
    out.push('\n');
    if s.per_listener {
        out.push_str(
            "# per_listener_settings true: each listener has its own allow_anonymous,\n# password_file and acl_file.\n",
        );
    }
    let mut global = s.global.clone();
    if !s.per_listener {
        global.extend(s.security.entries(configured));
    }
    write_entries(&mut out, &global);
    if !configured {
        out.push_str(
            "# No listener: like Mosquitto 2 without one, edgemq listens on\n# 127.0.0.1 and [::1], port 1883.\n",
        );
    }
    out.push_str(&tables);
    out.push_str(bridges);
    Imported { toml: out, warnings: s.warnings }
}
