//! The translation of each Mosquitto key, checked by loading the result
//! as an edgemq configuration.

use super::*;
use crate::config::{Args, CertUsername, Config, ListenerProtocol};

fn imported(text: &str) -> Imported {
    translate("m.conf", &parse_lines("m.conf", text)).unwrap_or_else(|e| panic!("{e:?}"))
}

/// The edgemq configuration the import of `text` makes, and the import.
fn config(text: &str) -> (Config, Imported) {
    let i = imported(text);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("edgemq.toml");
    std::fs::write(&p, &i.toml).unwrap();
    let args = Args { config: Some(p), ..Args::default() };
    let c = Config::from_args(&args).unwrap_or_else(|e| panic!("{e}\n{}", i.toml));
    (c, i)
}

fn malformed(text: &str) -> Vec<Malformed> {
    translate("m.conf", &parse_lines("m.conf", text)).expect_err("malformed")
}

#[test]
fn global_keys_carry_over_with_their_line() {
    let (c, i) = config(
        "# a comment\n\npersistence true\npersistence_location /var/lib/mosquitto/\nmax_inflight_messages 40\n\
         max_queued_messages 500\nmax_queued_bytes 1000000\nmax_packet_size 65536\n\
         persistent_client_expiration 2d\nsys_interval 30\nmax_keepalive 600\nqueue_qos0_messages true\n",
    );
    assert!(c.persistence);
    assert_eq!(c.data_dir, std::path::PathBuf::from("/var/lib/mosquitto/"));
    assert_eq!((c.max_inflight_messages, c.max_queued_messages, c.max_queued_bytes), (40, 500, 1_000_000));
    assert_eq!((c.max_packet_size, c.session_expiry_secs, c.sys_interval), (65536, 2 * 86_400, 30));
    assert_eq!(c.max_keepalive, 600);
    assert!(c.queue_qos0_messages);
    assert!(i.toml.contains("# m.conf:5: max_inflight_messages 40\nmax_inflight_messages = 40\n"), "{}", i.toml);
    assert!(i.toml.contains("# m.conf:9: persistent_client_expiration 2d\nsession_expiry_secs = 172800\n"));
    // No listener: Mosquitto's local-only mode, edgemq's default listeners.
    assert_eq!(c.listeners.len(), 2);
    assert!(c.allow_anonymous, "local-only mode admits anonymous clients, in both");
    assert_eq!(i.warnings.len(), 1, "{:?}", i.warnings);
    assert!(i.warnings[0].starts_with("m.conf:4: `persistence_location`: "), "{:?}", i.warnings);
}

#[test]
fn listeners_with_tls_websockets_and_global_security() {
    let (c, i) = config(
        "allow_anonymous false\npassword_file /etc/mosquitto/passwd\nacl_file /etc/mosquitto/acl\n\
         listener 1883 127.0.0.1\nmax_connections 100\n\
         listener 8883 ::1\ncafile /c/ca.pem\ncertfile /c/s.pem\nkeyfile /c/s.key\nrequire_certificate true\n\
         use_identity_as_username true\ncrlfile /c/crl.pem\n\
         listener 8080 127.0.0.1\nprotocol websockets\n\
         listener 8081 127.0.0.1\nprotocol websockets\ncertfile /c/s.pem\nkeyfile /c/s.key\nuse_subject_as_username true\ncafile /c/ca.pem\n",
    );
    assert!(!c.allow_anonymous);
    assert_eq!(c.password_file.as_deref(), Some(std::path::Path::new("/etc/mosquitto/passwd")));
    assert_eq!(c.acl_file.as_deref(), Some(std::path::Path::new("/etc/mosquitto/acl")));
    let l = &c.listeners;
    assert_eq!(l.len(), 4);
    assert_eq!(
        (l[0].bind.to_string().as_str(), l[0].protocol, l[0].max_connections),
        ("127.0.0.1:1883", ListenerProtocol::Mqtt, Some(100))
    );
    assert_eq!((l[1].bind.to_string().as_str(), l[1].protocol), ("[::1]:8883", ListenerProtocol::Mqtts));
    assert!(l[1].tls.require_certificate);
    assert_eq!(l[1].tls.cert_username, CertUsername::CommonName);
    assert_eq!(l[1].tls.crlfile.as_deref(), Some(std::path::Path::new("/c/crl.pem")));
    assert_eq!(l[2].protocol, ListenerProtocol::Ws);
    assert_eq!((l[3].protocol, l[3].tls.cert_username), (ListenerProtocol::Wss, CertUsername::Subject));
    // Global settings: no listener has its own.
    assert!(l.iter().all(|l| l.allow_anonymous.is_none() && l.password_file.is_none()));
    // The password and ACL files do not exist here: said, still carried.
    assert!(i
        .warnings
        .iter()
        .any(|w| w.starts_with("m.conf:2: `password_file`: carried over, but edgemq cannot load it")));
    assert!(i.warnings.iter().any(|w| w.starts_with("m.conf:3: `acl_file`: carried over, but edgemq cannot load it")));
}

