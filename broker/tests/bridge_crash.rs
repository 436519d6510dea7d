//! The bridge's promise with the real binary and Debian's Mosquitto as
//! the cloud (started here):
//! - QoS 1: with the cloud down, 10,000 numbered messages are published
//!   on the edge and acknowledged; the edge is killed with `kill -9` in
//!   the middle and restarted; then the cloud comes up and its persistent
//!   subscriber gets all 10,000, the first copy of each in order (a
//!   message whose cursor move the kill lost is sent again: such a
//!   duplicate repeats an earlier number, the edge sends it with DUP);
//! - QoS 2: 10,000 queued while the cloud is down, the edge killed while
//!   it forwards them, restarted: each arrives exactly once, in order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

mod mini;
use mini::*;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOTAL: u32 = 10_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Mosquitto(Child);

impl Mosquitto {
    fn start(port: u16, dir: &Path) -> Mosquitto {
        let conf = dir.join("mosquitto.conf");
        let text = format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 0\n",
            dir.display()
        );
        std::fs::write(&conf, text).unwrap();
        let child =
            Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto does not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Mosquitto(child)
    }

    /// SIGTERM: it writes its persistence file, then exits.
    fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A QoS 1 or 2 PUBLISH to `sensors/t` whose payload is `n` in decimal.
fn reading(qos: u8, n: u32) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "sensors/t");
    body.extend_from_slice(&((n % 65_000) as u16 + 1).to_be_bytes());
    body.extend_from_slice(n.to_string().as_bytes());
    packet(0x30 | (qos << 1), &body)
}

/// Publishes `from..TOTAL` at `qos` pipelined (32 in flight) until done or
/// the connection breaks; `acked` counts the acknowledged prefix (PUBACKs,
/// PUBCOMPs, come in order).
fn publish(addr: &str, qos: u8, from: u32, acked: &AtomicU32) {
    let (mut c, _) = Client::connect(addr, "sensor", true);
    let mut n = from;
    while acked.load(Ordering::SeqCst) < TOTAL {
        while n < TOTAL && n < acked.load(Ordering::SeqCst) + 32 {
            if !c.try_send(&reading(qos, n)) {
                return;
            }
            n += 1;
        }
        match c.read() {
            Some((0x40 | 0x70, _)) => {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Some((0x50, pkid)) => {
                if !c.try_send(&packet(0x62, &pkid)) {
                    return;
                }
            }
            Some(_) => {}
            None => return,
        }
    }
}

fn have_mosquitto() -> bool {
    if Command::new("mosquitto").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        assert!(std::env::var("EDGEMQ_REQUIRE_MOSQUITTO").as_deref() != Ok("1"), "mosquitto is not installed");
        eprintln!("SKIPPED: mosquitto is not installed");
        return false;
    }
    true
}

/// What both tests start from: a persistent subscriber to `sensors/#` at
/// the rule's QoS left its session on the cloud, which is down; the
/// edge's configuration has one bridge to it.
struct Scene {
    mdir: tempfile::TempDir,
    edir: tempfile::TempDir,
    port: u16,
}

impl Scene {
    fn new(qos: u8) -> Scene {
        let sc = Scene { mdir: tempfile::tempdir().unwrap(), edir: tempfile::tempdir().unwrap(), port: free_port() };
        let cloud = Mosquitto::start(sc.port, sc.mdir.path());
        let (mut sub, _) = Client::connect(&format!("127.0.0.1:{}", sc.port), "cloud-sub", false);
        sub.subscribe("sensors/#", qos);
        drop(sub);
        cloud.stop();
        std::fs::write(
            sc.edir.path().join("edgemq.toml"),
            format!(
                "[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{}\"]\ntopics = [\"sensors/# out {qos}\"]\nreconnect_min_ms = 100\nreconnect_max_ms = 300\n",
                sc.port
            ),
        )
        .unwrap();
        sc
    }

    /// The edge (again), on its data directory.
    fn edge(&self) -> Broker {
        let conf = self.edir.path().join("edgemq.toml");
        Broker::start(&self.edir.path().join("data"), &["-c", conf.to_str().unwrap()])
    }
}

/// Reads a numbered PUBLISH (acknowledging it: PUBACK, or PUBREC and then
/// PUBCOMP for the PUBREL); the number, `None` for other packets.
fn next_reading(sub: &mut Client) -> Option<u32> {
    let Some((byte1, body)) = sub.read() else { panic!("the cloud closed the subscriber") };
    match byte1 >> 4 {
        3 => {
            let qos = (byte1 >> 1) & 3;
            let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
            let pkid = &body[2 + tlen..4 + tlen];
            sub.send(&packet(if qos == 2 { 0x50 } else { 0x40 }, pkid));
            Some(std::str::from_utf8(&body[4 + tlen..]).unwrap().parse().unwrap())
        }
        6 => {
            sub.send(&packet(0x70, &body));
            None
        }
        _ => None,
    }
}

