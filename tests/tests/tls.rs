//! TLS listeners (`protocol = "mqtts"`): a rustls client and Mosquitto's
//! command-line clients (OpenSSL) over TLS 1.2 and 1.3, client
//! certificates (mTLS) with the certificate's Common Name as the user name
//! under an ACL, handshakes that fail or never start, and certificate
//! files that do not load, certificates (client and server) expired or not
//! yet valid. Certificates are made per test (rcgen).

mod certs;
mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use certs::*;
use common::*;
use edgemq::config::{CertUsername, ListenerConfig};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig};

/// Opens TLS to `b`; the handshake's outcome.
async fn tls_open(b: &TestBroker, config: Arc<ClientConfig>) -> std::io::Result<Raw> {
    let tcp = tokio::net::TcpStream::connect(b.addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = within("TLS handshake", connector.connect(name, tcp)).await?;
    // TLS 1.3 reports a refused client certificate only after the
    // handshake: a first read shows it (nothing else comes unasked).
    use tokio::io::AsyncReadExt;
    let mut probe = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut probe)).await {
        Ok(Ok(0)) => {
            return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "closed after the handshake"))
        }
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) => panic!("the broker sent data before CONNECT"),
        Err(_) => {}
    }
    Ok(Raw::over(tls))
}

/// MQTT over TLS 1.2 and 1.3 with a rustls client: CONNECT, SUBSCRIBE,
/// PUBLISH and delivery, as over TCP; the plain listener beside it is
/// unaffected.
#[tokio::test]
async fn mqtt_over_tls_12_and_13() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let l = tls_listener(&f, |_| {});
    let b = TestBroker::start_with(|c| {
        c.listeners = vec![l, ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())];
    })
    .await;
    assert_eq!(b.broker.urls()[0], format!("mqtts://{}", b.addr), "the start-up URLs name the scheme");
    assert!(b.broker.urls()[1].starts_with("mqtt://127.0.0.1:"));
    for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
        let mut c = tls_open(&b, client_config(&f.ca, None, versions)).await.expect("handshake");
        c.v5 = true;
        c.send(&connect_packet(&ConnectOpts::new(Proto::V5, "tls-client"))).await;
        assert_eq!(c.expect("CONNACK").await.connack().1, 0);
        assert_eq!(c.subscribe(1, &[("tls/t", 1)]).await, vec![1]);
        c.publish("tls/t", 1, false, 2, b"over tls").await;
        let p = c.receive_acked().await;
        assert_eq!((p.topic.as_str(), &p.payload[..]), ("tls/t", &b"over tls"[..]));
        c.disconnect().await;
    }
    let mut plain = Raw::v311(b.broker.local_addrs()[1], "plain").await;
    plain.subscribe(1, &[("x", 0)]).await;
    b.shutdown().await;
}

/// mTLS with `use_identity_as_username`: the certificate's Common Name is
/// the user name the ACL checks (CONNECT's user name is ignored); a client
/// without a certificate, or with one from another CA, fails the
/// handshake; a connection that never speaks TLS is closed after the
/// connect timeout, and nothing of it reaches MQTT.
#[tokio::test]
async fn client_certificates_name_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user dev1\ntopic readwrite dev1/#\n").unwrap();
    let l = ListenerConfig {
        acl_file: Some(acl),
        ..tls_listener(&f, |t| {
            t.cafile = Some(f.ca_file.clone());
            t.require_certificate = true;
            t.cert_username = CertUsername::CommonName;
        })
    };
    let b = TestBroker::start_with(|c| {
        c.listeners = vec![l];
        c.connect_timeout_secs = 1;
    })
    .await;
    let dev1 = f.ca.issue(&[], "dev1", "plant");
    let tls13 = &[&rustls::version::TLS13][..];
    let mut c = tls_open(&b, client_config(&f.ca, Some(&dev1), tls13)).await.expect("a trusted client certificate");
    // The user name in CONNECT says someone else: the certificate decides.
    let opts = ConnectOpts::new(Proto::V311, "dev1-conn").username("admin").password(b"guess");
    c.send(&connect_packet(&opts)).await;
    assert_eq!(c.expect("CONNACK").await.connack().1, 0);
    assert_eq!(c.subscribe(1, &[("dev1/cmd", 1), ("other/cmd", 1)]).await, vec![1, 0x80], "the ACL of user dev1");
    c.publish("dev1/cmd", 1, false, 2, b"mine").await;
    assert_eq!(c.receive_acked().await.payload, b"mine");

    assert!(tls_open(&b, client_config(&f.ca, None, tls13)).await.is_err(), "no client certificate");
    let other = Ca::new("another CA");
    let stranger = other.issue(&[], "dev1", "plant");
    assert!(tls_open(&b, client_config(&f.ca, Some(&stranger), tls13)).await.is_err(), "a certificate of another CA");
    // TCP that never speaks TLS: closed after the connect timeout.
    let mut silent = Raw::open(b.addr).await;
    assert!(silent.expect_closed("a connection that never starts TLS").await.is_empty());
    // The trusted client is still served.
    c.publish("dev1/cmd", 1, false, 3, b"still").await;
    assert_eq!(c.receive_acked().await.payload, b"still");
    b.shutdown().await;
}