#[test]
fn allow_anonymous_defaults_to_false_once_a_listener_is_configured() {
    let (c, i) = config("listener 1883\n");
    assert!(!c.allow_anonymous, "Mosquitto 2 refuses anonymous clients once a listener is configured");
    assert!(i.toml.contains("# Mosquitto 2's default once a listener is configured"));
    assert_eq!(c.listeners[0].bind.to_string(), "0.0.0.0:1883");
    assert!(i.warnings.iter().any(|w| w.contains("IPv4 and IPv6")), "{:?}", i.warnings);
    // The default listener of `port` counts as one.
    let (c, _) = config("port 1884\n");
    assert!(!c.allow_anonymous);
    assert_eq!(c.listeners[0].bind.to_string(), "0.0.0.0:1884");
    let (c, _) = config("port 1884\nbind_address 127.0.0.1\nlistener 1885 127.0.0.1\nsocket_domain ipv6\nlistener 1886\nsocket_domain ipv6\n");
    let binds: Vec<String> = c.listeners.iter().map(|l| l.bind.to_string()).collect();
    assert_eq!(binds, ["127.0.0.1:1884", "127.0.0.1:1885", "[::]:1886"]);
}

/// Security keys before the first listener under `per_listener_settings
/// true`, and listener keys there, make Mosquitto 2.0.11 open its default
/// listener on port 1883 beside the others (checked by hand with Debian's
/// mosquitto -v): so does the import.
#[test]
fn keys_before_the_first_listener_make_the_default_listener() {
    let (c, i) = config("per_listener_settings true\nallow_anonymous true\nlistener 18997 127.0.0.1\n");
    let l: Vec<(String, Option<bool>)> = c.listeners.iter().map(|l| (l.bind.to_string(), l.allow_anonymous)).collect();
    assert_eq!(l, [("0.0.0.0:1883".to_owned(), Some(true)), ("127.0.0.1:18997".to_owned(), Some(false))]);
    assert!(i.warnings.iter().any(|w| w.starts_with("m.conf: `persistence` is not set")), "{:?}", i.warnings);
    let (c, _) = config("max_connections 5\nlistener 18996 127.0.0.1\nallow_anonymous true\n");
    let l: Vec<(String, Option<usize>)> = c.listeners.iter().map(|l| (l.bind.to_string(), l.max_connections)).collect();
    assert_eq!(l, [("0.0.0.0:1883".to_owned(), Some(5)), ("127.0.0.1:18996".to_owned(), None)]);
    assert!(c.allow_anonymous, "global without per_listener_settings");
}

#[test]
fn per_listener_settings_give_each_listener_its_own_security() {
    let (c, i) = config(
        "per_listener_settings true\nlistener 1883 127.0.0.1\nallow_anonymous true\n\
         listener 1884 127.0.0.1\npassword_file /p\nacl_file /a\n",
    );
    let l = &c.listeners;
    assert_eq!(l[0].allow_anonymous, Some(true));
    assert_eq!((l[0].password_file.as_deref(), l[0].acl_file.as_deref()), (None, None));
    assert_eq!(l[1].allow_anonymous, Some(false), "Mosquitto 2's default, per listener");
    assert_eq!(l[1].password_file.as_deref(), Some(std::path::Path::new("/p")));
    assert_eq!(l[1].acl_file.as_deref(), Some(std::path::Path::new("/a")));
    assert_eq!((c.password_file.as_deref(), c.acl_file.as_deref()), (None, None), "nothing global to fall back on");
    assert!(i.toml.contains("per_listener_settings true"));
    let (c, _) = config(
        "per_listener_settings true\nlistener 1883 127.0.0.1\nuse_username_as_clientid true\nlistener 1884 127.0.0.1\n",
    );
    let named: Vec<bool> = c.listeners.iter().map(|l| l.use_username_as_clientid).collect();
    assert_eq!(named, [true, false]);
    let (c, _) = config("listener 1883 127.0.0.1\nuse_username_as_clientid true\nlistener 1884 127.0.0.1\n");
    assert!(c.listeners.iter().all(|l| l.use_username_as_clientid), "global without per_listener_settings");
    // Written last, it still applies to every line (as in Mosquitto).
    let (c, _) = config("listener 1883 127.0.0.1\nallow_anonymous true\nper_listener_settings true\n");
    assert_eq!(c.listeners[0].allow_anonymous, Some(true));
    // Without it, a key after a listener line is global.
    let (c, _) = config("listener 1883 127.0.0.1\nallow_anonymous true\nlistener 1884 127.0.0.1\n");
    assert!(c.allow_anonymous);
    assert!(c.listeners.iter().all(|l| l.allow_anonymous.is_none()));
}

