//! `edgemq import-mosquitto` end to end: a realistic mosquitto.conf (an
//! `include_dir` with the security settings, a plain and a TLS listener,
//! a password file written by Debian's `mosquitto_passwd`, an ACL file,
//! certificates made here) is first run by Debian's `mosquitto -c`, so the
//! configuration is one Mosquitto accepts; the same clients
//! (`mosquitto_pub`/`mosquitto_sub`) are then admitted and refused in the
//! same way by Mosquitto and by edgemq started on the imported
//! configuration, on the same ports.
//!
//! Skips (printing `SKIPPED:`) without `mosquitto`, its clients or
//! `mosquitto_passwd`, unless `EDGEMQ_REQUIRE_INTEROP=1`. With
//! `EDGEMQ_BIN` set, the binary's `import-mosquitto` must write the same
//! file as the library.

mod certs;
mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn tools_present() -> bool {
    for tool in ["mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd"] {
        let found =
            std::process::Command::new(tool).arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
        if !found {
            assert!(
                std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"),
                "{tool} not found and EDGEMQ_REQUIRE_INTEROP=1"
            );
            println!("SKIPPED: {tool} not found");
            return false;
        }
    }
    true
}

/// A port that was free a moment ago on 127.0.0.1 (the brokers under test
/// take their ports from a configuration file, not from port 0).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`.
async fn listening(port: u16) {
    within("the broker to listen", async {
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

struct Setup {
    dir: tempfile::TempDir,
    conf: PathBuf,
    ca: PathBuf,
    plain: u16,
    tls: u16,
}

const ACL: &str = "\
user alice
topic readwrite a/#
topic deny a/secret
";

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = certs::files(d);
    let passwd = d.join("passwd");
    let ok = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["alice", "wonderland"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "mosquitto_passwd");
    std::fs::write(d.join("acl"), ACL).unwrap();
    let confd = d.join("conf.d");
    std::fs::create_dir(&confd).unwrap();
    std::fs::write(
        confd.join("security.conf"),
        format!(
            "# who may connect\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            d.join("acl").display()
        ),
    )
    .unwrap();
    std::fs::create_dir(d.join("data")).unwrap();
    let (plain, tls) = (free_port(), free_port());
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "# Place your local configuration in {confd}\n\
             user root\n\
             persistence true\n\
             persistence_location {data}/\n\
             persistent_client_expiration 1d\n\
             max_inflight_messages 40\n\
             max_queued_messages 200\n\
             log_dest stderr\n\
             log_type error\n\
             log_type warning\n\
             include_dir {confd}\n\
             \n\
             listener {plain} 127.0.0.1\n\
             max_connections 50\n\
             \n\
             listener {tls} 127.0.0.1\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n",
            confd = confd.display(),
            data = d.join("data").display(),
            ca = f.ca_file.display(),
            cert = f.cert_file.display(),
            key = f.key_file.display(),
        ),
    )
    .unwrap();
    Setup { conf, ca: f.ca_file.clone(), plain, tls, dir }
}

/// `mosquitto_pub` with `args`: whether the broker took the message
/// (exit status 0).
async fn publish(args: &[&str]) -> bool {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-q", "1"]).args(args).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    within("mosquitto_pub", c.status()).await.unwrap().success()
}

/// The checks both brokers must pass the same way.
async fn same_clients_admitted_and_refused(s: &Setup, broker: &str) {
    let (plain, tls) = (s.plain.to_string(), s.tls.to_string());
    let ca = s.ca.display().to_string();
    let alice = ["-u", "alice", "-P", "wonderland"];
    assert!(!publish(&["-p", &plain, "-t", "a/x", "-m", "anon"]).await, "{broker}: anonymous client refused");
    let wrong = ["-p", &plain, "-u", "alice", "-P", "wrong", "-t", "a/x", "-m", "x"];
    assert!(!publish(&wrong).await, "{broker}: a wrong password refused");
    let nobody = ["-p", &plain, "-u", "mallory", "-P", "wonderland", "-t", "a/x", "-m", "x"];
    assert!(!publish(&nobody).await, "{broker}: an unknown user refused");
    // Plain MQTT on the TLS port: no CONNACK.
    let mut on_tls = vec!["-p", &tls, "-t", "a/x", "-m", "x"];
    on_tls.extend(alice);
    assert!(!publish(&on_tls).await, "{broker}: plaintext on the TLS listener refused");

    // alice's subscriber over TLS, trusting the CA.
    let mut sub = Command::new("mosquitto_sub");
    sub.args(["-h", "127.0.0.1", "-p", &tls, "--cafile", &ca, "-v", "-q", "1", "-t", "a/#", "-W", "20"])
        .args(alice)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = sub.spawn().expect("spawn mosquitto_sub");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Probes until the subscription is in place.
    within("mosquitto_sub to subscribe", async {
        loop {
            let mut a = vec!["-p", plain.as_str(), "-t", "a/probe", "-m", "p"];
            a.extend(alice);
            assert!(publish(&a).await, "{broker}: alice admitted with her password");
            match tokio::time::timeout(Duration::from_millis(300), lines.next_line()).await {
                Ok(Ok(Some(l))) if l == "a/probe p" => return,
                Ok(Ok(Some(l))) => panic!("{broker}: unexpected {l:?}"),
                Ok(_) => panic!("{broker}: mosquitto_sub exited (refused over TLS?)"),
                Err(_) => {}
            }
        }
    })
    .await;
    let mut secret = vec!["-p", plain.as_str(), "-t", "a/secret", "-m", "denied"];
    secret.extend(alice);
    // 3.1.1: a denied PUBLISH is acknowledged and dropped, in both.
    assert!(publish(&secret).await, "{broker}: the denied PUBLISH is acknowledged");
    let mut over_tls = vec!["-p", tls.as_str(), "--cafile", ca.as_str(), "-t", "a/ok", "-m", "allowed"];
    over_tls.extend(alice);
    assert!(publish(&over_tls).await, "{broker}: alice publishes over TLS with the CA");
    let next = loop {
        let l = within("a message", lines.next_line()).await.unwrap().expect("mosquitto_sub output");
        if l != "a/probe p" {
            break l;
        }
    };
    assert_eq!(next, "a/ok allowed", "{broker}: the ACL-denied a/secret is not delivered, a/ok is");
    child.kill().await.unwrap();
}

