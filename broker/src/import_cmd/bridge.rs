//! What a Mosquitto `connection` section becomes: one `[[bridge]]` table
//! (`bridge/config.rs`), each key preceded by the Mosquitto line it comes
//! from, a warning naming the line of each key that cannot be carried
//! over or that edgemq's bridge treats differently.
//!
//! Mosquitto's defaults that differ from edgemq's are written out: the
//! remote client id (`HOSTNAME.NAME`, so a persistent remote session is
//! the same one) and the notification topic
//! (`$SYS/broker/connection/CLIENT_ID/state`). A key that implies TLS
//! (`bridge_capath`, `bridge_psk`) keeps `tls = true` even when edgemq
//! cannot carry it over, so that credentials never go out in plaintext.

use super::translate::{from, set, toml_string, write_entries, Entry};
use super::{Line, Malformed};
use crate::bridge::config::TopicRule;

/// Keys of a `connection` section besides `bridge_*` (Mosquitto 2.0's
/// bridge options).
pub const BRIDGE_KEYS: &[&str] = &[
    "address",
    "addresses",
    "cleansession",
    "clientid",
    "idle_timeout",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "local_password",
    "local_username",
    "notifications",
    "notifications_local_only",
    "notification_topic",
    "password",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "threshold",
    "topic",
    "try_private",
    "username",
];

/// Keys that are not carried over, and why.
const NOT_CARRIED: &[(&str, &str)] = &[
    ("local_cleansession", "not needed: edgemq's bridge is inside the broker, it has no local session"),
    ("local_clientid", "not needed: edgemq's bridge is inside the broker, not a local client"),
    (
        "local_username",
        "not needed: edgemq's bridge is inside the broker, not a local client (local ACLs do not apply to it)",
    ),
    (
        "local_password",
        "not needed: edgemq's bridge is inside the broker, not a local client (local ACLs do not apply to it)",
    ),
    ("idle_timeout", "not supported: edgemq's bridges are always started (no `lazy` start type)"),
    ("threshold", "not supported: edgemq's bridges are always started (no `lazy` start type)"),
    ("bridge_attempt_unsubscribe", "not needed: edgemq's bridge sends no UNSUBSCRIBE for `out` rules"),
    ("bridge_bind_address", "not supported: the bridge's source address is the system's choice"),
    (
        "bridge_max_packet_size",
        "not supported: edgemq's bridge honours the remote's Maximum Packet Size (MQTT 5) and has no limit of its own",
    ),
    ("bridge_alpn", "not supported: edgemq's bridge sends no ALPN"),
    ("bridge_require_ocsp", "not supported: no OCSP check of the remote's certificate"),
    ("bridge_receive_maximum", "not supported: edgemq's bridge announces a Receive Maximum of 65535"),
    (
        "bridge_session_expiry_interval",
        "not supported: a persistent remote session (cleansession false) never expires, a clean one at once",
    ),
    ("bridge_max_topic_alias", "not supported: edgemq's bridge uses no topic aliases"),
    ("bridge_reload_type", "not supported: edgemq's bridges are not reloaded on SIGHUP"),
    ("bridge_tcp_keepalive", "not supported: the bridge's link is kept alive by MQTT PINGREQ"),
    ("bridge_tcp_user_timeout", "not supported: the bridge's link is kept alive by MQTT PINGREQ"),
];

/// A `connection` section: its line and the lines after it.
#[derive(Debug, Clone)]
pub struct Section {
    pub connection: Line,
    pub lines: Vec<Line>,
}

/// The host name Mosquitto puts in a bridge's default client id.
pub fn hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(h.trim().to_owned()).filter(|h| !h.is_empty())
}

/// The translation of one section.
struct Table<'a> {
    entries: Vec<Entry>,
    topics: Vec<(String, String)>,
    /// A key that turns TLS on in Mosquitto, and whether a CA file came.
    tls: Option<&'a Line>,
    cafile: bool,
    /// certfile or keyfile lines (only TLS with a CA in Mosquitto).
    client_files: Vec<&'a Line>,
    client_id: Option<(String, String)>,
    username: bool,
    password: Option<&'a Line>,
    notifications: bool,
    notification_topic: bool,
    warnings: &'a mut Vec<String>,
    bad: &'a mut Vec<Malformed>,
}

