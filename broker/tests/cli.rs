//! The `edgemq` binary's contract: startup line, flags, config errors,
//! graceful shutdown on SIGTERM/SIGINT.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_edgemq");

struct Running {
    child: Child,
    line: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(BIN).args(args).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    Running { child, line }
}

fn first_addr(line: &str) -> String {
    let rest = line.split("listening on ").nth(1).unwrap();
    rest.split("mqtt://").nth(1).unwrap().split([',', ';']).next().unwrap().to_owned()
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "broker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap().success();
    assert!(ok);
}

#[test]
fn startup_line_names_version_listeners_data_dir_and_config() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(&["-p", "0", "--bind", "127.0.0.1", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        r.line.starts_with(&format!("edgemq {} listening on mqtt://127.0.0.1:", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.line
    );
    assert!(r.line.contains(&format!("data dir {}", dir.path().display())), "{}", r.line);
    assert!(r.line.contains("config (none)"), "{}", r.line);
    // The printed address accepts an MQTT connection.
    let mut s = TcpStream::connect(first_addr(&r.line)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'c']).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
}

#[test]
fn sigterm_and_sigint_shut_down_cleanly() {
    for sig in ["-TERM", "-INT"] {
        let dir = tempfile::tempdir().unwrap();
        let mut r = start(&["-p", "0", "--bind", "127.0.0.1", "--data-dir", dir.path().to_str().unwrap()]);
        let mut s = TcpStream::connect(first_addr(&r.line)).unwrap();
        s.write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 5, 2, 0, 60, 0, 0, 0]).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 256];
        let _ = s.read(&mut buf).unwrap();
        signal(&r.child, sig);
        assert!(wait_exit(&mut r.child).success(), "exit status after {sig}");
        // MQTT 5 client got DISCONNECT 0x8B (server shutting down), then EOF.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.len() >= 3 && rest[0] == 0xE0 && rest[2] == 0x8B, "DISCONNECT 0x8B: {rest:?}");
    }
}