#[test]
fn ten_thousand_readings_survive_the_outage_and_a_kill_9_of_the_edge() {
    if !have_mosquitto() {
        return;
    }
    let sc = Scene::new(1);
    let (port, mdir) = (sc.port, sc.mdir.path());
    let edge = sc.edge();
    let acked = Arc::new(AtomicU32::new(0));
    let publisher = {
        let (addr, acked) = (edge.addr.clone(), acked.clone());
        std::thread::spawn(move || publish(&addr, 1, 0, &acked))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < TOTAL / 2 {
        assert!(Instant::now() < deadline, "the edge acknowledged only {}", acked.load(Ordering::SeqCst));
        std::thread::sleep(Duration::from_millis(1));
    }
    edge.kill9();
    publisher.join().unwrap();
    let before = acked.load(Ordering::SeqCst);
    eprintln!("killed the edge with {before} acknowledged");
    assert!(before < TOTAL, "killed in the middle");
    // The sensor resends from its first unacknowledged reading.
    let edge = sc.edge();
    let publisher = {
        let (addr, acked) = (edge.addr.clone(), acked.clone());
        std::thread::spawn(move || publish(&addr, 1, before, &acked))
    };
    publisher.join().unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), TOTAL, "every reading acknowledged");

    // The cloud returns: everything arrives at its subscriber.
    let cloud = Mosquitto::start(port, mdir);
    let (mut sub, present) = Client::connect(&format!("127.0.0.1:{port}"), "cloud-sub", false);
    assert!(present);
    sub.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut next, mut dups) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(90);
    while next < TOTAL {
        assert!(Instant::now() < deadline, "only {next} of {TOTAL} arrived");
        let Some(n) = next_reading(&mut sub) else { continue };
        if n < next {
            dups += 1;
        } else {
            assert_eq!(n, next, "out of order");
            next += 1;
        }
    }
    eprintln!("all {TOTAL} arrived, {dups} duplicates");
    drop(edge);
    cloud.stop();
}

/// QoS 2 across a kill -9 of the edge while it forwards: the bridge's
/// packet ids are its queue positions, and a PUBREC is made durable
/// before the PUBREL goes, so after the restart the edge sends PUBREL for
/// what the cloud had received, and PUBLISH (DUP, the same id) for the
/// rest, which the cloud acknowledges without delivering it again
/// [MQTT-4.3.3-10]: every reading arrives exactly once, in order.
#[test]
fn qos_2_readings_arrive_exactly_once_across_a_kill_9_of_the_edge_while_forwarding() {
    if !have_mosquitto() {
        return;
    }
    let sc = Scene::new(2);
    let (port, mdir) = (sc.port, sc.mdir.path());
    let edge = sc.edge();
    // All queued (and acknowledged to the sensor) while the cloud is down.
    let acked = AtomicU32::new(0);
    publish(&edge.addr, 2, 0, &acked);
    assert_eq!(acked.load(Ordering::SeqCst), TOTAL, "every reading acknowledged");

    let cloud = Mosquitto::start(port, mdir);
    let (mut sub, present) = Client::connect(&format!("127.0.0.1:{port}"), "cloud-sub", false);
    assert!(present);
    sub.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut seen = vec![false; TOTAL as usize];
    let (mut next, mut edge) = (0u32, Some(edge));
    let deadline = Instant::now() + Duration::from_secs(90);
    while next < TOTAL {
        assert!(Instant::now() < deadline, "only {next} of {TOTAL} arrived");
        let Some(n) = next_reading(&mut sub) else { continue };
        assert!(!seen[n as usize], "reading {n} arrived twice");
        seen[n as usize] = true;
        assert_eq!(n, next, "out of order: {n} for {next}");
        next += 1;
        if next == TOTAL / 2 {
            edge.take().unwrap().kill9();
            eprintln!("killed the edge with {next} forwarded");
            edge = Some(sc.edge());
        }
    }
    // Nothing more comes: a late duplicate would show here.
    sub.s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    while let Some((byte1, body)) = sub.read() {
        if byte1 >> 4 == 3 {
            panic!("a duplicate after all arrived: {:?}", String::from_utf8_lossy(&body));
        }
        if byte1 >> 4 == 6 {
            sub.send(&packet(0x70, &body));
        }
    }
    eprintln!("all {TOTAL} arrived exactly once");
    drop(edge);
    cloud.stop();
}
