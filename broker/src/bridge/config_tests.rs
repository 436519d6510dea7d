use super::*;
use crate::config::{Args, Config};
use std::io::Write;

fn with_file(text: &str) -> Result<Config, crate::config::ConfigError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    Config::from_args(&Args { config: Some(f.path().to_owned()), ..Args::default() })
}

fn rule(s: &str) -> TopicRule {
    s.parse().unwrap()
}

#[test]
fn rules_parse_as_mosquitto_writes_them() {
    let r = rule("sensors/# out 1");
    assert_eq!((r.pattern.as_str(), r.direction, r.qos), ("sensors/#", Direction::Out, 1));
    assert_eq!((r.local_prefix.as_str(), r.remote_prefix.as_str()), ("", ""));
    let r = rule("cmd/# in 2 edge/ site1/");
    assert_eq!(r.local_filter(), "edge/cmd/#");
    assert_eq!(r.remote_filter(), "site1/cmd/#");
    // Defaults: out, QoS 0.
    assert_eq!(
        rule("a/b"),
        TopicRule {
            pattern: "a/b".into(),
            direction: Direction::Out,
            qos: 0,
            local_prefix: "".into(),
            remote_prefix: "".into()
        }
    );
    // `""` for an empty prefix or pattern.
    let r = rule("# both 1 \"\" gw/");
    assert_eq!((r.local_filter().as_str(), r.remote_filter().as_str()), ("#", "gw/#"));
    let r = rule("\"\" out 0 local/status remote/status");
    assert_eq!(r.to_remote("local/status").as_deref(), Some("remote/status"));
    assert_eq!(r.to_remote("local/status/x"), None);
    // Written back in the same syntax.
    assert_eq!(rule("# both 1 \"\" gw/").to_string(), "# both 1 \"\" gw/");
    assert_eq!(rule("a/+ in 2").to_string(), "a/+ in 2");
}

#[test]
fn rules_map_topics_both_ways() {
    let r = rule("cmd/# both 1 edge/ site1/");
    assert_eq!(r.to_remote("edge/cmd/x").as_deref(), Some("site1/cmd/x"));
    assert_eq!(r.to_local("site1/cmd/x").as_deref(), Some("edge/cmd/x"));
    assert_eq!(r.to_remote("cmd/x"), None);
    assert_eq!(r.to_local("edge/cmd/x"), None);
    let out = rule("s/+ out 1");
    assert_eq!(out.to_remote("s/1").as_deref(), Some("s/1"));
    assert_eq!(out.to_local("s/1"), None, "an out rule takes nothing in");
    assert_eq!(out.to_remote("s/1/2"), None);
}

#[test]
fn bad_rules_say_why() {
    for (text, why) in [
        ("a sideways 1", "not a direction"),
        ("a out 3", "not a QoS"),
        ("a out 1 x/", "needs a remote prefix"),
        ("a out 1 x/ y/ z", "too many"),
        ("a out 1 x/# y/", "wildcards"),
        ("a/#/b out 1", "not a valid topic filter"),
        ("", "empty rule"),
    ] {
        let e = text.parse::<TopicRule>().unwrap_err();
        assert!(e.contains(why), "{text}: {e}");
    }
}

#[test]
fn a_bridge_table_with_every_key() {
    let c = with_file(
        r#"
[[bridge]]
name = "cloud"
addresses = ["cloud.example:8883", "10.0.0.2:1883"]
round_robin = true
topics = ["sensors/# out 1", "cmd/# in 1 edge/ site1/"]
client_id = "gw-1"
bridge_protocol_version = "mqttv50"
keep_alive_secs = 30
clean_session = true
username = "gw"
password = "secret"
connect_timeout_secs = 5
reconnect_min_ms = 100
reconnect_max_ms = 5000
notifications = false
max_queued_messages = 1000
max_queued_bytes = 65536
queue_full_policy = "block"
max_inflight = 10
"#,
    )
    .unwrap();
    let b = &c.bridges[0];
    assert_eq!(b.name, "cloud");
    assert_eq!(b.addresses, ["cloud.example:8883", "10.0.0.2:1883"]);
    assert_eq!(b.address_order, AddressOrder::RoundRobin);
    assert_eq!(b.topics.len(), 2);
    assert_eq!(b.client_id, "gw-1");
    assert_eq!(b.protocol_version, BridgeProtocol::V5);
    assert_eq!((b.keep_alive_secs, b.clean_session, b.connect_timeout_secs), (30, true, 5));
    assert_eq!((b.username.as_deref(), b.password.as_deref()), (Some("gw"), Some("secret")));
    assert_eq!((b.reconnect_min_ms, b.reconnect_max_ms), (100, 5000));
    assert!(!b.notifications);
    assert_eq!((b.max_queued_messages, b.max_queued_bytes), (1000, 65536));
    assert_eq!(b.queue_full_policy, BridgeQueuePolicy::Block);
    assert_eq!(b.max_inflight, 10);
}