/// `use_subject_as_username`: the whole subject is the user name, as RFC 4514
/// (and Mosquitto, RFC 2253) write it: the last RDN first.
#[tokio::test]
async fn the_subject_as_user_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "user O=plant,CN=dev2\ntopic readwrite dev2/#\n").unwrap();
    let l = ListenerConfig {
        acl_file: Some(acl),
        ..tls_listener(&f, |t| {
            t.cafile = Some(f.ca_file.clone());
            t.require_certificate = true;
            t.cert_username = CertUsername::Subject;
        })
    };
    let b = TestBroker::start_with(|c| c.listeners = vec![l]).await;
    let dev2 = f.ca.issue(&[], "dev2", "plant");
    let mut c = tls_open(&b, client_config(&f.ca, Some(&dev2), &[&rustls::version::TLS12])).await.expect("handshake");
    c.send(&connect_packet(&ConnectOpts::new(Proto::V311, "dev2"))).await;
    assert_eq!(c.expect("CONNACK").await.connack().1, 0);
    assert_eq!(c.subscribe(1, &[("dev2/x", 0), ("dev1/x", 0)]).await, vec![0, 0x80]);
    b.shutdown().await;
}

/// A certificate or key file that does not load stops the start, naming
/// the file.
#[tokio::test]
async fn unloadable_files_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let cases = [
        tls_listener(&f, |t| t.certfile = Some(garbage.clone())),
        tls_listener(&f, |t| t.keyfile = Some(garbage.clone())),
        tls_listener(&f, |t| t.keyfile = Some(missing.clone())),
        tls_listener(&f, |t| t.keyfile = Some(f.ca_file.clone())),
        tls_listener(&f, |t| t.cafile = Some(garbage.clone())),
    ];
    for l in cases {
        let data = tempfile::tempdir().unwrap();
        let cfg = edgemq::Config {
            listeners: vec![l.clone()],
            data_dir: data.path().to_owned(),
            ..edgemq::Config::default()
        };
        let e = match edgemq::Broker::start(cfg).await {
            Ok(_) => panic!("started with {:?}", l.tls),
            Err(e) => e.to_string(),
        };
        assert!(e.contains(".pem"), "the error names the file: {e}");
    }
}