/// Starts Mosquitto on the configuration; fails if it refuses it.
async fn run_mosquitto(s: &Setup) {
    let mut m = Command::new("mosquitto");
    m.arg("-c").arg(&s.conf).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = m.spawn().expect("spawn mosquitto");
    let up = tokio::time::timeout(TIMEOUT, async {
        listening(s.plain).await;
        listening(s.tls).await;
    })
    .await;
    if up.is_err() || child.try_wait().unwrap().is_some() {
        let _ = child.kill().await;
        let out = child.wait_with_output().await.unwrap();
        panic!("mosquitto did not start on the configuration: {}", String::from_utf8_lossy(&out.stderr));
    }
    same_clients_admitted_and_refused(s, "mosquitto").await;
    child.kill().await.unwrap();
    child.wait().await.unwrap();
}

fn edgemq_bin() -> Option<PathBuf> {
    std::env::var_os("EDGEMQ_BIN").map(PathBuf::from).filter(|p| p.is_file())
}

/// The binary's `import-mosquitto` writes what the library does, and
/// says the warnings on standard error.
fn binary_imports_the_same(bin: &Path, conf: &Path, expected: &str) {
    let out = std::env::temp_dir().join(format!("edgemq-import-{}.toml", std::process::id()));
    let r = std::process::Command::new(bin).arg("import-mosquitto").arg(conf).arg("-o").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    std::fs::remove_file(&out).unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(stderr.contains("warning: ") && stderr.contains("`user`"), "{stderr}");
}