#[test]
fn defaults_follow_mosquitto() {
    let c = with_file("[[bridge]]\nname = \"up\"\naddresses = [\"h:1883\"]\ntopics = [\"# out 1\"]\n").unwrap();
    let b = &c.bridges[0];
    assert_eq!(b.protocol_version, BridgeProtocol::V311);
    assert_eq!(b.address_order, AddressOrder::Primary);
    assert!(b.try_private && b.notifications && !b.clean_session);
    assert_eq!(b.notification_topic, "$SYS/broker/connection/up/state");
    assert_eq!(b.client_id, "edgemq-bridge-up");
    assert_eq!(b.queue_full_policy, BridgeQueuePolicy::DropNew);
    assert_eq!(b.keep_alive_secs, 60);
}

#[test]
fn errors_name_line_and_key() {
    let base = "[[bridge]]\nname = \"up\"\naddresses = [\"h:1883\"]\n";
    for (extra, want) in [
        ("topics = [\n  \"a out 1\",\n  \"b out 7\",\n]\n", ":6: key `topics`"),
        ("topics = [\"a\"]\nprotocol_version = \"6\"\n", ":5: key `protocol_version`"),
        ("topics = [\"a\"]\nkeep_alive_secs = 1\n", ":5: key `keep_alive_secs`"),
        ("topics = [\"a\"]\nreconnect_min_ms = 500\nreconnect_max_ms = 100\n", ":6: key `reconnect_max_ms`"),
        ("topics = []\n", ":4: key `topics`"),
        ("topics = [\"a\"]\nmax_inflite = 3\n", "key `max_inflite`"),
        ("topics = [\"a\"]\nqueue_full_policy = \"maybe\"\n", ":5: key `queue_full_policy`"),
        ("topics = [\"a\"]\ncafile = \"/c.pem\"\n", ":5: key `cafile`: needs tls = true"),
        ("topics = [\"a\"]\ntls = true\ncertfile = \"/gw.pem\"\n", ":6: key `certfile`: needs keyfile"),
    ] {
        let e = with_file(&format!("{base}{extra}")).unwrap_err().to_string();
        assert!(e.contains(want), "{extra}: {e}");
    }
    let e =
        with_file("[[bridge]]\nname = \"up\"\naddresses = [\"nohost\"]\ntopics = [\"a\"]\n").unwrap_err().to_string();
    assert!(e.contains(":3: key `addresses`") && e.contains("nohost"), "{e}");
    let e = with_file("[[bridge]]\nname = \"a b\"\naddresses = [\"h:1\"]\ntopics = [\"a\"]\n").unwrap_err().to_string();
    assert!(e.contains(":2: key `name`"), "{e}");
    let two = format!("{base}topics = [\"a\"]\n{base}topics = [\"a\"]\n");
    let e = with_file(&two).unwrap_err().to_string();
    assert!(e.contains(":6: key `name`") && e.contains("second bridge"), "{e}");
}

#[test]
fn types_are_serializable_for_import_mosquitto() {
    fn serializable<T: Serialize>(_: &T) {}
    let c =
        with_file("[[bridge]]\nname = \"up\"\naddresses = [\"h:1883\"]\ntopics = [\"cmd/# in 1 \\\"\\\" site/\"]\n")
            .unwrap();
    serializable(&c.bridges[0]);
    // A rule serializes as the string it was parsed from.
    assert_eq!(String::from(c.bridges[0].topics[0].clone()), "cmd/# in 1 \"\" site/");
}

/// The commented `[[bridge]]` in edgemq.toml parses once uncommented, and
/// the values it shows are the defaults (addresses, rules and credentials
/// aside).
#[test]
fn the_sample_bridge_parses_and_shows_the_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../edgemq.toml")).unwrap();
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "# [[bridge]]")
        .take_while(|l| !l.starts_with("# A message"))
        .map(|l| l.strip_prefix("# ").unwrap_or(l))
        .collect();
    assert!(table.len() > 10, "the sample has its [[bridge]] table");
    let sample = with_file(&table.join("\n")).unwrap().bridges.remove(0);
    assert_eq!(sample.topics.len(), 3);
    assert_eq!(sample.topics[2].remote_filter(), "site1/status");
    let minimal =
        with_file("[[bridge]]\nname = \"cloud\"\naddresses = [\"h:1\"]\ntopics = [\"a\"]\n").unwrap().bridges.remove(0);
    let same = BridgeConfig {
        addresses: sample.addresses.clone(),
        topics: sample.topics.clone(),
        username: sample.username.clone(),
        password: sample.password.clone(),
        ..minimal
    };
    assert_eq!(sample, same);
}

#[test]
fn tls_takes_the_system_cas_unless_told() {
    let base = "[[bridge]]\nname = \"up\"\naddresses = [\"h:8883\"]\ntopics = [\"a\"]\ntls = true\n";
    let t = with_file(base).unwrap().bridges.remove(0).tls.unwrap();
    assert_eq!((t.cafile.to_str(), t.client, t.server_name), (Some(SYSTEM_CAFILE), None, None));
    let more = "cafile = \"/ca.pem\"\ncertfile = \"/gw.pem\"\nkeyfile = \"/gw.key\"\ntls_server_name = \"cloud\"\n";
    let t = with_file(&format!("{base}{more}")).unwrap().bridges.remove(0).tls.unwrap();
    assert_eq!(t.client, Some(("/gw.pem".into(), "/gw.key".into())));
    assert_eq!((t.cafile.to_str(), t.server_name.as_deref()), (Some("/ca.pem"), Some("cloud")));
}
