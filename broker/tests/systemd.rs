//! The binary under systemd's notify protocol, with the test as the
//! service manager: `NOTIFY_SOCKET` names a unix datagram socket the test
//! owns. READY=1 comes only once the listener answers MQTT, WATCHDOG=1
//! pings follow with `WATCHDOG_USEC` set, a SIGHUP is framed by
//! RELOADING=1 and READY=1, and SIGTERM sends STOPPING=1.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{mqtt_addr, signal, Killed, BIN};

/// The next notification, within 10 s.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 10 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Notifications until one has `line` as a line (bounded).
fn until(sock: &UnixDatagram, line: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let m = next(sock);
        let done = m.lines().any(|l| l == line);
        seen.push(m);
        if done {
            return seen;
        }
    }
    panic!("no {line} in {seen:?}");
}

fn mqtt_connack(addr: &str) -> [u8; 4] {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c']).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    ack
}

/// The broker on port 0 with a 300 ms watchdog, notifying `notify` if given.
fn spawn(data: &Path, notify: Option<&Path>) -> (Killed, ChildStdout) {
    let mut cmd = Command::new(BIN);
    cmd.args(["-p", "0", "--bind", "127.0.0.1", "--data-dir", data.to_str().unwrap()])
        .env("WATCHDOG_USEC", "300000")
        .env_remove("WATCHDOG_PID")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    (Killed(child), stdout)
}

#[test]
fn ready_after_the_port_answers_then_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (child, stdout) = spawn(&dir.path().join("data"), Some(&path));

    // The first notification is READY=1 (nothing is sent before it), and
    // when it arrives the printed listener already answers CONNECT.
    let first = next(&sock);
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    assert!(first.lines().any(|l| l.starts_with("STATUS=listening on mqtt://127.0.0.1:")), "{first:?}");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = mqtt_addr(&line);
    assert_eq!(mqtt_connack(&addr), [0x20, 2, 0, 0], "the port answers once READY=1 is sent");

    // Watchdog pings: the router answered a probe before each.
    for _ in 0..3 {
        until(&sock, "WATCHDOG=1");
    }

    // SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
    signal(&child.0, "-HUP");
    let seen = until(&sock, "RELOADING=1");
    assert!(seen.last().unwrap().lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{seen:?}");
    until(&sock, "READY=1");

    signal(&child.0, "-TERM");
    until(&sock, "STOPPING=1");
}

/// Without `NOTIFY_SOCKET` (not under systemd) the broker starts as ever.
#[test]
fn without_notify_socket_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, stdout) = spawn(dir.path(), None);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = mqtt_addr(&line);
    assert_eq!(mqtt_connack(&addr), [0x20, 2, 0, 0]);
}