/// Mosquitto's clients (OpenSSL) against the TLS listener: `mosquitto_sub`
/// and `mosquitto_pub` with `--cafile`, and with a client certificate.
/// Skipped (with a line saying so) where they are not installed, unless
/// `EDGEMQ_REQUIRE_INTEROP=1`.
#[tokio::test]
async fn mosquitto_clients_over_tls() {
    let found =
        std::process::Command::new("mosquitto_pub").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if found.is_err() {
        assert!(std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"), "mosquitto_pub not found");
        println!("SKIPPED: mosquitto_pub not found");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let l = tls_listener(&f, |t| t.cafile = Some(f.ca_file.clone()));
    let b = TestBroker::start_with(|c| c.listeners = vec![l]).await;
    let port = b.port().to_string();
    let client = f.ca.issue(&[], "mosq", "plant");
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    std::fs::write(&cert, &client.cert_pem).unwrap();
    std::fs::write(&key, &client.key_pem).unwrap();
    let ca = f.ca_file.to_str().unwrap();
    let tls_args = ["-h", "127.0.0.1", "-p", &port, "--cafile", ca];
    let sub = tokio::process::Command::new("mosquitto_sub")
        .args(tls_args)
        .args(["-t", "mq/tls", "-C", "2", "-W", "15", "-q", "1"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto_sub");
    // Publish until the subscriber has subscribed (it exits after two).
    let mut pubs = 0;
    let out = within("mosquitto_sub over TLS", async {
        let wait = sub.wait_with_output();
        tokio::pin!(wait);
        loop {
            tokio::select! {
                out = &mut wait => return out.expect("mosquitto_sub runs"),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    pubs += 1;
                    let with_cert = pubs % 2 == 0;
                    let mut cmd = tokio::process::Command::new("mosquitto_pub");
                    cmd.args(tls_args).args(["-t", "mq/tls", "-q", "1", "-m", if with_cert { "cert" } else { "plain" }]);
                    if with_cert {
                        cmd.args(["--cert", cert.to_str().unwrap(), "--key", key.to_str().unwrap()]);
                    }
                    let st = cmd.stderr(Stdio::inherit()).status().await.expect("mosquitto_pub");
                    assert!(st.success(), "mosquitto_pub over TLS (client certificate: {with_cert}) failed");
                }
            }
        }
    })
    .await;
    assert!(out.status.success(), "mosquitto_sub: {:?}", out.status);
    let lines: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    b.shutdown().await;
}

/// Whether a TLS error says the certificate is outside its validity
/// (`Expired` or `NotValidYet`, with or without their context).
fn is_validity_error(e: &std::io::Error, validity: Validity) -> bool {
    let text = format!("{e:?}");
    match validity {
        Validity::Expired => text.contains("Expired"),
        Validity::NotYetValid => text.contains("NotValidYet"),
        Validity::Now => false,
    }
}

/// mTLS: a client certificate of the listener's CA that has expired, or is
/// not valid yet, fails the handshake with the alert certificate_expired
/// (TLS 1.2 and 1.3), while one valid now is admitted.
#[tokio::test]
async fn expired_and_not_yet_valid_client_certificates_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let l = tls_listener(&f, |t| {
        t.cafile = Some(f.ca_file.clone());
        t.require_certificate = true;
    });
    let b = TestBroker::start_with(|c| c.listeners = vec![l]).await;
    for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
        for validity in [Validity::Expired, Validity::NotYetValid] {
            let cert = f.ca.issue_valid(&[], "dev1", "plant", validity);
            let r = tls_open(&b, client_config(&f.ca, Some(&cert), versions)).await;
            let e = r.err().unwrap_or_else(|| panic!("{validity:?} client certificate admitted ({versions:?})"));
            // The broker's alert: certificate_expired, "has expired or is
            // not currently valid" (RFC 8446 section 6.2).
            assert!(format!("{e:?}").contains("AlertReceived(CertificateExpired)"), "{validity:?}: {e:?}");
        }
        let now = f.ca.issue(&[], "dev1", "plant");
        let mut c = tls_open(&b, client_config(&f.ca, Some(&now), versions)).await.expect("a valid certificate");
        c.send(&connect_packet(&ConnectOpts::new(Proto::V311, "valid"))).await;
        assert_eq!(c.expect("CONNACK").await.connack().1, 0);
        c.disconnect().await;
    }
    b.shutdown().await;
}

/// A server certificate that has expired, or is not valid yet, is refused
/// by clients that trust its CA: rustls (the error names the validity) and
/// `mosquitto_pub --cafile` (OpenSSL; where installed).
#[tokio::test]
async fn expired_and_not_yet_valid_server_certificates_are_refused_by_clients() {
    let mosquitto = std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !mosquitto {
        assert!(std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"), "mosquitto_pub not found");
        println!("NOTE: mosquitto_pub not found: checked with rustls only");
    }
    for validity in [Validity::Expired, Validity::NotYetValid] {
        let dir = tempfile::tempdir().unwrap();
        let f = files_valid(dir.path(), validity);
        let b = TestBroker::start_with(|c| c.listeners = vec![tls_listener(&f, |_| {})]).await;
        for versions in [&[&rustls::version::TLS12][..], &[&rustls::version::TLS13][..]] {
            match tls_open(&b, client_config(&f.ca, None, versions)).await {
                Ok(_) => panic!("a {validity:?} server certificate accepted ({versions:?})"),
                Err(e) => assert!(is_validity_error(&e, validity), "{validity:?}: {e:?}"),
            }
        }
        if mosquitto {
            let port = b.port().to_string();
            let st = tokio::process::Command::new("mosquitto_pub")
                .args(["-h", "127.0.0.1", "-p", &port, "--cafile", f.ca_file.to_str().unwrap()])
                .args(["-t", "t", "-m", "x"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status();
            assert!(!within("mosquitto_pub", st).await.unwrap().success(), "{validity:?}: mosquitto_pub connected");
        }
        b.shutdown().await;
    }
}
