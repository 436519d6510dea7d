//! The bridge's promise with the real binary: with the cloud (Debian's
//! Mosquitto, started here) down, 10,000 numbered QoS 1 messages are
//! published on the edge and acknowledged; the edge is killed with
//! `kill -9` in the middle and restarted; then the cloud comes up and its
//! persistent subscriber gets all 10,000, the first copy of each in
//! order (a message whose cursor move the kill lost is sent again: such
//! a duplicate repeats an earlier number, the edge sends it with DUP).

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

/// A QoS 1 PUBLISH to `sensors/t` whose payload is `n` in decimal.
fn reading(n: u32) -> Vec<u8> {
    let mut body = Vec::new();
    string(&mut body, "sensors/t");
    body.extend_from_slice(&((n % 65_000) as u16 + 1).to_be_bytes());
    body.extend_from_slice(n.to_string().as_bytes());
    packet(0x32, &body)
}

/// Publishes `from..TOTAL` pipelined (32 in flight) until done or the
/// connection breaks; `acked` counts the acknowledged prefix (PUBACKs come
/// in order).
fn publish(addr: &str, from: u32, acked: &AtomicU32) {
    let (mut c, _) = Client::connect(addr, "sensor", true);
    let mut n = from;
    while acked.load(Ordering::SeqCst) < TOTAL {
        while n < TOTAL && n < acked.load(Ordering::SeqCst) + 32 {
            if !c.try_send(&reading(n)) {
                return;
            }
            n += 1;
        }
        match c.read() {
            Some((0x40, _)) => {
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Some(_) => {}
            None => return,
        }
    }
}

#[test]
fn ten_thousand_readings_survive_the_outage_and_a_kill_9_of_the_edge() {
    if Command::new("mosquitto").arg("-h").stdout(Stdio::null()).stderr(Stdio::null()).status().is_err() {
        assert!(std::env::var("EDGEMQ_REQUIRE_MOSQUITTO").as_deref() != Ok("1"), "mosquitto is not installed");
        eprintln!("SKIPPED: mosquitto is not installed");
        return;
    }
    let mdir = tempfile::tempdir().unwrap();
    let edir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The cloud's subscriber leaves its persistent session, then the cloud goes down.
    let cloud = Mosquitto::start(port, mdir.path());
    let (mut sub, _) = Client::connect(&format!("127.0.0.1:{port}"), "cloud-sub", false);
    sub.subscribe("sensors/#", 1);
    drop(sub);
    cloud.stop();

    let conf = edir.path().join("edgemq.toml");
    std::fs::write(
        &conf,
        format!("[[bridge]]\nname = \"cloud\"\naddresses = [\"127.0.0.1:{port}\"]\ntopics = [\"sensors/# out 1\"]\nreconnect_min_ms = 100\nreconnect_max_ms = 300\n"),
    )
    .unwrap();
    let data = edir.path().join("data");
    let args = ["-c", conf.to_str().unwrap()];
    let edge = Broker::start(&data, &args);
    let acked = Arc::new(AtomicU32::new(0));
    let publisher = {
        let (addr, acked) = (edge.addr.clone(), acked.clone());
        std::thread::spawn(move || publish(&addr, 0, &acked))
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
    let edge = Broker::start(&data, &args);
    let publisher = {
        let (addr, acked) = (edge.addr.clone(), acked.clone());
        std::thread::spawn(move || publish(&addr, before, &acked))
    };
    publisher.join().unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), TOTAL, "every reading acknowledged");

    // The cloud returns: everything arrives at its subscriber.
    let cloud = Mosquitto::start(port, mdir.path());
    let (mut sub, present) = Client::connect(&format!("127.0.0.1:{port}"), "cloud-sub", false);
    assert!(present);
    sub.s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let (mut next, mut dups) = (0u32, 0u32);
    let deadline = Instant::now() + Duration::from_secs(90);
    while next < TOTAL {
        assert!(Instant::now() < deadline, "only {next} of {TOTAL} arrived");
        let Some((byte1, body)) = sub.read() else { panic!("the cloud closed with {next} of {TOTAL}") };
        if byte1 >> 4 != 3 {
            continue;
        }
        let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
        let pkid = &body[2 + tlen..4 + tlen];
        let n: u32 = std::str::from_utf8(&body[4 + tlen..]).unwrap().parse().unwrap();
        sub.send(&packet(0x40, pkid));
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
