//! Reloading on SIGHUP (`Broker::reload`): password, ACL and TLS files are
//! read again; new CONNECTs and handshakes use them, connections already
//! open are not dropped, and a file that does not load keeps the old
//! material and is named with its line.

mod certs;
mod common;

use std::sync::Arc;
use std::time::Duration;

use certs::*;
use common::*;
use edgemq::auth::passwd::{hash_password, HashScheme};
use edgemq::config::ListenerConfig;
use tokio_rustls::rustls;

fn passwd_line(user: &str, password: &[u8]) -> String {
    format!("{user}:{}\n", hash_password(password, HashScheme::Pbkdf2Sha512 { iterations: 101 }).unwrap())
}

async fn connack_code(addr: std::net::SocketAddr, user: &str, password: &[u8]) -> u8 {
    let mut c = Raw::open(addr).await;
    c.send(&connect_packet(&ConnectOpts::new(Proto::V311, &format!("rl-{user}")).username(user).password(password)))
        .await;
    c.expect("CONNACK").await.connack().1
}

/// The password and ACL files change under a running broker: after a
/// reload the new user is admitted, the removed one refused (0x04), the
/// new ACL applies to new connections, and a connection admitted before
/// keeps working. A broken file keeps the old one, named with its line.
#[tokio::test]
async fn password_and_acl_files_reload_without_dropping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let (passwd, acl) = (dir.path().join("passwd"), dir.path().join("acl"));
    std::fs::write(&passwd, passwd_line("old", b"old-pw")).unwrap();
    std::fs::write(&acl, "user old\ntopic readwrite t/#\n").unwrap();
    let b = TestBroker::start_with(|c| {
        c.allow_anonymous = false;
        c.password_file = Some(passwd.clone());
        c.acl_file = Some(acl.clone());
    })
    .await;
    let mut kept =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "kept").username("old").password(b"old-pw")).await.0;
    assert_eq!(kept.subscribe(1, &[("t/x", 1)]).await, vec![1]);

    std::fs::write(&passwd, passwd_line("new", b"new-pw")).unwrap();
    std::fs::write(&acl, "user new\ntopic readwrite t/#\n").unwrap();
    assert!(b.broker.reload().is_empty());
    assert_eq!(connack_code(b.addr, "old", b"old-pw").await, 0x04, "removed from the password file");
    assert_eq!(connack_code(b.addr, "new", b"new-pw").await, 0);
    // The connection admitted before the reload was not dropped.
    kept.publish("t/x", 1, false, 2, b"still here").await;
    assert_eq!(kept.receive_acked().await.payload, b"still here");

    // A broken ACL file: named with its line, the previous one kept.
    std::fs::write(&acl, "user new\ntopic readwrite t/#\nfrobnicate everything\n").unwrap();
    let errors = b.broker.reload();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("acl") && errors[0].contains(":3"), "{errors:?}");
    let mut c =
        Raw::connect(b.addr, &ConnectOpts::new(Proto::V311, "after").username("new").password(b"new-pw")).await.0;
    assert_eq!(c.subscribe(1, &[("t/y", 0), ("u/y", 0)]).await, vec![0, 0x80], "the previous ACL still applies");
    b.shutdown().await;
}

/// A TLS listener's certificate is replaced: after a reload new handshakes
/// get the new certificate (a client trusting only the new CA connects),
/// and the TLS connection made before keeps working.
#[tokio::test]
async fn tls_certificates_reload() {
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let l: ListenerConfig = tls_listener(&f, |_| {});
    let b = TestBroker::start_with(|c| c.listeners = vec![l]).await;
    let tls13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let mut before = tls_connect(&b, client_config(&f.ca, None, tls13)).await.expect("old certificate");
    before.send(&connect_packet(&ConnectOpts::new(Proto::V311, "before"))).await;
    assert_eq!(before.expect("CONNACK").await.connack().1, 0);

    let ca2 = Ca::new("second CA");
    let server2 = ca2.issue(&["127.0.0.1"], "edgemq test server", "edgemq");
    std::fs::write(&f.cert_file, &server2.cert_pem).unwrap();
    std::fs::write(&f.key_file, &server2.key_pem).unwrap();
    assert!(tls_connect(&b, client_config(&ca2, None, tls13)).await.is_err(), "not before the reload");
    assert!(b.broker.reload().is_empty());
    let mut after = tls_connect(&b, client_config(&ca2, None, tls13)).await.expect("the new certificate");
    after.send(&connect_packet(&ConnectOpts::new(Proto::V311, "after"))).await;
    assert_eq!(after.expect("CONNACK").await.connack().1, 0);
    assert!(tls_connect(&b, client_config(&f.ca, None, tls13)).await.is_err(), "the old CA no longer matches");
    // A key file that does not load: the current certificate stays.
    std::fs::write(&f.key_file, "broken\n").unwrap();
    let errors = b.broker.reload();
    assert!(errors.len() == 1 && errors[0].contains("server.key"), "{errors:?}");
    assert!(tls_connect(&b, client_config(&ca2, None, tls13)).await.is_ok());
    assert_eq!(before.subscribe(1, &[("x", 0)]).await, vec![0], "the connection from before is still served");
    b.shutdown().await;
}

/// A TLS client of `b` (handshake only).
async fn tls_connect(b: &TestBroker, config: Arc<rustls::ClientConfig>) -> std::io::Result<Raw> {
    let tcp = tokio::net::TcpStream::connect(b.addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio::time::timeout(Duration::from_secs(5), tokio_rustls::TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))??;
    Ok(Raw::over(tls))
}

/// `Broker::reload_config` (SIGHUP with the file read again): `sys_interval`
/// and `max_subscriptions_per_client` change live, for new connections,
/// `data_dir` is reported as needing a restart and keeps its value.
#[tokio::test]
async fn reload_config_applies_sys_interval_and_limits_live() {
    let b = TestBroker::start_with(|c| {
        c.sys_interval = 0;
        c.max_subscriptions_per_client = 1;
    })
    .await;
    let mut sys = Raw::v311(b.addr, "rl-sys").await;
    assert_eq!(sys.subscribe(1, &[("$SYS/broker/uptime", 0)]).await, vec![0]);
    sys.expect_silence("$SYS is off").await;

    let mut new = b.broker.config();
    let old_dir = new.data_dir.clone();
    new.sys_interval = 1;
    new.max_subscriptions_per_client = 2;
    new.data_dir = old_dir.join("elsewhere");
    let r = b.broker.reload_config(new).await;
    assert_eq!(r.applied, vec!["max_subscriptions_per_client", "sys_interval"], "{r:?}");
    assert_eq!(r.restart, vec!["data_dir"], "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(b.broker.config().data_dir, old_dir, "restart-only keys keep their running value");
    assert_eq!(b.broker.config().sys_interval, 1);

    // $SYS now comes every second, to the subscription made before.
    let p = sys.expect_publish().await;
    assert_eq!(p.topic, "$SYS/broker/uptime");
    // A new connection may hold two subscriptions; the old one keeps its one.
    let mut c = Raw::v311(b.addr, "rl-new").await;
    assert_eq!(c.subscribe(1, &[("a", 0), ("b", 0)]).await, vec![0, 0]);
    b.shutdown().await;
}