#[test]
fn keys_not_carried_over_are_warned_about() {
    let (c, i) = config(
        "log_dest file /var/log/mosquitto/mosquitto.log\nlog_dest stderr\nlog_type error\nlog_type notice\n\
         message_size_limit 1000\nretain_available false\ntls_version tlsv1.2\nauth_plugin /x.so\n\
         auth_opt_host db\nfoo_bar 1\nmax_inflight_messages 0\nmax_connections 0\nlistener 0 /run/m.sock\n\
         listener 1883 gateway.local\nlistener 1884 127.0.0.1\ncafile /c/ca.pem\nmax_keepalive 0\n",
    );
    let w = |at: &str, key: &str| {
        let head = format!("m.conf:{at}: `{key}`: ");
        assert!(i.warnings.iter().any(|w| w.starts_with(&head)), "no warning {head}: {:#?}", i.warnings);
        assert!(i.toml.contains(&format!("# WARNING: {head}")), "not in the output: {head}");
    };
    w("1", "log_dest");
    w("5", "message_size_limit");
    w("6", "retain_available");
    w("7", "tls_version");
    w("8", "auth_plugin");
    w("9", "auth_opt_host");
    w("10", "foo_bar");
    w("11", "max_inflight_messages");
    w("12", "max_connections");
    w("17", "max_keepalive");
    assert!(!i.warnings.iter().any(|w| w.starts_with("m.conf:2:")), "stderr is where edgemq logs");
    assert!(i
        .warnings
        .iter()
        .any(|w| w.starts_with("m.conf:13: listener 0 /run/m.sock: ") && w.contains("Unix socket")));
    assert!(i.warnings.iter().any(|w| w.starts_with("m.conf:14: listener 1883 gateway.local: ")));
    assert!(i.warnings.iter().any(|w| w.starts_with("m.conf:15: listener 1884 127.0.0.1: cafile without `certfile`")));
    assert!(c.verbose, "log_type notice: connections are logged");
    assert_eq!(c.max_inflight_messages, 65535);
    assert_eq!(c.listeners.len(), 1);
    assert_eq!(c.listeners[0].bind.to_string(), "127.0.0.1:1884");
    assert!(c.listeners[0].tls.cafile.is_none());
}

#[test]
fn a_global_key_after_a_connection_section_is_still_global() {
    let (c, i) = config(
        "listener 1883 127.0.0.1\nconnection cloud\naddress cloud.example.com:8883\ntopic sensors/# out 1\n\
         remote_username gw\nallow_anonymous true\n",
    );
    assert!(c.allow_anonymous, "as in Mosquitto");
    assert_eq!(c.bridges[0].username.as_deref(), Some("gw"));
    assert!(i.toml.contains("[[bridge]]\n# m.conf:2: connection cloud\n"));
}

#[test]
fn malformed_lines_name_file_and_line() {
    let m = malformed("persistence yes\nlistener\nmax_queued_messages ten\nprotocol ftp\naddress x\npersistent_client_expiration 3x\nlog_dest\n");
    let at: Vec<(usize, &str)> = m.iter().map(|m| (m.line, m.key.as_str())).collect();
    assert_eq!(
        at,
        [
            (1, "persistence"),
            (2, "listener"),
            (3, "max_queued_messages"),
            (4, "protocol"),
            (5, "address"),
            (6, "persistent_client_expiration"),
            (7, "log_dest")
        ]
    );
    assert_eq!(m[0].to_string(), "m.conf:1: `persistence`: `yes` is not `true` or `false`");
    let err = ImportError::Malformed(m);
    assert_eq!(err.to_string().lines().count(), 7);
}

#[test]
fn include_dir_reads_its_conf_files_in_order_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("conf.d");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("b.conf"), "max_queued_messages 2\n").unwrap();
    std::fs::write(d.join("a.conf"), "max_queued_messages 1\nmax_inflight_messages 7\n").unwrap();
    std::fs::write(d.join("c.conf.disabled"), "max_inflight_messages 9\n").unwrap();
    std::fs::write(d.join("z.conf"), "bogus\n").unwrap();
    let main = dir.path().join("mosquitto.conf");
    std::fs::write(&main, format!("max_queued_messages 5\ninclude_dir {}\nsys_interval 5\n", d.display())).unwrap();
    let i = import(&main).expect("an unknown key is a warning");
    assert!(i.warnings.iter().any(|w| w.starts_with(&format!("{}:1: `bogus`: ", d.join("z.conf").display()))));
    std::fs::write(d.join("z.conf"), "max_queued_bytes notanumber\n").unwrap();
    match import(&main) {
        Err(ImportError::Malformed(m)) => {
            assert_eq!(m[0].file, d.join("z.conf").display().to_string());
            assert_eq!(m[0].line, 1);
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(d.join("z.conf"), "# nothing\n").unwrap();
    let i = import(&main).unwrap();
    assert!(i.toml.contains("max_queued_messages = 2\n"), "b.conf comes last: {}", i.toml);
    assert!(i.toml.contains(&format!("# {}:2: max_inflight_messages 7\n", d.join("a.conf").display())));
    assert!(!i.toml.contains("= 9"));
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "include_dir /nonexistent/dir\n").unwrap();
    assert!(
        matches!(import(&bad), Err(ImportError::Malformed(m)) if m[0].line == 1 && m[0].message.contains("cannot list"))
    );
}

#[test]
fn toml_strings_are_escaped() {
    assert_eq!(translate::toml_string("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
}