fn warn(warnings: &mut Vec<String>, l: &Line, message: &str) {
    warnings.push(format!("{}: `{}`: {message}", l.at(), l.key));
}

impl Table<'_> {
    fn warn(&mut self, l: &Line, message: &str) {
        warn(self.warnings, l, message);
    }

    fn put(&mut self, key: &'static str, value: String, l: &Line) {
        set(&mut self.entries, Entry { key, value, from: from(l) });
    }

    fn bool(&mut self, l: &Line) -> Option<bool> {
        match l.value.as_str() {
            "true" => Some(true),
            "false" => Some(false),
            v => {
                self.bad.push(Malformed::at(l, format!("`{v}` is not `true` or `false`")));
                None
            }
        }
    }

    fn secs(&mut self, l: &Line, word: &str) -> Option<u64> {
        match word.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                self.bad.push(Malformed::at(l, format!("`{word}` is not a number of seconds")));
                None
            }
        }
    }

    fn value(&mut self, l: &Line) -> Option<String> {
        if l.value.is_empty() {
            self.bad.push(Malformed::at(l, "needs a value"));
            return None;
        }
        Some(l.value.clone())
    }
}

/// Mosquitto's `host[:port]` (port 1883 by default; an IPv6 address
/// needs one, after its last colon) as edgemq's `host:port`.
fn address(word: &str) -> Result<String, String> {
    let (host, port) = match word.rsplit_once(':') {
        Some((h, p)) if h.contains(':') && !h.starts_with('[') => (h.to_owned(), p),
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_owned(), p),
        None => (word.to_owned(), "1883"),
    };
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("`{word}`: not a port"))?;
    if host.is_empty() {
        return Err(format!("`{word}`: no host"));
    }
    Ok(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") })
}

/// The `[[bridge]]` table of `s`; `queue` holds the global
/// `max_queued_messages`/`max_queued_bytes`, which Mosquitto applies to a
/// bridge too.
pub(super) fn table(
    s: &Section,
    queue: &[Entry],
    host: Option<&str>,
    warnings: &mut Vec<String>,
    bad: &mut Vec<Malformed>,
) -> String {
    let name = s.connection.value.clone();
    let mut t = Table {
        entries: Vec::new(),
        topics: Vec::new(),
        tls: None,
        cafile: false,
        client_files: Vec::new(),
        client_id: None,
        username: false,
        password: None,
        notifications: true,
        notification_topic: false,
        warnings,
        bad,
    };
    let mut has_address = false;
    for l in &s.lines {
        has_address |= matches!(l.key.as_str(), "address" | "addresses");
        key(&mut t, l);
    }
    let c = &s.connection;
    if !has_address {
        t.bad.push(Malformed::at(c, "a bridge needs an `address` line"));
    }
    if t.topics.is_empty() {
        t.bad.push(Malformed::at(c, "a bridge needs at least one `topic` line"));
    }
    if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch)) || name.is_empty() {
        t.bad.push(Malformed::at(c, "edgemq's bridge names are letters, digits, `-`, `_` and `.`: rename it"));
    }
    let client_id = match t.client_id.take() {
        Some((id, at)) => (id, at),
        None => match host {
            Some(h) => (format!("{h}.{name}"), format!("{}: Mosquitto's default client id, HOSTNAME.NAME", c.at())),
            None => {
                let w = "the host name cannot be read: Mosquitto's default client id (HOSTNAME.NAME) is not \
                         kept, edgemq's (edgemq-bridge-NAME) is used: a persistent remote session starts anew";
                warn(t.warnings, c, w);
                (format!("edgemq-bridge-{name}"), format!("{}: edgemq's default client id", c.at()))
            }
        },
    };
    finish(&mut t, c, &client_id);
    let mut out = format!("\n[[bridge]]\n# {}\nname = {}\n", from(c), toml_string(&name));
    out.push_str(&format!("# {}\nclient_id = {}\n", client_id.1, toml_string(&client_id.0)));
    write_entries(&mut out, &t.entries);
    out.push_str(&t.topics.iter().map(|(_, from)| format!("# {from}\n")).collect::<String>());
    let rules: Vec<String> = t.topics.iter().map(|(r, _)| toml_string(r)).collect();
    out.push_str(&format!("topics = [{}]\n", rules.join(", ")));
    if queue.is_empty() {
        out.push_str(
            "# Mosquitto's default max_queued_messages (1000, in memory) is not carried\n\
             # over: this bridge's queue is on disk, bounded by the disk.\n",
        );
    } else {
        for e in queue {
            let e = Entry { from: format!("{} (global in Mosquitto, bridges too)", e.from), ..e.clone() };
            write_entries(&mut out, std::slice::from_ref(&e));
        }
    }
    out
}