#[tokio::test]
async fn imported_configuration_admits_and_refuses_as_mosquitto() {
    if !tools_present() {
        return;
    }
    let s = setup();
    run_mosquitto(&s).await;

    let out = s.dir.path().join("edgemq.toml");
    let args = edgemq::import_cmd::ImportArgs { mosquitto_conf: s.conf.clone(), output: Some(out.clone()) };
    edgemq::import_cmd::run(&args).expect("import");
    let text = std::fs::read_to_string(&out).unwrap();
    let imported = edgemq::import_cmd::import(&s.conf).unwrap();
    let warned: Vec<&str> = imported.warnings.iter().map(|w| w.split('`').nth(1).unwrap_or("")).collect();
    assert_eq!(warned, ["user", "persistence_location"], "{:#?}", imported.warnings);
    match edgemq_bin() {
        Some(bin) => binary_imports_the_same(&bin, &s.conf, &text),
        None => println!("NOTE: EDGEMQ_BIN unset: the binary's import-mosquitto is not run"),
    }
    let cfg = edgemq::Config::from_args(&edgemq::config::Args { config: Some(out), ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!((cfg.max_inflight_messages, cfg.max_queued_messages, cfg.session_expiry_secs), (40, 200, 86_400));
    assert_eq!(cfg.listeners[0].max_connections, Some(50));
    assert_eq!(cfg.data_dir, s.dir.path().join("data/"));
    let broker = within("edgemq start", edgemq::Broker::start(cfg)).await.expect("edgemq starts on the import");
    let ports: Vec<u16> = broker.local_addrs().iter().map(|a| a.port()).collect();
    assert_eq!(ports, [s.plain, s.tls]);
    same_clients_admitted_and_refused(&s, "edgemq").await;
    within("edgemq shutdown", broker.shutdown()).await;
}

/// Starts Debian's Mosquitto on `conf`, waits for it on `port`.
async fn mosquitto_on(conf: &Path, port: u16) -> tokio::process::Child {
    let mut m = Command::new("mosquitto");
    m.arg("-c").arg(conf).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    let child = m.spawn().expect("spawn mosquitto");
    listening(port).await;
    child
}

/// A gateway's mosquitto.conf with a bridge (`connection` section) to a
/// Debian Mosquitto "cloud": Mosquitto takes it, and edgemq started on its
/// import carries `out` messages to the cloud and `in` messages home,
/// with the prefixes, and publishes the bridge's state where Mosquitto does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_bridge_carries_messages_both_ways() {
    if !tools_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cloud_port, edge_port) = (free_port(), free_port());
    let cloud_conf = d.join("cloud.conf");
    std::fs::write(&cloud_conf, format!("user root\nlistener {cloud_port} 127.0.0.1\nallow_anonymous true\n")).unwrap();
    let mut cloud = mosquitto_on(&cloud_conf, cloud_port).await;
    std::fs::create_dir(d.join("data")).unwrap();
    let conf = d.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\npersistence true\npersistence_location {data}/\n\
             listener {edge_port} 127.0.0.1\nallow_anonymous true\n\n\
             connection cloud\naddress 127.0.0.1:{cloud_port}\n\
             topic sensors/# out 1 \"\" site1/\ntopic cmd/# in 1 edge/ site1/\n\
             remote_clientid gw1\ncleansession false\nkeepalive_interval 10\nrestart_timeout 1 2\n\
             bridge_protocol_version mqttv311\ntry_private true\nnotifications true\n\
             notifications_local_only true\nstart_type automatic\nlocal_clientid gw1-local\n",
            data = d.join("data").display()
        ),
    )
    .unwrap();
    // Mosquitto takes the gateway's file as it is.
    let mut gw = mosquitto_on(&conf, edge_port).await;
    gw.kill().await.unwrap();
    gw.wait().await.unwrap();

    let imported = edgemq::import_cmd::import(&conf).unwrap();
    let warned: Vec<&str> = imported.warnings.iter().map(|w| w.split('`').nth(1).unwrap_or("")).collect();
    assert_eq!(warned, ["user", "persistence_location", "local_clientid"], "{:#?}", imported.warnings);
    let out = d.join("edgemq.toml");
    std::fs::write(&out, &imported.toml).unwrap();
    let cfg = edgemq::Config::from_args(&edgemq::config::Args { config: Some(out), ..Default::default() })
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml));
    let b = &cfg.bridges[0];
    assert_eq!((b.client_id.as_str(), b.keep_alive_secs, b.reconnect_max_ms), ("gw1", 10, 2000));
    let edge = within("edgemq start", edgemq::Broker::start(cfg)).await.expect("edgemq starts on the import");
    let edge_addr = edge.local_addrs()[0];
    let cloud_addr = std::net::SocketAddr::from(([127, 0, 0, 1], cloud_port));

    let mut state = V4Client::simple(edge_addr, "state").await;
    state.subscribe("$SYS/broker/connection/gw1/state", rumqttc::QoS::AtLeastOnce).await;
    within("the bridge's state 1", async { while &state.next_publish().await.payload[..] != b"1" {} }).await;
    // out: sensors/# on the edge to site1/sensors/# on the cloud.
    let mut cloud_sub = V4Client::simple(cloud_addr, "cloud-sub").await;
    cloud_sub.subscribe("site1/sensors/#", rumqttc::QoS::AtLeastOnce).await;
    let edge_pub = V4Client::simple(edge_addr, "edge-pub").await;
    edge_pub.client.publish("sensors/t", rumqttc::QoS::AtLeastOnce, false, "21.5").await.unwrap();
    let p = within("the reading on the cloud", cloud_sub.next_publish()).await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), ("site1/sensors/t", &b"21.5"[..], rumqttc::QoS::AtLeastOnce));
    // in: site1/cmd/# on the cloud to edge/cmd/# on the edge (the bridge's
    // subscription may follow its CONNACK by a moment: probes until then).
    let mut edge_sub = V4Client::simple(edge_addr, "edge-sub").await;
    edge_sub.subscribe("edge/cmd/#", rumqttc::QoS::AtLeastOnce).await;
    let cloud_pub = V4Client::simple(cloud_addr, "cloud-pub").await;
    common::bridge::probe_until_carried("the in rule", &cloud_pub, "site1/cmd/probe", &mut edge_sub, 200).await;
    cloud_pub.client.publish("site1/cmd/valve", rumqttc::QoS::AtLeastOnce, false, "open").await.unwrap();
    let p = loop {
        let p = within("the command at the edge", edge_sub.next_publish()).await;
        if &p.payload[..] != b"probe" {
            break p;
        }
    };
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("edge/cmd/valve", &b"open"[..]));
    within("edgemq shutdown", edge.shutdown()).await;
    cloud.kill().await.unwrap();
}
