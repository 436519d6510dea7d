//! The binary's logging and SIGHUP: `log_dest = "file"` with
//! `log_format = "json"` (every line a JSON object), refused CONNECTs
//! logged once per 10 s however many come, and a SIGHUP that applies
//! `log_level` and `max_sessions` live and names the keys that need a
//! restart (`data_dir`, `log_format`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{mqtt_addr, signal, Killed, BIN};

/// The CONNACK return code of a 3.1.1 CONNECT of `client_id`, a
/// persistent session (clean session 0).
fn connack(addr: &str, client_id: &str) -> u8 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let id = client_id.as_bytes();
    let mut p = vec![0x10, (12 + id.len()) as u8, 0, 4, b'M', b'Q', b'T', b'T', 4, 0, 0, 60, 0, id.len() as u8];
    p.extend_from_slice(id);
    s.write_all(&p).unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).unwrap();
    ack[3]
}

/// The log file's lines, each parsed as JSON.
fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn message(v: &serde_json::Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or("")
}

/// Waits (bounded) until a log line satisfies `f`.
fn wait_for(path: &Path, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = json_lines(path).into_iter().find(&f) {
            return v;
        }
        assert!(Instant::now() < deadline, "no log line {what}: {:?}", json_lines(path));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(dir: &Path, extra: &str) -> String {
    format!(
        "bind = [\"127.0.0.1\"]\nport = 0\ndata_dir = \"{}\"\nlog_dest = \"file\"\nlog_file = \"{}\"\n{extra}",
        dir.join("data").display(),
        dir.join("edgemq.log").display()
    )
}

#[test]
fn json_file_log_rate_limited_refusals_and_live_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, log) = (dir.path().join("edgemq.toml"), dir.path().join("edgemq.log"));
    std::fs::write(&conf, config(dir.path(), "log_format = \"json\"\nmax_sessions = 1\n")).unwrap();
    let mut child = Command::new(BIN)
        .args(["-c", conf.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let child = Killed(child);
    let addr = mqtt_addr(&line);

    // One session is allowed: a persistent one holds it, 50 more new
    // sessions are refused (3.1.1: 0x03 Server unavailable).
    assert_eq!(connack(&addr, "holder"), 0);
    for i in 0..50 {
        assert_eq!(connack(&addr, &format!("flood-{i}")), 3);
    }
    let refused = wait_for(&log, "CONNECT refused", |v| message(v).starts_with("CONNECT refused"));
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["fields"]["code"], 0x97, "{refused}");
    // The 50 refusals (and the router's max_sessions line) within 10 s:
    // one line each, not fifty.
    std::thread::sleep(Duration::from_millis(200));
    let lines = json_lines(&log);
    let count = |p: &str| lines.iter().filter(|v| message(v).starts_with(p)).count();
    assert_eq!(count("CONNECT refused"), 1, "{lines:?}");
    assert!(count("session refused") + count("sessions refused") <= 1, "{lines:?}");
    assert!(lines.iter().all(|v| v["level"] != "INFO"), "the default level is warn: {lines:?}");

    // SIGHUP with a new level and limit, and keys that need a restart.
    let extra = "log_format = \"text\"\nmax_sessions = 100\nlog_level = \"info\"\n";
    std::fs::write(&conf, config(dir.path(), extra).replace("/data\"", "/elsewhere\"")).unwrap();
    signal(&child.0, "-HUP");
    let applied = wait_for(&log, "reload: applied", |v| message(v).starts_with("reload: applied"));
    let keys = applied["fields"]["keys"].as_str().unwrap();
    assert!(keys.contains("max_sessions") && keys.contains("log_level"), "{applied}");
    let restart = wait_for(&log, "need a restart", |v| message(v).contains("need a restart"));
    let keys = restart["fields"]["keys"].as_str().unwrap();
    assert!(keys.contains("data_dir") && keys.contains("log_format"), "{restart}");
    assert!(!keys.contains("max_sessions"), "{restart}");
    // max_sessions = 100 applies at once; the log stays JSON (log_format
    // needs a restart) and is now at info level.
    assert_eq!(connack(&addr, "after-reload"), 0);
    signal(&child.0, "-HUP");
    wait_for(&log, "at info level", |v| v["level"] == "INFO" && message(v).starts_with("reloaded password"));
    // The data directory did not move.
    assert!(!dir.path().join("elsewhere").exists());

    // A configuration that no longer parses keeps the running one.
    std::fs::write(&conf, "max_sessions = \"many\"\n").unwrap();
    signal(&child.0, "-HUP");
    wait_for(&log, "configuration error", |v| message(v).contains("configuration error"));
    assert_eq!(connack(&addr, "still-running"), 0);
}

#[test]
fn log_file_that_cannot_be_opened_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("edgemq.toml");
    std::fs::write(&conf, "log_dest = \"file\"\nlog_file = \"/nonexistent/dir/edgemq.log\"\n").unwrap();
    let out = Command::new(BIN).args(["-c", conf.to_str().unwrap(), "-p", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dir/edgemq.log"));
    // log_dest = "file" without log_file: the file, line and key are named.
    std::fs::write(&conf, "port = 0\nlog_dest = \"file\"\n").unwrap();
    let out = Command::new(BIN).args(["-c", conf.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("edgemq.toml:2") && err.contains("log_dest") && err.contains("log_file"), "{err}");
}

/// `log_dest = "syslog"`: datagrams on /dev/log, facility daemon, ident
/// `edgemq[PID]`. The test is the system logger, so it runs only where
/// /dev/log is free to bind (a container without one, as root); elsewhere
/// it says SKIPPED.
#[test]
fn syslog_datagrams_on_dev_log() {
    use std::os::unix::net::UnixDatagram;
    let dev_log = Path::new("/dev/log");
    let sock = match (dev_log.exists(), UnixDatagram::bind(dev_log)) {
        (false, Ok(s)) => s,
        _ => {
            eprintln!("SKIPPED: /dev/log exists or cannot be bound (a system logger owns it)");
            return;
        }
    };
    struct Unlink;
    impl Drop for Unlink {
        fn drop(&mut self) {
            let _ = std::fs::remove_file("/dev/log");
        }
    }
    let _unlink = Unlink;
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("edgemq.toml");
    let data = dir.path().join("data");
    let text = format!("bind = [\"127.0.0.1\"]\nport = 0\ndata_dir = \"{}\"\nlog_dest = \"syslog\"\n", data.display());
    std::fs::write(&conf, text + "log_level = \"info\"\n").unwrap();
    let child = Command::new(BIN)
        .args(["-c", conf.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = Killed(child);
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]);
    // <29>: facility daemon (3 * 8) + notice (5), tracing's INFO.
    assert!(msg.starts_with("<29>"), "{msg}");
    assert!(msg.contains(&format!("edgemq[{}]: ", child.0.id())), "{msg}");
    assert!(msg.contains("store: recovered"), "{msg}");
}
