//! Each form of each `connection` key, checked by loading the result as
//! an edgemq configuration.

use crate::bridge::{AddressOrder, BridgeConfig, BridgeProtocol, Direction};
use crate::config::{Args, Config};
use crate::import_cmd::{parse_lines, translate, Imported, Malformed};

fn imported(text: &str) -> Imported {
    translate("m.conf", &parse_lines("m.conf", text)).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The one bridge the import of `connection b` + `text` makes, and the import.
fn bridge(text: &str) -> (BridgeConfig, Imported) {
    let i = imported(&format!("listener 1883 127.0.0.1\nconnection b\n{text}"));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("edgemq.toml");
    std::fs::write(&p, &i.toml).unwrap();
    let c =
        Config::from_args(&Args { config: Some(p), ..Args::default() }).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    assert_eq!(c.bridges.len(), 1, "{}", i.toml);
    (c.bridges[0].clone(), i)
}

/// The bridge of the minimal section plus `text`.
fn with(text: &str) -> (BridgeConfig, Imported) {
    bridge(&format!("address cloud:1883\ntopic a/# out 1\nnotifications_local_only true\n{text}"))
}

fn malformed(text: &str) -> Vec<(usize, String)> {
    translate("m.conf", &parse_lines("m.conf", text))
        .expect_err("malformed")
        .into_iter()
        .map(|m: Malformed| (m.line, m.key))
        .collect()
}

/// The warnings about line `n` (the section starts at line 2).
fn warned(i: &Imported, n: usize) -> Vec<&String> {
    i.warnings.iter().filter(|w| w.starts_with(&format!("m.conf:{n}: "))).collect()
}

#[test]
fn a_minimal_section_keeps_mosquittos_client_id_and_notification_topic() {
    let (b, i) = bridge("address cloud.example.com\ntopic sensors/#\n");
    let host = super::hostname().unwrap();
    assert_eq!(b.name, "b");
    assert_eq!(b.addresses, ["cloud.example.com:1883"], "port 1883 by default");
    assert_eq!(b.client_id, format!("{host}.b"));
    assert_eq!(b.notification_topic, format!("$SYS/broker/connection/{host}.b/state"));
    assert!(b.notifications && b.try_private && !b.clean_session);
    assert_eq!(b.protocol_version, BridgeProtocol::V311);
    assert_eq!(
        (b.topics[0].pattern.as_str(), b.topics[0].direction, b.topics[0].qos),
        ("sensors/#", Direction::Out, 0)
    );
    assert!(i.toml.contains("# m.conf:2: connection b\nname = \"b\"\n"), "{}", i.toml);
    assert!(i.toml.contains("# m.conf:3: address cloud.example.com\naddresses = [\"cloud.example.com:1883\"]\n"));
    assert!(i.toml.contains("# m.conf:4: topic sensors/#\ntopics = [\"sensors/# out 0\"]\n"));
    assert!(i.toml.contains("bridge's queue is on disk"), "Mosquitto's 1000 in memory is said");
    assert!(warned(&i, 2).is_empty(), "{:?}", i.warnings);
    assert!(b.notifications && !b.notifications_local_only, "the state on the remote too, as Mosquitto");
    let (b, i) = with("");
    assert!(warned(&i, 2).is_empty(), "{:?}", i.warnings);
    assert!(b.notifications && b.notifications_local_only, "carried over");
}

#[test]
fn several_addresses_fail_over_in_order_or_round_robin() {
    let (b, _) = bridge("addresses a:1884 10.0.0.2 ::1:8883 [fe80::1]:1883\ntopic x\nround_robin true\n");
    assert_eq!(b.addresses, ["a:1884", "10.0.0.2:1883", "[::1]:8883", "[fe80::1]:1883"]);
    assert_eq!(b.address_order, AddressOrder::RoundRobin);
    let (b, _) = with("round_robin false\n");
    assert_eq!(b.address_order, AddressOrder::Primary);
}

#[test]
fn topic_rules_in_every_form() {
    let (b, i) = bridge(
        "address c\ntopic a/#\ntopic b/# in\ntopic c/# both 2\ntopic # out 1 local/ remote/\n\
         topic \"\" in 1 l/x r/y\ntopic d/+ out 1 \"\" site1/\n",
    );
    let rules: Vec<String> = b.topics.iter().map(ToString::to_string).collect();
    assert_eq!(
        rules,
        ["a/# out 0", "b/# in 0", "c/# both 2", "# out 1 local/ remote/", "\"\" in 1 l/x r/y", "d/+ out 1 \"\" site1/"]
    );
    assert_eq!(b.topics[3].to_remote("local/t"), Some("remote/t".into()));
    for n in 4..=9 {
        assert!(i.toml.contains(&format!("# m.conf:{n}: topic ")), "line {n} named");
    }
}

#[test]
fn credentials_client_id_and_session() {
    let (b, i) = with(
        "remote_clientid gw-1\nremote_username gw\nremote_password s3cr\"t\ncleansession true\nkeepalive_interval 30\n\
         try_private false\n",
    );
    assert_eq!(b.client_id, "gw-1");
    assert_eq!(b.notification_topic, "$SYS/broker/connection/gw-1/state", "Mosquitto's, with the remote client id");
    assert_eq!((b.username.as_deref(), b.password.as_deref()), (Some("gw"), Some("s3cr\"t")));
    assert!(b.clean_session && !b.try_private);
    assert_eq!(b.keep_alive_secs, 30);
    assert!(i.toml.contains("# m.conf:6: remote_clientid gw-1\nclient_id = \"gw-1\"\n"), "{}", i.toml);
    // The old names.
    let (b, _) = with("clientid old\nusername u\npassword p\n");
    assert_eq!((b.client_id.as_str(), b.username.as_deref(), b.password.as_deref()), ("old", Some("u"), Some("p")));
    // A password alone: Mosquitto sends none.
    let (b, i) = with("remote_password p\n");
    assert_eq!(b.password, None);
    assert!(warned(&i, 6)[0].contains("without `remote_username`"));
}

#[test]
fn protocol_versions() {
    assert_eq!(with("bridge_protocol_version mqttv50\n").0.protocol_version, BridgeProtocol::V5);
    assert_eq!(with("bridge_protocol_version mqttv311\n").0.protocol_version, BridgeProtocol::V311);
    let (b, i) = with("bridge_protocol_version mqttv31\n");
    assert_eq!(b.protocol_version, BridgeProtocol::V311);
    assert!(warned(&i, 6)[0].contains("3.1.1 is used"));
}

#[test]
fn notifications_and_their_topic() {
    let (b, _) = with("notifications false\n");
    assert!(!b.notifications);
    let (b, _) = with("notification_topic gw/bridge/state\n");
    assert_eq!(b.notification_topic, "gw/bridge/state");
}

#[test]
fn restart_timeout_constant_and_backoff() {
    let (b, _) = with("restart_timeout 20\n");
    assert_eq!((b.reconnect_min_ms, b.reconnect_max_ms), (20_000, 20_000));
    let (b, _) = with("restart_timeout 10 30\n");
    assert_eq!((b.reconnect_min_ms, b.reconnect_max_ms), (10_000, 30_000));
    let (b, i) = with("restart_timeout 5 7200\n");
    assert_eq!((b.reconnect_min_ms, b.reconnect_max_ms), (5_000, 3_600_000));
    assert!(warned(&i, 6)[0].contains("3600 s"));
}

#[test]
fn tls_files_and_what_cannot_be_carried() {
    let (b, i) = with(
        "bridge_cafile /c/ca.pem\nbridge_certfile /c/gw.pem\nbridge_keyfile /c/gw.key\nbridge_tls_version tlsv1.2\n\
         bridge_insecure false\n",
    );
    let t = b.tls.unwrap();
    assert_eq!(t.cafile, std::path::PathBuf::from("/c/ca.pem"));
    assert_eq!(t.client, Some(("/c/gw.pem".into(), "/c/gw.key".into())));
    assert!(warned(&i, 9)[0].contains("not pinned"));
    assert!(warned(&i, 10).is_empty(), "bridge_insecure false is edgemq's behaviour");
    // No CA: TLS to the system's CAs, never plaintext.
    for key in ["bridge_capath /etc/ssl/certs", "bridge_identity gw", "bridge_psk 00ff"] {
        let (b, i) = with(&format!("{key}\n"));
        assert_eq!(b.tls.unwrap().cafile, std::path::PathBuf::from(crate::bridge::config::SYSTEM_CAFILE), "{key}");
        assert!(warned(&i, 6).iter().any(|w| w.contains("not supported")), "{key}: {:?}", i.warnings);
    }
    let (b, i) = with("bridge_certfile /c/gw.pem\nbridge_keyfile /c/gw.key\n");
    assert!(b.tls.is_none());
    assert!(warned(&i, 6)[0].contains("not a TLS bridge in Mosquitto"));
    for (key, why) in [("bridge_insecure true", "certificate name"), ("bridge_tls_version tlsv1.1", "1.2 and 1.3 only")]
    {
        let (_, i) = with(&format!("bridge_cafile /c/ca.pem\n{key}\n"));
        assert!(warned(&i, 7)[0].contains(why), "{key}: {:?}", i.warnings);
    }
}

#[test]
fn keys_not_carried_over_are_warned_with_their_line() {
    let keys = [
        "local_clientid l",
        "local_username u",
        "local_password p",
        "local_cleansession true",
        "start_type lazy",
        "start_type once",
        "idle_timeout 60",
        "threshold 10",
        "bridge_attempt_unsubscribe false",
        "bridge_bind_address 10.0.0.1",
        "bridge_max_packet_size 1000",
        "bridge_outgoing_retain false",
        "bridge_alpn mqtt",
        "bridge_require_ocsp true",
        "bridge_receive_maximum 10",
        "bridge_session_expiry_interval 60",
        "bridge_max_topic_alias 10",
        "bridge_something_new 1",
    ];
    for key in keys {
        let (_, i) = with(&format!("{key}\n"));
        let w = warned(&i, 6);
        let name = key.split(' ').next().unwrap();
        assert!(w.len() == 1 && w[0].starts_with(&format!("m.conf:6: `{name}`: ")), "{key}: {:?}", i.warnings);
    }
    let (_, i) = with("start_type automatic\nbridge_outgoing_retain true\n");
    assert!(i.warnings.iter().all(|w| !w.contains("start_type") && !w.contains("outgoing")), "{:?}", i.warnings);
}

#[test]
fn the_global_queue_bounds_apply_to_the_bridge() {
    let (b, i) = bridge("address c\ntopic x\n");
    assert_eq!(b.max_queued_messages, 0);
    assert!(i.toml.contains("queue is on disk"));
    let i = imported("max_queued_messages 500\nconnection b\naddress c\ntopic x\nmax_queued_bytes 9000\n");
    assert!(
        i.toml.contains(
            "# m.conf:1: max_queued_messages 500 (global in Mosquitto, bridges too)\nmax_queued_messages = 500\n"
        ),
        "{}",
        i.toml
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("edgemq.toml");
    std::fs::write(&p, &i.toml).unwrap();
    let c = Config::from_args(&Args { config: Some(p), ..Args::default() }).unwrap();
    assert_eq!((c.bridges[0].max_queued_messages, c.bridges[0].max_queued_bytes), (500, 9000));
    assert_eq!(c.max_queued_messages, 500, "still global too");
}

#[test]
fn two_sections_two_tables() {
    let i = imported("connection a\naddress x:1\ntopic a\nconnection b\naddress y:2\ntopic b in 2\n");
    assert_eq!(i.toml.matches("[[bridge]]").count(), 2);
    assert!(i.toml.contains("# m.conf:4: connection b\nname = \"b\"\n"));
}

#[test]
fn malformed_bridge_lines_name_file_and_line() {
    let m = malformed(
        "connection x\ntopic a\nconnection y\naddress h:1\nconnection z\naddress h:port\ntopic a sideways\n\
         cleansession maybe\nkeepalive_interval 2\nbridge_protocol_version mqttv6\nrestart_timeout 30 10\n\
         start_type manual\nconnection bad/name\naddress h\ntopic a\n",
    );
    let mut lines: Vec<usize> = m.iter().map(|(l, _)| *l).collect();
    lines.sort_unstable();
    // 5: z's only topic line is malformed, so it has none.
    assert_eq!(lines, [1, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13], "{m:?}");
}