/// What depends on several keys: TLS, credentials, notifications.
fn finish(t: &mut Table<'_>, c: &Line, client_id: &(String, String)) {
    if let Some(l) = t.tls {
        let e = Entry { key: "tls", value: "true".into(), from: from(l) };
        t.entries.insert(0, e);
        if !t.cafile {
            let w = "edgemq's bridge trusts the system's CAs (/etc/ssl/certs) without `bridge_cafile`";
            warn(t.warnings, l, w);
        }
    } else {
        for l in std::mem::take(&mut t.client_files) {
            t.entries.retain(|e| e.key != "certfile" && e.key != "keyfile");
            warn(t.warnings, l, "without `bridge_cafile` this is not a TLS bridge in Mosquitto: not carried over");
        }
    }
    if let Some(l) = t.password.filter(|_| !t.username) {
        t.entries.retain(|e| e.key != "password");
        warn(t.warnings, l, "a password without `remote_username`: not carried over (as Mosquitto, which sends none)");
    }
    if !t.notifications {
        return;
    }
    if !t.notification_topic {
        let topic = format!("$SYS/broker/connection/{}/state", client_id.0);
        let e = Entry {
            key: "notification_topic",
            value: toml_string(&topic),
            from: format!("{}: Mosquitto's notification topic (with the remote client id)", c.at()),
        };
        set(&mut t.entries, e);
    }
}

