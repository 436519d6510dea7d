//! The bridge (`[[bridge]]`, broker/src/bridge/) end to end: an in-process
//! edgemq "edge" bridged to Debian's Mosquitto (started by the test) or to
//! another in-process edgemq as "the cloud". The kill -9 test with the
//! real binary is `broker/tests/bridge_crash.rs`.

mod certs;
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::bridge::*;
use common::*;
use rumqttc::QoS;
use tokio::process::{Child, Command};

/// Whether Debian's `mosquitto` is there (`EDGEMQ_REQUIRE_MOSQUITTO`).
fn have_mosquitto() -> bool {
    let ok =
        std::process::Command::new("mosquitto").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    have("MOSQUITTO", ok, "mosquitto is not installed")
}

/// A Mosquitto broker with persistence in its own directory.
struct Mosquitto {
    child: Child,
    port: u16,
}

impl Mosquitto {
    async fn start(port: u16, dir: &Path) -> Mosquitto {
        Self::start_with(port, dir, "").await
    }

    /// With more configuration (a `connection` section, say).
    async fn start_with(port: u16, dir: &Path, extra: &str) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "{extra}\nuser root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\nmax_inflight_messages 100\n",
            dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        within("mosquitto to listen", async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Mosquitto { child, port }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// SIGTERM (it saves its persistence file), then wait.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().await.unwrap();
        within("mosquitto to stop", self.child.wait()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_while_mosquitto_is_down_then_delivered_in_order() {
    if !have_mosquitto() {
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The cloud's subscriber leaves a persistent session there first.
    let cloud = Mosquitto::start(port, mdir.path()).await;
    let (mut sub, _) = V4Client::connect(v4(cloud.addr(), "cloud-sub", false)).await;
    sub.subscribe("site1/sensors/#", QoS::AtLeastOnce).await;
    drop(sub);
    cloud.stop().await;
    let edge =
        edge_with(vec![bridge("cloud", &[format!("127.0.0.1:{port}")], &["sensors/# out 1 \"\" site1/"], "")]).await;
    // Acknowledged by the edge while the cloud is down: durable in the bridge queue.
    publish_numbered(edge.addr, "sensors/t", 0, 2000).await;
    let cloud = Mosquitto::start(port, mdir.path()).await;
    let (mut sub, present) = V4Client::connect(v4(cloud.addr(), "cloud-sub", false)).await;
    assert!(present);
    let dups = receive_numbered(&mut sub, 2000, Duration::from_secs(30)).await;
    assert_eq!(dups, 0, "no restart, no reconnect: no duplicates");
    edge.shutdown().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_rules_bring_the_clouds_messages_home_with_the_prefixes() {
    if !have_mosquitto() {
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let cloud = Mosquitto::start(free_port(), mdir.path()).await;
    let edge = edge_with(vec![bridge("cloud", &[cloud.addr().to_string()], &["cmd/# in 1 edge/ site1/"], "")]).await;
    let mut local = V4Client::simple(edge.addr, "local-sub").await;
    local.subscribe("edge/cmd/#", QoS::AtLeastOnce).await;
    let state = V4Client::simple(edge.addr, "state-sub").await;
    let mut state = state;
    state.subscribe("$SYS/broker/connection/cloud/state", QoS::AtLeastOnce).await;
    // The notification says when the bridge is up (retained "1").
    within("bridge up", async {
        loop {
            let p = state.next_publish().await;
            if &p.payload[..] == b"1" {
                return;
            }
        }
    })
    .await;
    let (cloud_pub, _) = V4Client::connect(v4(cloud.addr(), "cloud-pub", true)).await;
    cloud_pub.client.publish("site1/cmd/valve", QoS::AtLeastOnce, false, "open").await.unwrap();
    let p = local.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..], p.qos), ("edge/cmd/valve", &b"open"[..], QoS::AtLeastOnce));
    edge.shutdown().await;
    cloud.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edgemq_bridged_both_ways_do_not_loop_nor_echo_retained() {
    let cloud = TestBroker::start().await;
    for v in ["3.1.1", "5"] {
        let edge = edge_with(vec![bridge(
            "up",
            &[cloud.addr.to_string()],
            &["# both 1"],
            &format!("protocol_version = \"{v}\"\nclient_id = \"edge-{v}\""),
        )])
        .await;
        let mut on_cloud = V4Client::simple(cloud.addr, "cloud-watch").await;
        on_cloud.subscribe("loop/#", QoS::AtLeastOnce).await;
        let mut on_edge = V4Client::simple(edge.addr, "edge-watch").await;
        on_edge.subscribe("loop/#", QoS::AtLeastOnce).await;
        // Wait for the bridge's subscription on the cloud: a probe from the cloud reaches the edge.
        let probe = V4Client::simple(cloud.addr, "cloud-probe").await;
        probe_until_carried("the bridge to subscribe", &probe, "loop/probe", &mut on_edge, 200).await;
        // Drain the probes.
        drain(&mut on_cloud).await;
        drain(&mut on_edge).await;
        let edge_pub = V4Client::simple(edge.addr, "edge-pub").await;
        edge_pub.client.publish("loop/x", QoS::AtLeastOnce, true, "r1").await.unwrap();
        let got = on_cloud.next_publish().await;
        assert_eq!((got.topic.as_str(), &got.payload[..]), ("loop/x", &b"r1"[..]));
        assert_eq!(on_edge.next_publish().await.topic, "loop/x", "the local subscriber once");
        // Nothing comes back: the edge's subscriber would see a second copy.
        assert!(tokio::time::timeout(QUIET * 3, on_edge.next_publish()).await.is_err(), "echoed back ({v})");
        assert!(tokio::time::timeout(QUIET, on_cloud.next_publish()).await.is_err(), "looped ({v})");
        edge.shutdown().await;
        // Clear the retained message for the next round.
        edge_pub.client.disconnect().await.ok();
        let clear = V4Client::simple(cloud.addr, "clear").await;
        clear.client.publish("loop/x", QoS::AtLeastOnce, true, "").await.unwrap();
        tokio::time::sleep(QUIET).await;
    }
    cloud.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_to_the_second_address() {
    let cloud = TestBroker::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let edge = edge_with(vec![bridge("up", &[dead, cloud.addr.to_string()], &["s/# out 1"], "")]).await;
    let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    publish_numbered(edge.addr, "s/1", 0, 100).await;
    receive_numbered(&mut sub, 100, Duration::from_secs(20)).await;
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// `GET /api/bridges` shows each bridge's state: the failed address as
/// the last error, then connected to the live one, what it forwarded, its
/// queue drained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_shows_the_bridges_state() {
    let cloud = TestBroker::start().await;
    let dead = format!("127.0.0.1:{}", free_port());
    let b = bridge("up", &[dead.clone(), cloud.addr.to_string()], &["s/# out 1"], "");
    let edge = TestBroker::start_with(|c| {
        c.bridges = vec![b];
        c.http = Some(edgemq::http::HttpConfig {
            token: Some("t".into()),
            ..edgemq::http::HttpConfig::local("127.0.0.1:0".parse().unwrap())
        });
    })
    .await;
    let http = edge.broker.http_addr().unwrap();
    let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    publish_numbered(edge.addr, "s/1", 0, 50).await;
    receive_numbered(&mut sub, 50, Duration::from_secs(20)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let v = loop {
        let v = get_json(http, "/api/bridges", "t").await;
        let b = &v[0];
        if b["forwarded"] == 50 && b["queued_messages"] == 0 || tokio::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let b = &v[0];
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(b["name"], "up", "{v}");
    assert_eq!(b["connected"], true, "{v}");
    assert_eq!(b["remote"], cloud.addr.to_string(), "{v}");
    assert_eq!(b["forwarded"], 50, "{v}");
    assert_eq!((b["queued_messages"].as_u64(), b["dropped"].as_u64()), (Some(0), Some(0)), "{v}");
    // The dead address was tried first and refused.
    assert!(b["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    assert!(b["oldest_queued_age_secs"].is_null(), "nothing left in flight: {v}");
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// Mosquitto bridging into edgemq (`connection`, `try_private` on by
/// default: protocol level 0x84) is accepted, and gets No Local and
/// Retain As Published on its subscriptions: its messages are not echoed
/// back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mosquitto_bridge_into_edgemq_is_accepted_and_not_echoed() {
    if !have_mosquitto() {
        return;
    }
    let edge = TestBroker::start().await;
    let mdir = tempfile::tempdir().unwrap();
    let section = format!("connection to-edge\naddress 127.0.0.1:{}\ntopic m/# both 1\n", edge.port());
    let cloud = Mosquitto::start_with(free_port(), mdir.path(), &section).await;
    let mut on_cloud = V4Client::simple(cloud.addr(), "cloud-watch").await;
    on_cloud.subscribe("m/#", QoS::AtLeastOnce).await;
    let mut on_edge = V4Client::simple(edge.addr, "edge-watch").await;
    on_edge.subscribe("m/#", QoS::AtLeastOnce).await;
    let cloud_pub = V4Client::simple(cloud.addr(), "cloud-pub").await;
    // Until Mosquitto's bridge is connected and subscribed, probes are lost.
    probe_until_carried("Mosquitto's bridge to carry a message", &cloud_pub, "m/probe", &mut on_edge, 300).await;
    drain(&mut on_cloud).await;
    drain(&mut on_edge).await;
    cloud_pub.client.publish("m/x", QoS::AtLeastOnce, true, "from-cloud").await.unwrap();
    let p = on_edge.next_publish().await;
    assert_eq!((p.topic.as_str(), &p.payload[..]), ("m/x", &b"from-cloud"[..]));
    assert_eq!(on_cloud.next_publish().await.topic, "m/x");
    // Not echoed back by edgemq: the cloud's subscriber sees it once.
    assert!(tokio::time::timeout(QUIET * 3, on_cloud.next_publish()).await.is_err(), "echoed back to Mosquitto");
    assert!(tokio::time::timeout(QUIET, on_edge.next_publish()).await.is_err(), "a second copy on edgemq");
    // edgemq keeps RETAIN on what it forwards to the bridge: Mosquitto retains it.
    let edge_pub = V4Client::simple(edge.addr, "edge-pub").await;
    edge_pub.client.publish("m/r", QoS::AtLeastOnce, true, "kept").await.unwrap();
    assert_eq!(on_cloud.next_publish().await.topic, "m/r");
    let mut late = V4Client::simple(cloud.addr(), "late").await;
    late.subscribe("m/r", QoS::AtLeastOnce).await;
    let p = late.next_publish().await;
    assert!(p.retain && &p.payload[..] == b"kept", "retained on Mosquitto: {p:?}");
    edge.shutdown().await;
    cloud.stop().await;
}

/// The remote's Receive Maximum bounds the bridge's window (Mosquitto
/// stalls there, its issue 3002): with 2 allowed and a window of 100
/// configured, nothing is refused, nothing sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_window_stays_within_the_remotes_receive_maximum() {
    let cloud = TestBroker::start_with(|c| c.receive_maximum = 2).await;
    let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    let up = bridge("up", &[cloud.addr.to_string()], &["s/# out 1"], "protocol_version = \"5\"\nmax_inflight = 100");
    let edge = edge_with(vec![up]).await;
    publish_numbered(edge.addr, "s/1", 0, 500).await;
    // [MQTT-3.3.4-7] more QoS 1 awaiting PUBACK than the Receive Maximum
    // would be closed with 0x93 and the unacknowledged sent again: the
    // cloud's subscriber would get duplicates.
    let dups = receive_numbered(&mut sub, 500, Duration::from_secs(30)).await;
    assert_eq!(dups, 0);
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// QoS 2 end to end through the bridge: exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_arrives_once_in_order() {
    let cloud = TestBroker::start().await;
    let (mut sub, _) = V4Client::connect(v4(cloud.addr, "cloud-sub", true)).await;
    sub.subscribe("s/#", QoS::ExactlyOnce).await;
    let edge = edge_with(vec![bridge("up", &[cloud.addr.to_string()], &["s/# out 2"], "")]).await;
    publish_numbered_at(edge.addr, "s/q2", 0, 300, QoS::ExactlyOnce).await;
    let mut next = 0;
    while next < 300 {
        let p = sub.next_publish().await;
        assert_eq!(p.qos, QoS::ExactlyOnce, "QoS kept up to the rule's");
        assert_eq!(std::str::from_utf8(&p.payload).unwrap(), next.to_string());
        next += 1;
    }
    assert!(tokio::time::timeout(QUIET, sub.next_publish()).await.is_err(), "nothing twice");
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// A message the remote refuses (MQTT 5 PUBACK 0x90 here: more topic
/// levels than it takes) is not sent again and does not hold up the
/// queue behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_does_not_block_the_queue() {
    let cloud = TestBroker::start_with(|c| c.max_topic_levels = 3).await;
    let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    sub.subscribe("#", QoS::AtLeastOnce).await;
    let edge = edge_with(vec![bridge("up", &[cloud.addr.to_string()], &["# out 1"], "protocol_version = \"5\"")]).await;
    let p = V4Client::simple(edge.addr, "edge-pub").await;
    p.client.publish("a/b/c/d", QoS::AtLeastOnce, false, "too deep").await.unwrap();
    p.client.publish("a/ok", QoS::AtLeastOnce, false, "fine").await.unwrap();
    let got = sub.next_publish().await;
    assert_eq!((got.topic.as_str(), &got.payload[..]), ("a/ok", &b"fine"[..]));
    assert!(tokio::time::timeout(QUIET, sub.next_publish()).await.is_err());
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// A TCP proxy between the bridge and the cloud that, at moments drawn
/// from a seeded generator, stalls for a while or cuts the connection
/// after a random number of bytes (mid-packet, mostly); it accepts the
/// next connection at once. Returns its address.
async fn flaky_proxy(to: SocketAddr, seed: u64) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut rng = seed;
        let mut next = move || {
            rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            rng >> 33
        };
        loop {
            let Ok((down, _)) = listener.accept().await else { return };
            let Ok(up) = tokio::net::TcpStream::connect(to).await else { continue };
            // Bytes from the bridge before this connection is cut.
            let mut budget = 20_000 + next() % 400_000;
            let stall_at = next() % 200_000;
            let stall = Duration::from_millis(next() % 1500);
            let (mut dr, mut dw) = down.into_split();
            let (mut ur, mut uw) = up.into_split();
            let back = tokio::spawn(async move {
                let _ = tokio::io::copy(&mut ur, &mut dw).await;
            });
            let mut buf = vec![0u8; 4096];
            let mut sent = 0u64;
            let mut stalled = false;
            loop {
                let n = match dr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if !stalled && sent >= stall_at {
                    stalled = true;
                    tokio::time::sleep(stall).await;
                }
                let take = (n as u64).min(budget) as usize;
                if uw.write_all(&buf[..take]).await.is_err() {
                    break;
                }
                sent += take as u64;
                budget -= take as u64;
                if budget == 0 {
                    break;
                }
            }
            back.abort();
        }
    });
    (addr, task)
}

/// 100,000 QoS 1 messages through a link that stalls and is cut mid-packet
/// at random moments: none lost, none out of order (a cut may cost
/// duplicates of what was in flight, sent again with DUP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_uplink_loses_nothing_and_keeps_the_order() {
    const N: u32 = 100_000;
    let cloud = TestBroker::start().await;
    let (mut sub, _) = V4Client::connect(v4(cloud.addr, "cloud-sub", true)).await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("proxy seed {seed}");
    let (proxy, task) = flaky_proxy(cloud.addr, seed).await;
    let up = bridge("up", &[proxy.to_string()], &["s/# out 1"], "keep_alive_secs = 5");
    let edge = edge_with(vec![up]).await;
    let publisher = tokio::spawn(async move {
        publish_numbered_long(edge.addr, "s/long", N, Duration::from_secs(240)).await;
        edge
    });
    let dups = receive_numbered(&mut sub, N, Duration::from_secs(240)).await;
    eprintln!("{N} arrived in order, {dups} duplicates");
    let edge = publisher.await.unwrap();
    task.abort();
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// The remote session is persistent (`clean_session = false`, the
/// default): what the cloud publishes for the `in` rules while the edge
/// is off arrives once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_cloud_sent_while_the_edge_was_off_arrives_after_it_returns() {
    if !have_mosquitto() {
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let cloud = Mosquitto::start(free_port(), mdir.path()).await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_owned();
    let up = bridge("cloud", &[cloud.addr().to_string()], &["cmd/# in 1"], "");
    let edge = TestBroker::start_with({
        let (up, dir) = (up.clone(), dir.clone());
        move |c| {
            c.bridges = vec![up];
            c.data_dir = dir;
        }
    })
    .await;
    // A persistent local subscriber, and the bridge's subscription on the cloud.
    let (mut local, _) = V4Client::connect(v4(edge.addr, "actuator", false)).await;
    local.subscribe("cmd/#", QoS::AtLeastOnce).await;
    let cloud_pub = V4Client::simple(cloud.addr(), "cloud-pub").await;
    probe_until_carried("the bridge to subscribe", &cloud_pub, "cmd/probe", &mut local, 200).await;
    drop(local);
    edge.shutdown().await;
    // While the edge is off, the cloud queues these for the bridge's session.
    for i in 0..50 {
        cloud_pub.client.publish("cmd/valve", QoS::AtLeastOnce, false, i.to_string()).await.unwrap();
    }
    tokio::time::sleep(QUIET).await;
    let edge = TestBroker::start_with(move |c| {
        c.bridges = vec![up];
        c.data_dir = dir;
    })
    .await;
    let (mut local, present) = V4Client::connect(v4(edge.addr, "actuator", false)).await;
    assert!(present);
    let mut got = Vec::new();
    while got.len() < 50 {
        let p = local.next_publish().await;
        if p.topic != "cmd/probe" {
            got.push(std::str::from_utf8(&p.payload).unwrap().parse::<u32>().unwrap());
        }
    }
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    edge.shutdown().await;
    cloud.stop().await;
}

/// TLS to the remote (`tls = true`), mTLS: the cloud (an edgemq with an
/// `mqtts` listener requiring a client certificate of its CA) gets the
/// readings; a bridge trusting another CA never connects, nor does one
/// without a client certificate, and their readings stay queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_client_certificate() {
    use certs::*;
    let dir = tempfile::tempdir().unwrap();
    let f = files(dir.path());
    let tls = tls_listener(&f, |t| {
        t.cafile = Some(f.ca_file.clone());
        t.require_certificate = true;
    });
    let cloud = TestBroker::start_with(|c| {
        c.listeners = vec![tls, edgemq::config::ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())];
    })
    .await;
    let plain = cloud.broker.local_addrs()[1];
    let mut sub = V4Client::simple(plain, "cloud-sub").await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    let gw = f.ca.issue(&[], "gateway-1", "plant");
    let (cert, key) = (dir.path().join("gw.pem"), dir.path().join("gw.key"));
    std::fs::write(&cert, &gw.cert_pem).unwrap();
    std::fs::write(&key, &gw.key_pem).unwrap();
    let other = dir.path().join("other-ca.pem");
    std::fs::write(&other, Ca::new("another CA").cert.pem()).unwrap();
    let with = |ca: &std::path::Path, client: bool| {
        let mut extra = format!("tls = true\ncafile = '{}'\n", ca.display());
        if client {
            extra += &format!("certfile = '{}'\nkeyfile = '{}'\n", cert.display(), key.display());
        }
        extra
    };
    let edge = edge_with(vec![
        bridge("up", &[cloud.addr.to_string()], &["s/# out 1"], &with(&f.ca_file, true)),
        bridge("stranger", &[cloud.addr.to_string()], &["x/# out 1 \"\" s/"], &with(&other, true)),
        bridge("anonymous", &[cloud.addr.to_string()], &["y/# out 1 \"\" s/"], &with(&f.ca_file, false)),
    ])
    .await;
    publish_numbered(edge.addr, "s/1", 0, 100).await;
    publish_numbered(edge.addr, "x/1", 1000, 10).await;
    publish_numbered(edge.addr, "y/1", 2000, 10).await;
    assert_eq!(receive_numbered(&mut sub, 100, Duration::from_secs(20)).await, 0);
    assert!(tokio::time::timeout(QUIET * 3, sub.next_publish()).await.is_err(), "only the trusted bridge connects");
    edge.shutdown().await;
    cloud.shutdown().await;
}

/// A bridge's TLS file that does not load stops the start, naming it.
#[tokio::test]
async fn an_unloadable_bridge_ca_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let up =
        bridge("up", &["127.0.0.1:1".into()], &["s/# out 1"], &format!("tls = true\ncafile = '{}'", missing.display()));
    let cfg = edgemq::Config {
        listeners: vec![edgemq::config::ListenerConfig::tcp("127.0.0.1:0".parse().unwrap())],
        data_dir: dir.path().to_owned(),
        bridges: vec![up],
        ..edgemq::Config::default()
    };
    let e = edgemq::Broker::start(cfg).await.err().expect("the start fails");
    assert!(e.to_string().contains("nope.pem"), "{e}");
}

/// A proxy in front of `to` that records the protocol level of each
/// CONNECT through it and, with `refuse`, answers a CONNECT with the
/// bridge mark (level | 0x80) with those bytes and closes, as a broker
/// that does not know the mark: CONNACK 0x01, unacceptable protocol
/// version ([MQTT-3.1.2-2]), or nothing.
async fn level_proxy(
    to: SocketAddr,
    refuse: Option<&'static [u8]>,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let levels = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = levels.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut down, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            tokio::spawn(async move {
                // The CONNECT: fixed header, remaining length, "\0\x04MQTT", level.
                let mut buf = Vec::new();
                let level = loop {
                    let mut chunk = [0u8; 4096];
                    match down.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    let Some(len_bytes) = buf[1..].iter().position(|b| b & 0x80 == 0).map(|i| i + 1) else { continue };
                    if let Some(level) = buf.get(1 + len_bytes + 6) {
                        break *level;
                    }
                };
                seen.lock().unwrap().push(level);
                if let Some(answer) = refuse.filter(|_| level & 0x80 != 0) {
                    let _ = down.write_all(answer).await;
                    return;
                }
                let Ok(mut up) = tokio::net::TcpStream::connect(to).await else { return };
                if up.write_all(&buf).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    (addr, levels)
}

/// Mosquitto's `try_private`: a 3.1.1 bridge connects with level 0x84;
/// a remote that refuses it (CONNACK 0x01, or a close before any
/// CONNACK) is connected to again at once with level 4, and from then on;
/// Debian's Mosquitto takes the mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_private_falls_back_when_the_remote_refuses_the_bridge_mark() {
    let answers: [&'static [u8]; 2] = [&[0x20, 0x02, 0x00, 0x01], &[]];
    for answer in answers {
        let cloud = TestBroker::start().await;
        let (proxy, levels) = level_proxy(cloud.addr, Some(answer)).await;
        let edge = edge_with(vec![bridge("up", &[proxy.to_string()], &["s/# out 1"], "")]).await;
        let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
        sub.subscribe("s/#", QoS::AtLeastOnce).await;
        publish_numbered(edge.addr, "s/1", 0, 20).await;
        receive_numbered(&mut sub, 20, Duration::from_secs(20)).await;
        let seen = levels.lock().unwrap().clone();
        assert_eq!(seen[..2], [0x84, 0x04], "{answer:?}: refused with the mark, then without: {seen:?}");
        assert!(seen[2..].iter().all(|l| *l == 0x04), "{answer:?}: not tried again: {seen:?}");
        edge.shutdown().await;
        cloud.shutdown().await;
    }

    if !have_mosquitto() {
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let cloud = Mosquitto::start(free_port(), mdir.path()).await;
    let (proxy, levels) = level_proxy(cloud.addr(), None).await;
    let edge = edge_with(vec![bridge("up", &[proxy.to_string()], &["s/# out 1"], "")]).await;
    let (mut sub, _) = V4Client::connect(v4(cloud.addr(), "cloud-sub", true)).await;
    sub.subscribe("s/#", QoS::AtLeastOnce).await;
    publish_numbered(edge.addr, "s/1", 0, 20).await;
    receive_numbered(&mut sub, 20, Duration::from_secs(20)).await;
    let seen = levels.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|l| *l == 0x84), "Mosquitto takes the mark: {seen:?}");
    edge.shutdown().await;
    cloud.stop().await;
}

/// A remote that closes every CONNECT before its CONNACK, with the bridge
/// mark or without (down behind a proxy, restarting), has said nothing
/// about the mark: the bridge keeps trying it first (a close answered by
/// a successful CONNECT without the mark is the refusal, above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_closing_every_connect_does_not_turn_the_bridge_mark_off() {
    // Nothing listens there: the proxy closes each connection it accepts.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (proxy, levels) = level_proxy(gone, None).await;
    let edge = edge_with(vec![bridge("up", &[proxy.to_string()], &["s/# out 1"], "")]).await;
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while levels.lock().unwrap().len() < 6 {
        assert!(std::time::Instant::now() < until, "the bridge stopped trying: {:?}", levels.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each round: the mark, without it, and (for the state's will) without
    // the mark and the will.
    let seen = levels.lock().unwrap().clone();
    assert_eq!(seen[..2], [0x84, 0x04], "refused with the mark, then without: {seen:?}");
    assert!(seen[3..].contains(&0x84), "the mark is tried again: {seen:?}");
    edge.shutdown().await;
}

/// A relay whose connection can be dropped (both sockets closed, no
/// DISCONNECT: the remote sees the link die) by sending on the returned
/// channel; each later connection is relayed again.
async fn droppable_proxy(to: SocketAddr) -> (SocketAddr, tokio::sync::broadcast::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (drop_tx, _) = tokio::sync::broadcast::channel(4);
    let tx = drop_tx.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let mut dropped = tx.subscribe();
            tokio::spawn(async move {
                let Ok(mut up) = tokio::net::TcpStream::connect(to).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                    _ = dropped.recv() => {}
                }
            });
        }
    });
    (addr, drop_tx)
}

