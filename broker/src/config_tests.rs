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
        protocol: ListenerProtocol::Mqtt,
        max_connections: Some(100),
        max_packet_size: Some(65536),
        max_keepalive: Some(600),
        allow_anonymous: Some(false),
        password_file: None,
        acl_file: None,
        tls: TlsConfig::default(),
        use_username_as_clientid: false,
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

#[test]
fn caps_and_mosquittos_expiration() {
    let c = with_file(
        "max_sessions = 5\nmax_retained_messages = 6\nmax_retained_bytes = 7\nmax_subscriptions_per_client = 8\n\
         persistent_client_expiration = \"2w\"\n",
    )
    .unwrap();
    assert_eq!((c.max_sessions, c.max_retained_messages, c.max_retained_bytes), (5, 6, 7));
    assert_eq!((c.max_subscriptions_per_client, c.session_expiry_secs), (8, 14 * 86_400));
    for (v, secs) in [("1h", 3600), ("3d", 3 * 86_400), ("1m", 30 * 86_400), ("2y", 2 * 365 * 86_400)] {
        assert_eq!(mosquitto_duration(v), Some(secs), "{v}");
    }
    for v in ["", "h", "0d", "5", "5s", "-1d", "99999999999999999y"] {
        assert_eq!(mosquitto_duration(v), None, "{v}");
    }
    let cases = [
        ("max_sessions = 0\n", "key `max_sessions`"),
        ("\nmax_retained_bytes = 0\n", ":2: key `max_retained_bytes`"),
        ("max_subscriptions_per_client = 0\n", "key `max_subscriptions_per_client`"),
        ("verbose = true\npersistent_client_expiration = \"2 days\"\n", ":2: key `persistent_client_expiration`"),
    ];
    for (text, want) in cases {
        let e = with_file(text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

/// The sample file documents every key with its default: it parses, and
/// gives the defaults (its listeners aside).
#[test]
fn the_sample_file_gives_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edgemq.toml");
    let c = Config::from_args(&Args { config: Some(path.clone()), ..Args::default() }).unwrap();
    let d = Config { listeners: c.listeners.clone(), config_file: Some(path), ..Config::default() };
    assert_eq!(format!("{c:?}"), format!("{d:?}"));
}

#[test]
fn tls_listeners_and_their_errors() {
    let c = with_file(
        "[[listener]]\nbind = \"127.0.0.1:8883\"\nprotocol = \"mqtts\"\ncertfile = \"s.pem\"\nkeyfile = \"k.pem\"\n\
         cafile = \"ca.pem\"\nrequire_certificate = true\nuse_identity_as_username = true\n\
         [[listener]]\nbind = \"127.0.0.1:1883\"\nprotocol = \"mqtt\"\n\
         [[listener]]\nbind = \"127.0.0.1:8080\"\nprotocol = \"ws\"\n\
         [[listener]]\nbind = \"127.0.0.1:8081\"\nprotocol = \"wss\"\ncertfile = \"s.pem\"\nkeyfile = \"k.pem\"\n",
    )
    .unwrap();
    let protocols: Vec<_> = c.listeners.iter().map(|l| l.protocol.scheme()).collect();
    assert_eq!(protocols, ["mqtts", "mqtt", "ws", "wss"]);
    let tls = &c.listeners[0].tls;
    assert_eq!(c.listeners[0].protocol, ListenerProtocol::Mqtts);
    assert_eq!(c.listeners[1].protocol, ListenerProtocol::Mqtt);
    assert_eq!(tls.certfile.as_deref(), Some(Path::new("s.pem")));
    assert!(tls.require_certificate && tls.cert_username == CertUsername::CommonName);
    let l = "[[listener]]\nbind = \"::1\"\n";
    let cases = [
        (format!("{l}protocol = \"mqtts\"\nkeyfile = \"k\"\n"), ":2: key `certfile`"),
        (format!("{l}protocol = \"mqtts\"\ncertfile = \"c\"\n"), ":2: key `keyfile`"),
        (
            format!("{l}protocol = \"mqtts\"\ncertfile = \"c\"\nkeyfile = \"k\"\nrequire_certificate = true\n"),
            ":2: key `cafile`",
        ),
        (format!("{l}certfile = \"c\"\n"), ":2: key `certfile`: only for TLS listeners"),
        (format!("{l}protocol = \"ws\"\nkeyfile = \"k\"\n"), ":2: key `keyfile`: only for TLS listeners"),
        (format!("{l}protocol = \"wss\"\nkeyfile = \"k\"\n"), ":2: key `certfile`"),
        (format!("{l}protocol = \"tcp\"\nuse_subject_as_username = true\n"), ":2: key `use_identity_as_username`"),
        (
            format!(
                "{l}protocol = \"mqtts\"\ncertfile = \"c\"\nkeyfile = \"k\"\ncafile = \"a\"\n\
                 use_identity_as_username = true\nuse_subject_as_username = true\n"
            ),
            ":2: key `use_subject_as_username`",
        ),
    ];
    for (text, want) in cases {
        let e = with_file(&text).unwrap_err().to_string();
        assert!(e.contains(want), "{text:?}: {e}");
    }
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
        (c.max_queued_messages, c.max_queued_bytes, c.queue_memory_bytes, c.max_queued_disk_bytes, c.queue_disk_quota),
        (d.max_queued_messages, d.max_queued_bytes, d.queue_memory_bytes, d.max_queued_disk_bytes, d.queue_disk_quota)
    );
    assert_eq!((d.max_queued_messages, d.max_queued_bytes), (0, 0), "no count limit by default");
    assert_eq!((d.queue_memory_bytes, d.max_queued_disk_bytes, d.queue_disk_quota), (256 << 20, 0, 0));
}
