//! Test-side machinery for `qemu_e2e.rs`: broker processes (edgemq or
//! Debian's mosquitto), QEMU running a firmware with its UART wired to TCP,
//! a minimal MQTT 3.1.1 subscriber written with `mqttbytes`, and a TCP gate
//! that keeps the broker unreachable until opened.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mqttbytes::v4 as mb;

/// The firmware's client id (compiled in by the tests).
pub const CLIENT_ID: &str = "lm3s6965-e2e";

/// A QEMU machine the demo firmware is built for.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// Short name for messages and build directories.
    pub name: &'static str,
    /// `qemu-system-arm -machine`.
    pub machine: &'static str,
    /// `qemu-system-arm -cpu`.
    pub cpu: &'static str,
    /// Rust target triple.
    pub target: &'static str,
    /// Demo features selecting the board (empty: LM3S6965).
    pub feature: &'static str,
}

pub const LM3S6965: Board =
    Board { name: "m3-lm3s6965", machine: "lm3s6965evb", cpu: "cortex-m3", target: "thumbv7m-none-eabi", feature: "" };
pub const MICROBIT: Board = Board {
    name: "m0-microbit",
    machine: "microbit",
    cpu: "cortex-m0",
    target: "thumbv6m-none-eabi",
    feature: "microbit",
};
pub const MPS2_AN386: Board = Board {
    name: "m4f-mps2-an386",
    machine: "mps2-an386",
    cpu: "cortex-m4",
    target: "thumbv7em-none-eabihf",
    feature: "mps2-an386",
};

/// Which broker a test runs against.
#[derive(Clone, Debug)]
pub enum BrokerKind {
    Edgemq(PathBuf),
    Mosquitto,
}

pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A broker process; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Broker {
    child: Option<Child>,
    kind: BrokerKind,
    pub port: u16,
    dir: PathBuf,
}