#[test]
fn config_file_is_used_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edgemq.toml");
    std::fs::write(&cfg, "bind = [\"127.0.0.1\"]\nport = 0\nmax_inflight_messages = 10\n").unwrap();
    let r = start(&["-c", cfg.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert!(r.line.contains(&format!("config {}", cfg.display())), "{}", r.line);
    assert!(r.line.contains("mqtt://127.0.0.1:"), "{}", r.line);
}

#[test]
fn listener_tables_are_listened_on() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edgemq.toml");
    let text =
        "port = 0\n[[listener]]\nbind = \"127.0.0.1\"\nmax_connections = 5\n\n[[listener]]\nbind = \"127.0.0.1\"\n";
    std::fs::write(&cfg, text).unwrap();
    let r = start(&["-c", cfg.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert_eq!(r.line.matches("mqtt://127.0.0.1:").count(), 2, "{}", r.line);
}

fn config_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(BIN).args(["-c", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("bad.toml"), "{err}");
    err
}

#[test]
fn config_errors_name_file_line_and_key() {
    assert!(config_error("port = 1883\nmax_inflite = 3\n").contains("bad.toml:2: key `max_inflite`"));
    assert!(config_error("\n\nport = \"x\"\n").contains("bad.toml:3: key `port`"));
    assert!(config_error("bind = [\"1.2.3.999\"]\n").contains("bad.toml:1: key `bind`"));
    let e = config_error("[[listener]]\nbind = \"::1\"\n\n[[listener]]\nbind = \"::1\"\nmax_packet_size = 1\n");
    assert!(e.contains("bad.toml:6: key `max_packet_size`"), "{e}");
}

#[test]
fn a_public_http_listener_without_a_token_is_refused_at_start() {
    let e = config_error("port = 0\n[http]\nbind = \"0.0.0.0:0\"\n");
    assert!(e.contains("bad.toml:3: key `http.bind`: 0.0.0.0:0 is not a loopback address"), "{e}");
}

#[test]
fn the_startup_line_names_the_http_listener() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("edgemq.toml");
    std::fs::write(&cfg, "bind = [\"127.0.0.1:0\"]\n[http]\nbind = \"127.0.0.1:0\"\ntoken = \"t\"\n").unwrap();
    let r = start(&["-c", cfg.to_str().unwrap(), "--data-dir", dir.path().to_str().unwrap()]);
    assert!(r.line.contains(", http://127.0.0.1:"), "{}", r.line);
}

#[test]
fn version_flag() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn bad_flag_value_fails() {
    let out = Command::new(BIN).args(["--bind", "not-an-address", "-p", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not-an-address"));
}

/// Out of file descriptors (`prlimit --nofile`): accepting fails with
/// EMFILE while the connections are open. The broker backs off (no busy
/// loop: a handful of log lines, not thousands), keeps serving the clients
/// it has, and accepts again once descriptors are free.
#[test]
fn accept_errors_back_off_and_recover() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit (util-linux) not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("prlimit")
        .args(["--nofile=48:48", BIN, "-p", "0", "--bind", "127.0.0.1", "--data-dir", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let running = Running { child, line };
    let addr = first_addr(&running.line);
    let connect = || {
        let mut s = TcpStream::connect(&addr).ok()?;
        s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        // A 3.1.1 CONNECT, clean session, client id "x".
        s.write_all(&[0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'x']).ok()?;
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).ok()?;
        (ack[0] == 0x20).then_some(s)
    };
    let first = connect().expect("a first client is served");
    // Fill the descriptor table: the kernel completes these handshakes, the
    // broker cannot accept them.
    let flood: Vec<TcpStream> = (0..80).filter_map(|_| TcpStream::connect(&addr).ok()).collect();
    std::thread::sleep(Duration::from_secs(2));
    // The first client is still served: PINGREQ, PINGRESP.
    let mut first = first;
    first.write_all(&[0xC0, 0]).unwrap();
    let mut resp = [0u8; 2];
    first.read_exact(&mut resp).unwrap();
    assert_eq!(resp, [0xD0, 0], "a connected client keeps being served while accept fails");
    drop(flood);
    // Descriptors come back: new clients are accepted again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect().is_none() {
        assert!(Instant::now() < deadline, "no client accepted after the descriptors were freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut running = running;
    signal(&running.child, "-TERM");
    wait_exit(&mut running.child);
    let mut log = String::new();
    running.child.stderr.take().unwrap().read_to_string(&mut log).unwrap();
    let lines = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        (1..=3).contains(&lines),
        "accept errors logged {lines} times (rate-limited: at most one per 10 s):\n{log}"
    );
}

/// A TLS listener whose certificate file does not load: exit code 2, the
/// file named, nothing listened on.
#[test]
fn unloadable_certificate_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server-cert.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let text = format!(
        "[[listener]]\nbind = \"127.0.0.1:0\"\nprotocol = \"mqtts\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n",
        cert.display(),
        cert.display()
    );
    let cfg = dir.path().join("tls.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = Command::new(BIN).args(["-c", cfg.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8(out.stderr).unwrap();
    assert!(e.contains("server-cert.pem") && e.contains("configuration error"), "{e}");
}

/// CONNACK's return code for a 3.1.1 CONNECT of `user` with `password`.
fn connack(addr: &str, user: &str, password: &str) -> u8 {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 30, 0, 2, b'c', b'1'];
    for s in [user, password] {
        body.extend_from_slice(&(s.len() as u16).to_be_bytes());
        body.extend_from_slice(s.as_bytes());
    }
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&[0x10, body.len() as u8]).unwrap();
    s.write_all(&body).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    ack[3]
}

/// SIGHUP reloads the password file: a user added afterwards is admitted,
/// the broker keeps running.
#[test]
fn sighup_reloads_the_password_file() {
    use edgemq::auth::passwd::{hash_password, HashScheme};
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let line = |u: &str, p: &[u8]| {
        format!("{u}:{}\n", hash_password(p, HashScheme::Pbkdf2Sha512 { iterations: 101 }).unwrap())
    };
    std::fs::write(&passwd, line("first", b"one")).unwrap();
    let cfg = dir.path().join("edgemq.toml");
    std::fs::write(&cfg, format!("port = 0\nallow_anonymous = false\npassword_file = \"{}\"\n", passwd.display()))
        .unwrap();
    let mut r =
        start(&["-c", cfg.to_str().unwrap(), "--bind", "127.0.0.1", "--data-dir", dir.path().to_str().unwrap()]);
    let addr = first_addr(&r.line);
    assert_eq!(connack(&addr, "first", "one"), 0);
    assert_eq!(connack(&addr, "second", "two"), 4);
    std::fs::write(&passwd, format!("{}{}", line("first", b"one"), line("second", b"two"))).unwrap();
    signal(&r.child, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while connack(&addr, "second", "two") != 0 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the password file");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(r.child.try_wait().unwrap().is_none(), "still running");
    signal(&r.child, "-TERM");
    assert!(wait_exit(&mut r.child).success());
}