/// The next payload on `topic` (other publishes skipped).
async fn next_on(c: &mut V4Client, topic: &str) -> Vec<u8> {
    loop {
        let p = c.next_publish().await;
        if p.topic == topic {
            return p.payload.to_vec();
        }
    }
}

/// Mosquitto's default `notifications true` with `notifications_local_only
/// false`: the bridge's state is also retained on the remote, `1` once
/// connected, `0` by its will when the link dies without DISCONNECT, and
/// `0` published before DISCONNECT when the bridge stops. Into Debian's
/// Mosquitto and into edgemq, over 3.1.1 with the bridge mark (edgemq
/// takes `$SYS/broker/connection/` from bridges only).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridges_state_is_retained_on_the_remote_too() {
    if !have_mosquitto() {
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let mosquitto = Mosquitto::start(free_port(), mdir.path()).await;
    let edgemq_cloud = TestBroker::start().await;
    for (cloud, version) in [(mosquitto.addr(), "3.1.1"), (edgemq_cloud.addr, "3.1.1")] {
        let topic = "$SYS/broker/connection/gw/state";
        let (mut watcher, _) = V4Client::connect(v4(cloud, "state-watcher", true)).await;
        watcher.subscribe(topic, QoS::AtLeastOnce).await;
        let (via, drop_link) = droppable_proxy(cloud).await;
        let extra = format!("protocol_version = \"{version}\"\nnotification_topic = \"{topic}\"\nkeep_alive_secs = 5");
        let edge = edge_with(vec![bridge("up", &[via.to_string()], &["up/# out 1"], &extra)]).await;
        assert_eq!(within("the state 1 on the remote", next_on(&mut watcher, topic)).await, b"1", "{version}");
        drop_link.send(()).unwrap();
        assert_eq!(within("the will 0 on the remote", next_on(&mut watcher, topic)).await, b"0", "{version}");
        assert_eq!(within("1 again after the reconnect", next_on(&mut watcher, topic)).await, b"1", "{version}");
        edge.shutdown().await;
        assert_eq!(within("0 when the bridge stops", next_on(&mut watcher, topic)).await, b"0", "{version}");
        // Retained: a client that comes later reads the last state.
        let (mut late, _) = V4Client::connect(v4(cloud, "late-watcher", true)).await;
        late.subscribe(topic, QoS::AtLeastOnce).await;
        assert_eq!(within("the retained state", next_on(&mut late, topic)).await, b"0", "{version}");
    }
    edgemq_cloud.shutdown().await;
    mosquitto.stop().await;
}

/// A remote that refuses the CONNECT for the state's will (here: its
/// topic has more levels than the remote takes, or, over MQTT 5 into
/// edgemq, `$SYS` from a client without the bridge mark) is connected to
/// again without it, and messages flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_that_refuses_the_states_will_is_connected_to_without_it() {
    let cloud = TestBroker::start_with(|c| c.max_topic_levels = 3).await;
    let mut sub = V4Client::simple(cloud.addr, "cloud-sub").await;
    sub.subscribe("up/#", QoS::AtLeastOnce).await;
    for v in ["5", "3.1.1"] {
        let extra = format!("protocol_version = \"{v}\"\nclient_id = \"gw-{v}\"");
        let edge = edge_with(vec![bridge("up", &[cloud.addr.to_string()], &["up/# out 1"], &extra)]).await;
        let p = V4Client::simple(edge.addr, "edge-pub").await;
        p.client.publish("up/t", QoS::AtLeastOnce, false, v).await.unwrap();
        let got = sub.next_publish().await;
        assert_eq!((got.topic.as_str(), &got.payload[..]), ("up/t", v.as_bytes()));
        edge.shutdown().await;
    }
    cloud.shutdown().await;
}