impl Broker {
    /// Starts a broker on `port` (0: let it choose, edgemq only) with
    /// persistent state in `dir`.
    pub fn start(kind: &BrokerKind, port: u16, dir: &Path) -> Broker {
        std::fs::create_dir_all(dir).unwrap();
        let (child, port) = match kind {
            BrokerKind::Edgemq(bin) => {
                let mut child = Command::new(bin)
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--data-dir"])
                    .arg(dir)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .expect("start edgemq");
                let out = child.stdout.take().unwrap();
                let (tx, rx) = channel();
                thread::spawn(move || {
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if tx.send(line).is_err() {
                            // Keep draining so the broker never blocks on stdout.
                            continue;
                        }
                    }
                });
                let deadline = Instant::now() + Duration::from_secs(30);
                let port = loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let line = rx.recv_timeout(left).expect("edgemq printed no 'listening on' line");
                    if let Some(p) = parse_listening(&line) {
                        break p;
                    }
                };
                (child, port)
            }
            BrokerKind::Mosquitto => {
                let port = if port == 0 { free_port() } else { port };
                let conf = dir.join("mosquitto.conf");
                // As root, mosquitto drops to user "mosquitto" and then
                // cannot write its database into our directory.
                let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
                std::fs::write(
                    &conf,
                    format!(
                        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                         persistence_location {}/\nmax_queued_messages 1000\n{}",
                        dir.display(),
                        if is_root { "user root\n" } else { "" }
                    ),
                )
                .unwrap();
                let child = Command::new("mosquitto")
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start mosquitto");
                (child, port)
            }
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "broker not accepting on {port}");
            thread::sleep(Duration::from_millis(50));
        }
        Broker { child: Some(child), kind: kind.clone(), port, dir: dir.to_path_buf() }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            if wait_child(&mut c, Duration::from_secs(10)).is_none() {
                eprintln!("broker did not stop on SIGTERM; killed");
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        *self = Broker::start(&self.kind.clone(), self.port, &self.dir.clone());
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Port of the first `mqtt://IP:PORT` after `listening on `.
pub fn parse_listening(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let addr = &rest[rest.find("mqtt://")? + "mqtt://".len()..];
    let end = addr.find(|c: char| c == ',' || c == ';' || c.is_whitespace()).unwrap_or(addr.len());
    addr[..end].rsplit(':').next()?.parse().ok()
}

/// QEMU running the firmware; semihosting output collected line by line.
pub struct Qemu {
    child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Qemu {
    pub fn start(board: &Board, elf: &Path, port: u16, reconnecting: bool) -> Qemu {
        let serial: Vec<String> = if reconnecting {
            vec![
                "-chardev".into(),
                format!("socket,id=mqtt,host=127.0.0.1,port={port},reconnect=1"),
                "-serial".into(),
                "chardev:mqtt".into(),
            ]
        } else {
            vec!["-serial".into(), format!("tcp:127.0.0.1:{port}")]
        };
        let mut child = Command::new("qemu-system-arm")
            .args(["-cpu", board.cpu, "-machine", board.machine, "-nographic"])
            .args(["-monitor", "none", "-semihosting-config", "enable=on,target=native"])
            .args(&serial)
            .arg("-kernel")
            .arg(elf)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start qemu");
        let out = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let log2 = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Qemu { child, lines: rx, log }
    }

    /// Waits for a firmware output line satisfying `pred`.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let end = Instant::now() + limit;
        while let Ok(l) = self.lines.recv_timeout(end.saturating_duration_since(Instant::now())) {
            if pred(&l) {
                return true;
            }
        }
        false
    }

    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        wait_child(&mut self.child, limit)
    }

    pub fn output(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal blocking MQTT 3.1.1 client for the test side.
pub struct TestClient {
    s: TcpStream,
    buf: BytesMut,
}

pub fn write_packet(s: &mut TcpStream, p: mb::Packet) {
    let mut b = BytesMut::new();
    match p {
        mb::Packet::Connect(x) => x.write(&mut b),
        mb::Packet::Publish(x) => x.write(&mut b),
        mb::Packet::PubAck(x) => x.write(&mut b),
        mb::Packet::Subscribe(x) => x.write(&mut b),
        mb::Packet::Disconnect => mb::Disconnect.write(&mut b),
        other => panic!("not sent by the test client: {other:?}"),
    }
    .unwrap();
    s.write_all(&b).unwrap();
}

impl TestClient {
    pub fn connect(port: u16, id: &str, clean: bool) -> (TestClient, bool) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut c = TestClient { s, buf: BytesMut::new() };
        let mut con = mb::Connect::new(id);
        con.clean_session = clean;
        con.keep_alive = 60;
        write_packet(&mut c.s, mb::Packet::Connect(con));
        match c.recv(Duration::from_secs(10)) {
            Some(mb::Packet::ConnAck(a)) => {
                assert_eq!(a.code, mb::ConnectReturnCode::Success);
                (c, a.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    pub fn recv(&mut self, limit: Duration) -> Option<mb::Packet> {
        let end = Instant::now() + limit;
        loop {
            match mb::read(&mut self.buf, 1 << 20) {
                Ok(p) => return Some(p),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("bad packet from broker: {e:?}"),
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s.set_read_timeout(Some(left)).unwrap();
            let mut tmp = [0u8; 4096];
            match self.s.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(_) => return None,
            }
        }
    }

    pub fn subscribe(&mut self, filter: &str) {
        let mut s = mb::Subscribe::new(filter, mqttbytes::QoS::AtLeastOnce);
        s.pkid = 1;
        write_packet(&mut self.s, mb::Packet::Subscribe(s));
        match self.recv(Duration::from_secs(10)) {
            Some(mb::Packet::SubAck(_)) => {}
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub fn publish(&mut self, topic: &str, payload: &[u8]) {
        let mut p = mb::Publish::new(topic, mqttbytes::QoS::AtLeastOnce, payload.to_vec());
        p.pkid = 7;
        write_packet(&mut self.s, mb::Packet::Publish(p));
        loop {
            match self.recv(Duration::from_secs(10)) {
                Some(mb::Packet::PubAck(_)) => return,
                Some(_) => {}
                None => panic!("no PUBACK"),
            }
        }
    }

    /// The next PUBLISH (acknowledged if QoS 1), skipping other packets;
    /// `None` once `limit` passes with nothing.
    pub fn next_publish(&mut self, limit: Duration) -> Option<mb::Publish> {
        loop {
            if let mb::Packet::Publish(p) = self.recv(limit)? {
                if p.qos != mqttbytes::QoS::AtMostOnce {
                    write_packet(&mut self.s, mb::Packet::PubAck(mb::PubAck::new(p.pkid)));
                }
                return Some(p);
            }
        }
    }

    /// Collects readings (acking them) until all `0..n` were seen or `limit`
    /// passes with nothing new. Returns `(seq, dup flag)` in arrival order.
    pub fn collect(&mut self, n: u32, limit: Duration) -> Vec<(u32, bool)> {
        let mut got = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        while seen.len() < n as usize {
            let Some(p) = self.next_publish(limit) else { break };
            let text = String::from_utf8_lossy(&p.payload).to_string();
            let seq: u32 = text
                .strip_prefix("seq=")
                .and_then(|r| r.split(' ').next())
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("unexpected payload {text:?}"));
            assert_eq!(p.topic, format!("sensors/{CLIENT_ID}/reading"));
            seen.insert(seq);
            got.push((seq, p.dup));
        }
        got
    }

    pub fn disconnect(mut self) {
        write_packet(&mut self.s, mb::Packet::Disconnect);
        // Give the broker a moment to register the clean disconnect.
        let _ = self.recv(Duration::from_millis(200));
    }
}

/// A TCP gate between QEMU and the broker: closed (port not listening, as if
/// no broker were there) until [`Gate::open`]; then it relays connections.
pub struct Gate {
    pub port: u16,
    upstream: u16,
}

impl Gate {
    pub fn new(upstream: u16) -> Gate {
        Gate { port: free_port(), upstream }
    }

    pub fn open(&self) {
        let l = TcpListener::bind(("127.0.0.1", self.port)).expect("gate port taken");
        let upstream = self.upstream;
        thread::spawn(move || {
            for down in l.incoming().map_while(Result::ok) {
                let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                for (mut from, mut to) in [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                        let _ = from.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
    }
}
