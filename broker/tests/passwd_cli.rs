//! `edgemq passwd` against the real Mosquitto tools: a file it writes is
//! read by a running `mosquitto` (right password accepted, wrong one
//! refused), and a file `mosquitto_passwd` wrote is updated by it.
//! Without the tools these print `SKIPPED: ...` and pass, unless
//! `EDGEMQ_REQUIRE_INTEROP=1`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgemq::auth::passwd::PasswordFile;

const BIN: &str = env!("CARGO_BIN_EXE_edgemq");

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool} || test -x /usr/sbin/{tool}"))
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("EDGEMQ_REQUIRE_INTEROP").as_deref() != Ok("1"),
            "{tool} not found and EDGEMQ_REQUIRE_INTEROP=1"
        );
        println!("SKIPPED: {tool} not found");
    }
    found
}

fn passwd(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("passwd").args(args).stdin(Stdio::null()).output().unwrap()
}

struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto(dir: &Path, password_file: &Path) -> (Mosquitto, u16) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let conf = dir.join("mosquitto.conf");
    // Run as root, mosquitto would drop to user `mosquitto`, who cannot
    // read the 0600 file: it keeps running as whoever started it.
    let me = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let text = format!(
        "user {me}\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
        password_file.display()
    );
    std::fs::write(&conf, text).unwrap();
    let bin = if Path::new("/usr/sbin/mosquitto").exists() { "/usr/sbin/mosquitto" } else { "mosquitto" };
    let child = Command::new(bin).arg("-c").arg(&conf).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Mosquitto(child), port)
}

fn publish_ok(port: u16, user: &str, password: &str) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", user, "-P", password, "-t", "t", "-m", "m"])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn file_written_by_edgemq_passwd_is_read_by_mosquitto() {
    if !have("mosquitto") || !have("mosquitto_pub") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    assert!(passwd(&["-c", "-b", f, "alice", "s3cret"]).status.success());
    assert!(passwd(&["-b", "-H", "sha512", f, "bob", "b0b"]).status.success());
    assert!(passwd(&["-b", "-I", "1000", f, "carol", "c4rol"]).status.success());
    assert!(passwd(&["-b", f, "dave", "d"]).status.success());
    assert!(passwd(&["-D", f, "dave"]).status.success());
    let plain = dir.path().join("plain");
    std::fs::write(&plain, "erin:e3\n").unwrap();
    assert!(passwd(&["-U", plain.to_str().unwrap()]).status.success());
    let erin = std::fs::read_to_string(&plain).unwrap();
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap() + &erin).unwrap();
    #[cfg(unix)]
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("alice:$7$101$") && text.contains("bob:$6$") && text.contains("carol:$7$1000$"), "{text}");
    let (_broker, port) = mosquitto(dir.path(), &file);
    assert!(publish_ok(port, "alice", "s3cret"));
    assert!(publish_ok(port, "bob", "b0b"));
    assert!(publish_ok(port, "carol", "c4rol"));
    assert!(!publish_ok(port, "alice", "wrong"));
    assert!(!publish_ok(port, "dave", "d"));
    assert!(publish_ok(port, "erin", "e3"));
    let ours = PasswordFile::load(&file).unwrap();
    assert!(ours.check("alice", b"s3cret") && ours.check("bob", b"b0b") && !ours.contains("dave"));
}

#[test]
fn file_written_by_mosquitto_passwd_is_updated_by_edgemq_passwd() {
    if !have("mosquitto_passwd") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let f = file.to_str().unwrap();
    assert!(Command::new("mosquitto_passwd").args(["-c", "-b", f, "alice", "a"]).status().unwrap().success());
    assert!(Command::new("mosquitto_passwd").args(["-b", f, "bob", "b"]).status().unwrap().success());
    assert!(passwd(&["-b", f, "alice", "new"]).status.success());
    assert!(passwd(&["-D", f, "bob"]).status.success());
    let ours = PasswordFile::load(&file).unwrap();
    assert!(ours.check("alice", b"new") && !ours.contains("bob"));
    // mosquitto_passwd still updates what edgemq wrote.
    assert!(Command::new("mosquitto_passwd").args(["-b", f, "carol", "c"]).status().unwrap().success());
    let ours = PasswordFile::load(&file).unwrap();
    assert!(ours.check("alice", b"new") && ours.check("carol", b"c"));
}

#[test]
fn bad_usage_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("missing");
    let out = passwd(&["-b", f.to_str().unwrap(), "u", "p"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing"));
    let out = passwd(&["-c", "-H", "md5", "-b", f.to_str().unwrap(), "u", "p"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("md5"));
}