/// One key of a section.
fn key<'a>(t: &mut Table<'a>, l: &'a Line) {
    let k = l.key.as_str();
    if let Some((_, why)) = NOT_CARRIED.iter().find(|(n, _)| *n == k) {
        return t.warn(l, why);
    }
    match k {
        "address" | "addresses" => {
            let words = l.words();
            if words.is_empty() {
                return t.bad.push(Malformed::at(l, "needs an address: `address HOST[:PORT] ...`"));
            }
            match words.iter().map(|w| address(w)).collect::<Result<Vec<_>, _>>() {
                Ok(a) => {
                    let list: Vec<String> = a.iter().map(|a| toml_string(a)).collect();
                    t.put("addresses", format!("[{}]", list.join(", ")), l);
                }
                Err(why) => t.bad.push(Malformed::at(l, why)),
            }
        }
        "round_robin" => {
            if let Some(b) = t.bool(l) {
                let order = if b { "\"round_robin\"" } else { "\"primary\"" };
                t.put("address_order", order.into(), l);
            }
        }
        "topic" => match l.value.parse::<TopicRule>() {
            Ok(r) => t.topics.push((r.to_string(), from(l))),
            Err(why) => t.bad.push(Malformed::at(l, why)),
        },
        "remote_clientid" | "clientid" => {
            if let Some(v) = t.value(l) {
                t.client_id = Some((v, from(l)));
            }
        }
        "remote_username" | "username" => {
            if let Some(v) = t.value(l) {
                t.username = true;
                t.put("username", toml_string(&v), l);
            }
        }
        "remote_password" | "password" => {
            if let Some(v) = t.value(l) {
                t.password = Some(l);
                t.put("password", toml_string(&v), l);
            }
        }
        "bridge_protocol_version" => match l.value.as_str() {
            "mqttv311" => t.put("protocol_version", "\"3.1.1\"".into(), l),
            "mqttv50" => t.put("protocol_version", "\"5\"".into(), l),
            "mqttv31" => {
                t.warn(
                    l,
                    "MQTT 3.1 is not spoken by edgemq's bridge: 3.1.1 is used (brokers that take 3.1 take 3.1.1)",
                );
                t.put("protocol_version", "\"3.1.1\"".into(), l);
            }
            v => t.bad.push(Malformed::at(l, format!("`{v}` is not mqttv31, mqttv311 or mqttv50"))),
        },
        "cleansession" | "try_private" | "notifications" | "notifications_local_only" => {
            let Some(b) = t.bool(l) else { return };
            match k {
                "cleansession" => t.put("clean_session", b.to_string(), l),
                "try_private" => t.put("try_private", b.to_string(), l),
                "notifications" => {
                    t.notifications = b;
                    t.put("notifications", b.to_string(), l);
                }
                _ => t.put("notifications_local_only", b.to_string(), l),
            }
        }
        "notification_topic" => {
            if let Some(v) = t.value(l) {
                t.notification_topic = true;
                t.put("notification_topic", toml_string(&v), l);
            }
        }
        "keepalive_interval" => match l.value.parse::<u16>() {
            Ok(n @ 5..) => t.put("keep_alive_secs", n.to_string(), l),
            _ => t.bad.push(Malformed::at(l, "must be between 5 and 65535 seconds")),
        },
        "restart_timeout" => restart_timeout(t, l),
        "start_type" => match l.value.as_str() {
            "automatic" => {}
            "lazy" | "once" => {
                t.warn(l, "not supported: edgemq's bridges start with the broker and reconnect (`automatic`)")
            }
            v => t.bad.push(Malformed::at(l, format!("`{v}` is not automatic, lazy or once"))),
        },
        "bridge_cafile" | "bridge_certfile" | "bridge_keyfile" => {
            let Some(v) = t.value(l) else { return };
            let key = match k {
                "bridge_cafile" => "cafile",
                "bridge_certfile" => "certfile",
                _ => "keyfile",
            };
            if key == "cafile" {
                t.cafile = true;
                t.tls = Some(l);
            } else {
                t.client_files.push(l);
            }
            t.put(key, toml_string(&v), l);
        }
        "bridge_capath" => {
            t.tls.get_or_insert(l);
            t.warn(l, "not supported: put the CA certificates in one file for `bridge_cafile` (TLS kept on)");
        }
        "bridge_identity" | "bridge_psk" => {
            t.tls.get_or_insert(l);
            t.warn(l, "not supported: no TLS-PSK; TLS kept on with the system's CAs: give the bridge a CA file");
        }
        "bridge_insecure" => {
            if t.bool(l) == Some(true) {
                let w = "not supported: edgemq always checks the remote's certificate name (set `tls_server_name` \
                         to the name it carries)";
                t.warn(l, w);
            }
        }
        "bridge_tls_version" => match l.value.as_str() {
            "tlsv1.2" | "tlsv1.3" => {
                t.warn(l, "not pinned: edgemq's bridge offers TLS 1.3 and 1.2, the remote chooses")
            }
            _ => t.warn(l, "not supported: edgemq's bridge speaks TLS 1.2 and 1.3 only"),
        },
        "bridge_outgoing_retain" => {
            if t.bool(l) == Some(false) {
                t.warn(l, "not supported: retained messages are forwarded with their retain flag");
            }
        }
        _ => t.warn(l, "not a Mosquitto 2.0 bridge key edgemq knows: not carried over"),
    }
}

/// `restart_timeout CONSTANT` or `restart_timeout BASE CAP` (seconds):
/// the reconnect delay's bounds (edgemq doubles it from the base to the cap
/// with jitter, Mosquitto's "decorrelated jitter" draws it between them).
fn restart_timeout(t: &mut Table<'_>, l: &Line) {
    let w = l.words();
    let (base, cap) = match w.as_slice() {
        [c] => match t.secs(l, c) {
            Some(c) => (c, c),
            None => return,
        },
        [b, c] => match (t.secs(l, b), t.secs(l, c)) {
            (Some(b), Some(c)) => (b, c),
            _ => return,
        },
        _ => return t.bad.push(Malformed::at(l, "`restart_timeout CONSTANT` or `restart_timeout BASE CAP`")),
    };
    if base == 0 || cap < base {
        return t.bad.push(Malformed::at(l, "the base must be 1 s or more and the cap at least the base"));
    }
    let (base, cap) = if cap > 3600 {
        t.warn(l, "edgemq's longest reconnect delay is 3600 s");
        (base.min(3600), 3600)
    } else {
        (base, cap)
    };
    t.put("reconnect_min_ms", (base * 1000).to_string(), l);
    t.put("reconnect_max_ms", (cap * 1000).to_string(), l);
}

#[cfg(test)]
#[path = "bridge_tests.rs"]
mod tests;
